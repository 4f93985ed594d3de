"""The KPI engine's SQL: raw counters and duration percentiles, grouped by time bucket.

Why SQL and not Python: the dashboard must answer within 300 ms with 100 000 conversations,
so rows are never loaded — every query returns one row per bucket (or per bucket and case
type). Counters are additive; percentiles are not, so they come from a window query that
returns only the rows at the needed ranks. ``bot.services.kpi`` turns counters into KPIs.

Results are keyed as ``Grouping`` says: a bucket, "previous"/"current", or None for one total.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, func, literal, not_, null, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.db.models import Case, CaseEvent, Conversation, SurveyResponse
from bot.services.kpi_sql import bucket_of, micros_between, plus_seconds

if TYPE_CHECKING:
    from bot.services.kpi import Filters

CONV = Conversation.__table__
SURVEY = SurveyResponse.__table__
CASE = Case.__table__
EVENT = CaseEvent.__table__

CONFIRMED = "resolved_bot_confirmed"
ESCALATED_OUTCOMES = ("escalated", "abandoned_queue")
ABANDONED_OUTCOMES = ("abandoned", "abandoned_queue")
NOT_CONTAINED = ("faq_not_solved", "form_in_progress")
FCR_WINDOW = timedelta(days=7)
RETURN_WINDOW = timedelta(hours=72)
SCALES = {"nps": range(0, 11), "ces": range(1, 8), "csat": range(1, 6)}


def _count(condition: ColumnElement) -> ColumnElement:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@dataclass(frozen=True)
class Grouping:
    """How rows are grouped. ``unit``: one key per day/week/month (``YYYY-MM-DD`` of its first
    day); ``split``: rows before it form the previous period (key ``"previous"``), so the
    dashboard reads the period, its predecessor and the chart points in ONE scan per table.
    Neither: one total, key None (what `bot report` prints)."""

    unit: str | None = None
    split: datetime | None = None

    def key(self, column: Any) -> ColumnElement | None:
        bucket = bucket_of(column, self.unit) if self.unit else None
        if self.split is None:
            return bucket
        return case((column < self.split, literal("previous")),
                    else_=bucket if bucket is not None else literal("current"))

    def period(self, column: Any) -> ColumnElement | None:
        """"previous" / "current" (for percentiles, which do not add up across buckets)."""
        if self.split is None:
            return None
        return case((column < self.split, literal("previous")), else_=literal("current"))


TOTAL = Grouping()


def _group_terms(grouping: Grouping, column: Any) -> tuple[list[ColumnElement], ColumnElement]:
    """GROUP BY terms and the "bucket" column. No terms for one total: a constant there is
    not portable (PostgreSQL refuses non-integer constants in GROUP BY)."""
    key = grouping.key(column)
    if key is None:
        return [], null().label("bucket")
    return [key], key.label("bucket")


# --- which rows ------------------------------------------------------------------------------

def conversation_where(f: Filters, c=CONV) -> list[ColumnElement]:
    """The filtered conversations (also the rows of the conversations CSV)."""
    conds: list[ColumnElement] = []
    if f.since:
        conds.append(c.c.started_at >= f.since)
    if f.until:
        conds.append(c.c.started_at < f.until)
    if f.channel:
        conds.append(c.c.channel == f.channel)
    if f.language:
        conds.append(c.c.language == f.language)
    if f.agent_id is not None:
        conds.append(c.c.agent_id == f.agent_id)
    if f.team:
        conds.append(c.c.team == f.team)
    if f.case_type:
        conds.append(c.c.id.in_(select(CASE.c.conversation_id).where(
            CASE.c.type == f.case_type, CASE.c.conversation_id.isnot(None))))
    return conds


def case_where(f: Filters, k=CASE) -> list[ColumnElement]:
    """The filtered cases (also the rows of the cases CSV). A team is the team of the case's
    conversation: a case opened outside any conversation belongs to no team."""
    conds: list[ColumnElement] = []
    if f.since:
        conds.append(k.c.created_at >= f.since)
    if f.until:
        conds.append(k.c.created_at < f.until)
    if f.channel:
        conds.append(k.c.channel == f.channel)
    if f.language:
        conds.append(k.c.language == f.language)
    if f.case_type:
        conds.append(k.c.type == f.case_type)
    if f.agent_id is not None:
        conds.append(k.c.assigned_agent_id == f.agent_id)
    if f.team:
        conds.append(exists().where(CONV.c.id == k.c.conversation_id, CONV.c.team == f.team))
    return conds


# --- per-conversation facts ------------------------------------------------------------------

def escalated(c=CONV) -> ColumnElement:
    """Handed to a human (never NULL: safe under NOT)."""
    return or_(c.c.escalated_at.isnot(None),
               func.coalesce(c.c.outcome, "").in_(ESCALATED_OUTCOMES))


def abandoned(idle_cutoff: datetime, c=CONV) -> ColumnElement:
    """Left in the queue or in a form; a form idle since before ``idle_cutoff`` counts even if
    the customer never came back (the hub only closes a conversation on its next message)."""
    outcome = func.coalesce(c.c.outcome, "")
    return or_(outcome.in_(ABANDONED_OUTCOMES),
               and_(outcome == "form_in_progress", c.c.status == "bot",
                    c.c.last_activity_at < idle_cutoff))


def came_back(window: timedelta, c=CONV) -> ColumnElement:
    """The same customer (or, when unidentified, the same sender) started another
    conversation within ``window`` after this one ended; every conversation counts, not only
    the filtered ones. Indexes: (customer_id, started_at) and (sender, started_at)."""
    o = CONV.alias("later")
    end = func.coalesce(c.c.ended_at, c.c.last_activity_at)
    in_window = [o.c.id != c.c.id, o.c.started_at > end,
                 o.c.started_at <= plus_seconds(end, int(window.total_seconds()))]
    same_customer = exists().where(o.c.customer_id == c.c.customer_id, *in_window)
    same_sender = exists().where(o.c.customer_id.is_(None), o.c.sender == c.c.sender,
                                 *in_window)
    return case((c.c.customer_id.isnot(None), same_customer), else_=same_sender)


# --- counters --------------------------------------------------------------------------------

def _flag(condition: ColumnElement) -> ColumnElement:
    return case((condition, 1), else_=0)


def conversation_counters(session: Session, f: Filters, grouping: Grouping,
                          idle_cutoff: datetime) -> dict[Any, dict[str, int]]:
    """Per key: conversations, outcomes and survey answers. Each conversation's facts are
    computed once (a MATERIALIZED CTE: the "came back" EXISTS and the shared conditions are
    not re-evaluated per aggregate), then summed."""
    c, s = CONV, SURVEY
    esc = escalated(c)
    aband = abandoned(idle_cutoff, c)
    positive = or_(func.coalesce(s.c.ces, 0) >= 5, func.coalesce(s.c.nps, -1) >= 9,
                   func.coalesce(s.c.csat, 0) >= 4)
    confirmed = and_(not_(esc), or_(func.coalesce(c.c.outcome, "") == CONFIRMED, positive))
    assumed_candidate = and_(not_(esc), not_(confirmed), not_(aband),
                             func.coalesce(c.c.outcome, "").notin_(NOT_CONTAINED))
    # the EXISTS runs only for candidates (nested CASE: evaluated lazily on both backends)
    assumed = case((assumed_candidate, case((came_back(RETURN_WINDOW, c), 0), else_=1)),
                   else_=0)
    answered = and_(s.c.id.isnot(None), or_(
        s.c.ces.isnot(None), s.c.nps.isnot(None), s.c.csat.isnot(None),
        and_(s.c.comment.isnot(None), s.c.comment != "")))
    key = grouping.key(c.c.started_at)
    facts = (select(*([key.label("bucket")] if key is not None else []),
                    _flag(c.c.is_demo.is_(True)).label("demo"), _flag(esc).label("esc"),
                    _flag(aband).label("aband"), _flag(confirmed).label("confirmed"),
                    assumed.label("assumed"), _flag(s.c.id.isnot(None)).label("surveyed"),
                    _flag(answered).label("answered"), s.c.ces, s.c.nps, s.c.csat)
             .select_from(c.outerjoin(s, s.c.conversation_id == c.c.id))
             .where(*conversation_where(f, c))
             .cte("conversation_facts").prefix_with("MATERIALIZED"))
    x = facts.c
    human = x.esc == 1

    def total(column: Any) -> ColumnElement:
        return func.coalesce(func.sum(column), 0)

    columns = [
        (x.bucket if key is not None else null()).label("bucket"),
        func.count().label("conversations"),
        total(x.demo).label("demo"),
        total(x.esc).label("escalated"),
        total(x.aband).label("abandoned"),
        total(x.confirmed).label("confirmed"),
        total(x.assumed).label("assumed"),
        total(x.surveyed).label("surveys"),
        total(x.answered).label("answered"),
        func.count(x.ces).label("ces_n"),
        total(x.ces).label("ces_sum"),
        func.count(x.nps).label("nps_n"),
        func.count(x.csat).label("csat_n"),
        _count(and_(~human, x.csat.isnot(None))).label("csat_bot_n"),
        _count(and_(~human, x.csat >= 4)).label("csat_bot_good"),
        _count(and_(human, x.csat.isnot(None))).label("csat_human_n"),
        _count(and_(human, x.csat >= 4)).label("csat_human_good"),
    ]
    for name, scale in SCALES.items():
        columns += [_count(x[name] == v).label(f"{name}_{v}") for v in scale]
    stmt = select(*columns).select_from(facts)
    if key is not None:
        stmt = stmt.group_by(x.bucket)
    return {row.bucket: {k: int(v) for k, v in row._mapping.items() if k != "bucket"}
            for row in session.execute(stmt)}


def escalation_reasons(session: Session, f: Filters, grouping: Grouping
                       ) -> dict[Any, dict[str, int]]:
    """Per key: escalated conversations by hand-off reason ("" when none was recorded)."""
    c = CONV
    groups, bucket = _group_terms(grouping, c.c.started_at)
    reason = func.coalesce(c.c.escalation_reason, "")
    stmt = (select(bucket, reason.label("reason"), func.count().label("n"))
            .where(*conversation_where(f, c), escalated(c)).group_by(*groups, reason))
    out: dict[Any, dict[str, int]] = defaultdict(dict)
    for row in session.execute(stmt):
        out[row.bucket][row.reason] = int(row.n)
    return out


def case_counters(session: Session, f: Filters, grouping: Grouping
                  ) -> dict[Any, dict[str, dict[str, int]]]:
    """Per key and case type: cases, resolved (ever), reopened, first-contact resolved.
    Each case's event checks run once (a MATERIALIZED CTE); the "came back within 7 days"
    EXISTS then runs only for resolved, never reopened, never escalated cases."""
    k = CASE
    conv = CONV.alias("case_conv")
    key = grouping.key(k.c.created_at)
    ever_resolved = exists().where(EVENT.c.case_id == k.c.id, EVENT.c.to_status == "resolved")
    reopened = exists().where(EVENT.c.case_id == k.c.id, EVENT.c.kind == "reopened")
    facts = (select(*([key.label("bucket")] if key is not None else []),
                    k.c.type.label("type"), _flag(ever_resolved).label("resolved"),
                    _flag(reopened).label("reopened"), _flag(escalated(conv)).label("esc"),
                    # the conversation's columns under their own names: ``came_back`` reads
                    # them from this CTE as from the table
                    conv.c.id, conv.c.customer_id, conv.c.sender, conv.c.ended_at,
                    conv.c.last_activity_at)
             .select_from(k.outerjoin(conv, conv.c.id == k.c.conversation_id))
             .where(*case_where(f, k)).cte("case_facts").prefix_with("MATERIALIZED"))
    x = facts.c
    # FCR: resolved, its conversation not handed to a human, not reopened, no new contact by
    # the same customer within 7 days
    fcr = case((and_(x.resolved == 1, x.reopened == 0, x.esc == 0),
                case((came_back(FCR_WINDOW, facts), 0), else_=1)), else_=0)
    groups = [x.bucket] if key is not None else []
    stmt = (select((x.bucket if key is not None else null()).label("bucket"), x.type,
                   func.count().label("cases"),
                   func.coalesce(func.sum(x.resolved), 0).label("resolved"),
                   _count(and_(x.resolved == 1, x.reopened == 1)).label("reopened"),
                   func.coalesce(func.sum(fcr), 0).label("fcr_ok"))
            .select_from(facts).group_by(*groups, x.type))
    out: dict[Any, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in session.execute(stmt):
        out[row.bucket][row.type] = {"cases": int(row.cases), "resolved": int(row.resolved),
                                     "reopened": int(row.reopened), "fcr_ok": int(row.fcr_ok)}
    return out


# --- durations -------------------------------------------------------------------------------

@dataclass
class Durations:
    """One group's durations: how many, the values at the median and p90 ranks, and how
    many are within the SLA target (when there is one)."""

    count: int
    median_us: list[int]  # one value (odd count) or the two middle ones
    p90_us: int
    within: int | None


def _percentiles(session: Session, partitions: list[list[ColumnElement]],
                 micros: ColumnElement, where: list[ColumnElement], source: Any,
                 target_us: int | None) -> list[dict[tuple, Durations]]:
    """Median (mean of the two middle values when even, like ``statistics.median``) and p90
    (nearest rank: ceil(0.9 n), like ``kpi.percentile``) per group, for several groupings at
    once (``partitions``: one list of terms each), reading only the rows at those ranks.
    Durations and group keys are computed once per row (a MATERIALIZED CTE), then ranked."""
    terms: list[ColumnElement] = []  # distinct grouping expressions (shared between partitions)
    for part in partitions:
        terms += [t for t in part if not any(t is u for u in terms)]
    base = (select(micros.label("us"), *[t.label(f"t{i}") for i, t in enumerate(terms)])
            .select_from(source).where(*where)
            .cte("durations").prefix_with("MATERIALIZED"))
    us = base.c.us
    cols: list[ColumnElement] = [us]
    ranks = []
    for p, part in enumerate(partitions):
        by = [base.c[f"t{next(i for i, u in enumerate(terms) if u is t)}"] for t in part]
        window = {"partition_by": by or None}
        cols += [b.label(f"p{p}g{i}") for i, b in enumerate(by)]
        cols += [func.row_number().over(order_by=us, **window).label(f"p{p}rn"),
                 func.count().over(**window).label(f"p{p}cnt")]
        if target_us is not None:
            cols.append(func.sum(case((us <= target_us, 1), else_=0))
                        .over(**window).label(f"p{p}within"))
    ranked = select(*cols).select_from(base).subquery("ranked")
    for p in range(len(partitions)):
        rn, cnt = ranked.c[f"p{p}rn"], ranked.c[f"p{p}cnt"]
        ranks.append(or_(rn == (cnt + 1) / 2, rn == cnt / 2 + 1, rn == (9 * cnt + 9) / 10))
    hits: list[dict[tuple, dict[int, int]]] = [defaultdict(dict) for _ in partitions]
    meta: list[dict[tuple, tuple[int, int | None]]] = [{} for _ in partitions]
    for row in session.execute(select(ranked).where(or_(*ranks))):
        m = row._mapping
        for p, part in enumerate(partitions):
            n, rank = int(m[f"p{p}cnt"]), int(m[f"p{p}rn"])
            if rank not in ((n + 1) // 2, n // 2 + 1, (9 * n + 9) // 10):
                continue
            key = tuple(m[f"p{p}g{i}"] for i in range(len(part)))
            hits[p][key][rank] = int(m["us"])
            within = m[f"p{p}within"] if target_us is not None else None
            meta[p][key] = (n, None if within is None else int(within))
    out: list[dict[tuple, Durations]] = []
    for p in range(len(partitions)):
        result: dict[tuple, Durations] = {}
        for key, at in hits[p].items():
            n, within = meta[p][key]
            middle = [at[(n + 1) // 2]] if n % 2 else [at[n // 2], at[n // 2 + 1]]
            result[key] = Durations(n, middle, at[min(max(1, (9 * n + 9) // 10), n)], within)
        out.append(result)
    return out


def _duration_groups(grouping: Grouping, column: Any) -> list[list[ColumnElement]]:
    """The key partition, plus the whole current/previous period when split (percentiles
    of a period cannot be added up from its buckets)."""
    key = grouping.key(column)
    groups = [[key] if key is not None else []]
    period = grouping.period(column)
    if period is not None and grouping.unit:
        groups.append([period])
    return groups


def _merge(parts: list[dict[tuple, Durations]]) -> dict[Any, Durations]:
    """{key: Durations} over the partitions of ``_duration_groups``: bucket keys (None for
    one total) and "current" (the period partition's "previous" equals the key
    partition's)."""
    out: dict[Any, Durations] = {}
    for part in parts:
        for key, d in part.items():
            out.setdefault(key[0] if key else None, d)
    return out


def first_response(session: Session, f: Filters, grouping: Grouping, target_us: int
                   ) -> dict[Any, Durations]:
    """Hand-off → the agent's first message, by the conversation's start."""
    c = CONV
    parts = _percentiles(session, _duration_groups(grouping, c.c.started_at),
                         micros_between(c.c.escalated_at, c.c.first_agent_reply_at),
                         [*conversation_where(f, c), c.c.escalated_at.isnot(None),
                          c.c.first_agent_reply_at.isnot(None)], c, target_us)
    return _merge(parts)


def handling(session: Session, f: Filters, grouping: Grouping) -> dict[Any, Durations]:
    """An agent taking the conversation → handing it back."""
    c = CONV
    parts = _percentiles(session, _duration_groups(grouping, c.c.started_at),
                         micros_between(c.c.claimed_at, c.c.handoff_ended_at),
                         [*conversation_where(f, c), c.c.claimed_at.isnot(None),
                          c.c.handoff_ended_at.isnot(None),
                          c.c.handoff_ended_at >= c.c.claimed_at], c, None)
    return _merge(parts)


def resolution(session: Session, f: Filters, grouping: Grouping, target_us: int
               ) -> dict[tuple, Durations]:
    """Case opened → resolved, by the opening: keys ``(key, case type)``, and ``(key, None)``
    for all types together (one window query for both)."""
    k = CASE
    base = _duration_groups(grouping, k.c.created_at)
    parts = _percentiles(session, base + [terms + [k.c.type] for terms in base],
                         micros_between(k.c.created_at, k.c.resolved_at),
                         [*case_where(f, k), k.c.resolved_at.isnot(None)], k, target_us)
    out: dict[tuple, Durations] = {}
    for i, part in enumerate(parts):
        typed = i >= len(base)
        for key, d in part.items():
            bucket = key[0] if len(key) == (2 if typed else 1) else None
            out.setdefault((bucket, key[-1] if typed else None), d)
    return out
