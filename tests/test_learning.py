"""The learning inbox (issue 13, item 2): what customers asked that the bot could not answer,
recorded by the action server, grouped by meaning, and turned by an admin — in a real headless
Chromium against the real stack — into example questions of an entry that the running bot then
answers; plus grouping, dismissing, new entries, the weekly trend and privacy.

Bad inputs handled: a misunderstood message that is HTML/script (shown as text), an unknown
entry, an entry with an unpublished draft, items already handled (a second click), an empty
selection, an agent opening the inbox (403), a state change without CSRF (403)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from bot.db.models import Conversation, LearningItem, Message, utcnow
from bot.db.session import session_scope
from bot.services import learning, privacy
from bot.services.kb import editor
from tests.conftest import Chat
from tests.test_console_auth import ConsoleClient, make_staff
from tests.test_console_browser import (  # noqa: F401 - fixtures
    XSS,
    Agent,
    browser,
    shot,
)

# asked by customers in other words than any example of the KB: none should be answered yet
CANDIDATES = ["¿me guardáis el pedido unas semanas en el almacén mientras hago la mudanza?",
              "¿puedo recoger yo mismo el pedido en vuestro almacén de Getafe?",
              "¿hacéis descuento a familias numerosas?",
              "¿tenéis tienda física en Sevilla para ver los sofás?"]


def make_entry(session, faq_id: str, answer: str) -> None:
    content = {"es": {"title": "Prueba de aprendizaje", "answer": answer,
                      "questions": ["¿cuál es el color favorito del gerente?"]},
               "en": {"title": "Learning test", "answer": answer + " (en)",
                      "questions": ["what is the manager's favourite colour?"]}}
    entry = editor.create_draft(session, faq_id, {"tags": [], "content": content}, "test")
    editor.publish(session, faq_id, "test", entry.version)


def vectors(*texts: str) -> list[bytes | None]:
    return [learning._vector(t) for t in texts]


# --- service -----------------------------------------------------------------------------------

def test_groups_put_paraphrases_together_and_keep_languages_apart(session):
    es = ["¿puedo pagar con bizum?", "se puede pagar por bizum", "¿aceptáis bizum?"]
    other = ["¿tenéis tienda física en Sevilla?"]
    en = ["can I pay with bizum?"]
    for text in es + other:
        learning.record(session, text, "es", "no_answer", None)
    learning.record(session, en[0], "en", "fallback", None)
    learning.record(session, "/ask_faq", "es", "fallback", None)  # a payload: nothing to learn
    learning.record(session, "   ", "es", "fallback", None)
    session.commit()
    groups = learning.groups(session)
    assert [g["count"] for g in groups] == [3, 1, 1]
    assert set(groups[0]["texts"]) == set(es) and groups[0]["language"] == "es"
    assert {tuple(g["texts"]) for g in groups[1:]} == {tuple(other), tuple(en)}


def test_actions_on_a_group(session):
    make_entry(session, "learning-svc", "Respuesta del servicio.")
    ids = [learning.record(session, t, "es", "no_answer", None).id
           for t in ("¿vendéis tarjetas regalo?", "¿tenéis cheques regalo?")]
    session.commit()
    with pytest.raises(learning.LearningError):
        learning.add_examples(session, [], "learning-svc", "ana")
    with pytest.raises(editor.EditorError):
        learning.add_examples(session, ids, "no-such-entry", "ana")
    session.rollback()
    done = learning.add_examples(session, ids, "learning-svc", "ana")
    session.commit()
    assert done["added"] == ["¿vendéis tarjetas regalo?", "¿tenéis cheques regalo?"]
    questions = editor.published(editor.find(session, "learning-svc"))["content"]["es"][
        "questions"]
    assert "¿tenéis cheques regalo?" in questions
    with pytest.raises(learning.LearningError):  # a second click: already handled
        learning.add_examples(session, ids, "learning-svc", "ana")
    # a draft pending on the entry: refused, nothing is lost
    more = learning.record(session, "¿hay bonos regalo?", "es", "fallback", None).id
    entry = editor.find(session, "learning-svc")
    editor.save_draft(session, "learning-svc", editor.working(entry) | {"tags": ["x"]}, "bea",
                      entry.version)
    session.commit()
    with pytest.raises(learning.LearningError, match="draft"):
        learning.add_examples(session, [more], "learning-svc", "ana")
    session.rollback()
    created = learning.new_entry(session, [more], "gift-cards", "ana")
    session.commit()
    draft = editor.find(session, "gift-cards")
    assert created["faq_id"] == "gift-cards" and editor.status(draft) == "new"
    assert editor.working(draft)["content"]["es"]["questions"] == ["¿hay bonos regalo?"]
    gone = learning.record(session, "¿me llamáis?", "es", "fallback", None).id
    session.commit()
    assert learning.dismiss(session, [gone], "ana") == {"items": 1}
    session.commit()
    assert learning.groups(session) == []
    assert learning.counts(session) == {"example_added": 2, "entry_created": 1, "dismissed": 1}


def test_trend_counts_unanswered_per_week(session):
    conv = Conversation(sender=f"trend-{uuid.uuid4().hex}", channel="web")
    session.add(conv)
    session.flush()
    now = utcnow()
    for days, n in ((0, 4), (7, 2)):
        for i in range(n):
            session.add(Message(conversation_id=conv.id, direction="in", author="customer",
                                text=f"m{i}", created_at=now - timedelta(days=days)))
    item = learning.record(session, "¿abrís los domingos?", "es", "no_answer", conv.id)
    session.commit()
    learning.resolve(session, [item], "example_added", "ana", "contact-hours")
    session.commit()
    rows = learning.trend(session, weeks=3, now=now)
    this_week = rows[-1]
    assert this_week["messages"] == 4 and this_week["unanswered"] == 1
    assert this_week["rate"] == 0.25 and this_week["fixed"] == 1
    assert any(r["messages"] == 2 and r["rate"] == 0 for r in rows[:-1])
    assert all(r["rate"] is None for r in rows if r["messages"] == 0)  # n/a, never 0


def test_erase_and_retention_take_the_words_along(session):
    conv = Conversation(sender=f"forget-{uuid.uuid4().hex}", channel="web",
                        last_activity_at=utcnow() - timedelta(days=400))
    session.add(conv)
    session.flush()
    learning.record(session, "mi número es 600123123 y no me llamáis", "es", "fallback",
                    conv.id)
    session.commit()
    privacy.purge_expired(session, None, Path("/nonexistent"), 365)
    row = session.execute(select(LearningItem)).scalar_one()
    assert row.text == "" and row.vector is None and row.status == "erased"
    assert learning.groups(session) == []


# --- the running stack, in the browser --------------------------------------------------------

def _recorded(db: str, sender: str) -> list[LearningItem]:
    with session_scope(db) as s:
        rows = s.execute(select(LearningItem).join(
            Conversation, Conversation.id == LearningItem.conversation_id).where(
            Conversation.sender == sender)).scalars().all()
        for row in rows:
            s.expunge(row)
        return rows


def _first_recorded(db: str, chat: Chat, texts: list[str]) -> str | None:
    """Say each text in turn; the first one that lands in the learning inbox."""
    for text in texts:
        before = len(_recorded(db, chat.sender))
        chat.say(text)
        if len(_recorded(db, chat.sender)) > before:
            return text
    return None


def test_an_admin_turns_a_missed_question_into_an_answer(stack, browser):  # noqa: F811
    db = stack.settings.database_url
    tag = uuid.uuid4().hex[:6]
    faq_id, answer = f"learning-{tag}", f"Sí: el almacén guarda pedidos ({tag})."
    with session_scope(db) as s:
        make_entry(s, faq_id, answer)
    # the first candidate the bot really cannot answer today
    chat = Chat(stack.hub_url, locale="es-ES")
    asked = _first_recorded(db, chat, CANDIDATES)
    assert asked, "the bot answered every candidate: pick new ones for this test"
    # markup a customer typed, inside a question the bot cannot answer: it waits in the
    # inbox, shown as text (a bare tag alone may be read as "data given without a question")
    xss_text = _first_recorded(db, Chat(stack.hub_url, locale="es-ES"), [
        f"¿vendéis fundas para esto? {XSS}", f"{XSS} ¿hacéis grabados láser?", XSS])
    assert xss_text, "no markup-bearing question was recorded as unanswered"
    admin = Agent(browser, stack, "learning-admin", role="admin")
    agent = ConsoleClient(stack.hub_url)
    try:
        assert agent.login(make_staff(db, "agent")).status_code == 204
        assert agent.http.get("/console/learn").status_code == 403
        assert agent.http.get("/console/api/learn").status_code == 403
        admin.login()
        page = admin.page
        page.goto("/console/learn")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        group = page.locator(".group").filter(has_text=asked)
        expect(group).to_have_count(1)
        expect(page.locator(".learn-text").filter(has_text=XSS).first).to_have_text(xss_text)
        assert page.evaluate("window.__pwned") is None
        # without the session's CSRF token nothing changes
        no_csrf = page.request.post("/console/api/learn/dismiss",
                                    data={"item_ids": [1]}, headers={"X-CSRF-Token": "x"})
        assert no_csrf.status == 403
        # the conversation is one click away
        with session_scope(db) as s:
            conv_id = s.execute(select(Conversation.id).where(
                Conversation.sender == chat.sender)).scalar_one()
        group.locator(f'a[href="/console#c{conv_id}"]').click()
        expect(page.locator("#detail")).to_have_attribute("data-id", str(conv_id))
        expect(page.locator("#transcript")).to_contain_text(asked)
        page.goto("/console/learn")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        group = page.locator(".group").filter(has_text=asked)
        group.locator(".learn-target").fill("no-such-entry")
        group.locator(".learn-add").click()
        expect(page.locator("#status")).to_contain_text("no-such-entry")
        group.locator(".learn-target").fill(faq_id)
        group.locator(".learn-add").click()
        expect(page.locator("#status")).to_contain_text("añadidas")
        expect(page.locator(".group").filter(has_text=asked)).to_have_count(0)
        shot(page, "learning-inbox")
    finally:
        admin.close()
        agent.close()
    # the same question, by another customer: answered now, no retraining
    later = Chat(stack.hub_url, locale="es-ES")
    reply = Chat.texts(later.say(asked))
    assert answer in reply, reply
    with session_scope(db) as s:
        audit_row = s.execute(select(learning.LearningItem).where(
            LearningItem.text == asked, LearningItem.status == "example_added")).scalars().all()
        assert audit_row and audit_row[0].resolved_faq_id == faq_id
