"""The widget socket `/ws` spoken raw (no browser): bad frames, foreign session ids, a client
sending 50 messages a second, and resends after a lost connection."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets
from sqlalchemy import select

from bot.db.models import Conversation, Message
from bot.db.session import session_scope


def ws_url(stack) -> str:
    return stack.hub_url.replace("http://", "ws://") + "/ws"


async def _recv(ws, kind: str, timeout: float = 30) -> dict:
    """The next frame of a kind (others are skipped)."""
    async def _loop():
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame
    return await asyncio.wait_for(_loop(), timeout)


async def _hello(ws, sender: str) -> dict:
    await ws.send(json.dumps({"type": "hello", "sender": sender, "locale": "es-ES"}))
    return await _recv(ws, "welcome")


def run(coro):
    return asyncio.run(coro)


def test_bad_hello_is_refused(stack):
    async def scenario():
        async with websockets.connect(ws_url(stack)) as ws:
            await ws.send("{not json")
            assert (await _recv(ws, "error"))["code"] == "bad_json"
        async with websockets.connect(ws_url(stack)) as ws:
            await ws.send(json.dumps({"type": "hello", "sender": "short"}))
            assert (await _recv(ws, "error"))["code"] == "bad_sender"
        async with websockets.connect(ws_url(stack)) as ws:
            await ws.send(json.dumps({"type": "hello", "sender": "<script>alert(1)</script>xx"}))
            assert (await _recv(ws, "error"))["code"] == "bad_sender"
    run(scenario())


def test_foreign_session_bad_frames_and_a_normal_turn(stack):
    sender, other = f"ws-{uuid.uuid4().hex}", f"ws-{uuid.uuid4().hex}"

    async def scenario():
        async with websockets.connect(ws_url(stack)) as ws:
            welcome = await _hello(ws, sender)
            assert welcome["history"] == [] and welcome["telegram"] == "postventa_test_bot"
            await ws.send(json.dumps({"type": "message", "id": "x1", "sender": other,
                                      "text": "soy otro"}))
            err = await _recv(ws, "error")
            assert (err["code"], err["id"]) == ("foreign_session", "x1") and err["text"]
            await ws.send("[]")
            assert (await _recv(ws, "error"))["code"] == "bad_frame"
            await ws.send(b"\x00\x01binary")
            assert (await _recv(ws, "error"))["code"] == "bad_frame"
            await ws.send(json.dumps({"type": "message", "id": "y" * 65, "sender": sender,
                                      "text": "id too long"}))
            assert (await _recv(ws, "error"))["code"] == "bad_frame"
            await ws.send(json.dumps({"type": "message", "id": "m1", "sender": sender,
                                      "text": "¿cuánto dura la garantía?"}))
            assert (await _recv(ws, "ack"))["id"] == "m1"
            reply = await _recv(ws, "messages")
            assert reply["reply_to"] == "m1"
            assert any("3 años" in m["text"] for m in reply["messages"])
            assert all(m["id"].startswith("m") for m in reply["messages"])
    run(scenario())
    with session_scope(stack.settings.database_url) as s:
        assert s.execute(select(Conversation).where(
            Conversation.sender == other)).first() is None  # nothing written for "other"
        conv = s.execute(select(Conversation).where(Conversation.sender == sender)).scalar_one()
        assert conv.channel == "web"


def test_fifty_messages_a_second_are_limited_and_nothing_accepted_is_lost(stack):
    sender = f"ws-{uuid.uuid4().hex}"

    async def scenario():
        async with websockets.connect(ws_url(stack)) as ws:
            await _hello(ws, sender)
            for i in range(50):
                await ws.send(json.dumps({"type": "message", "id": f"f{i}", "sender": sender,
                                          "text": f"mensaje número {i}"}))
                await asyncio.sleep(0.02)
            acked, limited, notices, answered = set(), set(), 0, set()
            while len(acked) + len(limited) < 50 or answered != acked:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 90))
                if frame["type"] == "ack":
                    acked.add(frame["id"])
                elif frame["type"] == "rate_limited":
                    limited.add(frame["id"])
                    notices += 1 if frame.get("text") else 0
                    assert frame["retry_after"] > 0
                elif frame["type"] == "messages" and frame["reply_to"]:
                    answered.add(frame["reply_to"])
            return acked, limited, notices

    acked, limited, notices = run(scenario())
    assert limited and acked and not (acked & limited)
    assert notices == 1  # one polite notice, not fifty
    with session_scope(stack.settings.database_url) as s:
        conv = s.execute(select(Conversation).where(Conversation.sender == sender)).scalar_one()
        stored = s.execute(select(Message.client_message_id).where(
            Message.conversation_id == conv.id, Message.direction == "in")
            .order_by(Message.id)).scalars().all()
    assert set(stored) == acked  # every accepted message was stored and answered, in order
    assert stored == sorted(stored, key=lambda m: int(m[1:]))


def test_resend_after_reconnect_is_answered_once(stack):
    sender = f"ws-{uuid.uuid4().hex}"

    async def scenario():
        async with websockets.connect(ws_url(stack)) as ws:
            await _hello(ws, sender)
            await ws.send(json.dumps({"type": "message", "id": "r1", "sender": sender,
                                      "text": "¿cuánto tarda el reembolso?"}))
            await _recv(ws, "ack")
            first = await _recv(ws, "messages")
        async with websockets.connect(ws_url(stack)) as ws:  # the page lost the connection
            welcome = await _hello(ws, sender)
            assert [i["client_id"] for i in welcome["history"] if i["from"] == "customer"] \
                == ["r1"]
            await ws.send(json.dumps({"type": "message", "id": "r1", "sender": sender,
                                      "text": "¿cuánto tarda el reembolso?"}))
            await _recv(ws, "ack")
            again = await _recv(ws, "messages")
        return first, again

    first, again = run(scenario())
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    with session_scope(stack.settings.database_url) as s:
        conv = s.execute(select(Conversation).where(Conversation.sender == sender)).scalar_one()
        inbound = s.execute(select(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")).scalars().all()
        assert len(inbound) == 1


@pytest.mark.parametrize("origin", ["https://evil.example"])
def test_foreign_origin_cannot_open_the_socket(stack, origin):
    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatusCode):
            async with websockets.connect(ws_url(stack), origin=origin):
                pass
    run(scenario())
