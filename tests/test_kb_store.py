"""Knowledge-base store: all-or-nothing import, revisions, conflicts, live version."""

import shutil
import threading

import pytest
import yaml

from bot.core.config import ROOT
from bot.db.session import session_factory, session_scope
from bot.services.kb import store
from bot.services.kb.loader import KBError, load_directory

KB = ROOT / "knowledge_base"
CONTRACT_IDS = (
    "return-policy refund-timing exchanges warranty-coverage extended-warranty repair-process "
    "order-tracking installation-service software-updates loyalty-program contact-hours "
    "invoices order-cancellation data-privacy"
).split()


def test_seed_files_cover_the_contract():
    entries = {e["id"]: e for e in load_directory(KB)}
    assert len(entries) >= 25
    for faq_id in CONTRACT_IDS:
        for lang in ("es", "en"):
            block = entries[faq_id]["content"][lang]
            assert block["title"] and block["answer"] and len(block["questions"]) >= 3


def _entry(faq_id="test-entry", answer="Respuesta", **extra):
    return {"id": faq_id, "tags": ["t"],
            "es": {"title": "Título", "answer": answer, "questions": ["¿pregunta?"]},
            "en": {"title": "Title", "answer": "Answer", "questions": ["question?"]}, **extra}


def _write(path, name, data):
    (path / name).write_text(yaml.safe_dump(data, allow_unicode=True))


@pytest.mark.parametrize("bad, message", [
    (_entry(answer=""), "empty es answer"),
    (_entry(faq_id="Bad Id"), "must be lower-case"),
    ({"id": "x-y", "es": {"title": "t", "answer": "a", "questions": ["q"]}}, "missing the 'en'"),
])
def test_import_is_all_or_nothing(db_url, tmp_path, bad, message):
    _write(tmp_path, "a-good.yml", _entry("a-good"))
    _write(tmp_path, "z-bad.yml", bad)
    with pytest.raises(KBError, match=message):
        with session_scope(db_url) as s:
            store.import_directory(s, tmp_path)
    with session_scope(db_url) as s:
        assert store.list_entries(s) == []


def test_duplicate_id_is_refused(db_url, tmp_path):
    _write(tmp_path, "one.yml", _entry("same-id"))
    _write(tmp_path, "two.yml", _entry("same-id"))
    with pytest.raises(KBError, match="duplicate id 'same-id'"):
        with session_scope(db_url) as s:
            store.import_directory(s, tmp_path)


def test_import_export_round_trip_and_only_new(db_url, tmp_path):
    with session_scope(db_url) as s:
        report = store.import_directory(s, KB)
        assert report.created >= 25
    with session_scope(db_url) as s:
        store.update(s, "refund-timing", {**_entry("refund-timing", answer="Editado en vivo")},
                     actor="admin")
    with session_scope(db_url) as s:  # bootstrap re-import keeps the live edit
        report = store.import_directory(s, KB, only_new=True)
        assert report.created == 0 and report.skipped >= 25
        assert store.get(s, "refund-timing").content["es"]["answer"] == "Editado en vivo"
    out = tmp_path / "export"
    with session_scope(db_url) as s:
        assert store.export_directory(s, out) >= 25
    shutil.copy(KB / "_unanswerable.yml", out / "_unanswerable.yml")
    with session_scope(db_url) as s:
        report = store.import_directory(s, out)
        assert report.updated == 0 and report.created == 0


def test_revisions_conflicts_and_delete(db_url):
    with session_scope(db_url) as s:
        store.create(s, _entry(), actor="ana")
        v0 = store.kb_version(s)
    with session_scope(db_url) as s:
        store.update(s, "test-entry", _entry(answer="v2"), actor="ana", expected_version=1)
    with pytest.raises(store.KBConflict):
        with session_scope(db_url) as s:
            store.update(s, "test-entry", _entry(answer="stale"), actor="bea",
                         expected_version=1)
    with session_scope(db_url) as s:
        store.update(s, "test-entry", _entry(answer="v3"), actor="bea")  # last write wins
        store.delete(s, "test-entry", actor="ana")
        assert store.list_entries(s) == []
        history = store.revisions(s, "test-entry")
        assert [(r.version, r.action, r.changed_by) for r in history] == [
            (1, "create", "ana"), (2, "update", "ana"), (3, "update", "bea"),
            (4, "delete", "ana")]
        assert history[1].snapshot["content"]["es"]["answer"] == "v2"
        assert store.kb_version(s) > v0
    with pytest.raises(store.KBNotFound):
        with session_scope(db_url) as s:
            store.update(s, "test-entry", _entry(), actor="x")


def test_concurrent_edits_never_lose_one(db_url):
    """Two editors who loaded version 1: one wins, the other gets a conflict, no lost edit."""
    with session_scope(db_url) as s:
        store.create(s, _entry(), actor="setup")
    barrier = threading.Barrier(2)
    outcomes = {}

    def edit(name):
        session = session_factory(db_url)()
        try:
            barrier.wait()
            store.update(session, "test-entry", _entry(answer=f"by {name}"), actor=name,
                         expected_version=1)
            session.commit()
            outcomes[name] = "ok"
        except (store.KBConflict, Exception) as exc:  # noqa: BLE001 - DB lock errors too
            session.rollback()
            outcomes[name] = type(exc).__name__
        finally:
            session.close()

    threads = [threading.Thread(target=edit, args=(n,)) for n in ("ana", "bea")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()).count("ok") == 1, outcomes
    with session_scope(db_url) as s:
        entry = store.get(s, "test-entry")
        winner = next(n for n, o in outcomes.items() if o == "ok")
        assert entry.version == 2 and entry.content["es"]["answer"] == f"by {winner}"
        assert [r.version for r in store.revisions(s, "test-entry")] == [1, 2]
