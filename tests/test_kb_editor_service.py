"""The knowledge-base editor's rules (draft → publish, revert, retire, optimistic locking,
bad input, per-entry statistics) on SQLite and PostgreSQL, and what the running bot's live
index does with them. The browser side is tests/test_kb_editor.py."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.core.config import ROOT
from bot.db.models import AuditEntry, Conversation
from bot.db.session import session_scope
from bot.services.kb import diff, editor, feedback, preview, store
from bot.services.kb.embeddings import Embedder
from bot.services.kb.live import LiveKnowledgeBase

KB = ROOT / "knowledge_base"
XSS = '<img src=x onerror="window.__pwned=1"><script>alert(1)</script>'


@pytest.fixture(scope="module")
def embedder():
    return Embedder()  # shares var/kb_embeddings.npz, warmed by `make test`'s bootstrap


def block(title="", answer="", questions=()):
    return {"title": title, "answer": answer, "questions": list(questions)}


def pets(answer_es="Avísanos si tienes perro: el repartidor esperará fuera.",
         en=True) -> dict:
    return {"tags": ["delivery", "pets"],
            "es": block("Entrega con mascotas", answer_es,
                        ["¿el repartidor tiene problema con mi perro?",
                         "tengo un perro en casa, ¿pasa algo con la entrega?"]),
            "en": block("Delivery with pets", "Tell us if you have a dog.",
                        ["is the courier ok with my dog?"]) if en else block()}


PET_QUESTION = "tengo un perro grande en casa, ¿es problema para el repartidor?"


def audit_actions(db_url: str, subject: str) -> list[str]:
    with session_scope(db_url) as s:
        return list(s.execute(select(AuditEntry.action).where(AuditEntry.subject == subject)
                              .order_by(AuditEntry.id)).scalars())


# --- draft → publish, live -------------------------------------------------------------------

def test_a_new_entry_is_invisible_until_published_then_answered_at_once(db_url, embedder):
    with session_scope(db_url) as s:
        store.import_directory(s, KB)
    kb = LiveKnowledgeBase(db_url, embedder=embedder)
    assert kb.search(PET_QUESTION, "es").faq_id != "pet-delivery"
    version = kb.version
    with session_scope(db_url) as s:
        entry = editor.create_draft(s, "pet-delivery", pets(), actor="ana")
        assert editor.status(entry) == "new" and entry.version == 1
    with session_scope(db_url) as s:
        assert store.kb_version(s) == version  # a draft does not make the bots rebuild
        assert "pet-delivery" not in [e.faq_id for e in store.list_entries(s)]
    assert kb.search(PET_QUESTION, "es").faq_id != "pet-delivery"
    assert kb.answer("pet-delivery", "es") is None
    with session_scope(db_url) as s:
        editor.publish(s, "pet-delivery", actor="ana", expected_version=1)
    # what the bot's next question pays for the publish: the index rebuild (CPU time, so
    # that other processes on a busy test machine do not count). A running bot has the e5
    # model loaded already (it embeds every question): load it here too, so that the one-off
    # model load of a fresh process (a clean clone's first test) is not counted as the rebuild
    embedder.embed_uncached("¿cuánto tarda el reembolso?")
    started = time.process_time()
    kb.current()
    # the rebuild now also refits the entry classifier (~0.5 s per language, one thread) on
    # top of e5 embedding the new entry's texts; 3.1 s was seen once in a loaded clean-clone
    # run, so the budget is 5 s: it catches a rebuild gone quadratic, not machine noise
    assert time.process_time() - started < 5.0
    assert kb.search(PET_QUESTION, "es").faq_id == "pet-delivery" and kb.version > version
    assert audit_actions(db_url, "pet-delivery") == ["kb.publish"]


def test_a_draft_is_not_served_and_publish_replaces_the_answer(db_url, embedder):
    with session_scope(db_url) as s:
        store.import_directory(s, KB)
        v = store.get(s, "refund-timing").version
        live = editor.published(store.get(s, "refund-timing"))
    kb = LiveKnowledgeBase(db_url, embedder=embedder)
    old = kb.answer("refund-timing", "es")["answer"]
    edited = {"tags": live["tags"], "content": {**live["content"], "es": {
        **live["content"]["es"], "answer": "Reembolsamos en 48 horas desde que aceptamos."}}}
    with session_scope(db_url) as s:
        entry = editor.save_draft(s, "refund-timing", edited, "ana", expected_version=v)
        v = entry.version
        assert entry.draft is not None and entry.content["es"]["answer"] == old
    assert kb.answer("refund-timing", "es")["answer"] == old  # customers: still published
    assert kb.search("¿cuánto tarda el reembolso?", "es").faq_id == "refund-timing"
    with session_scope(db_url) as s:
        detail = editor.detail(s, store.get(s, "refund-timing"))
        assert detail["has_draft"] and detail["draft_by"] == "ana"
        assert [c["field"] for c in detail["draft_changes"]] == ["es.answer"]
        editor.publish(s, "refund-timing", "bea", expected_version=v)
    assert kb.answer("refund-timing", "es")["answer"].startswith("Reembolsamos en 48 horas")
    with session_scope(db_url) as s:
        history = editor.detail(s, store.get(s, "refund-timing"))["history"]
    assert history[0]["action"] == "publish" and history[0]["by"] == "bea"
    assert history[0]["changes"][0]["field"] == "es.answer"
    ops = history[0]["changes"][0]["ops"]
    assert "".join(t for op, t in ops if op != "delete").startswith("Reembolsamos en 48 horas")
    assert "".join(t for op, t in ops if op != "insert") == old


def test_revert_is_a_new_publish_and_retire_takes_it_off_the_bot(db_url, embedder):
    with session_scope(db_url) as s:
        editor.create_draft(s, "pet-delivery", pets(), "ana")
        editor.publish(s, "pet-delivery", "ana", 1)
    with session_scope(db_url) as s:
        first = editor.detail(s, store.get(s, "pet-delivery"))["history"][0]["id"]
        entry = editor.publish(s, "pet-delivery", "bea", 2, pets("Los perros no pueden."))
        assert entry.content["es"]["answer"] == "Los perros no pueden."
    kb = LiveKnowledgeBase(db_url, embedder=embedder)
    assert kb.answer("pet-delivery", "es")["answer"] == "Los perros no pueden."
    with session_scope(db_url) as s:
        entry = editor.revert(s, "pet-delivery", first, "carla", expected_version=3)
        assert entry.version == 4 and entry.content["es"]["answer"].startswith("Avísanos")
    assert kb.answer("pet-delivery", "es")["answer"].startswith("Avísanos")
    with session_scope(db_url) as s:
        history = editor.history(s, store.get(s, "pet-delivery"))
        assert [h["action"] for h in history] == ["revert", "publish", "publish"]
        assert history[0]["by"] == "carla"
        editor.retire(s, "pet-delivery", "carla", expected_version=4)
    assert kb.answer("pet-delivery", "es") is None
    assert kb.search(PET_QUESTION, "es").faq_id != "pet-delivery"
    with session_scope(db_url) as s:  # a retired entry comes back by reverting
        with pytest.raises(editor.EditorError) as err:
            editor.retire(s, "pet-delivery", "carla", expected_version=5)
        assert err.value.code == "retired"
        editor.revert(s, "pet-delivery", first, "carla", expected_version=5)
    assert kb.answer("pet-delivery", "es") is not None
    assert audit_actions(db_url, "pet-delivery") == [
        "kb.publish", "kb.publish", "kb.revert", "kb.retire", "kb.revert"]


def test_discard_a_draft(db_url):
    with session_scope(db_url) as s:
        editor.create_draft(s, "pet-delivery", pets(), "ana")
        with pytest.raises(editor.EditorError) as err:
            editor.discard_draft(s, "pet-delivery", "ana", 1)
        assert err.value.code == "never_published"
        editor.publish(s, "pet-delivery", "ana", 1)
        editor.save_draft(s, "pet-delivery", pets("otra cosa"), "ana", 2)
        entry = editor.discard_draft(s, "pet-delivery", "ana", 3)
        assert entry.draft is None and entry.content["es"]["answer"].startswith("Avísanos")
        with pytest.raises(editor.EditorError) as err:
            editor.discard_draft(s, "pet-delivery", "ana", 4)
        assert err.value.code == "no_draft"
        # a draft identical to what is published is no draft
        assert editor.save_draft(s, "pet-delivery", pets(), "ana", 4).draft is None


# --- optimistic locking ----------------------------------------------------------------------

def test_a_stale_version_is_a_conflict_with_the_other_persons_diff(db_url):
    with session_scope(db_url) as s:
        editor.create_draft(s, "pet-delivery", pets(), "ana")
        editor.publish(s, "pet-delivery", "ana", 1)
    # Ana and Bea both load version 2; Bea saves first
    with session_scope(db_url) as s:
        editor.save_draft(s, "pet-delivery", pets("Bea lo cambió."), "bea", 2)
    with session_scope(db_url) as s:
        with pytest.raises(editor.EditConflict) as err:
            editor.publish(s, "pet-delivery", "ana", 2, pets("Ana lo cambió."))
    info = err.value.info
    assert info["by"] == "bea" and info["base_found"] and info["current"]["version"] == 3
    assert [c["field"] for c in info["changes"]] == ["es.answer"]
    assert "{+Bea lo cambió+}" in info["changes"][0]["text"]
    for stale in (0, 99):  # made-up version numbers are conflicts too, never a write
        with session_scope(db_url) as s:
            with pytest.raises(editor.EditConflict) as err:
                editor.save_draft(s, "pet-delivery", pets("x"), "ana", stale)
            assert not err.value.info["base_found"]
    with session_scope(db_url) as s:
        entry = store.get(s, "pet-delivery")
        assert entry.version == 3 and entry.draft["content"]["es"]["answer"] == "Bea lo cambió."
        assert audit_actions(db_url, "pet-delivery") == ["kb.publish"]


# --- bad input -------------------------------------------------------------------------------

def code_of(fn, *args) -> str:
    with pytest.raises(editor.EditorError) as err:
        fn(*args)
    return err.value.code


def test_bad_input(db_url):
    with session_scope(db_url) as s:
        store.import_directory(s, KB)
    with session_scope(db_url) as s:
        assert code_of(editor.create_draft, s, "refund-timing", pets(), "ana") == "duplicate"
        assert code_of(editor.create_draft, s, "Con Espacios", pets(), "ana") == "bad_id"
        assert code_of(editor.create_draft, s, "x" * 65, pets(), "ana") == "bad_id"
        assert code_of(editor.save_draft, s, "no-such-entry", pets(), "ana", 1) == "not_found"
        assert code_of(editor.publish, s, "no-such-entry", "ana", 1) == "not_found"
        huge = pets("a" * 100_000)
        with pytest.raises(editor.EditorError) as err:
            editor.create_draft(s, "huge-answer", huge, "ana")
        assert err.value.code == "too_long"
        assert err.value.params == {"field": "es.answer", "kind": "answer", "lang": "es",
                                    "length": 100_000, "limit": editor.LIMITS["answer"]}
        assert code_of(editor.normalise, {"es": {"questions": "not a list"}}) == "bad_input"
        assert code_of(editor.normalise, {"tags": [str(i) for i in range(20)]}) == "too_many"
        entry = store.get(s, "refund-timing")
        assert code_of(editor.publish, s, "refund-timing", "ana", entry.version) == (
            "nothing_to_publish")
        same = editor.published(entry)
        assert code_of(editor.publish, s, "refund-timing", "ana", entry.version, same) == (
            "nothing_to_publish")
        assert code_of(editor.revert, s, "refund-timing", 10**6, "ana", entry.version) == (
            "bad_revision")
        editor.retire(s, "refund-timing", "ana", entry.version)
        with pytest.raises(editor.EditorError) as err:
            editor.create_draft(s, "refund-timing", pets(), "ana")
        assert err.value.code == "duplicate" and err.value.params["retired"]


def test_one_language_may_be_missing_but_not_half_filled(db_url, embedder):
    with session_scope(db_url) as s:
        store.import_directory(s, KB)
        editor.create_draft(s, "pet-delivery", pets(en=False), "ana")
        assert editor.summary(store.get(s, "pet-delivery"))["missing"] == ["en"]
        half = pets()
        half["en"]["answer"] = "   "  # English title and questions, empty answer
        with pytest.raises(editor.EditorError) as err:
            editor.publish(s, "pet-delivery", "ana", 1, half)
        assert err.value.code == "incomplete" and err.value.params == {
            "lang": "en", "parts": ["answer"]}
        nothing = {"es": block(), "en": block()}
        assert code_of(editor.publish, s, "pet-delivery", "ana", 1, nothing) == "no_language"
        entry = editor.publish(s, "pet-delivery", "ana", 1)  # Spanish only: allowed, flagged
        assert editor.detail(s, entry)["published_missing"] == ["en"]
        assert "pet-delivery" in [r["id"] for r in editor.listing(s, "missing_en")[0]]
        assert "pet-delivery" not in [r["id"] for r in editor.listing(s, "missing_es")[0]]
    kb = LiveKnowledgeBase(db_url, embedder=embedder)
    assert kb.search(PET_QUESTION, "es").faq_id == "pet-delivery"
    assert kb.answer("pet-delivery", "en") is None  # English customers: not from this one
    assert kb.search("is the courier ok with my big dog at home?", "en").faq_id != (
        "pet-delivery")


def test_html_is_stored_as_typed(db_url):
    with session_scope(db_url) as s:
        editor.create_draft(s, "xss-test", pets(XSS), "ana")
        entry = editor.publish(s, "xss-test", "ana", 1)
        assert entry.content["es"]["answer"] == XSS
        assert editor.detail(s, entry)["working"]["content"]["es"]["answer"] == XSS


def test_listing_filters_by_tag_status_and_words(db_url):
    with session_scope(db_url) as s:
        store.import_directory(s, KB)
        editor.create_draft(s, "pet-delivery", pets(), "ana")
        rows, tags = editor.listing(s)
        assert "pets" in tags and len(rows) >= 27
        assert [r["id"] for r in editor.listing(s, tag="pets")[0]] == ["pet-delivery"]
        assert [r["id"] for r in editor.listing(s, "new")[0]] == ["pet-delivery"]
        assert editor.listing(s, "retired")[0] == []
        # not in the bot's index (never published): found by its words
        found, _ = editor.listing(s, query="repartidor perro", scores={"refund-timing": 0.5})
        assert [r["id"] for r in found] == ["refund-timing", "pet-delivery"]
        assert found[0]["score"] == 0.5


# --- try it ----------------------------------------------------------------------------------

def test_try_it_before_and_after_an_unsaved_edit(db_url, embedder):
    with session_scope(db_url) as s:
        store.import_directory(s, KB)
        live_entry = editor.published(store.get(s, "refund-timing"))
    kb = LiveKnowledgeBase(db_url, embedder=embedder)
    question = "¿me devolvéis el dinero si el perro rompió la caja?"
    unsaved = editor.normalise(pets())
    result = preview.try_question(kb, PET_QUESTION, "es", "pet-delivery", unsaved)
    assert result["before"]["faq_id"] != "pet-delivery"
    assert result["after"]["decision"] == "answer" and result["after"]["faq_id"] == (
        "pet-delivery")
    assert result["after"]["candidates"][0]["score"] >= result["after"]["thresholds"]["answer"]
    plain = preview.try_question(kb, question, "es")
    assert plain["after"] is None and plain["before"]["candidates"]
    # an edit that empties the answer takes the entry out of the "after" index
    emptied = {"tags": live_entry["tags"], "content": {**live_entry["content"],
                                                       "es": block()}}
    result = preview.try_question(kb, "¿cuánto tarda el reembolso?", "es", "refund-timing",
                                  emptied)
    assert result["before"]["faq_id"] == "refund-timing"
    assert "refund-timing" not in [c["faq_id"] for c in result["after"]["candidates"]]


# --- statistics ------------------------------------------------------------------------------

def test_faq_events_are_counted_per_entry(db_url):
    with session_scope(db_url) as s:
        convs = [Conversation(sender=f"stats-{i:012d}", channel="web") for i in range(3)]
        s.add_all(convs)
        s.flush()
        a, b, c = (conv.id for conv in convs)
        for cid in (a, b, c):
            feedback.record(s, "refund-timing", "shown", cid, "es")
        feedback.record(s, "refund-timing", "helped", a, "es")
        feedback.record(s, "refund-timing", "not_helped", b, "es")
        feedback.record(s, "invoices", "shown", b, "es")
        assert feedback.record_handoff(s, b) == "invoices"  # the last answer shown
        assert feedback.record_handoff(s, b) is None  # once per answer
        assert feedback.record_handoff(s, c) == "refund-timing"
        counts = feedback.counts(s)
    assert counts["refund-timing"] == {"shown": 3, "helped": 1, "not_helped": 1,
                                       "handoff_after": 1, "helped_rate": 0.5,
                                       "handoff_rate": round(1 / 3, 4)}
    assert counts["invoices"]["helped_rate"] is None  # nobody said: n/a, not 0
    assert counts["invoices"]["handoff_after"] == 1


# --- diff ------------------------------------------------------------------------------------

def test_word_and_line_diff():
    ops = diff.word_ops("Reembolsamos en 14 días.", "Reembolsamos en 48 horas.")
    assert diff.as_text(ops) == "Reembolsamos en [-14 días-]{+48 horas+}."
    assert "".join(t for op, t in ops if op != "insert") == "Reembolsamos en 14 días."
    lines = diff.line_ops(["uno", "dos"], ["uno", "tres"])
    assert diff.as_text(lines, lines=True) == "  uno\n- dos\n+ tres"
    old = {"tags": ["a"], "content": {"es": block("T", "A", ["q"]), "en": block()}}
    new = {"tags": ["a", "b"], "content": {"es": block("T", "A", ["q"]),
                                           "en": block("T", "A", ["q"])}}
    assert [c["field"] for c in diff.entry_diff(old, new)] == [
        "tags", "en.title", "en.answer", "en.questions"]
    assert diff.entry_diff(new, new) == []
