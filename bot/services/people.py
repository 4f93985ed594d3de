"""Managing staff from the console's People page (admins only): add, change role or team,
deactivate and reactivate, reset a password, unlock — each written to the audit log.

* **Audit.** Every change records ``staff.<action>`` with subject ``staff:<username>`` through
  ``audit.record`` in the caller's transaction: a change that happened is always in the log
  and one that failed never is. Nothing is recorded when nothing changed (a double click).
  Passwords never reach the log, only whether one was generated or typed.
* **Sessions end at once** when a change alters what a person may do: deactivation, a new
  password, a new role or team. Sessions are database rows, so deleting them logs the person
  out on every hub replica; their open console notices within seconds (its event stream
  re-checks its session) and goes to the login page. A role or team change ends sessions too
  because a live event stream keeps the role and team it subscribed with.
* **Passwords.** A reset always generates one, shown once to the admin, who hands it over; a
  new person gets a generated one unless the admin types one under ``bot users add``'s rules.
  We chose this over a one-time link: the hub sends no email, so a link would travel through
  the same hands as a password while adding an unauthenticated page and a token table.
* **There is always an active admin.** Deactivating or demoting the last one is refused. Two
  admins demoting each other at once cannot both succeed: PostgreSQL locks the active admins
  (``FOR UPDATE``) first; on SQLite the check counts after the change, under the write lock.

Errors are ``PeopleError(code, message)`` with a Spanish message for the console; codes:
``not_found``, ``bad_input``, ``duplicate``, ``last_admin``. The caller commits, and rolls
back after a ``PeopleError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.models import Conversation, StaffSession, StaffUser, utcnow
from bot.services import audit, staff_sessions, users
from bot.services.users import ROLES, UserError

ROLE_NAMES = {"agent": "agente", "admin": "administrador"}


class PeopleError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Outcome:
    """What an action did: the person afterwards, sessions ended, a password to show once."""

    user: StaffUser
    sessions_ended: int = 0
    password: str | None = None


# --- validation (Spanish messages for the console; the rules are users.py's) ---------------

def _username(value: str) -> str:
    try:
        return users.normalize_username(value)
    except UserError as exc:
        raise PeopleError("bad_input", "Usuario no válido: de 1 a 64 letras, números o "
                                       ". _ @ - (empieza por letra o número).") from exc


def _team(value: str) -> str:
    try:
        return users.normalize_team(value)
    except UserError as exc:
        raise PeopleError("bad_input", "El equipo debe tener entre 1 y 32 caracteres "
                                       "visibles.") from exc


def _role(value: str) -> str:
    role = (value or "").strip().lower()
    if role not in ROLES:
        raise PeopleError("bad_input", "Rol no válido: agent o admin.")
    return role


def _password(value: str) -> str:
    try:
        users.check_password(value)
    except UserError as exc:
        raise PeopleError("bad_input", f"La contraseña debe tener entre {users.MIN_PASSWORD} "
                                       f"y {users.MAX_PASSWORD} caracteres.") from exc
    return value


# --- reading ------------------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def describe(session: Session, people: list[StaffUser],
             now: datetime | None = None) -> list[dict[str, Any]]:
    """Rows for the People page: no hash, plus live sessions and conversations still open
    with each person (an admin transfers those before or after deactivating them)."""
    now = now or utcnow()
    ids = [u.id for u in people]
    if not ids:
        return []
    live = dict(session.execute(
        select(StaffSession.user_id, func.count())
        .where(StaffSession.user_id.in_(ids), StaffSession.expires_at > now,
               StaffSession.last_seen_at > now - staff_sessions.IDLE_TTL)
        .group_by(StaffSession.user_id)).all())
    open_convs = dict(session.execute(
        select(Conversation.agent_id, func.count())
        .where(Conversation.agent_id.in_(ids), Conversation.status == "with_agent")
        .group_by(Conversation.agent_id)).all())
    return [{"username": u.username, "role": u.role, "team": u.team, "active": u.active,
             "locked": staff_sessions.is_locked(u, now),
             "locked_until": _iso(u.locked_until) if staff_sessions.is_locked(u, now) else None,
             "failed_logins": u.failed_logins, "created_at": _iso(u.created_at),
             "last_login_at": _iso(u.last_login_at), "sessions": int(live.get(u.id, 0)),
             "open_conversations": int(open_convs.get(u.id, 0))} for u in people]


def list_staff(session: Session) -> list[dict[str, Any]]:
    people = list(session.execute(select(StaffUser).order_by(StaffUser.username)).scalars())
    return describe(session, people)


def get(session: Session, username: str, *, for_update: bool = False) -> StaffUser:
    """The person of that username, or ``not_found`` (names from before today's username
    rules are still found: lookup only trims and lower-cases)."""
    name = (username or "").strip().lower()
    user = None
    if name and len(name) <= 64:
        stmt = select(StaffUser).where(StaffUser.username == name)
        if for_update:
            stmt = stmt.with_for_update()
        user = session.execute(stmt).scalar_one_or_none()
    if user is None:
        raise PeopleError("not_found", f"No hay nadie con el usuario «{name[:64]}».")
    return user


def recent_audit(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    return audit.recent(session, limit, prefix="staff.")


# --- guard rails --------------------------------------------------------------------------

def _lock_admins(session: Session) -> None:
    """Lock the active admins' rows until commit (PostgreSQL; SQLite renders no FOR UPDATE),
    taken before the target row and in id order so that concurrent guards cannot deadlock:
    a second admin demoting the first waits here and then sees the first one's change."""
    session.execute(select(StaffUser.id).where(
        StaffUser.role == "admin", StaffUser.active.is_(True))
        .order_by(StaffUser.id).with_for_update()).all()


def _keep_an_admin(session: Session, user: StaffUser, actor: str, doing: str) -> None:
    """Called after the change is flushed: refuse it (the caller rolls back) when no active
    admin is left. Counting after our own write matters on SQLite, whose driver starts the
    transaction only at the first write: that write holds the database's only write lock, so
    a concurrent change waits, and its own count then sees ours."""
    session.flush()
    left = session.execute(select(func.count()).select_from(StaffUser).where(
        StaffUser.role == "admin", StaffUser.active.is_(True))).scalar_one()
    if left:
        return
    if user.username == actor:
        message = (f"No puedes {doing}: eres el último administrador activo. Nombra antes "
                   "a otra persona administradora.")
    else:
        message = f"No se puede {doing} a «{user.username}»: es el último administrador activo."
    raise PeopleError("last_admin", message)


def _end_sessions(session: Session, user: StaffUser, keep: str | None = None) -> int:
    """Delete the person's sessions (all, or all but the token hash ``keep``)."""
    stmt = delete(StaffSession).where(StaffSession.user_id == user.id)
    if keep:
        stmt = stmt.where(StaffSession.token_hash != keep)
    return int(session.execute(stmt).rowcount or 0)


def _subject(user: StaffUser) -> str:
    return f"staff:{user.username}"


# --- actions ------------------------------------------------------------------------------

def add(session: Session, actor: str, username: str, role: str, team: str,
        password: str | None = None) -> Outcome:
    """A new agent or admin. Without ``password`` one is generated and returned once."""
    name, role, team = _username(username), _role(role), _team(team)
    generated = not (password or "")
    secret = users.generate_password() if generated else _password(password or "")
    if session.execute(select(StaffUser.id).where(StaffUser.username == name)).first():
        raise PeopleError("duplicate", f"Ya existe una persona con el usuario «{name}».")
    try:  # a concurrent add of the same name fails here (unique index): same answer
        user = users.add_user(session, name, secret, role)
        user.team = team
        session.flush()
    except (IntegrityError, UserError) as exc:
        raise PeopleError("duplicate", f"Ya existe una persona con el usuario «{name}».") \
            from exc
    audit.record(session, actor, "staff.add", _subject(user),
                 {"role": role, "team": team, "password": "generated" if generated else "typed"})
    return Outcome(user, password=secret if generated else None)


def update(session: Session, actor: str, username: str, role: str | None = None,
           team: str | None = None, actor_session: str | None = None) -> Outcome:
    """A new role and/or team. The person's sessions end (see the module docstring), except
    ``actor_session`` (token hash) when admins edit their own team and stay admins."""
    if role is None and team is None:
        raise PeopleError("bad_input", "Indica el rol o el equipo nuevos.")
    new_role = _role(role) if role is not None else None
    new_team = _team(team) if team is not None else None
    _lock_admins(session)
    user = get(session, username, for_update=True)
    changes: dict[str, list[str]] = {}
    if new_role is not None and new_role != user.role:
        changes["role"] = [user.role, new_role]
        user.role = new_role
        _keep_an_admin(session, user, actor, "quitar el rol de administrador")
    if new_team is not None and new_team != user.team:
        changes["team"] = [user.team, new_team]
        user.team = new_team
    if not changes:
        return Outcome(user)
    keep = actor_session if user.username == actor and user.role == "admin" else None
    ended = _end_sessions(session, user, keep)
    session.flush()
    audit.record(session, actor, "staff.update", _subject(user),
                 {**changes, "sessions_ended": ended})
    return Outcome(user, sessions_ended=ended)


def deactivate(session: Session, actor: str, username: str) -> Outcome:
    """The person can no longer log in and every session of theirs ends now."""
    _lock_admins(session)
    user = get(session, username, for_update=True)
    if not user.active:
        return Outcome(user)
    user.active = False
    _keep_an_admin(session, user, actor, "desactivar")
    ended = _end_sessions(session, user)
    session.flush()
    audit.record(session, actor, "staff.deactivate", _subject(user),
                 {"sessions_ended": ended})
    return Outcome(user, sessions_ended=ended)


def reactivate(session: Session, actor: str, username: str) -> Outcome:
    user = get(session, username, for_update=True)
    if user.active:
        return Outcome(user)
    user.active = True
    session.flush()
    audit.record(session, actor, "staff.reactivate", _subject(user))
    return Outcome(user)


def reset_password(session: Session, actor: str, username: str,
                   actor_session: str | None = None) -> Outcome:
    """A generated password (returned once), every session ended — but the admin's own
    current one when they reset their own password — and any lockout lifted: the admin has
    just vouched for the person."""
    user = get(session, username, for_update=True)
    secret = users.generate_password()
    users.set_password(user, secret)
    was_locked = staff_sessions.is_locked(user)
    user.failed_logins = 0
    user.locked_until = None
    keep = actor_session if user.username == actor else None
    ended = _end_sessions(session, user, keep)
    session.flush()
    audit.record(session, actor, "staff.reset_password", _subject(user),
                 {"sessions_ended": ended, "unlocked": was_locked})
    return Outcome(user, sessions_ended=ended, password=secret)


def unlock(session: Session, actor: str, username: str) -> Outcome:
    """Lift a lockout (failed logins back to zero)."""
    user = get(session, username, for_update=True)
    was_locked, failures = staff_sessions.is_locked(user), user.failed_logins
    if not was_locked and not failures:
        return Outcome(user)
    staff_sessions.unlock(session, user)
    audit.record(session, actor, "staff.unlock", _subject(user),
                 {"was_locked": was_locked, "failed_logins": failures})
    return Outcome(user)
