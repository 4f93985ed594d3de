"""Intent classification on the frozen evaluation sets, per language: accuracy and macro-F1
over the 14 contract intents, held-out and dev reported separately.

`make bench-nlu` → prints a table and writes bench/results/nlu-<timestamp>.json.
Rows come from ``bench/sets.py`` (the team's first dev set and the persona-written set,
whose held-out half is never used to tune anything). No row is in the training data
(tests/test_eval_sets.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter, defaultdict

from bench.sets import intent_rows
from bot.core.config import ROOT
from bot.training import model_path

RESULTS = ROOT / "bench" / "results"
CONTRACT_INTENTS = ("greet", "goodbye", "thank", "affirm", "deny", "bot_challenge",
                    "out_of_scope", "request_human", "complain", "ask_faq",
                    "open_warranty_claim", "open_return", "check_case_status", "inform")


async def _parse_all(texts: list[str]) -> list[dict]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path()))
    return [await agent.parse_message(t) for t in texts]


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    """Mean F1 over the contract intents (a prediction of another intent or nlu_fallback
    counts as a miss for the gold intent)."""
    scores = []
    for intent in CONTRACT_INTENTS:
        tp = sum(g == intent and p == intent for g, p in pairs)
        fp = sum(g != intent and p == intent for g, p in pairs)
        fn = sum(g == intent and p != intent for g, p in pairs)
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else float("nan")


def summarise(rows: list[dict]) -> dict:
    pairs = [(r["intent"], r["pred"]) for r in rows]
    return {"examples": len(rows),
            "accuracy": round(sum(g == p for g, p in pairs) / max(1, len(pairs)), 3),
            "macro_f1": round(macro_f1(pairs), 3),
            "fallback_rate": round(sum(p == "nlu_fallback" for _, p in pairs)
                                   / max(1, len(pairs)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=0, help="first N rows only (smoke run)")
    args = parser.parse_args()
    rows = intent_rows()
    if args.limit:
        rows = rows[:args.limit // 2] + rows[-(args.limit - args.limit // 2):]
    started = time.monotonic()
    parsed = asyncio.run(_parse_all([r["text"] for r in rows]))
    elapsed = time.monotonic() - started
    for r, p in zip(rows, parsed, strict=True):
        r["pred"] = p["intent"]["name"]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        name = "heldout" if r["split"] == "heldout" else (
            {"persona": "dev-persona", "persona2": "dev-persona2"}.get(r["source"], "dev-team"))
        groups[f"{name}/{r['lang']}"].append(r)
    confusions = Counter((r["intent"], r["pred"]) for r in rows
                         if r["split"] == "dev" and r["intent"] != r["pred"])
    report = {
        "model": model_path().name,
        "sets": "bench/nlu_dev.yml + bench/eval/intents.yml (bench/sets.py)",
        "splits": {k: summarise(v) for k, v in sorted(groups.items())},
        "top_confusions_dev": [{"gold": g, "predicted": p, "count": n}
                               for (g, p), n in confusions.most_common(15)],
        "seconds": round(elapsed, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"nlu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{'split':16} {'n':>5} {'accuracy':>9} {'macro-F1':>9} {'fallback':>9}")
    for split, m in report["splits"].items():
        print(f"{split:16} {m['examples']:>5} {m['accuracy']:>9.3f} {m['macro_f1']:>9.3f} "
              f"{m['fallback_rate']:>9.3f}")
    print("top confusions on the dev rows (gold → predicted):")
    for c in report["top_confusions_dev"]:
        print(f"  {c['gold']} → {c['predicted']}: {c['count']}")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
