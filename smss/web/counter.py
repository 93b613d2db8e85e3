"""Data for the send form's live part counter (``static/parts.js``).

``transliteration_table`` is ``smss.gsm.alphabet.transliterate`` as a table:
every character outside GSM-7 whose plain form differs, with that form.  The
browser applies it after NFC normalisation exactly as the Python does, so the
counter and ``smss.spooler.validate`` count the same parts.
"""

from __future__ import annotations

import functools
import json
import sys
import unicodedata

from smss.gsm import alphabet


@functools.lru_cache(maxsize=1)
def transliteration_table() -> str:
    """The table as JSON (about 16 kB), computed once."""
    table = {}
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        if ch in alphabet.GSM7_CHARS or unicodedata.normalize("NFC", ch) != ch:
            continue  # in GSM-7 already, or never left standing by NFC
        # Only a decomposable character, a combining mark or one of the extra
        # punctuation replacements can have a different plain form.
        if not (unicodedata.decomposition(ch) or unicodedata.combining(ch) or code >= 0xA0
                and code < 0x2100):
            continue
        plain = alphabet.transliterate(ch)
        if plain != ch:
            table[ch] = plain
    return json.dumps(table, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
