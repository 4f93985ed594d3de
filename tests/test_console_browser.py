"""The agents' console in a real headless Chromium against the real stack.

Agents log in through the form; customers talk through the web widget (a second browser
context) and the fake Telegram Bot API; the console's inbox follows them live (SSE).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from bot.db.models import Conversation, utcnow
from bot.db.session import session_factory, session_scope
from bot.services import handoff as handoff_svc
from tests.conftest import ARTIFACTS, Chat
from tests.test_console_auth import PASSWORD, make_staff

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--metrics-recording-only",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
TURN = 30_000  # ms: a Rasa turn on a busy 2-core machine, with room to spare
UI = 10_000  # ms: something the page does by itself
XSS = '<img src=x onerror="window.__pwned=1">'


# --- fixtures and drivers -------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the console tests need Debian's chromium "
                    "(`make test` bootstraps it; or `apt-get install chromium`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class Agent:
    """A staff member in their own browser context, and what they see and do in the console."""

    def __init__(self, browser: Browser, stack, name: str, role: str = "agent") -> None:
        self.name = name
        self.username = make_staff(stack.settings.database_url, role=role)
        self.context = browser.new_context(base_url=stack.hub_url, locale="es-ES",
                                           viewport={"width": 1440, "height": 900})
        self.context.set_default_timeout(UI)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        # CSP violations ("Refused to …") show up as console errors; answers like 401 or 409
        # are expected here and checked by the tests themselves
        self.page.on("console", lambda msg: self.errors.append(msg.text)
                     if msg.type == "error" and not msg.text.startswith(
                         "Failed to load resource: the server responded") else None)

    def login(self, password: str = PASSWORD) -> Agent:
        self.page.goto("/console")
        expect(self.page).to_have_url(re.compile(r"/console/login$"))
        self.page.fill("#username", self.username)
        self.page.fill("#password", password)
        self.page.click("#login-submit")
        expect(self.page).to_have_url(re.compile(r"/console$"))
        self.wait_live()
        return self

    def wait_live(self) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-ready", "1")
        expect(self.page.locator("body")).to_have_attribute("data-live", "1")

    def item(self, conversation_id: int):
        return self.page.locator(f'#queue .queue-item[data-id="{conversation_id}"]')

    def open(self, conversation_id: int) -> None:
        self.item(conversation_id).locator("button").click()
        expect(self.page.locator("#detail")).to_have_attribute("data-id", str(conversation_id))

    def bubbles(self, who: str):
        return self.page.locator(f"#transcript .msg-{who} .msg-text")

    def banner(self):
        return self.page.locator("#banner")

    def claim(self) -> None:
        self.page.click("#btn-claim")
        expect(self.page.locator("#d-status")).to_contain_text("Atendiendo")
        expect(self.page.locator("#reply-form")).to_be_visible()

    def reply(self, text: str) -> None:
        before = self.bubbles("agent").count()
        self.page.fill("#reply-text", text)
        self.page.click("#btn-reply")
        expect(self.bubbles("agent")).to_have_count(before + 1)
        expect(self.bubbles("agent").last).to_have_text(text)
        expect(self.page.locator("#reply-text")).to_have_value("")

    def close_conversation(self) -> None:
        self.page.click("#btn-close")
        expect(self.banner()).to_contain_text("el cliente ha recibido la encuesta", timeout=TURN)
        expect(self.page.locator("#d-status")).to_have_text("Con el bot")

    def shot(self, name: str) -> Path:
        return shot(self.page, name)

    def close(self) -> None:
        try:
            self.shot(f"last-console-{self.name}")
        finally:
            self.context.close()


@pytest.fixture
def agents(browser, stack, request) -> Iterator:
    made: list[Agent] = []

    def _new(role: str = "agent") -> Agent:
        agent = Agent(browser, stack, f"{request.node.name}-{len(made)}", role)
        made.append(agent)
        return agent

    yield _new
    for agent in made:
        agent.close()
    for agent in made:
        assert not agent.errors, f"errors in {agent.username}'s console: {agent.errors}"


class WidgetCustomer:
    """A customer on the demo page with the widget (own context: own anonymous sender)."""

    def __init__(self, browser: Browser, hub_url: str) -> None:
        self.context = browser.new_context(base_url=hub_url, locale="es-ES",
                                           viewport={"width": 1280, "height": 800})
        self.context.set_default_timeout(UI)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.typed_at = 0.0
        self.page.goto("/")
        self.page.wait_for_function("() => window.PostventaWidget && PostventaWidget.connected",
                                    timeout=TURN)

    @property
    def sender(self) -> str:
        return self.page.evaluate("localStorage.getItem('pv.sender')")

    def say(self, text: str) -> None:
        before = self.page.locator(".pv-row-customer").count()
        self.typed_at = time.monotonic()
        self.page.fill(".pv-input", text)
        self.page.press(".pv-input", "Enter")
        expect(self.page.locator(".pv-row-customer")).to_have_count(before + 1)

    def texts(self, who: str) -> list[str]:
        return self.page.locator(f".pv-row-{who} .pv-msg").all_inner_texts()

    def close(self) -> None:
        try:
            shot(self.page, "last-console-widget-customer")
        finally:
            self.context.close()


@pytest.fixture
def widget_customer(browser, stack) -> Iterator[WidgetCustomer]:
    customer = WidgetCustomer(browser, stack.hub_url)
    yield customer
    customer.close()
    assert not customer.errors, customer.errors


def conversation(stack, sender: str) -> Conversation | None:
    with session_factory(stack.settings.database_url)() as s:
        return s.execute(select(Conversation).where(Conversation.sender == sender)
                         .order_by(Conversation.id.desc()).limit(1)).scalar_one_or_none()


def wait_status(stack, sender: str, status: str, timeout: float = TURN / 1000) -> Conversation:
    deadline = time.monotonic() + timeout
    conv = None
    while time.monotonic() < deadline:
        conv = conversation(stack, sender)
        if conv is not None and conv.status == status:
            return conv
        time.sleep(0.3)
    raise AssertionError(f"{sender}: status {conv.status if conv else None!r}, "
                         f"expected {status!r}")


@pytest.fixture
def escalate_in_db(stack) -> Iterator:
    """Put an existing conversation in the queue the way the hub does on a hand-off reply
    (for console tests that are not about the bot deciding to hand off). Afterwards they
    leave the queue, so that other tests of the session see only their own customers."""
    escalated: list[int] = []

    def _escalate(sender: str, name: str = "Cliente de prueba") -> int:
        with session_scope(stack.settings.database_url) as s:
            conv = s.execute(select(Conversation).where(Conversation.sender == sender)
                             .order_by(Conversation.id.desc()).limit(1)).scalar_one()
            handoff_svc.escalate(s, conv, {"reason": "request_human", "summary": {
                "customer": {"id": None, "name": name, "verified": False},
                "language": "es", "channel": conv.channel, "reason": "request_human",
                "intents": ["request_human"], "slots": {"order_number": XSS},
                "order_number": None, "case_number": None,
                "last_messages": [{"from": "customer", "text": XSS}]}})
            escalated.append(conv.id)
            return conv.id

    yield _escalate
    with session_scope(stack.settings.database_url) as s:
        for conv in s.execute(select(Conversation).where(Conversation.id.in_(escalated))
                              ).scalars():
            conv.status, conv.handoff_ended_at, conv.agent_id = "bot", utcnow(), None


# --- tests ----------------------------------------------------------------------------------

def test_login_form_and_logout(agents):
    agent = agents()
    page = agent.page
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.fill("#username", agent.username)
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Usuario o contraseña incorrectos.")
    expect(page.locator("#password")).to_have_value("")
    shot(page, "console-login-error")
    # the session cookie is invisible to scripts
    agent.login()
    assert "pv_console" not in page.evaluate("document.cookie")
    cookies = {c["name"]: c for c in agent.context.cookies()}
    assert cookies["pv_console"]["httpOnly"] is True
    assert cookies["pv_console"]["sameSite"] == "Strict"
    expect(page.locator("#me")).to_contain_text(agent.username)
    expect(page.locator("#conn")).to_have_text("En directo")
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login$"))


def test_customer_text_is_never_html_in_the_console(agents, stack, escalate_in_db):
    chat = Chat(stack.hub_url)
    chat.say("hola", metadata={"channel": "web"})
    cid = escalate_in_db(chat.sender, name='<b id="inj">Mallory</b>')
    agent = agents().login()
    expect(agent.item(cid)).to_be_visible()
    expect(agent.item(cid).locator(".q-name")).to_have_text('<b id="inj">Mallory</b>')
    agent.open(cid)
    chat.say(XSS, metadata={"channel": "web"})  # arrives live while the agent looks
    expect(agent.bubbles("customer").last).to_have_text(XSS, timeout=TURN)
    expect(agent.item(cid).locator(".q-preview")).to_have_text(XSS)
    expect(agent.page.locator("#summary")).to_contain_text(XSS)  # slots, last messages
    agent.page.reload()
    agent.wait_live()
    agent.open(cid)
    expect(agent.bubbles("customer").last).to_have_text(XSS)
    assert agent.page.evaluate("typeof window.__pwned") == "undefined"
    assert agent.page.locator("#transcript img, #summary img, #queue img, #inj").count() == 0


def test_two_agents_claiming_at_once_one_wins(agents, stack, escalate_in_db):
    chat = Chat(stack.hub_url)
    chat.say("hola", metadata={"channel": "web"})
    cid = escalate_in_db(chat.sender)
    ana, luis = agents().login(), agents().login()
    for agent in (ana, luis):
        agent.open(cid)
        expect(agent.page.locator("#btn-claim")).to_be_visible()
    # both press "Atender" before either answer is back
    ana.page.evaluate("document.getElementById('btn-claim').click()")
    luis.page.evaluate("document.getElementById('btn-claim').click()")
    winner = wait_status(stack, chat.sender, "with_agent")
    owner = next(a for a in (ana, luis) if a.username == _agent_name(stack, winner.agent_id))
    loser = luis if owner is ana else ana
    expect(loser.banner()).to_contain_text("Otra persona ya atiende esta conversación")
    expect(loser.page.locator("#reply-form")).to_be_hidden()
    expect(owner.page.locator("#reply-form")).to_be_visible()
    expect(owner.banner()).to_be_hidden()
    # the loser's inbox drops it (theirs is only what waits or what they own)
    expect(loser.item(cid)).to_have_count(0)
    shot(loser.page, "console-claim-conflict")

    # the owner hands it over: it is the other one's now, live on both screens
    owner.page.fill("#transfer-user", loser.username)
    owner.page.click("#btn-transfer")
    expect(owner.banner()).to_contain_text(f"transferida a {loser.username}")
    expect(owner.page.locator("#reply-form")).to_be_hidden()
    expect(owner.item(cid)).to_have_count(0)
    expect(loser.item(cid)).to_be_visible()
    expect(loser.item(cid).locator(".badge-agent")).to_have_text(f"Atiende {loser.username}")
    loser.open(cid)
    expect(loser.page.locator("#reply-form")).to_be_visible()
    # transferring to somebody who does not exist says so
    loser.page.fill("#transfer-user", "nadie-asi")
    loser.page.click("#btn-transfer")
    expect(loser.banner()).to_contain_text("No hay ningún agente activo «nadie-asi»")


def _agent_name(stack, agent_id: int) -> str:
    from bot.db.models import StaffUser

    with session_factory(stack.settings.database_url)() as s:
        return s.get(StaffUser, agent_id).username


def test_handoff_from_widget_and_telegram_end_to_end(agents, widget_customer, stack, bot_api):
    ana = agents().login()

    # a widget customer asks for a person, a Telegram customer complains
    w = widget_customer
    w.say("quiero hablar con una persona")
    conv_w = wait_status(stack, w.sender, "waiting_agent")
    chat_id = random.randint(10**8, 10**9)
    bot_api.user_sends_text(chat_id, "quiero poner una queja, esto es una vergüenza")
    conv_t = wait_status(stack, f"tg-{chat_id}", "waiting_agent")

    # both appear in the inbox without a reload; the complaint first, with its badge
    item_w, item_t = ana.item(conv_w.id), ana.item(conv_t.id)
    expect(item_w).to_be_visible()
    expect(item_t).to_be_visible()
    expect(item_t.locator(".badge-complaint")).to_have_text(re.compile("queja", re.I))
    expect(item_t.locator(".q-channel")).to_have_text("Telegram")
    expect(item_w.locator(".q-channel")).to_have_text("Web")
    expect(item_w.locator(".q-lang")).to_have_text("ES")
    expect(item_w.locator(".q-wait")).to_contain_text("espera")
    ids = ana.page.locator("#queue .queue-item").evaluate_all(
        "items => items.map(i => Number(i.dataset.id))")
    assert ids.index(conv_t.id) < ids.index(conv_w.id), ids
    ana.shot("console-inbox")

    # the widget one: summary, claim, reply → the customer sees the agent's bubble
    ana.open(conv_w.id)
    summary = ana.page.locator("#summary")
    expect(summary).to_contain_text("Pide una persona")
    expect(summary).to_contain_text("Web")
    expect(ana.bubbles("customer").first).to_have_text("quiero hablar con una persona")
    ana.claim()
    expect(w.page.locator(".pv-row-system .pv-msg").last).to_contain_text(
        ana.username.capitalize(), timeout=UI)  # "Ana has joined"
    ana.reply("Hola, soy Ana, te ayudo")
    expect(w.page.locator(".pv-row-agent .pv-msg").last).to_have_text(
        "Hola, soy Ana, te ayudo")
    # the customer types (the agent sees it) and answers (live in the transcript)
    # (the widget says "typing" at most every 4 s: the last one was when it asked)
    time.sleep(max(0.0, w.typed_at + 4.5 - time.monotonic()))
    w.page.locator(".pv-input").press_sequentially("tengo un problema", delay=30)
    expect(ana.page.locator("#typing")).to_be_visible()
    w.page.press(".pv-input", "Enter")
    expect(ana.bubbles("customer").last).to_have_text("tengo un problema")
    ana.shot("console-conversation")
    ana.close_conversation()
    expect(w.page.locator(".pv-row-bot .pv-msg").last).to_contain_text("Del 1", timeout=TURN)
    expect(item_w).to_have_count(0)
    assert conversation(stack, w.sender).status == "bot"
    # a stale screen replying to it gets a clear conflict
    stale = ana.page.evaluate("""id => fetch(`/console/api/conversations/${id}/reply`, {
        method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json',
                  'X-CSRF-Token': PostventaConsole.state.csrf},
        body: JSON.stringify({text: 'hola'})}).then(async r => [r.status, await r.json()])""",
                              conv_w.id)
    assert stale == [409, {"error": "closed", "message": "La conversación ya está cerrada."}]

    # the Telegram one: claim, reply (delivered in that chat), close → survey in Telegram
    ana.open(conv_t.id)
    expect(ana.page.locator("#summary")).to_contain_text("Queja")
    expect(ana.page.locator("#summary")).to_contain_text("Telegram")
    expect(ana.bubbles("customer").first).to_contain_text("vergüenza")
    ana.claim()
    # internal note, case status and resolution on the hand-off case
    case = ana.page.locator("#cases .case-current")
    expect(case).to_contain_text("En curso")
    ana.page.fill("#note-text", "Cliente muy molesto: ofrecer compensación")
    ana.page.click("#btn-note")
    expect(case.locator(".note-text").last).to_have_text(
        "Cliente muy molesto: ofrecer compensación")
    ana.page.select_option("#case-status", "waiting_customer")
    ana.page.click("#btn-status")
    expect(case).to_contain_text("Esperando al cliente")
    ana.page.fill("#resolution-text", "Reembolso de los gastos de envío")
    ana.page.click("#btn-resolution")
    expect(case.locator(".resolution")).to_contain_text("Reembolso de los gastos de envío")
    ana.reply("Hola, soy Ana. Siento lo ocurrido, lo reviso ahora")
    assert bot_api.wait_until(lambda: any(
        m["text"] == "Hola, soy Ana. Siento lo ocurrido, lo reviso ahora"
        for m in bot_api.sent(chat_id)), timeout=20), [m["text"] for m in bot_api.sent(chat_id)]
    bot_api.user_sends_text(chat_id, "vale, gracias")
    expect(ana.bubbles("customer").last).to_have_text("vale, gracias", timeout=TURN)
    expect(ana.page.locator("#transcript .msg-customer .msg-channel").last).to_have_text(
        "Telegram")
    ana.close_conversation()
    assert bot_api.wait_until(lambda: any("Del 1" in (m["text"] or "")
                                          for m in bot_api.sent(chat_id)), timeout=30), \
        [m["text"] for m in bot_api.sent(chat_id)]
    expect(ana.item(conv_t.id)).to_have_count(0)
    sent = [m["text"] for m in bot_api.sent(chat_id)]
    assert not any("compensación" in (t or "") for t in sent), sent  # notes stay internal
    assert not any("compensación" in t for t in w.texts("system") + w.texts("bot"))
    ana.shot("console-after-close")
