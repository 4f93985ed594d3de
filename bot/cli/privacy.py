"""`python -m bot privacy export|erase|purge`: a customer's data rights from the terminal.

export  writes one ZIP (data.json + the photos) with everything held about the person;
erase   anonymises them everywhere (asks to type ERASE unless --yes);
purge   applies RETENTION_DAYS now (the hub also does it on its own every hour).
Every run leaves an entry in the audit log (actor: --actor, default "cli:<user>").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.core.config import Settings
from bot.db.session import session_scope


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"cli:{os.environ.get('USER', 'unknown')}"


def _find(session, identifier: str):
    from bot.services import privacy

    subject = privacy.find(session, identifier)
    if subject.empty:
        print(f"nothing held about {identifier!r}: no customer, conversation or case "
              "matches it", file=sys.stderr)
        return None
    return subject


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import audit, privacy

    out = Path(args.out or f"privacy-export-{os.getpid()}.zip")
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    try:
        with session_scope(settings.database_url) as session:
            subject = _find(session, args.identifier)
            if subject is None:
                return 1
            data = privacy.export_zip(session, subject,
                                      privacy.tracker_engine(settings.tracker_url()),
                                      privacy.upload_dir(settings))
            _write_private(out, data)
            audit.record(session, _actor(args), "privacy.export", subject.reference,
                         {"kind": subject.kind, "conversations": len(subject.conversation_ids),
                          "cases": len(subject.case_ids)})
    except privacy.PrivacyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{out}: {len(subject.customer_ids)} customer record(s), "
          f"{len(subject.conversation_ids)} conversation(s), {len(subject.case_ids)} case(s)")
    return 0


def _write_private(path: Path, data: bytes) -> None:
    """0600 from the first byte: the file holds a person's data."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import privacy

    try:
        with session_scope(settings.database_url) as session:
            subject = _find(session, args.identifier)
            if subject is None:
                return 1
            summary = (f"{len(subject.customer_ids)} customer record(s), "
                       f"{len(subject.conversation_ids)} conversation(s), "
                       f"{len(subject.case_ids)} case(s)")
            if not args.yes:
                if not sys.stdin.isatty():
                    print("error: erasing cannot be undone: pass --yes, or run it in a "
                          "terminal to confirm", file=sys.stderr)
                    return 2
                answer = input(f"Erase {summary} for good? Type ERASE to confirm: ")
                if answer.strip() != "ERASE":
                    print("nothing erased")
                    return 1
            counts = privacy.erase(session, subject,
                                   privacy.tracker_engine(settings.tracker_url()),
                                   privacy.upload_dir(settings), actor=_actor(args))
    except privacy.PrivacyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nnothing erased", file=sys.stderr)
        return 1
    print("erased: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import privacy

    days = args.days if args.days is not None else settings.retention_days
    if days <= 0:
        print("retention is off (RETENTION_DAYS=0): nothing purged")
        return 0
    with session_scope(settings.database_url) as session:
        counts = privacy.purge_expired(session, privacy.tracker_engine(settings.tracker_url()),
                                       privacy.upload_dir(settings), days, actor=_actor(args))
    print(f"older than {days} days: " + (", ".join(f"{k} {v}" for k, v in counts.items())
                                         or "nothing"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser("privacy", help="a customer's data: export, erase, retention")
    cmds = privacy.add_subparsers(dest="privacy_cmd", required=True)
    export = cmds.add_parser("export", help="everything held about a person, as one ZIP")
    export.add_argument("identifier", help="email, phone or Telegram id (tg:123 to be explicit)")
    export.add_argument("--out", help="ZIP file to write (default privacy-export-<pid>.zip)")
    export.add_argument("--force", action="store_true", help="overwrite --out")
    export.set_defaults(func=cmd_export)
    erase = cmds.add_parser("erase", help="erase a person everywhere (cannot be undone)")
    erase.add_argument("identifier", help="email, phone or Telegram id (tg:123 to be explicit)")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(func=cmd_erase)
    purge = cmds.add_parser("purge", help="apply RETENTION_DAYS now")
    purge.add_argument("--days", type=int, help="override RETENTION_DAYS for this run")
    purge.set_defaults(func=cmd_purge)
    for p in (export, erase, purge):
        p.add_argument("--actor", help='who, for the audit log (default "cli:$USER")')
