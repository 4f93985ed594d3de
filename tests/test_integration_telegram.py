"""Telegram end to end: the real hub (python-telegram-bot inside) long-polls a local fake Bot
API, real Rasa and action server answer. A second hub runs in webhook mode."""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.core.config import Settings
from bot.db.models import Case, Conversation, Message, SurveyResponse
from bot.db.session import session_scope
from bot.services import cases as cases_svc
from tests.conftest import ARTIFACTS, Chat, free_port
from tests.fakes.bot_api import FakeBotAPI

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
# random base: other modules (the console's browser test) talk to the same fake Bot API
_chat_ids = itertools.count(secrets.randbelow(10**9) + 10**9)


def db(stack):
    return session_scope(stack.settings.database_url)


class TgUser:
    """A Telegram user typing into the fake Bot API; waits for the bot to finish answering."""

    def __init__(self, api: FakeBotAPI, language_code: str = "es") -> None:
        self.api = api
        self.chat_id = next(_chat_ids)
        self.lang = language_code

    def _settle(self, before: int, timeout: float = 40.0, quiet: float = 1.2) -> list[dict]:
        self.api.wait_for_sent(self.chat_id, before + 1, timeout=timeout)
        count, stable_since = len(self.api.sent(self.chat_id)), time.monotonic()
        while time.monotonic() - stable_since < quiet:
            time.sleep(0.1)
            now = len(self.api.sent(self.chat_id))
            if now != count:
                count, stable_since = now, time.monotonic()
        return self.api.sent(self.chat_id)[before:]

    def say(self, text: str) -> list[dict]:
        before = len(self.api.sent(self.chat_id))
        self.last_update = self.api.user_sends_text(self.chat_id, text,
                                                    language_code=self.lang)
        return self._settle(before)

    def press(self, title: str) -> list[dict]:
        for msg in reversed(self.api.sent(self.chat_id)):
            for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == title:
                        before = len(self.api.sent(self.chat_id))
                        self.last_update = self.api.user_presses(
                            self.chat_id, msg["message_id"], button["callback_data"],
                            language_code=self.lang)
                        return self._settle(before)
        raise AssertionError(f"no button {title!r} in {self.api.sent(self.chat_id)[-3:]}")

    def photo(self, data: bytes) -> list[dict]:
        before = len(self.api.sent(self.chat_id))
        self.api.user_sends_photo(self.chat_id, data)
        return self._settle(before)

    def push(self, body: dict[str, Any]) -> list[dict]:
        before = len(self.api.sent(self.chat_id))
        self.api.push_update(body)
        return self._settle(before)


def texts(msgs: list[dict]) -> str:
    return "\n".join(m["text"] for m in msgs)


def titles(msgs: list[dict]) -> list[str]:
    return [b["text"] for m in msgs
            for row in (m.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


@pytest.fixture(scope="module")
def tg(stack, bot_api):
    deadline = time.monotonic() + 60
    while not bot_api.calls("getUpdates"):
        assert time.monotonic() < deadline, "the hub never started polling the Bot API"
        time.sleep(0.2)
    health = httpx.get(f"{stack.hub_url}/healthz", timeout=10).json()
    assert health["channels"]["telegram"] == "polling"
    return bot_api


def test_start_greets_in_the_users_language_and_help(stack, tg):
    en = TgUser(tg, "en")
    assert "Hi!" in texts(en.say("/start"))
    es = TgUser(tg, "es")
    assert "¡Hola!" in texts(es.say("/start"))
    assert "Puedo ayudarte" in texts(es.say("/help"))


def test_faq_with_inline_buttons(stack, tg):
    user = TgUser(tg)
    r = user.say("¿Cuánto dura la garantía de un producto?")
    assert "3 años" in texts(r) or "tres años" in texts(r)
    assert "Sí, gracias" in titles(r)
    keyboard_msg = next(m for m in r if m.get("reply_markup"))
    after = user.press("Sí, gracias")
    assert after  # the bot went on (survey or a closing line)
    answers = tg.callback_answers
    assert any(a["callback_query_id"] == user.last_update["callback_query"]["id"]
               for a in answers)
    edits = [c["params"] for c in tg.calls("editMessageReplyMarkup")]
    assert any(int(e["message_id"]) == keyboard_msg["message_id"]
               and int(e["chat_id"]) == user.chat_id and not e.get("reply_markup")
               for e in edits)  # the keyboard was removed after the choice
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(
            Conversation.sender == f"tg-{user.chat_id}")).scalar_one()
        assert conv.channel == "telegram"
        inbound = s.execute(select(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")
            .order_by(Message.id)).scalars().all()
        assert inbound[-1].text.startswith("/") and inbound[-1].payload == {"title": "Sí, gracias"}
        assert {m.channel for m in inbound} == {"telegram"}


def test_warranty_claim_with_buttons_and_a_photo(stack, tg):
    user = TgUser(tg)
    # Lucía's headphones: no other test claims warranty on them (a duplicate would be shown)
    r = user.say("los auriculares no cargan y quiero usar la garantía")
    assert "PED-000123" in texts(r)  # asks for the order number, with an example
    assert "correo" in texts(user.say("PED-000123"))
    r = user.say("lucia.martin@example.com")  # three products: buttons
    r = user.press(next(t for t in titles(r) if "Auriculares" in t))
    assert titles(r), texts(r)  # kind of problem: buttons
    r = user.press(titles(r)[0])
    user.say("no cargan aunque los deje toda la noche enchufados")
    r = user.say("hace 2 semanas")
    assert "foto" in texts(r)
    r = user.photo(PNG)  # accepted because the flow asked for it
    assert titles(r), texts(r)
    r = user.press(titles(r)[0])  # preferred resolution
    assert "PED-000123" in texts(r) and "Foto: adjunta" in texts(r)
    r = user.press(next(t for t in titles(r) if t.lower().startswith("s")))  # confirm
    number = next(w.strip(".,:;()") for w in texts(r).split() if w.startswith("GAR-"))
    with db(stack) as s:
        case = s.execute(select(Case).where(Case.number == number)).scalar_one()
        assert case.details["photo_id"] and case.type == "warranty"
        conv = s.get(Conversation, case.conversation_id)
        assert conv.sender == f"tg-{user.chat_id}" and conv.customer_id == case.customer_id
    assert "Del 1" in texts(r)  # the closing survey starts (CES)
    r = user.press("6") if "6" in titles(r) else user.say("6")
    assert "recomiendes" in texts(r)
    user.say("9")
    with db(stack) as s:
        survey = s.execute(select(SurveyResponse).where(
            SurveyResponse.case_id == case.id)).scalar_one()
        assert (survey.ces, survey.nps) == (6, 9)


def test_language_command_switches_with_a_keyboard(stack, tg):
    user = TgUser(tg, "es")
    r = user.say("/idioma")
    assert titles(r) == ["Español", "English"]
    r = user.press("English")
    assert "English" in texts(r) or "english" in texts(r).lower()
    r = user.say("how long is the warranty?")
    assert re.search(r"3.year|three.year", texts(r))
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(
            Conversation.sender == f"tg-{user.chat_id}")).scalar_one()
        assert (conv.language, conv.language_source) == ("en", "explicit")


def test_duplicate_update_is_processed_once(stack, tg):
    user = TgUser(tg)
    user.say("hola")
    update = user.last_update
    before = len(tg.sent(user.chat_id))
    tg.redeliver(update)
    tg.redeliver(update)
    time.sleep(3)
    assert len(tg.sent(user.chat_id)) == before
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(
            Conversation.sender == f"tg-{user.chat_id}")).scalar_one()
        inbound = s.execute(select(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")).scalars().all()
        assert [m.client_message_id for m in inbound] == [f"tg:{update['update_id']}"]


def test_messages_of_one_chat_are_answered_in_order(stack, tg):
    user = TgUser(tg)
    sent = ["hola", "¿cuánto tarda el reembolso?", "¿y la garantía cuánto dura?"]
    for text in sent:
        tg.user_sends_text(user.chat_id, text)
    user._settle(0, quiet=2.5)
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(
            Conversation.sender == f"tg-{user.chat_id}")).scalar_one()
        inbound = s.execute(select(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")
            .order_by(Message.id)).scalars().all()
        assert [m.text for m in inbound] == sent
        replies = s.execute(select(Message).where(
            Message.conversation_id == conv.id, Message.direction == "out")
            .order_by(Message.id)).scalars().all()
        # each reply answers the message before it in the transcript
        assert [r.reply_to_id for r in replies] == sorted(r.reply_to_id for r in replies)
    out = texts(tg.sent(user.chat_id))
    assert out.index("14 días") < out.index("3 años")


def test_media_edits_and_unknown_updates_get_polite_answers(stack, tg):
    user = TgUser(tg)
    user.say("hola")
    chat = {"id": user.chat_id, "type": "private", "first_name": "Test"}
    sender = {"id": user.chat_id, "is_bot": False, "first_name": "Test", "language_code": "es"}
    base = {"message_id": 9000, "date": int(time.time()), "chat": chat, "from": sender}
    for extra in ({"sticker": {"file_id": "s1", "file_unique_id": "s1", "width": 512,
                               "height": 512, "is_animated": False, "is_video": False,
                               "type": "regular"}},
                  {"voice": {"file_id": "v1", "file_unique_id": "v1", "duration": 3}},
                  {"location": {"latitude": 40.4, "longitude": -3.7}}):
        r = user.push({"message": {**base, **extra}})
        assert "solo puedo leer texto y fotos" in texts(r)
    r = user.push({"edited_message": {**base, "text": "editado", "edit_date": int(time.time())}})
    assert "editado un mensaje" in texts(r)
    before = len(tg.sent(user.chat_id))
    tg.push_update({"poll": {"id": "p1", "question": "?", "options": [], "total_voter_count": 0,
                             "is_closed": False, "is_anonymous": True, "type": "regular",
                             "allows_multiple_answers": False}})
    tg.push_update({"my_chat_member": {"chat": chat, "from": sender, "date": 1,
                                       "old_chat_member": {"status": "member", "user": sender},
                                       "new_chat_member": {"status": "kicked", "user": sender,
                                                           "until_date": 0}}})
    tg.push_update({"something_new_from_2030": {"x": 1}})
    r = user.say("¿cuánto dura la garantía?")  # still answering, nothing crashed
    assert "3 años" in texts(r)
    assert len(tg.sent(user.chat_id)) > before
    r = user.photo(PNG)  # a photo nobody asked for
    assert "foto" in texts(r)


def test_giant_message_is_answered(stack, tg):
    user = TgUser(tg)
    r = user.say("hola " + "bla " * 6000)
    assert r and all(len(m["text"]) <= 4096 for m in r)


def test_widget_conversation_continues_on_telegram_with_a_one_time_link(stack, tg):
    web = Chat(stack.hub_url)
    r = web.say("quiero reclamar la garantía de mi sofá",
                metadata={"locale": "es-ES", "channel": "web"})
    assert "número de tu pedido" in Chat.texts(r)
    link = httpx.post(f"{stack.hub_url}/api/telegram-link", json={"sender": web.sender},
                      timeout=10)
    assert link.status_code == 200, link.text
    url = link.json()["url"]
    assert url.startswith("https://t.me/postventa_test_bot?start=")
    code = url.split("start=", 1)[1]
    user = TgUser(tg)
    assert "Seguimos aquí" in texts(user.say(f"/start {code}"))
    r = user.say("PED-000245")  # the form started on the web goes on here
    assert "correo" in texts(r)
    intruder = TgUser(tg)
    assert "ya no es válido" in texts(intruder.say(f"/start {code}"))  # single use
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(
            Conversation.sender == web.sender)).scalar_one()
        channels = [m.channel for m in s.execute(select(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")
            .order_by(Message.id)).scalars()]
        assert channels == ["web", "telegram"]
        assert s.execute(select(Conversation).where(
            Conversation.sender == f"tg-{user.chat_id}")).scalar_one_or_none() is None
    bad = httpx.post(f"{stack.hub_url}/api/telegram-link", json={"sender": "short"}, timeout=10)
    assert bad.status_code == 422
    unknown = httpx.post(f"{stack.hub_url}/api/telegram-link",
                         json={"sender": "w" * 20}, timeout=10)
    assert unknown.status_code == 404


def test_verified_customer_is_recognised_on_the_other_channel(stack, tg):
    with db(stack) as s:  # Carmen opened a claim on Telegram earlier
        tg_conv = Conversation(sender=f"tg-{next(_chat_ids)}", channel="telegram")
        s.add(tg_conv)
        s.flush()
        from bot.db.models import Order, OrderLine

        # Carmen: other tests lock PED-000518 on purpose (three failed verifications)
        line = s.execute(select(OrderLine).join(Order).where(
            Order.number == "PED-000402").order_by(OrderLine.id)).scalars().first()
        opened = cases_svc.open_case(
            s, case_type="warranty", customer_id=s.get(Order, line.order_id).customer_id,
            order_line_id=line.id, conversation_id=tg_conv.id, category="broken",
            description="no enfría", idempotency_key=f"t-{secrets.token_hex(4)}")
        number = opened.case.number
    web = Chat(stack.hub_url, locale="es-ES")
    web.say("el frigorífico hace un ruido muy fuerte, quiero la garantía")
    web.say("PED-000402")
    r = web.say("carmen.ortega@example.com")
    assert number in Chat.texts(r) and "Hola de nuevo" not in Chat.texts(r)
    assert "tienes abierto" in Chat.texts(r)
    with db(stack) as s:
        conv = s.execute(select(Conversation).where(
            Conversation.sender == web.sender)).scalar_one()
        assert conv.customer_id == s.execute(select(Case.customer_id).where(
            Case.number == number)).scalar_one()


# ---- webhook mode: a second hub, its own fake Bot API --------------------------------

@pytest.fixture(scope="module")
def webhook_hub(stack):
    from bot.stack import Stack

    api = FakeBotAPI(token="777:WEBHOOK-token", username="postventa_hook_bot")
    api.start()
    port = free_port()
    secret = secrets.token_urlsafe(24)
    settings = Settings(database_url=stack.settings.database_url,
                        rasa_token=stack.settings.rasa_token, hub_port=port,
                        rasa_timeout=8.0, rasa_tracker_url=stack.settings.rasa_tracker_url)
    hub = Stack(settings, rasa_port=stack.rasa_port, action_port=stack.action_port,
                log_dir=ARTIFACTS / "stack-logs-webhook",
                extra_env={"TELEGRAM_BOT_TOKEN": "777:WEBHOOK-token",
                           "TELEGRAM_API_URL": api.base_url.rsplit("/bot", 1)[0],
                           "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
                           "TELEGRAM_WEBHOOK_SECRET": secret})
    hub.start(only="hub")
    try:
        hub.wait_healthy(timeout=60)
        deadline = time.monotonic() + 30
        while not (api.webhook_info or {}).get("url"):
            assert time.monotonic() < deadline, "the hub never registered its webhook"
            time.sleep(0.2)
        yield api, f"http://127.0.0.1:{port}/telegram/webhook", secret
    finally:
        hub.stop_one("hub")
        api.stop()


def test_webhook_is_registered_with_a_secret_and_refuses_forgeries(webhook_hub):
    api, url, secret = webhook_hub
    assert api.webhook_info["secret_token"] == secret
    update = {"update_id": 990001, "message": {
        "message_id": 1, "date": int(time.time()), "text": "hola",
        "chat": {"id": 4242, "type": "private"},
        "from": {"id": 4242, "is_bot": False, "first_name": "Eve"}}}
    assert api.post_to_webhook(url, update, secret=None) == 403
    assert api.post_to_webhook(url, update, secret="wrong") == 403
    assert api.post_to_webhook(url, b"{not json", secret=secret) == 400
    assert api.post_to_webhook(url, {"hello": "world"}, secret=secret) == 400
    assert api.post_to_webhook(url, b"[1, 2]", secret=secret) == 400
    assert api.post_to_webhook(url, {"update_id": 990002, "weird_new_type": {}},
                               secret=secret) == 200
    assert api.sent(4242) == []  # forged or meaningless: nothing reached a customer


def test_webhook_conversation_end_to_end(webhook_hub):
    api, _url, _secret = webhook_hub
    user = TgUser(api, "en")
    r = user.say("how long do refunds take?")
    assert "14 days" in texts(r)
    r = user.press(titles(r)[0])
    assert r
    update = user.last_update
    api.redeliver(update)  # Telegram retried the webhook: processed once
    time.sleep(2)
    assert json.dumps(api.sent(user.chat_id)[-1]) == json.dumps(r[-1])
