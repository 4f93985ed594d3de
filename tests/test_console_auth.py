"""The agents' console: logins, sessions, roles, CSRF and security headers.

Service-level tests run on SQLite and PostgreSQL (``session`` fixture); route tests run
against the real hub of the ``stack`` (HTTP, real cookies), plus a TestClient served over
``https://`` for the Secure cookie flag.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.core.config import ROOT
from bot.db.migrate import upgrade
from bot.db.models import StaffSession, StaffUser, utcnow
from bot.db.session import session_factory, session_scope
from bot.services import staff_sessions
from bot.services.users import add_user
from tests.conftest import free_port, run_cli

PASSWORD = "correct-horse-battery-staple"
GENERIC = "Usuario o contraseña incorrectos."


# --- helpers (also used by tests/test_console_browser.py) --------------------------------------

def new_username(prefix: str = "agent") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_staff(database_url: str, role: str = "agent", team: str = "postventa",
               username: str | None = None, password: str = PASSWORD) -> str:
    """A staff user in that database; returns the username."""
    username = username or new_username(role)
    with session_scope(database_url) as s:
        user = add_user(s, username, password, role)
        user.team = team
    return username


def staff_row(database_url: str, username: str) -> StaffUser:
    with session_factory(database_url)() as s:
        return s.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one()


class ConsoleClient:
    """A browser-like HTTP client of the console: same-origin headers, cookie jar."""

    def __init__(self, base_url: str, **kwargs) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False,
                                 headers={"Origin": base_url}, **kwargs)
        self.csrf: str | None = None

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        resp = self.http.post("/console/login", json={"username": username,
                                                      "password": password})
        if resp.status_code == 204:
            me = self.http.get("/console/api/me")
            assert me.status_code == 200, me.text
            self.csrf = me.json()["csrf_token"]
        return resp

    @property
    def cookie(self) -> str | None:
        return self.http.cookies.get("pv_console")

    def post(self, path: str, json: dict | None = None, csrf: str | None = "session",
             **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if csrf == "session":
            csrf = self.csrf
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self.http.post(path, json=json if json is not None else {}, headers=headers,
                              **kwargs)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def console(stack):
    clients: list[ConsoleClient] = []

    def _new() -> ConsoleClient:
        client = ConsoleClient(stack.hub_url)
        clients.append(client)
        return client

    yield _new
    for client in clients:
        client.close()


def database_url(stack) -> str:
    return stack.settings.database_url


API_GETS = ["/console/api/me", "/console/api/queue", "/console/api/conversations/1",
            "/console/api/staff", "/console/events"]
API_POSTS = [f"/console/api/conversations/1/{action}" for action in
             ("claim", "reply", "note", "status", "resolution", "transfer", "close")]
API_POSTS += ["/console/logout", "/console/api/staff/admin/unlock"]


# --- service level: SQLite and PostgreSQL -------------------------------------------------------

def test_passwords_are_argon2_and_session_tokens_are_not_stored(session):
    user = add_user(session, "ana", PASSWORD, "agent")
    assert user.password_hash.startswith("$argon2")
    assert PASSWORD not in user.password_hash
    assert user.team == "postventa"

    token, login = staff_sessions.create(session, user)
    session.commit()
    assert len(token) >= 40
    row = session.get(StaffSession, hashlib.sha256(token.encode()).hexdigest())
    assert row is not None and row.user_id == user.id
    stored = [row.token_hash, row.csrf_token]
    assert all(token not in value for value in stored)
    assert row.csrf_token == login.csrf_token and len(row.csrf_token) >= 40
    assert row.expires_at - row.created_at == timedelta(hours=8)

    found = staff_sessions.lookup(session, token)
    assert found is not None and found.user.username == "ana"
    assert staff_sessions.lookup(session, row.token_hash) is None  # the hash is no key
    assert staff_sessions.lookup(session, token + "x") is None
    assert staff_sessions.lookup(session, "") is None


def test_sessions_expire_when_idle_and_absolutely(session):
    user = add_user(session, "ana", PASSWORD, "agent")
    start = utcnow()
    token, _ = staff_sessions.create(session, user, now=start)
    # active every 50 minutes: alive until the absolute 8 hours
    t = start
    for _ in range(9):
        t += timedelta(minutes=50)
        assert staff_sessions.lookup(session, token, now=t) is not None, t - start
    t = start + timedelta(hours=8, minutes=1)
    assert staff_sessions.lookup(session, token, now=t) is None
    assert session.get(StaffSession, staff_sessions.token_hash(token)) is None  # deleted

    # idle for more than an hour
    token, _ = staff_sessions.create(session, user, now=start)
    assert staff_sessions.lookup(session, token, now=start + timedelta(minutes=59)) is not None
    assert staff_sessions.lookup(session, token,
                                 now=start + timedelta(minutes=59 + 61)) is None
    # a lookup without touching does not keep the session alive
    token, _ = staff_sessions.create(session, user, now=start)
    assert staff_sessions.lookup(session, token, now=start + timedelta(minutes=40),
                                 touch=False) is not None
    assert staff_sessions.lookup(session, token, now=start + timedelta(minutes=61)) is None


def test_logout_inactive_user_and_all_sessions(session):
    ana = add_user(session, "ana", PASSWORD, "agent")
    luis = add_user(session, "luis", PASSWORD, "admin")
    t1, _ = staff_sessions.create(session, ana)
    t2, _ = staff_sessions.create(session, ana)
    t3, _ = staff_sessions.create(session, luis)
    session.commit()
    assert staff_sessions.delete_session(session, t1) is True
    assert staff_sessions.lookup(session, t1) is None
    assert staff_sessions.lookup(session, t2) is not None
    ana.active = False
    session.flush()
    assert staff_sessions.lookup(session, t2) is None  # deactivated: out at once
    ana.active = True
    t4, _ = staff_sessions.create(session, ana)
    assert staff_sessions.delete_user_sessions(session, ana.id) == 1
    assert staff_sessions.lookup(session, t4) is None
    assert staff_sessions.lookup(session, t3) is not None  # other users untouched


def test_lockout_after_five_failures_and_progressive(session, monkeypatch):
    user = add_user(session, "ana", PASSWORD, "agent")
    burned: list[str] = []
    real_burn = staff_sessions._burn_verification
    monkeypatch.setattr(staff_sessions, "_burn_verification",
                        lambda pw: (burned.append(pw), real_burn(pw)))
    now = utcnow()
    for i in range(4):
        assert staff_sessions.authenticate(session, "ana", "wrong", now=now) is None
        assert user.failed_logins == i + 1 and user.locked_until is None
    assert staff_sessions.authenticate(session, "ANA ", PASSWORD, now=now) is user  # reset
    assert user.failed_logins == 0

    for _ in range(5):
        assert staff_sessions.authenticate(session, "ana", "wrong", now=now) is None
    assert user.failed_logins == 5
    assert user.locked_until == now + timedelta(minutes=15)
    # locked: the right password fails like a wrong one, and costs the same verification
    assert staff_sessions.authenticate(session, "ana", PASSWORD,
                                       now=now + timedelta(minutes=14)) is None
    assert burned == [PASSWORD]
    assert user.failed_logins == 5  # attempts during the lock do not extend it

    # the lock ends; five more failures lock for longer
    later = now + timedelta(minutes=16)
    for _ in range(5):
        assert staff_sessions.authenticate(session, "ana", "wrong", now=later) is None
    assert user.locked_until == later + timedelta(minutes=30)
    assert staff_sessions.lock_duration(15) == timedelta(hours=1)
    assert staff_sessions.lock_duration(10_000) == timedelta(hours=24)
    assert staff_sessions.lock_duration(4) is None

    # unknown and inactive users: no answer of their own, same argon2 cost
    burned.clear()
    assert staff_sessions.authenticate(session, "nobody", PASSWORD) is None
    luis = add_user(session, "luis", PASSWORD, "agent")
    luis.active = False
    assert staff_sessions.authenticate(session, "luis", PASSWORD) is None
    assert burned == [PASSWORD, PASSWORD]

    staff_sessions.unlock(session, user)
    assert staff_sessions.authenticate(session, "ana", PASSWORD, now=later) is user
    session.commit()
    stored = session.execute(select(StaffUser).where(StaffUser.username == "ana")).scalar_one()
    assert stored.failed_logins == 0 and stored.locked_until is None


# --- HTTP, against the real hub ----------------------------------------------------------------

def test_without_a_session_pages_redirect_and_api_answers_401(stack, console):
    c = console()
    page = c.http.get("/console")
    assert page.status_code == 303 and page.headers["location"] == "/console/login"
    login = c.http.get("/console/login")
    assert login.status_code == 200 and 'id="login-form"' in login.text
    for path in API_GETS:
        resp = c.http.get(path)
        assert resp.status_code == 401, (path, resp.status_code, resp.text)
        assert resp.json()["error"] == "unauthenticated", path
    for path in API_POSTS:  # no session: 401 before anything else, CSRF header or not
        resp = c.post(path, {"text": "x"}, csrf="whatever")
        assert resp.status_code == 401, (path, resp.status_code, resp.text)
    # a made-up or stale cookie is no session either
    c.http.cookies.set("pv_console", "x" * 43)
    assert c.http.get("/console/api/me").status_code == 401
    assert c.http.get("/console").status_code == 303


def test_login_cookie_flags_pages_and_security_headers(stack, console):
    username = make_staff(database_url(stack), team="devoluciones")
    c = console()
    resp = c.login(username)
    assert resp.status_code == 204, resp.text
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("pv_console=")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/console"
    assert "secure" not in flags  # plain http here (see the https test)
    assert int(flags["max-age"].split("=")[1]) == 8 * 3600

    me = c.http.get("/console/api/me").json()
    assert me["username"] == username and me["role"] == "agent"
    assert me["team"] == "devoluciones" and len(me["csrf_token"]) >= 40

    # the token in the cookie is not what the database keeps
    token = c.cookie
    with session_factory(database_url(stack))() as s:
        hashes = s.execute(select(StaffSession.token_hash)).scalars().all()
        users = s.execute(select(StaffUser.password_hash)).scalars().all()
    assert token not in hashes and hashlib.sha256(token.encode()).hexdigest() in hashes
    assert all(h.startswith("$argon2") for h in users)

    for path in ("/console", "/console/login"):
        page = c.http.get(path, follow_redirects=True)
        assert page.status_code == 200, path
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["content-type"].startswith("text/html")
        # no inline script: every <script> has a src under /console/static
        scripts = re.findall(r"<script\b[^>]*>", page.text)
        assert scripts and all('src="/console/static/' in tag for tag in scripts), scripts
        assert not re.search(r"\son\w+=", page.text), "inline event handler"
    assert c.http.get("/console").url.path == "/console"  # logged in: no redirect
    js = c.http.get("/console/static/console.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text and "insertAdjacentHTML" not in js.text
    assert c.http.get("/console/static/../routes.py").status_code == 404
    assert c.http.get("/console/static/nope.js").status_code == 404
    api = c.http.get("/console/api/me")
    assert api.headers["cache-control"] == "no-store"


def test_pages_load_the_shared_api_helper_before_their_own_script():
    """The console pages call the hub through one helper (static/console-api.js: fetch, CSRF
    header, errors): each page that uses it loads it first (same origin, so the CSP's
    ``script-src 'self'`` allows it), and no page script keeps a copy of its own."""
    static = ROOT / "bot" / "hub" / "console" / "static"
    from bot.hub.console.routes import _STATIC_FILES

    assert _STATIC_FILES["console-api.js"].startswith("text/javascript")
    helper = (static / "console-api.js").read_text()
    assert "X-CSRF-Token" in helper and "innerHTML" not in helper
    users = set()
    for html in sorted(static.glob("*.html")):
        scripts = re.findall(r'<script src="/console/static/([^"]+)"', html.read_text())
        for i, name in enumerate(scripts):
            code = (static / name).read_text()
            if "ConsoleApi." in code and name != "console-api.js":
                users.add(name)
                assert "console-api.js" in scripts[:i], (html.name, scripts)
                assert "fetch(" not in code and "X-CSRF-Token" not in code, name
    assert users == {"dashboard.js", "kb.js", "learn.js", "people.js", "privacy.js"}

def test_secure_cookie_over_https(settings):
    from bot.hub.app import create_app

    username = make_staff(settings.database_url)
    # a name (not an IP address or localhost) must be a configured public origin
    settings = replace(settings, public_origins="https://console.example")
    with TestClient(create_app(settings), base_url="https://console.example") as client:
        resp = client.post("/console/login", json={"username": username, "password": PASSWORD},
                           headers={"Origin": "https://console.example"})
        assert resp.status_code == 204, resp.text
        cookie = resp.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        # a lookalike origin is refused
        resp = client.post("/console/login", json={"username": username, "password": PASSWORD},
                           headers={"Origin": "https://console.example.evil.test"})
        assert resp.status_code == 403


def test_login_from_another_origin_is_refused(stack, console):
    username = make_staff(database_url(stack))
    body = {"username": username, "password": PASSWORD}
    c = console()
    for headers in ({"Origin": "http://evil.example"},
                    {"Origin": "null"},
                    {"Origin": f"https://evil.example/{stack.hub_url}"}):
        resp = c.http.post("/console/login", json=body, headers=headers)
        assert resp.status_code == 403, headers
        assert resp.json()["error"] == "forbidden"
        assert "set-cookie" not in resp.headers
    bare = httpx.post(f"{stack.hub_url}/console/login", json=body)  # neither Origin nor Referer
    assert bare.status_code == 403
    referer = httpx.post(f"{stack.hub_url}/console/login", json=body,
                         headers={"Referer": "http://evil.example/console/login"})
    assert referer.status_code == 403
    # same origin by Referer only (a browser that sends no Origin): fine
    ok = httpx.post(f"{stack.hub_url}/console/login", json=body,
                    headers={"Referer": f"{stack.hub_url}/console/login"})
    assert ok.status_code == 204
    assert staff_row(database_url(stack), username).failed_logins == 0


def test_form_login_without_javascript(stack, console):
    username = make_staff(database_url(stack))
    c = console()
    bad = c.http.post("/console/login", content=f"username={username}&password=nope",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 303 and bad.headers["location"] == "/console/login?error=1"
    assert c.cookie is None
    good = c.http.post("/console/login",
                       content=f"username={username}&password={PASSWORD}".encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert good.status_code == 303 and good.headers["location"] == "/console"
    assert c.http.get("/console").status_code == 200
    weird = c.http.post("/console/login", content=b"x", headers={"Content-Type": "text/plain"})
    assert weird.status_code == 415
    huge = c.http.post("/console/login", json={"username": "a" * 10_000, "password": "b"})
    assert huge.status_code == 413


def test_agent_is_forbidden_admin_only_endpoints(stack, console):
    db = database_url(stack)
    agent_name, admin_name = make_staff(db), make_staff(db, role="admin")
    agent, admin = console(), console()
    assert agent.login(agent_name).status_code == 204
    assert admin.login(admin_name).status_code == 204

    assert agent.http.get("/console/api/staff").status_code == 403
    assert agent.http.get("/console/api/staff").json()["error"] == "forbidden"
    assert agent.post(f"/console/api/staff/{agent_name}/unlock").status_code == 403
    staff = admin.http.get("/console/api/staff")
    assert staff.status_code == 200
    listed = {u["username"]: u for u in staff.json()}
    assert listed[agent_name]["role"] == "agent" and listed[agent_name]["team"] == "postventa"
    assert "password_hash" not in listed[agent_name]
    assert admin.post(f"/console/api/staff/{agent_name}/unlock").status_code == 204
    assert admin.post("/console/api/staff/nobody-at-all/unlock").status_code == 404
    # admin satisfies agent: the inbox page and the agent API
    assert admin.http.get("/console").status_code == 200
    assert agent.http.get("/console").status_code == 200


def test_csrf_header_is_required_for_every_state_change(stack, console):
    username = make_staff(database_url(stack))
    c = console()
    assert c.login(username).status_code == 204
    for path in API_POSTS:
        for csrf in (None, "", "forged-" + "x" * 40, c.csrf[:-1]):
            resp = c.post(path, {"text": "hola", "status": "open", "username": "x"}, csrf=csrf)
            assert resp.status_code == 403, (path, csrf, resp.status_code, resp.text)
            assert resp.json()["error"] == "forbidden"
    # another session's token is no good either
    other = console()
    assert other.login(username).status_code == 204
    assert other.csrf != c.csrf
    assert c.post("/console/logout", csrf=other.csrf).status_code == 403
    assert c.http.get("/console/api/me").status_code == 200  # still logged in
    # with the right header the request goes through (past auth: the hub decides)
    resp = c.post("/console/api/conversations/999999999/claim")
    assert resp.status_code == 404, resp.text
    assert resp.json() == {"error": "not_found", "message": "La conversación no existe."}
    assert c.post("/console/logout").status_code == 204


def test_logout_invalidates_the_session_on_the_server(stack, console):
    username = make_staff(database_url(stack))
    c = console()
    assert c.login(username).status_code == 204
    token = c.cookie
    resp = c.post("/console/logout")
    assert resp.status_code == 204
    assert 'pv_console=""' in resp.headers["set-cookie"] or "max-age=0" in \
        resp.headers["set-cookie"].lower()
    # the old cookie, replayed by somebody who copied it, is dead
    replay = httpx.Client(base_url=stack.hub_url, cookies={"pv_console": token},
                          headers={"Origin": stack.hub_url})
    try:
        assert replay.get("/console/api/me").status_code == 401
        assert replay.get("/console", follow_redirects=False).status_code == 303
        assert replay.get("/console/events").status_code == 401
    finally:
        replay.close()
    with session_factory(database_url(stack))() as s:
        assert s.get(StaffSession, staff_sessions.token_hash(token)) is None


def test_wrong_password_five_times_locks_with_the_same_answer(stack, console):
    db = database_url(stack)
    username = make_staff(db)
    c = console()
    answers = []
    for _ in range(5):
        resp = c.login(username, "not-the-password")
        answers.append((resp.status_code, resp.json()))
    assert answers == [(401, {"error": "invalid_credentials", "message": GENERIC})] * 5
    locked = c.login(username)  # the right password now
    assert (locked.status_code, locked.json()) == answers[0]
    assert "set-cookie" not in locked.headers
    unknown = c.login("nobody-" + uuid.uuid4().hex[:6])
    assert (unknown.status_code, unknown.json()) == answers[0]
    row = staff_row(db, username)
    assert row.failed_logins == 5 and row.locked_until > utcnow() + timedelta(minutes=14)

    # an admin lifts the lock
    admin = console()
    assert admin.login(make_staff(db, role="admin")).status_code == 204
    assert {u["username"]: u for u in admin.http.get("/console/api/staff").json()}[
        username]["locked"] is True
    assert admin.post(f"/console/api/staff/{username}/unlock").status_code == 204
    assert c.login(username).status_code == 204


def test_event_stream_needs_a_session_and_ends_at_logout(stack, console):
    username = make_staff(database_url(stack))
    c = console()
    assert c.login(username).status_code == 204
    started = time.monotonic()
    with c.http.stream("GET", "/console/events", timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        chunks = stream.iter_raw()
        first = next(chunks)
        assert b": connected" in first
        # logging out elsewhere ends the stream (within a few seconds)
        other = ConsoleClient(stack.hub_url)
        other.http.cookies.set("pv_console", c.cookie)
        assert other.post("/console/logout", csrf=c.csrf).status_code == 204
        other.close()
        rest = b"".join(chunks)
    assert b'"type": "logout"' in rest
    assert time.monotonic() - started < 20


def test_cli_adds_users_with_a_team(stack):
    username = new_username("cli")
    result = run_cli("users", "add", username, "--role", "agent", "--team", "Devoluciones",
                     env={**os.environ, "DATABASE_URL": database_url(stack),
                          "NEW_USER_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    row = staff_row(database_url(stack), username)
    assert row.team == "devoluciones" and row.role == "agent"
    assert row.password_hash.startswith("$argon2")
    default = new_username("cli")
    result = run_cli("users", "add", default, "--role", "admin",
                     env={**os.environ, "DATABASE_URL": database_url(stack),
                          "NEW_USER_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert staff_row(database_url(stack), default).team == "postventa"


def test_an_open_event_stream_does_not_hold_up_hub_shutdown(tmp_path):
    """Uvicorn waits for open responses before it stops, and an event stream never ends by
    itself: the stream must notice the shutdown (SIGTERM) and end, so the hub exits."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    username = make_staff(url)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "HUB_PORT": str(port), "RASA_TOKEN": "x",
           "RASA_URL": "http://127.0.0.1:9", "TELEGRAM_BOT_TOKEN": ""}
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "hub.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = ConsoleClient(base)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.http.get("/console/login").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "hub.log").read_text()[-3000:]
            time.sleep(0.3)
        assert client.login(username).status_code == 204
        with client.http.stream("GET", "/console/events", timeout=30) as stream:
            chunks = stream.iter_raw()
            assert b": connected" in next(chunks)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(httpx.TransportError):
                for _ in chunks:  # heartbeats would keep a stream that ignores SIGTERM open
                    assert time.monotonic() - started < 20, "the stream outlived SIGTERM"
        proc.wait(timeout=15)
        assert time.monotonic() - started < 10
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
