"""Turn latency and throughput through the hub vs bare Rasa REST, same model, same run.

`make bench` starts the real stack on free ports with a throw-away database, then sends the
same customer messages (a) through the hub's `POST /api/messages` and (b) straight to Rasa's
REST webhook, serially and with 20 concurrent customers. Writes
bench/results/turns-<timestamp>.json and prints the hub/Rasa ratios (p50 and p95 latency,
throughput), the CPU time each process spent per turn on each path (on 2 cores, concurrent
throughput is bounded by the total), and the memory of each process.

The message mix is hand-off-free (a conversation handed to a person gets no bot reply, which
would measure nothing) and includes FAQ questions (knowledge-base search on the action
server). Each simulated customer starts a fresh conversation after one pass over the mix,
and again if the bot ever goes silent (e.g. it escalated after misunderstanding twice):
such empty replies are counted in the report, not fatal, and so are the hub's
"technical problem" apologies (Rasa failed or exceeded RASA_TIMEOUT under load).

Sizes via env: BENCH_SERIAL_TURNS (60), BENCH_CONCURRENCY (20), BENCH_TURNS_PER_CUSTOMER (10).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import statistics
import time
import uuid

import httpx

from bench.stack_fixture import bench_stack, cpu_report, memory_report, result_path
from bot.core.config import ROOT

MESSAGES = [
    "hola", "¿eres un robot?", "¿cuánto tardáis en devolverme el dinero de una devolución?",
    "muchas gracias", "hello there", "are you a bot?",
    "how long is the warranty on a washing machine?", "thanks a lot", "what can you do?",
    "¿qué puedes hacer?",
]
# the hub's apology when Rasa failed or timed out (bot/hub/texts.py "unavailable"), or its
# "we're busy" when a turn waited RASA_QUEUE_TIMEOUT in line for Rasa ("busy")
UNAVAILABLE = re.compile(r"problema técnico|technical problem|atendiendo a muchas personas|"
                         r"helping a lot of people", re.I)
SERIAL_TURNS = int(os.environ.get("BENCH_SERIAL_TURNS", "60"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "20"))
TURNS_PER_CUSTOMER = int(os.environ.get("BENCH_TURNS_PER_CUSTOMER", "10"))


def _sender() -> str:
    return f"bench-{uuid.uuid4().hex}"


def _hub_turn(client: httpx.Client, url: str, sender: str, text: str) -> str:
    """One turn through the hub: "ok", "empty" (no bot reply) or "error" (the hub's
    technical-problem apology: Rasa failed or timed out)."""
    r = client.post(f"{url}/api/messages", json={"sender": sender, "text": text})
    r.raise_for_status()
    messages = r.json()["messages"]
    if not messages:
        return "empty"
    if any(UNAVAILABLE.search(m.get("text") or "") for m in messages):
        return "error"
    return "ok"


def _rasa_turn(client: httpx.Client, url: str, sender: str, text: str) -> str:
    r = client.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text})
    r.raise_for_status()
    return "ok" if r.json() else "empty"


class _Customer:
    """Walks the message mix; a fresh conversation per pass and after a silent reply."""

    def __init__(self, fn, url: str, timeout: float):
        self.fn, self.url = fn, url
        self.client = httpx.Client(timeout=timeout)
        self.sender, self.i, self.empty, self.errors = _sender(), 0, 0, 0
        self.samples: list[float] = []

    def turn(self) -> float:
        if self.i and self.i % len(MESSAGES) == 0:
            self.sender = _sender()
        text = MESSAGES[self.i % len(MESSAGES)]
        self.i += 1
        t = time.perf_counter()
        outcome = self.fn(self.client, self.url, self.sender, text)
        elapsed = time.perf_counter() - t
        if outcome == "empty":
            self.empty += 1
            self.sender = _sender()
        elif outcome == "error":
            self.errors += 1
        return elapsed


def _pct(s: list[float], q: float) -> float:
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _stats(samples: list[float], wall: float, empty: int, errors: int) -> dict:
    s = sorted(samples)
    return {
        "turns": len(s),
        "p50_ms": round(1000 * statistics.median(s), 1),
        "p95_ms": round(1000 * _pct(s, 0.95), 1),
        "mean_ms": round(1000 * statistics.fmean(s), 1),
        "throughput_per_s": round(len(s) / wall, 1),
        "empty_replies": empty,
        "error_replies": errors,
    }


def _serial(fn, url: str) -> dict:
    customer = _Customer(fn, url, timeout=30)
    started = time.perf_counter()
    samples = [customer.turn() for _ in range(SERIAL_TURNS)]
    return _stats(samples, time.perf_counter() - started, customer.empty, customer.errors)


def _concurrent(fn, url: str) -> dict:
    def run(_: int) -> _Customer:
        customer = _Customer(fn, url, timeout=60)
        customer.samples = [customer.turn() for _ in range(TURNS_PER_CUSTOMER)]
        return customer

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(CONCURRENCY) as pool:
        customers = list(pool.map(run, range(CONCURRENCY)))
    samples = [x for c in customers for x in c.samples]
    return _stats(samples, time.perf_counter() - started, sum(c.empty for c in customers),
                  sum(c.errors for c in customers))


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


# What is measured is the hub's cost per turn, not its rate limiter: all simulated customers
# come from 127.0.0.1 and send faster than a person types, so the limits are lifted here.
UNLIMITED = {"IP_RATE_BURST": "1000000", "IP_RATE_PER_SECOND": "1000000",
             "WIDGET_RATE_BURST": "1000000", "WIDGET_RATE_PER_SECOND": "1000000"}


def main() -> None:
    with bench_stack(extra_env=UNLIMITED) as bs:
        warm = httpx.Client(timeout=30)
        for text in MESSAGES:  # warm both paths (model graph, KB index, DB connections)
            _hub_turn(warm, bs.hub_url, "bench-warmup-hub-0001", text)
            _rasa_turn(warm, bs.rasa_url, "bench-warmup-rasa-001", text)
        memory_warm = memory_report(bs.stack)
        results: dict[str, dict[str, dict]] = {}
        cpu: dict[str, dict[str, dict[str, float]]] = {}
        for mode, run in (("serial", _serial), (f"concurrent_{CONCURRENCY}", _concurrent)):
            for who, fn, url in (("hub", _hub_turn, bs.hub_url),
                                 ("rasa", _rasa_turn, bs.rasa_url)):
                before = cpu_report(bs.stack)
                results.setdefault(mode, {})[who] = stats = run(fn, url)
                after = cpu_report(bs.stack)
                cpu.setdefault(mode, {})[who] = {
                    name: round(1000 * (after[name] - before.get(name, 0.0))
                                / max(1, stats["turns"]), 1) for name in after}
        memory = memory_report(bs.stack)
    for name, m in memory.items():
        m["rss_after_warmup_mb"] = memory_warm.get(name, {}).get("rss_mb")
    ratios = {
        mode: {
            "p50_latency_hub_over_rasa": _ratio(r["hub"]["p50_ms"], r["rasa"]["p50_ms"]),
            "p95_latency_hub_over_rasa": _ratio(r["hub"]["p95_ms"], r["rasa"]["p95_ms"]),
            "throughput_hub_over_rasa": _ratio(r["hub"]["throughput_per_s"],
                                               r["rasa"]["throughput_per_s"]),
        }
        for mode, r in results.items()
    }
    report = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
              "messages": MESSAGES,
              "sizes": {"serial_turns": SERIAL_TURNS, "concurrency": CONCURRENCY,
                        "turns_per_customer": TURNS_PER_CUSTOMER},
              "results": results, "ratios": ratios, "cpu_ms_per_turn": cpu, "memory": memory,
              "rss_mb": {name: m["rss_mb"] for name, m in memory.items()}}
    out = result_path("turns")
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    for mode, r in results.items():
        print(f"{mode}:")
        for who in ("hub", "rasa"):
            x = r[who]
            print(f"  {who:5} p50 {x['p50_ms']:7.1f} ms  p95 {x['p95_ms']:7.1f} ms  "
                  f"{x['throughput_per_s']:6.1f} turns/s  ({x['turns']} turns, "
                  f"{x['empty_replies']} empty, {x['error_replies']} technical-problem "
                  "replies)")
        rt = ratios[mode]
        print(f"  ratio hub/rasa: p50 latency x{rt['p50_latency_hub_over_rasa']}, "
              f"p95 latency x{rt['p95_latency_hub_over_rasa']}, "
              f"throughput x{rt['throughput_hub_over_rasa']}")
        for who in ("hub", "rasa"):
            used = cpu[mode][who]
            print(f"  CPU ms per turn, {who} path: " + ", ".join(
                f"{name} {ms:.1f}" for name, ms in used.items())
                  + f" (total {sum(used.values()):.1f})")
    print("memory (MB):")
    for name, m in memory.items():
        print(f"  {name:8} RSS {m['rss_mb']:7.1f} (after warm-up {m['rss_after_warmup_mb']}, "
              f"peak {m['peak_rss_mb']:.1f})")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
