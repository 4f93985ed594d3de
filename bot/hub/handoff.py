"""Hand-off orchestration in the hub: live console events, delivery of agent messages to the
customer's channel, and giving the conversation back to Rasa (survey) when the agent closes.

State lives in the database (``bot.services.handoff``); this object only holds the open SSE
subscriptions, so a hub restart loses nothing but live connections, which reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.core.config import Settings
from bot.db.models import Conversation, StaffUser
from bot.hub import texts
from bot.hub.delivery import Delivery
from bot.hub.rasa_client import RasaPool, RasaUnavailable
from bot.hub.turns import TurnResult
from bot.services import conversations as convs
from bot.services import handoff as svc
from bot.services.handoff import HandoffError

log = logging.getLogger(__name__)


class HandoffHub:
    def __init__(self, settings: Settings, sessions: Callable[[], Session], rasa: RasaPool,
                 delivery: Delivery) -> None:
        self.settings = settings
        self.sessions = sessions
        self.rasa = rasa
        self.delivery = delivery
        self._told_position: dict[int, int] = {}

    # ---- live events ------------------------------------------------------------------

    def subscribe(self, agent: StaffUser) -> asyncio.Queue[dict[str, Any]]:
        return self.delivery.feed.subscribe(agent)

    def unsubscribe(self, agent: StaffUser, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.delivery.feed.unsubscribe(queue)

    async def publish(self, event: dict[str, Any], team: str | None = None) -> None:
        await self.delivery.to_console(event, team)

    # ---- customer side hooks (called by the channels after every turn) ----------------

    async def on_turn(self, sender: str, channel: str, result: TurnResult) -> None:
        involved = result.escalated or result.left_queue or (
            result.status in ("waiting_agent", "with_agent") and result.inbound)
        if not involved:
            return  # the bot alone: nothing for the consoles (and no database round trip)
        team = await run_in_threadpool(self._team_of, result.conversation_id)
        if result.escalated or result.left_queue:
            await self.publish({"type": "queue"}, team)
            if result.left_queue:
                await self._announce_positions(team)
            return
        if result.status in ("waiting_agent", "with_agent") and result.inbound:
            await self.publish({"type": "message", "conversation_id": result.conversation_id,
                          "item": result.inbound}, team)
            for item in result.items():
                await self.publish({"type": "message", "conversation_id": result.conversation_id,
                              "item": {**item, "from": "system"}}, team)
            await self.publish({"type": "queue"}, team)

    async def on_customer_typing(self, sender: str) -> None:
        def _lookup() -> tuple[int, str] | None:
            with self.sessions() as session:
                conv = convs.latest_for_sender(session, sender)
                if conv is not None and conv.status in ("waiting_agent", "with_agent"):
                    return conv.id, conv.team
                return None

        found = await run_in_threadpool(_lookup)
        if found:
            await self.publish({"type": "typing", "conversation_id": found[0]}, found[1])

    def _team_of(self, conversation_id: int) -> str | None:
        with self.sessions() as session:
            conv = session.get(Conversation, conversation_id)
            return conv.team if conv is not None else None

    # ---- delivery ---------------------------------------------------------------------

    async def deliver(self, sender: str, channel: str, items: list[dict[str, Any]]) -> None:
        await self.delivery.to_customer(sender, channel, items)

    def _system_message(self, session: Session, conv: Conversation, key: str,
                        **values: Any) -> dict[str, Any]:
        text = texts.text(key, conv.language, **values)
        channel = svc.last_customer_channel(session, conv)
        msg = convs.add_message(session, conv, direction="out", author="system", text=text,
                                payload={"text": text}, channel=channel)
        return convs.item(msg)

    async def _announce_positions(self, team: str | None) -> None:
        """Everybody still waiting hears that the queue moved (only when it did)."""
        def _compute() -> list[tuple[str, str, dict[str, Any]]]:
            out = []
            with self.sessions() as session:
                for conv in svc.waiting(session, team):
                    position = svc.queue_position(session, conv)
                    if position is None or self._told_position.get(conv.id) == position:
                        continue
                    minutes = svc.wait_estimate_minutes(session, conv) or 1
                    self._told_position[conv.id] = position
                    item = self._system_message(session, conv, "queue_update",
                                                position=position, minutes=minutes)
                    out.append((conv.sender, svc.last_customer_channel(session, conv), item))
                session.commit()
            return out

        for sender, channel, item in await run_in_threadpool(_compute):
            await self.deliver(sender, channel, [item])

    # ---- agent actions (the console calls these) --------------------------------------

    async def _run(self, fn: Callable[[Session], Any]) -> Any:
        def _job() -> Any:
            with self.sessions() as session:
                try:
                    result = fn(session)
                    session.commit()
                    return result
                except BaseException:
                    session.rollback()
                    raise

        return await run_in_threadpool(_job)

    async def queue(self, agent: StaffUser) -> list[dict[str, Any]]:
        return await self._run(lambda s: svc.queue_rows(s, agent))

    async def detail(self, conversation_id: int, agent: StaffUser) -> dict[str, Any]:
        return await self._run(lambda s: svc.detail(s, conversation_id, agent))

    async def claim(self, conversation_id: int, agent: StaffUser) -> dict[str, Any]:
        def _claim(session: Session) -> tuple[dict[str, Any], str, str, dict | None]:
            conv, fresh = svc.claim(session, conversation_id, agent)
            joined = None
            if fresh:  # a double click must not say "Ana has joined" twice
                joined = self._system_message(session, conv, "agent_joined",
                                              agent=agent.username.capitalize())
            return (svc.row(session, conv), conv.sender,
                    svc.last_customer_channel(session, conv), joined)

        row, sender, channel, joined = await self._run(_claim)
        self._told_position.pop(conversation_id, None)
        if joined:
            await self.deliver(sender, channel, [joined])
        await self.publish({"type": "claimed", "conversation_id": conversation_id,
                      "agent": agent.username}, row["team"])
        await self.publish({"type": "queue"}, row["team"])
        await self._announce_positions(row["team"])
        return row

    async def reply(self, conversation_id: int, agent: StaffUser, text: str) -> dict[str, Any]:
        def _reply(session: Session) -> tuple[dict[str, Any], str, str, str]:
            msg = svc.reply(session, conversation_id, agent, text)
            conv = session.get(Conversation, conversation_id)
            return convs.item(msg), conv.sender, msg.channel or conv.channel, conv.team

        item, sender, channel, team = await self._run(_reply)
        await self.deliver(sender, channel, [item])
        await self.publish({"type": "message", "conversation_id": conversation_id,
                            "item": item}, team)
        return item

    async def note(self, conversation_id: int, agent: StaffUser, text: str) -> dict[str, Any]:
        def _note(session: Session) -> dict[str, Any]:
            event = svc.note(session, conversation_id, agent, text)
            return {"text": event.note, "author": event.actor,
                    "at": event.created_at.isoformat() + "Z"}

        return await self._run(_note)

    async def set_case_status(self, conversation_id: int, agent: StaffUser,
                              status: str) -> dict[str, Any]:
        from bot.services.cases import as_dict

        return await self._run(
            lambda s: as_dict(svc.set_case_status(s, conversation_id, agent, status)))

    async def set_resolution(self, conversation_id: int, agent: StaffUser,
                             text: str) -> dict[str, Any]:
        from bot.services.cases import as_dict

        return await self._run(
            lambda s: as_dict(svc.set_resolution(s, conversation_id, agent, text)))

    async def transfer(self, conversation_id: int, agent: StaffUser,
                       to_username: str) -> dict[str, Any]:
        def _transfer(session: Session) -> dict[str, Any]:
            conv, _target = svc.transfer(session, conversation_id, agent, to_username)
            return svc.row(session, conv)

        row = await self._run(_transfer)
        await self.publish({"type": "transferred", "conversation_id": conversation_id,
                      "agent": row["agent"]}, row["team"])
        await self.publish({"type": "queue"}, row["team"])
        return row

    async def close(self, conversation_id: int, agent: StaffUser,
                    resolution: str | None = None) -> dict[str, Any]:
        """Back to the bot: Rasa resumes and asks the closing survey in the same channel."""
        def _close(session: Session) -> tuple[dict[str, Any], str, str, dict[str, Any]]:
            conv = svc.close(session, conversation_id, agent, resolution)
            left = self._system_message(session, conv, "agent_left",
                                        agent=agent.username.capitalize())
            return (svc.row(session, conv), conv.sender,
                    svc.last_customer_channel(session, conv), left)

        row, sender, channel, left = await self._run(_close)
        items = [left]
        survey = True
        try:
            replies = await run_in_threadpool(self._resume_with_survey, sender)
            items += await run_in_threadpool(self._store_bot_replies, conversation_id,
                                             channel, replies)
        except RasaUnavailable as exc:
            survey = False  # closed on our side all the same; the survey is not essential
            log.warning("survey after hand-off not sent for %s: %s", conversation_id, exc)
        await self.deliver(sender, channel, items)
        await self.publish({"type": "closed", "conversation_id": conversation_id,
                      "agent": agent.username}, row["team"])
        await self.publish({"type": "queue"}, row["team"])
        return {**row, "survey_sent": survey}

    def _resume_with_survey(self, sender: str) -> list[dict[str, Any]]:
        self.rasa.append_events(sender, [{"event": "resume"}])
        return self.rasa.trigger_intent(sender, "EXTERNAL_conversation_closed")

    def _store_bot_replies(self, conversation_id: int, channel: str,
                           replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from bot.hub.turns import _visible

        items = []
        with self.sessions() as session:
            conv = session.get(Conversation, conversation_id)
            for reply in replies:
                visible = _visible(reply)
                if visible is None:
                    continue
                msg = convs.add_message(session, conv, direction="out", author="bot",
                                        text=visible.get("text", ""), payload=dict(visible),
                                        channel=channel)
                items.append(convs.item(msg))
            session.commit()
        return items


__all__ = ["HandoffError", "HandoffHub"]
