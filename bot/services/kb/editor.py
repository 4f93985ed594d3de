"""Draft → publish editing of the knowledge base (the console's ``/console/kb``).

* An entry has what customers get (``content``/``tags``, once ``published_at`` is set) and at
  most one shared **draft** beside it. Drafts never reach the search index: the bot keeps
  answering with the published version until an admin publishes.
* Every change (draft save, publish, revert, retire) bumps ``FaqEntry.version`` and writes a
  revision; a save names the version it was based on, and a stale one is refused with what
  the other person changed (``EditConflict``), never silently overwritten.
* Publishing and reverting write a publish-like revision, which moves ``store.kb_version``:
  every running bot rebuilds its index before its next answer (see ``live.py``).
* Publishing needs at least one complete language; the other may be entirely empty and is
  then published as "missing" (flagged in the editor; customers in that language are not
  answered from that entry). A half-filled language is refused: that is a mistake, not a
  decision.
* Publish, retire and revert go into the audit log in the same transaction.

Errors carry a ``code`` and ``params`` so that each caller words them in its own language.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import FaqEntry, FaqRevision, utcnow
from bot.services import audit
from bot.services.kb import feedback, store
from bot.services.kb.diff import entry_diff
from bot.services.kb.loader import ID_RE, LANGUAGES, MAX_ANSWER_CHARS, KBError
from bot.services.kb.search import fold, has_language

MAX_ID_CHARS = 64
MAX_TITLE_CHARS = 200
MAX_QUESTION_CHARS = 300
MAX_QUESTIONS = 50
MAX_TAGS = 12
MAX_TAG_CHARS = 40
LIMITS = {"title": MAX_TITLE_CHARS, "answer": MAX_ANSWER_CHARS, "question": MAX_QUESTION_CHARS,
          "tag": MAX_TAG_CHARS}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class EditorError(KBError):
    """A refused edit: ``code`` says which rule, ``params`` the details (field, length…)."""

    def __init__(self, code: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class EditConflict(EditorError, store.KBConflict):
    """The entry changed since the editor loaded ``expected_version``: ``info`` has the
    current entry, who changed it and when, and the diff of their changes."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__("conflict", f"entry {info['current']['id']!r} is at version "
                         f"{info['current']['version']}, not {info['base_version']}",
                         **info)
        self.info = info


# --- shape and validation --------------------------------------------------------------------

def empty_content() -> dict[str, dict[str, Any]]:
    return {lang: {"title": "", "answer": "", "questions": []} for lang in LANGUAGES}


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EditorError("bad_input", f"{where} must be text", field=where)
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


def _limit(text: str, kind: str, field: str, lang: str | None) -> str:
    if len(text) > LIMITS[kind]:
        raise EditorError("too_long", f"{field} has {len(text)} characters, the limit is "
                          f"{LIMITS[kind]}", field=field, kind=kind, lang=lang,
                          length=len(text), limit=LIMITS[kind])
    return text


def _unique(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def normalise(raw: Any) -> dict[str, Any]:
    """A draft in canonical form ``{"tags", "content": {es: {...}, en: {...}}}``: any
    language may be incomplete, but every text is within its limit (drafts too — a draft
    that could never be published helps no one). Text is stored as typed: HTML is text."""
    if not isinstance(raw, dict):
        raise EditorError("bad_input", "expected an object with tags, es and en", field="entry")
    source = raw.get("content") if isinstance(raw.get("content"), dict) else raw
    tags_raw = raw.get("tags") or []
    if not isinstance(tags_raw, list):
        raise EditorError("bad_input", "tags must be a list", field="tags")
    tags = _unique([_limit(_text(t, "tags"), "tag", "tags", None) for t in tags_raw])
    if len(tags) > MAX_TAGS:
        raise EditorError("too_many", f"more than {MAX_TAGS} tags", field="tags",
                          limit=MAX_TAGS, lang=None)
    content: dict[str, Any] = {}
    for lang in LANGUAGES:
        block = source.get(lang) or {}
        if not isinstance(block, dict):
            raise EditorError("bad_input", f"{lang} must be an object", field=lang)
        questions = block.get("questions") or []
        if not isinstance(questions, list):
            raise EditorError("bad_input", f"{lang}.questions must be a list",
                              field=f"{lang}.questions")
        questions = _unique([_limit(_text(q, f"{lang}.questions"), "question",
                                    f"{lang}.questions", lang) for q in questions])
        if len(questions) > MAX_QUESTIONS:
            raise EditorError("too_many", f"more than {MAX_QUESTIONS} questions in {lang}",
                              field=f"{lang}.questions", limit=MAX_QUESTIONS, lang=lang)
        content[lang] = {
            "title": _limit(_text(block.get("title"), f"{lang}.title"), "title",
                            f"{lang}.title", lang),
            "answer": _limit(_text(block.get("answer"), f"{lang}.answer"), "answer",
                             f"{lang}.answer", lang),
            "questions": questions,
        }
    return {"tags": tags, "content": content}


def missing_languages(data: dict[str, Any] | None) -> list[str]:
    """Languages in which customers would get no answer from this version."""
    if not data:
        return list(LANGUAGES)
    return [lang for lang in LANGUAGES if not has_language(data, lang)]


def check_publishable(data: dict[str, Any]) -> None:
    """Each language complete (title, answer, an example question) or entirely empty, and
    at least one complete."""
    complete = []
    for lang in LANGUAGES:
        block = data["content"][lang]
        absent = [part for part in ("title", "answer", "questions") if not block[part]]
        if not absent:
            complete.append(lang)
        elif len(absent) < 3:
            raise EditorError("incomplete", f"{lang}: missing {', '.join(absent)}; fill them "
                              f"in or empty the whole {lang} block", lang=lang, parts=absent)
    if not complete:
        raise EditorError("no_language", "a title, an answer and an example question are "
                          "needed in at least one language")


def check_id(raw_id: Any) -> str:
    faq_id = str(raw_id or "").strip().lower()
    if not ID_RE.match(faq_id) or len(faq_id) > MAX_ID_CHARS:
        raise EditorError("bad_id", f"id {faq_id[:80]!r} must be lower-case words joined by "
                          f"dashes, at most {MAX_ID_CHARS} characters", faq_id=faq_id[:80])
    return faq_id


# --- reading ---------------------------------------------------------------------------------

def status(entry: FaqEntry) -> str:
    """published | new (never published: invisible) | retired."""
    if entry.deleted:
        return "retired"
    return "new" if entry.published_at is None else "published"


def published(entry: FaqEntry) -> dict[str, Any] | None:
    if entry.published_at is None:
        return None
    return normalise({"tags": entry.tags or [], "content": entry.content or {}})


def working(entry: FaqEntry) -> dict[str, Any]:
    """What the editor shows: the draft if there is one, else what customers get."""
    if entry.draft is not None:
        return normalise(entry.draft)
    return published(entry) or {"tags": [], "content": empty_content()}


def _snapshot_working(snapshot: dict[str, Any]) -> dict[str, Any]:
    return normalise(snapshot.get("draft") or {"tags": snapshot.get("tags") or [],
                                               "content": snapshot.get("content") or {}})


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def summary(entry: FaqEntry, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the editor's list."""
    work = working(entry)
    live = published(entry)
    return {
        "id": entry.faq_id, "version": entry.version, "status": status(entry),
        "has_draft": entry.draft is not None, "tags": work["tags"],
        "titles": {lang: work["content"][lang]["title"] or (live or work)["content"][lang]
                   ["title"] for lang in LANGUAGES},
        # flagged when customers lack it now or the pending draft still lacks it
        "missing": [lang for lang in LANGUAGES if lang in missing_languages(work)
                    or (live is not None and lang in missing_languages(live))],
        "updated_at": _iso(max(d for d in (entry.updated_at, entry.draft_at) if d)),
        "stats": stats or feedback.empty_counts(),
    }


FILTERS = ("all", "missing_es", "missing_en", "draft", "new", "retired")


def _words(entry: FaqEntry) -> str:
    """Every text of the entry (published and draft), folded, for plain word search."""
    parts = [entry.faq_id]
    for version in (published(entry), working(entry)):
        if version:
            parts += version["tags"]
            for block in version["content"].values():
                parts += [block["title"], block["answer"], *block["questions"]]
    return fold(" ".join(parts))


def _keep(row: dict[str, Any], filter_: str, tag: str) -> bool:
    if (row["status"] == "retired") != (filter_ == "retired"):
        return False
    if tag and tag not in row["tags"]:
        return False
    return {"missing_es": "es" in row["missing"], "missing_en": "en" in row["missing"],
            "draft": row["has_draft"], "new": row["status"] == "new"}.get(filter_, True)


def listing(session: Session, filter_: str = "all", tag: str = "", query: str = "",
            scores: dict[str, float] | None = None,
            limit: int = 15) -> tuple[list[dict[str, Any]], list[str]]:
    """The editor's list and every tag in use. With a query, entries the bot can answer
    with come first, best ``scores`` (the bot's own search) first, at most ``limit``; then
    those outside its index (never published, retired, untranslated) whose words match."""
    entries = store.list_entries(session, include_deleted=True, include_unpublished=True)
    stats = feedback.counts(session)
    rows = [summary(e, stats.get(e.faq_id)) for e in entries]
    tags = sorted({t for row in rows for t in row["tags"]})
    kept = [(e, r) for e, r in zip(entries, rows, strict=True) if _keep(r, filter_, tag)]
    if not query.strip():
        return [r for _, r in kept], tags
    scores = scores or {}
    ranked = sorted((r for _, r in kept if r["id"] in scores), key=lambda r: -scores[r["id"]])
    for row in ranked:
        row["score"] = round(scores[row["id"]], 4)
    words = re.findall(r"\w+", fold(query))
    others = [r for e, r in kept if r["id"] not in scores
              and all(w in text for text in [_words(e)] for w in words)]
    return ranked[:limit] + others, tags


def find(session: Session, faq_id: str, *, lock: bool = False) -> FaqEntry:
    entry = store.get(session, faq_id, lock=lock)
    if entry is None:
        raise EditorError("not_found", f"no entry {faq_id!r}", faq_id=faq_id)
    return entry


def history(session: Session, entry: FaqEntry) -> list[dict[str, Any]]:
    """Every change customers could see, newest first, each with its diff against the one
    before (the first one against nothing)."""
    rows = session.execute(select(FaqRevision).where(
        FaqRevision.faq_entry_id == entry.id,
        FaqRevision.action.in_(store.PUBLISHED_ACTIONS)).order_by(FaqRevision.id)).scalars()
    out: list[dict[str, Any]] = []
    before: dict[str, Any] | None = None
    for rev in rows:
        snap = rev.snapshot or {}
        now = normalise({"tags": snap.get("tags") or [], "content": snap.get("content") or {}})
        out.append({"id": rev.id, "version": rev.version, "action": rev.action,
                    "by": rev.changed_by, "at": _iso(rev.changed_at),
                    "retired": bool(snap.get("deleted")),
                    "revertible": rev.action != "delete" and not snap.get("deleted"),
                    "missing": missing_languages(now),
                    "changes": entry_diff(before, now)})
        before = now
    return list(reversed(out))


def detail(session: Session, entry: FaqEntry) -> dict[str, Any]:
    """Everything the editor shows for one entry."""
    live = published(entry)
    work = working(entry)
    stats = feedback.counts(session, [entry.faq_id]).get(entry.faq_id)
    return {
        **summary(entry, stats),
        "published": live, "published_at": _iso(entry.published_at),
        "published_by": entry.updated_by if live else None,
        "draft": normalise(entry.draft) if entry.draft is not None else None,
        "draft_by": entry.draft_by, "draft_at": _iso(entry.draft_at),
        "working": work,
        "published_missing": missing_languages(live) if live else [],
        "draft_changes": entry_diff(live, work) if entry.draft is not None else [],
        "history": history(session, entry),
    }


def conflict_info(session: Session, faq_id: str, expected_version: int) -> dict[str, Any]:
    """For a save based on ``expected_version``: the entry now, who last changed it and the
    diff of everything changed since that version."""
    entry = find(session, faq_id)
    base = session.execute(select(FaqRevision).where(
        FaqRevision.faq_entry_id == entry.id, FaqRevision.version == expected_version)
        .order_by(FaqRevision.id.desc()).limit(1)).scalar_one_or_none()
    last = session.execute(select(FaqRevision).where(FaqRevision.faq_entry_id == entry.id)
                           .order_by(FaqRevision.id.desc()).limit(1)).scalar_one_or_none()
    return {"current": detail(session, entry), "base_version": expected_version,
            "base_found": base is not None,
            "by": last.changed_by if last else entry.updated_by,
            "at": _iso(last.changed_at) if last else _iso(entry.updated_at),
            "action": last.action if last else None,
            "changes": entry_diff(_snapshot_working(base.snapshot) if base else None,
                                  working(entry))}


# --- changing --------------------------------------------------------------------------------

def _locked(session: Session, faq_id: str, expected_version: int) -> FaqEntry:
    entry = find(session, faq_id, lock=True)
    if entry.version != expected_version:
        raise EditConflict(conflict_info(session, faq_id, expected_version))
    return entry


def _save(session: Session, entry: FaqEntry, action: str, actor: str) -> FaqRevision:
    store.flush_versioned(session, entry)
    revision = store.revise(session, entry, action, actor)
    session.flush()
    return revision


def create_draft(session: Session, raw_id: Any, raw: Any, actor: str) -> FaqEntry:
    """A new entry, as a draft: nobody sees it until it is published."""
    faq_id = check_id(raw_id)
    data = normalise(raw if raw is not None else {})
    existing = store.get(session, faq_id)
    if existing is not None:
        raise EditorError("duplicate", f"entry {faq_id!r} already exists", faq_id=faq_id,
                          retired=existing.deleted)
    now = utcnow()
    entry = FaqEntry(faq_id=faq_id, tags=[], content=empty_content(), deleted=False,
                     draft=data, draft_by=actor, draft_at=now, updated_by=actor,
                     updated_at=now, published_at=None)
    session.add(entry)
    session.flush()
    store.revise(session, entry, "draft", actor)
    session.flush()
    return entry


def save_draft(session: Session, faq_id: str, raw: Any, actor: str,
               expected_version: int) -> FaqEntry:
    """Keep an edit without publishing it. A draft equal to what is published is no draft."""
    data = normalise(raw)
    entry = _locked(session, faq_id, expected_version)
    same = data == published(entry) and not entry.deleted
    entry.draft = None if same else data
    entry.draft_by = None if same else actor
    entry.draft_at = None if same else utcnow()
    _save(session, entry, "draft", actor)
    return entry


def _publish_data(session: Session, entry: FaqEntry, data: dict[str, Any], actor: str,
                  action: str, details: dict[str, Any]) -> FaqEntry:
    before = published(entry)
    was_retired = entry.deleted
    now = utcnow()
    entry.tags = copy.deepcopy(data["tags"])
    entry.content = copy.deepcopy(data["content"])
    entry.draft = entry.draft_by = entry.draft_at = None
    entry.deleted = False
    entry.updated_by = actor
    entry.updated_at = entry.published_at = now
    revision = _save(session, entry, action, actor)
    changes = entry_diff(before, data)
    audit.record(session, actor, f"kb.{action}", entry.faq_id, {
        **details, "version": entry.version, "revision": revision.id,
        "first_publish": before is None, "restored": was_retired,
        "fields": [c["field"] for c in changes], "missing": missing_languages(data)})
    return entry


def publish(session: Session, faq_id: str, actor: str, expected_version: int,
            raw: Any = None) -> FaqEntry:
    """Make the draft (or ``raw``, the editor's form as it is) what customers get. Publishing
    a retired entry brings it back."""
    data = normalise(raw) if raw is not None else None
    entry = _locked(session, faq_id, expected_version)
    unchanged = entry.draft is None and not entry.deleted
    if data is None:
        if unchanged:
            raise EditorError("nothing_to_publish", "no draft to publish", faq_id=faq_id)
        data = working(entry)
    elif unchanged and data == published(entry):
        raise EditorError("nothing_to_publish", "nothing changed", faq_id=faq_id)
    check_publishable(data)
    return _publish_data(session, entry, data, actor, "publish", {})


def revert(session: Session, faq_id: str, revision_id: int, actor: str,
           expected_version: int) -> FaqEntry:
    """Publish an earlier version again (a new revision: history is never rewritten). A
    pending draft is dropped: the revert is what the admin chose to publish."""
    entry = _locked(session, faq_id, expected_version)
    rev = session.get(FaqRevision, revision_id)
    snap = (rev.snapshot or {}) if rev is not None else {}
    if (rev is None or rev.faq_entry_id != entry.id or rev.action not in store.PUBLISHED_ACTIONS
            or rev.action == "delete" or snap.get("deleted")):
        raise EditorError("bad_revision", f"no revision {revision_id} to revert to",
                          faq_id=faq_id, revision=revision_id)
    data = normalise({"tags": snap.get("tags") or [], "content": snap.get("content") or {}})
    return _publish_data(session, entry, data, actor, "revert",
                         {"to_revision": rev.id, "to_version": rev.version})


def discard_draft(session: Session, faq_id: str, actor: str, expected_version: int) -> FaqEntry:
    entry = _locked(session, faq_id, expected_version)
    if entry.draft is None:
        raise EditorError("no_draft", "there is no draft", faq_id=faq_id)
    if entry.published_at is None:
        raise EditorError("never_published", "never published: retire it instead",
                          faq_id=faq_id)
    entry.draft = entry.draft_by = entry.draft_at = None
    _save(session, entry, "discard", actor)
    return entry


def retire(session: Session, faq_id: str, actor: str, expected_version: int) -> FaqEntry:
    """Customers stop getting this entry at once; it stays in the history and can be brought
    back by publishing it again or reverting to one of its revisions."""
    entry = _locked(session, faq_id, expected_version)
    if entry.deleted:
        raise EditorError("retired", "already retired", faq_id=faq_id)
    was_public = entry.published_at is not None
    entry.deleted = True
    entry.draft = entry.draft_by = entry.draft_at = None
    entry.updated_by = actor
    entry.updated_at = utcnow()
    revision = _save(session, entry, "delete", actor)
    audit.record(session, actor, "kb.retire", faq_id, {
        "version": entry.version, "revision": revision.id, "was_published": was_public})
    return entry
