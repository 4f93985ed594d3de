"""Smoke runs of every benchmark (`make bench`, `bench-dialogues`, `bench-nlu`, `bench-faq`,
`bench-load`) at tiny sizes: each exits 0 and writes its JSON result with the expected keys
(`bench`, `bench-dialogues` and `bench-load` start the real stack on free ports with a
throw-away database). No assertion on the numbers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.config import ROOT

TIMEOUT = 1200  # starting Rasa on a shared 2-core machine can take minutes


@pytest.fixture(scope="module", autouse=True)
def trained_model() -> None:
    from bot.training import model_path

    if not model_path().exists():
        pytest.fail("no trained model: run the suite through `make test` (it trains first)")


def _run(module: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    full_env.update({"ENV_FILE": os.devnull, **env})
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, (
        f"{module} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
        f"stderr:\n{proc.stderr[-4000:]}")
    match = re.search(r"^written (\S+\.json)$", proc.stdout, re.M)
    assert match, f"no result file reported:\n{proc.stdout[-2000:]}"
    path = ROOT / match.group(1)
    assert path.is_file() and path.parent == ROOT / "bench" / "results"
    return proc, json.loads(Path(path).read_text())


def test_turn_latency_bench_smoke():
    proc, report = _run("bench.turn_latency", BENCH_SERIAL_TURNS="3", BENCH_CONCURRENCY="2",
                        BENCH_TURNS_PER_CUSTOMER="2")
    assert set(report["results"]) == {"serial", "concurrent_2"}
    for mode, res in report["results"].items():
        for who in ("hub", "rasa"):
            stats = res[who]
            assert {"turns", "p50_ms", "p95_ms", "mean_ms", "throughput_per_s",
                    "empty_replies", "error_replies"} <= set(stats), (mode, who, stats)
            assert stats["turns"] == (3 if mode == "serial" else 4)
        assert {"p50_latency_hub_over_rasa", "p95_latency_hub_over_rasa",
                "throughput_hub_over_rasa"} <= set(report["ratios"][mode])
        # CPU per turn of each process on each path (clock ticks: 10 ms granularity)
        cpu = report["cpu_ms_per_turn"][mode]
        assert set(cpu["hub"]) == set(cpu["rasa"]) == {"rasa", "actions", "hub"}, cpu
        assert cpu["hub"]["rasa"] > 0 and cpu["rasa"]["rasa"] > 0, cpu
        assert cpu["hub"]["hub"] > 0, cpu  # the hub path makes the hub work
    assert set(report["memory"]) == {"rasa", "actions", "hub"}
    for name, mem in report["memory"].items():
        assert mem["rss_mb"] > 0, name
    # the reference does the hub path's Rasa work: the same conversation, turn by turn
    # (the survey after "muchas gracias", English buttons for English messages)
    same = report["paths_alike"]
    assert same["turns"] == 10 and same["alike"] == 10, same["warmup"]
    survey = [x["rasa"] for x in same["warmup"] if x["text"] == "muchas gracias"][0]
    assert any("=" in buttons for buttons in survey), same["warmup"]
    assert "both paths hold the same conversation: 10/10" in proc.stdout
    assert "p95 latency" in proc.stdout and "RSS" in proc.stdout
    assert "CPU ms per turn, hub path" in proc.stdout


def test_dialogues_bench_smoke():
    proc, report = _run("bench.dialogues", BENCH_DIALOGUES_LIMIT="2")
    assert report["dialogues"] == 2
    assert {"completed", "completion_rate", "table", "failure_reasons", "results",
            "interjections_in_forms", "max_turns"} <= set(report)
    assert len(report["results"]) == 2
    for r in report["results"]:
        assert {"id", "scenario", "lang", "order", "line", "completed", "reason", "turns",
                "checks", "transcript"} <= set(r)
        assert r["transcript"], r["id"]
        assert not any(t["customer"].lstrip().startswith("/") for t in r["transcript"])
        assert r["completed"] or r["reason"], r["id"]
    assert "overall:" in proc.stdout


def test_dialogue_scripts_cover_every_scenario_in_both_languages():
    """Fast: the scripts load, nobody presses buttons, ≥ 2 customers per scenario and
    language, and the reply classifier recognises the bot's questions in both languages."""
    from collections import Counter

    from bench.dialogues import classify, load_scripts

    dialogues = load_scripts()
    cells = Counter((d.scenario, d.lang) for d in dialogues)
    scenarios = {"warranty", "return", "exchange", "correction", "status", "faq_then_claim",
                 "handoff", "survey"}
    for scenario in scenarios:
        for lang in ("es", "en"):
            assert cells[(scenario, lang)] >= 2, (scenario, lang)
    assert classify("¿Cuál es el número de tu pedido? Está en el correo") == "order_number"
    assert classify("Which product of the order is it?") == "order_line"
    assert classify("Summary before I open the claim:\n• Order: PED-000123") == "summary"
    assert classify("Hecho: tu devolución es la DEV-2026-000001. Próximos pasos") == \
        "case_created"
    assert classify("How likely are you to recommend us to a friend?") == "survey_nps"


def test_nlu_bench_smoke():
    proc, report = _run("bench.nlu_eval", "--limit", "30")
    assert report["splits"] and all(
        {"examples", "accuracy", "macro_f1", "fallback_rate"} <= set(m)
        for m in report["splits"].values())
    assert "macro-F1" in proc.stdout


def test_faq_bench_smoke():
    proc, report = _run("bench.faq_eval", "--no-rasa", "--limit", "40")
    metrics = report["ours"]["metrics"]
    assert any(m["answerable"] for m in metrics.values())
    assert {"top1", "no_answer_rejection", "false_rejection"} <= set(next(iter(
        metrics.values())))
    assert "hybrid (ours)" in proc.stdout


def test_load_bench_smoke():
    """`make bench-load` at a tiny size, default profile only (the scale profile's processes
    are tested in tests/test_scale_profile.py): the counters, latencies and the CPU model."""
    proc, report = _run("bench.load", BENCH_LOAD_CUSTOMERS="4", BENCH_LOAD_SECONDS="12",
                        BENCH_LOAD_PROFILES="default")
    assert set(report["runs"]) == {"default"} and report["problems"] == []
    result = report["runs"]["default"]["result"]
    assert {"messages", "answered", "lost", "duplicated", "reordered", "failed", "empty",
            "p50_ms", "p95_ms", "throughput_per_s", "answers_per_s", "by_channel",
            "served_by"} <= set(result)
    assert result["answered"] > 0 and result["by_channel"]["ws"]["messages"] > 0
    assert result["by_channel"]["rest"]["messages"] > 0
    run = report["runs"]["default"]
    assert run["transcript"]["sent_not_stored"] == 0 and run["cpu_ms_per_turn"]["rasa"] > 0
    assert {"4_cores", "8_cores", "efficiency"} <= set(run["projection"])
    assert report["raised_limits"]["IP_RATE_BURST"] and "IP_RATE_BURST" in proc.stdout
    assert "good answers/s" in proc.stdout and "PASS" in proc.stdout


def test_dashboard_bench_smoke():
    """`make bench-dashboard` at a tiny size: seeds, times the service call and one started
    hub's API (and PostgreSQL when it answers)."""
    proc, report = _run("bench.dashboard", BENCH_DASHBOARD_N="300", BENCH_DASHBOARD_REPEAT="1")
    sqlite = report["backends"]["sqlite"]
    assert sqlite["rows"]["conversations"] == 300 and report["target_ms"] == 300
    assert set(sqlite["service"]) == set(report["views"]) == set(sqlite["http"])
    for view, res in sqlite["service"].items():
        assert {"median_ms", "min_ms", "max_ms", "runs", "conversations_in_period",
                "points"} <= set(res), view
        assert sqlite["http"][view]["server"]["median_ms"] >= 0
    assert "last_30_days_by_day" in proc.stdout
