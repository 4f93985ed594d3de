"""Simulated customers for `make bench-load`: each one talks through the turn API (REST) or a
widget socket (`/ws`), like a person — a pause of 0.5–2 s between messages, sometimes two
messages in a row without waiting for the answer (on the socket, where the hub must keep
their order) — and every message carries a unique id, so each reply is matched to it.

What is recorded, per message: when it was sent and answered, how many times it was answered,
which hub answered (``X-Served-By`` from the balancer), and per conversation the order in
which the answers arrived. ``bench/load_report.py`` turns that into lost / duplicated /
reordered / failed counts and latencies.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import websockets

from bench.load_script import CaseRef, apology, conversation
from bot.core.config import Settings
from bot.scale.haproxy import turn_timeout

# no answer this long after sending: lost. As long as the scale profile's balancer waits for
# a hub (bot/scale/haproxy.py), i.e. the hub's own bound on a turn: its wait in line for Rasa
# (RASA_QUEUE_TIMEOUT), then its Rasa calls (RASA_TIMEOUT); a busy reply or an apology that
# comes by then is an answer, counted as failed
REPLY_TIMEOUT = float(max(90, turn_timeout(
    float(os.environ.get("BENCH_LOAD_RASA_TIMEOUT") or os.environ.get("RASA_TIMEOUT")
          or Settings.rasa_timeout),
    float(os.environ.get("RASA_QUEUE_TIMEOUT") or Settings.rasa_queue_timeout))))
DOUBLE_TEXT = 0.2  # share of socket messages followed at once by the next one


@dataclass
class Turn:
    sender: str
    seq: int  # position in its conversation
    mid: str  # the unique message id (REST message_id, widget frame id)
    channel: str  # rest | ws
    text: str
    sent_at: float
    answered_at: float | None = None
    answers: int = 0  # deliveries of an answer (more than one: duplicated)
    outcome: str = "pending"  # ok | empty | failed | lost
    detail: str = ""
    acked: bool = False

    @property
    def latency(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.sent_at


@dataclass
class Record:
    turns: list[Turn] = field(default_factory=list)
    arrivals: dict[str, list[int]] = field(default_factory=dict)  # sender → seqs answered
    served_by: Counter = field(default_factory=Counter)
    rate_limited: int = 0  # refused as too fast and resent (not an error: the protocol)
    unsolicited: int = 0  # socket answers to no message of ours
    disconnects: int = 0  # sockets closed by the other side mid-conversation

    def answered(self, turn: Turn, messages: list[dict], at: float) -> None:
        turn.answers += 1
        if turn.answers > 1:
            return
        turn.answered_at = at
        self.arrivals.setdefault(turn.sender, []).append(turn.seq)
        if kind := apology(messages):
            turn.outcome, turn.detail = "failed", kind
        else:
            turn.outcome = "ok" if messages else "empty"


@dataclass
class Plan:
    base_url: str
    deadline: float  # monotonic time after which no new message is sent
    cases: list[CaseRef]
    run_id: str


def _sender(plan: Plan, index: int) -> str:
    return f"load-{plan.run_id}-{index}-{uuid.uuid4().hex[:12]}"


async def _pause(rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(0.5, 2.0))


# --- REST --------------------------------------------------------------------------------

async def rest_conversation(client: httpx.AsyncClient, plan: Plan, record: Record,
                            sender: str, lines: list[str], rng: random.Random) -> None:
    for seq, text in enumerate(lines):
        if time.monotonic() >= plan.deadline:
            return
        turn = Turn(sender, seq, uuid.uuid4().hex, "rest", text, time.monotonic())
        record.turns.append(turn)
        body = {"sender": sender, "text": text, "message_id": turn.mid}
        while True:
            try:
                resp = await client.post(f"{plan.base_url}/api/messages", json=body)
            except httpx.TimeoutException:
                turn.outcome, turn.detail = "lost", "no answer in time"
                break
            except httpx.HTTPError as exc:
                turn.outcome, turn.detail = "failed", f"{type(exc).__name__}: {exc}"[:200]
                break
            if resp.status_code == 429:  # over the budget: not taken; resend the same id
                record.rate_limited += 1
                await asyncio.sleep(float(resp.json().get("retry_after", 1.0)))
                continue
            if by := resp.headers.get("x-served-by"):
                record.served_by[by] += 1
            if resp.status_code != 200:
                turn.outcome, turn.detail = "failed", f"HTTP {resp.status_code}"
                break
            turn.acked = True
            record.answered(turn, resp.json().get("messages") or [], time.monotonic())
            break
        if turn.outcome in ("failed", "lost"):
            return  # a person would not carry on as if answered
        await _pause(rng)


# --- widget socket -------------------------------------------------------------------------

class _Socket:
    """One widget socket: a reader matching answers to messages, a writer that resends what
    the hub refused as too fast (same id, as the widget does)."""

    def __init__(self, ws, record: Record, sender: str) -> None:
        self.ws, self.record, self.sender = ws, record, sender
        self.pending: dict[str, Turn] = {}
        self.done: dict[str, asyncio.Event] = {}
        self.by_id: dict[str, Turn] = {}
        self.closed = False

    async def send(self, turn: Turn) -> None:
        self.by_id[turn.mid] = turn
        self.done[turn.mid] = asyncio.Event()
        await self._send_frame(turn)

    async def _send_frame(self, turn: Turn) -> None:
        await self.ws.send(json.dumps({"type": "message", "id": turn.mid, "sender": self.sender,
                                       "text": turn.text}))

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                self._frame(json.loads(raw), time.monotonic())
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            for event in self.done.values():
                event.set()

    def _frame(self, frame: dict, at: float) -> None:
        kind = frame.get("type")
        turn = self.by_id.get(frame.get("reply_to") or frame.get("id") or "")
        if kind == "ack" and turn:
            turn.acked = True
        elif kind == "rate_limited" and turn:
            self.record.rate_limited += 1
            asyncio.get_running_loop().call_later(
                float(frame.get("retry_after", 1.0)),
                lambda: asyncio.ensure_future(self._resend(turn)))
        elif kind == "messages":
            if turn is None:
                self.record.unsolicited += 1
                return
            self.record.answered(turn, frame.get("messages") or [], at)
            self.done[turn.mid].set()
        elif kind == "error" and turn and turn.outcome == "pending":
            turn.outcome, turn.detail = "failed", f"error frame {frame.get('code')}"
            self.done[turn.mid].set()

    async def _resend(self, turn: Turn) -> None:
        if not self.closed:
            try:
                await self._send_frame(turn)
            except websockets.ConnectionClosed:
                pass

    async def wait(self, turn: Turn) -> None:
        try:
            await asyncio.wait_for(self.done[turn.mid].wait(), REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            pass


async def ws_conversation(plan: Plan, record: Record, sender: str, lines: list[str],
                          rng: random.Random) -> None:
    url = plan.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
    turns: list[Turn] = []
    try:
        async with websockets.connect(url, open_timeout=60, close_timeout=5,
                                      max_size=2**20) as ws:
            if by := getattr(ws, "response_headers", {}).get("X-Served-By"):
                record.served_by[by] += 1
            await ws.send(json.dumps({"type": "hello", "sender": sender,
                                      "locale": rng.choice(["es-ES", "en-GB"])}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"no welcome: {welcome}")
            sock = _Socket(ws, record, sender)
            reader = asyncio.create_task(sock.read())
            for seq, text in enumerate(lines):
                if time.monotonic() >= plan.deadline or sock.closed:
                    break
                turn = Turn(sender, seq, uuid.uuid4().hex, "ws", text, time.monotonic())
                record.turns.append(turn)
                turns.append(turn)
                await sock.send(turn)
                if seq + 1 < len(lines) and rng.random() < DOUBLE_TEXT:
                    await asyncio.sleep(rng.uniform(0.3, 0.8))  # typed on at once
                    continue
                await sock.wait(turn)
                await _pause(rng)
            for turn in turns:  # what was sent in a row is answered too
                await sock.wait(turn)
            await asyncio.sleep(1.0)  # a duplicate would arrive now
            if sock.closed:
                record.disconnects += 1
            reader.cancel()
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException, RuntimeError) as exc:
        detail = f"socket: {type(exc).__name__}: {exc}"[:200]
        if not turns:  # could not even start: one failed message stands for it
            turn = Turn(sender, 0, uuid.uuid4().hex, "ws", lines[0], time.monotonic(),
                        outcome="failed", detail=detail)
            record.turns.append(turn)
        for turn in turns:
            if turn.outcome == "pending":
                turn.outcome, turn.detail = "lost", detail
    for turn in turns:
        if turn.outcome == "pending":
            turn.outcome = "lost"
            turn.detail = turn.detail or ("accepted, never answered" if turn.acked
                                          else "never accepted")


# --- one customer, many conversations -------------------------------------------------------

async def customer(index: int, channel: str, plan: Plan, record: Record, rng: random.Random,
                   client: httpx.AsyncClient, start_delay: float) -> None:
    """Conversations one after another (a new sender id each: a new visitor) until the
    deadline."""
    await asyncio.sleep(start_delay)
    while time.monotonic() < plan.deadline:
        lines = conversation(rng, rng.choice(["es", "en"]), plan.cases)
        sender = _sender(plan, index)
        if channel == "rest":
            await rest_conversation(client, plan, record, sender, lines, rng)
        else:
            await ws_conversation(plan, record, sender, lines, rng)
        await asyncio.sleep(rng.uniform(1.0, 3.0))


def _channel(index: int, ws_share: float) -> str:
    """Sockets and REST interleaved in the given share (so both ramp up together)."""
    return "ws" if int((index + 1) * ws_share) > int(index * ws_share) else "rest"


async def run_load(base_url: str, customers: int, seconds: float, ws_share: float,
                   cases: list[CaseRef], seed: int = 1) -> tuple[Record, Plan, float]:
    """All customers at once (their first messages spread over a ramp-up), until ``seconds``
    have passed; then every outstanding answer is awaited. Returns the record, the plan and
    the wall time from the first message to the last answer."""
    rng = random.Random(seed)
    record = Record()
    started = time.monotonic()
    ramp = min(20.0, seconds / 4)
    plan = Plan(base_url, started + seconds, cases, uuid.uuid4().hex[:8])
    limits = httpx.Limits(max_connections=customers + 10, max_keepalive_connections=customers)
    async with httpx.AsyncClient(timeout=REPLY_TIMEOUT, limits=limits) as client:
        tasks = [asyncio.create_task(customer(
            i, _channel(i, ws_share), plan, record, random.Random(rng.random()), client,
            ramp * i / max(1, customers))) for i in range(customers)]
        await asyncio.gather(*tasks)
    last = max((t.answered_at for t in record.turns if t.answered_at), default=time.monotonic())
    return record, plan, last - started
