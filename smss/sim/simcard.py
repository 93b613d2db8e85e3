"""The SIM card's security state (27.007 +CPIN), pure.

Owns: PIN / PUK checking, the remaining tries (3 for the PIN, 10 for the PUK),
the ``+CPIN:`` state names, and the moment after a correct PIN during which
the SIM is still busy (callers pass the clock reading in).
"""

from __future__ import annotations

from typing import Optional

READY = "READY"
SIM_PIN = "SIM PIN"
SIM_PUK = "SIM PUK"
BLOCKED = "BLOCKED"  # PUK tries used up: +CME ERROR: 13 (SIM failure) from then on

PIN_TRIES = 3
PUK_TRIES = 10


class SimCard:
    """PIN state machine.  ``pin=None``: the SIM does not ask for a PIN."""

    def __init__(self, pin: Optional[str] = None, puk: str = "12345678") -> None:
        self.pin = pin
        self.puk = puk
        self.state = READY if pin is None else SIM_PIN
        self.pin_tries = PIN_TRIES
        self.puk_tries = PUK_TRIES
        self.busy_until = 0.0

    def require_pin(self, pin: Optional[str] = None) -> None:
        """Lock the SIM as after a power cycle (``pin`` replaces the PIN when given)."""
        if pin is not None:
            self.pin = pin
        if self.pin is None:
            self.pin = "1234"
        if self.state == READY:
            self.state = SIM_PIN

    def power_cycle(self) -> None:
        """The SIM lost power: it asks for its PIN again (if it has one).  The tries left
        are kept on the card (3GPP TS 31.102 / ETSI TS 102 221 PIN retry counters)."""
        if self.pin is not None and self.state == READY:
            self.state = SIM_PIN
        self.busy_until = 0.0

    def busy(self, now: float) -> bool:
        return now < self.busy_until

    def enter_pin(self, pin: str, now: float, busy_seconds: float) -> bool:
        """AT+CPIN=<pin> in state SIM PIN.  True when accepted; a wrong PIN uses a try
        and the last wrong one leaves the SIM asking for the PUK."""
        if pin == self.pin:
            self.state = READY
            self.pin_tries = PIN_TRIES
            self.busy_until = now + busy_seconds
            return True
        self.pin_tries -= 1
        if self.pin_tries <= 0:
            self.pin_tries = 0
            self.state = SIM_PUK
        return False

    def enter_puk(self, puk: str, new_pin: str, now: float, busy_seconds: float) -> bool:
        """AT+CPIN=<puk>,<newpin> in state SIM PUK.  True when accepted (the PIN becomes
        ``new_pin``); a wrong PUK uses a try and the last one blocks the SIM."""
        if puk == self.puk:
            self.pin = new_pin
            self.state = READY
            self.pin_tries = PIN_TRIES
            self.puk_tries = PUK_TRIES
            self.busy_until = now + busy_seconds
            return True
        self.puk_tries -= 1
        if self.puk_tries <= 0:
            self.puk_tries = 0
            self.state = BLOCKED
        return False

    def snapshot(self) -> dict:
        return {
            "state": self.state,
            "pin_tries": self.pin_tries,
            "puk_tries": self.puk_tries,
        }
