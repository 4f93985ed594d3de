"""The KPI dashboard in a real headless Chromium (screenshots in test-artifacts/screenshots).

The hub runs as a real process without Rasa (tests/hub_process.py): the console does not
need Rasa, and a database of its own makes every number on the page known in advance
(tests/test_dashboard.py ``seed_scenario``: March 2026 and two February conversations).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from bot.db.models import AuditEntry
from bot.db.session import session_factory
from tests.hub_process import run_hub
from tests.test_console_auth import PASSWORD, make_staff
from tests.test_console_browser import (
    SCREENSHOTS,
    UI,
    browser,  # noqa: F401 - the module's Chromium fixture
)
from tests.test_dashboard import PERIOD, XSS, seed_scenario

QUERY = f"since={PERIOD['since']}&until={PERIOD['until']}&group=week"


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator:
    with run_hub(tmp_path_factory.mktemp("dashboard-hub")) as h:
        seed_scenario(h.db)
        yield h


class Staff:
    """One member of staff in their own browser context."""

    def __init__(self, chromium: Browser, hub, role: str, team: str = "postventa") -> None:
        self.hub = hub
        self.username = make_staff(hub.db, role=role, team=team)
        self.context = chromium.new_context(base_url=hub.url, locale="es-ES",
                                           accept_downloads=True,
                                           viewport={"width": 1440, "height": 1000})
        self.context.set_default_timeout(UI)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        # CSP violations show up as console errors; 4xx answers are checked by the tests
        self.page.on("console", lambda msg: self.errors.append(msg.text)
                     if msg.type == "error" and not msg.text.startswith(
                         "Failed to load resource: the server responded") else None)

    def login(self) -> Staff:
        self.page.goto("/console/login")
        self.page.fill("#username", self.username)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-submit")
        expect(self.page).to_have_url(re.compile(r"/console$"))
        return self

    def loads(self, n: int) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-loaded", str(n))

    def shows(self, query: str) -> None:
        """The page shows the answer to a query containing ``query``."""
        expect(self.page.locator("body")).to_have_attribute("data-query",
                                                            re.compile(re.escape(query)))

    def tile(self, key: str):
        return self.page.locator(f'.tile[data-kpi="{key}"] .tile-value')

    def delta(self, key: str):
        return self.page.locator(f'.tile[data-kpi="{key}"] .tile-delta')

    def summary(self, chart: str) -> str:
        return self.page.locator(f"#{chart}").locator("xpath=..").get_attribute(
            "data-summary") or ""

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def staff(browser, hub) -> Iterator:  # noqa: F811 - the imported fixture
    made: list[Staff] = []

    def _new(role: str = "admin", team: str = "postventa") -> Staff:
        member = Staff(browser, hub, role, team)
        made.append(member)
        return member.login()

    yield _new
    for member in made:
        member.close()
    for member in made:
        assert not member.errors, f"errors in {member.username}'s page: {member.errors}"


def shot(page: Page, name: str) -> Path:
    """The whole page (tiles, every chart, comments), not only the viewport."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def exports(hub) -> int:
    with session_factory(hub.db)() as s:
        return s.execute(select(func.count(AuditEntry.id)).where(
            AuditEntry.action.like("export.%"))).scalar_one()


def test_admin_reads_tiles_and_charts_and_filters_update_both(staff):
    admin = staff("admin")
    admin.page.click("#dashboard-link")  # from the inbox's top bar
    expect(admin.page).to_have_url(re.compile(r"/console/dashboard"))
    admin.loads(1)  # the last 30 days: no data in this database
    expect(admin.tile("nps")).to_have_text("n/a")
    expect(admin.tile("conversations")).to_have_text("0")

    admin.page.goto(f"/console/dashboard?{QUERY}")
    admin.loads(1)
    expect(admin.page.locator("#f-since")).to_have_value("2026-03-02")
    expect(admin.page.locator("#f-until")).to_have_value("2026-03-29")  # inclusive
    expect(admin.tile("conversations")).to_have_text("7")
    expect(admin.tile("cases")).to_have_text("1")
    expect(admin.tile("nps")).to_have_text("0,0")
    expect(admin.delta("nps")).to_have_text("vs. periodo anterior: −100,0")
    expect(admin.delta("nps")).to_have_class(re.compile("worse"))
    expect(admin.tile("csat")).to_have_text("n/a")  # nobody answered CSAT: not 0
    expect(admin.tile("csat_human")).to_have_text("n/a")
    expect(admin.tile("escalation")).to_have_text("28,6 %")
    expect(admin.tile("sla_first_response")).to_have_text("50,0 %")
    expect(admin.tile("first_response")).to_have_text("25,0 min")  # median of 10 and 40
    expect(admin.tile("resolution")).to_have_text("48,0 h")
    nps = admin.summary("chart-nps")
    assert '"label":"Promotores (9–10)","data":[2,0,0,0]' in nps
    assert '"label":"Detractores (0–6)","data":[0,2,0,0]' in nps
    assert '"label":"NPS","data":[100,-100,null,null]' in nps  # a week without answers: a gap
    assert "Queja" in admin.summary("chart-escalation")
    shot(admin.page, "dashboard-admin-march")

    admin.page.select_option("#f-channel", "telegram")  # tiles and charts change together
    admin.loads(2)
    expect(admin.tile("conversations")).to_have_text("2")
    expect(admin.tile("nps")).to_have_text("n/a")
    expect(admin.tile("abandonment")).to_have_text("50,0 %")
    assert admin.summary("chart-nps") != nps
    assert '"data":[0,0,0,0]' in admin.summary("chart-nps")
    expect(admin.page.locator("#chart-nps").locator("xpath=..")).to_have_class(
        re.compile("empty"))
    assert "channel=telegram" in admin.page.url  # a filtered view can be bookmarked
    shot(admin.page, "dashboard-admin-telegram")

    admin.page.select_option("#f-channel", "")
    admin.loads(3)
    admin.page.fill("#f-since", "2021-01-01")
    admin.page.fill("#f-until", "2021-01-31")
    admin.page.click("#apply")
    admin.shows("since=2021-01-01&until=2021-02-01")  # whichever load of the changes is last
    expect(admin.tile("conversations")).to_have_text("0")
    for key in ("csat", "nps", "ces_mean", "fcr", "containment_confirmed", "escalation",
                "abandonment", "first_response", "resolution", "sla_resolution"):
        expect(admin.tile(key)).to_have_text("n/a")
    expect(admin.page.locator("#status")).to_contain_text("No hay conversaciones")
    shot(admin.page, "dashboard-admin-empty")


def test_csv_download_and_customer_text_shown_as_text(staff, hub):
    admin = staff("admin")
    admin.page.goto(f"/console/dashboard?{QUERY}")
    admin.loads(1)
    comments = admin.page.locator("#comments .comment-text")
    expect(comments.filter(has_text=XSS)).to_have_count(1)  # the markup, as text
    assert admin.page.locator("#comments img").count() == 0
    assert admin.page.evaluate("window.__pwned") is None
    before = exports(hub)
    with admin.page.expect_download() as info:
        admin.page.click("#export-conversations")
    download = info.value
    assert download.suggested_filename == "conversations-20260302-20260330.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    got = list(csv.DictReader(io.StringIO(text)))
    assert len(got) == 7 and XSS in {r["comment"] for r in got}
    assert any(r["comment"].startswith("'=HYPERLINK") for r in got)
    with admin.page.expect_download() as info:
        admin.page.click("#export-cases")
    cases = Path(info.value.path()).read_text(encoding="utf-8-sig")
    assert "GAR-2026-900001" in cases
    assert exports(hub) == before + 2
    shot(admin.page, "dashboard-admin-comments")


def test_agent_reads_own_team_only_no_exports_no_admin_pages(staff, hub):
    agent = staff("agent", team="tienda")
    expect(agent.page.locator("#dashboard-link")).to_be_visible()
    agent.page.goto(f"/console/dashboard?{QUERY}")
    agent.loads(1)
    expect(agent.tile("conversations")).to_have_text("1")  # the tienda team's one
    expect(agent.page.locator("#f-team")).to_be_disabled()
    expect(agent.page.locator("#f-team")).to_have_value("tienda")
    expect(agent.page.locator("#export-conversations")).to_be_hidden()
    expect(agent.page.locator("#comments-box")).to_be_hidden()
    shot(agent.page, "dashboard-agent")
    for path in ("/console/api/export/conversations.csv", "/console/api/export/cases.csv",
                 "/console/privacy", "/console/people",
                 f"/console/api/kpi?{QUERY}&team=postventa"):
        resp = agent.page.goto(path)
        assert resp is not None and resp.status == 403, path


def test_other_sites_cannot_export_or_post(staff, hub):
    """A foreign page the admin visits: SameSite=Strict keeps the session cookie home, the
    export refuses cross-site requests, and state-changing calls need the CSRF token."""
    admin = staff("admin")
    evil = "http://attacker.example"
    admin.context.route(f"{evil}/**", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body=f'<a id="go" href="{hub.url}/console/api/export/conversations.csv">x</a>'
             f'<form id="out" method="post" action="{hub.url}/console/logout"></form>'))
    before = exports(hub)
    admin.page.goto(f"{evil}/")
    with admin.page.expect_response(re.compile(r"/console/api/export/")) as info:
        admin.page.click("#go")
    assert info.value.status in (401, 403)
    admin.page.wait_for_url(re.compile(r"/console/api/export/"))
    admin.page.goto(f"{evil}/")
    with admin.page.expect_response(re.compile(r"/console/logout")) as info:
        admin.page.evaluate("document.getElementById('out').submit()")
    assert info.value.status in (401, 403)
    admin.page.wait_for_url(re.compile(r"/console/logout$"))  # that navigation is over
    assert exports(hub) == before
    admin.page.goto(f"/console/dashboard?{QUERY}")  # still logged in: the POST did nothing
    admin.loads(1)
    expect(admin.tile("conversations")).to_have_text("7")
    admin.errors.clear()  # the foreign page's refused requests are logged as errors
