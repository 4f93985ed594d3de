"""`make security`: the attack and fault set of tests/security_set.py, run against the real
processes, summarised as a table (tried / handled / findings) and written to
test-artifacts/security.json. Hooks imported by tests/conftest.py."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from bot.core.config import ROOT
from tests.security_set import ATTACKS, finding_of

_results: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"handled": [], "failed": []})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--security-report", action="store_true",
                     help="print the attack/fault table (make security)")


@pytest.hookimpl(tryfirst=True)  # before `-m security` deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        finding = finding_of(item.nodeid)
        if finding:
            item.add_marker(pytest.mark.security(finding))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    finding = finding_of(report.nodeid)
    if finding is None:
        return
    if report.failed or (report.when == "call" and report.skipped):
        if report.nodeid not in _results[finding]["failed"]:
            _results[finding]["failed"].append(report.nodeid)
    elif report.when == "call" and report.passed:
        _results[finding]["handled"].append(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("--security-report"):
        return
    rows = []
    for finding in ATTACKS:
        got = _results.get(finding, {"handled": [], "failed": []})
        tried = len(got["handled"]) + len(got["failed"])
        rows.append({"finding": finding, "tried": tried, "handled": len(got["handled"]),
                     "findings": [n.split("::", 1)[-1] for n in got["failed"]]
                     or (["not tried"] if tried == 0 else [])})
    width = max(len(r["finding"]) for r in rows)
    write = terminalreporter.write_line
    write("")
    write(f"{'attack / fault (issue 15)':<{width}}  tried  handled  findings")
    write("-" * (width + 28))
    for r in rows:
        write(f"{r['finding']:<{width}}  {r['tried']:>5}  {r['handled']:>7}  "
              f"{', '.join(r['findings']) or '—'}")
    total = sum(r["tried"] for r in rows), sum(r["handled"] for r in rows)
    open_findings = sum(1 for r in rows if r["findings"])
    write("-" * (width + 28))
    write(f"{'total':<{width}}  {total[0]:>5}  {total[1]:>7}  {open_findings} open")
    out = ROOT / "test-artifacts" / "security.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "tried": total[0], "handled": total[1],
                               "open": open_findings}, indent=2, ensure_ascii=False))
