"""The knowledge-base editor (/console/kb) in a real headless Chromium against the real
stack (Rasa, action server, hub), and its API's bad inputs over HTTP.

The stack is shared by the whole suite: these tests edit entries of their own where they
can, and put back any shared entry they change (``restore`` fixture), so the FAQ questions
other tests ask get the answers they expect.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from bot.db.models import AuditEntry
from bot.db.session import session_scope
from bot.services.kb import editor, feedback, store
from tests.conftest import Chat
from tests.test_console_auth import ConsoleClient, make_staff
from tests.test_console_browser import (
    TURN,
    XSS,
    Agent,
    agents,  # noqa: F401 - the console tests' fixtures
    browser,  # noqa: F401
    shot,
    widget_customer,  # noqa: F401
)

SHARED = "loyalty-program"  # no other test asks about the Club
CLUB_QUESTION = "¿Cómo funciona el Club?"


def db(stack) -> str:
    return stack.settings.database_url


class Restore:
    """``restore(faq_id)`` before changing a shared entry: afterwards it is published again
    exactly as it was (any draft dropped). Entries a test made (``restore.made``) are
    retired, so that no later test's question finds them."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.saved: dict[str, dict] = {}
        self.made: list[str] = []

    def __call__(self, faq_id: str) -> None:
        with session_scope(self.url) as s:
            self.saved[faq_id] = editor.published(store.get(s, faq_id))

    def undo(self) -> None:
        for faq_id, original in self.saved.items():
            with session_scope(self.url) as s:
                entry = store.get(s, faq_id)
                if (entry.deleted or entry.draft is not None
                        or editor.published(entry) != original):
                    editor.publish(s, faq_id, "test-restore", entry.version, original)
        for faq_id in self.made:
            with session_scope(self.url) as s:
                entry = store.get(s, faq_id)
                if entry is not None and not entry.deleted:
                    editor.retire(s, faq_id, "test-cleanup", entry.version)


@pytest.fixture
def restore(stack) -> Iterator[Restore]:
    keeper = Restore(db(stack))
    yield keeper
    keeper.undo()


def new_id(prefix: str = "prueba") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def published_entry(stack, restore, faq_id: str, answer_es: str, question_es: str) -> None:
    """An entry of the test's own, published directly (not through the page)."""
    restore.made.append(faq_id)
    with session_scope(db(stack)) as s:
        editor.create_draft(s, faq_id, {
            "tags": ["prueba"],
            "es": {"title": f"Entrada de prueba {faq_id}", "answer": answer_es,
                   "questions": [question_es]},
            "en": {"title": f"Test entry {faq_id}", "answer": "Test answer.",
                   "questions": ["test question?"]}}, "test-setup")
        editor.publish(s, faq_id, "test-setup", 1)


def diff_sides(page, field_selector: str) -> tuple[str, str]:
    """(before, after) texts of one rendered diff field: what is not inserted, and what is
    not deleted (so the check does not depend on how difflib cut the words)."""
    before, after = page.evaluate("""(sel) => {
        const pre = document.querySelector(sel + ' pre');
        const pick = (skip) => Array.from(pre.childNodes)
            .filter(n => n.nodeName !== skip).map(n => n.textContent).join('');
        return [pick('INS'), pick('DEL')];
    }""", field_selector)
    return before, after


def ask(stack, text: str) -> str:
    """A new customer asks once through the turn API; the bot's reply as text."""
    return Chat.texts(Chat(stack.hub_url, locale="es").say(text))


class Admin(Agent):
    """An admin in their own browser, on the knowledge-base editor."""

    def __init__(self, chromium, stack, name: str) -> None:
        super().__init__(chromium, stack, name, role="admin")

    def open_kb(self, faq_id: str | None = None) -> Admin:
        """Load the editor afresh (a link to the page it is on would only change the hash)."""
        url = "/console/kb" + (f"#{faq_id}" if faq_id else "")
        if "/console/kb" in self.page.url:
            self.page.evaluate("(url) => window.history.replaceState(null, '', url)", url)
            self.page.reload()
        else:
            self.page.goto(url)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "1", timeout=TURN)
        if faq_id:
            expect(self.page.locator("#editor")).to_have_attribute("data-id", faq_id)
        return self

    def open_entry(self, faq_id: str) -> None:
        self.page.locator(f'#kb-list .kb-item[data-id="{faq_id}"] button').click()
        expect(self.page.locator("#editor")).to_have_attribute("data-id", faq_id)

    def notice(self):
        return self.page.locator("#notice")

    def accept_next_dialog(self) -> None:
        self.page.once("dialog", lambda dialog: dialog.accept())


@pytest.fixture
def admins(browser, stack, request) -> Iterator:  # noqa: F811 - the imported fixture
    made: list[Admin] = []

    def _new() -> Admin:
        admin = Admin(browser, stack, f"{request.node.name}-{len(made)}")
        made.append(admin)
        return admin.login()

    yield _new
    for admin in made:
        admin.close()
    for admin in made:
        assert not admin.errors, f"errors in {admin.username}'s console: {admin.errors}"


# --- the story: edit in Spanish, draft unseen, publish seen, revert --------------------------

def test_admin_edits_spanish_answer_publishes_and_reverts(admins, stack, restore):
    restore(SHARED)
    with session_scope(db(stack)) as s:
        old_answer = store.get(s, SHARED).content["es"]["answer"].strip()
    new_answer = f"Con el Club ganas 2 puntos por cada euro (edición {uuid.uuid4().hex[:6]})."
    assert old_answer[:40] in ask(stack, CLUB_QUESTION)

    admin = admins()
    expect(admin.page.locator("#kb-link")).to_be_visible()
    admin.page.click("#kb-link")
    expect(admin.page).to_have_url(re.compile(r"/console/kb$"))
    expect(admin.page.locator("body")).to_have_attribute("data-ready", "1", timeout=TURN)

    # the list searches like the bot does
    admin.page.fill("#kb-search", "¿cómo funciona el club de puntos?")
    admin.page.press("#kb-search", "Enter")
    expect(admin.page.locator("#kb-verdict")).to_contain_text(
        f"El bot respondería con «{SHARED}»", timeout=TURN)
    expect(admin.page.locator("#kb-list .kb-item").first).to_have_attribute("data-id", SHARED)
    admin.open_entry(SHARED)
    expect(admin.page.locator("#f-es-answer")).to_have_value(re.compile(re.escape(
        old_answer[:40])))

    # a draft: saved, not served
    admin.page.fill("#f-es-answer", new_answer)
    admin.page.click("#btn-save")
    expect(admin.notice()).to_contain_text("Borrador guardado")
    expect(admin.page.locator("#e-status")).to_contain_text("con borrador")
    assert diff_sides(admin.page, '#draft-diff [data-field="es.answer"]') == (
        old_answer, new_answer)
    shot(admin.page, "kb-draft")
    reply = ask(stack, CLUB_QUESTION)
    assert new_answer not in reply and old_answer[:40] in reply

    # publish: the very next customer message gets it
    admin.page.click("#btn-publish")
    expect(admin.notice()).to_contain_text("Publicado")
    chat = Chat(stack.hub_url, locale="es")
    assert new_answer in Chat.texts(chat.say(CLUB_QUESTION))
    latest = admin.page.locator("#history > li").first
    expect(latest).to_contain_text("Publicada")
    expect(latest).to_contain_text(admin.username)
    assert diff_sides(admin.page, '#history > li:first-child [data-field="es.answer"]') == (
        old_answer, new_answer)
    shot(admin.page, "kb-published")

    # the action server counted the answer shown and the customer's "yes"
    chat.say("sí, gracias")
    with session_scope(db(stack)) as s:
        counts = feedback.counts(s, [SHARED])[SHARED]
    assert counts["shown"] >= 2 and counts["helped"] >= 1
    admin.open_kb(SHARED)
    expect(admin.page.locator("#stats")).to_contain_text("Mostrada")
    expect(admin.page.locator("#stats")).to_contain_text(f"{counts['shown']} veces")

    # revert to the version before: a new publish, served at once
    admin.accept_next_dialog()
    admin.page.locator("#history > li").nth(1).locator(".btn-revert").click()
    expect(admin.notice()).to_contain_text("publicada de nuevo")
    expect(admin.page.locator("#history > li").first).to_contain_text("Revertida")
    expect(admin.page.locator("#f-es-answer")).to_have_value(re.compile(re.escape(
        old_answer[:40])))
    reply = ask(stack, CLUB_QUESTION)
    assert new_answer not in reply and old_answer[:40] in reply
    shot(admin.page, "kb-reverted")
    with session_scope(db(stack)) as s:
        actions = s.execute(select(AuditEntry.action).where(
            AuditEntry.actor == admin.username, AuditEntry.subject == SHARED)).scalars().all()
    assert actions == ["kb.publish", "kb.revert"]


# --- a new entry, "try it", untranslated -----------------------------------------------------

def test_new_entry_try_it_before_and_after_and_missing_english(admins, stack, restore):
    faq_id = new_id("mascotas")
    restore.made.append(faq_id)
    question = "tengo un perro grande en casa, ¿es problema para el repartidor?"
    admin = admins().open_kb()
    admin.page.fill("#new-id", faq_id)
    admin.page.click("#btn-new")
    expect(admin.page.locator("#editor")).to_have_attribute("data-id", faq_id)
    expect(admin.page.locator("#e-status")).to_contain_text("Sin publicar")
    admin.page.fill("#f-es-title", "Entrega con mascotas en casa")
    admin.page.fill("#f-es-answer", "Avísanos si tienes perro: el repartidor esperará fuera.")
    admin.page.fill("#f-es-questions", "¿el repartidor tiene problema con mi perro?\n"
                    "tengo un perro en casa, ¿pasa algo con la entrega?")
    # try it, unsaved: the published KB does not know it; with the edit, this entry answers
    admin.page.fill("#try-query", question)
    admin.page.click("#btn-try")
    before, after = admin.page.locator("#try-before .verdict"), admin.page.locator(
        "#try-after .verdict")
    expect(after).to_have_attribute("data-faq-id", faq_id, timeout=TURN)
    expect(after).to_have_attribute("data-decision", "answer")
    assert before.get_attribute("data-faq-id") != faq_id
    expect(admin.page.locator("#try-after .scores tr.top")).to_contain_text(faq_id)
    shot(admin.page, "kb-try-it")
    # English left empty on purpose: publishable, flagged as missing
    admin.page.click("#btn-publish")
    expect(admin.notice()).to_contain_text("Publicado")
    expect(admin.page.locator("#e-status")).to_have_text("Publicada")
    expect(admin.page.locator("#e-missing")).to_contain_text("falta inglés")
    admin.page.select_option("#kb-filter", "missing_en")
    expect(admin.page.locator(f'#kb-list .kb-item[data-id="{faq_id}"]')).to_be_visible()
    expect(admin.page.locator(f'#kb-list .kb-item[data-id="{faq_id}"]')).to_contain_text(
        "falta inglés")
    # now the published KB answers with it
    admin.page.click("#btn-try")
    expect(before).to_have_attribute("data-faq-id", faq_id, timeout=TURN)
    # a half-filled English block is refused with a clear message
    admin.page.fill("#f-en-title", "Delivery with pets")
    admin.page.click("#btn-publish")
    expect(admin.notice()).to_contain_text("Falta la respuesta y una pregunta de ejemplo en "
                                           "inglés")
    # retire: gone for customers, listed under "Retiradas"
    admin.accept_next_dialog()
    admin.page.click("#btn-retire")
    expect(admin.notice()).to_contain_text("Entrada retirada")
    admin.page.select_option("#kb-filter", "retired")
    expect(admin.page.locator(f'#kb-list .kb-item[data-id="{faq_id}"]')).to_be_visible()
    with session_scope(db(stack)) as s:
        assert [a for a in s.execute(select(AuditEntry.action).where(
            AuditEntry.subject == faq_id)).scalars()] == ["kb.publish", "kb.retire"]


# --- two admins, one entry -------------------------------------------------------------------

def test_two_admins_editing_the_same_entry_second_gets_the_conflict(admins, stack, restore):
    faq_id = new_id()
    published_entry(stack, restore, faq_id, "Respuesta original.", "¿pregunta de prueba?")
    ana, bea = admins().open_kb(faq_id), admins().open_kb(faq_id)
    ana.page.fill("#f-es-answer", "Respuesta de Ana.")
    ana.page.click("#btn-publish")
    expect(ana.notice()).to_contain_text("Publicado")
    # Bea still has the version she loaded
    bea.page.fill("#f-en-answer", "Bea's English answer.")
    bea.page.click("#btn-publish")
    expect(bea.notice()).to_contain_text(f"Otra persona ({ana.username}) cambió esta entrada")
    assert diff_sides(bea.page, '#conflict-diff [data-field="es.answer"]') == (
        "Respuesta original.", "Respuesta de Ana.")
    shot(bea.page, "kb-conflict")
    with session_scope(db(stack)) as s:  # nothing of Bea's was written
        entry = store.get(s, faq_id)
        assert entry.content["es"]["answer"] == "Respuesta de Ana."
        assert entry.content["en"]["answer"] == "Test answer."
    # she loads Ana's version, redoes her change on top and publishes
    bea.page.click("#btn-reload")
    expect(bea.page.locator("#f-es-answer")).to_have_value("Respuesta de Ana.")
    bea.page.fill("#f-en-answer", "Bea's English answer.")
    bea.page.click("#btn-publish")
    expect(bea.notice()).to_contain_text("Publicado")
    with session_scope(db(stack)) as s:
        entry = store.get(s, faq_id)
        assert (entry.content["es"]["answer"], entry.content["en"]["answer"]) == (
            "Respuesta de Ana.", "Bea's English answer.")


# --- roles and CSRF --------------------------------------------------------------------------

def test_agents_cannot_open_the_editor_and_csrf_is_enforced(stack, agents):  # noqa: F811
    agent = agents().login()
    expect(agent.page.locator("#kb-link")).to_be_hidden()
    assert agent.page.goto("/console/kb").status == 403
    url = db(stack)
    agent_http, admin_http = ConsoleClient(stack.hub_url), ConsoleClient(stack.hub_url)
    try:
        agent_http.login(make_staff(url, "agent"))
        admin_http.login(make_staff(url, "admin"))
        for path in ("/console/kb", "/console/api/kb/entries",
                     f"/console/api/kb/entries/{SHARED}"):
            assert agent_http.http.get(path).status_code == 403, path
        body = {"expected_version": 1}
        for path in ("/console/api/kb/entries", f"/console/api/kb/entries/{SHARED}/publish",
                     f"/console/api/kb/entries/{SHARED}/retire", "/console/api/kb/try"):
            assert agent_http.post(path, body).status_code == 403, path
            assert admin_http.post(path, body, csrf=None).status_code == 403, path
            assert admin_http.post(path, body, csrf="not-the-token").status_code == 403, path
        anonymous = ConsoleClient(stack.hub_url)
        assert anonymous.http.get("/console/api/kb/entries").status_code == 401
        assert anonymous.http.get("/console/kb").status_code == 303
        anonymous.close()
        assert admin_http.http.get("/console/api/kb/entries").status_code == 200
    finally:
        agent_http.close()
        admin_http.close()


# --- bad input over HTTP ---------------------------------------------------------------------

def test_bad_inputs_get_clear_answers(stack, restore):
    admin = ConsoleClient(stack.hub_url)
    admin.login(make_staff(db(stack), "admin"))
    faq_id = new_id()
    restore.made.append(faq_id)
    try:
        entry = {"tags": ["prueba"],
                 "es": {"title": "Prueba", "answer": XSS, "questions": ["¿prueba?"]},
                 "en": {"title": "", "answer": "", "questions": []}}
        created = admin.post("/console/api/kb/entries", {"id": faq_id, "entry": entry})
        assert created.status_code == 201, created.text
        assert created.json()["working"]["content"]["es"]["answer"] == XSS  # stored as text
        duplicate = admin.post("/console/api/kb/entries", {"id": faq_id, "entry": entry})
        assert duplicate.status_code == 409 and "Ya existe" in duplicate.json()["message"]
        bad_id = admin.post("/console/api/kb/entries", {"id": "Con Espacios"})
        assert bad_id.status_code == 422 and "minúsculas" in bad_id.json()["message"]

        huge = {**entry, "es": {**entry["es"], "answer": "a" * 100_000}}
        resp = admin.post(f"/console/api/kb/entries/{faq_id}/draft",
                          {"expected_version": 1, "entry": huge})
        assert resp.status_code == 422
        assert resp.json()["message"].startswith(
            "La respuesta en español tiene 100 000 caracteres; el máximo es 4 000.")

        half = {**entry, "en": {"title": "Test", "answer": " ", "questions": []}}
        resp = admin.post(f"/console/api/kb/entries/{faq_id}/publish",
                          {"expected_version": 1, "entry": half})
        assert resp.status_code == 422
        assert "Falta la respuesta y una pregunta de ejemplo en inglés" in resp.json()["message"]
        empty = {"es": {}, "en": {}}
        resp = admin.post(f"/console/api/kb/entries/{faq_id}/publish",
                          {"expected_version": 1, "entry": empty})
        assert resp.status_code == 422 and "al menos un idioma" in resp.json()["message"]

        ok = admin.post(f"/console/api/kb/entries/{faq_id}/publish", {"expected_version": 1})
        assert ok.status_code == 200 and ok.json()["missing"] == ["en"]
        stale = admin.post(f"/console/api/kb/entries/{faq_id}/draft",
                           {"expected_version": 1, "entry": entry})
        assert stale.status_code == 409
        assert stale.json()["error"] == "conflict" and stale.json()["current"]["version"] == 2
        assert "Otra persona" in stale.json()["message"]
        made_up = admin.post(f"/console/api/kb/entries/{faq_id}/retire",
                             {"expected_version": 77})
        assert made_up.status_code == 409 and "recarga" in made_up.json()["message"]
        negative = admin.post(f"/console/api/kb/entries/{faq_id}/retire",
                              {"expected_version": -1})
        assert negative.status_code == 422
        bad_revision = admin.post(f"/console/api/kb/entries/{faq_id}/revert",
                                  {"expected_version": 2, "revision_id": 2**31 - 1})
        assert bad_revision.status_code == 404

        assert admin.http.get("/console/api/kb/entries/no-such-entry").status_code == 404
        unknown = admin.post("/console/api/kb/entries/no-such-entry/publish",
                             {"expected_version": 1})
        assert unknown.status_code == 404
        assert unknown.json()["message"] == "No existe la entrada «no-such-entry»."
        assert admin.http.get("/console/api/kb/entries",
                              params={"filter": "nope"}).status_code == 422
        assert admin.post("/console/api/kb/try", {"query": "  "}).status_code == 422
        not_json = admin.http.post(f"/console/api/kb/entries/{faq_id}/draft", content=b"{",
                                   headers={"X-CSRF-Token": admin.csrf,
                                            "Content-Type": "application/json"})
        assert not_json.status_code == 422
    finally:
        admin.close()


# --- XSS: an admin's HTML is text in the editor and in the widget ----------------------------

def test_html_in_an_answer_is_text_in_the_editor_and_the_widget(
        admins, stack, restore, widget_customer):  # noqa: F811 - the imported fixture
    restore(SHARED)
    with session_scope(db(stack)) as s:
        entry = store.get(s, SHARED)
        data = editor.published(entry)
        old_answer = data["content"]["es"]["answer"]
        data["content"]["es"]["answer"] = f"Puntos del Club {XSS} fin."
        data["content"]["es"]["title"] = f"Club {XSS}"
        editor.publish(s, SHARED, "test-setup", entry.version, data)
    admin = admins().open_kb(SHARED)
    expect(admin.page.locator("#f-es-answer")).to_have_value(f"Puntos del Club {XSS} fin.")
    expect(admin.page.locator("#f-es-title")).to_have_value(f"Club {XSS}")
    expect(admin.page.locator(f'#kb-list .kb-item[data-id="{SHARED}"] .kb-item-title')
           ).to_have_text(f"Club {XSS}")
    assert diff_sides(admin.page, '#history > li:first-child [data-field="es.answer"]') == (
        old_answer, f"Puntos del Club {XSS} fin.")
    widget_customer.say(CLUB_QUESTION)
    bot = widget_customer.page.locator(".pv-row-bot .pv-msg")
    expect(bot.filter(has_text="Puntos del Club")).to_have_count(1, timeout=TURN)
    expect(bot.filter(has_text="Puntos del Club")).to_have_text(f"Puntos del Club {XSS} fin.")
    for page in (admin.page, widget_customer.page):
        assert page.evaluate("typeof window.__pwned") == "undefined"
    assert admin.page.locator("#editor img, #kb-list img").count() == 0
    assert widget_customer.page.locator(".pv-msg img").count() == 0
    shot(admin.page, "kb-xss-editor")
    shot(widget_customer.page, "kb-xss-widget")
