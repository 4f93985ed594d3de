"""What the console's KPI dashboard shows: tiles (the period and the previous period of equal
length) and charts (the same KPIs per day/week/month), for one set of filters.

Why a module of its own: the hub route only checks who asks; parsing the filters and choosing
the defaults lives here so the benchmark (bench/dashboard.py) times exactly what the API
runs. The numbers come from ``kpi.overview``: the computation of ``kpi.report`` (behind
`python -m bot report --json`) for the period and the previous one, plus the chart points.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Conversation, StaffUser
from bot.services import kpi
from bot.services import kpi_queries as q
from bot.services.kpi_sql import UNITS, bucket_count

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366  # a previous period of equal length is computed too
MAX_POINTS = 400  # per chart: beyond it, a coarser unit
TEAM_RE = re.compile(r"^[\w.-]{1,32}$")


class BadQuery(ValueError):
    """A filter the dashboard cannot use; the message is shown to the user (Spanish)."""


@dataclass(frozen=True)
class Query:
    filters: kpi.Filters  # since and until always set (until exclusive)
    unit: str


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"La fecha «{name}» debe tener el formato AAAA-MM-DD.") from None


def _choice(value: str | None, allowed: tuple[str, ...], label: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise BadQuery(f"{label} no válido: usa {', '.join(allowed)}.")
    return value


def auto_unit(since: datetime, until: datetime) -> str:
    days = (until - since).days
    return "day" if days <= 62 else "week" if days <= 366 else "month"


def parse(params: Mapping[str, str | None], today: date | None = None) -> Query:
    """The dashboard's query string → filters. Dates are whole UTC days, ``until`` exclusive
    (as `bot report --until`); without dates, the last 30 days including today."""
    today = today or datetime.utcnow().date()
    until_day = _day(params.get("until"), "hasta") or today + timedelta(days=1)
    since_day = _day(params.get("since"), "desde") or until_day - timedelta(days=DEFAULT_DAYS)
    if since_day >= until_day:
        raise BadQuery("El periodo está vacío: «desde» debe ser anterior a «hasta».")
    if (until_day - since_day).days > MAX_DAYS:
        raise BadQuery("El periodo es demasiado largo (máximo 3 años).")
    agent = params.get("agent") or None
    if agent is not None:
        if not agent.isdigit() or not 1 <= int(agent) <= 2**31 - 1:
            raise BadQuery("Agente no válido.")
    team = params.get("team") or None
    if team is not None and not TEAM_RE.match(team):
        raise BadQuery("Equipo no válido.")
    since = datetime.combine(since_day, datetime.min.time())
    until = datetime.combine(until_day, datetime.min.time())
    unit = params.get("group") or "auto"
    if unit == "auto":
        unit = auto_unit(since, until)
    unit = _choice(unit, UNITS, "Agrupación") or "day"
    if bucket_count(since, until, unit) > MAX_POINTS:
        raise BadQuery("Demasiados puntos para el gráfico: agrupa por semana o por mes.")
    filters = kpi.Filters(
        since=since, until=until,
        channel=_choice(params.get("channel"), kpi.CHANNELS, "Canal"),
        language=_choice(params.get("language"), kpi.LANGUAGES, "Idioma"),
        case_type=_choice(params.get("case_type"), kpi.CASE_TYPES, "Tipo de caso"),
        agent_id=int(agent) if agent else None, team=team)
    return Query(filters, unit)


def previous(f: kpi.Filters) -> kpi.Filters:
    """The period of equal length just before ``f``'s (as ``kpi.overview`` computes it)."""
    assert f.since is not None and f.until is not None
    return replace(f, since=f.since - (f.until - f.since), until=f.since)


def build(session: Session, query: Query, *, idle_timeout: int, sla: kpi.Sla,
          now: datetime | None = None) -> dict[str, Any]:
    """Tiles and charts for one query (what ``GET /console/api/kpi`` returns)."""
    f = query.filters
    before = previous(f)
    return {
        "period": {"since": f.since.date().isoformat(), "until": f.until.date().isoformat(),
                   "previous_since": before.since.date().isoformat(),
                   "previous_until": before.until.date().isoformat()},
        "group": query.unit,
        **kpi.overview(session, f, query.unit, idle_timeout=idle_timeout, now=now, sla=sla),
    }


def recent_comments(session: Session, f: kpi.Filters, limit: int = 20) -> list[dict[str, Any]]:
    """The newest survey comments of the filtered conversations (customer text: the page
    shows it with textContent; only admins get it, like the exports)."""
    c, s = q.CONV, q.SURVEY
    stmt = (select(s.c.updated_at, c.c.channel, c.c.language, s.c.nps, s.c.ces, s.c.csat,
                   s.c.comment)
            .select_from(c.join(s, s.c.conversation_id == c.c.id))
            .where(*q.conversation_where(f, c), s.c.comment.isnot(None), s.c.comment != "")
            .order_by(s.c.updated_at.desc(), s.c.id.desc()).limit(limit))
    return [{"at": r.updated_at.isoformat(timespec="seconds") + "Z", "channel": r.channel,
             "language": r.language, "nps": r.nps, "ces": r.ces, "csat": r.csat,
             "comment": r.comment} for r in session.execute(stmt)]


def options(session: Session, team: str | None) -> dict[str, Any]:
    """What the filters can choose: agents (of ``team`` when given) and teams."""
    stmt = select(StaffUser.id, StaffUser.username, StaffUser.team).order_by(StaffUser.username)
    if team:
        stmt = stmt.where(StaffUser.team == team)
    agents = [{"id": i, "username": u, "team": t} for i, u, t in session.execute(stmt)]
    if team:
        teams = [team]
    else:
        teams = sorted({a["team"] for a in agents} | set(
            session.execute(select(Conversation.team).distinct()).scalars()))
    return {"agents": agents, "teams": teams, "channels": list(kpi.CHANNELS),
            "languages": list(kpi.LANGUAGES), "case_types": list(kpi.CASE_TYPES),
            "units": list(UNITS)}
