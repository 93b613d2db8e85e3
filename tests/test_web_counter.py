"""The send form's live counter (static/parts.js, run in headless Chromium) counts
exactly what the server counts (smss.gsm.alphabet.plan_parts and transliterate,
which smss.spooler.validate uses): a fixed corpus of edge cases, then hypothesis."""

from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support_web import chromium

from smss.gsm import alphabet
from smss.web.counter import transliteration_table

STATIC = os.path.join(os.path.dirname(alphabet.__file__), "..", "web", "static")

GSM_DEFAULT = "".join(sorted(ch for ch in alphabet.GSM7_CHARS if len(alphabet.to_septets(ch)) == 1))
GSM_EXTENSION = "^{}\\[~]|€\f"
ODD = ("řŘůŮěĚšŠčČžŽýáíéúťďňĺľŕôäÄ" "Привет" "ąęłńśźż" "ß" "\u00a0\u2019\u201e\u201c\u2013\u2026"
       "😀🎉👍🏽" "e\u0301" "a\u030a" "\u0958" "\u212b" "Ω" "\ufeff" "\u200b" "中文" "\t")


def corpus():
    texts = ["", "a", "a" * 160, "a" * 161, "a" * 306, "a" * 307, "a" * 153 * 10,
             "a" * (153 * 10 + 1), "€" * 80, "€" * 81, "a" * 152 + "€" + "b",
             "a" * 159 + "€", "a" * 160 + "€", "ř" * 70, "ř" * 71, "ř" * 134, "ř" * 135,
             "😀" * 35, "😀" * 36, "a" * 66 + "😀" + "b" * 10, "a" * 69 + "😀",
             "Příliš žluťoučký kůň úpěl ďábelské ódy", "line\r\nbreak\fform",
             GSM_DEFAULT, GSM_EXTENSION * 20, ODD]
    texts += list(GSM_DEFAULT) + list(GSM_EXTENSION) + list(ODD)
    rng = random.Random(2021)
    pool = GSM_DEFAULT + GSM_EXTENSION * 3 + ODD
    for _ in range(300):
        length = rng.choice([5, 70, 150, 160, 161, 200, 400, 1600])
        mostly_gsm = rng.random() < 0.5
        texts.append("".join(rng.choice(GSM_DEFAULT if mostly_gsm and rng.random() < 0.97
                                        else pool) for _ in range(length)))
    return texts


def python_view(text: str, transliterate: bool) -> dict:
    sendable = alphabet.transliterate(text) if transliterate else text
    plan = alphabet.plan_parts(sendable)
    return {"sendable": sendable, "encoding": plan.encoding, "parts": list(plan.parts)}


JS = """([texts, table]) => texts.map(text => {
  const sendable = table ? window.smssParts.transliterate(text, table) : text;
  const plan = window.smssParts.planParts(sendable);
  return {sendable: sendable, encoding: plan.encoding, parts: plan.parts};
})"""


@pytest.fixture(scope="module")
def page():
    with chromium() as browser:
        tab = browser.new_page()
        tab.set_content("<!doctype html><meta charset='utf-8'><title>counter</title>")
        tab.add_script_tag(path=os.path.join(STATIC, "parts.js"))
        yield tab


@pytest.fixture(scope="module")
def table():
    return json.loads(transliteration_table())


@pytest.mark.parametrize("transliterate", [False, True])
def test_the_counter_agrees_with_the_server_on_a_corpus(page, table, transliterate):
    texts = corpus()
    got = page.evaluate(JS, [texts, table if transliterate else None])
    mismatches = [(text, mine, python_view(text, transliterate))
                  for text, mine in zip(texts, got)
                  if mine != python_view(text, transliterate)]
    assert mismatches == []
    counts = {len(python_view(t, transliterate)["parts"]) for t in texts}
    assert {1, 2, 10, 11} <= counts  # the corpus does reach the limits


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(GSM_DEFAULT + GSM_EXTENSION + ODD), max_size=400)
       | st.text(max_size=200), transliterate=st.booleans())
def test_the_counter_agrees_with_the_server_on_any_text(page, table, text, transliterate):
    [got] = page.evaluate(JS, [[text], table if transliterate else None])
    assert got == python_view(text, transliterate)
