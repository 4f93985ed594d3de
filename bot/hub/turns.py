"""One customer turn, whatever the channel: clean, record, route to Rasa, record the replies.

Runs in a worker thread (blocking DB and HTTP). A per-sender lock keeps the turns of one
conversation in order; Rasa's own lock store would serialise them too, but the transcript
and language bookkeeping here must not interleave either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bot.core.config import Settings
from bot.db.models import Conversation, Message
from bot.hub import texts
from bot.hub.rasa_client import RasaClient, RasaUnavailable
from bot.services import conversations as convs
from bot.services import language
from bot.services.text import clean_text

log = logging.getLogger(__name__)


@dataclass
class TurnResult:
    conversation_id: int
    language: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    failed: bool = False


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
        rasa: RasaClient,
        session_factory: Callable[[], Session],
    ) -> None:
        self.settings = settings
        self.rasa = rasa
        self.session_factory = session_factory
        self._locks: dict[str, list] = {}  # sender -> [lock, users]; pruned when unused
        self._locks_guard = threading.Lock()

    @contextmanager
    def _lock(self, sender: str) -> Iterator[None]:
        with self._locks_guard:
            entry = self._locks.setdefault(sender, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[sender]

    def handle(
        self,
        *,
        sender: str,
        text: str | None,
        channel: str = "api",
        metadata: dict[str, Any] | None = None,
        client_message_id: str | None = None,
    ) -> TurnResult:
        with self._lock(sender):
            session = self.session_factory()
            try:
                result = self._handle(session, sender, text, channel, metadata or {},
                                      client_message_id)
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
            replies = [m.payload or {"text": m.text}
                       for m in convs.replies_to(session, earlier.id)]
            return TurnResult(conv.id, conv.language, replies)

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
            inbound = convs.add_message(
                session, conv, direction="in", author="customer", text=text,
                client_message_id=client_message_id, status="pending",
            )
        session.commit()  # the customer's words are safe before anything else can fail

        if not text:
            inbound.status = "ok"
            return self._reply_system(session, conv, inbound, "empty")
        if conv.status in ("waiting_agent", "with_agent"):
            inbound.status = "ok"
            return TurnResult(conv.id, conv.language, [])

        try:
            # A new conversation starts a new Rasa session; kept pending until Rasa accepted
            # it, so a first turn that failed does not leak the previous session's state.
            new_session = not conv.rasa_session_started
            if new_session:
                conv.rasa_language = None
            slots = {"language": conv.language} if conv.rasa_language != conv.language else {}
            self.rasa.prepare_turn(sender, new_session=new_session, slots=slots)
            conv.rasa_language = conv.language
            conv.rasa_session_started = True
            replies = self.rasa.send(sender, text[: s.nlu_max_chars], {
                "channel": channel,
                "language": conv.language,
                "locale": metadata.get("locale"),
                "conversation_id": conv.id,
                "customer_id": conv.customer_id,
            })
            if not replies:
                raise RasaUnavailable("no reply")
        except RasaUnavailable as exc:
            log.warning("turn failed for conversation %s: %s", conv.id, exc)
            inbound.status = "failed"
            conv.rasa_language = None  # resend the slot once Rasa is back
            result = self._reply_system(session, conv, inbound, "unavailable")
            result.failed = True
            return result

        inbound.status = "ok"
        out = []
        for reply in replies:
            self._apply_custom(conv, reply.get("custom"))
            visible = _visible(reply)
            if visible is None:
                continue
            convs.add_message(session, conv, direction="out", author="bot",
                              text=visible.get("text", ""), payload=visible, reply_to=inbound)
            out.append(visible)
        return TurnResult(conv.id, conv.language, out)

    def _apply_custom(self, conv: Conversation, custom: Any) -> None:
        """Instructions from actions to the hub, never shown to the customer."""
        if not isinstance(custom, dict):
            return
        lang = custom.get("set_language")
        if lang in language.SUPPORTED:
            conv.language, conv.language_source, conv.rasa_language = lang, "explicit", lang

    def _reply_system(
        self, session: Session, conv: Conversation, inbound: Message, key: str
    ) -> TurnResult:
        body = {"text": texts.text(key, conv.language)}
        convs.add_message(session, conv, direction="out", author="system", text=body["text"],
                          payload=body, reply_to=inbound)
        return TurnResult(conv.id, conv.language, [body])
