"""The front door: where records come in, are judged, committed and announced.

- ``protocol``: the wire protocol of port 2021, sans I/O (bytes in, records out).
- ``phone`` and ``validate``: what makes a record a message we accept.
- ``committer``: group commit of accepted messages, ``OK`` only after commit.
- ``backlog``: the bound on records waiting for the committer (back-pressure).
- ``server``: the asyncio TCP server around the parser, with its abuse limits.
- ``kick``: telling the dispatcher that messages are waiting, kicks collapsed.
- ``listen``: listening sockets opened before daemonising.

The web interface's send form and HTTP API use the same validation, committer
and kick, so a record is treated alike whichever door it came through.
"""
