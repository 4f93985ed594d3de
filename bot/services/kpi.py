"""KPI engine: the formulas of DOMAIN.md over the case database (no Rasa).

Every KPI is filterable by period, channel, language, case type, agent and team. A KPI with no
data is ``None`` ("n/a"), never 0: an empty week must not look like a terrible one.

``report`` (one period: `python -m bot report --json` and the dashboard's tiles) and
``series`` (per day/week/month: the dashboard's charts) are the same computation — SQL
counters from ``kpi_queries`` turned into KPIs by ``_kpis`` — with and without a time
grouping, so the CLI and the dashboard agree by construction. Nothing here loads rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.services import kpi_queries as q
from bot.services.kpi_queries import (  # noqa: F401 - the KPI vocabulary, re-exported
    ABANDONED_OUTCOMES,
    CONFIRMED,
    ESCALATED_OUTCOMES,
    FCR_WINDOW,
    NOT_CONTAINED,
    RETURN_WINDOW,
    SCALES,
    Durations,
)
from bot.services.kpi_sql import UNITS, bucket_starts

CASE_TYPES = ("warranty", "return", "exchange", "support")
CHANNELS = ("web", "telegram", "api")
LANGUAGES = ("es", "en")


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    channel: str | None = None
    language: str | None = None
    case_type: str | None = None
    agent_id: int | None = None
    team: str | None = None


@dataclass(frozen=True)
class Sla:
    """Service-level targets (``SLA_FIRST_RESPONSE_MINUTES``, ``SLA_RESOLUTION_HOURS``)."""

    first_response_minutes: int = 30
    resolution_hours: int = 168

    @classmethod
    def from_settings(cls, settings: Any) -> Sla:
        return cls(settings.sla_first_response_minutes, settings.sla_resolution_hours)


def pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 1)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(round(q / 100 * len(ordered) + 0.4999)))
    return ordered[min(rank, len(ordered)) - 1]


# --- formulas on plain numbers (unit-tested on hand-made fixtures) -----------------------

def csat(scores: Iterable[int]) -> float | None:
    s = [x for x in scores if x is not None]
    return pct(sum(1 for x in s if x >= 4), len(s))


def nps_from_counts(promoters: int, detractors: int, answers: int) -> float | None:
    if not answers:
        return None
    return round(100.0 * (promoters - detractors) / answers, 1)


def nps(scores: Iterable[int]) -> float | None:
    s = [x for x in scores if x is not None]
    return nps_from_counts(sum(x >= 9 for x in s), sum(x <= 6 for x in s), len(s))


def ces_from_counts(total: int, easy: int, answers: int) -> dict[str, float | None]:
    # the same float as statistics.fmean over integer scores (an exact sum divided by n)
    return {"mean": round(total / answers, 2) if answers else None,
            "pct_5_to_7": pct(easy, answers), "answers": answers}


def ces(scores: Iterable[int]) -> dict[str, float | None]:
    s = [x for x in scores if x is not None]
    return ces_from_counts(sum(s), sum(x >= 5 for x in s), len(s))


def duration_stats(seconds: list[float]) -> dict[str, float | None]:
    return {"median_s": statistics.median(seconds) if seconds else None,
            "p90_s": percentile(seconds, 90), "count": len(seconds)}


def _durations(d: Durations | None) -> dict[str, float | None]:
    """``duration_stats`` of durations summarised by SQL (microseconds → seconds, exactly
    as ``timedelta.total_seconds()``)."""
    if d is None:
        return duration_stats([])
    return {"median_s": statistics.median([us / 1e6 for us in d.median_us]),
            "p90_s": d.p90_us / 1e6, "count": d.count}


# --- counters → KPIs -------------------------------------------------------------------------

_EMPTY_CONV = {name: 0 for name in (
    "conversations", "demo", "escalated", "abandoned", "confirmed", "assumed", "surveys",
    "answered", "ces_n", "ces_sum", "nps_n", "csat_n", "csat_bot_n", "csat_bot_good",
    "csat_human_n", "csat_human_good")} | {
    f"{name}_{v}": 0 for name, scale in SCALES.items() for v in scale}


def _kpis(conv: dict[str, int] | None, reasons: dict[str, int] | None,
          cases: dict[str, dict[str, int]] | None, frt: Durations | None,
          handled: Durations | None, resolution: dict[str | None, Durations], sla: Sla
          ) -> dict[str, Any]:
    c = conv or _EMPTY_CONV
    cases = cases or {}
    n = c["conversations"]
    total = {k: sum(t[k] for t in cases.values()) for k in ("cases", "resolved", "reopened",
                                                             "fcr_ok")}
    dist = {name: {str(v): c[f"{name}_{v}"] for v in scale} for name, scale in SCALES.items()}
    all_resolution = resolution.get(None)
    return {
        "conversations": n,
        "demo_conversations": c["demo"],
        "cases": total["cases"],
        "csat_pct": pct(c["csat_4"] + c["csat_5"], c["csat_n"]),
        "nps": nps_from_counts(c["nps_9"] + c["nps_10"], sum(c[f"nps_{v}"] for v in range(7)),
                               c["nps_n"]),
        "ces": ces_from_counts(c["ces_sum"], sum(c[f"ces_{v}"] for v in (5, 6, 7)), c["ces_n"]),
        "fcr_pct": pct(total["fcr_ok"], total["resolved"]),
        "containment_confirmed_pct": pct(c["confirmed"], n),
        "containment_assumed_pct": pct(c["assumed"], n),
        "escalation_rate_pct": pct(c["escalated"], n),
        "abandonment_pct": pct(c["abandoned"], n),
        "first_response_time": _durations(frt),
        "handling_time": _durations(handled),
        "resolution_time": {kind: _durations(resolution.get(kind)) for kind in sorted(cases)},
        "reopen_rate_pct": pct(total["reopened"], total["resolved"]),
        "survey_response_rate_pct": pct(c["answered"], c["surveys"]),
        # beyond DOMAIN.md's table: what the dashboard charts (same counters)
        "resolution_time_all": _durations(all_resolution),
        "escalations": c["escalated"],
        "escalation_reasons": dict(sorted((reasons or {}).items())),
        "csat_bot_pct": pct(c["csat_bot_good"], c["csat_bot_n"]),
        "csat_human_pct": pct(c["csat_human_good"], c["csat_human_n"]),
        "sla": {"first_response_minutes": sla.first_response_minutes,
                "first_response_pct": pct(frt.within or 0, frt.count) if frt else None,
                "resolution_hours": sla.resolution_hours,
                "resolution_pct": (pct(all_resolution.within or 0, all_resolution.count)
                                   if all_resolution else None)},
        "distributions": dist,
    }


def _add(into: dict, more: dict | None) -> dict:
    """Counters of several buckets added up (nested per case type)."""
    for key, value in (more or {}).items():
        into[key] = _add(into.get(key, {}), value) if isinstance(value, dict) \
            else into.get(key, 0) + value
    return into


def _compute(session: Session, f: Filters, grouping: q.Grouping, *, idle_timeout: int,
             now: datetime | None, sla: Sla) -> dict[Any, dict[str, Any]]:
    """KPIs per key of ``grouping`` (see ``kpi_queries.Grouping``): six queries whatever
    the number of buckets. With buckets and a split, "current" is added: counters summed
    over the buckets, percentiles from their own window."""
    now = now or datetime.utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # these queries read a few thousand rows each: PostgreSQL's JIT would spend longer
        # compiling them (~80 ms per query measured) than running them. LOCAL: this
        # transaction only.
        session.execute(text("SET LOCAL jit = off"))
    cutoff = now - timedelta(seconds=idle_timeout)
    frt_target = sla.first_response_minutes * 60_000_000
    res_target = sla.resolution_hours * 3_600_000_000
    convs = q.conversation_counters(session, f, grouping, cutoff)
    reasons = q.escalation_reasons(session, f, grouping)
    cases = q.case_counters(session, f, grouping)
    frt = q.first_response(session, f, grouping, frt_target)
    handled = q.handling(session, f, grouping)
    resolution: dict[Any, dict[str | None, Durations]] = {}
    for (key, kind), d in q.resolution(session, f, grouping, res_target).items():
        resolution.setdefault(key, {})[kind] = d
    keys = set(convs) | set(cases)
    if grouping.unit is None:
        keys.add(None if grouping.split is None else "current")
    if grouping.split is not None:
        keys.add("previous")
        if grouping.unit:
            buckets = [k for k in keys if k not in ("previous", "current")]
            convs["current"] = {}
            cases["current"] = {}
            reasons["current"] = {}
            for k in buckets:
                _add(convs["current"], convs.get(k))
                _add(cases["current"], cases.get(k))
                _add(reasons["current"], reasons.get(k))
            convs["current"] = convs["current"] or None
            keys.add("current")
    return {key: _kpis(convs.get(key), reasons.get(key), cases.get(key), frt.get(key),
                       handled.get(key), resolution.get(key, {}), sla) for key in keys}


def _filters_dict(f: Filters) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in f.__dict__.items()}


def report(session: Session, f: Filters | None = None, *, idle_timeout: int = 1800,
           now: datetime | None = None, sla: Sla | None = None) -> dict[str, Any]:
    """All KPIs of one period. A form left idle longer than `idle_timeout` counts as
    abandoned even if the customer never came back (the hub only closes a conversation on
    its next message)."""
    f = f or Filters()
    data = _compute(session, f, q.TOTAL, idle_timeout=idle_timeout, now=now, sla=sla or Sla())
    return {"filters": _filters_dict(f), **data[None]}


def _points(data: dict[Any, dict[str, Any]], f: Filters, unit: str, sla: Sla
            ) -> list[dict[str, Any]]:
    empty = _kpis(None, None, None, None, None, {}, sla)
    assert f.since is not None and f.until is not None
    return [{"bucket": key, **data.get(key, empty)}
            for key in bucket_starts(f.since, f.until, unit)]


def _check(f: Filters, unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}")
    if f.since is None or f.until is None:
        raise ValueError("a series needs both since and until")


def series(session: Session, f: Filters, unit: str, *, idle_timeout: int = 1800,
           now: datetime | None = None, sla: Sla | None = None) -> list[dict[str, Any]]:
    """The KPIs per day, week or month of [f.since, f.until), oldest first; a bucket without
    data is present with n/a values (a gap in a chart, not a zero)."""
    _check(f, unit)
    sla = sla or Sla()
    data = _compute(session, f, q.Grouping(unit), idle_timeout=idle_timeout, now=now, sla=sla)
    return _points(data, f, unit, sla)


def overview(session: Session, f: Filters, unit: str, *, idle_timeout: int = 1800,
             now: datetime | None = None, sla: Sla | None = None) -> dict[str, Any]:
    """What the dashboard shows: ``current`` (= ``report(f)``), ``previous`` (= ``report``
    of the period of equal length just before) and ``series`` (= ``series(f, unit)``), from
    one scan of both periods per query."""
    _check(f, unit)
    assert f.since is not None and f.until is not None
    sla = sla or Sla()
    before = replace(f, since=f.since - (f.until - f.since), until=f.since)
    both = replace(f, since=before.since)
    data = _compute(session, both, q.Grouping(unit, split=f.since), idle_timeout=idle_timeout,
                    now=now, sla=sla)
    return {"current": {"filters": _filters_dict(f), **data["current"]},
            "previous": {"filters": _filters_dict(before), **data["previous"]},
            "series": _points(data, f, unit, sla)}
