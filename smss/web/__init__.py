"""The web interface and HTTP API: pages for people, JSON for applications.

Owns: the FastAPI application (``app``, which lists every router), the pages
people read (``pages``, Jinja2 templates, local static files), the forms that
act (``actions``) and the admin's pages (``admin``), the API (``api``, and its
actions in ``api_actions``), what an action does and records (``operations``,
shared by pages and API), the history charts (``charts`` for the numbers,
``svg`` for the pictures), CSV export (``export``), logins kept on the server
(``sessions``), roles, CSRF, tokens and throttling (``security``,
``passwords``), handing messages to the same group commit as the TCP door
(``sending``), the uvicorn server inside ``smss run`` or alone as ``smss web``
(``server``), the ``smss user`` / ``smss token`` commands (``accounts``) and
the manual's screenshots (``screenshots``).  All SQL is in ``smss.store``.
"""
