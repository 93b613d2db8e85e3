"""Reassembly of multipart inbound SMS: order, separate reads, duplicates, key collisions."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from smss.gsm.pdu import Concat, decode_pdu, deliver_parts, encode_deliver
from smss.gsm.reassembly import Assembled, reassemble

TS = datetime(2024, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=1)))
SENDER = "+420608337726"


def parts(text, *, sender=SENDER, ref=7, ts=TS):
    return [decode_pdu(p) for p in deliver_parts(sender, text, timestamp=ts, concat_reference=ref)]


def test_single_part_is_complete_at_once():
    [d] = parts("Ahoj")
    done, left = reassemble([(3, d)])
    assert done == [Assembled(SENDER, "Ahoj", TS, 1, (3,))] and left == []


def test_parts_out_of_order():
    text = "x" * 400
    p1, p2, p3 = parts(text)
    done, left = reassemble([(12, p3), (10, p1), (11, p2)])
    assert done == [Assembled(SENDER, text, TS, 3, (10, 11, 12))]
    assert left == []


def test_incomplete_then_completed_by_a_later_read():
    text = "Привет " * 40
    p = parts(text)
    assert len(p) == 5
    done, left = reassemble([("a", p[4]), ("b", p[0]), ("c", p[2])])
    assert done == [] and left == [("a", p[4]), ("b", p[0]), ("c", p[2])]
    done, left = reassemble(left + [("d", p[1])])
    assert done == [] and len(left) == 4
    done, left = reassemble(left + [("e", p[3])])
    assert left == []
    assert done == [Assembled(SENDER, text, TS, 5, ("b", "d", "c", "e", "a"))]


def test_duplicate_parts_are_tolerated_and_all_handles_returned():
    p1, p2 = parts("y" * 200)
    done, left = reassemble([(1, p1), (2, p2), (3, p1), (4, p2), (5, p2)])
    assert left == []
    assert done == [Assembled(SENDER, "y" * 200, TS, 2, (1, 3, 2, 4, 5))]


def test_keys_do_not_mix():
    a = parts("a" * 200, sender="+1", ref=7)
    b = parts("b" * 200, sender="+2", ref=7)
    c = parts("c" * 200, sender="+1", ref=8)
    d = parts("d" * 200, sender="+1", ref=7, ts=TS + timedelta(hours=3))[:1]  # same key as a
    items = list(enumerate(a + b + c + d))
    done, left = reassemble(items)
    assert [m.text for m in done] == ["a" * 200, "b" * 200, "c" * 200]
    assert [m.handles for m in done] == [(0, 1), (2, 3), (4, 5)]
    assert left == [(6, d[0])]
    # 8-bit and 16-bit references of the same value are different messages.
    wide = decode_pdu(encode_deliver("+1", "w", timestamp=TS, concat=Concat(7, 2, 2, 16)))
    done, left = reassemble([(0, a[0]), (1, wide)])
    assert done == [] and left == [(0, a[0]), (1, wide)]


def test_reference_reused_by_a_newer_message():
    # The 8-bit reference wrapped: an old complete message and a new one share the key.
    old = parts("old " * 50, ref=9, ts=TS)
    new = parts("new " * 50, ref=9, ts=TS + timedelta(days=2))
    done, left = reassemble([(0, old[0]), (1, new[1]), (2, new[0]), (3, old[1])])
    assert [(m.text, m.handles, m.timestamp) for m in done] == [
        ("old " * 50, (0, 3), TS), ("new " * 50, (2, 1), TS + timedelta(days=2))]
    assert left == []
    # The old message lost a part: the new one still assembles, the old part stays over.
    done, left = reassemble([(1, old[1]), (2, new[0]), (3, new[1])])
    assert [m.text for m in done] == ["new " * 50] and left == [(1, old[1])]


def test_surrogate_pair_split_between_parts_is_joined():
    head = "00440B912460803377F60008" + "42103021436500"
    part1 = decode_pdu(head + "0A" + "050003010201" + "0041D83D")
    part2 = decode_pdu(head + "0A" + "050003010202" + "DE000042")
    assert part1.text == "A\ufffd" and part2.text == "\ufffdB"
    [msg], left = reassemble([(0, part2), (1, part1)])
    assert msg.text == "A😀B" and left == []
    # A half whose partner never comes becomes U+FFFD.
    part2_plain = decode_pdu(head + "0A" + "050003010202" + "00430042")
    [msg], _ = reassemble([(0, part1), (1, part2_plain)])
    assert msg.text == "A\ufffdCB"


def test_empty_input():
    assert reassemble([]) == ([], [])


@settings(max_examples=60)
@given(st.text(max_size=700), st.integers(0, 0xFFFF), st.randoms(use_true_random=False),
       st.integers(1, 4))
def test_any_order_any_reads_with_duplicates(text, ref, rnd, reads):
    pieces = parts(text, ref=ref)
    handed = list(enumerate(pieces))
    rnd.shuffle(handed)
    batches = [handed[i * len(handed) // reads:(i + 1) * len(handed) // reads]
               for i in range(reads)]
    complete = next(  # the read in which the last part arrives
        read for read in range(reads)
        if len({h for batch in batches[:read + 1] for h, _ in batch}) == len(pieces))
    if len(pieces) > 1:  # (a single-part SMS stored twice is two messages)
        # a part stored twice, up to the read that completes the message (a copy stored
        # after the message was complete and deleted is a new part that waits)
        for _ in range(rnd.randint(0, 2)):
            read = rnd.randint(0, complete)
            pool = [item for batch in batches[:read + 1] for item in batch]
            batches[read].append(rnd.choice(pool))
    held: list = []
    done_all: list = []
    for batch in batches:
        done, held = reassemble(held + batch)
        done_all += done
    assert held == []
    assert len(done_all) == 1
    [msg] = done_all
    assert msg.text == text and msg.parts == len(pieces) and msg.sender == SENDER
    assert sorted(msg.handles) == sorted(h for batch in batches for h, _ in batch)
    assert [h for h in msg.handles] == sorted(msg.handles)  # part order = our numbering


def test_single_part_sms_twice_is_two_messages():
    [d] = parts("same text")
    done, left = reassemble([(1, d), (2, d)])
    assert [m.handles for m in done] == [(1,), (2,)] and left == []
