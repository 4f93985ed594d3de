"""The real stack for benchmarks: Rasa + action server + hub on free ports, with a throw-away
database (demo data, knowledge base) and the trained model. Shared by `make bench` and
`make bench-dialogues`, so both measure exactly the same startup as `make run`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.core.config import ROOT, Settings
from bot.stack import Stack, free_port

RESULTS = ROOT / "bench" / "results"


@dataclass
class BenchStack:
    stack: Stack
    settings: Settings
    work: Path
    cli_env: dict[str, str]  # environment for `python -m bot …` against the bench database

    @property
    def hub_url(self) -> str:
        return self.stack.hub_url

    @property
    def rasa_url(self) -> str:
        return self.stack.rasa_url


@contextmanager
def bench_stack(extra_env: dict[str, str] | None = None, *, keep: bool = False,
                timeout: float = 240) -> Iterator[BenchStack]:
    """Start the three processes on free ports against a fresh SQLite database (migrated,
    demo data and KB loaded by `python -m bot setup`); stop them (and remove the temporary
    directory unless `keep`) on exit."""
    work = Path(tempfile.mkdtemp(prefix="postventa-bench-"))
    settings = Settings(database_url=f"sqlite:///{work / 'bench.db'}",
                        rasa_token=secrets.token_urlsafe(16), hub_port=free_port(),
                        rasa_tracker_url=f"sqlite:///{work / 'tracker.db'}")
    cli_env = {**os.environ, "DATABASE_URL": settings.database_url, "ENV_FILE": os.devnull}
    setup = subprocess.run([sys.executable, "-m", "bot", "setup"], cwd=ROOT, env=cli_env,
                           capture_output=True, text=True)
    if setup.returncode != 0:
        raise RuntimeError(f"`python -m bot setup` failed:\n{setup.stdout}\n{setup.stderr}")
    stack = Stack(settings, rasa_port=free_port(), action_port=free_port(),
                  log_dir=work / "logs",
                  extra_env={"ENV_FILE": os.devnull, **(extra_env or {})})
    stack.start()
    try:
        stack.wait_healthy(timeout=timeout)
        yield BenchStack(stack, settings, work, cli_env)
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _group_procs(pgid: int) -> Iterator[Path]:
    """The /proc directories of a process group's live processes."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) == pgid:
                yield proc
        except (OSError, ProcessLookupError):
            continue


def _proc_status_kb(pgid: int, field_name: str) -> int:
    total = 0
    for proc in _group_procs(pgid):
        try:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of a process group's live processes, in seconds."""
    total = 0
    for proc in _group_procs(pgid):
        try:
            # fields after the ")" closing the command name: utime and stime are 12 and 13
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def cpu_report(stack: Stack) -> dict[str, float]:
    """{"rasa": seconds, "actions": …, "hub": …}: CPU used so far by each process group."""
    return {name: cpu_seconds(p.pid) for name, p in stack.procs.items()}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (its process group), in MB."""
    return round(_proc_status_kb(pid, "VmRSS") / 1024, 1)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) summed over the process group, in MB."""
    return round(_proc_status_kb(pid, "VmHWM") / 1024, 1)


def memory_report(stack: Stack) -> dict[str, dict[str, float]]:
    """{"rasa": {"rss_mb": …, "peak_rss_mb": …}, "actions": …, "hub": …}"""
    return {name: {"rss_mb": rss_mb(p.pid), "peak_rss_mb": peak_rss_mb(p.pid)}
            for name, p in stack.procs.items()}


def result_path(kind: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
