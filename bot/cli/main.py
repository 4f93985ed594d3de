"""Argument parsing for `python -m bot`. Each command is a small function below."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import time

from bot.core.config import Settings, _env, get_settings
from bot.db.session import session_scope


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=None, default=str))


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.migrate import upgrade

    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    """Everything the stack needs in the database: schema, demo data, KB, first admin."""
    from bot.db.migrate import upgrade
    from bot.services import demo, users

    upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        added = demo.load(session)
        if added:
            print(f"demo data loaded ({added} customers)")
        password = users.ensure_first_admin(
            session, os.environ.get("ADMIN_USERNAME", "admin"),
            os.environ.get("ADMIN_PASSWORD") or None,
        )
        if password:
            print(f"first admin created: user 'admin' (password from ADMIN_PASSWORD or: {password})")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import demo

    with session_scope(settings.database_url) as session:
        if args.action == "load":
            print(f"demo customers added: {demo.load(session)}")
        elif args.action == "clear":
            demo.clear(session)
            print("demo data removed")
        else:
            data = demo.show(session, settings)
            if args.json:
                _print_json(data)
            else:
                for c in data["customers"]:
                    print(f"{c['name']} <{c['email']}> {c['phone']} [{c['language']}]")
                    for o in c["orders"]:
                        print(f"  {o['number']} delivered {o['delivered_at'] or 'not yet'}")
                        for line in o["lines"]:
                            print(f"    #{line['line_id']} {line['product']} ({line['category']})"
                                  f" warranty until {line['warranty_until']},"
                                  f" return until {line['return_until']}")
    return 0


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.users import UserError, add_user

    password = os.environ.get("NEW_USER_PASSWORD") or getpass.getpass("Password: ")
    try:
        with session_scope(settings.database_url) as session:
            add_user(session, args.username, password, args.role)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.username} ({args.role}) created")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.training import train

    train(force=args.force)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start Rasa, actions and hub; stop all three on Ctrl-C or SIGTERM."""
    from bot.stack import Stack

    stack = Stack(settings, rasa_port=int(_env("RASA_PORT", "5005")),
                  action_port=int(_env("ACTION_PORT", "5055")))
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print("starting Rasa server, action server and hub (logs in var/log/)…", flush=True)
    try:
        stack.start()
        deadline = time.monotonic() + 240
        while not stopping:
            try:
                stack.wait_healthy(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        if not stopping:
            print(f"""
Postventa assistant is running.
  Turn API : POST {stack.hub_url}/api/messages
  Health   : {stack.hub_url}/healthz
  Try      : curl -s {stack.hub_url}/api/messages -H 'content-type: application/json' \\
               -d '{{"sender": "demo-session-0001", "text": "hola"}}'
Press Ctrl-C to stop all three processes.""", flush=True)
        while not stopping:
            if stack.dead():
                print(f"a process stopped unexpectedly: {stack.dead()} (see var/log/)",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping…", flush=True)
        stack.stop()
        print("stopped.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    sub.add_parser("setup", help="migrate, load demo data, create first admin").set_defaults(
        func=cmd_setup)

    demo = sub.add_parser("demo", help="demo customers and orders")
    demo.add_argument("action", choices=["show", "load", "clear"])
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    users = sub.add_parser("users", help="staff users").add_subparsers(dest="users_cmd",
                                                                       required=True)
    add = users.add_parser("add", help="add an agent or admin (password from "
                                       "NEW_USER_PASSWORD or prompted)")
    add.add_argument("username")
    add.add_argument("--role", choices=["agent", "admin"], required=True)
    add.set_defaults(func=cmd_users_add)

    train = sub.add_parser("train", help="train the Rasa model if data/config/domain changed")
    train.add_argument("--force", action="store_true")
    train.set_defaults(func=cmd_train)

    sub.add_parser("run", help="start Rasa, actions and hub").set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, get_settings())
