"""Customers' data rights (GDPR art. 15 access, art. 17 erasure) and automatic retention.

*Who* is a person: an email, a phone number or a Telegram id. From it we find their customer
row, every sender (channel key) they wrote from — including a widget sender continued on
Telegram through a hand-over link — every conversation, case, survey and photo, and their
events in Rasa's tracker store.

*Erase* removes what identifies them or what they said, everywhere, and keeps the anonymous
facts the business must keep: a warranty case stays a warranty case of that product bought
that day (the shop owes the warranty for years), a conversation keeps its times and outcome
(KPIs stay right), a survey keeps its scores. Their words, name, email, phone, Telegram id and
photos are gone: message texts are blanked, the customer row is anonymised, the tracker
events and uploaded files are deleted.

*Retention* (``RETENTION_DAYS``) does the same to old transcripts and photos for everybody,
on a schedule run by the hub.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, false, func, inspect, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.db.models import (
    Attachment,
    Case,
    CaseEvent,
    ChannelLink,
    Conversation,
    Customer,
    LearningItem,
    Message,
    Order,
    OrderLine,
    Product,
    SenderAlias,
    SurveyResponse,
    VerificationAttempt,
    utcnow,
)
from bot.services import audit, learning

log = logging.getLogger(__name__)

EXPORT_FORMAT = "postventa-privacy-export/1"
ERASED_NAME = "[erased]"
# structured facts of a case that say nothing about the person (enums, dates, the product):
# kept on erase because they are what the warranty and the KPIs need
KEPT_CASE_DETAILS = ("order_number", "line_id", "product", "problem_started",
                     "preferred_resolution", "return_reason", "reason")
_TELEGRAM_PREFIX = "tg-"
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_RE = re.compile(r"\+?[\d\s().-]{7,24}")


class PrivacyError(ValueError):
    """An identifier we cannot use, or nobody to act on."""


@dataclass
class Subject:
    """Everything we hold about one person, as row ids (found once, used by export/erase)."""

    identifier: str
    kind: str  # email | phone | telegram
    customer_ids: list[int] = field(default_factory=list)
    senders: set[str] = field(default_factory=set)
    conversation_ids: list[int] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.customer_ids or self.conversation_ids or self.case_ids)

    @property
    def reference(self) -> str:
        return audit.subject_hash(self.identifier)


# --- who -----------------------------------------------------------------------------------

def parse_identifier(raw: str) -> list[tuple[str, str]]:
    """(kind, normalised value) pairs the identifier may be. A bare number may be a phone or
    a Telegram id (both are digits): both are tried. ``email:``, ``phone:``, ``tg:`` prefixes
    make it explicit."""
    value = (raw or "").strip()
    if not value or len(value) > 254:
        raise PrivacyError("give an email address, a phone number or a Telegram id")
    prefix, sep, rest = value.partition(":")
    if sep and prefix.lower() in ("email", "phone", "tg", "telegram"):
        kind = {"tg": "telegram"}.get(prefix.lower(), prefix.lower())
        return parse_identifier(rest) if kind == "email" and "@" in rest else \
            [(kind, _normalise(kind, rest))]
    if value.lower().startswith(_TELEGRAM_PREFIX) and value[3:].lstrip("-").isdigit():
        return [("telegram", value[3:])]
    if "@" in value:
        if not _EMAIL_RE.fullmatch(value):
            raise PrivacyError(f"{value!r} is not an email address")
        return [("email", value.lower())]
    if value.lstrip("-").isdigit() and len(value.lstrip("-")) >= 5:
        # digits alone: a Telegram chat id, or a phone number written without spaces
        return ([("phone", value)] if len(value) >= 7 else []) + [("telegram", value)]
    if _PHONE_RE.fullmatch(value) and sum(ch.isdigit() for ch in value) >= 7:
        return [("phone", _digits(value))]
    raise PrivacyError("give an email address, a phone number or a Telegram id")


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _normalise(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "phone":
        if len(_digits(value)) < 5:
            raise PrivacyError(f"{value!r} is not a phone number")
        return _digits(value)
    if kind == "telegram":
        value = value[3:] if value.lower().startswith(_TELEGRAM_PREFIX) else value
        if not value.lstrip("-").isdigit():
            raise PrivacyError(f"{value!r} is not a Telegram id")
        return value
    if not _EMAIL_RE.fullmatch(value):
        raise PrivacyError(f"{value!r} is not an email address")
    return value.lower()


def _same_phone(stored: str | None, wanted: str) -> bool:
    """Equal digits, or the same number with and without its country code."""
    have = _digits(stored or "")
    if not have:
        return False
    if have == wanted:
        return True
    short, long_ = sorted((have, wanted), key=len)
    return len(short) >= 9 and long_.endswith(short)


def find(session: Session, identifier: str) -> Subject:
    kinds = parse_identifier(identifier)
    subject = Subject(identifier=identifier.strip(), kind=kinds[0][0])
    customer_ids: set[int] = set()
    senders: set[str] = set()
    for kind, value in kinds:
        if kind == "email":
            customer_ids.update(session.execute(
                select(Customer.id).where(func.lower(Customer.email) == value)).scalars())
        elif kind == "phone":
            for cid, phone in session.execute(
                    select(Customer.id, Customer.phone).where(Customer.phone.is_not(None))):
                if _same_phone(phone, value):
                    customer_ids.add(cid)
        else:
            customer_ids.update(session.execute(
                select(Customer.id).where(Customer.telegram_id == value)).scalars())
            senders.add(f"{_TELEGRAM_PREFIX}{value}")
    if customer_ids:
        senders.update(session.execute(select(Conversation.sender).where(
            Conversation.customer_id.in_(customer_ids))).scalars())
    senders = _with_aliases(session, senders)
    conv_ids = set(session.execute(select(Conversation.id).where(or_(
        Conversation.customer_id.in_(customer_ids) if customer_ids else false(),
        Conversation.sender.in_(senders) if senders else false()))).scalars())
    # a conversation found by its sender may have been verified as a customer
    if conv_ids:
        customer_ids.update(c for c in session.execute(select(Conversation.customer_id).where(
            Conversation.id.in_(conv_ids))).scalars() if c is not None)
    case_ids = set(session.execute(select(Case.id).where(or_(
        Case.customer_id.in_(customer_ids) if customer_ids else false(),
        Case.conversation_id.in_(conv_ids) if conv_ids else false()))).scalars())
    if conv_ids:
        case_ids.update(c for c in session.execute(select(Conversation.handoff_case_id).where(
            Conversation.id.in_(conv_ids))).scalars() if c is not None)
    subject.customer_ids = sorted(customer_ids)
    subject.senders = senders
    subject.conversation_ids = sorted(conv_ids)
    subject.case_ids = sorted(case_ids)
    return subject


def _with_aliases(session: Session, senders: set[str]) -> set[str]:
    """A widget sender continued on Telegram (and back) is the same person."""
    found = set(senders)
    for _ in range(3):
        if not found:
            break
        rows = session.execute(select(SenderAlias.alias, SenderAlias.sender).where(or_(
            SenderAlias.alias.in_(found), SenderAlias.sender.in_(found)))).all()
        more = {v for row in rows for v in row} - found
        if not more:
            break
        found |= more
    return found


# --- export (art. 15) ----------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _row(obj: Any) -> dict[str, Any]:
    return {c.key: _plain(getattr(obj, c.key)) for c in inspect(obj).mapper.column_attrs}


def collect(session: Session, subject: Subject, tracker: Engine | None) -> dict[str, Any]:
    """Everything we hold about the subject, as plain JSON-able data."""
    customers = []
    for cid in subject.customer_ids:
        customer = session.get(Customer, cid)
        orders = []
        for order in session.execute(select(Order).where(Order.customer_id == cid)
                                     .order_by(Order.id)).scalars():
            lines = session.execute(
                select(OrderLine, Product).join(Product, Product.id == OrderLine.product_id)
                .where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)).all()
            orders.append({**_row(order), "lines": [
                {**_row(line), "product": {"sku": p.sku, "name_es": p.name_es,
                                           "name_en": p.name_en}} for line, p in lines]})
        customers.append({**_row(customer), "orders": orders})
    conversations = []
    for conv_id in subject.conversation_ids:
        conv = session.get(Conversation, conv_id)
        messages = session.execute(select(Message).where(Message.conversation_id == conv_id)
                                   .order_by(Message.id)).scalars()
        conversations.append({**_row(conv), "messages": [_row(m) for m in messages]})
    cases = []
    for case_id in subject.case_ids:
        case = session.get(Case, case_id)
        events = session.execute(select(CaseEvent).where(CaseEvent.case_id == case_id)
                                 .order_by(CaseEvent.id)).scalars()
        cases.append({**_row(case), "events": [_row(e) for e in events]})
    surveys = [_row(s) for s in _surveys(session, subject)]
    unanswered = [{k: v for k, v in _row(i).items() if k != "vector"}
                  for i in _learning(session, subject)]
    attachments = [{**_row(a), "file": f"uploads/{a.id}{_suffix(a)}"}
                   for a in _attachments(session, subject)]
    return {
        "format": EXPORT_FORMAT,
        "generated_at": utcnow().isoformat() + "Z",
        "identifier": {"kind": subject.kind, "value": subject.identifier},
        "senders": sorted(subject.senders),
        "customers": customers,
        "conversations": conversations,
        "cases": cases,
        "surveys": surveys,
        "unanswered_questions": unanswered,
        "attachments": attachments,
        "tracker_events": tracker_events(tracker, subject.senders),
    }


def export_zip(session: Session, subject: Subject, tracker: Engine | None,
               upload_dir: Path) -> bytes:
    """One ZIP: ``data.json`` (everything above) and ``uploads/`` (the photos themselves)."""
    data = collect(session, subject, tracker)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(data, ensure_ascii=False, indent=2,
                                                 default=str))
        for item in data["attachments"]:
            path = upload_dir / Path(item["file"]).name
            if path.is_file():
                archive.write(path, item["file"])
        archive.writestr("README.txt", _EXPORT_README)
    return buffer.getvalue()


_EXPORT_README = """\
This archive holds every piece of personal data the after-sales service keeps about one
person: data.json (customer record and orders, conversations with every message on every
channel, cases with their history, surveys, the assistant's internal events) and uploads/
(the photos sent). Times are UTC.
Este archivo contiene todos los datos personales que el servicio posventa guarda sobre una
persona: data.json (ficha y pedidos, conversaciones con todos sus mensajes, casos con su
historial, encuestas, eventos internos del asistente) y uploads/ (las fotos enviadas).
"""


def _surveys(session: Session, subject: Subject) -> list[SurveyResponse]:
    if not subject.conversation_ids:
        return []
    return list(session.execute(select(SurveyResponse).where(
        SurveyResponse.conversation_id.in_(subject.conversation_ids))).scalars())


def _learning(session: Session, subject: Subject) -> list[LearningItem]:
    if not subject.conversation_ids:
        return []
    return list(session.execute(select(LearningItem).where(
        LearningItem.conversation_id.in_(subject.conversation_ids))).scalars())


def _attachments(session: Session, subject: Subject) -> list[Attachment]:
    clauses = []
    if subject.conversation_ids:
        clauses.append(Attachment.conversation_id.in_(subject.conversation_ids))
    if subject.case_ids:
        clauses.append(Attachment.case_id.in_(subject.case_ids))
    if not clauses:
        return []
    return list(session.execute(select(Attachment).where(or_(*clauses))
                                .order_by(Attachment.created_at)).scalars())


_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


def _suffix(attachment: Attachment) -> str:
    return _SUFFIXES.get(attachment.content_type, "")


# --- Rasa's tracker store --------------------------------------------------------------------

def upload_dir(settings: Any) -> Path:
    """Where customers' photos are stored (the ``UPLOAD_DIR`` setting)."""
    from bot.services import uploads

    return uploads.upload_dir(settings)


def tracker_engine(url: str) -> Engine | None:
    """Rasa's tracker store (its own SQLite file by default, else beside our tables). A
    SQLite file that does not exist yet holds nothing: it is not created by looking."""
    from bot.db.session import engine_for

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    return engine_for(url)


def _tracker_ready(engine: Engine | None) -> bool:
    if engine is None:
        return False
    try:
        return inspect(engine).has_table("events")
    except Exception:  # noqa: BLE001 - a tracker store that is not there holds nothing
        log.warning("privacy: tracker store not reachable", exc_info=True)
        return False


def tracker_events(engine: Engine | None, senders: Iterable[str]) -> dict[str, list[dict]]:
    senders = sorted(senders)
    if not senders or not _tracker_ready(engine):
        return {}
    out: dict[str, list[dict]] = {}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT sender_id, type_name, timestamp, data FROM events "
            "WHERE sender_id IN :senders ORDER BY id").bindparams(
                _expanding("senders")), {"senders": senders})
        for sender, type_name, stamp, data in rows:
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = data
            out.setdefault(sender, []).append(
                {"event": type_name, "timestamp": stamp, "data": parsed})
    return out


def delete_tracker_events(engine: Engine | None, senders: Iterable[str] = (),
                          before: datetime | None = None) -> int:
    """Delete the senders' events, or everybody's events older than ``before``."""
    senders = sorted(senders)
    if (not senders and before is None) or not _tracker_ready(engine):
        return 0
    with engine.begin() as conn:
        if senders:
            result = conn.execute(text("DELETE FROM events WHERE sender_id IN :senders")
                                  .bindparams(_expanding("senders")), {"senders": senders})
        else:
            stamp = (before - datetime(1970, 1, 1)).total_seconds()
            result = conn.execute(text("DELETE FROM events WHERE timestamp < :stamp"),
                                  {"stamp": stamp})
        return result.rowcount or 0


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


# --- erase (art. 17) ---------------------------------------------------------------------------

def erase(session: Session, subject: Subject, tracker: Engine | None, upload_dir: Path, *,
          actor: str) -> dict[str, int]:
    """Erase the subject everywhere. The tracker events go first (they can always be found
    again by sender), then one transaction anonymises our rows and writes the audit entry,
    and the photo files are removed last, once the rows pointing at them are gone."""
    counts = {"tracker_events": delete_tracker_events(tracker, subject.senders)}
    files = [upload_dir / f"{a.id}{_suffix(a)}" for a in _attachments(session, subject)]
    counts.update(_erase_rows(session, subject))
    audit.record(session, actor, "privacy.erase", subject.reference,
                 {"kind": subject.kind, **counts})
    session.commit()
    counts["files"] = _unlink(files)
    return counts


def _erase_rows(session: Session, subject: Subject) -> dict[str, int]:
    now = utcnow()
    conv_ids, case_ids = subject.conversation_ids, subject.case_ids
    for customer in session.execute(select(Customer).where(
            Customer.id.in_(subject.customer_ids))).scalars() if subject.customer_ids else []:
        customer.name = ERASED_NAME
        customer.email = f"erased-{customer.id}-{secrets.token_hex(6)}@erased.invalid"
        customer.phone = None
        customer.telegram_id = None
    messages = 0
    if conv_ids:
        messages = session.execute(update(Message).where(Message.conversation_id.in_(conv_ids))
                                   .values(text="", payload=None)
                                   .execution_options(synchronize_session=False)).rowcount
        for conv in session.execute(select(Conversation).where(
                Conversation.id.in_(conv_ids))).scalars():
            _forget_verification(session, conv)
            conv.sender = f"erased-{secrets.token_hex(12)}"
            conv.handoff_summary = None
            conv.transcript_erased_at = now
        session.execute(update(SurveyResponse).where(SurveyResponse.conversation_id.in_(
            conv_ids)).values(comment=None).execution_options(synchronize_session=False))
        learning.forget_conversations(session, conv_ids)
    if case_ids:
        for case in session.execute(select(Case).where(Case.id.in_(case_ids))).scalars():
            case.description = None
            case.resolution = None
            case.details = {k: v for k, v in (case.details or {}).items()
                            if k in KEPT_CASE_DETAILS}
        session.execute(update(CaseEvent).where(CaseEvent.case_id.in_(case_ids))
                        .values(note=None).execution_options(synchronize_session=False))
    attachments = _attachments(session, subject)
    for attachment in attachments:
        session.delete(attachment)
    if subject.senders:
        session.execute(delete(SenderAlias).where(or_(
            SenderAlias.alias.in_(subject.senders), SenderAlias.sender.in_(subject.senders)))
            .execution_options(synchronize_session=False))
        session.execute(delete(ChannelLink).where(or_(
            ChannelLink.sender.in_(subject.senders), ChannelLink.used_by.in_(subject.senders)))
            .execution_options(synchronize_session=False))
    session.flush()
    return {"customers": len(subject.customer_ids), "conversations": len(conv_ids),
            "messages": messages, "cases": len(case_ids), "attachments": len(attachments)}


def _forget_verification(session: Session, conv: Conversation) -> None:
    """Failed identity checks are keyed by conversation (or sender): they name the sender."""
    for who in (conv.id, conv.sender):
        session.execute(delete(VerificationAttempt).where(
            VerificationAttempt.key.like(f"%:conv:{who}"))
            .execution_options(synchronize_session=False))


def _unlink(paths: Iterable[Path]) -> int:
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError:
            log.error("privacy: could not delete %s", path.name)
    return removed


# --- retention ---------------------------------------------------------------------------------

def purge_expired(session: Session, tracker: Engine | None, upload_dir: Path, days: int, *,
                  now: datetime | None = None, actor: str = "retention",
                  batch: int = 500) -> dict[str, int]:
    """Blank the transcripts and delete the photos of conversations quiet for ``days``
    (not the ones a person is handling), and Rasa's events older than that. Cases, survey
    scores and times stay. Idempotent: a conversation is done once."""
    if days <= 0:
        return {}
    cutoff = (now or utcnow()) - timedelta(days=days)
    totals = {"conversations": 0, "messages": 0, "attachments": 0, "files": 0}
    while True:
        convs = list(session.execute(
            select(Conversation).where(
                Conversation.last_activity_at < cutoff,
                Conversation.transcript_erased_at.is_(None),
                Conversation.status.not_in(("waiting_agent", "with_agent")))
            .order_by(Conversation.id).limit(batch)).scalars())
        if not convs:
            break
        ids = [c.id for c in convs]
        totals["messages"] += session.execute(
            update(Message).where(Message.conversation_id.in_(ids))
            .values(text="", payload=None)
            .execution_options(synchronize_session=False)).rowcount
        attachments = list(session.execute(select(Attachment).where(
            Attachment.conversation_id.in_(ids))).scalars())
        files = [upload_dir / f"{a.id}{_suffix(a)}" for a in attachments]
        for attachment in attachments:
            session.delete(attachment)
        for conv in convs:
            conv.handoff_summary = None
            conv.transcript_erased_at = utcnow()
        session.execute(update(SurveyResponse).where(SurveyResponse.conversation_id.in_(ids))
                        .values(comment=None).execution_options(synchronize_session=False))
        learning.forget_conversations(session, ids)
        totals["conversations"] += len(convs)
        totals["attachments"] += len(attachments)
        session.commit()
        totals["files"] += _unlink(files)
    totals["tracker_events"] = delete_tracker_events(tracker, before=cutoff)
    if totals["conversations"] or totals["tracker_events"]:
        audit.record(session, actor, "retention.purge", None, {"days": days, **totals})
        session.commit()
    return totals
