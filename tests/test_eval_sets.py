"""The evaluation sets stay honest: frozen, big enough, and never trained on."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import yaml

from bench.sets import FROZEN, digest_lines, faq_rows, intent_rows, split_of
from bot.core.config import ROOT

CONTRACT_INTENTS = {"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge",
                    "out_of_scope", "request_human", "complain", "ask_faq",
                    "open_warranty_claim", "open_return", "check_case_status", "inform"}


def norm(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\](?:\([^)]+\)|\{[^}]+\})", r"\1", text)
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def training_texts() -> set[str]:
    out = set()
    for path in (ROOT / "data" / "nlu").glob("*.yml"):
        for line in path.read_text().splitlines():
            if m := re.match(r"^\s+- (.+)$", line):
                out.add(norm(m.group(1)))
    return out


def kb_questions() -> set[str]:
    out = set()
    for path in (ROOT / "knowledge_base").glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        for lang in ("es", "en"):
            block = data[lang]
            items = block if isinstance(block, list) else [block["title"], *block["questions"]]
            out |= {norm(q) for q in items}
    return out


def test_persona_sets_are_frozen():
    """Editing an evaluation file (to make a number look better) must be a visible act."""
    assert FROZEN.read_text() == digest_lines()


def test_intent_set_is_big_enough_and_never_trained_on():
    rows = [r for r in intent_rows() if r["source"] == "persona"]
    counts = Counter((r["lang"], r["intent"]) for r in rows)
    for lang in ("es", "en"):
        for intent in CONTRACT_INTENTS:
            assert counts[(lang, intent)] >= 20, (lang, intent, counts[(lang, intent)])
    train = training_texts()
    overlap = [r["text"] for r in rows if norm(r["text"]) in train]
    assert not overlap, overlap


def test_faq_set_is_big_enough_and_not_in_the_kb():
    rows = [r for r in faq_rows() if r["source"] == "persona"]
    counts = Counter((r["lang"], r["gold"]) for r in rows)
    ids = {p.stem for p in (ROOT / "knowledge_base").glob("*.yml")
           if not p.stem.startswith("_")}
    for lang in ("es", "en"):
        for faq_id in ids:
            assert counts[(lang, faq_id)] >= 20, (lang, faq_id)
    assert counts[("es", None)] + counts[("en", None)] >= 60
    known = kb_questions() | training_texts()
    overlap = [r["q"] for r in rows if norm(r["q"]) in known]
    assert not overlap, overlap


def test_split_is_stable_and_roughly_half():
    rows = [r for r in faq_rows() if r["source"] == "persona"]
    held = sum(r["split"] == "heldout" for r in rows) / len(rows)
    assert 0.4 < held < 0.6
    assert split_of("¿cuánto tarda el reembolso?") == split_of("¿cuánto tarda el reembolso?")


def test_second_dev_sets_are_dev_only_and_never_trained_on():
    """bench/dev/: fitted on (never reported as held-out), and like every evaluation row
    never in the training data or the KB's example questions."""
    intents = [r for r in intent_rows() if r["source"] == "persona2"]
    faqs = [r for r in faq_rows() if r["source"] == "persona2"]
    assert intents and faqs
    assert {r["split"] for r in intents + faqs} == {"dev"}
    assert {r["intent"] for r in intents} <= set(CONTRACT_INTENTS)
    ids = {p.stem for p in (ROOT / "knowledge_base").glob("*.yml")
           if not p.stem.startswith("_")}
    assert {r["gold"] for r in faqs} - {None} <= ids
    known = kb_questions() | training_texts()
    overlap = [r["q"] for r in faqs if norm(r["q"]) in known]
    overlap += [r["text"] for r in intents if norm(r["text"]) in training_texts()]
    assert not overlap, overlap
