"""Cross-check of the PDU codec against Debian's gammu (python3-gammu) in both directions."""

import random
from datetime import datetime, timedelta, timezone

import pytest
from support_gsm import gammu_batch, gammu_missing
from support_tools import missing

from smss.gsm.alphabet import is_gsm7
from smss.gsm.pdu import (
    Deliver,
    Submit,
    build_submits,
    decode_pdu,
    deliver_parts,
    encode_status_report,
)
from smss.gsm.reassembly import reassemble


@pytest.fixture(autouse=True)
def gammu_oracle():
    problem = gammu_missing()
    if problem is not None:
        missing(f"gammu oracle: {problem}")

CORPUS = {
    "ascii": "Server web01: disk /var 95% full, load 12.5 (check_and_send test) @ 10:00",
    "gsm_extension": "Braces {x} [y] ~z^ pipe | backslash \\ euro € form\ffeed",
    "gsm_accents": "Café à Zürich: Ñandú, Øre, ÆØÅ æøå ß É ¿¡ §",
    "czech": "Příliš žluťoučký kůň úpěl ďábelské ódy; Ĺ ľ ŕ ô ä",
    "cyrillic": "Прием смс: принимать смс от граждан в автоматическом режиме",
    "emoji": "Alert 😀🚀 ok 👍🏽 🇨🇿",
    "multipart_gsm": ("Long alert with € and {braces} " * 14)[:400],
    "multipart_ucs2": ("Dlouhá zpráva 😀 č " * 25)[:400],
}
assert all(len(CORPUS[k]) == 400 for k in ("multipart_gsm", "multipart_ucs2"))

SENDERS = ["+420608337726", "608337726", "Vodafone CZ"]


@pytest.mark.parametrize("ref", [0x42, 0x1234])
def test_gammu_decodes_our_submits(ref):
    requests, expected = [], []
    for name, text in CORPUS.items():
        pdus = build_submits("+420608337726", text, concat_reference=ref, validity_minutes=60,
                             smsc="+420603052000")
        for i, pdu in enumerate(pdus, 1):
            requests.append({"op": "decode", "hex": pdu.hex})
            expected.append((name, i, len(pdus)))
        requests.append({"op": "decode_multi", "hex": [p.hex for p in pdus]})
        expected.append((name, None, len(pdus)))
    for (name, part, total), answer in zip(expected, gammu_batch(requests)):
        assert "ok" in answer, (name, answer)
        got = answer["ok"]
        text = CORPUS[name]
        if part is None:
            assert got == [text], name
            continue
        assert got["type"] == "Submit"
        assert got["number"] == "+420608337726" and got["smsc"] == "+420603052000"
        assert got["coding"] == ("Default_No_Compression" if is_gsm7(text)
                                 else "Unicode_No_Compression"), name
        assert got["validity"] == "60M"
        if total == 1:
            assert got["udh_type"] == "NoUDH" and got["text"] == text
        else:
            assert got["part"] == part and got["parts"] == total, name
            assert (got["id16"] if ref > 255 else got["id8"]) == ref
            assert got["udh_type"] == ("ConcatenatedMessages16bit" if ref > 255
                                       else "ConcatenatedMessages")


def test_gammu_decodes_our_delivers():
    ts = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5)))
    requests, expected = [], []
    for sender in SENDERS:
        for text in CORPUS.values():
            pdus = deliver_parts(sender, text, timestamp=ts, concat_reference=7,
                                 smsc="+420603052000")
            requests.append({"op": "decode", "hex": pdus[0]})
            requests.append({"op": "decode_multi", "hex": pdus})
            expected.append((sender, text))
    answers = gammu_batch(requests)
    for i, (sender, text) in enumerate(expected):
        first, joined = answers[2 * i], answers[2 * i + 1]
        assert "ok" in first and "ok" in joined, (sender, text, first, joined)
        assert first["ok"]["type"] == "Deliver"
        assert first["ok"]["number"] == sender
        assert first["ok"]["datetime"] == "2024-05-06T07:08:09"  # gammu drops the zone
        assert joined["ok"] == [text]


def test_gammu_decodes_our_status_reports():
    sub = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    dis = datetime(2024, 5, 6, 7, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    cases = [(42, "+420608337726", 0x00, "Delivered"), (7, "608337726", 0x41, None),
             (255, "+1", 0x30, None)]
    requests = [{"op": "decode", "hex": encode_status_report(ref, rcpt, status=st, submitted=sub,
                                                            discharged=dis, smsc="+420603052000")}
                for ref, rcpt, st, _ in cases]
    for (ref, rcpt, status, text), answer in zip(cases, gammu_batch(requests)):
        got = answer["ok"]
        assert got["type"] == "Status_Report"
        assert (got["reference"], got["number"], got["status"]) == (ref, rcpt, status)
        assert got["datetime"] == "2024-05-06T07:08:09"
        assert got["smsc_datetime"] == "2024-05-06T07:09:30"
        if text:
            assert got["text"] == text


@pytest.mark.parametrize("layout", ["Submit", "Deliver"])
def test_we_decode_gammu_pdus(layout):
    requests, expected = [], []
    for number in SENDERS:
        for text in CORPUS.values():
            requests.append({"op": "encode", "text": text, "number": number, "layout": layout,
                             "unicode": not is_gsm7(text), "datetime": "2024-05-06T07:08:09",
                             "smsc": "+420603052000"})
            expected.append((number, text))
    for (number, text), answer in zip(expected, gammu_batch(requests)):
        assert "ok" in answer, answer
        msgs = [decode_pdu(h) for h in answer["ok"]]
        kind = Submit if layout == "Submit" else Deliver
        assert all(isinstance(m, kind) for m in msgs)
        assert all(m.encoding == ("gsm7" if is_gsm7(text) else "ucs2") for m in msgs)
        assert all(m.smsc == "+420603052000" for m in msgs)
        if layout == "Submit":
            assert all(m.number == number for m in msgs)
        else:
            assert all(m.sender == number for m in msgs)
            assert all(m.timestamp.replace(tzinfo=None) == datetime(2024, 5, 6, 7, 8, 9)
                       for m in msgs)
        if len(msgs) > 1:
            refs = {(m.concat.reference, m.concat.total) for m in msgs}
            assert refs == {(msgs[0].concat.reference, len(msgs))}
            assert [m.concat.sequence for m in msgs] == list(range(1, len(msgs) + 1))
        else:
            assert msgs[0].concat is None
        if layout == "Submit":
            assert "".join(m.text for m in msgs) == text
        else:
            rnd = random.Random(len(text))
            shuffled = list(enumerate(msgs))
            rnd.shuffle(shuffled)
            done, left = reassemble(shuffled)
            assert left == [] and [(m.sender, m.text) for m in done] == [(number, text)]
