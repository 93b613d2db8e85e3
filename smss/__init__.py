"""smss: an SMS gateway.

Clients hand ``#phone;text`` records to the spooler (``smss.spooler.server``) over TCP;
they are stored in the ``msg`` queue (``smss.store``) and sent by the
``check_and_send`` dispatcher through a transport (``smss.modem`` …).
"""

__version__ = "0.1.0"
