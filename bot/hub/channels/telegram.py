"""Telegram channel on python-telegram-bot 22: webhook (production) or long polling (dev).

We use PTB's ``Bot`` (typed Bot API calls, errors, ``Update`` parsing) but not its
``Application``: the hub needs exactly these guarantees, which are simpler to own than to
configure —

* an ``update_id`` is processed once, remembered in the database (restarts included);
* the updates of one chat are processed in arrival order (one worker per active chat), while
  different chats proceed in parallel;
* sends respect Telegram's flood limits (≈1 message/s per chat after a short burst, 30/s in
  all), wait out a 429's ``retry_after``, and retry connection failures with back-off. A send
  that *timed out* is not retried: Telegram may have delivered it, and a duplicate message is
  worse than a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.core.config import Settings
from bot.db.models import Conversation, Message, TelegramUpdate
from bot.hub import leader, texts
from bot.hub.turns import TurnResult, TurnService
from bot.services import channel_links
from bot.services import conversations as convs
from bot.services.photo_intake import PhotoRefused, accept_photo
from bot.services.uploads import UploadRejected

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TEXT = 4096
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
SENDER_PREFIX = "tg-"
LEADER_RETRY_SECONDS = 3.0  # how often a hub that does not poll checks the lease
_UNSUPPORTED = ("sticker", "voice", "audio", "video", "video_note", "animation", "document",
                "location", "venue", "contact", "poll", "dice", "game", "story")


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long reply into messages of at most ``limit`` characters, at paragraph, then
    sentence, then word boundaries — never in the middle of a word unless one is longer."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for pattern in (r"\n\s*\n", r"\n", r"(?<=[.!?…])\s", r"\s"):
            matches = [m.end() for m in re.finditer(pattern, window)]
            good = [m for m in matches if m >= limit // 3]
            if good:
                cut = good[-1]
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return [p for p in parts if p]


def _seconds(value: Any) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class _Bucket:
    def __init__(self, burst: float, rate: float) -> None:
        self.capacity, self.rate = burst, rate
        self.tokens, self.stamp = burst, time.monotonic()

    def delay(self) -> float:
        """Seconds until one token is free (0 = take it now)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class FloodLimiter:
    """Telegram's limits: about one message per second per chat (a short burst is tolerated)
    and 30 per second overall. Waiting here avoids the 429s instead of provoking them."""

    def __init__(self, chat_burst: float = 3, chat_rate: float = 1.0,
                 global_rate: float = 30.0) -> None:
        self.chat_burst, self.chat_rate = chat_burst, chat_rate
        self.global_bucket = _Bucket(global_rate, global_rate)
        self.chats: dict[int, _Bucket] = {}

    async def wait(self, chat_id: int) -> None:
        bucket = self.chats.setdefault(chat_id, _Bucket(self.chat_burst, self.chat_rate))
        while (d := bucket.delay()) > 0:
            await asyncio.sleep(d)
        while (d := self.global_bucket.delay()) > 0:
            await asyncio.sleep(d)
        if len(self.chats) > 10_000:  # forget idle chats (full buckets)
            for key in [k for k, b in self.chats.items() if b.tokens >= b.capacity - 1e-9]:
                self.chats.pop(key, None)


@dataclass
class _Job:
    update: Update


class TelegramChannel:
    """Owns the PTB ``Bot``; fed by the webhook route or by its own polling loop."""

    max_attempts = 6

    def __init__(self, settings: Settings, turns: TurnService,
                 sessions: Callable[[], Any]) -> None:
        self.settings = settings
        self.turns = turns
        self.sessions = sessions
        self.limiter = FloodLimiter()
        self.username: str | None = None
        self.ready = False
        self.webhook_mode = bool(settings.telegram_webhook_url)
        self.secret = settings.telegram_webhook_secret or hmac.new(
            settings.secret_key.encode() or b"postventa", b"telegram-webhook",
            hashlib.sha256).hexdigest()
        base = settings.telegram_api_url.rstrip("/")
        self.bot = Bot(
            settings.telegram_bot_token,
            base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
            request=HTTPXRequest(connection_pool_size=16, connect_timeout=5.0,
                                 read_timeout=10.0, write_timeout=10.0),
            get_updates_request=HTTPXRequest(connection_pool_size=2, connect_timeout=5.0,
                                             read_timeout=10.0),
        )
        self._queues: dict[int, asyncio.Queue[_Job]] = {}
        self._workers: dict[int, asyncio.Task] = {}
        self._background: asyncio.Task | None = None
        self.poll_timeout = 10
        self._stopping = False
        self.on_turn: Callable[[str, str, TurnResult], Awaitable[None]] | None = None
        self.leadership = leader.for_telegram(settings)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Never blocks the hub's start: Telegram being unreachable only delays this channel."""
        self._background = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                await self.bot.initialize()
                self.username = self.bot.username
                if self.webhook_mode:
                    await self.bot.set_webhook(
                        url=self.settings.telegram_webhook_url, secret_token=self.secret,
                        allowed_updates=ALLOWED_UPDATES)
                    log.info("telegram: webhook set for @%s", self.username)
                else:
                    await self.bot.delete_webhook()
                    log.info("telegram: polling as @%s", self.username)
                self.ready = True
                break
            except InvalidToken:
                log.error("telegram: TELEGRAM_BOT_TOKEN was refused; the channel stays off")
                return
            except TelegramError as exc:
                log.warning("telegram: not reachable yet (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
        if not self.webhook_mode and not self._stopping:
            await self._poll()

    async def stop(self) -> None:
        self._stopping = True
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        # let every chat finish what it accepted, within reason
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=10)
        for task in self._workers.values():
            task.cancel()
        await self.leadership.close()
        try:
            await self.bot.shutdown()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass

    async def _poll(self) -> None:
        offset: int | None = None
        delay = 1.0
        while not self._stopping:
            if not await self.leadership.hold():  # another hub polls (bot/hub/leader.py)
                offset = None  # whoever polls next confirms from Telegram's own offset
                await asyncio.sleep(LEADER_RETRY_SECONDS)
                continue
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES)
                delay = 1.0
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except Conflict:
                log.error("telegram: another process receives this bot's updates (webhook "
                          "set?); polling again in 30 s")
                await asyncio.sleep(30)
                continue
            except (NetworkError, TimedOut) as exc:
                log.warning("telegram: polling failed (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            for update in updates:
                offset = update.update_id + 1
                self._enqueue(update)

    # ---- intake ----------------------------------------------------------------------

    def check_secret(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.secret.encode())

    def feed_json(self, data: dict[str, Any]) -> bool:
        """An update from the webhook; False if it is not one we can parse."""
        try:
            update = Update.de_json(data, self.bot)
        except Exception:  # noqa: BLE001 - malformed body of any shape
            return False
        if update is None:
            return False
        self._enqueue(update)
        return True

    def _chat_key(self, update: Update) -> int:
        chat = update.effective_chat
        if chat is not None:
            return chat.id
        user = update.effective_user
        return user.id if user is not None else 0

    def _enqueue(self, update: Update) -> None:
        """Synchronous on purpose: arrival order is queue order."""
        key = self._chat_key(update)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._workers[key] = asyncio.create_task(self._chat_worker(key, queue))
        queue.put_nowait(_Job(update))

    async def _chat_worker(self, key: int, queue: asyncio.Queue[_Job]) -> None:
        try:
            while True:
                try:
                    job = await asyncio.wait_for(queue.get(), timeout=30)
                except asyncio.TimeoutError:
                    if queue.empty():
                        return
                    continue
                try:
                    if await run_in_threadpool(self._first_time, job.update.update_id):
                        await self._process(job.update)
                except Exception:  # one bad update must not stop this chat
                    log.exception("telegram: update %s failed", job.update.update_id)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
                self._workers.pop(key, None)

    def _first_time(self, update_id: int) -> bool:
        bot_id = self.settings.telegram_bot_token.split(":", 1)[0]
        with self.sessions() as session:
            session.add(TelegramUpdate(update_key=f"{bot_id}:{update_id}"))
            try:
                session.commit()
                return True
            except IntegrityError:
                session.rollback()
                log.info("telegram: update %s already processed, dropped", update_id)
                return False

    # ---- processing ------------------------------------------------------------------

    async def _process(self, update: Update) -> None:
        if update.callback_query is not None:
            await self._on_callback(update)
            return
        if update.edited_message is not None:
            msg = update.edited_message
            if msg.chat.type == "private":
                await self._say(msg.chat_id, "tg_edited", update)
            return
        msg = update.message
        if msg is None:
            log.debug("telegram: ignoring update %s of another kind", update.update_id)
            return
        if msg.chat.type != "private":
            log.info("telegram: ignoring a message from a %s chat", msg.chat.type)
            return
        chat_id = msg.chat_id
        if msg.text is not None:
            text = msg.text
            if text.startswith("/"):
                command, _, arg = text.partition(" ")
                command = command[1:].split("@", 1)[0].lower()
                await self._on_command(update, chat_id, command, arg.strip())
                return
            await self._turn(update, chat_id, text)
            return
        if msg.photo:
            await self._on_photo(update, chat_id)
            return
        if any(getattr(msg, kind, None) for kind in _UNSUPPORTED):
            await self._say(chat_id, "tg_unsupported_media", update)
            return
        log.debug("telegram: message without text in update %s ignored", update.update_id)

    async def _on_command(self, update: Update, chat_id: int, command: str, arg: str) -> None:
        if command == "start":
            if arg:
                sender = await run_in_threadpool(self._redeem, arg, chat_id)
                await self._say(chat_id, "tg_link_ok" if sender else "tg_link_invalid", update)
                if sender:
                    return
            await self._turn(update, chat_id, "/greet")
        elif command == "help":
            await self._turn(update, chat_id, "/help")
        elif command in ("idioma", "language", "lang"):
            lang = await self._language(chat_id, update)
            markup = InlineKeyboardMarkup([[
                InlineKeyboardButton("Español", callback_data="lang:es"),
                InlineKeyboardButton("English", callback_data="lang:en"),
            ]])
            await self._send_text(chat_id, texts.text("tg_choose_language", lang), markup)
        else:  # an unknown command: read it as words
            await self._turn(update, chat_id, f"{command} {arg}".strip())

    async def _on_callback(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        await self._call(query.answer)  # stops the client's spinner whatever happens next
        message = query.message
        chat_id = message.chat.id if message is not None else query.from_user.id
        if message is not None:
            try:
                await self._call(self.bot.edit_message_reply_markup, chat_id=chat_id,
                                 message_id=message.message_id, reply_markup=None)
            except TelegramError as exc:  # already edited, too old…: not worth failing for
                log.debug("telegram: keyboard not removed: %s", exc)
        data = query.data or ""
        if data.startswith("lang:") and data[5:] in ("es", "en"):
            title = "Español" if data[5:] == "es" else "English"
            await self._turn(update, chat_id, f'/choose_language{{"language": "{data[5:]}"}}',
                             title=title)
            return
        button = await run_in_threadpool(self._button, chat_id, data)
        if button is None:
            log.info("telegram: stale or foreign button %r ignored", data[:64])
            return
        await self._turn(update, chat_id, button[0], title=button[1])

    def _button(self, chat_id: int, data: str) -> tuple[str, str] | None:
        """``b:<message id>:<index>`` → (payload, title) of a button we sent to this chat.

        Callback data is limited to 64 bytes, too little for payloads such as
        ``/inform{"order_line": "2"}``, so buttons point at the transcript row instead."""
        match = re.fullmatch(r"b:(\d{1,18}):(\d{1,2})", data)
        if not match:
            return None
        with self.sessions() as session:
            row = session.get(Message, int(match.group(1)))
            conv = session.get(Conversation, row.conversation_id) if row is not None else None
            if row is None or conv is None or row.direction != "out":
                return None
            if conv.sender != convs.resolve_sender(session, self.sender_of(chat_id)):
                return None
            buttons = (row.payload or {}).get("buttons") or []
            index = int(match.group(2))
            if index >= len(buttons):
                return None
            return str(buttons[index]["payload"]), str(buttons[index]["title"])

    async def _on_photo(self, update: Update, chat_id: int) -> None:
        msg = update.message
        assert msg is not None
        sender = await run_in_threadpool(self._resolve, chat_id)
        expects = await run_in_threadpool(self._expects_photo, sender)
        if not expects:
            await self._say(chat_id, "tg_photo_unexpected", update)
            return
        limit = self.settings.upload_max_bytes
        fitting = [p for p in msg.photo if not p.file_size or p.file_size <= limit]
        if not fitting:
            await self._say(chat_id, "tg_photo_rejected", update)
            return
        try:
            file = await self._call(self.bot.get_file, fitting[-1].file_id)
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("telegram: photo download failed: %s", exc)
            await self._say(chat_id, "tg_photo_rejected", update)
            return
        photo_id, refusal = await run_in_threadpool(self._store_photo, sender, data)
        if photo_id is None:
            await self._say(chat_id, refusal, update)
            return
        await self._turn(update, chat_id, f'/inform{{"photo_id": "{photo_id}"}}',
                         title="📷")

    def _expects_photo(self, sender: str) -> bool:
        with self.sessions() as session:
            conv = convs.latest_for_sender(session, sender)
            return conv is not None and convs.expects_photo(session, conv.id)

    def _store_photo(self, sender: str, data: bytes) -> tuple[str | None, str]:
        """(the stored photo's id, "") or (None, the key of the text that says why not)."""
        with self.sessions() as session:
            try:
                return accept_photo(session, sender, data,
                                    max_bytes=self.settings.upload_max_bytes,
                                    quota_bytes=self.settings.upload_quota_bytes).id, ""
            except PhotoRefused as exc:
                log.info("telegram: photo refused: %s", exc.error)
                return None, {409: "tg_photo_unexpected",
                              507: "tg_photo_storage_full"}.get(exc.status, "tg_photo_rejected")
            except UploadRejected as exc:
                log.info("telegram: photo rejected: %s", exc)
                return None, "tg_photo_rejected"

    # ---- turns and replies -----------------------------------------------------------

    @staticmethod
    def sender_of(chat_id: int) -> str:
        return f"{SENDER_PREFIX}{chat_id}"

    def _resolve(self, chat_id: int) -> str:
        with self.sessions() as session:
            return convs.resolve_sender(session, self.sender_of(chat_id))

    def _redeem(self, code: str, chat_id: int) -> str | None:
        with self.sessions() as session:
            sender = channel_links.redeem(session, code, self.sender_of(chat_id))
            session.commit()
            return sender

    async def _turn(self, update: Update, chat_id: int, text: str,
                    title: str | None = None) -> None:
        user = update.effective_user
        metadata: dict[str, Any] = {"locale": user.language_code if user else None}
        if title:
            metadata["button_title"] = title
        sender = await run_in_threadpool(self._resolve, chat_id)
        await self._chat_action(chat_id)
        result: TurnResult = await self.turns.run(
            sender=sender, text=text, channel="telegram",
            metadata=metadata, client_message_id=f"tg:{update.update_id}")
        await self.send_items(chat_id, result.items())
        hook = self.on_turn  # delivery.after_turn: the consoles, a widget it came from
        if hook is not None:
            await hook(sender, "telegram", result)

    async def _chat_action(self, chat_id: int) -> None:
        try:
            await self.bot.send_chat_action(chat_id=chat_id, action="typing")
        except TelegramError:
            pass  # cosmetic

    async def _language(self, chat_id: int, update: Update | None) -> str:
        def _lookup() -> str | None:
            with self.sessions() as session:
                conv = convs.latest_for_sender(
                    session, convs.resolve_sender(session, self.sender_of(chat_id)))
                return conv.language if conv is not None else None

        lang = await run_in_threadpool(_lookup)
        if lang is None and update is not None and update.effective_user is not None:
            code = (update.effective_user.language_code or "")[:2].lower()
            lang = code if code in ("es", "en") else None
        return lang or self.settings.default_language

    async def _say(self, chat_id: int, key: str, update: Update | None = None) -> None:
        lang = await self._language(chat_id, update)
        await self._send_text(chat_id, texts.text(key, lang))

    async def send_items(self, chat_id: int, items: list[dict[str, Any]]) -> None:
        """Channel-neutral messages as Telegram messages: long texts split, buttons as an
        inline keyboard on the last part."""
        for item in items:
            chunks = split_text(item.get("text") or "") or (["…"] if item.get("buttons") else [])
            markup = None
            buttons = item.get("buttons") or []
            if buttons and str(item.get("id", "")).startswith("m"):
                row_id = str(item["id"])[1:]
                keys = [InlineKeyboardButton(str(b.get("title", ""))[:64] or "·",
                                             callback_data=f"b:{row_id}:{i}")
                        for i, b in enumerate(buttons[:20])]
                short = all(len(k.text) <= 14 for k in keys)
                per_row = 2 if short else 1
                markup = InlineKeyboardMarkup(
                    [keys[i:i + per_row] for i in range(0, len(keys), per_row)])
            for n, chunk in enumerate(chunks):
                await self._send_text(chat_id, chunk, markup if n == len(chunks) - 1 else None)

    async def _send_text(self, chat_id: int, text: str,
                         markup: InlineKeyboardMarkup | None = None) -> bool:
        for chunk in split_text(text) or []:
            await self.limiter.wait(chat_id)
            try:
                await self._call(self.bot.send_message, chat_id=chat_id, text=chunk,
                                 reply_markup=markup)
            except Forbidden:
                log.info("telegram: chat %s blocked the bot; message kept in the transcript",
                         chat_id)
                return False
            except TelegramError as exc:
                log.error("telegram: message to chat %s not delivered: %s", chat_id, exc)
                return False
        return True

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """One Bot API call with Telegram's etiquette: wait out 429s, retry what surely did
        not arrive (connection failures, 5xx), never retry a timeout (it might have)."""
        delay = 0.5
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await fn(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                log.warning("telegram: flood control, waiting %.1f s", wait)
                if attempt == self.max_attempts:
                    raise
                await asyncio.sleep(wait)
            except (BadRequest, TimedOut):
                raise
            except NetworkError as exc:
                if attempt == self.max_attempts:
                    raise
                log.warning("telegram: network error (%s), retry %d in %.1f s",
                            exc, attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8)
        raise RuntimeError("unreachable")

    async def deliver(self, sender: str, items: list[dict[str, Any]]) -> bool:
        """Messages outside a turn (an agent's reply) to the Telegram chat of ``sender``."""
        chat_id = await run_in_threadpool(self.chat_for, sender)
        if chat_id is None:
            return False
        await self.send_items(chat_id, items)
        return True

    def chat_for(self, sender: str) -> int | None:
        if sender.startswith(SENDER_PREFIX):
            try:
                return int(sender[len(SENDER_PREFIX):])
            except ValueError:
                return None
        with self.sessions() as session:
            aliases = channel_links.aliases_of(session, sender, SENDER_PREFIX)
        for alias in aliases:
            try:
                return int(alias[len(SENDER_PREFIX):])
            except ValueError:
                continue
        return None
