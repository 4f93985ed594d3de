"""The three real processes (Rasa, actions, hub) and conversations through `/api/messages`.

Tests in this module share one started stack; the last one stops the action server.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
from sqlalchemy import select

from bot.db.models import Conversation, Message
from bot.db.session import session_factory
from bot.services.language import detect
from tests.conftest import Chat, run_cli

SPANISH_MARKERS = ("¡", "¿", "puedo", "ayudarte", "tienda", "hola")


def transcript(stack, sender: str) -> list[Message]:
    with session_factory(stack.settings.database_url)() as s:
        conv_ids = s.execute(select(Conversation.id).where(Conversation.sender == sender)
                             ).scalars().all()
        return list(s.execute(select(Message).where(Message.conversation_id.in_(conv_ids))
                              .order_by(Message.id)).scalars())


def assert_language(messages, lang: str) -> None:
    text = Chat.texts(messages)
    assert text, "no reply"
    assert detect(text).language == lang, text


def test_health_is_green(stack):
    resp = httpx.get(f"{stack.hub_url}/healthz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"rasa": True, "actions": True, "database": True}


def test_rasa_and_actions_are_not_public(stack):
    """Rasa's HTTP API needs the token; nothing but loopback is bound."""
    assert httpx.get(f"{stack.rasa_url}/status").status_code in (401, 403)
    for proc_port in (stack.rasa_port, stack.action_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://0.0.0.0:{proc_port}/".replace("0.0.0.0", _external_ip()),
                      timeout=2)


def _external_ip() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
        except OSError:
            ip = "127.0.0.2"
    return ip if not ip.startswith("127.0.0.1") else "127.0.0.2"


def test_spanish_conversation_and_transcript(stack):
    chat = Chat(stack.hub_url)
    greeting = chat.say("hola, buenos días")
    assert_language(greeting, "es")
    assert any(m.get("buttons") for m in greeting), "help menu with buttons"
    assert_language(chat.say("¿eres un robot?"), "es")
    assert_language(chat.say("muchas gracias"), "es")
    assert_language(chat.say("adiós"), "es")
    rows = transcript(stack, chat.sender)
    inbound = [r for r in rows if r.direction == "in"]
    outbound = [r for r in rows if r.direction == "out"]
    assert [r.text for r in inbound] == ["hola, buenos días", "¿eres un robot?",
                                         "muchas gracias", "adiós"]
    assert all(r.status == "ok" for r in inbound)
    assert len(outbound) >= 5 and all(r.author == "bot" for r in outbound)
    assert all(r.reply_to_id for r in outbound)


def test_english_conversation_by_text(stack):
    chat = Chat(stack.hub_url)
    assert_language(chat.say("hello there"), "en")
    assert_language(chat.say("are you a real person?"), "en")
    assert_language(chat.say("I want to talk to a human agent"), "en")
    assert_language(chat.say("thanks, bye"), "en")
    with session_factory(stack.settings.database_url)() as s:
        conv = s.execute(select(Conversation).where(Conversation.sender == chat.sender)
                         ).scalar_one()
        assert conv.language == "en" and conv.channel == "api"


def test_channel_locale_sets_language(stack):
    chat = Chat(stack.hub_url, locale="en-GB")
    assert_language(chat.say("hola"), "en")  # locale beats a one-word greeting


def test_explicit_choice_is_sticky(stack):
    chat = Chat(stack.hub_url, locale="es-ES")
    assert_language(chat.say("hola"), "es")
    switched = chat.say("can you speak English please?")
    assert "English" in Chat.texts(switched)
    assert_language(chat.say("gracias"), "en")  # explicit choice beats locale and text


def test_button_payload_as_text(stack):
    chat = Chat(stack.hub_url)
    chat.say("hola")
    reply = chat.say("/request_human")
    assert "SOP-" in Chat.texts(reply) and "posición" in Chat.texts(reply)


def test_two_step_fallback_hands_off_to_a_human(stack):
    chat = Chat(stack.hub_url, locale="es")
    first = chat.say("zxqv blorp fnarg")
    second = chat.say("qwpo zzkx vrrm")
    assert any(m.get("buttons") for m in first)  # first: rephrase, with suggestions
    assert "SOP-" in Chat.texts(second) and "posición" in Chat.texts(second)
    assert _conversation(stack, chat.sender).escalation_reason == "fallback"


@pytest.mark.parametrize(
    "text, lang",
    [
        ("", "es"),
        ("   \n\t  ", "es"),
        ("\u200b\u200b\u200b", "es"),
        ("👍👍", "es"),
        ("🤷‍♀️🤔", "es"),
        ("hola\x00\x07 quiero\u200b ayuda", "es"),
        ("x" * 10_000, "es"),
        ("hello " * 2000, "en"),
        ("hola! I need help with my order please", "en"),
    ],
    ids=["empty", "whitespace", "zero-width", "emoji", "emoji-zwj", "controls", "10k-x",
         "10k-words", "mixed"],
)
def test_bad_input_gets_a_polite_answer(stack, text, lang):
    chat = Chat(stack.hub_url)
    started = time.monotonic()
    replies = chat.say(text)
    assert time.monotonic() - started < 10
    assert replies and all(m.get("text") for m in replies)
    if any(c.isalpha() for c in text) or text.strip() == "":
        assert_language(replies, lang)
    rows = transcript(stack, chat.sender)
    assert rows[0].direction == "in" and rows[0].status == "ok"
    assert len(rows[0].text) <= 10_000 and "\x00" not in rows[0].text


def test_resent_message_id_is_answered_once(stack):
    chat = Chat(stack.hub_url)
    first = chat.say("hola", message_id="m-123")
    again = chat.say("hola", message_id="m-123")
    assert first == again
    assert len([r for r in transcript(stack, chat.sender) if r.direction == "in"]) == 1


@pytest.mark.parametrize(
    "sender", ["short", "has spaces in it 123", "x" * 200, "ñandú-ñandú-ñandú"])
def test_invalid_sender_is_refused(stack, sender):
    resp = httpx.post(f"{stack.hub_url}/api/messages", json={"sender": sender, "text": "hola"})
    assert resp.status_code == 422


def test_non_json_and_wrong_types_are_refused(stack):
    url = f"{stack.hub_url}/api/messages"
    assert httpx.post(url, content=b"not json",
                      headers={"content-type": "application/json"}).status_code == 422
    assert httpx.post(url, json={"sender": "a" * 20, "text": 123}).status_code == 422


def test_concurrent_turns_of_one_conversation_are_all_recorded(stack):
    import concurrent.futures as cf

    chat = Chat(stack.hub_url)
    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(chat.say, ["hola", "gracias", "¿eres un bot?", "adiós"]))
    assert all(results)
    rows = transcript(stack, chat.sender)
    assert len([r for r in rows if r.direction == "in"]) == 4
    assert len({r.conversation_id for r in rows}) == 1


def _conversation(stack, sender: str) -> Conversation:
    with session_factory(stack.settings.database_url)() as s:
        return s.execute(select(Conversation).where(Conversation.sender == sender)
                         .order_by(Conversation.id.desc())).scalars().first()


def _payloads(messages) -> list[str]:
    return [b["payload"] for m in messages for b in m.get("buttons", [])]


def test_faq_answer_then_confirmed_containment_es(stack):
    chat = Chat(stack.hub_url, locale="es-ES")
    reply = chat.say("¿cuánto tarda en llegar el reembolso cuando devuelvo algo?")
    assert "14 días" in Chat.texts(reply)  # refund-timing, from the knowledge base
    assert {"/affirm", "/deny"} <= set(_payloads(reply))  # "did this solve it?"
    assert_language(chat.say("sí, gracias"), "es")
    assert _conversation(stack, chat.sender).outcome == "resolved_bot_confirmed"


def test_faq_answer_not_solved_offers_a_way_forward_en(stack):
    chat = Chat(stack.hub_url, locale="en-GB")
    reply = chat.say("how long is the warranty on a washing machine?")
    assert "3-year" in Chat.texts(reply) or "3 years" in Chat.texts(reply)
    follow = chat.say("no")
    assert "/request_human" in _payloads(follow)
    assert_language(follow, "en")
    assert _conversation(stack, chat.sender).outcome == "faq_not_solved"


def test_faq_unknown_is_honest_and_offers_a_human(stack):
    chat = Chat(stack.hub_url, locale="es-ES")
    reply = chat.say("¿vendéis entradas para el concierto de mañana?")
    texts = Chat.texts(reply)
    assert "/request_human" in _payloads(reply), texts
    assert "14 días" not in texts


def test_suggestion_button_answers_that_entry(stack):
    chat = Chat(stack.hub_url, locale="en")
    reply = chat.say('/ask_faq{"faq_id": "invoices"}')
    assert "invoice" in Chat.texts(reply).lower()


def test_live_kb_edit_changes_the_running_bot(stack):
    env = {**os.environ, "DATABASE_URL": stack.settings.database_url}
    chat = Chat(stack.hub_url, locale="es-ES")
    question = "¿a qué hora abre el servicio de atención al cliente?"
    assert "9:00" in Chat.texts(chat.say(question))
    new = "Nuevo horario de prueba: atendemos de 8:00 a 22:00 todos los días."
    edit = run_cli("kb", "set-answer", "contact-hours", "--lang", "es", "--text", new, env=env)
    assert edit.returncode == 0, edit.stderr
    assert new in Chat.texts(Chat(stack.hub_url, locale="es-ES").say(question))


def test_action_server_down_gets_an_apology_and_keeps_the_message(stack):
    """Stops the action server of the shared stack, then starts it again."""
    stack.stop_one("actions")
    chat = Chat(stack.hub_url, locale="en")
    started = time.monotonic()
    replies = chat.say("hello")  # greet runs a custom action
    assert time.monotonic() - started < 15
    assert "technical problem" in Chat.texts(replies)
    rows = transcript(stack, chat.sender)
    assert rows[0].text == "hello" and rows[0].status == "failed"
    assert rows[1].author == "system"
    assert httpx.get(f"{stack.hub_url}/healthz").status_code == 503
    stack.start(only="actions")  # leave the shared stack as we found it
    stack.wait_healthy(timeout=60)
