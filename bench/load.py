"""`make bench-load`: many simulated customers against the default profile and the scale
profile, counting lost, duplicated, reordered and failed replies, p50/p95 latency and
throughput, and the scale profile's throughput as a ratio of the default one.

Each profile is started here on free ports with throw-away data (bench/load_stacks.py), or
``BENCH_LOAD_URL`` points at a stack that is already running (then only that one is measured).
The customers (bench/load_customers.py) are REST and widget-socket clients mixed, each
pausing 0.5–2 s like a person, going through greeting, FAQ questions in Spanish and English,
a case-status check with identity check, and thanks (bench/load_script.py).

On a small machine both profiles share the same cores, so the ratio measured here is not what
a bigger machine gives: the CPU each process spends per answered message is measured too and
projected to 4 and 8 cores (bench/load_report.py), and the output says what limited the run.

Sizes via env: BENCH_LOAD_CUSTOMERS (200), BENCH_LOAD_SECONDS (180), BENCH_LOAD_WS_SHARE
(0.5), BENCH_LOAD_PROFILES ("default,scale"), BENCH_LOAD_RASA_REPLICAS (2),
BENCH_LOAD_HUB_REPLICAS (2), BENCH_LOAD_ACTION_REPLICAS (2), BENCH_LOAD_RASA_TIMEOUT (the
hub's RASA_TIMEOUT; default as shipped), BENCH_LOAD_SEED, BENCH_LOAD_KEEP_LOGS (1: copy the
processes' logs to bench/results/). The hubs' admission control (RASA_MAX_IN_FLIGHT,
RASA_QUEUE_TIMEOUT) is as shipped unless set in the environment, which the stacks started
here inherit. Writes
bench/results/load-<timestamp>.json; exits 1 when any message was lost, duplicated, reordered
or failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from contextlib import AbstractContextManager, nullcontext

import httpx

from bench import load_report as rep
from bench.load_cpu import CpuMeter, pids_named
from bench.load_customers import run_load
from bench.load_stacks import (
    LOAD_ENV,
    Target,
    case_refs,
    default_target,
    external_target,
    postgres_backends,
    scale_target,
)
from bench.stack_fixture import memory_report, result_path
from bot.core.config import ROOT, Settings

CUSTOMERS = int(os.environ.get("BENCH_LOAD_CUSTOMERS", "200"))
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "180"))
WS_SHARE = float(os.environ.get("BENCH_LOAD_WS_SHARE", "0.5"))
PROFILES = [p.strip() for p in os.environ.get("BENCH_LOAD_PROFILES", "default,scale").split(",")
            if p.strip()]
RASA_REPLICAS = int(os.environ.get("BENCH_LOAD_RASA_REPLICAS", "2"))
HUB_REPLICAS = int(os.environ.get("BENCH_LOAD_HUB_REPLICAS", "2"))
ACTION_REPLICAS = int(os.environ.get("BENCH_LOAD_ACTION_REPLICAS", "2"))
SEED = int(os.environ.get("BENCH_LOAD_SEED", "1"))
EXTERNAL = os.environ.get("BENCH_LOAD_URL", "")


def _target(profile: str) -> AbstractContextManager[Target]:
    if profile == "default":
        return default_target()
    if profile == "scale":
        return scale_target(RASA_REPLICAS, HUB_REPLICAS, ACTION_REPLICAS)
    raise SystemExit(f"BENCH_LOAD_PROFILES: unknown profile {profile!r} (default, scale)")


def _warm_up(url: str) -> None:
    """A few turns on several senders, so every Rasa replica has loaded what a first turn
    loads (its graph, the KB index on the action server) before the clock starts."""
    with httpx.Client(timeout=120) as client:
        for i in range(4 * max(RASA_REPLICAS, 1)):
            sender = f"load-warmup-{i:04d}-{os.getpid()}"
            for text_ in ("hola", "¿cuánto dura la garantía?"):
                client.post(f"{url}/api/messages", json={"sender": sender, "text": text_})


def measure(target: Target) -> dict:
    stack = target.stack
    replicas = {"rasa": 1, "hub": 1, "actions": 1}
    if stack is not None and getattr(stack, "layout", None) is not None:
        replicas = {"rasa": len(stack.layout.rasa_ports), "hub": len(stack.layout.hub_ports),
                    "actions": len(stack.layout.action_ports)}
    cases = case_refs(target.database_url)
    print(f"[{target.profile}] warming up…", flush=True)
    _warm_up(target.url)
    groups = {name: p.pid for name, p in stack.procs.items()} if stack else {}
    shared = {"redis": pids_named("redis-server")} if target.profile == "scale" else {}
    meter = CpuMeter(groups, postgres_backends(target.database_url), shared)
    print(f"[{target.profile}] {CUSTOMERS} customers for {SECONDS:.0f} s "
          f"({WS_SHARE:.0%} on widget sockets) against {target.url}…", flush=True)
    before = meter.snapshot()
    record, plan, wall = asyncio.run(run_load(target.url, CUSTOMERS, SECONDS, WS_SHARE, cases,
                                              seed=SEED))
    cpu = CpuMeter.delta(before, meter.snapshot())
    transcript = rep.transcript_check(target.database_url, plan.run_id, record)
    result = rep.summarize(record, wall)
    run = {"profile": target.profile, "url": target.url, "replicas": replicas,
           "result": result, "transcript": transcript, "cpu_s": cpu,
           "cpu_ms_per_turn": rep.cpu_per_turn(cpu, result["answered"]),
           "memory": memory_report(stack) if stack else None,
           "case_status_questions": bool(cases), "notes": target.notes}
    run["projection"] = rep.projection(run, os.cpu_count() or 1, replicas,
                                       scalable=target.profile != "default")
    return run


def _ratio(runs: dict) -> float | None:
    if "default" in runs and "scale" in runs:
        a = runs["default"]["result"]["throughput_per_s"]
        b = runs["scale"]["result"]["throughput_per_s"]
        return round(b / a, 2) if a else None
    return None


def _projected_ratio(runs: dict, cores: int, sized: bool = False) -> float | None:
    """Scale over default on a machine with ``cores``: the default profile has one Rasa
    server and one hub whatever the machine; the scale profile as measured, or with
    replicas sized to the cores."""
    if "default" in runs and "scale" in runs:
        a = runs["default"]["projection"][f"{cores}_cores"]["projected_turns_per_s"]
        key = f"{cores}_cores_sized" if sized else f"{cores}_cores"
        b = runs["scale"]["projection"][key]["projected_turns_per_s"]
        return round(b / a, 2) if a else None
    return None


def _fmt(v) -> str:
    return "-" if v is None else str(v)


def print_table(report: dict) -> None:
    runs = report["runs"]
    cols = list(runs)
    rows = [("messages", "messages"), ("answered", "answered"), ("lost", "lost"),
            ("duplicated", "duplicated"), ("reordered", "reordered"), ("failed", "failed"),
            ("empty (bot silent)", "empty"), ("resent after 429", "rate_limited_and_resent"),
            ("p50 latency ms", "p50_ms"), ("p95 latency ms", "p95_ms"),
            ("good answers/s", "throughput_per_s"), ("all answers/s", "answers_per_s"),
            ("wall s", "wall_s")]
    print(f"\n{'':22}" + "".join(f"{c:>14}" for c in cols))
    for label, key in rows:
        print(f"{label:22}" + "".join(f"{_fmt(runs[c]['result'][key]):>14}" for c in cols))
    print(f"{'served by':22}" + "".join(
        f"{' '.join(f'{k}:{v}' for k, v in runs[c]['result']['served_by'].items()) or '-':>14}"
        for c in cols))
    print("\nCPU ms per answered message (all replicas of a component together; apologies "
          "count: Rasa did the work, too late):")
    comps = sorted({k for c in cols for k in runs[c]["cpu_ms_per_turn"]})
    print(f"{'':22}" + "".join(f"{c:>14}" for c in cols))
    for comp in comps:
        print(f"{comp:22}" + "".join(
            f"{_fmt(runs[c]['cpu_ms_per_turn'].get(comp)):>14}" for c in cols))
    print(f"{'other work on machine':22}" + "".join(
        f"{round(runs[c]['cpu_s']['other_s'] / max(runs[c]['cpu_s']['wall_s'], 1), 2):>12} c"
        for c in cols))
    print("\nCapacity model (answers/s; a process ≈ one core; efficiency = measured / model "
          "here):")
    for c in cols:
        p = runs[c]["projection"]
        print(f"  {c}: here {p['model_here']['turns_per_s']} (limited by "
              f"{p['model_here']['limited_by']}, {p['cores_free_here']} cores free), "
              f"efficiency {p['efficiency']}; 4 cores → {p['4_cores']['projected_turns_per_s']}"
              f" ({p['4_cores']['limited_by']}), 8 cores → "
              f"{p['8_cores']['projected_turns_per_s']} ({p['8_cores']['limited_by']})")
        for cores in (4, 8):
            sized = p.get(f"{cores}_cores_sized")
            if sized:
                print(f"    {cores} cores with replicas sized to them {sized['replicas']} → "
                      f"{sized['projected_turns_per_s']} ({sized['limited_by']})")
    if report["ratio_scale_over_default"] is not None:
        print(f"\ngood-answer throughput scale/default: x{report['ratio_scale_over_default']} "
              f"measured on "
              f"{report['cpus']} cores (target x1.6); projected with "
              f"{RASA_REPLICAS} Rasa servers: x{report['projected_ratio']['4']} on 4 cores, "
              f"x{report['projected_ratio']['8']} on 8; with replicas sized to the cores: "
              f"x{report['projected_ratio_sized']['4']} on 4, "
              f"x{report['projected_ratio_sized']['8']} on 8")
    problems = report["problems"]
    print("\nresult: " + ("PASS (0 lost, 0 duplicated, 0 reordered, 0 failed)" if not problems
                          else "FAIL: " + ", ".join(problems)))


def _admission() -> dict[str, str]:
    """The hubs' admission control in this run (environment, else as shipped)."""
    return {name: os.environ.get(name) or str(getattr(Settings, name.lower()))
            for name in ("RASA_MAX_IN_FLIGHT", "RASA_QUEUE_TIMEOUT")}


def main() -> int:
    print(f"bench-load: the stacks started here get IP_RATE_BURST={LOAD_ENV['IP_RATE_BURST']} "
          f"and IP_RATE_PER_SECOND={LOAD_ENV['IP_RATE_PER_SECOND']} (all simulated customers "
          "come from 127.0.0.1; the per-sender limit stays as shipped)"
          + (f"; RASA_TIMEOUT={os.environ['BENCH_LOAD_RASA_TIMEOUT']} instead of the shipped 10 s"
             if os.environ.get("BENCH_LOAD_RASA_TIMEOUT") else "")
          + "; admission control " + ", ".join(f"{k}={v}" for k, v in _admission().items()),
          flush=True)
    runs: dict[str, dict] = {}
    profiles = ["external"] if EXTERNAL else PROFILES
    for profile in profiles:
        ctx = nullcontext(external_target(EXTERNAL)) if EXTERNAL else _target(profile)
        with ctx as target:
            runs[profile] = measure(target)
    problems = [f"{profile}: {key} {run['result'][key]}" for profile, run in runs.items()
                for key in ("lost", "duplicated", "reordered", "failed") if run["result"][key]]
    report = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
        "sizes": {"customers": CUSTOMERS, "seconds": SECONDS, "ws_share": WS_SHARE,
                  "rasa_replicas": RASA_REPLICAS, "hub_replicas": HUB_REPLICAS,
                  "seed": SEED},
        "raised_limits": {k: v for k, v in LOAD_ENV.items() if k.startswith("IP_")},
        "rasa_timeout": os.environ.get("BENCH_LOAD_RASA_TIMEOUT") or "as shipped (10 s)",
        "admission": _admission(),
        "definitions": rep.__doc__,
        "runs": runs,
        "ratio_scale_over_default": _ratio(runs),
        "projected_ratio": {str(c): _projected_ratio(runs, c) for c in (4, 8)},
        "projected_ratio_sized": {str(c): _projected_ratio(runs, c, sized=True)
                                  for c in (4, 8)},
        "problems": problems,
    }
    out = result_path("load")
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    print_table(report)
    print(f"written {out.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
