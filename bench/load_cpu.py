"""CPU time per process during a load run, read from /proc (Linux).

Why: on a 2-core machine the scale profile's processes compete for the same cores as the
single-process profile's, so its throughput ratio says little about a bigger machine. The CPU
each component spends per answered turn does: it is what `bench/load_report.py` projects
4- and 8-core throughput from. Also measured: the bench's own simulated customers (they run
on the same cores) and everything else on the machine (other people's work skews a run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group (a child and what it forked)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) == pgid:
                    total += _stat_cpu(int(proc.name))
            except (ProcessLookupError, PermissionError):
                continue
    return total


def pids_named(comm: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == comm:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def machine_busy() -> float:
    """CPU seconds all cores spent not idle since boot."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


class CpuMeter:
    """Snapshots of CPU seconds per named component; ``delta`` over a measurement window."""

    def __init__(self, groups: dict[str, int],
                 postgres_pids: Callable[[], Iterable[int]] | None = None,
                 shared: dict[str, Iterable[int]] | None = None) -> None:
        self.groups = groups  # component name → process group id
        # the database's backends serving this stack (asked at each snapshot: new ones open)
        self.postgres_pids = postgres_pids
        self.shared = {k: list(v) for k, v in (shared or {}).items()}  # e.g. redis-server

    def snapshot(self) -> dict[str, float]:
        snap = {name: group_cpu(pgid) for name, pgid in self.groups.items()}
        for pid in self.postgres_pids() if self.postgres_pids else ():
            snap[f"_pg{pid}"] = _stat_cpu(pid)  # a backend opened later counts from 0
        for name, pids in self.shared.items():
            snap[name] = sum(_stat_cpu(pid) for pid in pids)
        snap["bench_client"] = time.process_time()
        snap["_machine"] = machine_busy()
        snap["_wall"] = time.monotonic()
        return snap

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds per component in the window, plus ``wall_s`` and ``other_s`` (CPU the
        rest of the machine used meanwhile: other users, the kernel, this stack's helpers)."""
        out = {k: round(after[k] - before.get(k, 0.0), 2) for k in after
               if not k.startswith("_")}
        backends = [after[k] - before.get(k, 0.0) for k in after if k.startswith("_pg")]
        if backends:
            out["postgresql"] = round(sum(backends), 2)
        ours = sum(out.values())
        out["wall_s"] = round(after["_wall"] - before["_wall"], 2)
        out["other_s"] = round(max(0.0, after["_machine"] - before["_machine"] - ours), 2)
        return out
