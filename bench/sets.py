"""The evaluation sets and their frozen split.

Two kinds of sets:

- ``bench/faq_dev.yml`` and ``bench/nlu_dev.yml``: the first development sets. They were
  written by the team in the style of the training data and have been tuned on: **dev** only.
- ``bench/dev/*.yml``: a second persona-written set (FAQ answers and intent definitions
  only were shown to its writers), all **dev**: written after the held-out half had been
  reported, to have dev rows the thresholds were not yet fitted on.
- ``bench/eval/*.yml``: written later from personas by people who saw neither the KB example
  questions nor the NLU data (a retired woman in Seville, a student in Mexico City, an
  expat in Valencia…). Each message is assigned for good, by a hash of its text, to
  **dev** (may be used to fit thresholds, by cross-validation) or **heldout** (never used to
  tune anything; the README reports it). ``FROZEN.sha256`` pins the files: a test fails if
  they change, so the held-out numbers cannot be improved by editing the test.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from bot.core.config import ROOT

EVAL_DIR = ROOT / "bench" / "eval"
# Written later, again from personas and without the training data: dev only, for fitting.
MORE_DEV_DIR = ROOT / "bench" / "dev"
FROZEN = EVAL_DIR / "FROZEN.sha256"
LEGACY_FAQ = ROOT / "bench" / "faq_dev.yml"
LEGACY_NLU = ROOT / "bench" / "nlu_dev.yml"
HELDOUT_SHARE = 0.5


_ANNOT = re.compile(r"\[([^\]]+)\](?:\([^)]+\)|\{[^}]+\})")


def load_legacy_nlu(path: Path = LEGACY_NLU) -> list[tuple[str, str, str]]:
    """(language, intent, text) triples of a Rasa-format file with `# es` / `# en` markers."""
    out, lang, intent, in_block = [], None, None, False
    for line in path.read_text().splitlines():
        if m := re.match(r"^\s*#\s*(es|en)\s*$", line):
            lang, in_block = m.group(1), False
        elif m := re.match(r"^\s*- intent:\s*(\S+)", line):
            intent, in_block = m.group(1), False
        elif re.match(r"^\s*examples:\s*\|", line):
            in_block = True
        elif in_block and (m := re.match(r"^\s+- (.+)$", line)):
            out.append((lang, intent, _ANNOT.sub(r"\1", m.group(1)).strip()))
    return out


def split_of(text: str) -> str:
    """dev | heldout, fixed forever by the text itself."""
    digest = int(hashlib.sha256(text.strip().encode()).hexdigest()[:8], 16)
    return "heldout" if digest % 1000 < HELDOUT_SHARE * 1000 else "dev"


def fold_of(text: str, k: int) -> int:
    """Cross-validation fold of a dev example."""
    return int(hashlib.sha1(text.strip().encode()).hexdigest()[:8], 16) % k


def faq_rows() -> list[dict]:
    """Every FAQ evaluation question: q, gold (faq id or None), lang, source, split."""
    rows = []
    legacy = yaml.safe_load(LEGACY_FAQ.read_text())
    for lang in ("es", "en"):
        for item in legacy[lang]:
            rows.append({"q": item["q"], "gold": item["faq_id"], "lang": lang,
                         "source": "team", "split": "dev"})
    for lang in ("es", "en"):
        data = yaml.safe_load((EVAL_DIR / f"faq_{lang}.yml").read_text())
        for item in data[lang]:
            rows.append({"q": item["q"], "gold": item["faq_id"], "lang": lang,
                         "source": "persona", "persona": item.get("persona"),
                         "split": split_of(item["q"])})
    for lang in ("es", "en"):
        path = MORE_DEV_DIR / f"faq_more_{lang}.yml"
        if path.exists():
            for item in yaml.safe_load(path.read_text())[lang]:
                rows.append({"q": item["q"], "gold": item["faq_id"], "lang": lang,
                             "source": "persona2", "persona": item.get("persona"),
                             "split": "dev"})
    return rows


def intent_rows() -> list[dict]:
    """Every intent evaluation message: text, intent, lang, source, split."""
    rows = [{"text": t, "intent": i, "lang": lang, "source": "team", "split": "dev"}
            for lang, i, t in load_legacy_nlu(LEGACY_NLU)]
    data = yaml.safe_load((EVAL_DIR / "intents.yml").read_text())
    for lang in ("es", "en"):
        for item in data[lang]:
            rows.append({"text": item["text"], "intent": item["intent"], "lang": lang,
                         "source": "persona", "persona": item.get("persona"),
                         "split": split_of(item["text"])})
    more = MORE_DEV_DIR / "intents_more.yml"
    if more.exists():
        data = yaml.safe_load(more.read_text())
        rows += [{"text": item["text"], "intent": item["intent"], "lang": lang,
                  "source": "persona2", "persona": item.get("persona"), "split": "dev"}
                 for lang in ("es", "en") for item in data[lang]]
    return rows


def eval_files() -> list[Path]:
    return sorted(EVAL_DIR.glob("*.yml"))


def digest_lines() -> str:
    return "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                   for p in eval_files())
