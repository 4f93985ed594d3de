"""The KPI dashboard's API and CSV exports against a real hub process (no Rasa: the console
does not need it — tests/hub_process.py), on SQLite and PostgreSQL.

* the dashboard's numbers equal `python -m bot report --json` (run as a subprocess against
  the same database) for the same filters;
* a period with no data and filters that match nothing give n/a (None), never 0, and an
  empty period exports a CSV with its header only;
* bad filters are 422 with a message; agents read their own team only and cannot export;
  exports are streamed, defused against formula injection and audited.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db.models import (
    AuditEntry,
    Case,
    CaseEvent,
    Conversation,
    StaffUser,
    SurveyResponse,
)
from bot.db.session import session_factory, session_scope
from bot.services import kpi_export
from tests.conftest import run_cli
from tests.hub_process import run_hub
from tests.test_console_auth import ConsoleClient, make_staff

XSS = '<img src=x onerror="window.__pwned=1">'
FORMULA = '=HYPERLINK("http://evil.example","clic")'
PERIOD = {"since": "2026-03-02", "until": "2026-03-30"}  # four whole weeks, Monday first
EMPTY = {"since": "2021-01-01", "until": "2021-02-01"}


def seed_scenario(db_url: str) -> dict[str, int]:
    """A small, known March 2026 (+ two February conversations for the comparison)."""
    with session_scope(db_url) as s:
        ana = StaffUser(username=f"ana-{os.urandom(3).hex()}", password_hash="x", role="agent",
                        team="postventa")
        tom = StaffUser(username=f"tom-{os.urandom(3).hex()}", password_hash="x", role="agent",
                        team="tienda")
        s.add_all([ana, tom])
        s.flush()

        def conv(day: str, outcome: str, channel: str = "web", language: str = "es",
                 **kw) -> Conversation:
            start = datetime.fromisoformat(day)
            c = Conversation(sender=f"dash-{os.urandom(8).hex()}", channel=channel,
                             language=language, status="closed", outcome=outcome,
                             started_at=start, last_activity_at=start + timedelta(minutes=5),
                             ended_at=start + timedelta(minutes=6), **kw)
            s.add(c)
            s.flush()
            return c

        def survey(c: Conversation, nps: int, ces: int, comment: str | None = None) -> None:
            s.add(SurveyResponse(conversation_id=c.id, channel=c.channel, language=c.language,
                                 state="completed", nps=nps, ces=ces, comment=comment,
                                 offered_at=c.ended_at, updated_at=c.ended_at))

        survey(conv("2026-02-10 10:00", "resolved_bot_confirmed"), 10, 7)
        survey(conv("2026-02-20 10:00", "resolved_bot_confirmed"), 10, 7)
        survey(conv("2026-03-03 10:00", "resolved_bot_confirmed"), 10, 7, XSS)
        survey(conv("2026-03-05 11:00", "resolved_bot_confirmed"), 9, 6, FORMULA)
        with_case = conv("2026-03-10 09:00", "case_opened")
        survey(with_case, 3, 2, "+34 600 000 000, llamadme")
        t = datetime(2026, 3, 12, 15, 0)
        escalated = conv("2026-03-12 15:00", "escalated", escalated_at=t + timedelta(minutes=2),
                         first_agent_reply_at=t + timedelta(minutes=12),
                         claimed_at=t + timedelta(minutes=11),
                         handoff_ended_at=t + timedelta(minutes=30), agent_id=ana.id,
                         escalation_reason="complaint")
        survey(escalated, 6, 4, "@todos: fatal")
        conv("2026-03-16 18:00", "ended_idle", channel="telegram", language="en")
        conv("2026-03-20 18:00", "abandoned", channel="telegram", language="en")
        t = datetime(2026, 3, 24, 9, 0)
        conv("2026-03-24 09:00", "escalated", team="tienda", agent_id=tom.id,
             escalated_at=t + timedelta(minutes=1),
             first_agent_reply_at=t + timedelta(minutes=41), escalation_reason="request_human")
        case = Case(number="GAR-2026-900001", type="warranty", status="resolved",
                    conversation_id=with_case.id, channel="web", language="es",
                    category="=cmd|' /C calc'!A0", created_at=with_case.started_at,
                    updated_at=with_case.started_at,
                    resolved_at=with_case.started_at + timedelta(hours=48))
        s.add(case)
        s.flush()
        s.add(CaseEvent(case_id=case.id, kind="status", to_status="resolved", actor="ana"))
        return {"ana": ana.id, "tom": tom.id}


def cli_report(db_url: str, **flags: str) -> dict:
    args = ["report", "--json"]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    result = run_cli(*args, env={**os.environ, "DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def hub(db_url, tmp_path) -> Iterator:
    with run_hub(tmp_path, db=db_url) as h:
        yield h


def login(hub, role: str = "admin", team: str = "postventa") -> ConsoleClient:
    client = ConsoleClient(hub.url)
    assert client.login(make_staff(hub.db, role=role, team=team)).status_code == 204
    return client


def rows(resp) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.content.startswith("\ufeff".encode())  # Excel reads UTF-8 with the BOM
    return list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))


def test_dashboard_numbers_equal_the_cli_report(hub):
    """Same filters → the same JSON, for the period and for the previous one."""
    from tests.test_kpi_sql import seed_random

    ids = seed_random(session_factory(hub.db)())
    admin = login(hub)
    cases = [
        ({"since": "2026-09-01", "until": "2026-11-01"}, {}),
        ({"since": "2026-09-10", "until": "2026-10-20", "channel": "telegram",
          "language": "en"}, {}),
        ({"since": "2026-09-01", "until": "2026-11-01", "case_type": "warranty"}, {}),
        ({"since": "2026-09-01", "until": "2026-11-01", "agent": str(ids["agent"])}, {}),
        ({"since": "2026-09-01", "until": "2026-11-01", "team": "tienda",
          "channel": "web"}, {}),
    ]
    for params, _ in cases:
        resp = admin.http.get("/console/api/kpi", params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["server-timing"].startswith("kpi;dur=")
        data = resp.json()
        flags = {k: v for k, v in params.items()}
        assert data["current"] == cli_report(hub.db, **flags), params
        before = {**flags, "since": data["period"]["previous_since"],
                  "until": data["period"]["previous_until"]}
        assert data["previous"] == cli_report(hub.db, **before), params
        assert sum(p["conversations"] for p in data["series"]) == \
            data["current"]["conversations"]
    admin.close()


def test_known_period_empty_period_and_filters_matching_nothing(hub):
    seed_scenario(hub.db)
    admin = login(hub)
    data = admin.http.get("/console/api/kpi", params={**PERIOD, "group": "week"}).json()
    cur = data["current"]
    assert cur["conversations"] == 7 and cur["cases"] == 1
    assert cur["nps"] == round(100 * (2 - 2) / 4, 1)  # 10, 9 promoters; 3, 6 detractors
    assert cur["csat_pct"] is None and cur["csat_human_pct"] is None  # nobody answered CSAT
    assert cur["escalation_reasons"] == {"complaint": 1, "request_human": 1}
    assert cur["sla"]["first_response_pct"] == 50.0  # 10 min yes, 40 min no (30 min target)
    assert cur["resolution_time"]["warranty"]["median_s"] == 48 * 3600
    assert data["previous"]["conversations"] == 2 and data["previous"]["nps"] == 100.0
    assert [p["bucket"] for p in data["series"]] == ["2026-03-02", "2026-03-09",
                                                     "2026-03-16", "2026-03-23"]
    assert [p["conversations"] for p in data["series"]] == [2, 2, 2, 1]
    assert [c["comment"] for c in data["comments"]][:1] == ["@todos: fatal"]

    for params in (EMPTY, {**PERIOD, "team": "nadie"}, {**PERIOD, "channel": "api"},
                   {**PERIOD, "agent": "999999"}):
        nothing = admin.http.get("/console/api/kpi", params=params).json()
        for report in (nothing["current"], *nothing["series"]):
            assert report["conversations"] == 0 and report["cases"] == 0
            for key in ("csat_pct", "nps", "fcr_pct", "containment_confirmed_pct",
                        "containment_assumed_pct", "escalation_rate_pct", "abandonment_pct",
                        "reopen_rate_pct", "survey_response_rate_pct", "csat_bot_pct",
                        "csat_human_pct"):
                assert report[key] is None, (params, key)
            assert report["ces"]["mean"] is None
            assert report["first_response_time"]["median_s"] is None
            assert report["sla"]["first_response_pct"] is None
            assert report["sla"]["resolution_pct"] is None
        assert nothing["comments"] == []
        for kind in ("conversations", "cases"):
            empty = rows(admin.http.get(f"/console/api/export/{kind}.csv", params=params))
            assert empty == []  # the header only
    admin.close()


def test_exports_are_complete_defused_and_audited(hub):
    seed_scenario(hub.db)
    admin = login(hub)
    convs = rows(admin.http.get("/console/api/export/conversations.csv", params=PERIOD))
    assert len(convs) == 7
    assert list(convs[0]) == kpi_export.CONVERSATION_COLUMNS
    comments = [r["comment"] for r in convs if r["comment"]]
    assert XSS in comments  # text, as typed (a CSV is not HTML)
    assert "'" + FORMULA in comments and "'+34 600 000 000, llamadme" in comments
    assert "'@todos: fatal" in comments
    escalated = next(r for r in convs if r["escalation_reason"] == "complaint")
    assert escalated["first_response_s"] == "600.0" and escalated["escalated"] == "1"
    assert escalated["agent"].startswith("ana-")
    case_row = next(r for r in convs if r["cases"])
    assert case_row["cases"] == "GAR-2026-900001" and case_row["nps"] == "3"
    cases = rows(admin.http.get("/console/api/export/cases.csv", params=PERIOD))
    assert [c["case_number"] for c in cases] == ["GAR-2026-900001"]
    assert cases[0]["resolution_hours"] == "48.0" and cases[0]["category"].startswith("'=")
    web = rows(admin.http.get("/console/api/export/conversations.csv",
                              params={**PERIOD, "channel": "telegram"}))
    assert {r["channel"] for r in web} == {"telegram"} and len(web) == 2

    with session_factory(hub.db)() as s:
        entries = s.execute(select(AuditEntry).where(AuditEntry.action.like("export.%"))
                            .order_by(AuditEntry.id)).scalars().all()
    assert [e.action for e in entries] == ["export.conversations", "export.cases",
                                           "export.conversations"]
    assert entries[-1].details == {**PERIOD, "channel": "telegram", "via": "console"}
    assert all(e.actor == entries[0].actor for e in entries)

    # another site cannot make an admin's browser export (Sec-Fetch-Site), nothing audited
    foreign = admin.http.get("/console/api/export/conversations.csv", params=PERIOD,
                             headers={"Sec-Fetch-Site": "cross-site"})
    assert foreign.status_code == 403
    anonymous = ConsoleClient(hub.url).http.get("/console/api/export/cases.csv")
    assert anonymous.status_code == 401
    with session_factory(hub.db)() as s:
        assert len(s.execute(select(AuditEntry.id).where(
            AuditEntry.action.like("export.%"))).all()) == 3
    admin.close()


def test_agents_read_their_team_only_and_cannot_export(hub):
    seed_scenario(hub.db)
    agent = login(hub, role="agent", team="tienda")
    data = agent.http.get("/console/api/kpi", params=PERIOD)
    assert data.status_code == 200
    body = data.json()
    assert body["current"]["filters"]["team"] == "tienda" and body["team_locked"] is True
    assert body["current"] == cli_report(hub.db, team="tienda", **PERIOD)
    assert body["current"]["conversations"] == 1 and "comments" not in body
    other = agent.http.get("/console/api/kpi", params={**PERIOD, "team": "postventa"})
    assert other.status_code == 403 and other.json()["error"] == "forbidden"
    options = agent.http.get("/console/api/kpi/options").json()
    assert options["teams"] == ["tienda"] and options["can_export"] is False
    assert {a["team"] for a in options["agents"]} == {"tienda"}
    for kind in ("conversations", "cases"):
        assert agent.http.get(f"/console/api/export/{kind}.csv").status_code == 403
    for page in ("/console/privacy", "/console/people"):  # admin pages
        assert agent.http.get(page).status_code == 403
    assert agent.http.get("/console/dashboard").status_code == 200
    # read-only API: nothing to post (a POST is no way around the role check)
    assert agent.http.post("/console/api/kpi").status_code in (403, 405)
    agent.close()


BAD_FILTERS = [
    ({"since": "ayer"}, "AAAA-MM-DD"),
    ({"until": "2026-02-30"}, "AAAA-MM-DD"),
    ({"since": "2026-03-10", "until": "2026-03-10"}, "vacío"),
    ({"since": "2020-01-01", "until": "2026-01-01"}, "largo"),
    ({"since": "2025-01-01", "until": "2026-03-01", "group": "day"}, "puntos"),
    ({"group": "hour"}, "Agrupación"),
    ({"channel": "fax"}, "Canal"),
    ({"language": "fr"}, "Idioma"),
    ({"case_type": "refund"}, "Tipo de caso"),
    ({"agent": "-1"}, "Agente"),
    ({"agent": "99999999999"}, "Agente"),
    ({"team": "<script>"}, "Equipo"),
]


def test_bad_filters_are_refused_with_a_message(hub):
    admin = login(hub)
    for params, message in BAD_FILTERS:
        for path in ("/console/api/kpi", "/console/api/export/conversations.csv"):
            resp = admin.http.get(path, params=params)
            assert resp.status_code == 422, (path, params, resp.text)
            assert resp.json()["error"] == "bad_input", params
            assert message in resp.json()["message"], params
    admin.close()


def test_export_streams_in_batches(session):
    """More rows than one batch leave as several chunks (never one string of the table)."""
    start = datetime(2026, 5, 1)
    session.add_all([Conversation(sender=f"bulk-{i:012d}", channel="web", status="closed",
                                  outcome="ended_idle", started_at=start + timedelta(minutes=i),
                                  last_activity_at=start + timedelta(minutes=i))
                     for i in range(kpi_export.BATCH * 2 + 5)])
    session.commit()
    from bot.services.kpi import Filters

    chunks = list(kpi_export.conversations_csv(session, Filters(since=start)))
    assert len(chunks) == 4  # header, two full batches, the rest
    text = b"".join(chunks).decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(text)))) == kpi_export.BATCH * 2 + 5


def test_formula_cells_are_defused():
    for raw in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert kpi_export.cell(raw) == "'" + raw
    assert kpi_export.cell("hola = adiós") == "hola = adiós"
    assert kpi_export.cell(-3) == -3 and kpi_export.cell(None) == ""
    assert kpi_export.cell(datetime(2026, 3, 1, 9, 5, 7, 999)) == "2026-03-01 09:05:07"
