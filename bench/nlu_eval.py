"""Intent accuracy of the trained model on the held-out development set, per language.

`make bench-nlu` → prints a table and writes bench/results/nlu-<timestamp>.json.
The dev set (bench/nlu_dev.yml) is never trained on; tests check there is no overlap.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from bot.core.config import ROOT
from bot.training import model_path

DEV = ROOT / "bench" / "nlu_dev.yml"
RESULTS = ROOT / "bench" / "results"
_ANNOT = re.compile(r"\[([^\]]+)\](?:\([^)]+\)|\{[^}]+\})")


def load_dev(path: Path = DEV) -> list[tuple[str, str, str]]:
    """(language, intent, text) triples, language from the `# es` / `# en` markers."""
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


async def _parse_all(texts: list[str]) -> list[dict]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path()))
    return [await agent.parse_message(t) for t in texts]


def main() -> None:
    dev = load_dev()
    started = time.monotonic()
    parsed = asyncio.run(_parse_all([t for _, _, t in dev]))
    elapsed = time.monotonic() - started
    per_lang: dict[str, Counter] = defaultdict(Counter)
    confusions: Counter = Counter()
    for (lang, gold, _text), p in zip(dev, parsed, strict=True):
        pred = p["intent"]["name"]
        per_lang[lang]["n"] += 1
        per_lang[lang]["correct"] += pred == gold
        per_lang[lang]["fallback"] += pred == "nlu_fallback"
        if pred != gold:
            confusions[(gold, pred)] += 1
    report = {
        "model": model_path().name,
        "dev_set": str(DEV.relative_to(ROOT)),
        "languages": {
            lang: {"examples": c["n"], "accuracy": round(c["correct"] / c["n"], 3),
                   "fallback_rate": round(c["fallback"] / c["n"], 3)}
            for lang, c in sorted(per_lang.items())
        },
        "top_confusions": [{"gold": g, "predicted": p, "count": n}
                           for (g, p), n in confusions.most_common(15)],
        "seconds": round(elapsed, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"nlu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{'lang':5} {'examples':>8} {'accuracy':>9} {'fallback':>9}")
    for lang, r in report["languages"].items():
        print(f"{lang:5} {r['examples']:>8} {r['accuracy']:>9.3f} {r['fallback_rate']:>9.3f}")
    print("top confusions (gold → predicted):")
    for c in report["top_confusions"]:
        print(f"  {c['gold']} → {c['predicted']}: {c['count']}")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
