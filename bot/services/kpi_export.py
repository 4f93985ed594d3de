"""CSV exports of the dashboard's rows: one line per conversation, or per case, of the
filtered period — the very rows the KPIs count (same WHERE as ``kpi_queries``).

Why streamed: a year of conversations does not fit comfortably in a hub's memory, so rows
come from a server-side cursor in batches (``stream_results``: a named cursor on
PostgreSQL, SQLite's cursor steps lazily) and leave as CSV text batch by batch.

Why the apostrophe: customers write the comments; a cell starting with ``= + - @`` (or a tab
or carriage return) would be run as a formula by Excel/LibreOffice (CSV injection), so such a
text cell gets a leading ``'``. Numbers we computed are left alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bot.db.models import StaffUser
from bot.services.kpi import Filters
from bot.services.kpi_queries import (
    CASE,
    CONV,
    EVENT,
    SURVEY,
    case_where,
    conversation_where,
    escalated,
)
from bot.services.kpi_sql import joined, micros_between

BATCH = 1000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # Excel reads the file as UTF-8 only with it (accents in comments)

CONVERSATION_COLUMNS = [
    "conversation_id", "started_at", "ended_at", "channel", "language", "team", "status",
    "outcome", "escalated", "escalation_reason", "escalated_at", "first_agent_reply_at",
    "first_response_s", "handoff_ended_at", "agent", "cases", "survey_state", "ces", "nps",
    "csat", "comment", "demo"]
CASE_COLUMNS = [
    "case_number", "type", "status", "created_at", "resolved_at", "resolution_hours",
    "channel", "language", "category", "team", "agent", "conversation_id", "reopened", "demo"]


def safe_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: Any) -> Any:
    """One CSV cell: times as ``YYYY-MM-DD HH:MM:SS`` (UTC), booleans as 1/0, texts
    defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return safe_text(value)
    return value


def conversations_query(f: Filters):
    c, s = CONV, SURVEY
    agent = StaffUser.__table__.alias("agent")
    cases = (select(joined(CASE.c.number)).where(CASE.c.conversation_id == c.c.id)
             .scalar_subquery())
    return (select(
        c.c.id.label("conversation_id"), c.c.started_at, c.c.ended_at, c.c.channel,
        c.c.language, c.c.team, c.c.status, c.c.outcome, escalated(c).label("escalated"),
        c.c.escalation_reason, c.c.escalated_at, c.c.first_agent_reply_at,
        micros_between(c.c.escalated_at, c.c.first_agent_reply_at).label("first_response_s"),
        c.c.handoff_ended_at, agent.c.username.label("agent"), cases.label("cases"),
        s.c.state.label("survey_state"), s.c.ces, s.c.nps, s.c.csat, s.c.comment,
        c.c.is_demo.label("demo"))
        .select_from(c.outerjoin(s, s.c.conversation_id == c.c.id)
                     .outerjoin(agent, agent.c.id == c.c.agent_id))
        .where(*conversation_where(f, c)).order_by(c.c.started_at, c.c.id))


def cases_query(f: Filters):
    k = CASE
    agent = StaffUser.__table__.alias("agent")
    conv = CONV.alias("case_conv")
    reopened = exists().where(EVENT.c.case_id == k.c.id, EVENT.c.kind == "reopened")
    return (select(
        k.c.number.label("case_number"), k.c.type, k.c.status, k.c.created_at, k.c.resolved_at,
        micros_between(k.c.created_at, k.c.resolved_at).label("resolution_hours"),
        k.c.channel, k.c.language, k.c.category, conv.c.team, agent.c.username.label("agent"),
        k.c.conversation_id, reopened.label("reopened"), k.c.is_demo.label("demo"))
        .select_from(k.outerjoin(agent, agent.c.id == k.c.assigned_agent_id)
                     .outerjoin(conv, conv.c.id == k.c.conversation_id))
        .where(*case_where(f, k)).order_by(k.c.created_at, k.c.id))


def _conversation_line(row: Any) -> list[Any]:
    m = dict(row._mapping)
    us = m["first_response_s"]
    m["first_response_s"] = None if us is None else round(us / 1e6, 3)
    m["escalated"], m["demo"] = bool(m["escalated"]), bool(m["demo"])
    return [m[name] for name in CONVERSATION_COLUMNS]


def _case_line(row: Any) -> list[Any]:
    m = dict(row._mapping)
    us = m["resolution_hours"]
    m["resolution_hours"] = None if us is None else round(us / 3.6e9, 2)
    m["reopened"], m["demo"] = bool(m["reopened"]), bool(m["demo"])
    return [m[name] for name in CASE_COLUMNS]


def _stream(session: Session, stmt: Any, header: list[str],
            line: Callable[[Any], list[Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(header)
    yield buffer.getvalue().encode("utf-8")  # the header even when the period is empty
    result = session.execute(stmt.execution_options(stream_results=True,
                                                    max_row_buffer=BATCH))
    try:
        for rows in result.partitions(BATCH):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows([cell(v) for v in line(row)] for row in rows)
            yield buffer.getvalue().encode("utf-8")
    finally:
        result.close()


def conversations_csv(session: Session, f: Filters) -> Iterator[bytes]:
    """Header first (also for an empty period), then the rows in batches."""
    return _stream(session, conversations_query(f), CONVERSATION_COLUMNS, _conversation_line)


def cases_csv(session: Session, f: Filters) -> Iterator[bytes]:
    return _stream(session, cases_query(f), CASE_COLUMNS, _case_line)
