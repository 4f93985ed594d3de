"""Self-tests of the fake Telegram Bot API (tests/fakes/bot_api.py).

The integration tests trust the fake to behave like Telegram as seen through
python-telegram-bot, so these tests drive it with a real ``telegram.Bot`` (real HTTP, real
PTB encoding and error mapping) rather than calling its internals. Each test is sub-second.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)

from tests.fakes.bot_api import SECRET_HEADER, FakeBotAPI, post_to_webhook

T = TypeVar("T")
CHAT = 5550001


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(webhook_retry_delay=0.05) as fake:
        yield fake
    assert fake.errors == [], "the fake itself crashed"


def with_bot(api: FakeBotAPI, body: Callable[[telegram.Bot], Awaitable[T]], token: str = "") -> T:
    """Run ``body`` with a PTB Bot pointed at the fake (sync tests: no pytest-asyncio)."""

    async def main() -> T:
        bot = telegram.Bot(
            token or api.token, base_url=api.base_url, base_file_url=api.base_file_url
        )
        async with bot:
            return await body(bot)

    return asyncio.run(main())


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data)]
                                 for text, data in pairs])


def seconds(retry_after: int | dtm.timedelta) -> float:
    """PTB 22 returns int (deprecated) or timedelta (PTB_TIMEDELTA=true)."""
    if isinstance(retry_after, dtm.timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


def test_get_me_and_send_message_with_keyboard(api: FakeBotAPI) -> None:
    async def body(bot: telegram.Bot) -> tuple[telegram.User, telegram.Message]:
        me = await bot.get_me()
        msg = await bot.send_message(
            CHAT, "¿Qué necesitas?", reply_markup=keyboard(("Pedido", "order"), ("Otro", "x"))
        )
        return me, msg

    me, msg = with_bot(api, body)
    assert me.username == "postventa_test_bot" and me.is_bot
    assert msg.message_id == 1 and msg.chat.id == CHAT and msg.from_user.id == me.id
    sent = api.sent(CHAT)
    assert [s["text"] for s in sent] == ["¿Qué necesitas?"]
    buttons = sent[0]["reply_markup"]["inline_keyboard"]
    assert [row[0]["callback_data"] for row in buttons] == ["order", "x"]
    # PTB sent chat_id as the string "5550001"; the fake types it like Telegram does.
    assert api.calls("sendmessage")[0]["params"]["chat_id"] == CHAT


def test_updates_offset_confirmation_and_long_poll(api: FakeBotAPI) -> None:
    first = api.user_sends_text(CHAT, "/start promo", language_code="en")

    async def body(bot: telegram.Bot) -> tuple[Any, ...]:
        updates = await bot.get_updates(timeout=0)
        again = await bot.get_updates(timeout=0)  # not confirmed yet: same update
        threading.Timer(0.3, api.user_sends_text, (CHAT, "hola")).start()
        start = time.monotonic()
        waited = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
        return updates, again, waited, time.monotonic() - start

    updates, again, waited, elapsed = with_bot(api, body)
    assert [u.update_id for u in updates] == [first["update_id"]] == [u.update_id for u in again]
    message = updates[0].message
    assert message.text == "/start promo" and message.from_user.language_code == "en"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6
    assert [u.message.text for u in waited] == ["hola"]
    assert waited[0].message.message_id == 2  # per-chat message ids
    assert 0.2 < elapsed < 2, "long poll must return as soon as the update arrives"


def test_callback_press_is_answered_once(api: FakeBotAPI) -> None:
    async def body(bot: telegram.Bot) -> telegram.Update:
        msg = await bot.send_message(CHAT, "¿Resuelto?", reply_markup=keyboard(("Sí", "yes")))
        api.user_presses(CHAT, msg.message_id, "yes", require_button=True)
        (update,) = await bot.get_updates(timeout=1)
        assert await bot.answer_callback_query(update.callback_query.id, text="¡Gracias!")
        with pytest.raises(BadRequest, match="(?i)query is too old"):
            await bot.answer_callback_query(update.callback_query.id)
        return update

    update = with_bot(api, body)
    query = update.callback_query
    assert query.data == "yes" and query.from_user.id == CHAT
    assert query.message.message_id == 1 and query.message.text == "¿Resuelto?"
    assert [a["text"] for a in api.callback_answers] == ["¡Gracias!"]


def test_edit_reply_markup_removes_keyboard(api: FakeBotAPI) -> None:
    async def body(bot: telegram.Bot) -> telegram.Message:
        msg = await bot.send_message(CHAT, "Elige", reply_markup=keyboard(("A", "a")))
        edited = await bot.edit_message_reply_markup(CHAT, msg.message_id)
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_reply_markup(CHAT, msg.message_id)
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await bot.edit_message_reply_markup(CHAT, 999, reply_markup=keyboard(("B", "b")))
        await bot.edit_message_text("Elegido: A", CHAT, msg.message_id)
        return edited

    edited = with_bot(api, body)
    assert edited.reply_markup is None and edited.edit_date is not None
    assert api.message(CHAT, 1)["text"] == "Elegido: A"
    assert [e["method"] for e in api.edits(CHAT)] == ["editMessageReplyMarkup", "editMessageText"]


def test_photo_download(api: FakeBotAPI) -> None:
    data = bytes(range(256)) * 40
    api.user_sends_photo(CHAT, data, caption="la caja rota")

    async def body(bot: telegram.Bot) -> tuple[telegram.Message, bytearray]:
        (update,) = await bot.get_updates(timeout=0)
        file = await bot.get_file(update.message.photo[-1].file_id)
        with pytest.raises(BadRequest, match="(?i)invalid file_id"):
            await bot.get_file("nope")
        return update.message, await file.download_as_bytearray()

    message, downloaded = with_bot(api, body)
    assert message.caption == "la caja rota" and len(message.photo) == 2
    assert bytes(downloaded) == data


def test_retry_after_fault(api: FakeBotAPI) -> None:
    api.fail_next("sendMessage", kind="retry_after", retry_after=2)

    async def body(bot: telegram.Bot) -> RetryAfter:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(CHAT, "uno")
        await bot.send_message(CHAT, "dos")  # only the next call was faulted
        return caught.value

    error = with_bot(api, body)
    assert seconds(error.retry_after) == 2
    assert [s["text"] for s in api.sent(CHAT)] == ["dos"]
    assert [c.get("fault") for c in api.calls("sendMessage")] == ["retry_after", None]


@pytest.mark.parametrize("kind", ["server_error", "drop"])
def test_network_faults_send_nothing(api: FakeBotAPI, kind: str) -> None:
    api.fail_next("sendMessage", kind=kind)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(NetworkError) as caught:
            await bot.send_message(CHAT, "hola")
        assert not isinstance(caught.value, RetryAfter)

    with_bot(api, body)
    assert api.sent() == []
    assert api.calls("sendMessage")[0]["fault"] == kind


def test_wrong_token_and_unknown_method(api: FakeBotAPI) -> None:
    async def body(bot: telegram.Bot) -> None:
        await bot.get_me()

    with pytest.raises(InvalidToken):
        with_bot(api, body, token="999999:WRONG-token")
    status, payload = raw_request(api, "POST", f"/bot{api.token}/sendSticker", b"", "")
    assert (status, payload) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})


def test_text_validation(api: FakeBotAPI) -> None:
    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await bot.send_message(CHAT, "a" * 4097)
        await bot.send_message(CHAT, "ñ" * 4096)
        with pytest.raises(BadRequest, match="(?i)can't parse entities"):
            await bot.send_message(CHAT, "te quiero <3", parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)reserved"):
            await bot.send_message(CHAT, "Pedido 123. Gracias!", parse_mode="MarkdownV2")
        await bot.send_message(CHAT, r"*Pedido* 123\. Gracias\!", parse_mode="MarkdownV2")
        await bot.send_message(CHAT, "<b>Pedido</b> 1 &lt; 2", parse_mode="HTML")
        # The limit applies to the visible text, after entity parsing.
        await bot.send_message(CHAT, f"<b>{'a' * 4096}</b>", parse_mode="HTML")
        api.set_blocked(CHAT)
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(CHAT, "¿sigues ahí?")

    with_bot(api, body)
    assert len(api.sent(CHAT)) == 4
    status, payload = raw_request(api, "POST", f"/bot{api.token}/sendMessage",
                                  json.dumps({"chat_id": CHAT + 1, "text": " "}).encode(),
                                  "application/json")
    assert status == 400 and payload["description"] == "Bad Request: message text is empty"


def test_redelivered_update_survives_confirmation(api: FakeBotAPI) -> None:
    update = api.user_sends_text(CHAT, "hola")

    async def body(bot: telegram.Bot) -> list[int]:
        (first,) = await bot.get_updates(timeout=0)
        api.redeliver(update)
        again = await bot.get_updates(offset=first.update_id + 1, timeout=0)
        rest = await bot.get_updates(offset=again[-1].update_id + 1, timeout=0)
        return [u.update_id for u in again + rest]

    assert with_bot(api, body) == [update["update_id"]]
    assert api.pending_update_count == 0


def test_push_update_and_allowed_updates(api: FakeBotAPI) -> None:
    api.push_update({"edited_message": {"message_id": 1, "date": 0, "text": "x",
                                        "chat": {"id": CHAT, "type": "private"}}})
    api.push_update({"my_chat_member": {}})
    api.push_update({"message_reaction": {}})  # excluded by Telegram unless asked for

    async def body(bot: telegram.Bot) -> tuple[list[telegram.Update], list[telegram.Update]]:
        everything = await bot.get_updates(timeout=0)
        api.push_update({"edited_message": {}})
        api.user_sends_text(CHAT, "hola")
        only_messages = await bot.get_updates(
            offset=everything[-1].update_id + 1, timeout=0, allowed_updates=["message"]
        )
        return everything, only_messages

    everything, only_messages = with_bot(api, body)
    assert [u.edited_message is not None for u in everything] == [True, False]
    assert [u.message.text for u in only_messages] == ["hola"]


def test_raw_protocol_encodings(api: FakeBotAPI) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    with httpx.Client(base_url=f"http://127.0.0.1:{api.port}") as client:
        url = f"/bot{api.token}/SENDMESSAGE"  # method names are case-insensitive
        r1 = client.post(url, json={"chat_id": CHAT, "text": "json", "reply_markup": markup})
        r2 = client.post(url, files={"x": ("x.txt", b"\x00\r\n")},
                         data={"chat_id": str(CHAT), "text": "multi\r\npart",
                               "reply_markup": json.dumps(markup)})
        r3 = client.get(url, params={"chat_id": CHAT, "text": "get"})
        r4 = client.post(f"/bot{api.token}/getMe")
    assert [r.status_code for r in (r1, r2, r3, r4)] == [200] * 4
    assert r4.json()["result"]["username"] == api.username
    assert [s["text"] for s in api.sent(CHAT)] == ["json", "multi\r\npart", "get"]
    assert [s["reply_markup"] for s in api.sent(CHAT)] == [markup, markup, None]
    assert api.calls("sendMessage")[1]["params"]["x"]["data"] == b"\x00\r\n"


class _Recorder(BaseHTTPRequestHandler):
    """A tiny webhook endpoint: answers 500 to the first request, 200 afterwards."""

    received: list[tuple[dict[str, str], dict[str, Any]]]

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparseable": raw.decode("utf-8", "replace")}
        self.received.append((dict(self.headers.items()), body))
        self.send_response(500 if len(self.received) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""


def test_webhook_delivery_with_secret_and_retry(api: FakeBotAPI) -> None:
    handler = type("Recorder", (_Recorder,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/telegram"
    try:
        async def body(bot: telegram.Bot) -> telegram.WebhookInfo:
            assert await bot.set_webhook(hook, secret_token="s3cr3t", allowed_updates=["message"])
            with pytest.raises(Conflict, match="(?i)webhook is active"):
                await bot.get_updates(timeout=0)
            update = api.user_sends_text(CHAT, "hola")
            assert api.wait_until(lambda: len(handler.received) >= 2, timeout=5)
            assert handler.received[-1][1] == update
            return await bot.get_webhook_info()

        info = with_bot(api, body)
        headers = {k.lower(): v for k, v in handler.received[-1][0].items()}
        assert headers[SECRET_HEADER.lower()] == "s3cr3t"
        assert info.url == hook and info.last_error_message
        assert [d["status"] for d in api.webhook_deliveries] == [500, 200]
        assert post_to_webhook(hook, b"{not json", secret=None) == 200
        assert api.webhook_info["secret_token"] == "s3cr3t"
    finally:
        server.shutdown()
        server.server_close()


def raw_request(
    api: FakeBotAPI, method: str, path: str, body: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    """Bypass PTB to check exact status codes and bodies."""
    request = urllib.request.Request(f"http://127.0.0.1:{api.port}{path}", data=body or None,
                                     method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
