"""KPI dashboard benchmark (`make bench-dashboard`): is the dashboard's server time within
300 ms with 100 000 conversations in the database (issue 13)?

Seeds a scratch SQLite database (and a scratch PostgreSQL database when one answers on
127.0.0.1:5432, or at ``BENCH_POSTGRES_URL``) with N conversations over a year plus their
cases, case events and surveys (bulk inserts), then times:

* the service call the API runs (``kpi_dashboard.build``: tiles for the period and the
  previous one, and the chart series) for a few typical views, warm, several repetitions;
* one HTTP request per view against a started hub (SQLite only): wall time and the
  ``Server-Timing`` the hub reports.

Writes ``bench/results/dashboard-<time>.json`` and prints a table. ``BENCH_DASHBOARD_N``
(default 100000) and ``BENCH_DASHBOARD_REPEAT`` (default 7) make smoke runs small.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, text

from bot.core.config import ROOT
from bot.db.migrate import upgrade
from bot.db.models import Case, CaseEvent, Conversation, Customer, StaffUser, SurveyResponse
from bot.db.session import engine_for, session_factory
from bot.services import kpi, kpi_dashboard
from bot.services.users import add_user

RESULTS = ROOT / "bench" / "results"
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
OUTCOMES = [("resolved_bot_confirmed", 30), ("ended_idle", 22), ("case_opened", 20),
            ("escalated", 12), ("abandoned", 6), ("faq_not_solved", 6),
            ("abandoned_queue", 4)]
TODAY = date(2026, 11, 27)  # fixed: the same data and views on every run
VIEWS = {  # name → query string of the dashboard
    "last_30_days_by_day": {"since": "2026-10-29", "until": "2026-11-28", "group": "day"},
    "last_30_days_web_es": {"since": "2026-10-29", "until": "2026-11-28", "group": "day",
                            "channel": "web", "language": "es"},
    "last_90_days_by_week": {"since": "2026-08-30", "until": "2026-11-28", "group": "week"},
    "whole_year_by_month": {"since": "2025-11-28", "until": "2026-11-28", "group": "month"},
}
PASSWORD = "bench-dashboard-password"


# --- seeding ---------------------------------------------------------------------------------

def _chunks(rows: list[dict[str, Any]], size: int = 5000):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def seed(url: str, n: int, seed_value: int = 13) -> dict[str, int]:
    """N conversations over the year before TODAY with realistic shares (those of the demo
    activity), ~60 % by identified customers who come back now and then."""
    rng = random.Random(seed_value)
    end = datetime.combine(TODAY, datetime.min.time()) + timedelta(hours=23)
    start = end - timedelta(days=365)
    engine = engine_for(url)
    customers = [{"id": i + 1, "name": f"Cliente {i}", "email": f"c{i}@bench.example",
                  "language": "es", "is_demo": False, "created_at": start}
                 for i in range(max(1, n // 5))]
    staff = [{"id": i + 1, "username": f"agente{i}", "password_hash": "x", "role": "agent",
              "team": "postventa" if i % 3 else "tienda", "active": True, "failed_logins": 0,
              "created_at": start} for i in range(12)]
    outcomes, weights = zip(*OUTCOMES, strict=True)
    convs, surveys, cases, events = [], [], [], []
    # ids in order of time, as in production (rows of a period sit together on disk)
    starts = sorted(start + timedelta(seconds=rng.uniform(0, 365 * 86400)) for _ in range(n))
    for cid, started in enumerate(starts, 1):
        customer = rng.choice(customers)["id"] if rng.random() < 0.6 else None
        outcome = rng.choices(outcomes, weights)[0]
        channel = rng.choice(["web", "web", "telegram"])
        lang = "es" if rng.random() < 0.75 else "en"
        ended = started + timedelta(minutes=rng.randint(3, 20))
        row = {"id": cid, "sender": f"s{customer}" if customer else f"anon-{cid}",
               "channel": channel, "language": lang, "language_source": "locale",
               "rasa_session_started": True, "customer_id": customer, "status": "closed",
               "outcome": outcome, "started_at": started,
               "last_activity_at": ended - timedelta(minutes=1), "ended_at": ended,
               "is_demo": False, "priority": 0, "team": "postventa",
               "escalated_at": None, "first_agent_reply_at": None, "agent_id": None,
               "escalation_reason": None, "claimed_at": None, "handoff_ended_at": None}
        if outcome in ("escalated", "abandoned_queue"):
            agent = rng.choice(staff)
            row["team"] = agent["team"]
            row["escalated_at"] = started + timedelta(minutes=rng.randint(1, 5))
            row["escalation_reason"] = rng.choice(["request_human", "complaint", "fallback",
                                                   "not_solved"])
            if outcome == "escalated":
                row["agent_id"] = agent["id"]
                row["first_agent_reply_at"] = row["escalated_at"] + timedelta(
                    seconds=rng.randint(30, 3600))
                row["claimed_at"] = row["first_agent_reply_at"] - timedelta(seconds=20)
                row["handoff_ended_at"] = row["claimed_at"] + timedelta(
                    seconds=rng.randint(120, 1500))
            else:
                row["handoff_ended_at"] = row["escalated_at"] + timedelta(minutes=10)
        convs.append(row)
        if outcome in ("case_opened", "escalated") and rng.random() < 0.8:
            case_id = len(cases) + 1
            kind = rng.choice(["warranty", "warranty", "return", "exchange", "support"])
            resolved = (started + timedelta(hours=rng.uniform(2, 480))
                        if rng.random() < 0.7 else None)
            if resolved and resolved > end:
                resolved = None
            cases.append({"id": case_id, "number": f"GAR-{started.year}-{case_id:07d}",
                          "type": kind, "status": "resolved" if resolved else "open",
                          "customer_id": customer, "conversation_id": cid, "channel": channel,
                          "language": lang, "category": "bench", "is_demo": False,
                          "assigned_agent_id": row["agent_id"], "created_at": started,
                          "updated_at": resolved or started, "resolved_at": resolved})
            events.append({"case_id": case_id, "kind": "created", "to_status": "open",
                           "actor": "bot", "internal": False, "created_at": started})
            if resolved:
                events.append({"case_id": case_id, "kind": "status", "to_status": "resolved",
                               "actor": "agent", "internal": False, "created_at": resolved})
                if rng.random() < 0.08:
                    events.append({"case_id": case_id, "kind": "reopened",
                                   "to_status": "open", "actor": "customer",
                                   "internal": False, "created_at": resolved})
        if outcome not in ("abandoned", "abandoned_queue") and rng.random() < 0.7:
            good = outcome in ("resolved_bot_confirmed", "case_opened")
            answered = rng.random() < 0.65
            surveys.append({
                "conversation_id": cid, "channel": channel, "language": lang,
                "state": "completed" if answered else "offered", "outcome": outcome,
                "ces": min(7, max(1, round(rng.gauss(6 if good else 4, 1.2))))
                if answered else None,
                "nps": min(10, max(0, round(rng.gauss(8.5 if good else 6, 2))))
                if answered else None,
                "csat": min(5, max(1, round(rng.gauss(4.3 if good else 3.2, 0.8))))
                if answered and rng.random() < 0.5 else None,
                "comment": rng.choice([None, None, None, "Todo bien", "=HYPERLINK(1)"]),
                "follow_up_requested": False, "is_demo": False, "offered_at": ended,
                "updated_at": ended})
    with engine.begin() as conn:
        for table, rows in ((Customer, customers), (StaffUser, staff), (Conversation, convs),
                            (Case, cases), (CaseEvent, events), (SurveyResponse, surveys)):
            for chunk in _chunks(rows):
                conn.execute(insert(table.__table__), chunk)
    if url.startswith("postgresql"):
        with engine.begin() as conn:
            for table in ("customers", "staff_users", "conversations", "cases", "case_events",
                          "survey_responses"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return {"conversations": len(convs), "cases": len(cases), "case_events": len(events),
            "surveys": len(surveys), "customers": len(customers)}


# --- timing ----------------------------------------------------------------------------------

def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1),
            "runs": len(ordered)}


def time_service(url: str, repeat: int) -> dict[str, Any]:
    """``kpi_dashboard.build`` per view, warm (one untimed run first)."""
    factory = session_factory(url)
    now = datetime.combine(TODAY, datetime.min.time()) + timedelta(hours=23, minutes=30)
    out: dict[str, Any] = {}
    for name, params in VIEWS.items():
        query = kpi_dashboard.parse(params, today=TODAY)
        samples, cpu = [], []
        for i in range(repeat + 1):
            with factory() as session:
                t0, c0 = time.perf_counter(), time.process_time()
                data = kpi_dashboard.build(session, query, idle_timeout=1800, sla=kpi.Sla(),
                                           now=now)
                elapsed = (time.perf_counter() - t0) * 1000
                spent = (time.process_time() - c0) * 1000
            if i:
                samples.append(elapsed)
                cpu.append(spent)
        # cpu: this process only — all of SQLite's work, PostgreSQL's server work not
        out[name] = {**_stats(samples), "cpu_median_ms": round(statistics.median(cpu), 1),
                     "conversations_in_period": data["current"]["conversations"],
                     "points": len(data["series"])}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_http(url: str, work: Path, repeat: int) -> dict[str, Any]:
    """One started hub (no Rasa needed for the console), an admin session, GET /console/api/kpi
    per view: wall time and the hub's own ``Server-Timing``."""
    with session_factory(url)() as session:
        add_user(session, "bench-admin", PASSWORD, "admin")
        session.commit()
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "ENV_FILE": os.devnull,
           "RASA_URL": f"http://127.0.0.1:{_free_port()}", "RASA_TOKEN": "b" * 16,
           "RASA_TRACKER_URL": f"sqlite:///{work / 'tracker.db'}", "TELEGRAM_BOT_TOKEN": "",
           "ACTION_SERVER_URL": f"http://127.0.0.1:{_free_port()}/webhook"}
    log = open(work / "hub.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bot.hub.app:create_app", "--host",
         "127.0.0.1", "--port", str(port), "--no-access-log"], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start; see {work / 'hub.log'}")
            time.sleep(0.2)
        with httpx.Client(base_url=base, headers={"Origin": base}, timeout=60) as http:
            login = http.post("/console/login", json={"username": "bench-admin",
                                                      "password": PASSWORD})
            login.raise_for_status()
            for name, params in VIEWS.items():
                wall, server = [], []
                for i in range(repeat + 1):
                    t0 = time.perf_counter()
                    resp = http.get("/console/api/kpi", params=params)
                    elapsed = (time.perf_counter() - t0) * 1000
                    resp.raise_for_status()
                    if i:
                        wall.append(elapsed)
                        timing = resp.headers.get("server-timing", "")
                        server.append(float(timing.split("dur=", 1)[1]) if "dur=" in timing
                                      else float("nan"))
                out[name] = {"wall": _stats(wall), "server": _stats(server),
                             "bytes": len(resp.content)}
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
    return out


def _postgres_url() -> tuple[str, Any] | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        if "BENCH_POSTGRES_URL" not in os.environ:
            return None
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    name = f"postventa_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", (admin, name)


def _drop_postgres(url: str, handle: Any) -> None:
    admin, name = handle
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run_backend(url: str, n: int, repeat: int, work: Path | None) -> dict[str, Any]:
    upgrade(url)
    t0 = time.perf_counter()
    counts = seed(url, n)
    result: dict[str, Any] = {"rows": counts,
                              "seed_seconds": round(time.perf_counter() - t0, 1),
                              "service": time_service(url, repeat)}
    if work is not None:
        result["http"] = time_http(url, work, repeat)
    return result


def main() -> None:
    n = int(os.environ.get("BENCH_DASHBOARD_N", "100000"))
    repeat = int(os.environ.get("BENCH_DASHBOARD_REPEAT", "7"))
    work = Path(tempfile.mkdtemp(prefix="postventa-bench-dashboard-"))
    report: dict[str, Any] = {"n": n, "repeat": repeat, "target_ms": 300,
                              "views": VIEWS, "backends": {},
                              "measured_at": datetime.utcnow().isoformat(timespec="seconds"),
                              "load_average_before": list(os.getloadavg()),
                              "cpus": os.cpu_count()}
    try:
        report["backends"]["sqlite"] = run_backend(f"sqlite:///{work / 'bench.db'}", n,
                                                   repeat, work)
        pg = _postgres_url()
        if pg:
            url, handle = pg
            try:
                report["backends"]["postgresql"] = run_backend(url, n, repeat, None)
            finally:
                _drop_postgres(url, handle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"dashboard-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{n} conversations; server time of the dashboard API (median of {repeat} warm "
          f"runs; target 300 ms; load average before: {report['load_average_before'][0]:.1f} "
          f"on {report['cpus']} CPUs)")
    print(f"{'backend':11} {'view':24} {'in period':>9} {'service':>9} {'cpu':>9} "
          f"{'http srv':>9} {'http wall':>9}")
    for backend, res in report["backends"].items():
        for view, svc in res["service"].items():
            http = res.get("http", {}).get(view)
            print(f"{backend:11} {view:24} {svc['conversations_in_period']:>9} "
                  f"{svc['median_ms']:>7.1f}ms {svc['cpu_median_ms']:>7.1f}ms "
                  + (f"{http['server']['median_ms']:>7.1f}ms {http['wall']['median_ms']:>7.1f}ms"
                     if http else f"{'-':>9} {'-':>9}"))
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
