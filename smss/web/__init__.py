"""The web interface and HTTP API: pages for people, JSON for applications.

Owns: the FastAPI application (``app``), its pages (``pages``, Jinja2
templates, local static files) and API (``api``), logins, CSRF and tokens
(``security``, ``passwords``), handing messages to the same group commit as
the TCP door (``sending``), the uvicorn server inside ``smss run`` or alone as
``smss web`` (``server``), the ``smss user`` / ``smss token`` commands
(``accounts``) and the manual's screenshots (``screenshots``).  All SQL is in
``smss.store``.
"""
