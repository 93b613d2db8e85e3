"""smss-modem-sim: a GSM modem simulator speaking AT commands (27.007 / 27.005).

Device logic (no I/O, time and timers injected):
  framing        bytes -> command lines, ``A/``, message bodies up to Ctrl-Z / ESC
  atparse        one line -> basic and extended commands and their parameters
  session        one connection: echo, prompt, final results, latency, noise
  device         ``Modem``: the shared state and what happens without a command
                 (inbound SMS, status reports, USSD answers, +CREG changes)
  commands_basic V.250, identification, PIN, network, charset, USSD handlers
  commands_sms   27.005 handlers (CMGF, CSCA, CPMS, CNMI, CMGS, CMGW, CMSS, CMGL, ...)
  simcard, storage, faults, settings, charset, textmode, inbound, records, results
Transports and lifecycle:
  link (one session over one descriptor), tcp (``socket://``), ptyport (a pty
  behind a symlink), runtime (``Simulator``: modem + transports + control)
Control:
  control (JSON lines server on 127.0.0.1), client (``ControlClient``), cli
"""
