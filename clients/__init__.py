"""Clients that hand records to the spooler; installed as ``smss.clients``.

``smss_client.py`` needs only the Python standard library: copy it anywhere.
"""
