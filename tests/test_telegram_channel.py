"""Telegram channel pieces without the Rasa stack: splitting, flood control, retries and the
hand-over codes, with PTB talking real HTTP to the local fake Bot API."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta

import pytest

from bot.core.config import Settings
from bot.db.models import ChannelLink, SenderAlias
from bot.hub.channels.telegram import FloodLimiter, TelegramChannel, split_text
from bot.services import channel_links
from tests.fakes.bot_api import FakeBotAPI

TOKEN = "654321:UNIT-token"


# ---- splitting ------------------------------------------------------------------------

def test_short_text_is_one_message():
    assert split_text("Hola. ¿Qué tal?") == ["Hola. ¿Qué tal?"]
    assert split_text("   ") == []


def test_long_text_is_split_at_sentence_boundaries():
    sentence = "La garantía legal cubre tres años desde la entrega del producto. "
    text = sentence * 150  # ~9,750 characters
    parts = split_text(text)
    assert len(parts) == 3
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.endswith(".") for p in parts)  # never cut mid-sentence
    assert " ".join(parts).split() == text.split()  # nothing lost or added


def test_paragraphs_are_preferred_over_sentences():
    para = ("Primera frase. " * 100).strip()
    parts = split_text(f"{para}\n\n{para}\n\n{para}", limit=2000)
    assert parts == [para, para, para]


def test_a_single_giant_word_is_cut_hard():
    parts = split_text("x" * 9000)
    assert [len(p) for p in parts] == [4096, 4096, 808]


# ---- hand-over codes ------------------------------------------------------------------

def test_link_code_is_single_use(session):
    code = channel_links.create_link(session, "web-aaaaaaaaaaaaaaaa", ttl_seconds=600)
    session.commit()
    assert len(code) >= 20
    assert session.query(ChannelLink).one().code_hash != code  # only a hash is stored
    assert channel_links.redeem(session, code, "tg-42") == "web-aaaaaaaaaaaaaaaa"
    assert channel_links.redeem(session, code, "tg-43") is None  # used
    session.commit()
    assert session.get(SenderAlias, "tg-42").sender == "web-aaaaaaaaaaaaaaaa"
    assert session.get(SenderAlias, "tg-43") is None
    assert channel_links.aliases_of(session, "web-aaaaaaaaaaaaaaaa", "tg-") == ["tg-42"]


def test_expired_unknown_and_absurd_codes_are_refused(session):
    code = channel_links.create_link(session, "web-bbbbbbbbbbbbbbbb", ttl_seconds=600)
    row = session.query(ChannelLink).one()
    row.expires_at = row.created_at - timedelta(seconds=1)
    session.commit()
    assert channel_links.redeem(session, code, "tg-1") is None
    assert channel_links.redeem(session, "not-a-code", "tg-1") is None
    assert channel_links.redeem(session, "", "tg-1") is None
    assert channel_links.redeem(session, "x" * 500, "tg-1") is None


# ---- sending through PTB against the fake Bot API -------------------------------------

@pytest.fixture
def api():
    with FakeBotAPI(token=TOKEN) as fake:
        yield fake


def _channel(api: FakeBotAPI) -> TelegramChannel:
    settings = Settings(telegram_bot_token=TOKEN,
                        telegram_api_url=api.base_url.rsplit("/bot", 1)[0])
    channel = TelegramChannel(settings, turns=None, sessions=None)
    channel.limiter = FloodLimiter(chat_burst=3, chat_rate=5.0, global_rate=100.0)
    return channel


def _run(coro):
    return asyncio.run(coro)


def test_long_reply_with_buttons_becomes_several_messages_keyboard_on_the_last(api):
    channel = _channel(api)
    text = "Esta es una frase de prueba bastante larga para el límite. " * 100
    item = {"id": "m77", "text": text,
            "buttons": [{"title": "Sí", "payload": "/affirm"},
                        {"title": "No", "payload": "/deny"}]}
    _run(channel.send_items(555, [item]))
    sent = api.sent(555)
    assert len(sent) == 2 and all(len(m["text"]) <= 4096 for m in sent)
    assert sent[0].get("reply_markup") in (None, {})
    keyboard = sent[1]["reply_markup"]["inline_keyboard"]
    data = [b["callback_data"] for row in keyboard for b in row]
    assert data == ["b:77:0", "b:77:1"]  # 64-byte limit: buttons point at the transcript


def test_flood_control_429_is_waited_out_and_sent_once(api):
    channel = _channel(api)
    api.fail_next("sendMessage", times=1, kind="retry_after", retry_after=1)
    started = time.monotonic()
    _run(channel.send_items(1, [{"id": "m1", "text": "hola"}]))
    assert time.monotonic() - started >= 0.9
    assert [m["text"] for m in api.sent(1)] == ["hola"]


@pytest.mark.parametrize("kind", ["server_error", "drop"])
def test_network_errors_are_retried_without_duplicates(api, kind):
    channel = _channel(api)
    api.fail_next("sendMessage", times=2, kind=kind)
    _run(channel.send_items(2, [{"id": "m1", "text": "uno"}, {"id": "m2", "text": "dos"}]))
    assert [m["text"] for m in api.sent(2)] == ["uno", "dos"]
    faults = [c for c in api.calls("sendMessage") if c.get("fault")]
    assert len(faults) == 2


def test_per_chat_rate_is_respected_and_other_chats_are_not_held_up(api):
    channel = _channel(api)
    channel.limiter = FloodLimiter(chat_burst=2, chat_rate=2.0, global_rate=100.0)

    async def both():
        await asyncio.gather(
            channel.send_items(10, [{"id": f"m{i}", "text": f"a{i}"} for i in range(6)]),
            channel.send_items(11, [{"id": "m9", "text": "b"}]),
        )
    _run(both())
    times = [m["time"] for m in api.sent(10)]
    assert [m["text"] for m in api.sent(10)] == [f"a{i}" for i in range(6)]
    # burst of 2, then 2 per second: the 6th message goes out ≥ 1.8 s after the first
    assert times[-1] - times[0] >= 1.8
    other = api.sent(11)[0]["time"]
    assert other - times[0] < 0.5  # chat 11 did not wait behind chat 10


def test_blocked_bot_or_bad_request_does_not_raise(api):
    channel = _channel(api)
    assert _run(channel._send_text(3, "x" * 10)) is True
    # an empty text is a BadRequest at Telegram: logged, not raised, nothing sent
    assert _run(channel._send_text(3, "")) is True
    assert len(api.sent(3)) == 1


def test_secret_token_check_is_exact(api):
    channel = _channel(api)
    assert channel.check_secret(channel.secret)
    assert not channel.check_secret(None)
    assert not channel.check_secret(channel.secret + "x")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", channel.secret)  # what Telegram accepts
