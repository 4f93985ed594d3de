"""Argument parsing for `python -m bot`. Each command is a small function below."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import time

from bot.cli import privacy as privacy_cli
from bot.core.config import Settings, _env, get_settings
from bot.db.session import session_scope


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=None, default=str))


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.migrate import upgrade

    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def cmd_db_backup(args: argparse.Namespace, settings: Settings) -> int:
    """Case database + Rasa tracker + photos into one archive (format: bot/db/backup.py)."""
    from pathlib import Path

    from bot.db import backup
    from bot.services.uploads import upload_dir

    try:
        report = backup.backup(settings, Path(args.file), uploads=upload_dir(settings),
                               force=args.force)
    except backup.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for note in report.notes:
        print(f"note: {note}")
    print(f"backup written to {report.path} ({report.path.stat().st_size} bytes, mode 0600: "
          f"personal data): {report.parts()}")
    return 0


def cmd_db_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Replace the current data with a backup's; the stack must be stopped."""
    from pathlib import Path

    from bot.db import backup
    from bot.services.uploads import upload_dir

    try:
        report = backup.restore(settings, Path(args.file), uploads=upload_dir(settings))
    except backup.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for note in report.notes:
        print(f"note: {note}")
    print(f"restored from {report.path} (made {report.manifest['created_at']}): "
          f"{report.parts()}")
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    """Everything the stack needs in the database: schema, demo data, KB, first admin."""
    from bot.db.migrate import upgrade
    from bot.services import demo, users
    from bot.services.kb import store
    from bot.services.kb.live import KB_DIR, LiveKnowledgeBase

    upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        report = store.import_directory(session, KB_DIR, actor="bootstrap", only_new=True)
        if report.created:
            print(f"knowledge base: {report.created} entries imported")
        added = demo.load(session)
        if added:
            from bot.services import demo_activity

            activity = demo_activity.load(session)
            print(f"demo data loaded ({added} customers, {activity} past conversations for "
                  "the KPI report; `python -m bot demo clear` removes it)")
        username = _env("ADMIN_USERNAME", "admin")
        given = _env("ADMIN_PASSWORD", "")
        password = users.ensure_first_admin(session, username, given or None)
        if password:
            where = "ADMIN_PASSWORD in .env" if given else f"generated: {password}"
            print(f"first admin created: user {username!r}, password: {where}")
    LiveKnowledgeBase(settings.database_url).current()  # warms the embedding cache (var/)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import demo

    with session_scope(settings.database_url) as session:
        if args.action == "load":
            from bot.services import demo_activity

            print(f"demo customers added: {demo.load(session)}, "
                  f"conversations: {demo_activity.load(session)}")
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


def cmd_kb(args: argparse.Namespace, settings: Settings) -> int:
    """Knowledge base: import/export files, list, search, edit with revisions."""
    from pathlib import Path

    from bot.services.kb import store
    from bot.services.kb.loader import KBError

    try:
        if args.kb_cmd == "search":
            return _kb_search(args, settings)
        with session_scope(settings.database_url) as session:
            if args.kb_cmd == "import":
                report = store.import_directory(session, Path(args.path), actor=args.actor,
                                                only_new=args.only_new)
                print(f"knowledge base: {report.created} created, {report.updated} updated, "
                      f"{report.unchanged} unchanged, {report.skipped} kept as edited")
            elif args.kb_cmd == "export":
                print(f"exported {store.export_directory(session, Path(args.path))} entries "
                      f"to {args.path}")
            elif args.kb_cmd == "list":
                entries = [store.as_dict(e) for e in store.list_entries(session)]
                if args.json:
                    _print_json(entries)
                for e in [] if args.json else entries:
                    print(f"{e['id']:28} v{e['version']:<3} {e['content']['es']['title']} / "
                          f"{e['content']['en']['title']}")
            elif args.kb_cmd == "set-answer":
                entry = store.get(session, args.faq_id)
                if entry is None or entry.deleted:
                    raise store.KBNotFound(f"no entry {args.faq_id!r}")
                data = store.as_dict(entry)
                data["content"][args.lang]["answer"] = args.text
                updated = store.update(session, args.faq_id,
                                       {"tags": data["tags"], **data["content"]},
                                       actor=args.actor, expected_version=args.expected_version)
                print(f"{args.faq_id} is now at version {updated.version}")
            elif args.kb_cmd == "delete":
                store.delete(session, args.faq_id, actor=args.actor)
                print(f"{args.faq_id} deleted (kept in the revision history)")
            elif args.kb_cmd == "history":
                for rev in store.revisions(session, args.faq_id):
                    print(f"v{rev.version:<3} {rev.action:8} {rev.changed_at:%Y-%m-%d %H:%M:%S} "
                          f"by {rev.changed_by}")
    except KBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _kb_search(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.kb.live import LiveKnowledgeBase

    kb = LiveKnowledgeBase(settings.database_url)
    if args.query == "-":
        for line in sys.stdin:
            query = line.rstrip("\n")
            result = kb.search(query, args.lang)
            _print_json({"query": query, "faq_id": result.faq_id,
                         "score": round(result.score, 4)} if args.json else result.to_dict())
            sys.stdout.flush()
        return 0
    result = kb.search(args.query, args.lang)
    if args.json:
        _print_json(result.to_dict())
        return 0
    if result.decision == "answer":
        answer = kb.answer(result.faq_id, args.lang)
        print(f"[{result.faq_id}] {answer['title']} (score {result.score:.3f})\n")
        print(answer["answer"])
    elif result.decision == "suggest":
        print("not sure; did you mean:")
        for c in result.candidates:
            print(f"  - [{c.faq_id}] {c.title} (score {c.score:.3f})")
    else:
        best = result.candidates[0] if result.candidates else None
        print("no answer in the knowledge base"
              + (f" (closest: {best.faq_id}, score {best.score:.3f})" if best else ""))
    return 0


def cmd_cases(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import cases
    from bot.services.identifiers import find_case_number

    with session_scope(settings.database_url) as session:
        if args.cases_cmd == "show":
            number = find_case_number(args.number)
            case = cases.get_by_number(session, number) if number else None
            if case is None:
                print(f"error: no case {args.number!r}", file=sys.stderr)
                return 1
            data = cases.as_dict(case)
            if args.json:
                _print_json(data)
                return 0
            print(f"{data['number']}  {data['type']}  {data['status']}  "
                  f"opened {data['created_at'][:16]}")
            for key in ("category", "description", "resolution"):
                if data[key]:
                    print(f"  {key}: {data[key]}")
            for e in data["events"]:
                change = f"{e['from'] or ''}→{e['to']}" if e["to"] else ""
                print(f"  {e['at'][:16]} {e['kind']:9} {change:24} {e['actor']} "
                      f"{'[internal] ' if e['internal'] else ''}{e['note'] or ''}")
        else:
            rows = [cases.as_dict(c) for c in cases.list_cases(session, status=args.status)]
            if args.json:
                _print_json(rows)
                return 0
            for r in rows:
                print(f"{r['number']:18} {r['type']:9} {r['status']:17} {r['created_at'][:16]}")
            if not rows:
                print("no cases")
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from bot.services import kpi

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    try:
        filters = kpi.Filters(since=when(args.since), until=when(args.until),
                              channel=args.channel, language=args.language,
                              case_type=args.case_type, agent_id=args.agent,
                              team=args.team)
    except ValueError as exc:
        print(f"error: {exc} (dates as YYYY-MM-DD)", file=sys.stderr)
        return 2
    with session_scope(settings.database_url) as session:
        # the same call as the console's dashboard (bot/services/kpi_dashboard.py)
        data = kpi.report(session, filters, idle_timeout=settings.conversation_idle_timeout,
                          sla=kpi.Sla.from_settings(settings))
    if args.json:
        _print_json(data)
        return 0

    def show(v, unit=""):
        return "n/a" if v is None else f"{v}{unit}"

    def dur(d):
        if d["median_s"] is None:
            return "n/a"
        return (f"median {d['median_s'] / 60:.1f} min, p90 {d['p90_s'] / 60:.1f} min "
                f"(n={d['count']})")

    rows = [
        ("Conversations", f"{data['conversations']}"
         + (f" ({data['demo_conversations']} are demo data: `python -m bot demo clear`)"
            if data["demo_conversations"] else "")),
        ("Cases", data["cases"]),
        ("CSAT (% 4-5)", show(data["csat_pct"], " %")), ("NPS", show(data["nps"])),
        ("CES mean (1-7)", show(data["ces"]["mean"])),
        ("CES % 5-7", show(data["ces"]["pct_5_to_7"], " %")),
        ("FCR", show(data["fcr_pct"], " %")),
        ("Containment, confirmed", show(data["containment_confirmed_pct"], " %")),
        ("Containment, assumed", show(data["containment_assumed_pct"], " %")),
        ("Escalation rate", show(data["escalation_rate_pct"], " %")),
        ("Abandonment", show(data["abandonment_pct"], " %")),
        ("First response time", dur(data["first_response_time"])),
        ("Agent handling time", dur(data["handling_time"])),
        ("Reopen rate", show(data["reopen_rate_pct"], " %")),
        ("Survey response rate", show(data["survey_response_rate_pct"], " %")),
        ("CSAT bot / human", f"{show(data['csat_bot_pct'], ' %')} / "
                             f"{show(data['csat_human_pct'], ' %')}"),
        (f"SLA first reply <= {data['sla']['first_response_minutes']} min",
         show(data["sla"]["first_response_pct"], " %")),
        (f"SLA resolved <= {data['sla']['resolution_hours']} h",
         show(data["sla"]["resolution_pct"], " %")),
    ] + [(f"Resolution time ({k})", _hours(v)) for k, v in data["resolution_time"].items()]
    for name, value in rows:
        print(f"{name:28} {value}")
    return 0


def _hours(d: dict) -> str:
    if d["median_s"] is None:
        return "n/a"
    return f"median {d['median_s'] / 3600:.1f} h, p90 {d['p90_s'] / 3600:.1f} h (n={d['count']})"


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.users import UserError, add_user

    password = os.environ.get("NEW_USER_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print("error: no terminal to ask for the password: set NEW_USER_PASSWORD in the "
                  "environment (e.g. NEW_USER_PASSWORD=… python -m bot users add …)",
                  file=sys.stderr)
            return 2
        try:
            password = getpass.getpass("Password: ")
        except (EOFError, KeyboardInterrupt):
            print("\nerror: no password given", file=sys.stderr)
            return 2
    try:
        with session_scope(settings.database_url) as session:
            team = args.team.strip().lower()
            if not team or len(team) > 32:
                raise UserError("team must be 1-32 characters")
            user = add_user(session, args.username, password, args.role)
            user.team = team
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.username} ({args.role}, team {args.team.strip().lower()}) created")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.training import train

    train(force=args.force)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start Rasa, actions and hub; restart any that dies; stop all three on Ctrl-C or
    SIGTERM (and they die with this process even when it is killed outright). With
    PROFILE=scale: N Rasa servers, M hubs and HAProxy on PostgreSQL and Redis (bot/scale/)."""
    from pathlib import Path

    from bot.core.config import ROOT, VAR_DIR
    from bot.stack import Stack

    log_dir = Path(settings.log_dir) if settings.log_dir else VAR_DIR / "log"
    if not log_dir.is_absolute():
        log_dir = ROOT / log_dir
    profile = _env("PROFILE", "default")
    if profile == "scale":  # PostgreSQL, Redis, N Rasa, M hubs, HAProxy (bot/scale/)
        from bot.scale.prepare import prepare_or_explain

        stack = prepare_or_explain(settings, log_dir)
        if stack is None:
            return 1
    elif profile == "default":
        stack = Stack(settings, rasa_port=int(_env("RASA_PORT", "5005")),
                      action_port=int(_env("ACTION_PORT", "5055")), log_dir=log_dir)
    else:
        print(f"error: PROFILE must be 'default' or 'scale', not {profile!r}", file=sys.stderr)
        return 2
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"starting {stack.describe()} (logs in {log_dir}/)…", flush=True)
    try:
        stack.start()
        # the scale profile loads several Rasa models at once on the same cores
        deadline = time.monotonic() + (240 if profile == "default" else 600)
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
  Web chat : {stack.hub_url}/            (demo page with the widget)
  Console  : {stack.hub_url}/console     (agents/admins; first admin: see .env)
  Telegram : {"on (TELEGRAM_BOT_TOKEN set)" if settings.telegram_bot_token else
              "off (set TELEGRAM_BOT_TOKEN in .env)"}
  Turn API : POST {stack.hub_url}/api/messages
  Health   : {stack.hub_url}/healthz
  Try      : curl -s {stack.hub_url}/api/messages -H 'content-type: application/json' \\
               -d '{{"sender": "demo-session-0001", "text": "hola"}}'
{"".join(line + chr(10) for line in stack.banner_lines())}\
Press Ctrl-C to stop all {"three" if len(stack.procs) == 3 else len(stack.procs)} processes.""",
                  flush=True)
        while not stopping:
            stack.supervise()  # a dead process is restarted with back-off (and reported)
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
    db_backup = db.add_parser("backup", help="case database, Rasa tracker and photos into "
                                             "one archive (safe while running)")
    db_backup.add_argument("file")
    db_backup.add_argument("--force", action="store_true", help="overwrite FILE")
    db_backup.set_defaults(func=cmd_db_backup)
    db_restore = db.add_parser("restore", help="replace all data with a backup's (stop the "
                                               "stack first)")
    db_restore.add_argument("file")
    db_restore.set_defaults(func=cmd_db_restore)

    sub.add_parser("setup", help="migrate, load demo data, create first admin").set_defaults(
        func=cmd_setup)

    demo = sub.add_parser("demo", help="demo customers and orders")
    demo.add_argument("action", choices=["show", "load", "clear"])
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    kb = sub.add_parser("kb", help="FAQ knowledge base").add_subparsers(dest="kb_cmd",
                                                                         required=True)
    kb_import = kb.add_parser("import", help="import a directory of entry files "
                                             "(all-or-nothing)")
    kb_import.add_argument("path", nargs="?", default="knowledge_base")
    kb_import.add_argument("--only-new", action="store_true",
                           help="only add missing entries; keep live edits")
    kb_export = kb.add_parser("export", help="write every entry as YAML files")
    kb_export.add_argument("path")
    kb_list = kb.add_parser("list", help="list entries")
    kb_list.add_argument("--json", action="store_true")
    kb_search = kb.add_parser("search", help='search: "text", or "-" for one query per '
                                             "stdin line")
    kb_search.add_argument("query")
    kb_search.add_argument("--lang", choices=["es", "en"], default="es")
    kb_search.add_argument("--json", action="store_true")
    kb_set = kb.add_parser("set-answer", help="change one answer (live, with a revision)")
    kb_set.add_argument("faq_id")
    kb_set.add_argument("--lang", choices=["es", "en"], required=True)
    kb_set.add_argument("--text", required=True)
    kb_set.add_argument("--expected-version", type=int, default=None,
                        help="refuse if the entry changed since this version")
    kb_delete = kb.add_parser("delete", help="delete an entry (kept in history)")
    kb_delete.add_argument("faq_id")
    kb_history = kb.add_parser("history", help="revisions of an entry")
    kb_history.add_argument("faq_id")
    for p in (kb_import, kb_set, kb_delete):
        p.add_argument("--actor", default=os.environ.get("USER", "cli"))
    for name in ("import", "export", "list", "search", "set-answer", "delete", "history"):
        kb.choices[name].set_defaults(func=cmd_kb)

    cases_p = sub.add_parser("cases", help="warranty, return and support cases")
    cases_sub = cases_p.add_subparsers(dest="cases_cmd", required=True)
    show = cases_sub.add_parser("show", help="one case with its events and survey")
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    lst = cases_sub.add_parser("list", help="cases, newest first")
    lst.add_argument("--status", choices=["open", "in_progress", "waiting_customer",
                                          "resolved", "closed"])
    lst.add_argument("--json", action="store_true")
    for p in (show, lst):
        p.set_defaults(func=cmd_cases)

    rep = sub.add_parser("report", help="KPIs (CSAT, NPS, CES, FCR, containment, ...)")
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--since", help="YYYY-MM-DD (inclusive)")
    rep.add_argument("--until", help="YYYY-MM-DD (exclusive)")
    rep.add_argument("--channel", choices=["web", "telegram", "api"])
    rep.add_argument("--language", choices=["es", "en"])
    rep.add_argument("--case-type", choices=["warranty", "return", "exchange", "support"])
    rep.add_argument("--agent", type=int, help="staff user id")
    rep.add_argument("--team", help="the team whose queue the conversations were in")
    rep.set_defaults(func=cmd_report)

    users = sub.add_parser("users", help="staff users").add_subparsers(dest="users_cmd",
                                                                       required=True)
    add = users.add_parser("add", help="add an agent or admin (password from "
                                       "NEW_USER_PASSWORD or prompted)")
    add.add_argument("username")
    add.add_argument("--role", choices=["agent", "admin"], required=True)
    add.add_argument("--team", default="postventa", help="team whose queue the agent works "
                                                         "(default: postventa)")
    add.set_defaults(func=cmd_users_add)

    train = sub.add_parser("train", help="train the Rasa model if data/config/domain changed")
    train.add_argument("--force", action="store_true")
    train.set_defaults(func=cmd_train)

    sub.add_parser("run", help="start Rasa, actions and hub").set_defaults(func=cmd_run)
    privacy_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, get_settings())
