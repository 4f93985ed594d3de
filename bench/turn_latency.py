"""Turn latency and throughput through the hub vs bare Rasa REST, same model, same run.

`make bench` starts the real stack on free ports with a throw-away database, then sends the
same customer messages (a) through the hub's `POST /api/messages` and (b) straight to Rasa's
REST webhook, serially and with 20 concurrent customers. Writes
bench/results/turns-<timestamp>.json and prints the hub/Rasa ratios.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bot.core.config import ROOT, Settings
from bot.stack import Stack, free_port

RESULTS = ROOT / "bench" / "results"
MESSAGES = [
    "hola", "¿eres un robot?", "muchas gracias", "hello there", "are you a bot?",
    "quiero hablar con una persona", "thanks a lot", "adiós", "what can you do?", "bye",
]
SERIAL_TURNS = int(os.environ.get("BENCH_SERIAL_TURNS", "60"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "20"))
TURNS_PER_CUSTOMER = int(os.environ.get("BENCH_TURNS_PER_CUSTOMER", "10"))


def _hub_turn(client: httpx.Client, url: str, sender: str, text: str) -> None:
    r = client.post(f"{url}/api/messages", json={"sender": sender, "text": text})
    r.raise_for_status()
    assert r.json()["messages"], "empty reply"


def _rasa_turn(client: httpx.Client, url: str, sender: str, text: str) -> None:
    r = client.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text})
    r.raise_for_status()
    assert r.json(), "empty reply"


def _stats(samples: list[float], wall: float) -> dict:
    s = sorted(samples)
    return {
        "turns": len(s),
        "p50_ms": round(1000 * statistics.median(s), 1),
        "p95_ms": round(1000 * s[int(0.95 * (len(s) - 1))], 1),
        "mean_ms": round(1000 * statistics.fmean(s), 1),
        "throughput_per_s": round(len(s) / wall, 1),
    }


def _serial(fn, url: str) -> dict:
    client = httpx.Client(timeout=30)
    sender = f"bench-{uuid.uuid4().hex}"
    samples = []
    started = time.perf_counter()
    for i in range(SERIAL_TURNS):
        t = time.perf_counter()
        fn(client, url, sender, MESSAGES[i % len(MESSAGES)])
        samples.append(time.perf_counter() - t)
    return _stats(samples, time.perf_counter() - started)


def _concurrent(fn, url: str) -> dict:
    def customer(_: int) -> list[float]:
        client = httpx.Client(timeout=60)
        sender = f"bench-{uuid.uuid4().hex}"
        out = []
        for i in range(TURNS_PER_CUSTOMER):
            t = time.perf_counter()
            fn(client, url, sender, MESSAGES[i % len(MESSAGES)])
            out.append(time.perf_counter() - t)
        return out

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(CONCURRENCY) as pool:
        samples = [x for chunk in pool.map(customer, range(CONCURRENCY)) for x in chunk]
    return _stats(samples, time.perf_counter() - started)


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (process group), in MB."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != pid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return round(total / 1024, 1)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="postventa-bench-"))
    settings = Settings(database_url=f"sqlite:///{work / 'bench.db'}",
                        rasa_token=secrets.token_urlsafe(16), hub_port=free_port(),
                        rasa_tracker_url=f"sqlite:///{work / 'tracker.db'}")
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ENV_FILE": os.devnull}
    subprocess.run([sys.executable, "-m", "bot", "setup"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    stack = Stack(settings, rasa_port=free_port(), action_port=free_port(),
                  log_dir=work / "logs", extra_env={"ENV_FILE": os.devnull})
    stack.start()
    try:
        stack.wait_healthy(timeout=240)
        warm = httpx.Client(timeout=30)
        for text in MESSAGES:  # warm both paths (model graph, DB connections)
            _hub_turn(warm, stack.hub_url, "bench-warmup-hub-0001", text)
            _rasa_turn(warm, stack.rasa_url, "bench-warmup-rasa-001", text)
        results = {
            "serial": {"hub": _serial(_hub_turn, stack.hub_url),
                       "rasa": _serial(_rasa_turn, stack.rasa_url)},
            f"concurrent_{CONCURRENCY}": {"hub": _concurrent(_hub_turn, stack.hub_url),
                                          "rasa": _concurrent(_rasa_turn, stack.rasa_url)},
        }
        memory = {name: _rss_mb(p.pid) for name, p in stack.procs.items()}
    finally:
        stack.stop()
    ratios = {
        mode: {
            "p50_latency_hub_over_rasa": round(r["hub"]["p50_ms"] / r["rasa"]["p50_ms"], 2),
            "throughput_hub_over_rasa": round(
                r["hub"]["throughput_per_s"] / r["rasa"]["throughput_per_s"], 2),
        }
        for mode, r in results.items()
    }
    report = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
              "results": results, "ratios": ratios, "rss_mb": memory}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"turns-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    for mode, r in results.items():
        print(f"{mode}:")
        for who in ("hub", "rasa"):
            x = r[who]
            print(f"  {who:5} p50 {x['p50_ms']:7.1f} ms  p95 {x['p95_ms']:7.1f} ms  "
                  f"{x['throughput_per_s']:6.1f} turns/s")
        print(f"  ratio hub/rasa: p50 latency x{ratios[mode]['p50_latency_hub_over_rasa']}, "
              f"throughput x{ratios[mode]['throughput_hub_over_rasa']}")
    print(f"memory (RSS MB): {memory}")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
