"""Hand-off through the running stack: a customer asks for a person, waits in the queue, an
agent (console API, real login + CSRF) claims, replies, closes, the customer gets the survey;
and the faults: leaving the queue, replying to a closed conversation, the hub restarting while
a conversation is with an agent, the action server failing during the escalation."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from sqlalchemy import select

from bot.db.models import Case, Conversation, Message
from bot.db.session import session_scope
from bot.services.users import add_user
from tests.conftest import Chat
from tests.test_integration_telegram import TgUser, texts


def db(stack):
    return session_scope(stack.settings.database_url)


class Console:
    """An agent's browser session, as plain HTTP: cookie + CSRF header."""

    def __init__(self, stack, username: str, password: str) -> None:
        self.url = stack.hub_url
        self.http = httpx.Client(base_url=stack.hub_url, timeout=30,
                                 headers={"Origin": stack.hub_url})
        r = self.http.post("/console/login", json={"username": username, "password": password})
        assert r.status_code == 204, r.text
        self.csrf = self.http.get("/console/api/me").json()["csrf_token"]

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return self.http.post(f"/console/api/conversations/{path}", json=body or {},
                              headers={"X-CSRF-Token": self.csrf})

    def queue(self) -> list[dict]:
        r = self.http.get("/console/api/queue")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def agents(stack):
    password = secrets.token_urlsafe(12)
    with db(stack) as s:
        for name in ("marta", "pablo"):
            add_user(s, f"{name}-{password[:4].lower()}", password, "agent")
    return [f"{n}-{password[:4].lower()}" for n in ("marta", "pablo")], password


def _conv(stack, sender: str) -> Conversation:
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(Conversation.sender == sender)
                         .order_by(Conversation.id.desc())).scalars().first()
        s.expunge(conv)
        return conv


def test_widget_customer_to_agent_and_back_to_the_survey(stack, agents):
    names, password = agents
    marta, pablo = Console(stack, names[0], password), Console(stack, names[1], password)
    chat = Chat(stack.hub_url)
    meta = {"metadata": {"channel": "web", "locale": "es-ES"}}
    r = chat.say("¿cuánto tarda el reembolso?", **meta)
    r = chat.say("quiero hablar con una persona", **meta)
    assert "posición" in Chat.texts(r) and "SOP-" in Chat.texts(r)
    conv = _conv(stack, chat.sender)
    assert (conv.status, conv.escalation_reason, conv.outcome) == (
        "waiting_agent", "request_human", "escalated")
    summary = conv.handoff_summary
    for key in ("customer", "language", "channel", "reason", "intents", "slots",
                "last_messages"):
        assert key in summary
    assert summary["language"] == "es" and "request_human" in summary["intents"]
    assert any("reembolso" in m["text"] for m in summary["last_messages"])

    # waiting: the customer's words go to the console, with one honest status line
    r = chat.say("hola, ¿hay alguien?", **meta)
    assert "posición" in Chat.texts(r)
    assert chat.say("es urgente", **meta) == []  # no chatter every message
    row = next(q for q in marta.queue() if q["conversation_id"] == conv.id)
    assert row["status"] == "waiting_agent" and row["case_number"].startswith("SOP-")

    assert marta.post(f"{conv.id}/claim").status_code == 200
    late = pablo.post(f"{conv.id}/claim")
    assert late.status_code == 409 and late.json()["error"] == "already_claimed"
    assert pablo.post(f"{conv.id}/reply", {"text": "hola"}).status_code == 409

    detail = marta.http.get(f"/console/api/conversations/{conv.id}").json()
    said = [i["text"] for i in detail["transcript"] if i["from"] == "customer"]
    assert "es urgente" in said and "quiero hablar con una persona" in said
    r = marta.post(f"{conv.id}/reply", {"text": "Hola, soy Marta. Te ayudo con el reembolso."})
    assert r.status_code == 200, r.text
    assert chat.say("gracias Marta", **meta) == []  # with an agent: the bot stays quiet
    note = marta.post(f"{conv.id}/note", {"text": "cliente preocupado por el plazo"})
    assert note.status_code == 200

    r = marta.post(f"{conv.id}/close", {"resolution": "Explicado el plazo de 14 días"})
    assert r.status_code == 200, r.text
    assert r.json()["survey_sent"] is True
    with db(stack) as s:
        closed = s.get(Conversation, conv.id)
        assert closed.status == "bot" and closed.first_agent_reply_at and closed.claimed_at
        assert closed.handoff_ended_at >= closed.first_agent_reply_at >= closed.escalated_at
        case = s.get(Case, closed.handoff_case_id)
        assert case.status == "resolved" and case.resolution.startswith("Explicado")
        out = s.execute(select(Message).where(Message.conversation_id == conv.id,
                                              Message.direction == "out")
                        .order_by(Message.id)).scalars().all()
        assert [m.author for m in out].count("agent") == 1
        assert "Del 1" in out[-1].text  # the survey's first question reached the transcript
    # the customer answers the survey as usual
    r = chat.say("6", **meta)
    assert "recomiendes" in Chat.texts(r)
    again = marta.post(f"{conv.id}/reply", {"text": "¿sigues ahí?"})
    assert again.status_code == 409 and again.json()["error"] == "closed"


def test_telegram_complaint_reaches_the_agent_and_the_reply_reaches_telegram(
        stack, bot_api, agents):
    names, password = agents
    marta = Console(stack, names[0], password)
    user = TgUser(bot_api)
    r = user.say("quiero poner una queja, esto es una vergüenza")
    assert "posición" in texts(r)
    conv = _conv(stack, f"tg-{user.chat_id}")
    assert conv.escalation_reason == "complaint" and conv.priority == 2
    waiting = [q for q in marta.queue() if q["status"] == "waiting_agent"]
    ids = [q["conversation_id"] for q in waiting]
    first_plain = next((i for i, q in enumerate(waiting) if q["priority"] == 0), len(ids))
    assert ids.index(conv.id) < first_plain  # complaints before plain requests
    assert marta.post(f"{conv.id}/claim").status_code == 200
    bot_api.wait_for_sent(user.chat_id, len(bot_api.sent(user.chat_id)))
    before = len(bot_api.sent(user.chat_id))
    assert marta.post(f"{conv.id}/reply", {"text": "Siento lo ocurrido, soy Marta."}) \
        .status_code == 200
    got = bot_api.wait_for_sent(user.chat_id, before + 1)
    assert "Siento lo ocurrido" in got[-1]["text"]
    assert marta.post(f"{conv.id}/close").status_code == 200
    deadline = time.monotonic() + 20
    while "Del 1" not in texts(bot_api.sent(user.chat_id)[before:]):
        assert time.monotonic() < deadline, "no survey on Telegram after the close"
        time.sleep(0.2)


def test_never_mind_leaves_the_queue_and_the_bot_is_back(stack, agents):
    chat = Chat(stack.hub_url, locale="es-ES")
    chat.say("necesito hablar con un agente")
    assert _conv(stack, chat.sender).status == "waiting_agent"
    r = chat.say("ya no hace falta")
    assert "cola" in Chat.texts(r)
    conv = _conv(stack, chat.sender)
    assert (conv.status, conv.outcome) == ("bot", "abandoned_queue")
    r = chat.say("¿cuánto dura la garantía?")
    assert "3 años" in Chat.texts(r)  # Rasa answers again


def test_hub_restart_keeps_conversations_with_agents(stack, agents):
    names, password = agents
    chat = Chat(stack.hub_url, locale="es-ES")
    chat.say("quiero hablar con una persona")
    conv = _conv(stack, chat.sender)
    marta = Console(stack, names[0], password)
    assert marta.post(f"{conv.id}/claim").status_code == 200
    stack.stop_one("hub")
    stack.start(only="hub")
    stack.wait_healthy(timeout=60)
    assert chat.say("¿seguís ahí?") == []  # still with the agent: goes to the console
    marta = Console(stack, names[0], password)  # sessions live in the DB: re-login works
    mine = [q for q in marta.queue() if q["conversation_id"] == conv.id]
    assert mine and mine[0]["status"] == "with_agent"
    assert marta.post(f"{conv.id}/reply", {"text": "Sí, aquí sigo."}).status_code == 200
    assert marta.post(f"{conv.id}/close").status_code == 200


def test_action_server_down_during_escalation_is_honest_and_leaves_no_half_case(stack):
    chat = Chat(stack.hub_url, locale="es-ES")
    chat.say("hola")
    with db(stack) as s:
        cases_before = len(s.execute(select(Case.id)).all())
    stack.stop_one("actions")
    try:
        r = chat.say("quiero hablar con una persona")
        assert "problema técnico" in Chat.texts(r) or "inténtalo" in Chat.texts(r).lower()
        conv = _conv(stack, chat.sender)
        assert conv.status == "bot"  # not silently queued without a case
        with db(stack) as s:
            assert len(s.execute(select(Case.id)).all()) == cases_before
    finally:
        stack.start(only="actions")
        stack.wait_healthy(timeout=120)
    r = chat.say("quiero hablar con una persona")
    assert "posición" in Chat.texts(r)
