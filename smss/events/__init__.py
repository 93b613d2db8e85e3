"""Telling applications what happened: webhook events and Kannel dlr-urls.

``record`` turns a stored outcome (a message sent or failed, an SMS received,
a delivery report) into outbox rows and tallies in the same transaction;
``worker`` posts the outbox; ``signing`` and ``kannel`` are the pure parts
(the X-Smss-Signature HMAC, Kannel's ``%d``-style escapes).
"""
