"""Talking to GSM hardware over AT commands (a serial modem, a USB stick, a router's TCP port).

Modules, each owning one thing:

- ``link``      the byte pipe, opened only through pyserial's ``serial_for_url``
                (``/dev/ttyS0``, ``socket://host:port``, ``rfc2217://host:port``);
- ``atparse``   the sans-I/O parser of modem output: answers, final result codes, the
                ``> `` prompt, echo and unsolicited result codes;
- ``errors``    ``ModemError`` and its classes (temporary, permanent, SIM needs a person)
                with the +CMS / +CME code tables;
- ``engine``    one command at a time over a link, the AT+CMGS two-step, timeouts and
                re-synchronisation, the queue of unsolicited codes;
- ``session``   ``ModemSession``: initialisation, PIN, registration, sending, stored
                messages, status reports, USSD, status and recovery;
- ``ussd``      decoding +CUSD answers (pure);
- ``pinguard``  remembering rejected PINs so one is never sent twice.
"""
