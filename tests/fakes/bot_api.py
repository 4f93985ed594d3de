"""A local fake of the Telegram Bot API that speaks the real HTTP protocol.

Why a server and not a mock object: the Telegram channel is driven by python-telegram-bot
(PTB), whose behaviour we want to exercise for real -- its request encoding (form fields and
multipart, complex values JSON-encoded as strings), its error mapping (``RetryAfter``,
``BadRequest``, ``NetworkError``...), its polling loop and its webhook server. Patching
``Bot`` methods would skip all of that, so this module runs a tiny Bot API on 127.0.0.1 and
the code under test talks to it with ``Bot(token, base_url=api.base_url,
base_file_url=api.base_file_url)``.

The fake keeps just enough state to behave like Telegram in the ways that matter for the
bot: update queue with ``offset`` confirmation and long polling, webhook delivery with the
secret header and retries, per-chat message ids, editable messages with inline keyboards,
callback queries that can be answered once, files that can be downloaded, Telegram's error
bodies and status codes, and fault injection (flood control, 502, dropped connections).

Only the standard library is used, so the fake cannot drift with a third-party upgrade.
"""

from __future__ import annotations

import copy
import html
import itertools
import json
import re
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

JSONDict = dict[str, Any]

#: Telegram's hard limit for message text (counted in UTF-16 code units after parsing).
MAX_MESSAGE_LENGTH = 4096
#: Telegram's limit for ``callback_data`` (bytes).
MAX_CALLBACK_DATA = 64
#: Update types Telegram leaves out when ``allowed_updates`` is empty or was never set.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
#: Header Telegram sends with every webhook request when a secret token was set.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# How form/multipart string fields are converted back to typed values. PTB sends every
# parameter as a string (ints as "123", bools as "true", objects as JSON text), and Telegram
# converts them according to the parameter's declared type; we do the same for the
# parameters the fake understands. Unknown parameters stay strings.
_INT_PARAMS = frozenset(
    {
        "message_id",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "from_chat_id",
        "reply_to_message_id",
        "cache_time",
        "message_thread_id",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "drop_pending_updates",
        "show_alert",
        "disable_notification",
        "protect_content",
        "disable_web_page_preview",
        "allow_sending_without_reply",
    }
)
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "commands",
        "scope",
        "media",
    }
)

_FAULT_KINDS = ("retry_after", "server_error", "drop")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")


class ApiError(Exception):
    """A Telegram-style error: becomes ``{"ok": false, ...}`` with HTTP status ``code``."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        """The JSON body exactly as Telegram shapes it."""
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


@dataclass
class _Fault:
    """One injected failure for the next call of a method."""

    kind: str
    retry_after: int


@dataclass(eq=False)
class _Pending:
    """An update waiting in the queue.

    ``redelivery`` copies survive one ``offset`` confirmation until they have been handed out
    at least once: otherwise a duplicate with an old ``update_id`` would be confirmed away
    before the bot ever saw it, and duplicate handling could not be tested.
    """

    update: JSONDict
    redelivery: bool = False
    returned: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])

    @property
    def kind(self) -> str:
        return next((key for key in self.update if key != "update_id"), "")


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes = field(repr=False)


class _Drop(Exception):
    """Raised inside a handler to close the connection without answering."""


def _utf16_len(text: str) -> int:
    """Telegram measures lengths and entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _parse_bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
    return value


def _normalize_params(raw: dict[str, Any]) -> JSONDict:
    """Type the parameters the way Telegram does, whatever transport encoding was used."""
    params: JSONDict = {}
    for name, value in raw.items():
        if name == "chat_id" and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        elif name in _INT_PARAMS and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _bad_request(f"invalid {name} specified") from None
        elif name in _BOOL_PARAMS:
            value = _parse_bool(value)
        elif name in _JSON_PARAMS and isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError:
                if name == "reply_markup":
                    raise _bad_request("can't parse reply keyboard markup JSON object") from None
                raise _bad_request(f"can't parse {name} JSON object") from None
        params[name] = value
    return params


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """Minimal multipart/form-data parser (the ``cgi`` module is deprecated).

    Text fields become ``str``; file fields become ``{"filename", "content_type", "data"}``.
    """
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise _bad_request("multipart boundary is missing")
    boundary = match.group(1).encode("latin-1")
    fields: dict[str, Any] = {}
    segments = (b"\r\n" + body).split(b"\r\n--" + boundary)
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            break
        _, _, segment = segment.partition(b"\r\n")
        head, _, content = segment.partition(b"\r\n\r\n")
        headers = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', headers)
        if not name:
            continue
        filename = re.search(r'filename="([^"]*)"', headers)
        if filename:
            ctype = re.search(r"(?im)^content-type:\s*(\S+)", headers)
            fields[name.group(1)] = {
                "filename": filename.group(1),
                "content_type": ctype.group(1) if ctype else "application/octet-stream",
                "data": content,
            }
        else:
            fields[name.group(1)] = content.decode("utf-8")
    return fields


# --------------------------------------------------------------------------------------------
# parse_mode validation: sending user-provided text with an unescaped "<" (HTML) or "." / "!"
# (MarkdownV2) is the classic way a Telegram bot breaks in production, so the fake rejects
# such text with Telegram's "can't parse entities" error instead of silently accepting it.
# --------------------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_HTML_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(\s[^<>]*)?>")
_MDV2_ALWAYS_RESERVED = frozenset("#+-=|{}.!)]")


def _entities_error(detail: str) -> ApiError:
    return _bad_request(f"can't parse entities: {detail}")


def _check_html(text: str) -> None:
    stack: list[str] = []
    index = text.find("<")
    while index != -1:
        match = _HTML_TAG_RE.match(text, index)
        offset = _byte_offset(text, index)
        if not match:
            name = re.match(r"</?([^\s<>]*)", text[index:])
            tag = name.group(1) if name else ""
            raise _entities_error(f'Unsupported start tag "{tag}" at byte offset {offset}')
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name not in _HTML_TAGS:
            which = "end" if closing else "start"
            raise _entities_error(f'Unsupported {which} tag "{name}" at byte offset {offset}')
        if not closing:
            stack.append(name)
        elif not stack:
            raise _entities_error(f"Unexpected end tag at byte offset {offset}")
        elif stack[-1] != name:
            raise _entities_error(
                f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", '
                f'found "</{name}>"'
            )
        else:
            stack.pop()
        index = text.find("<", match.end())
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')


def _check_markdown_v2(text: str) -> None:
    open_marks: dict[str, int] = {}
    link_open: int | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = i + len(fence)
            while end < len(text) and not text.startswith(fence, end):
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise _entities_error(
                    f"Can't find end of Pre entity at byte offset {_byte_offset(text, i)}"
                )
            i = end + len(fence)
            continue
        if char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
            continue
        if char == "[" or text.startswith("![", i):  # link, or custom emoji ![👍](tg://...)
            link_open = i
            i += 1 if char == "[" else 2
            continue
        if char == "]" and link_open is not None:
            link_open = None
            if text.startswith("(", i + 1):
                end = i + 2
                while end < len(text) and text[end] != ")":
                    end += 2 if text[end] == "\\" else 1
                if end >= len(text):
                    raise _entities_error(
                        f"Can't find end of a url at byte offset {_byte_offset(text, i + 1)}"
                    )
                i = end + 1
            else:
                i += 1
            continue
        mark = None
        if text.startswith("__", i) or text.startswith("||", i):
            mark = text[i : i + 2]
        elif char in "*_~":
            mark = char
        if mark is not None:
            if mark in open_marks:
                del open_marks[mark]
            else:
                open_marks[mark] = i
            i += len(mark)
            continue
        if char in _MDV2_ALWAYS_RESERVED or char in "(>":
            raise _entities_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        i += 1
    if link_open is not None:
        raise _entities_error(
            f"Can't find end of a url at byte offset {_byte_offset(text, link_open)}"
        )
    if open_marks:
        mark, start = min(open_marks.items(), key=lambda item: item[1])
        kinds = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough"}
        kind = kinds.get(mark, "Spoiler")
        raise _entities_error(
            f"Can't find end of {kind} entity at byte offset {_byte_offset(text, start)}"
        )


def _check_markdown(text: str) -> None:
    open_at: tuple[str, int] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if open_at is None and char == "\\":
            i += 2
            continue
        if open_at is not None:
            if char == open_at[0]:
                open_at = None
        elif char in "*_`":
            open_at = (char, i)
        i += 1
    if open_at is not None:
        raise _entities_error(
            "Can't find end of the entity starting at byte offset "
            f"{_byte_offset(text, open_at[1])}"
        )


def _visible_text(text: str, parse_mode: Any) -> str:
    """Validate ``text`` for ``parse_mode`` and return what the user would see (roughly),
    because Telegram applies the emptiness and length limits after parsing entities."""
    mode = str(parse_mode or "").lower()
    if not mode:
        return text
    if mode == "html":
        _check_html(text)
        return html.unescape(_HTML_TAG_RE.sub("", text))
    if mode == "markdownv2":
        _check_markdown_v2(text)
        return re.sub(r"\\(.)", r"\1", text)
    if mode == "markdown":
        _check_markdown(text)
        return text
    raise _bad_request("unsupported parse_mode")


def _check_text(text: Any, parse_mode: Any = None) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _bad_request("message text is empty")
    visible = _visible_text(text, parse_mode)
    if not visible.strip():
        raise _bad_request("message text is empty")
    if _utf16_len(visible) > MAX_MESSAGE_LENGTH:
        raise _bad_request("message is too long")
    return text


def _check_reply_markup(markup: Any) -> JSONDict | None:
    """Validate like Telegram does; an empty inline keyboard means "no keyboard"."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict):
                    raise _bad_request(
                        "can't parse inline keyboard button: InlineKeyboardButton must be an "
                        "Object"
                    )
                if not button.get("text"):
                    raise _bad_request("can't parse inline keyboard button: Text must be non-empty")
                actions = set(button) - {"text", "style", "icon_custom_emoji_id"}
                if not actions:
                    raise _bad_request("can't parse inline keyboard button: Text buttons are "
                                       "unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                    raise _bad_request("BUTTON_DATA_INVALID")
        if not any(rows):
            return None
    elif not {"keyboard", "remove_keyboard", "force_reply"} & set(markup):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _post_json(url: str, payload: bytes, secret: str | None, timeout: float) -> int:
    request = urllib.request.Request(url, data=payload, method="POST")
    request.add_header("Content-Type", "application/json")
    if secret is not None:
        request.add_header(SECRET_HEADER, secret)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def post_to_webhook(
    url: str, body: bytes | JSONDict, secret: str | None, timeout: float = 10.0
) -> int:
    """POST ``body`` to a webhook the way Telegram would (or a forger would) and return the
    HTTP status. Used to check that the bot rejects requests without the right secret header
    and tolerates malformed bodies. Connection errors propagate (``URLError``)."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _post_json(url, payload, secret, timeout)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, like api.telegram.org: httpx reuses connections."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx/1.18.0"
    sys_version = ""
    api: FakeBotAPI

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle + delayed ACK add ~40 ms to every response on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.api._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.api._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request logging; calls() is the log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        try:
            status, payload, ctype = self.api._dispatch(
                self.command, self.path, dict(self.headers.items()), body
            )
        except _Drop:
            self.close_connection = True
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (e.g. a cancelled long poll)
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Disconnects are normal (cancelled polls, stop()); anything else is a fake bug."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class FakeBotAPI:
    """A fake Telegram Bot API server for one bot token. See the module docstring for why.

    Typical use::

        with FakeBotAPI() as api:
            bot = telegram.Bot(api.token, base_url=api.base_url,
                               base_file_url=api.base_file_url)
            api.user_sends_text(42, "hola")
            ...
            api.wait_for_sent(42, 1)

    Deviations from Telegram, on purpose: ``http://`` webhooks are accepted (tests run without
    TLS); sending to a chat that never wrote to the bot is allowed; message ``text`` is stored
    and returned as sent (entities are validated per ``parse_mode`` but not extracted);
    webhook delivery gives up after ``webhook_attempts`` tries instead of retrying for hours.
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        username: str = "postventa_test_bot",
        *,
        webhook_attempts: int = 5,
        webhook_retry_delay: float = 0.3,
    ) -> None:
        self.token = token
        self.username = username
        self.webhook_attempts = webhook_attempts
        self.webhook_retry_delay = webhook_retry_delay
        bot_id = token.split(":", 1)[0]
        self.bot_user: JSONDict = {
            "id": int(bot_id) if bot_id.isdigit() else 123456,
            "is_bot": True,
            "first_name": "Postventa Test",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._cond = threading.Condition(threading.RLock())
        self._update_ids = itertools.count(100_000_001)
        self._callback_ids = itertools.count(4_000_000_000_000_001)
        self._file_ids = itertools.count(1)
        self._pending: list[_Pending] = []
        self._message_counters: dict[int | str, int] = {}
        self._messages: dict[tuple[int | str, int], JSONDict] = {}
        self._sent: list[JSONDict] = []
        self._edits: list[JSONDict] = []
        self._calls: list[JSONDict] = []
        self._queries: dict[str, JSONDict] = {}
        self._answered: set[str] = set()
        self._callback_answers: list[JSONDict] = []
        self._files: dict[str, _StoredFile] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._blocked: set[int | str] = set()
        self._commands: list[JSONDict] = []
        self._allowed_updates: list[str] | None = None
        self._webhook: JSONDict = {"url": "", "secret_token": None, "max_connections": 40}
        self._webhook_errors: JSONDict = {}
        self._deliveries: list[JSONDict] = []
        self._errors: list[str] = []
        self._poll_generation = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._methods: dict[str, tuple[str, Callable[[JSONDict], Any]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "getFile": self._get_file,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
            }.items()
        }

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeBotAPI:
        """Bind 127.0.0.1 on a free port and serve in background threads."""
        if self._server is not None:
            raise RuntimeError("FakeBotAPI already started")
        handler = type("BoundHandler", (_Handler,), {"api": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._stopping.clear()
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-bot-api-{self.port}",
            daemon=True,
        )
        webhook = threading.Thread(target=self._webhook_loop, name="fake-bot-webhook", daemon=True)
        self._threads = [serve, webhook]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake long polls and close kept-alive connections.

        Closing idle keep-alive sockets matters: otherwise a client could keep talking to a
        handler thread of a server that is supposedly down.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        server.shutdown()
        server.server_close()
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only while started)."""
        if self._server is None:
            raise RuntimeError("FakeBotAPI is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """For ``Bot(base_url=...)``: PTB appends ``<token>/<method>``."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Bot(base_file_url=...)``: PTB appends ``<token>/<file_path>``."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ---------------------------------------------------------------- HTTP dispatch

    def _dispatch(
        self, http_method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        """Route one HTTP request; returns (status, body, content type) or raises _Drop."""
        url = urlsplit(path)
        route = unquote(url.path)  # httpx percent-encodes the ":" of the token in file URLs
        if route.startswith("/file/bot"):
            return self._serve_file(route[len("/file/bot") :])
        record: JSONDict = {
            "method": None,
            "params": {},
            "time": time.monotonic(),
            "http_method": http_method,
        }
        try:
            if not route.startswith("/bot"):
                raise ApiError(404, "Not Found")
            token, _, method_name = route[len("/bot") :].partition("/")
            record["method"] = method_name
            if token != self.token:
                # Like Telegram: a well-formed but wrong token is 401, garbage is 404.
                if _TOKEN_RE.match(token):
                    raise ApiError(401, "Unauthorized")
                raise ApiError(404, "Not Found")
            known = self._methods.get(method_name.lower())
            if known is None:
                raise ApiError(404, "Not Found")
            canonical, handler = known
            record["method"] = canonical
            params = self._parse_params(url.query, headers, body)
            record["params"] = params
            fault = self._take_fault(canonical)
            if fault is not None:
                record["fault"] = fault.kind
                self._record_call(record)
                if fault.kind == "drop":
                    raise _Drop
                if fault.kind == "retry_after":
                    raise ApiError(
                        429,
                        f"Too Many Requests: retry after {fault.retry_after}",
                        {"retry_after": fault.retry_after},
                    )
                raise ApiError(502, "Bad Gateway")
            self._record_call(record)
            result = handler(params)
            extra: JSONDict = {}
            if isinstance(result, tuple):
                result, description = result
                extra["description"] = description
            status, payload = 200, {"ok": True, "result": result, **extra}
        except ApiError as exc:
            status, payload = exc.code, exc.body()
        except _Drop:
            with self._cond:
                record["status"] = None
            raise
        except Exception:  # a bug in the fake must be loud, not a hung test
            trace = traceback.format_exc()
            with self._cond:
                self._errors.append(trace)
            print(trace, file=sys.stderr)
            status = 500
            payload = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        with self._cond:
            record["status"] = status
            if not any(call is record for call in self._calls):
                self._calls.append(record)
            self._cond.notify_all()
        return status, json.dumps(payload).encode(), "application/json"

    def _record_call(self, record: JSONDict) -> None:
        """Record before running the method, so a long poll shows up while it waits."""
        with self._cond:
            self._calls.append(record)
            self._cond.notify_all()

    def _parse_params(self, query: str, headers: dict[str, str], body: bytes) -> JSONDict:
        raw: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        lowered = ctype.lower()
        if body:
            if lowered.startswith("application/json"):
                try:
                    decoded = json.loads(body)
                except ValueError:
                    raise _bad_request("can't parse JSON encoded request body") from None
                if not isinstance(decoded, dict):
                    raise _bad_request("JSON object expected as request body")
                raw.update(decoded)
            elif lowered.startswith("multipart/form-data"):
                raw.update(_parse_multipart(body, ctype))
            else:
                raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return _normalize_params(raw)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._cond:
            queue = self._faults.get(method.lower())
            if queue:
                return queue.pop(0)
        return None

    def _serve_file(self, rest: str) -> tuple[int, bytes, str]:
        token, _, file_path = rest.partition("/")
        with self._cond:
            self._calls.append(
                {"method": "file", "params": {"file_path": file_path}, "time": time.monotonic()}
            )
            found = next((f for f in self._files.values() if f.file_path == file_path), None)
        if token != self.token or found is None:
            body = ApiError(404, "Not Found").body()
            return 404, json.dumps(body).encode(), "application/json"
        return 200, found.data, "application/octet-stream"

    # ---------------------------------------------------------------- Bot API methods

    def _get_me(self, params: JSONDict) -> JSONDict:
        return dict(self.bot_user)

    def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = params.get("offset")
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0, int(params.get("timeout") or 0))
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._webhook["url"]:
                raise self._webhook_conflict()
            if "allowed_updates" in params:
                self._set_allowed(params["allowed_updates"])
            # Telegram lets only one getUpdates wait: a newer one terminates the older one.
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()
            if offset is not None:
                self._confirm(int(offset))
            while True:
                if self._stopping.is_set():
                    return []
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only "
                        "one bot instance is running",
                    )
                if self._webhook["url"]:
                    raise self._webhook_conflict()
                self._drop_unwanted()
                batch = self._pending[:limit]
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0:
                    for entry in batch:
                        entry.returned = True
                    return [copy.deepcopy(entry.update) for entry in batch]
                self._cond.wait(min(remaining, 0.5))

    @staticmethod
    def _webhook_conflict() -> ApiError:
        return ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
            "to delete the webhook first",
        )

    def _confirm(self, offset: int) -> None:
        """Apply getUpdates' ``offset``: forget confirmed updates (caller holds the lock)."""
        if offset < 0:
            self._pending = self._pending[offset:]
            return
        self._pending = [
            entry
            for entry in self._pending
            if entry.update_id >= offset or (entry.redelivery and not entry.returned)
        ]

    def _set_allowed(self, allowed: Any) -> None:
        if isinstance(allowed, str):
            allowed = [allowed] if allowed else []
        self._allowed_updates = list(allowed) if allowed else None

    def _wanted(self, entry: _Pending) -> bool:
        if self._allowed_updates is None:
            return entry.kind not in DEFAULT_EXCLUDED_UPDATES
        return entry.kind in self._allowed_updates

    def _drop_unwanted(self) -> None:
        """Telegram never creates updates of types the bot did not ask for."""
        self._pending = [entry for entry in self._pending if self._wanted(entry)]

    def _set_webhook(self, params: JSONDict) -> tuple[bool, str]:
        url = params.get("url") or ""
        if not url:
            return self._delete_webhook(params)
        if urlsplit(url).scheme not in ("http", "https"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and secret != "" and not _SECRET_RE.match(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        with self._cond:
            if params.get("drop_pending_updates"):
                self._pending.clear()
            if "allowed_updates" in params:
                self._set_allowed(params["allowed_updates"])
            was = self._webhook["url"]
            self._webhook = {
                "url": url,
                "secret_token": secret or None,
                "max_connections": int(params.get("max_connections") or 40),
            }
            self._webhook_errors = {}
            self._cond.notify_all()
        return True, "Webhook is already set" if was == url else "Webhook was set"

    def _delete_webhook(self, params: JSONDict) -> tuple[bool, str]:
        with self._cond:
            was = self._webhook["url"]
            if params.get("drop_pending_updates"):
                self._pending.clear()
            self._webhook = {"url": "", "secret_token": None, "max_connections": 40}
            self._webhook_errors = {}
            self._cond.notify_all()
        return True, "Webhook was deleted" if was else "Webhook is already deleted"

    def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        return {k: v for k, v in self.webhook_info.items() if k != "secret_token"}

    def _chat_id(self, params: JSONDict) -> int | str:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, str) and not chat_id.startswith("@"):
            raise _bad_request("chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _next_message_id(self, chat_id: int | str) -> int:
        """Private chats share one message id sequence between user and bot (caller locks)."""
        self._message_counters[chat_id] = self._message_counters.get(chat_id, 0) + 1
        return self._message_counters[chat_id]

    @staticmethod
    def _chat(chat_id: int | str) -> JSONDict:
        return {"id": chat_id, "type": "private", "first_name": "Test"}

    def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        text = _check_text(params.get("text"), params.get("parse_mode"))
        markup = _check_reply_markup(params.get("reply_markup"))
        with self._cond:
            message: JSONDict = {
                "message_id": self._next_message_id(chat_id),
                "from": dict(self.bot_user),
                "chat": self._chat(chat_id),
                "date": int(time.time()),
                "text": text,
            }
            if markup is not None:
                message["reply_markup"] = markup
            self._messages[(chat_id, message["message_id"])] = message
            self._sent.append(
                {
                    "chat_id": chat_id,
                    "message_id": message["message_id"],
                    "text": text,
                    "parse_mode": params.get("parse_mode"),
                    "reply_markup": markup,
                    "time": time.monotonic(),
                    "message": copy.deepcopy(message),
                }
            )
            self._cond.notify_all()
            return copy.deepcopy(message)

    def _editable(self, params: JSONDict) -> tuple[int | str, JSONDict]:
        if params.get("inline_message_id"):
            raise _bad_request("message to edit not found")
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = self._messages.get((chat_id, int(message_id)))
        if message is None:
            raise _bad_request("message to edit not found")
        if not message["from"].get("is_bot"):
            raise _bad_request("message can't be edited")
        return chat_id, message

    def _apply_edit(
        self, method: str, params: JSONDict, text: str | None, markup: JSONDict | None
    ) -> JSONDict:
        with self._cond:
            chat_id, message = self._editable(params)
            new_text = message.get("text") if text is None else text
            if new_text == message.get("text") and markup == message.get("reply_markup"):
                raise _bad_request(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            message["text"] = new_text
            if markup is None:
                message.pop("reply_markup", None)
            else:
                message["reply_markup"] = markup
            message["edit_date"] = int(time.time())
            self._edits.append(
                {
                    "method": method,
                    "chat_id": chat_id,
                    "message_id": message["message_id"],
                    "text": new_text,
                    "reply_markup": markup,
                    "time": time.monotonic(),
                }
            )
            self._cond.notify_all()
            return copy.deepcopy(message)

    def _edit_message_text(self, params: JSONDict) -> JSONDict:
        text = _check_text(params.get("text"), params.get("parse_mode"))
        markup = _check_reply_markup(params.get("reply_markup"))
        return self._apply_edit("editMessageText", params, text, markup)

    def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        markup = _check_reply_markup(params.get("reply_markup"))
        return self._apply_edit("editMessageReplyMarkup", params, None, markup)

    def _delete_message(self, params: JSONDict) -> bool:
        with self._cond:
            chat_id = self._chat_id(params)
            key = (chat_id, int(params.get("message_id") or 0))
            if self._messages.pop(key, None) is None:
                raise _bad_request("message to delete not found")
        return True

    def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        with self._cond:
            if query_id not in self._queries or query_id in self._answered:
                raise _bad_request(
                    "query is too old and response timeout expired or query ID is invalid"
                )
            self._answered.add(query_id)
            self._callback_answers.append(
                {
                    "callback_query_id": query_id,
                    "text": params.get("text"),
                    "show_alert": bool(params.get("show_alert") or False),
                    "time": time.monotonic(),
                }
            )
            self._cond.notify_all()
        return True

    def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat_id(params)
        if not params.get("action"):
            raise _bad_request("action is empty")
        return True

    def _get_file(self, params: JSONDict) -> JSONDict:
        with self._cond:
            stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        with self._cond:
            self._commands = commands
        return True

    def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        with self._cond:
            return copy.deepcopy(self._commands)

    def _delete_my_commands(self, params: JSONDict) -> bool:
        with self._cond:
            self._commands = []
        return True

    # ---------------------------------------------------------------- webhook delivery

    def _webhook_loop(self) -> None:
        """Deliver queued updates one at a time, in order, like Telegram (max_connections
        aside). The update stays pending while it is being delivered."""
        while not self._stopping.is_set():
            with self._cond:
                if self._webhook["url"]:
                    self._drop_unwanted()
                if not (self._webhook["url"] and self._pending):
                    self._cond.wait(0.2)
                    continue
                entry = self._pending[0]
                url, secret = self._webhook["url"], self._webhook["secret_token"]
            payload = json.dumps(entry.update).encode()
            delivered = False
            for attempt in range(1, self.webhook_attempts + 1):
                status, error = None, None
                try:
                    status = _post_json(url, payload, secret, timeout=10)
                except (OSError, urllib.error.URLError) as exc:
                    error = str(exc)
                delivered = status is not None and 200 <= status < 300
                with self._cond:
                    self._deliveries.append(
                        {
                            "update_id": entry.update_id,
                            "url": url,
                            "attempt": attempt,
                            "status": status,
                            "error": error,
                            "time": time.monotonic(),
                        }
                    )
                    if not delivered:
                        self._webhook_errors = {
                            "last_error_date": int(time.time()),
                            "last_error_message": error or f"Wrong response from the webhook: "
                            f"{status}",
                        }
                    self._cond.notify_all()
                if delivered or self._stopping.wait(self.webhook_retry_delay):
                    break
            with self._cond:
                # Delivered, or given up on (Telegram would keep trying for a long time).
                if entry in self._pending:
                    self._pending.remove(entry)
                self._cond.notify_all()

    # ---------------------------------------------------------------- simulating the user

    def _enqueue(self, update: JSONDict, *, redelivery: bool = False) -> JSONDict:
        with self._cond:
            self._pending.append(_Pending(copy.deepcopy(update), redelivery=redelivery))
            self._cond.notify_all()
        return update

    @staticmethod
    def _user(chat_id: int, language_code: str) -> JSONDict:
        return {
            "id": chat_id,
            "is_bot": False,
            "first_name": "Test",
            "language_code": language_code,
        }

    def _user_message(self, chat_id: int, language_code: str, **content: Any) -> JSONDict:
        with self._cond:
            message: JSONDict = {
                "message_id": self._next_message_id(chat_id),
                "from": self._user(chat_id, language_code),
                "chat": self._chat(chat_id),
                "date": int(time.time()),
                **content,
            }
            self._messages[(chat_id, message["message_id"])] = message
            update = {"update_id": next(self._update_ids), "message": copy.deepcopy(message)}
            return self._enqueue(update)

    def user_sends_text(self, chat_id: int, text: str, language_code: str = "es") -> JSONDict:
        """The user types ``text``; commands get a ``bot_command`` entity like in Telegram."""
        content: JSONDict = {"text": text}
        if text.startswith("/"):
            command = text.split()[0] if text.split() else text
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        return self._user_message(chat_id, language_code, **content)

    def user_presses(
        self,
        chat_id: int,
        message_id: int,
        callback_data: str,
        language_code: str = "es",
        *,
        require_button: bool = False,
    ) -> JSONDict:
        """The user taps an inline button of bot message ``message_id``.

        Stale presses (a button no longer on the message) are allowed by default because real
        clients can send them; ``require_button=True`` asserts the button is still there.
        """
        with self._cond:
            message = self._messages.get((chat_id, message_id))
            if message is None or not message["from"].get("is_bot"):
                raise LookupError(f"no bot message {message_id} in chat {chat_id}")
            if require_button:
                rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
                datas = [button.get("callback_data") for row in rows for button in row]
                if callback_data not in datas:
                    raise AssertionError(
                        f"message {message_id} has no button {callback_data!r}: {datas}"
                    )
            query_id = str(next(self._callback_ids))
            query = {
                "id": query_id,
                "from": self._user(chat_id, language_code),
                "message": copy.deepcopy(message),
                "chat_instance": str(-(8_000_000_000_000_000_000 + chat_id)),
                "data": callback_data,
            }
            self._queries[query_id] = query
            update = {"update_id": next(self._update_ids), "callback_query": query}
            return self._enqueue(update)

    def register_file(self, data: bytes, file_path: str | None = None) -> JSONDict:
        """Make ``data`` downloadable via getFile; returns ``{file_id, file_unique_id,
        file_size}`` for building custom updates (documents, voice notes) with push_update."""
        with self._cond:
            number = next(self._file_ids)
            stored = _StoredFile(
                file_id=f"AgACAgEAAxkBAAI{number:06d}fake",
                file_unique_id=f"AQAD{number:06d}",
                file_path=file_path or f"documents/file_{number}.bin",
                data=bytes(data),
            )
            self._files[stored.file_id] = stored
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }

    def user_sends_photo(
        self, chat_id: int, data: bytes, caption: str | None = None, language_code: str = "es"
    ) -> JSONDict:
        """The user sends a photo: two sizes like Telegram; only the largest one (the last)
        downloads ``data`` -- the thumbnail downloads a prefix, so picking the wrong size shows."""
        with self._cond:
            number = next(self._file_ids)
        small = self.register_file(data[: max(1, len(data) // 10)], f"photos/file_{number}_s.jpg")
        large = self.register_file(data, f"photos/file_{number}.jpg")
        content: JSONDict = {
            "photo": [
                {**small, "width": 90, "height": 68},
                {**large, "width": 1280, "height": 960},
            ]
        }
        if caption is not None:
            content["caption"] = caption
        return self._user_message(chat_id, language_code, **content)

    def push_update(self, partial: JSONDict) -> JSONDict:
        """Queue any update body (edited_message, sticker, my_chat_member, unknown types...)
        with a fresh ``update_id``."""
        with self._cond:
            update = {"update_id": next(self._update_ids)}
            update.update({k: v for k, v in partial.items() if k != "update_id"})
            return self._enqueue(update)

    def redeliver(self, update: JSONDict) -> JSONDict:
        """Deliver the very same update again (same ``update_id``), as Telegram does after a
        webhook timeout or when the poller crashed before confirming."""
        return self._enqueue(update, redelivery=True)

    def set_blocked(self, chat_id: int, blocked: bool = True) -> None:
        """Simulate the user blocking the bot: sends to the chat then fail with 403."""
        with self._cond:
            (self._blocked.add if blocked else self._blocked.discard)(chat_id)

    # ---------------------------------------------------------------- fault injection

    def fail_next(
        self, method: str, times: int = 1, kind: str = "retry_after", retry_after: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail *before* doing anything.

        ``retry_after``: 429 flood control with ``parameters.retry_after``; ``server_error``:
        502 Bad Gateway; ``drop``: the connection is closed without any response.
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"kind must be one of {_FAULT_KINDS}, not {kind!r}")
        with self._cond:
            self._faults.setdefault(method.lower(), []).extend(
                _Fault(kind, int(retry_after)) for _ in range(times)
            )

    # ---------------------------------------------------------------- inspection

    def sent(self, chat_id: int | None = None) -> list[JSONDict]:
        """Messages sent by the bot (sendMessage), in order; each has chat_id, message_id,
        text, parse_mode, reply_markup (as sent), time (monotonic) and message."""
        with self._cond:
            return [
                copy.deepcopy(item)
                for item in self._sent
                if chat_id is None or item["chat_id"] == chat_id
            ]

    def edits(self, chat_id: int | None = None) -> list[JSONDict]:
        """Successful editMessageText / editMessageReplyMarkup calls, in order."""
        with self._cond:
            return [
                copy.deepcopy(item)
                for item in self._edits
                if chat_id is None or item["chat_id"] == chat_id
            ]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """The current state of a message (after edits), or None if unknown/deleted."""
        with self._cond:
            return copy.deepcopy(self._messages.get((chat_id, message_id)))

    def calls(self, method: str | None = None) -> list[JSONDict]:
        """Every request (method, params, time, status; ``fault`` when injected)."""
        with self._cond:
            return [
                copy.deepcopy(call)
                for call in self._calls
                if method is None or str(call["method"]).lower() == method.lower()
            ]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20) -> bool:
        """Block until ``predicate()`` is true (re-checked on every state change)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
            return True

    def wait_for_sent(self, chat_id: int, count: int, timeout: float = 20) -> list[JSONDict]:
        """Block until at least ``count`` messages were sent to ``chat_id``."""
        if not self.wait_until(lambda: len(self.sent(chat_id)) >= count, timeout):
            got = [item["text"] for item in self.sent(chat_id)]
            raise AssertionError(
                f"expected >= {count} messages to chat {chat_id} within {timeout}s, "
                f"got {len(got)}: {got}; errors in fake: {len(self.errors)}"
            )
        return self.sent(chat_id)

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 20) -> list[JSONDict]:
        """Block until ``method`` was called at least ``count`` times."""
        if not self.wait_until(lambda: len(self.calls(method)) >= count, timeout):
            raise AssertionError(
                f"expected >= {count} {method} calls within {timeout}s, "
                f"got {len(self.calls(method))}"
            )
        return self.calls(method)

    @property
    def callback_answers(self) -> list[JSONDict]:
        """answerCallbackQuery calls that succeeded: callback_query_id, text, show_alert."""
        with self._cond:
            return copy.deepcopy(self._callback_answers)

    @property
    def webhook_info(self) -> JSONDict:
        """What getWebhookInfo returns, plus ``secret_token`` for assertions."""
        with self._cond:
            url = self._webhook["url"]
            info: JSONDict = {
                "url": url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
                "secret_token": self._webhook["secret_token"],
            }
            if url:
                info["max_connections"] = self._webhook["max_connections"]
                info["ip_address"] = "127.0.0.1"
                info.update(self._webhook_errors)
            if self._allowed_updates is not None:
                info["allowed_updates"] = list(self._allowed_updates)
            return info

    @property
    def webhook_deliveries(self) -> list[JSONDict]:
        """Every webhook POST attempt: update_id, url, attempt, status, error, time."""
        with self._cond:
            return copy.deepcopy(self._deliveries)

    @property
    def pending_update_count(self) -> int:
        """Updates not yet confirmed (polling) or delivered (webhook)."""
        with self._cond:
            return len(self._pending)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of bugs inside the fake (answered with 500); should stay empty."""
        with self._cond:
            return list(self._errors)

    post_to_webhook = staticmethod(post_to_webhook)
