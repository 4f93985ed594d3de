"""From what the simulated customers saw to the numbers of `make bench-load`.

Definitions (per message, each with its unique id):

* **lost**: sent (REST) or accepted (socket ``ack``) but never answered within the time the
  balancer gives a turn (150 s as shipped: RASA_QUEUE_TIMEOUT in line, then RASA_TIMEOUT per
  Rasa call; ``REPLY_TIMEOUT`` in bench/load_customers.py), and not a turn the bot answered
  with silence (checked in the transcript when the bench can read
  the stack's database);
* **duplicated**: answered more than once (two ``messages`` frames with its ``reply_to``);
* **reordered**: an answer that arrived after the answer to a *later* message of the same
  conversation;
* **failed**: an error instead of an answer (HTTP 5xx, an ``error`` frame, a refused
  socket), the hub's "technical problem" apology (Rasa failed or exceeded RASA_TIMEOUT) or
  its "we're busy, send it again" (the turn waited RASA_QUEUE_TIMEOUT in line for Rasa);
* **empty**: answered with no bot message (not an error; counted apart).

Throughput is *good* answers (neither failed nor lost) per second of wall time, from the
first message sent to the last answer received: an apology is an answer too, but counting it
would reward a stack for giving up sooner. ``answers_per_s`` counts every answer.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from sqlalchemy import create_engine, text

from bench.load_customers import Record, Turn

SERVER_COMPONENTS = ("rasa", "hub", "actions", "balancer", "postgresql", "redis")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(1000 * v, 1)


def reordered(arrivals: dict[str, list[int]]) -> int:
    count = 0
    for seqs in arrivals.values():
        highest = -1
        for seq in seqs:
            if seq < highest:
                count += 1
            highest = max(highest, seq)
    return count


def _latency(turns: list[Turn]) -> dict:
    lat = [t.latency for t in turns if t.latency is not None]
    return {"p50_ms": _ms(_pct(lat, 0.50)), "p95_ms": _ms(_pct(lat, 0.95)),
            "p99_ms": _ms(_pct(lat, 0.99)), "max_ms": _ms(max(lat) if lat else None),
            "mean_ms": _ms(statistics.fmean(lat) if lat else None)}


def transcript_check(database_url: str | None, run_id: str, record: Record) -> dict | None:
    """What the stack stored: each message once? each answered in the transcript? A socket
    message that was accepted and never answered, whose transcript shows no bot reply, was a
    silent turn (the hub sends no frame for one), not a lost answer: it becomes ``empty``."""
    if not database_url:
        return None
    engine = create_engine(database_url, future=True)
    pattern = f"load-{run_id}-%"
    try:
        with engine.connect() as conn:
            inbound = conn.execute(text(
                "SELECT m.id, m.client_message_id FROM messages m JOIN conversations c "
                "ON c.id = m.conversation_id WHERE c.sender LIKE :p AND m.direction = 'in'"),
                {"p": pattern}).all()
            replies = dict(conn.execute(text(
                "SELECT m.reply_to_id, COUNT(*) FROM messages m JOIN conversations c "
                "ON c.id = m.conversation_id WHERE c.sender LIKE :p AND m.direction = 'out' "
                "AND m.reply_to_id IS NOT NULL GROUP BY m.reply_to_id"), {"p": pattern}).all())
    finally:
        engine.dispose()
    stored = Counter(cid for _, cid in inbound)
    answered_ids = {cid for mid, cid in inbound if replies.get(mid)}
    silent = 0
    for turn in record.turns:
        if (turn.outcome == "lost" and turn.channel == "ws" and stored.get(turn.mid)
                and turn.mid not in answered_ids):
            turn.outcome, turn.detail = "empty", "silent turn (no bot reply in transcript)"
            silent += 1
    sent = {t.mid for t in record.turns if t.acked or t.outcome != "failed"}
    return {"messages_stored": sum(stored.values()),
            "stored_twice": sum(1 for n in stored.values() if n > 1),
            "sent_not_stored": len(sent - set(stored)),
            "stored_without_reply": len(set(stored) - answered_ids),
            "silent_socket_turns": silent}


def summarize(record: Record, wall: float) -> dict:
    turns = record.turns
    outcomes = Counter(t.outcome for t in turns)
    answered = [t for t in turns if t.answered_at is not None]
    good = sum(1 for t in answered if t.outcome in ("ok", "empty"))
    by_channel = {}
    for channel in ("rest", "ws"):
        mine = [t for t in turns if t.channel == channel]
        by_channel[channel] = {"messages": len(mine), **Counter(t.outcome for t in mine),
                               **_latency([t for t in mine if t.answered_at is not None])}
    return {
        "messages": len(turns),
        "answered": len(answered),
        "conversations": len({t.sender for t in turns}),
        "lost": outcomes.get("lost", 0) + outcomes.get("pending", 0),
        "duplicated": sum(1 for t in turns if t.answers > 1),
        "reordered": reordered(record.arrivals),
        "failed": outcomes.get("failed", 0),
        "empty": outcomes.get("empty", 0),
        "rate_limited_and_resent": record.rate_limited,
        "unsolicited_frames": record.unsolicited,
        "sockets_dropped": record.disconnects,
        **_latency(answered),
        "throughput_per_s": round(good / wall, 2) if wall > 0 else None,
        "answers_per_s": round(len(answered) / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 1),
        "served_by": dict(sorted(record.served_by.items())),
        "by_channel": by_channel,
        "failure_examples": Counter(t.detail for t in turns
                                    if t.outcome in ("failed", "lost")).most_common(5),
    }


# --- CPU per turn and the projection to bigger machines ---------------------------------

def component(name: str) -> str:
    """rasa-2 → rasa; hub → hub; redis-server → redis."""
    base = name.split("-")[0]
    return "redis" if base == "redis" else base


def cpu_per_turn(cpu: dict[str, float], answered: int) -> dict[str, float]:
    """Milliseconds of CPU per answered message, per component (replicas added up). Answers
    that were apologies count: Rasa did that turn's work, only too late for the hub."""
    per: dict[str, float] = {}
    for name, seconds in cpu.items():
        if name in ("wall_s", "other_s"):
            continue
        per[component(name)] = per.get(component(name), 0.0) + seconds
    return {k: round(1000 * v / answered, 1) for k, v in per.items()} if answered else {}


def capacity(per_turn_ms: dict[str, float], cores: float, replicas: dict[str, int],
             per_process: dict[str, float] | None = None) -> dict:
    """Turns per second the machine could serve: limited by all cores together and by each
    component's processes (a Python process uses about one core — its GIL — or what it was
    seen using, ``per_process``, when its native libraries used more)."""
    server = sum(per_turn_ms.get(c, 0.0) for c in SERVER_COMPONENTS)
    caps = {"cores": cores * 1000 / server if server else math.inf}
    for comp in ("rasa", "hub", "actions"):
        if per_turn_ms.get(comp):
            usable = min(replicas.get(comp, 1) * (per_process or {}).get(comp, 1.0), cores)
            caps[comp] = usable * 1000 / per_turn_ms[comp]
    limit = min(caps, key=caps.get)
    return {"turns_per_s": round(caps[limit], 1), "limited_by": limit,
            "caps": {k: round(v, 1) for k, v in caps.items()}}


def projection(run: dict, cpus: int, replicas: dict[str, int], scalable: bool) -> dict:
    """Model capacity here (with the cores the bench's customers and other work left free)
    against the measured throughput (efficiency), and the same model for 4 and 8 cores."""
    per = run["cpu_ms_per_turn"]
    cpu = run["cpu_s"]
    wall = cpu["wall_s"] or 1.0
    taken = (cpu.get("bench_client", 0.0) + cpu.get("other_s", 0.0)) / wall
    free_here = max(0.5, cpus - taken)
    by_comp: dict[str, float] = {}
    for name, seconds in cpu.items():
        if name not in ("wall_s", "other_s"):
            by_comp[component(name)] = by_comp.get(component(name), 0.0) + seconds
    per_process = {c: max(1.0, by_comp.get(c, 0.0) / wall / replicas.get(c, 1))
                   for c in ("rasa", "hub", "actions")}
    here = capacity(per, free_here, replicas, per_process)
    measured = run["result"]["answers_per_s"] or 0.0
    efficiency = min(1.0, measured / here["turns_per_s"]) if here["turns_per_s"] else 1.0
    out = {"cores_free_here": round(free_here, 2), "model_here": here,
           "efficiency": round(efficiency, 2),
           "cores_per_process_seen": {k: round(v, 2) for k, v in per_process.items()}}
    server = sum(per.get(c, 0.0) for c in SERVER_COMPONENTS) or 1.0
    for cores in (4, 8):
        same = capacity(per, cores, replicas, per_process)
        out[f"{cores}_cores"] = {**same, "projected_turns_per_s":
                                 round(same["turns_per_s"] * efficiency, 1)}
        if scalable:  # as many processes of each kind as their share of the CPU asks for
            # (action servers too: stateless, several behind a balancer)
            sized = {c: max(replicas.get(c, 1), math.ceil(cores * per.get(c, 0.0) / server))
                     for c in ("rasa", "hub", "actions")}
            best = capacity(per, cores, sized, per_process)
            out[f"{cores}_cores_sized"] = {**best, "replicas": sized, "projected_turns_per_s":
                                           round(best["turns_per_s"] * efficiency, 1)}
    return out
