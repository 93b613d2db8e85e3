"""Fault injection plan of the simulated modem (pure; randomness comes from the caller's RNG).

Owns: which faults are active, their validated parameters, and the decision
"does this fault fire now" for faults that fire the next N times or at random.

Faults and their parameters:

- ``cms_error``  code=500, count=1 | probability=p, commands=["+CMGS","+CMSS"],
  kind="cms"|"cme"|"plain", skip=0: the named commands fail (+CMGS and +CMSS
  after the body / at the network, like a rejection; any other command at
  once); the first ``skip`` of them still succeed (part 2 of a message fails).
- ``drop``       at="now"|"command"|"body"|"after_send", command=None, count=1, skip=0:
  the link goes down (TCP closed, pty hung up) right away, when the next
  command line arrives (optionally only that command), when a message is
  about to go out (AT+CMGS body, AT+CMSS; nothing sent) or after it went out
  but before +CMGS: / +CMSS: is answered; the first ``skip`` times it would strike
  pass.
- ``hang``       at="now"|"body": the modem stops answering (input is swallowed)
  until the fault is cleared; "body" hangs when a message is about to go out.
- ``no_network`` stat=0: +CREG stat (0 not registered, 2 searching, 3 denied);
  sends fail with +CMS ERROR: 331.
- ``sim_full``   storing fails with +CMS ERROR: 322; inbound SMS wait in the
  network (no +CMTI) until space is free again.
- ``noise``      probability=0.3, lines=[...], count=None, interval=None: unsolicited
  and garbage lines between and inside answers and inside the AT+CMGS exchange;
  with ``interval`` (seconds) also one line that often while nobody asks.
- ``pin_required`` pin=None: the SIM asks for its PIN again (as after a restart);
  the fault ends when the right PIN is entered.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Optional

DEFAULT_NOISE = (
    "RING",
    "^RSSI:17",
    "^BOOT:20131,0,0,0,72",
    "+CREG: 1",
    "^MODE:5,4",
    "+CIEV: 2,3",
    "\x7f\xfe#garbage~~\xa4\xff",
)

_SPEC: Dict[str, Dict[str, Any]] = {
    "cms_error": {
        "code": 500,
        "count": None,
        "probability": None,
        "commands": ("+CMGS", "+CMSS"),
        "kind": "cms",
        "skip": 0,
    },
    "drop": {"at": "now", "command": None, "count": 1, "skip": 0},
    "hang": {"at": "now"},
    "no_network": {"stat": 0},
    "sim_full": {},
    "noise": {"probability": 0.3, "lines": DEFAULT_NOISE, "count": None, "interval": None},
    "pin_required": {"pin": None},
}

_CHOICES = {
    ("drop", "at"): ("now", "command", "body", "after_send"),
    ("hang", "at"): ("now", "body"),
    ("cms_error", "kind"): ("cms", "cme", "plain"),
}

FAULT_NAMES = tuple(_SPEC)


class Faults:
    """The active faults; see the module docstring for names and parameters."""

    def __init__(self) -> None:
        self._active: Dict[str, Dict[str, Any]] = {}

    def set(self, name: str, **params: Any) -> Dict[str, Any]:
        """Activate ``name`` (replacing an earlier setting); the full parameters.
        ValueError for an unknown fault or parameter or a bad value."""
        if name not in _SPEC:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        spec = _SPEC[name]
        unknown = set(params) - set(spec)
        if unknown:
            raise ValueError(f"fault {name!r} has no parameter(s) {sorted(unknown)}")
        merged = dict(spec)
        merged.update(params)
        for key, value in merged.items():
            choices = _CHOICES.get((name, key))
            if choices and value not in choices:
                raise ValueError(f"fault {name}: {key} must be one of {choices}, not {value!r}")
        if name == "cms_error":
            merged["code"] = int(merged["code"])
            merged["commands"] = tuple(str(c).upper() for c in merged["commands"])
            if merged["count"] is None and merged["probability"] is None:
                merged["count"] = 1
        for key in ("count", "stat", "skip"):
            if merged.get(key) is not None:
                merged[key] = int(merged[key])
                if merged[key] < 0:
                    raise ValueError(f"fault {name}: {key} must not be negative")
        prob = merged.get("probability")
        if prob is not None:
            prob = float(prob)
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"fault {name}: probability must be within 0..1")
            merged["probability"] = prob
        if name == "noise":
            merged["lines"] = tuple(str(line) for line in merged["lines"])
            if not merged["lines"]:
                raise ValueError("fault noise: lines must not be empty")
            if merged["interval"] is not None:
                merged["interval"] = float(merged["interval"])
                if merged["interval"] <= 0:
                    raise ValueError("fault noise: interval must be positive")
        if name == "drop" and merged["command"] is not None:
            merged["command"] = str(merged["command"]).upper()
        self._active[name] = merged
        return dict(merged)

    def clear(self, name: Optional[str] = None) -> None:
        if name is None:
            self._active.clear()
        else:
            self._active.pop(name, None)

    def get(self, name: str) -> Optional[Dict[str, Any]]:
        return self._active.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._active

    def fire(self, name: str, rng: random.Random) -> Optional[Dict[str, Any]]:
        """The parameters when ``name`` fires now (its count is used up by one, at 0 it
        ends), else None.  While ``skip`` is above 0 it only counts down.  A fault with
        a probability fires at random; with neither count nor probability it fires every
        time."""
        params = self._active.get(name)
        if params is None:
            return None
        if params.get("skip"):
            params["skip"] -= 1
            return None
        prob = params.get("probability")
        if prob is not None and rng.random() >= prob:
            return None
        count = params.get("count")
        if count is not None:
            if count <= 0:
                self._active.pop(name, None)
                return None
            params["count"] = count - 1
            if count - 1 == 0:
                self._active.pop(name, None)
        return dict(params)

    def snapshot(self) -> Dict[str, Dict[str, Any]]:
        return {
            name: {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
            for name, params in self._active.items()
        }
