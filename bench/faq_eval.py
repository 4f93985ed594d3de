"""FAQ retrieval on the held-out development set, side by side with Rasa's ResponseSelector.

    make bench-faq                 # evaluate (our hybrid search + ResponseSelector baseline)
    python -m bench.faq_eval --calibrate   # re-fit fusion weights/thresholds, write calibration

The dev set (bench/faq_dev.yml) is written independently of the knowledge base. It is split
deterministically in two halves by a hash of each question: weights and thresholds are fitted
on the *calibration* half only, and the *held-out* half gives the honest numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bot.core.config import ROOT
from bot.services.kb.embeddings import Embedder
from bot.services.kb.loader import load_directory, load_unanswerable
from bot.services.kb.search import CALIBRATION_FILE, FaqSearcher, SearchConfig, decide, fuse

DEV = ROOT / "bench" / "faq_dev.yml"
RESULTS = ROOT / "bench" / "results"


def load_dev() -> list[dict]:
    data = yaml.safe_load(DEV.read_text())
    out = []
    for lang in ("es", "en"):
        for item in data[lang]:
            digest = int(hashlib.sha1(item["q"].encode()).hexdigest(), 16)
            half = "calib" if digest % 2 else "holdout"
            out.append({"q": item["q"], "gold": item["faq_id"], "lang": lang, "half": half})
    return out


def metrics(rows: list[dict]) -> dict:
    """rows: {gold, pred (None = rejected)} → top-1, rejection, false rejection."""
    ans = [r for r in rows if r["gold"]]
    una = [r for r in rows if not r["gold"]]
    top1 = sum(r["pred"] == r["gold"] for r in ans) / len(ans) if ans else float("nan")
    fr = sum(r["pred"] is None for r in ans) / len(ans) if ans else float("nan")
    rej = sum(r["pred"] is None for r in una) / len(una) if una else float("nan")
    return {"answerable": len(ans), "unanswerable": len(una), "top1": round(top1, 3),
            "no_answer_rejection": round(rej, 3), "false_rejection": round(fr, 3)}


def _features(searcher: FaqSearcher, dev: list[dict]) -> list[dict]:
    feats = []
    for d in dev:
        index = searcher.indexes[d["lang"]]
        qvec = searcher.embedder.embed_uncached(d["q"])
        sem, ans, lex = index.scores(qvec, d["q"])
        feats.append({**d, "sem": sem, "ans": ans, "lex": lex, "ids": index.ids,
                      "neg": index.negative_similarity(qvec)})
    return feats


def _decide(f: dict, c: SearchConfig, direct: bool = False) -> str | None:
    """The production decision (bot.services.kb.search.decide) on precomputed signals.
    `direct`: count only direct answers (not "did you mean…" suggestions)."""
    total, _ = fuse(c, f["sem"], f["ans"], f["lex"])
    decision, order = decide(c, total, f["sem"], f["neg"])
    if decision == "none" or (direct and decision != "answer"):
        return None
    return f["ids"][order[0]]


def calibrate(feats: list[dict]) -> SearchConfig:
    """Grid search on the calibration half (both languages together: fitting each language
    alone over-fits the smaller halves and did worse on the held-out questions)."""
    calib = [f for f in feats if f["half"] == "calib"]
    best, best_key = SearchConfig(), (-1.0,)
    grid = itertools.product((0.0, 0.15, 0.25, 0.35), (0.0, 0.3), (2.0, 4.0),
                             (-0.02, 0.0, 0.02, 1.0), (0.0, 0.03, 0.06))
    for bw, aw, k, nm, gap in grid:
        for st in np.arange(0.84, 1.12, 0.01):
            cfg = SearchConfig(bm25_weight=bw, answer_weight=aw, bm25_k=k,
                               suggest_threshold=round(float(st), 3),
                               answer_threshold=round(float(st) + gap, 3),
                               answer_margin=0.02, negative_margin=nm)
            m = metrics([{"gold": f["gold"], "pred": _decide(f, cfg)} for f in calib])
            direct = metrics([{"gold": f["gold"], "pred": _decide(f, cfg, True)} for f in calib])
            ok = m["false_rejection"] <= 0.05
            # top-1 and rejection first; then prefer answering directly over suggesting
            key = (ok, round(m["top1"] + m["no_answer_rejection"], 3), direct["top1"])
            if key > best_key:
                best, best_key = cfg, key
    return best


async def _rasa_baseline(entries: list[dict], dev: list[dict]) -> dict:
    """Train Rasa's ResponseSelector on the same KB (questions + titles) and evaluate it,
    with its rejection threshold fitted on the calibration half like ours."""
    work = Path(tempfile.mkdtemp(prefix="faq-rs-"))
    examples = []
    for e in entries:
        texts = [e["content"][lang][k] for lang in ("es", "en") for k in ("title",)]
        texts += [q for lang in ("es", "en") for q in e["content"][lang]["questions"]]
        examples.append({"intent": f"faq/{e['id']}",
                         "examples": "".join(f"- {t}\n" for t in dict.fromkeys(texts))})
    examples.append({"intent": "greet", "examples": "- hola\n- hello\n- buenas\n- hi\n"})
    (work / "data").mkdir()
    (work / "data" / "nlu.yml").write_text(yaml.safe_dump({"version": "3.1", "nlu": examples},
                                                          allow_unicode=True))
    responses = {f"utter_faq/{e['id']}": [{"text": e["content"]["es"]["answer"]}]
                 for e in entries}
    (work / "domain.yml").write_text(yaml.safe_dump(
        {"version": "3.1", "intents": ["faq", "greet"], "responses": responses},
        allow_unicode=True))
    (work / "config.yml").write_text(yaml.safe_dump({
        "recipe": "default.v1", "language": "es", "assistant_id": "faq-baseline",
        "pipeline": [
            {"name": "WhitespaceTokenizer"},
            {"name": "CountVectorsFeaturizer"},
            {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 2,
             "max_ngram": 4},
            {"name": "DIETClassifier", "epochs": 40, "random_seed": 42},
            {"name": "ResponseSelector", "epochs": 60, "retrieval_intent": "faq",
             "random_seed": 42},
        ],
        "policies": []}))
    rasa = Path(sys.executable).with_name("rasa")
    from bot.training import rasa_env

    started = time.monotonic()
    subprocess.run([str(rasa), "train", "nlu", "--config", "config.yml", "--nlu", "data",
                    "--domain", "domain.yml", "--out", "models", "--fixed-model-name", "rs"],
                   cwd=work, env=rasa_env(), check=True, capture_output=True)
    train_seconds = time.monotonic() - started
    from rasa.core.agent import Agent

    agent = Agent.load(str(work / "models" / "rs.tar.gz"))
    preds = []
    for d in dev:
        parsed = await agent.parse_message(d["q"])
        sel = (parsed.get("response_selector") or {}).get("faq", {}).get("response", {})
        key = sel.get("intent_response_key") or ""
        preds.append({**d, "id": key.split("/", 1)[1] if "/" in key else None,
                      "conf": float(sel.get("confidence") or 0.0)})
    shutil.rmtree(work, ignore_errors=True)
    calib = [p for p in preds if p["half"] == "calib"]
    best_t, best = 0.0, -1.0
    for t in np.arange(0.0, 1.0, 0.01):
        m = metrics([{"gold": p["gold"], "pred": p["id"] if p["conf"] >= t else None}
                     for p in calib])
        key = m["top1"] + m["no_answer_rejection"] if m["false_rejection"] <= 0.05 else -1
        if key > best:
            best_t, best = float(t), key
    rows = [{**p, "pred": p["id"] if p["conf"] >= best_t else None} for p in preds]
    return {"train_seconds": round(train_seconds, 1), "threshold": round(best_t, 2),
            "rows": rows}


def _table(rows: list[dict]) -> dict:
    out = {}
    for half in ("holdout", "all"):
        for lang in ("es", "en"):
            sel = [r for r in rows if r["lang"] == lang and (half == "all" or r["half"] == half)]
            out[f"{half}/{lang}"] = metrics(sel)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--no-rasa", action="store_true", help="skip the ResponseSelector run")
    args = parser.parse_args()
    entries = load_directory(ROOT / "knowledge_base")
    dev = load_dev()
    embedder = Embedder()
    started = time.monotonic()
    searcher = FaqSearcher(entries, embedder,
                           negatives=load_unanswerable(ROOT / "knowledge_base"))
    build_seconds = time.monotonic() - started
    embedder.save()
    feats = _features(searcher, dev)
    if args.calibrate:
        joint = calibrate(feats)
        configs = {"es": joint, "en": joint}
    else:
        configs = searcher.configs
    t0 = time.monotonic()
    ours = [{**f, "pred": _decide(f, configs[f["lang"]])} for f in feats]
    direct = [{**f, "pred": _decide(f, configs[f["lang"]], direct=True)} for f in feats]
    per_query_ms = 1000 * (time.monotonic() - t0) / max(1, len(feats))
    report = {"dev_set": str(DEV.relative_to(ROOT)), "entries": len(entries),
              "ours": {"config": {k: c.__dict__ for k, c in configs.items()},
                       "index_build_seconds": round(build_seconds, 2),
                       "metrics": _table(ours), "direct_answers_only": _table(direct)}}
    if args.calibrate:
        CALIBRATION_FILE.write_text(json.dumps(
            {"config": configs["es"].__dict__,
             "fitted_on": "bench/faq_dev.yml (calibration half)",
             "metrics": report["ours"]["metrics"]}, indent=2) + "\n")
        print(f"calibration written to {CALIBRATION_FILE.relative_to(ROOT)}")
    if not args.no_rasa:
        rs = asyncio.run(_rasa_baseline(entries, dev))
        report["rasa_response_selector"] = {"retrain_seconds": rs["train_seconds"],
                                            "threshold": rs["threshold"],
                                            "metrics": _table(rs["rows"])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"faq-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{'system':22} {'split':12} {'top1':>6} {'reject':>7} {'false-rej':>9}")
    systems = [("hybrid (ours)", report["ours"]["metrics"]),
               ("  direct answers only", report["ours"]["direct_answers_only"])]
    if "rasa_response_selector" in report:
        systems.append(("Rasa ResponseSelector", report["rasa_response_selector"]["metrics"]))
    for name, table in systems:
        for split, m in table.items():
            print(f"{name:22} {split:12} {m['top1']:>6.3f} {m['no_answer_rejection']:>7.3f} "
                  f"{m['false_rejection']:>9.3f}")
    print(f"index build {build_seconds:.1f}s (embedding cache warm after the first run); "
          f"decision {per_query_ms:.2f} ms/query after embedding")
    if "rasa_response_selector" in report:
        print(f"ResponseSelector retraining: {report['rasa_response_selector']['retrain_seconds']}s"
              " (needed after every KB edit; ours: none)")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
