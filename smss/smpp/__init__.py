"""SMPP 3.4 for smss, written for it rather than borrowed (docs/smpp.md says why).

- ``pdu``: the PDU codec and the framer (pure).
- ``session``: one ESME session, sans-I/O: sequences, automatic answers, events (pure).
- ``text``: data_coding, splitting long texts, reading short messages back (pure).
- ``receipt``: delivery receipts and message id normal forms (pure).
- ``inbox``: stored PDUs to whole inbound messages and receipts (pure).
- ``spool``: the file that keeps received PDUs until the dispatcher committed them.
- ``link``: a socket and an I/O thread around a session.
- ``settings``: the [smpp] configuration.

``smss.transports.smpp`` puts them behind the dispatcher's transport interface.
"""
