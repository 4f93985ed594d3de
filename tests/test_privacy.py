"""Customers' data rights (issue 15): export and erase of one person end to end on the running
stack (a typed warranty claim with a photo, through the real hub, Rasa and action server; the
CLI as an operator runs it), the same from the console as an admin (with the audit log), what
agents may open, and automatic retention run by a real hub process.

Bad inputs handled: an identifier that is no email/phone/Telegram id, a person we hold nothing
about, an erase without confirmation (CLI without a terminal, console without BORRAR), an
agent calling the admin endpoints, an agent opening a conversation that was never handed over,
the same customer writing again after being erased."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import MetaData, select

from bot.db.migrate import upgrade
from bot.db.models import (
    Attachment,
    AuditEntry,
    Case,
    Conversation,
    Customer,
    Message,
    Order,
    OrderLine,
    Product,
    SenderAlias,
    SurveyResponse,
    utcnow,
)
from bot.db.session import engine_for, session_scope
from bot.services import privacy
from tests.conftest import Chat, run_cli
from tests.hub_process import run_hub
from tests.test_console_auth import ConsoleClient, make_staff
from tests.test_typed_flows import CASE_RE, texts

WORDS = "suena como un trombón desafinado"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def new_person(database_url: str) -> dict[str, str]:
    """A customer nobody else uses (unique name, email, phone) with one delivered order."""
    tag = uuid.uuid4().hex[:8]
    person = {"name": f"Rosalía Quintanilla {tag}", "email": f"rosalia.{tag}@example.org",
              "phone": f"+34 611 {int(tag[:6], 16) % 1000:03d} {int(tag[2:], 16) % 1000:03d}",
              "number": f"PED-{600000 + int(tag[:5], 16) % 99999:06d}"}
    with session_scope(database_url) as s:
        customer = Customer(name=person["name"], email=person["email"], phone=person["phone"],
                            language="es")
        order = Order(number=person["number"], customer=customer,
                      ordered_at=date.today() - timedelta(days=20),
                      delivered_at=date.today() - timedelta(days=15))
        product = s.execute(select(Product).where(Product.sku == "LAV-8KG")).scalar_one()
        s.add_all([customer, order, OrderLine(order=order, line_no=1, product=product,
                                              quantity=1, unit_price_cents=45000)])
    return person


def claim_with_photo(stack, person: dict[str, str]) -> tuple[Chat, str]:
    """A typed warranty claim with a photo; returns the chat and the case number."""
    chat = Chat(stack.hub_url, locale="es-ES")
    r = chat.say("hola, quiero usar la garantía de mi lavadora")
    assert "ped-" in texts(r), texts(r)
    r = chat.say(f"es el {person['number']}")
    assert "correo" in texts(r) or "email" in texts(r), texts(r)
    r = chat.say(person["email"])
    if "qué le pasa" not in texts(r):  # one product in the order: no product question
        r = chat.say("la lavadora")
    assert "qué le pasa" in texts(r), texts(r)
    r = chat.say(f"hace un ruido rarísimo al centrifugar, {WORDS}")
    assert "desde cuándo" in texts(r), texts(r)
    r = chat.say("desde hace una semana")
    assert "foto" in texts(r), texts(r)
    up = httpx.post(f"{stack.hub_url}/api/uploads", params={"sender": chat.sender},
                    content=png_bytes(), headers={"content-type": "image/png"}, timeout=30)
    assert up.status_code == 200, up.text
    r = up.json()["messages"]
    if "resumen" not in texts(r):
        r = chat.say("que la reparen")
    assert "resumen" in texts(r), texts(r)
    r = chat.say("sí, todo correcto")
    match = CASE_RE.search(Chat.texts(r))
    assert match, Chat.texts(r)
    return chat, match.group(0)


def dump(url: str) -> str:
    """Every row of every table of a database, as one text to search in."""
    engine = engine_for(url)
    meta = MetaData()
    meta.reflect(engine)
    parts: list[str] = []
    with engine.connect() as conn:
        for table in meta.tables.values():
            for row in conn.execute(table.select()):
                parts.append(table.name + " " + " | ".join(_readable(v) for v in row))
    return "\n".join(parts)


def _readable(value: object) -> str:
    """JSON columns as the words they hold (Rasa stores "trombón" as "tromb\\u00f3n")."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), ensure_ascii=False)
        except ValueError:
            pass
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(
        value, (dict, list)) else str(value)


def traces(person: dict[str, str], sender: str) -> list[str]:
    digits = "".join(ch for ch in person["phone"] if ch.isdigit())
    return [person["name"], person["name"].split()[1], person["email"], person["phone"],
            digits, digits[2:], WORDS, "trombón", sender]


def cli_env(stack) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": stack.settings.database_url,
            "RASA_TRACKER_URL": stack.settings.rasa_tracker_url}


# --- end to end: CLI ---------------------------------------------------------------------------

def test_export_then_erase_a_customer_everywhere(stack, tmp_path):
    person = new_person(stack.settings.database_url)
    chat, number = claim_with_photo(stack, person)
    with session_scope(stack.settings.database_url) as s:
        photo = s.execute(select(Attachment).join(Case, Case.id == Attachment.case_id)
                          .where(Case.number == number)).scalar_one()
        photo_file = privacy.upload_dir(stack.settings) / f"{photo.id}.png"
    assert photo_file.read_bytes() == png_bytes()
    assert person["email"] in dump(stack.settings.database_url)
    assert WORDS in dump(stack.settings.rasa_tracker_url)  # Rasa keeps the words too

    # export, by phone written differently from how it is stored
    out = tmp_path / "export.zip"
    local_phone = person["phone"].replace("+34", "").replace(" ", "")
    done = run_cli("privacy", "export", local_phone, "--out", str(out), env=cli_env(stack))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(out) as archive:
        data = json.loads(archive.read("data.json"))
        assert archive.read(f"uploads/{photo.id}.png") == png_bytes()
    assert data["customers"][0]["email"] == person["email"]
    assert data["customers"][0]["orders"][0]["number"] == person["number"]
    said = [m["text"] for c in data["conversations"] for m in c["messages"]
            if m["author"] == "customer"]
    assert any(WORDS in t for t in said) and person["email"] in said
    assert [c["number"] for c in data["cases"]] == [number]
    assert WORDS in data["cases"][0]["description"]
    tracked = json.dumps(data["tracker_events"], ensure_ascii=False)
    assert chat.sender in data["tracker_events"] and WORDS in tracked

    # erase (no terminal: refused without --yes; then for real)
    refused = run_cli("privacy", "erase", person["email"], env=cli_env(stack))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert person["email"] in dump(stack.settings.database_url)
    done = run_cli("privacy", "erase", person["email"].upper(), "--yes", env=cli_env(stack))
    assert done.returncode == 0, done.stderr

    everything = dump(stack.settings.database_url) + dump(stack.settings.rasa_tracker_url)
    for trace in traces(person, chat.sender):
        assert trace not in everything, trace
    assert not photo_file.exists()
    logs = "".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    for trace in traces(person, chat.sender)[:-1]:  # the logs never held them at all
        assert trace not in logs, trace
    # the anonymous facts stay: the warranty case of that product, the conversation's times
    with session_scope(stack.settings.database_url) as s:
        case = s.execute(select(Case).where(Case.number == number)).scalar_one()
        assert case.type == "warranty" and case.category == "noise"
        assert case.order_line_id is not None and case.description is None
        assert case.details["product"].startswith("Lavadora")
        conv = s.get(Conversation, case.conversation_id)
        assert conv.transcript_erased_at is not None and conv.started_at is not None
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "privacy.erase")
                          .order_by(AuditEntry.id.desc())).scalars().first()
        assert entry.subject == privacy.audit.subject_hash(person["email"])
        assert entry.details["conversations"] >= 1 and entry.details["attachments"] == 1
    # nothing is found any more, and the same customer writing again is simply a new chat
    again = run_cli("privacy", "export", person["email"], "--out", str(tmp_path / "x.zip"),
                    env=cli_env(stack))
    assert again.returncode == 1 and "nothing held" in again.stderr
    r = chat.say("hola")
    assert r and "trombón" not in texts(r)


def test_bad_identifiers_get_a_clear_message(stack, tmp_path):
    env = cli_env(stack)
    for bad in ("", "not an id", "a@b", "12"):
        done = run_cli("privacy", "export", bad, "--out", str(tmp_path / "x.zip"), env=env)
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "error:" in done.stderr
    nobody = run_cli("privacy", "erase", "nobody-here@example.org", "--yes", env=env)
    assert nobody.returncode == 1 and "nothing held" in nobody.stderr


# --- console -------------------------------------------------------------------------------------

def test_admin_exports_and_erases_from_the_console_with_an_audit_trail(stack):
    db = stack.settings.database_url
    person = new_person(db)
    chat = Chat(stack.hub_url, locale="es-ES")
    chat.say(f"hola, soy {person['name']} y {WORDS}")
    with session_scope(db) as s:  # the customer identified themselves in that conversation
        conv = s.execute(select(Conversation).where(Conversation.sender == chat.sender)
                         ).scalar_one()
        conv.customer_id = s.execute(select(Customer.id).where(
            Customer.email == person["email"])).scalar_one()
    admin_name, agent_name = make_staff(db, "admin"), make_staff(db, "agent")
    admin, agent = ConsoleClient(stack.hub_url), ConsoleClient(stack.hub_url)
    try:
        assert admin.login(admin_name).status_code == 204
        assert agent.login(agent_name).status_code == 204
        body = {"identifier": person["email"]}
        for path in ("lookup", "export", "erase"):
            denied = agent.post(f"/console/api/privacy/{path}", body)
            assert denied.status_code == 403, (path, denied.text)
        assert agent.http.get("/console/api/audit").status_code == 403
        assert agent.http.get("/console/privacy").status_code == 403
        no_csrf = admin.post("/console/api/privacy/export", body, csrf=None)
        assert no_csrf.status_code == 403

        assert admin.http.get("/console/privacy").status_code == 200
        assert admin.post("/console/api/privacy/lookup",
                          {"identifier": "¿quién?"}).status_code == 422
        missing = admin.post("/console/api/privacy/lookup",
                             {"identifier": "ghost@example.org"})
        assert missing.status_code == 404 and "nada" in missing.json()["message"]
        found = admin.post("/console/api/privacy/lookup", body)
        assert found.status_code == 200 and found.json()["conversations"] == 1

        export = admin.post("/console/api/privacy/export", body)
        assert export.status_code == 200
        assert export.headers["content-type"] == "application/zip"
        assert "attachment" in export.headers["content-disposition"]
        data = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("data.json"))
        assert any(WORDS in m["text"] for c in data["conversations"] for m in c["messages"])

        unconfirmed = admin.post("/console/api/privacy/erase", body)
        assert unconfirmed.status_code == 422 and "BORRAR" in unconfirmed.json()["message"]
        erased = admin.post("/console/api/privacy/erase", {**body, "confirm": "borrar"})
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased"]["conversations"] == 1

        log = admin.http.get("/console/api/audit", params={"limit": 20}).json()
        mine = [e for e in log if e["actor"] == admin_name]
        assert [e["action"] for e in mine][:2] == ["privacy.erase", "privacy.export"]
        assert person["email"] not in json.dumps(log)
        everything = dump(db) + dump(stack.settings.rasa_tracker_url)
        for trace in traces(person, chat.sender):
            assert trace not in everything, trace
    finally:
        admin.close()
        agent.close()


def test_agents_open_only_handed_over_conversations_and_every_view_is_audited(stack):
    db = stack.settings.database_url
    quiet, handed = Chat(stack.hub_url), Chat(stack.hub_url)
    quiet.say("¿cuánto tarda el envío?")
    handed.say("quiero hablar con una persona")
    with session_scope(db) as s:
        ids = {c.sender: c.id for c in s.execute(select(Conversation).where(
            Conversation.sender.in_([quiet.sender, handed.sender]))).scalars()}
        assert s.get(Conversation, ids[handed.sender]).escalated_at is not None
    agent_name, admin_name = make_staff(db, "agent"), make_staff(db, "admin")
    agent, admin = ConsoleClient(stack.hub_url), ConsoleClient(stack.hub_url)
    try:
        agent.login(agent_name)
        admin.login(admin_name)
        hidden = agent.http.get(f"/console/api/conversations/{ids[quiet.sender]}")
        assert hidden.status_code == 404
        for _ in range(3):  # the console re-reads an open conversation on every event
            seen = agent.http.get(f"/console/api/conversations/{ids[handed.sender]}")
            assert seen.status_code == 200
        # an admin may open any conversation, and is audited too
        assert admin.http.get(f"/console/api/conversations/{ids[quiet.sender]}"
                              ).status_code == 200
        with session_scope(db) as s:
            views = s.execute(select(AuditEntry.actor, AuditEntry.subject).where(
                AuditEntry.action == "conversation.view",
                AuditEntry.actor.in_([agent_name, admin_name]))).all()
        assert sorted(views) == sorted([(agent_name, f"conversation:{ids[handed.sender]}"),
                                        (admin_name, f"conversation:{ids[quiet.sender]}")])
    finally:
        agent.close()
        admin.close()


# --- who is who --------------------------------------------------------------------------------

def test_a_telegram_id_finds_the_widget_conversation_it_continued(session):
    widget = f"web-{uuid.uuid4().hex}"
    chat_id = str(100000 + uuid.uuid4().int % 900000)
    old = Conversation(sender=widget, channel="web")
    session.add(old)
    session.add(SenderAlias(alias=f"tg-{chat_id}", sender=widget))
    session.flush()
    session.add(Message(conversation_id=old.id, direction="in", author="customer",
                        text="mi dirección es Calle Falsa 123"))
    session.add(SurveyResponse(conversation_id=old.id, channel="web", language="es",
                               nps=9, comment="muy amables, Calle Falsa"))
    session.commit()
    for identifier in (chat_id, f"tg:{chat_id}", f"tg-{chat_id}"):
        subject = privacy.find(session, identifier)
        assert old.id in subject.conversation_ids, identifier
        assert {widget, f"tg-{chat_id}"} <= subject.senders
    counts = privacy.erase(session, privacy.find(session, chat_id), None, Path("/nonexistent"),
                           actor="test")
    assert counts["messages"] == 1
    session.expire_all()
    survey = session.execute(select(SurveyResponse).where(
        SurveyResponse.conversation_id == old.id)).scalar_one()
    assert survey.nps == 9 and survey.comment is None  # the score stays for the NPS
    assert session.get(SenderAlias, f"tg-{chat_id}") is None
    assert session.get(Conversation, old.id).sender.startswith("erased-")


@pytest.mark.parametrize("raw,expected", [
    ("Ana@Example.ORG", [("email", "ana@example.org")]),
    ("+34 600 111 234", [("phone", "34600111234")]),
    ("600111234", [("phone", "600111234"), ("telegram", "600111234")]),
    ("tg:42424242", [("telegram", "42424242")]),
    ("phone:(+44) 7700-900-555", [("phone", "447700900555")]),
])
def test_identifiers(raw, expected):
    assert privacy.parse_identifier(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "hola", "a@b", "12", "tg:abc", "x" * 300])
def test_bad_identifiers_are_refused(raw):
    with pytest.raises(privacy.PrivacyError):
        privacy.parse_identifier(raw)


# --- retention, by a running hub ------------------------------------------------------------------

def test_the_hub_applies_retention_by_itself(tmp_path):
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(db)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    with session_scope(db) as s:
        old = Conversation(sender="old-sender-0000000001", channel="web",
                           started_at=utcnow() - timedelta(days=90),
                           last_activity_at=utcnow() - timedelta(days=89))
        new = Conversation(sender="new-sender-0000000001", channel="web")
        s.add_all([old, new])
        s.flush()
        for conv, words in ((old, "mi teléfono es 600 999 888"), (new, "hola de nuevo")):
            s.add(Message(conversation_id=conv.id, direction="in", author="customer",
                          text=words, created_at=conv.last_activity_at))
        s.add(SurveyResponse(conversation_id=old.id, channel="web", language="es", ces=6,
                             comment="todo bien, gracias Marta"))
        for conv in (old, new):
            s.add(Attachment(id=uuid.uuid4().hex, conversation_id=conv.id,
                             content_type="image/png", size=10))
        s.flush()
        files = {a.conversation_id: uploads / f"{a.id}.png"
                 for a in s.execute(select(Attachment)).scalars()}
        old_id, new_id = old.id, new.id
    for path in files.values():
        path.write_bytes(png_bytes())

    with run_hub(tmp_path, db, RETENTION_DAYS="30", UPLOAD_DIR=str(uploads)) as hub:
        deadline = time.monotonic() + 60
        while True:
            with session_scope(db) as s:
                if s.get(Conversation, old_id).transcript_erased_at is not None:
                    break
            assert hub.proc.poll() is None and time.monotonic() < deadline, \
                hub.log.read_text()[-3000:]
            time.sleep(0.5)
    with session_scope(db) as s:
        texts_left = {m.conversation_id: m.text for m in s.execute(select(Message)).scalars()}
        assert texts_left == {old_id: "", new_id: "hola de nuevo"}
        survey = s.execute(select(SurveyResponse)).scalar_one()
        assert survey.ces == 6 and survey.comment is None
        assert s.get(Conversation, new_id).transcript_erased_at is None
        assert [a.conversation_id for a in s.execute(select(Attachment)).scalars()] == [new_id]
        purge = s.execute(select(AuditEntry).where(AuditEntry.action == "retention.purge")
                          ).scalar_one()
        assert purge.actor == "retention" and purge.details["conversations"] == 1
    assert not files[old_id].exists() and files[new_id].exists()
