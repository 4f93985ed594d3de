"""People (issue 13 item 5): admins add agents and admins, change role and team, deactivate
(sessions end at once), reset a password (generated, shown once), unlock — every action in the
audit log, which the page shows.

Three levels: the service on SQLite and PostgreSQL (``session``), the HTTP API on the real hub
of the ``stack`` (plus a TestClient on a fresh database where there must be a single admin),
and the page in a real headless Chromium (screenshots in test-artifacts/screenshots).

Bad input handled: invalid or markup usernames, duplicate usernames, empty or 33-character
teams, a short typed password, an unknown role, an unknown person (404), nothing to change,
the last active admin deactivating or demoting themselves (also two admins demoting each
other at once), an agent calling any of it (403), a missing or forged CSRF token (403).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.db.models import AuditEntry, StaffUser
from bot.db.session import session_factory
from bot.services import audit, people, staff_sessions
from bot.services.people import PeopleError
from bot.services.users import add_user
from tests.test_console_auth import PASSWORD, ConsoleClient, make_staff, new_username, staff_row
from tests.test_console_browser import (
    UI,
    XSS,
    browser,  # noqa: F401 - the module's Chromium fixture
    shot,
)

TEAM_XSS = "<img src=x onerror=__pwned=1>"  # 29 characters: a valid team


# --- service level: SQLite and PostgreSQL ---------------------------------------------------

def entries(session, subject: str) -> list[AuditEntry]:
    return list(session.execute(select(AuditEntry).where(AuditEntry.subject == subject)
                                .order_by(AuditEntry.id)).scalars())


def logged_in(session, user: StaffUser) -> str:
    token, _ = staff_sessions.create(session, user)
    session.commit()
    return token


def test_add_generates_a_password_that_logs_in_and_is_audited(session):
    add_user(session, "jefa", PASSWORD, "admin")
    done = people.add(session, "jefa", "  Ana.Lopez@Tienda ", "agent", " Devoluciones ")
    session.commit()
    user, secret = done.user, done.password
    assert (user.username, user.role, user.team) == ("ana.lopez@tienda", "agent", "devoluciones")
    assert secret and len(secret) >= 20 and secret not in user.password_hash
    assert staff_sessions.authenticate(session, "ana.lopez@tienda", secret) is not None
    session.commit()
    [entry] = entries(session, "staff:ana.lopez@tienda")
    assert (entry.actor, entry.action) == ("jefa", "staff.add")
    assert entry.details == {"role": "agent", "team": "devoluciones", "password": "generated"}
    assert secret not in str(entry.details)

    typed = people.add(session, "jefa", "luis", "admin", "postventa", password="una-clave-larga")
    assert typed.password is None  # typed by the admin: nothing to show
    assert staff_sessions.authenticate(session, "luis", "una-clave-larga") is not None
    session.commit()
    assert entries(session, "staff:luis")[0].details["password"] == "typed"


@pytest.mark.parametrize("username,role,team,password,code", [
    ('<img src=x onerror="alert(1)">', "agent", "postventa", None, "bad_input"),
    ("ana lopez", "agent", "postventa", None, "bad_input"),
    ("../admin", "agent", "postventa", None, "bad_input"),
    ("", "agent", "postventa", None, "bad_input"),
    ("a" * 65, "agent", "postventa", None, "bad_input"),
    ("ana", "boss", "postventa", None, "bad_input"),
    ("ana", "agent", "", None, "bad_input"),
    ("ana", "agent", "   ", None, "bad_input"),
    ("ana", "agent", "x" * 33, None, "bad_input"),
    ("ana", "agent", "tab\tteam", None, "bad_input"),
    ("ana", "agent", "postventa", "corta", "bad_input"),
    ("ANA", "agent", "postventa", None, "duplicate"),
])
def test_add_refuses_bad_input_with_a_clear_message(session, username, role, team, password,
                                                    code):
    add_user(session, "ana", PASSWORD, "agent")
    session.commit()
    with pytest.raises(PeopleError) as err:
        people.add(session, "jefa", username, role, team, password)
    assert err.value.code == code
    assert err.value.message and "<img" not in err.value.message
    session.rollback()
    assert session.execute(select(AuditEntry)).first() is None


def test_a_team_with_markup_is_stored_as_typed_and_32_characters_is_fine(session):
    done = people.add(session, "jefa", "eva", "agent", TEAM_XSS)
    assert done.user.team == TEAM_XSS.lower()
    assert people.add(session, "jefa", "eva2", "agent", "y" * 32).user.team == "y" * 32


def test_deactivate_ends_every_session_now_and_reactivate_lets_them_back(session):
    add_user(session, "jefa", PASSWORD, "admin")
    ana = add_user(session, "ana", PASSWORD, "agent")
    tokens = [logged_in(session, ana) for _ in range(2)]
    done = people.deactivate(session, "jefa", "ana")
    session.commit()
    assert done.sessions_ended == 2 and not done.user.active
    assert all(staff_sessions.lookup(session, t) is None for t in tokens)
    assert staff_sessions.authenticate(session, "ana", PASSWORD) is None
    session.commit()
    # a second click changes nothing and records nothing
    assert people.deactivate(session, "jefa", "ana").sessions_ended == 0
    people.reactivate(session, "jefa", "ana")
    people.reactivate(session, "jefa", "ana")
    session.commit()
    assert staff_sessions.authenticate(session, "ana", PASSWORD) is not None
    session.commit()
    log = entries(session, "staff:ana")
    assert [(e.action, e.details) for e in log] == [
        ("staff.deactivate", {"sessions_ended": 2}), ("staff.reactivate", None)]


def test_the_last_active_admin_cannot_deactivate_or_demote_themselves(session):
    jefa = add_user(session, "jefa", PASSWORD, "admin")
    add_user(session, "ana", PASSWORD, "agent")
    off = add_user(session, "antigua", PASSWORD, "admin")
    off.active = False  # an inactive admin does not count
    session.commit()
    for action in (lambda: people.deactivate(session, "jefa", "jefa"),
                   lambda: people.update(session, "jefa", "jefa", role="agent")):
        with pytest.raises(PeopleError) as err:
            action()
        assert err.value.code == "last_admin"
        assert "último administrador activo" in err.value.message
        session.rollback()
    # nobody else may leave the shop without an admin either (e.g. a script acting as "cli")
    with pytest.raises(PeopleError) as err:
        people.deactivate(session, "cli", "jefa")
    assert err.value.code == "last_admin" and "«jefa»" in err.value.message
    session.rollback()
    # the admin's own team is theirs to change, without ending their own session
    token = logged_in(session, jefa)
    other = logged_in(session, jefa)
    done = people.update(session, "jefa", "jefa", team="ventas",
                         actor_session=staff_sessions.token_hash(token))
    session.commit()
    assert done.user.team == "ventas" and done.sessions_ended == 1
    assert staff_sessions.lookup(session, token) is not None
    assert staff_sessions.lookup(session, other) is None
    # with a second active admin, stepping down is allowed
    people.update(session, "jefa", "ana", role="admin")
    people.update(session, "jefa", "jefa", role="agent",
                  actor_session=staff_sessions.token_hash(token))
    session.commit()
    assert staff_row_in(session, "jefa").role == "agent"
    assert staff_sessions.lookup(session, token) is None  # no admin any more: logged out
    with pytest.raises(PeopleError) as err:
        people.deactivate(session, "ana", "ana")
    assert err.value.code == "last_admin"
    session.rollback()


def staff_row_in(session, username: str) -> StaffUser:
    return session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one()


def test_role_or_team_change_ends_their_sessions_and_is_audited(session):
    add_user(session, "jefa", PASSWORD, "admin")
    ana = add_user(session, "ana", PASSWORD, "agent")
    token = logged_in(session, ana)
    assert people.update(session, "jefa", "ana", role="agent", team="POSTVENTA").sessions_ended \
        == 0  # nothing changed: nothing ended, nothing logged
    done = people.update(session, "jefa", "ana", team="Garantías")
    session.commit()
    assert done.user.team == "garantías" and done.sessions_ended == 1
    assert staff_sessions.lookup(session, token) is None
    with pytest.raises(PeopleError) as err:
        people.update(session, "jefa", "ana")
    assert err.value.code == "bad_input"
    session.rollback()
    [entry] = entries(session, "staff:ana")
    assert entry.action == "staff.update"
    assert entry.details == {"team": ["postventa", "garantías"], "sessions_ended": 1}


def test_reset_password_generates_one_ends_sessions_and_lifts_the_lock(session):
    jefa = add_user(session, "jefa", PASSWORD, "admin")
    ana = add_user(session, "ana", PASSWORD, "agent")
    token = logged_in(session, ana)
    for _ in range(staff_sessions.MAX_FAILURES):
        staff_sessions.authenticate(session, "ana", "wrong-password")
    session.commit()
    assert staff_sessions.is_locked(staff_row_in(session, "ana"))
    done = people.reset_password(session, "jefa", "ana")
    session.commit()
    assert done.password and done.sessions_ended == 1
    assert staff_sessions.lookup(session, token) is None
    assert staff_sessions.authenticate(session, "ana", PASSWORD) is None
    assert staff_sessions.authenticate(session, "ana", done.password) is not None
    session.commit()
    [entry] = entries(session, "staff:ana")
    assert entry.action == "staff.reset_password"
    assert entry.details == {"sessions_ended": 1, "unlocked": True}
    assert done.password not in str(entry.details)
    # an admin resetting their own password keeps the session they are using
    mine = logged_in(session, jefa)
    own = people.reset_password(session, "jefa", "jefa",
                                actor_session=staff_sessions.token_hash(mine))
    session.commit()
    assert own.sessions_ended == 0 and staff_sessions.lookup(session, mine) is not None


def test_unlock_is_audited_and_unknown_people_are_not_found(session):
    add_user(session, "ana", PASSWORD, "agent")
    session.commit()
    people.unlock(session, "jefa", "ana")  # not locked: nothing to do, nothing logged
    for _ in range(staff_sessions.MAX_FAILURES):
        staff_sessions.authenticate(session, "ana", "wrong-password")
    session.commit()
    people.unlock(session, "jefa", " ANA ")
    session.commit()
    assert staff_sessions.authenticate(session, "ana", PASSWORD) is not None
    session.commit()
    [entry] = entries(session, "staff:ana")
    assert (entry.action, entry.details) == ("staff.unlock",
                                             {"was_locked": True, "failed_logins": 5})
    for action in (people.unlock, people.deactivate, people.reactivate, people.reset_password):
        with pytest.raises(PeopleError) as err:
            action(session, "jefa", "nadie")
        assert err.value.code == "not_found" and "nadie" in err.value.message
    with pytest.raises(PeopleError):
        people.update(session, "jefa", "x" * 500, team="postventa")


def test_the_list_shows_last_login_sessions_and_the_staff_audit_only(session):
    jefa = add_user(session, "jefa", PASSWORD, "admin")
    add_user(session, "ana", PASSWORD, "agent")
    session.commit()
    assert staff_row_in(session, "jefa").last_login_at is None
    logged_in(session, jefa)
    rows = {r["username"]: r for r in people.list_staff(session)}
    assert rows["jefa"]["last_login_at"].endswith("Z") and rows["jefa"]["sessions"] == 1
    assert rows["ana"]["last_login_at"] is None and rows["ana"]["sessions"] == 0
    assert set(rows["ana"]) >= {"role", "team", "active", "locked", "failed_logins",
                                "open_conversations", "created_at"}
    assert not any("hash" in key for key in rows["ana"])
    audit.record(session, "jefa", "privacy.export", "sha256:abc")
    people.deactivate(session, "jefa", "ana")
    session.commit()
    assert [e["action"] for e in people.recent_audit(session)] == ["staff.deactivate"]


def test_two_admins_demoting_each_other_at_once_leave_one_admin(db_url):
    """Each sees the other as a remaining admin; without the lock both would win."""
    factory = session_factory(db_url)
    with factory() as s:
        add_user(s, "uno", PASSWORD, "admin")
        add_user(s, "dos", PASSWORD, "admin")
        s.commit()
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def demote(actor: str, target: str) -> None:
        with factory() as s:
            try:
                barrier.wait()
                people.update(s, actor, target, role="agent")
                time.sleep(0.3)  # hold the transaction open while the other one runs
                s.commit()
                results[actor] = "ok"
            except PeopleError as exc:
                results[actor] = exc.code
            except OperationalError:  # SQLite: the second writer is refused, never merged
                results[actor] = "busy"

    threads = [threading.Thread(target=demote, args=pair) for pair in
               (("uno", "dos"), ("dos", "uno"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and "ok" in results.values(), results
    with factory() as s:
        admins = s.execute(select(StaffUser.username).where(
            StaffUser.role == "admin", StaffUser.active.is_(True))).scalars().all()
    assert len(admins) == 1, (admins, results)


# --- HTTP: a fresh hub with one admin (TestClient) ------------------------------------------

def test_the_only_admin_gets_a_clear_message_over_http(settings):
    from bot.hub.app import create_app

    admin = make_staff(settings.database_url, role="admin")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        headers = {"Origin": "http://127.0.0.1"}
        assert client.post("/console/login", json={"username": admin, "password": PASSWORD},
                           headers=headers).status_code == 204
        headers["X-CSRF-Token"] = client.get("/console/api/me").json()["csrf_token"]
        for path, body in ((f"/console/api/staff/{admin}/deactivate", {}),
                           (f"/console/api/staff/{admin}/update", {"role": "agent"})):
            resp = client.post(path, json=body, headers=headers)
            assert resp.status_code == 409, resp.text
            assert resp.json()["error"] == "last_admin"
            assert "último administrador activo" in resp.json()["message"]
        assert client.get("/console/api/me").status_code == 200  # still in, still admin
        assert staff_row(settings.database_url, admin).role == "admin"


# --- HTTP: the real hub ---------------------------------------------------------------------

ACTIONS = ("update", "deactivate", "reactivate", "reset-password", "unlock")


@pytest.fixture
def clients(stack) -> Iterator:
    made: list[ConsoleClient] = []

    def _new(username: str | None = None, password: str = PASSWORD) -> ConsoleClient:
        client = ConsoleClient(stack.hub_url)
        made.append(client)
        if username:
            assert client.login(username, password).status_code == 204
        return client

    yield _new
    for client in made:
        client.close()


def test_agents_get_403_and_csrf_is_enforced(stack, clients):
    db = stack.settings.database_url
    agent_name, admin_name = make_staff(db), make_staff(db, role="admin")
    agent, admin = clients(agent_name), clients(admin_name)
    page = agent.http.get("/console/people")
    assert page.status_code == 403 and page.json()["error"] == "forbidden"
    assert agent.http.get("/console/api/staff").status_code == 403
    assert agent.http.get("/console/api/people/audit").status_code == 403
    assert agent.post("/console/api/staff", {"username": new_username()}).status_code == 403
    for action in ACTIONS:
        resp = agent.post(f"/console/api/staff/{agent_name}/{action}", {"role": "admin"})
        assert resp.status_code == 403, (action, resp.text)
    assert staff_row(db, agent_name).role == "agent"
    # an admin without the right CSRF header changes nothing either
    target = make_staff(db)
    for csrf in (None, "", "forged-" + "x" * 40, admin.csrf[:-1], agent.csrf):
        assert admin.post("/console/api/staff", {"username": new_username()},
                          csrf=csrf).status_code == 403
        for action in ACTIONS:
            resp = admin.post(f"/console/api/staff/{target}/{action}", {"team": "otro"},
                              csrf=csrf)
            assert resp.status_code == 403, (action, csrf, resp.text)
    row = staff_row(db, target)
    assert row.active and row.team == "postventa"
    # no session at all: 401 for the API, the login page for the page
    anon = clients()
    assert anon.http.get("/console/api/staff").status_code == 401
    assert anon.http.get("/console/people").status_code == 303
    # the admin's page, with the console's security headers
    page = admin.http.get("/console/people")
    assert page.status_code == 200 and "people.js" in page.text
    assert page.text.index("/console/static/console-api.js") < page.text.index("people.js")
    helper = admin.http.get("/console/static/console-api.js")
    assert helper.status_code == 200 and "javascript" in helper.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    js = admin.http.get("/console/static/people.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text and "insertAdjacentHTML" not in js.text


def test_an_admin_runs_the_whole_lifecycle_over_http(stack, clients):
    db = stack.settings.database_url
    admin_name = make_staff(db, role="admin")
    admin = clients(admin_name)
    name = new_username("nueva")

    added = admin.post("/console/api/staff", {"username": name.upper(), "role": "agent",
                                              "team": "Garantías"})
    assert added.status_code == 201, added.text
    body = added.json()
    password = body["password"]
    assert body["user"]["username"] == name and body["user"]["team"] == "garantías"
    assert body["user"]["last_login_at"] is None
    assert added.headers["cache-control"] == "no-store"
    dup = admin.post("/console/api/staff", {"username": name, "team": "x"})
    assert dup.status_code == 409 and name in dup.json()["message"]
    bad = admin.post("/console/api/staff", {"username": XSS})
    assert bad.status_code == 422 and "Usuario no válido" in bad.json()["message"]
    long_team = admin.post("/console/api/staff", {"username": new_username(), "team": "x" * 33})
    assert long_team.status_code == 422 and "equipo" in long_team.json()["message"]
    short = admin.post("/console/api/staff", {"username": new_username(), "password": "corta"})
    assert short.status_code == 422 and "10" in short.json()["message"]
    for action in ACTIONS:
        missing = admin.post(f"/console/api/staff/nadie-{uuid.uuid4().hex[:6]}/{action}",
                             {"team": "x"})
        assert missing.status_code == 404, (action, missing.text)
        assert missing.json()["error"] == "not_found" and "nadie" in missing.json()["message"]

    # the generated password is the agent's login; the list shows the login
    agent = clients(name, password)
    listed = {u["username"]: u for u in admin.http.get("/console/api/staff").json()}
    assert listed[name]["last_login_at"] and listed[name]["sessions"] == 1

    # deactivated: the agent's session and open event stream end at once
    started = time.monotonic()
    with agent.http.stream("GET", "/console/events", timeout=30) as stream:
        chunks = stream.iter_raw()
        assert b": connected" in next(chunks)
        off = admin.post(f"/console/api/staff/{name}/deactivate")
        assert off.status_code == 200 and off.json()["sessions_ended"] == 1
        assert agent.http.get("/console/api/me").status_code == 401
        rest = b"".join(chunks)
    assert b'"type": "logout"' in rest and time.monotonic() - started < 20
    assert ConsoleClient(stack.hub_url).login(name, password).status_code == 401
    assert admin.post(f"/console/api/staff/{name}/reactivate").json()["user"]["active"]

    # reset: the old password stops working, the new one works, their sessions end
    agent = clients(name, password)
    reset = admin.post(f"/console/api/staff/{name}/reset-password")
    assert reset.status_code == 200 and reset.json()["sessions_ended"] == 1
    new_password = reset.json()["password"]
    assert new_password != password
    assert agent.http.get("/console/api/me").status_code == 401
    assert clients().login(name, password).status_code == 401
    # (that failed attempt is counted; four more lock the account)
    probe = clients()
    for _ in range(4):
        assert probe.login(name, "not-the-password").status_code == 401
    assert {u["username"]: u for u in admin.http.get("/console/api/staff").json()}[name][
        "locked"] is True
    assert probe.login(name, new_password).status_code == 401
    assert admin.post(f"/console/api/staff/{name}/unlock").status_code == 204
    assert probe.login(name, new_password).status_code == 204

    # role and team change
    changed = admin.post(f"/console/api/staff/{name}/update", {"role": "admin", "team": "Ventas"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["user"]["role"], changed.json()["user"]["team"]) == ("admin", "ventas")
    assert probe.http.get("/console/api/me").status_code == 401  # logged out to pick it up
    bad_team = admin.post(f"/console/api/staff/{name}/update", {"team": ""})
    assert bad_team.status_code == 422

    log = admin.http.get("/console/api/people/audit", params={"limit": 100}).json()
    mine = [(e["action"], e["subject"]) for e in log if e["actor"] == admin_name]
    assert [a for a, _ in reversed(mine)] == [
        "staff.add", "staff.deactivate", "staff.reactivate", "staff.reset_password",
        "staff.unlock", "staff.update"]
    assert {s for _, s in mine} == {f"staff:{name}"}
    assert password not in str(log) and new_password not in str(log)
    assert all(e["action"].startswith("staff.") for e in log)


# --- the page in a real Chromium --------------------------------------------------------------

class Console:
    """One person's browser context on the console."""

    def __init__(self, chromium: Browser, stack, label: str) -> None:
        self.label = label
        self.context = chromium.new_context(base_url=stack.hub_url, locale="es-ES",
                                           viewport={"width": 1440, "height": 1000})
        self.context.set_default_timeout(UI)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(msg.text)
                     if msg.type == "error" and not msg.text.startswith(
                         "Failed to load resource: the server responded") else None)
        self.page.on("dialog", lambda dialog: dialog.accept())

    def login(self, username: str, password: str) -> Console:
        self.page.goto("/console/login")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("#login-submit")
        expect(self.page).to_have_url(re.compile(r"/console$"))
        expect(self.page.locator("body")).to_have_attribute("data-live", "1")
        return self

    def row(self, username: str):
        return self.page.locator(f'#staff tr[data-username="{username}"]')

    def shot(self, name: str) -> None:
        shot(self.page, name)


@pytest.fixture
def consoles(browser, stack, request) -> Iterator:  # noqa: F811 - the imported fixture
    made: list[Console] = []

    def _new() -> Console:
        console = Console(browser, stack, f"{request.node.name}-{len(made)}")
        made.append(console)
        return console

    yield _new
    for console in made:
        try:
            console.shot(f"last-people-{console.label}")
        finally:
            console.context.close()
    for console in made:
        assert not console.errors, console.errors


def test_people_page_in_chromium(consoles, stack):
    db = stack.settings.database_url
    admin_name = make_staff(db, role="admin")
    admin = consoles().login(admin_name, PASSWORD)
    page = admin.page
    link = page.locator("#people-link")
    expect(link).to_be_visible()
    link.click()
    expect(page).to_have_url(re.compile(r"/console/people$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(admin.row(admin_name)).to_contain_text("(tú)")

    # add an agent: the generated password is shown once
    name = new_username("chromium")
    page.fill("#add-username", name)
    page.select_option("#add-role", "agent")
    page.fill("#add-team", TEAM_XSS)  # a team with markup is stored and shown as text
    page.click("#add-submit")
    expect(page.locator("#secret-box")).to_be_visible()
    expect(page.locator("#secret-user")).to_have_text(name)
    password = page.locator("#secret").input_value()
    assert len(password) >= 20
    expect(admin.row(name).locator(".f-team")).to_have_value(TEAM_XSS.lower())
    expect(page.locator("#audit tbody tr").first).to_contain_text("Alta")
    admin.shot("people-added-agent")
    page.click("#secret-done")
    expect(page.locator("#secret-box")).to_be_hidden()
    assert page.locator("#secret").input_value() == ""

    # a username with markup is refused, and the message is text
    page.fill("#add-username", XSS)
    page.click("#add-submit")
    expect(page.locator("#msg")).to_contain_text("Usuario no válido")
    assert page.locator("#staff img, #audit img, #msg img").count() == 0
    assert page.evaluate("window.__pwned") is None

    # back to a normal team, then the agent logs in with the generated password (first let
    # the list refresh that follows the refused add finish: it re-renders the rows)
    page.wait_for_load_state("networkidle")
    expect(admin.row(name).locator(".f-team")).to_have_value(TEAM_XSS.lower())
    admin.row(name).locator(".f-team").fill("postventa")
    expect(admin.row(name).locator(".f-team")).to_have_value("postventa")
    admin.row(name).locator(".act-save").click()
    expect(page.locator("#msg")).to_contain_text("Guardado")
    agent = consoles().login(name, password)
    expect(agent.page.locator("#people-link")).to_be_hidden()
    denied = agent.page.request.get(f"{stack.hub_url}/console/people")
    assert denied.status == 403
    api = agent.page.request.get(f"{stack.hub_url}/console/api/staff")
    assert api.status == 403
    agent.page.goto("/console")
    expect(agent.page.locator("body")).to_have_attribute("data-live", "1")

    # deactivate: the agent's open console goes to the login page by itself. Meanwhile the
    # admin is half-way through changing their own row (not saved): the list refresh after
    # the action on the agent's row keeps that row's typed team, chosen role and focus
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    own_role = admin.row(admin_name).locator(".f-role")
    own_team = admin.row(admin_name).locator(".f-team")
    own_role.select_option("agent")
    own_team.fill("equipo a medio escribir")
    # only the click event, so that the focus stays in the field being typed in
    admin.row(name).locator(".act-deactivate").dispatch_event("click")
    expect(page.locator("#msg")).to_contain_text("desactivado")
    expect(admin.row(name).locator(".state")).to_contain_text("Desactivado")
    expect(admin.row(name).locator(".act-reactivate")).to_have_count(1)
    expect(own_team).to_have_value("equipo a medio escribir")
    expect(own_team).to_be_focused()
    expect(own_role).to_have_value("agent")
    expect(agent.page).to_have_url(re.compile(r"/console/login$"), timeout=15_000)
    admin.shot("people-deactivated")

    # reactivate (the admin's unsaved edit survives that refresh too, and nothing of it was
    # saved) and reset the password: a new one, shown once, logs in
    admin.row(name).locator(".act-reactivate").click()
    expect(admin.row(name).locator(".state")).to_contain_text("Activo")
    expect(own_team).to_have_value("equipo a medio escribir")
    expect(own_role).to_have_value("agent")
    assert (staff_row(db, admin_name).role, staff_row(db, admin_name).team) == (
        "admin", "postventa")
    admin.row(name).locator(".act-reset").click()
    expect(page.locator("#secret-box")).to_be_visible()
    new_password = page.locator("#secret").input_value()
    assert new_password and new_password != password
    admin.shot("people-password-reset")

    # five wrong passwords lock the agent; the admin unlocks
    probe = ConsoleClient(stack.hub_url)
    try:
        for _ in range(5):
            assert probe.login(name, "not-the-password").status_code == 401
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        expect(admin.row(name).locator(".state")).to_contain_text("Bloqueado")
        admin.row(name).locator(".act-unlock").click()
        expect(page.locator("#msg")).to_contain_text("desbloqueado")
        expect(admin.row(name).locator(".act-unlock")).to_have_count(0)
    finally:
        probe.close()
    agent.login(name, new_password)

    audit_text = page.locator("#audit").inner_text()
    for label in ("Alta", "Desactivación", "Reactivación", "Contraseña nueva", "Desbloqueo",
                  "Cambio de rol/equipo"):
        assert label in audit_text, label
    assert password not in audit_text and new_password not in audit_text
    admin.shot("people-page")
    assert page.evaluate("window.__pwned") is None
