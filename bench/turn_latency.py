"""Turn latency and throughput through the hub vs bare Rasa REST, same model, same run.

`make bench` starts the real stack on free ports with a throw-away database, then sends the
same customer messages (a) through the hub's `POST /api/messages` and (b) straight to Rasa's
REST webhook, serially and with 20 concurrent customers. Writes
bench/results/turns-<timestamp>.json and prints the hub/Rasa ratios (p50 and p95 latency,
throughput), the CPU time each process spent per turn on each path (on 2 cores, concurrent
throughput is bounded by the total), and the memory of each process.

Both paths hold the same conversation: the reference sends Rasa what the hub would (the
conversation id of a row of its own in the bench database, the customer's language, the
session start and ``language`` slot in the message metadata), prepared before its clock
starts. Without that, the reference skipped the closing survey (actions find no
conversation) and answered English in Spanish: less work for Rasa than the hub path asks.

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
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

from bench.stack_fixture import bench_stack, cpu_report, memory_report, result_path
from bot.core.config import ROOT
from bot.db.session import session_scope
from bot.hub.rasa_client import turn_events
from bot.rasa_entry import HUB_EVENTS_KEY
from bot.services import conversations as convs
from bot.services import language

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
SERIAL_TURNS = int(os.environ.get("BENCH_SERIAL_TURNS", "80"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "20"))
TURNS_PER_CUSTOMER = int(os.environ.get("BENCH_TURNS_PER_CUSTOMER", "20"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "4")))


def _sender() -> str:
    return f"bench-{uuid.uuid4().hex}"


def _hub_turn(client: httpx.Client, url: str, sender: str, text: str,
              prepared: dict | None = None) -> str:
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


class RasaReference:
    """Bare Rasa REST doing the hub path's Rasa work, minus the hub: per sender it keeps what
    the hub keeps (conversation row, language, whether the Rasa session was started) and
    builds the same metadata, in ``prepare``, which is not timed."""

    def __init__(self, url: str, database_url: str) -> None:
        self.url, self.database_url = url, database_url
        self.state: dict[str, dict] = {}
        self.lock = threading.Lock()

    def prepare(self, sender: str, text: str) -> dict:
        with self.lock:
            st = self.state.get(sender)
            if st is None:
                with session_scope(self.database_url) as session:
                    conv = convs.open_or_continue(session, sender=sender, channel="api",
                                                  idle_timeout=3600,
                                                  default_language="es").conversation
                    session.flush()
                    st = self.state[sender] = {
                        "conv": conv.id, "language": conv.language,
                        "source": conv.language_source, "rasa_language": None, "new": True}
        d = language.decide(text=text, locale=None, previous=st["language"],
                            previous_source=st["source"], default="es")
        st["language"], st["source"] = d.language, d.source
        events = turn_events(st["new"], {"language": d.language}
                             if st["rasa_language"] != d.language else {})
        st["new"], st["rasa_language"] = False, d.language
        metadata = {"channel": "api", "language": d.language, "locale": None,
                    "conversation_id": st["conv"], "customer_id": None}
        if events:
            metadata[HUB_EVENTS_KEY] = events
        return {"sender": sender, "message": text, "metadata": metadata}

    def turn(self, client: httpx.Client, url: str, sender: str, text: str,
             prepared: dict | None = None) -> str:
        body = prepared or self.prepare(sender, text)
        r = client.post(f"{url}/webhooks/rest/webhook", json=body)
        r.raise_for_status()
        return "ok" if r.json() else "empty"


def _shape(messages: list[dict]) -> list[str]:
    """What a turn's replies offer, without the wording (responses have variants): one entry
    per visible message, its buttons' titles and payloads (the titles are in the reply
    language)."""
    return ["|".join(f"{b.get('title')}={b.get('payload')}" for b in m.get("buttons") or [])
            for m in messages if m.get("text") or m.get("buttons") or m.get("image")]


class _Customer:
    """Walks the message mix; a fresh conversation per pass and after a silent reply."""

    def __init__(self, fn, url: str, timeout: float, prepare=None):
        self.fn, self.url, self.prepare = fn, url, prepare
        self.client = httpx.Client(timeout=timeout)
        self.sender, self.i, self.empty, self.errors = _sender(), 0, 0, 0
        self.samples: list[float] = []

    def turn(self) -> float:
        if self.i and self.i % len(MESSAGES) == 0:
            self.sender = _sender()
        text = MESSAGES[self.i % len(MESSAGES)]
        self.i += 1
        prepared = self.prepare(self.sender, text) if self.prepare else None
        t = time.perf_counter()
        outcome = self.fn(self.client, self.url, self.sender, text, prepared)
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


@dataclass
class _Tally:
    """One path's turns in one mode, summed over the rounds."""

    samples: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process
    round_throughputs: list[float] = field(default_factory=list)

    def stats(self, customers: list[_Customer]) -> dict:
        return _stats(self.samples, self.wall, sum(c.empty for c in customers),
                      sum(c.errors for c in customers))


def _share(total: int, rounds: int, r: int) -> int:
    """Round ``r``'s part of ``total`` turns (the first rounds take the remainder)."""
    base, extra = divmod(total, rounds)
    return base + (1 if r < extra else 0)


def _round(customers: list[_Customer], turns_each: int, tally: _Tally) -> None:
    """Every customer takes ``turns_each`` more turns, all at once (one customer: serial)."""
    def run(customer: _Customer) -> list[float]:
        return [customer.turn() for _ in range(turns_each)]

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(len(customers)) as pool:
        samples = [x for done in pool.map(run, customers) for x in done]
    wall = time.perf_counter() - started
    tally.samples += samples
    tally.wall += wall
    tally.round_throughputs.append(round(len(samples) / wall, 2))


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


# What is measured is the hub's cost per turn, not its rate limiter: all simulated customers
# come from 127.0.0.1 and send faster than a person types, so the limits are lifted here.
UNLIMITED = {"IP_RATE_BURST": "1000000", "IP_RATE_PER_SECOND": "1000000",
             "WIDGET_RATE_BURST": "1000000", "WIDGET_RATE_PER_SECOND": "1000000"}


def main() -> None:
    with bench_stack(extra_env=UNLIMITED) as bs:
        reference = RasaReference(bs.rasa_url, bs.settings.database_url)
        # warm both paths (model graph, KB index, DB connections) with one pass over the mix,
        # and check on it that they hold the same conversation (same buttons, same language)
        warm = httpx.Client(timeout=30)
        alike = []
        for text in MESSAGES:
            hub = warm.post(f"{bs.hub_url}/api/messages",
                            json={"sender": "bench-warmup-hub-0001", "text": text})
            ref = warm.post(f"{bs.rasa_url}/webhooks/rest/webhook",
                            json=reference.prepare("bench-warmup-rasa-001", text))
            alike.append({"text": text, "hub": _shape(hub.json()["messages"]),
                          "rasa": _shape(ref.json())})
        memory_warm = memory_report(bs.stack)
        paths = {"hub": (_hub_turn, bs.hub_url, None),
                 "rasa": (reference.turn, bs.rasa_url, reference.prepare)}
        modes = {"serial": (1, SERIAL_TURNS, 30.0),
                 f"concurrent_{CONCURRENCY}": (CONCURRENCY, TURNS_PER_CUSTOMER, 60.0)}
        results: dict[str, dict[str, dict]] = {}
        cpu: dict[str, dict[str, dict[str, float]]] = {}
        round_ratios: dict[str, list[float | None]] = {}
        for mode, (n_customers, turns_each, timeout) in modes.items():
            customers = {who: [_Customer(fn, url, timeout, prepare)
                               for _ in range(n_customers)]
                         for who, (fn, url, prepare) in paths.items()}
            tallies = {who: _Tally() for who in paths}
            for r in range(ROUNDS):
                share = _share(turns_each, ROUNDS, r)
                if not share:
                    continue
                # the paths take turns, and the one that goes first alternates: a
                # disturbance on this shared machine then falls on both alike
                for who in (("hub", "rasa") if r % 2 == 0 else ("rasa", "hub")):
                    before = cpu_report(bs.stack)
                    _round(customers[who], share, tallies[who])
                    after = cpu_report(bs.stack)
                    for name in after:
                        tallies[who].cpu[name] = (tallies[who].cpu.get(name, 0.0)
                                                  + after[name] - before.get(name, 0.0))
            for who, tally in tallies.items():
                results.setdefault(mode, {})[who] = stats = tally.stats(customers[who])
                cpu.setdefault(mode, {})[who] = {
                    name: round(1000 * used / max(1, stats["turns"]), 1)
                    for name, used in tally.cpu.items()}
            round_ratios[mode] = [
                _ratio(h, b) for h, b in zip(tallies["hub"].round_throughputs,
                                             tallies["rasa"].round_throughputs, strict=True)]
        memory = memory_report(bs.stack)
    for name, m in memory.items():
        m["rss_after_warmup_mb"] = memory_warm.get(name, {}).get("rss_mb")
    ratios = {
        mode: {
            "p50_latency_hub_over_rasa": _ratio(r["hub"]["p50_ms"], r["rasa"]["p50_ms"]),
            "p95_latency_hub_over_rasa": _ratio(r["hub"]["p95_ms"], r["rasa"]["p95_ms"]),
            "throughput_hub_over_rasa": _ratio(r["hub"]["throughput_per_s"],
                                               r["rasa"]["throughput_per_s"]),
            "throughput_hub_over_rasa_per_round": round_ratios[mode],
        }
        for mode, r in results.items()
    }
    report = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
              "messages": MESSAGES,
              "sizes": {"serial_turns": SERIAL_TURNS, "concurrency": CONCURRENCY,
                        "turns_per_customer": TURNS_PER_CUSTOMER, "rounds": ROUNDS},
              "paths_alike": {"turns": len(alike),
                              "alike": sum(x["hub"] == x["rasa"] for x in alike),
                              "warmup": alike},
              "results": results, "ratios": ratios, "cpu_ms_per_turn": cpu, "memory": memory,
              "rss_mb": {name: m["rss_mb"] for name, m in memory.items()}}
    out = result_path("turns")
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    same = report["paths_alike"]
    print(f"both paths hold the same conversation: {same['alike']}/{same['turns']} warm-up "
          "turns offer the same replies")
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
              f"throughput x{rt['throughput_hub_over_rasa']} (rounds: "
              + ", ".join(f"x{x}" for x in rt["throughput_hub_over_rasa_per_round"]) + ")")
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
