"""GSM 03.38 alphabet, septet packing, transliteration and part planning."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smss.gsm.alphabet import (
    GSM7_CHARS,
    from_septets,
    is_gsm7,
    pack_septets,
    plan_parts,
    septet_length,
    to_septets,
    transliterate,
    unpack_septets,
)

EXTENSION = "^{}\\[~]|€\f"
gsm7_text = st.text(alphabet=sorted(GSM7_CHARS))
septet_lists = st.lists(st.integers(0, 127))


def test_default_table_positions():
    # Spot checks against 23.038 table 6.2.1.
    assert to_septets("@") == [0x00]
    assert to_septets("£$¥") == [0x01, 0x02, 0x03]
    assert to_septets("\n\r") == [0x0A, 0x0D]
    assert to_septets("Δ_") == [0x10, 0x11]
    assert to_septets("ÆæßÉ") == [0x1C, 0x1D, 0x1E, 0x1F]
    assert to_septets(" ¤") == [0x20, 0x24]
    assert to_septets("¡A§¿aà") == [0x40, 0x41, 0x5F, 0x60, 0x61, 0x7F]


def test_extension_table_is_escape_pairs():
    assert to_septets("^{}\\[~]|€\f") == [
        0x1B, 0x14, 0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x2F, 0x1B, 0x3C,
        0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x40, 0x1B, 0x65, 0x1B, 0x0A,
    ]
    assert from_septets([0x1B, 0x65, 0x41]) == "€A"
    assert septet_length("a€") == 3


def test_not_gsm7():
    for ch in "čřžšěůáíóúýďťňĺľŕôЖ😀`\t\x00":
        assert not is_gsm7(ch), ch
        with pytest.raises(ValueError, match="not in the GSM 7-bit alphabet"):
            to_septets("ab" + ch)
    assert is_gsm7("Hello, world! éäöüÄÖÜñàèìò {[]}")
    assert is_gsm7("")


def test_escape_edge_cases_decode():
    # An undefined extension code shows the default-table character (23.038 6.2.1.1).
    assert from_septets([0x1B, 0x41]) == "A"
    assert from_septets([0x1B, 0x1B, 0x41]) == " A"
    assert from_septets([0x41, 0x1B]) == "A "
    with pytest.raises(ValueError):
        from_septets([128])


def test_pack_known_vectors():
    # "hellohello" is the classic example from the GSM 03.38 / 23.038 literature.
    assert pack_septets(to_septets("hellohello")).hex() == "e8329bfd4697d9ec37"
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"), 10) == to_septets("hellohello")
    # 8 septets fill exactly 7 octets.
    assert len(pack_septets([0x41] * 8)) == 7
    # One fill bit after a 6-octet UDH: the first septet starts at bit 1.
    assert pack_septets([0x41], fill_bits=1) == bytes([0x41 << 1])
    assert pack_septets([0x7F, 0x7F], fill_bits=6) == bytes([0xC0, 0xFF, 0x0F])


@given(septet_lists, st.integers(0, 6))
def test_pack_unpack_roundtrip(septets, fill):
    packed = pack_septets(septets, fill)
    assert len(packed) == (len(septets) * 7 + fill + 7) // 8
    if fill and septets:
        assert packed[0] & ((1 << fill) - 1) == 0  # fill bits are zero
    assert unpack_septets(packed, len(septets), fill) == septets


def test_unpack_too_short():
    with pytest.raises(ValueError, match="need 2 octets, only 1"):
        unpack_septets(b"\x00", 2)
    with pytest.raises(ValueError):
        unpack_septets(b"\x00", 1, fill_bits=7)
    with pytest.raises(ValueError):
        pack_septets([200])


@given(gsm7_text)
def test_text_septet_roundtrip(text):
    septets = to_septets(text)
    assert len(septets) == septet_length(text)
    assert from_septets(septets) == text
    assert from_septets(unpack_septets(pack_septets(septets), len(septets))) == text


def test_transliterate_czech_slovak():
    src = "áčďéěíňóřšťúůýžĺľŕôä ÁČĎÉĚÍŇÓŘŠŤÚŮÝŽĹĽŔÔÄ"
    out = transliterate(src)
    assert out == "acdéeinorstuuyzllroä ACDÉEINORSTUUYZLLROÄ"
    assert is_gsm7(out)
    assert transliterate("Příliš žluťoučký kůň úpěl ďábelské ódy") == (
        "Prilis zlutoucky kun upel dabelské ody"
    )


def test_transliterate_keeps_gsm7_and_unmappable():
    assert transliterate("é ä ö ü É Ä Ö Ü à è {€}") == "é ä ö ü É Ä Ö Ü à è {€}"
    assert transliterate("Привет 😀") == "Привет 😀"
    # Decomposed input (e + combining caron) still ends up plain.
    assert transliterate("e\u030c a\u0301") == "e a"
    assert transliterate("e\u0301") == "é"  # composes to the GSM-7 é
    assert transliterate("„Ahoj“ – …") == '"Ahoj" - ...'


@given(st.text())
def test_transliterate_only_changes_non_gsm7(text):
    out = transliterate(text)
    if is_gsm7(text):
        assert out == text


def test_plan_single_and_boundaries():
    assert plan_parts("").parts == ("",) and plan_parts("").encoding == "gsm7"
    assert plan_parts("a" * 160).count == 1
    assert plan_parts("a" * 161).parts == ("a" * 153, "a" * 8)
    assert plan_parts("€" * 80).count == 1  # 160 septets
    assert plan_parts("€" * 80 + "a").count == 2
    assert plan_parts("č" * 70).parts == ("č" * 70,)
    assert plan_parts("č" * 71).parts == ("č" * 67, "č" * 4)
    assert plan_parts("č").encoding == "ucs2"


def test_plan_never_splits_escape_pair():
    text = "a" * 152 + "€" + "b" * 10  # the € would straddle septets 153/154
    plan = plan_parts(text)
    assert plan.encoding == "gsm7"
    assert plan.parts[0] == "a" * 152
    assert plan.parts[1].startswith("€")


def test_plan_never_splits_surrogate_pair():
    text = "č" * 66 + "😀" + "x" * 10  # the emoji would straddle units 67/68
    plan = plan_parts(text)
    assert plan.encoding == "ucs2"
    assert plan.parts == ("č" * 66, "😀" + "x" * 10)


def test_plan_counts_parts_beyond_the_limit():
    # The count is for validation; the PDU encoders refuse more than 255 parts.
    assert plan_parts("a" * 153 * 255).count == 255
    assert plan_parts("a" * (153 * 255 + 1)).count == 256


@given(st.text(max_size=600))
def test_plan_parts_cover_text_and_fit(text):
    plan = plan_parts(text)
    assert "".join(plan.parts) == text
    if plan.encoding == "gsm7":
        assert is_gsm7(text)
        sizes = [septet_length(p) for p in plan.parts]
        limit = 160 if plan.count == 1 else 153
    else:
        assert not is_gsm7(text)
        sizes = [len(p.encode("utf-16-be")) // 2 for p in plan.parts]
        limit = 70 if plan.count == 1 else 67
    assert all(s <= limit for s in sizes)
    if plan.count > 1:
        # Greedy: each part except the last is full but for at most one split character.
        assert all(s >= limit - 1 for s in sizes[:-1])
        assert all(p for p in plan.parts)


@given(st.text(alphabet=sorted(GSM7_CHARS) + list(EXTENSION) * 5, min_size=150, max_size=500))
def test_plan_parts_gsm7_extension_heavy(text):
    plan = plan_parts(text)
    for part in plan.parts:
        assert from_septets(to_septets(part)) == part
    assert "".join(plan.parts) == text


def test_plan_with_16_bit_reference_has_one_less_per_part():
    assert plan_parts("a" * 160, ref_bits=16).count == 1
    assert plan_parts("a" * 161, ref_bits=16).parts == ("a" * 152, "a" * 9)
    assert plan_parts("č" * 71, ref_bits=16).parts == ("č" * 66, "č" * 5)
    with pytest.raises(ValueError):
        plan_parts("a", ref_bits=12)
