"""GSM SMS encoding, pure and I/O free.

- ``smss.gsm.alphabet``: the GSM 03.38 7-bit alphabet, septet packing, transliteration and
  how a text is split into parts (GSM-7 or UCS2).
- ``smss.gsm.pdu``: SMS-SUBMIT / SMS-DELIVER / SMS-STATUS-REPORT PDUs (3GPP TS 23.040) as
  the hex strings AT+CMGS / AT+CMGL use.
- ``smss.gsm.reassembly``: putting concatenated inbound messages back together.
"""
