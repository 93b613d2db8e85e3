"""GSM/VoIP gateways (GoIP, Yeastar TG): what their interfaces say, and how to talk to them.

- ``ami``        Asterisk Manager Interface framing: bytes in, packets out (pure)
- ``amiclient``  one AMI connection: login, actions, events, keepalive (I/O)
- ``goip``       GoIP's HTTP answers and ``send_status.xml`` (pure)
- ``yeastar``    Yeastar's WebCGI answers, AMI events and CLI commands (pure)
- ``http``       the small HTTP client both use (I/O)

The transports built on them are ``smss.transports.goip`` and ``smss.transports.yeastar``.
"""
