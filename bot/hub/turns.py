"""One customer turn, whatever the channel: clean, record, route to Rasa, record the replies.

Runs in a worker thread (blocking DB and HTTP) of the turns' own pool (``TurnService.run``).
A per-sender lock keeps the turns of one conversation in order; Rasa's own lock store would
serialise them too, but the transcript and language bookkeeping here must not interleave
either. Past the lock a turn waits in line for its Rasa server (``RasaPool.admitted``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import anyio
from sqlalchemy.orm import Session

from bot.core.config import Settings
from bot.db.models import Conversation, Message, utcnow
from bot.hub import sender_lock, texts
from bot.hub.rasa_client import RasaBusy, RasaPool, RasaUnavailable
from bot.hub.sender_lock import SenderBusy
from bot.services import conversations as convs
from bot.services import handoff as handoff_svc
from bot.services import language
from bot.services.business_hours import Schedule
from bot.services.text import clean_text

log = logging.getLogger(__name__)

# "never mind" while waiting for a person, said plainly (NLU's cancel intent catches the rest)
# A customer in the queue who no longer wants a person, in a few words: "bueno déjalo, me
# apaño", "ok never mind, thanks". Anchored to the whole message, so "déjalo" inside a longer
# message to the agent does not take anyone out of the queue.
_LEAVE_RE = re.compile(
    r"^\W*(?:(?:bueno|vale|ok(?:ay)?|pues|mira|no|oh|well|actually|uf+)\W+)*"
    r"(ya no (hace falta|lo necesito)|d[ée]jalo( estar)?|dej[aá](lo)? nom[aá]s|da igual|"
    r"no importa|olv[ií]dalo|cancela(r)?( la espera)?|ya (lo )?(he )?solucion(é|e|ado)|"
    r"(ya )?me (las )?apa[ñn]o|never ?mind|forget (about )?it|cancel|no longer needed|"
    r"i don'?t need it any ?more|not needed any ?more|i'?ll manage|it'?s fine|no worries)"
    r"(?:\W+(?:ya )?(?:me (?:las )?apa[ñn]o|ya lo miro yo|gracias|muchas gracias|thanks|"
    r"thank you|i'?ll manage|i'?ll sort it out))*\W*$",
    re.IGNORECASE)

# Worker threads for turns, apart from the pool every other blocking call shares (/healthz,
# the console, socket history): a turn spends most of its time waiting — for its customer's
# previous turn, in Rasa's admission queue, for Rasa — and a crowd of waiting turns must
# neither hold up a health check (the balancer would take the hub out) nor wait for a thread
# themselves: that wait would be unbounded and unordered, while the admission queue's is
# bounded (RASA_QUEUE_TIMEOUT) and first come, first served. Idle threads cost little memory.
TURN_THREADS = 400


@dataclass
class TurnResult:
    conversation_id: int
    language: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    failed: bool = False
    # transcript ids of ``messages`` (same order): channels use them to de-duplicate
    message_ids: list[int] = field(default_factory=list)
    duplicate: bool = False  # a resend of an already answered message: nothing new happened
    inbound: dict[str, Any] | None = None  # the customer's message as a transcript item
    escalated: bool = False  # this turn handed the conversation to the human queue
    left_queue: bool = False  # the customer stopped waiting for an agent
    status: str = "bot"  # conversation status after the turn

    def items(self) -> list[dict[str, Any]]:
        """The replies with their ids, as the widget renders them."""
        return [{"id": f"m{i}", "from": m.get("from", "bot"), **m}
                for i, m in zip(self.message_ids, self.messages, strict=True)]


def _visible(reply: dict[str, Any]) -> dict[str, Any] | None:
    """A Rasa REST reply as the channel-neutral message we send and store."""
    out: dict[str, Any] = {}
    if reply.get("text"):
        out["text"] = reply["text"]
    if reply.get("buttons"):
        out["buttons"] = [
            {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
            for b in reply["buttons"]
        ]
    if reply.get("image"):
        out["image"] = reply["image"]
    return out or None


class TurnService:
    def __init__(
        self,
        settings: Settings,
        rasa: RasaPool,
        session_factory: Callable[[], Session],
    ) -> None:
        self.settings = settings
        self.rasa = rasa
        self.session_factory = session_factory
        self.schedule = Schedule.parse(settings.support_hours, settings.support_holidays,
                                       settings.support_timezone)
        self.locks = sender_lock.from_settings(settings)
        self._threads: anyio.CapacityLimiter | None = None  # made in the event loop

    async def run(self, **turn: Any) -> TurnResult:
        """``handle`` in a thread of the turns' own pool (``TURN_THREADS``); what every
        channel awaits."""
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(TURN_THREADS)
        return await anyio.to_thread.run_sync(partial(self.handle, **turn),
                                              limiter=self._threads)

    def handle(
        self,
        *,
        sender: str,
        text: str | None,
        channel: str = "api",
        metadata: dict[str, Any] | None = None,
        client_message_id: str | None = None,
    ) -> TurnResult:
        with self.locks.hold(sender) as fence:
            session = self.session_factory()
            try:
                result = self._handle(session, sender, text, channel, metadata or {},
                                      client_message_id)
                if not fence.still_ours():
                    # this turn outlived its lock and another hub has taken the customer's
                    # next message: writing now would interleave two turns
                    session.rollback()
                    raise SenderBusy(f"turn of {sender} lost its lock")
                session.commit()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def _handle(
        self,
        session: Session,
        sender: str,
        raw_text: str | None,
        channel: str,
        metadata: dict[str, Any],
        client_message_id: str | None,
    ) -> TurnResult:
        s = self.settings
        opened = convs.open_or_continue(
            session, sender=sender, channel=channel,
            idle_timeout=s.conversation_idle_timeout, default_language=s.default_language,
        )
        conv = opened.conversation
        earlier = (convs.find_inbound(session, conv.id, client_message_id)
                   if client_message_id else None)
        if earlier is not None and earlier.status == "ok":
            # a resend of a message we already answered: the same answer, no second turn
            rows = convs.replies_to(session, earlier.id)
            return TurnResult(conv.id, conv.language, [m.payload or {"text": m.text}
                                                       for m in rows],
                              message_ids=[m.id for m in rows], duplicate=True)

        text = clean_text((raw_text or "")[: s.max_message_chars])
        decision = language.decide(
            # a button payload (/intent{...}) says nothing about the customer's language
            text="" if text.startswith("/") else text,
            locale=metadata.get("locale"), previous=conv.language,
            previous_source=conv.language_source, default=s.default_language,
        )
        conv.language, conv.language_source = decision.language, decision.source
        if earlier is not None:  # a resend of a turn that failed: try it again now
            inbound = earlier
            inbound.status = "pending"
        else:
            title = metadata.get("button_title") or (
                convs.button_title(session, conv.id, text) if text.startswith("/") else None)
            inbound = convs.add_message(
                session, conv, direction="in", author="customer", text=text,
                client_message_id=client_message_id, status="pending", channel=channel,
                # a pressed button is stored as its payload; the title is what the customer saw
                payload={"title": str(title)[:200]} if title and text.startswith("/") else None,
            )
        session.commit()  # the customer's words are safe before anything else can fail
        inbound_item = convs.item(inbound)

        if not text:
            inbound.status = "ok"
            return self._reply_system(session, conv, inbound, "empty")
        if conv.status in ("waiting_agent", "with_agent"):
            # a human owns this conversation: the words go to the console, not to Rasa
            inbound.status = "ok"
            result = self._while_human(session, sender, conv, inbound, text)
            result.inbound = inbound_item
            return result

        try:
            # A new conversation starts a new Rasa session; kept pending until Rasa accepted
            # it, so a first turn that failed does not leak the previous session's state.
            new_session = not conv.rasa_session_started
            if new_session:
                conv.rasa_language = None
            slots = {"language": conv.language} if conv.rasa_language != conv.language else {}
            # wait in line for the sender's Rasa server (no database connection is held:
            # everything above is committed); RasaBusy here means nothing reached Rasa
            with self.rasa.admitted(sender):
                if earlier is not None and not new_session:
                    # a retry is not a second message (first: the slots below come after it)
                    self.rasa.revert_if_latest(sender, inbound.id)
                conv.rasa_language = conv.language
                conv.rasa_session_started = True
                # the session start and slots travel with the message: one request to Rasa
                replies = self.rasa.send(sender, text[: s.nlu_max_chars], {
                    "inbound_id": inbound.id,
                    "channel": channel,
                    "language": conv.language,
                    "locale": metadata.get("locale"),
                    "conversation_id": conv.id,
                    "customer_id": conv.customer_id,
                }, new_session=new_session, slots=slots)
            if not replies:
                raise RasaUnavailable("no reply")
        except RasaUnavailable as exc:
            # too busy or failing: either way the message is kept as ``failed`` and a resend
            # of it (same message id) is tried again; the customer is told which it was
            busy = isinstance(exc, RasaBusy)
            log.warning("turn %s for conversation %s: %s", "refused, Rasa busy" if busy
                        else "failed", conv.id, exc)
            inbound.status = "failed"
            conv.rasa_language = None  # resend the slot once Rasa is back
            if new_session:  # it may not have reached Rasa: start it with the next try
                conv.rasa_session_started = False
            result = self._reply_system(session, conv, inbound,
                                        "busy" if busy else "unavailable")
            result.failed = True
            result.inbound = inbound_item
            return result

        inbound.status = "ok"
        out: list[tuple[dict[str, Any], Message]] = []
        escalated = False
        for reply in replies:
            custom = reply.get("custom")
            self._apply_custom(conv, custom)
            if isinstance(custom, dict) and isinstance(custom.get("handoff"), dict):
                handoff_svc.escalate(session, conv, custom["handoff"])
                escalated = True
            if isinstance(custom, dict) and custom.get("expects") and out:
                # "the flow now waits for a photo": channels offer their attach button
                visible, row = out[-1]
                visible["expects"] = str(custom["expects"])
                row.payload = dict(visible)  # a new object: SQLAlchemy sees the change
            visible = _visible(reply)
            if visible is None:
                continue
            row = convs.add_message(session, conv, direction="out", author="bot",
                                    text=visible.get("text", ""), payload=dict(visible),
                                    reply_to=inbound, channel=channel)
            out.append((visible, row))
        if escalated:
            note = self._queue_note(session, conv)
            row = convs.add_message(session, conv, direction="out", author="system",
                                    text=note["text"], payload=note, reply_to=inbound,
                                    channel=channel)
            out.append((note, row))
        return TurnResult(conv.id, conv.language, [v for v, _ in out],
                          message_ids=[r.id for _, r in out], inbound=inbound_item,
                          escalated=escalated, status=conv.status)

    # ---- while a human owns the conversation ----------------------------------------

    def _queue_note(self, session: Session, conv: Conversation) -> dict[str, Any]:
        """Where the customer stands: position and an honest estimate, or when we open."""
        now = utcnow()
        if not self.schedule.is_open(now):
            return {"text": texts.text("queue_closed", conv.language,
                                       hours=self.schedule.describe(conv.language),
                                       back=self._back(conv.language, now)),
                    "queue": {"open": False}}
        position = handoff_svc.queue_position(session, conv) or 1
        minutes = handoff_svc.wait_estimate_minutes(session, conv) or 1
        return {"text": texts.text("queue_position", conv.language, position=position,
                                   minutes=minutes),
                "queue": {"open": True, "position": position, "minutes": minutes}}

    def _while_human(self, session: Session, sender: str, conv: Conversation,
                     inbound: Message, text: str) -> TurnResult:
        result = TurnResult(conv.id, conv.language, [], status=conv.status)
        if conv.status == "waiting_agent" and self._wants_to_leave(text):
            if handoff_svc.leave_queue(session, conv):
                session.commit()
                try:  # Rasa takes the conversation back
                    self.rasa.append_events(sender, [{"event": "resume"}])
                except RasaUnavailable as exc:  # the next turn will try again
                    log.warning("could not resume Rasa for %s: %s", conv.id, exc)
                    conv.rasa_session_started = False
                result = self._reply_system(session, conv, inbound, "left_queue")
                result.status, result.left_queue = conv.status, True
                return result
        if conv.status == "waiting_agent":
            last = convs.last_bot_message(session, conv.id)
            # one "still in the queue" line per minute at most (the position note itself
            # does not count: the first message after it is acknowledged)
            recent = (last is not None and last.author == "system"
                      and "queue" not in (last.payload or {})
                      and (utcnow() - last.created_at).total_seconds() < 60)
            position = handoff_svc.queue_position(session, conv)
            now = utcnow()
            if recent:
                pass  # acknowledged a moment ago; the words are in the agent's transcript
            elif not self.schedule.is_open(now):
                # nobody will read it before we open: say so, never answer with silence
                result = self._reply_system(session, conv, inbound, "saved_while_closed",
                                            back=self._back(conv.language, now))
                result.status = conv.status
            elif position:
                result = self._reply_system(session, conv, inbound, "still_waiting",
                                            position=position)
                result.status = conv.status
        return result

    def _back(self, lang: str, now: datetime) -> str:
        """When the team is back, in the customer's words ("lunes 30/11 09:00")."""
        back = self.schedule.next_opening(now)
        return (f"{texts.WEEKDAYS[lang][back.weekday()]} {back:%d/%m %H:%M}"
                if back is not None else "—")

    def _wants_to_leave(self, text: str) -> bool:
        if _LEAVE_RE.search(text):
            return True
        parsed = self.rasa.parse(text)
        intent = (parsed or {}).get("intent") or {}
        return intent.get("name") == "cancel" and float(intent.get("confidence") or 0) >= 0.85

    def _apply_custom(self, conv: Conversation, custom: Any) -> None:
        """Instructions from actions to the hub, never shown to the customer."""
        if not isinstance(custom, dict):
            return
        lang = custom.get("set_language")
        if lang in language.SUPPORTED:
            conv.language, conv.language_source, conv.rasa_language = lang, "explicit", lang

    def _reply_system(
        self, session: Session, conv: Conversation, inbound: Message, key: str, **values: Any
    ) -> TurnResult:
        body = {"text": texts.text(key, conv.language, **values), "from": "system"}
        row = convs.add_message(session, conv, direction="out", author="system",
                                text=body["text"], payload=body, reply_to=inbound,
                                channel=inbound.channel)
        return TurnResult(conv.id, conv.language, [body], message_ids=[row.id])
