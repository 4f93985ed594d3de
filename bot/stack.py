"""Start, supervise and stop the three processes: Rasa server, action server, hub.

Used by `make run`, the integration tests and the benchmarks, so all of them exercise the
same startup. Each child gets its own process group, so stopping kills grandchildren too.

* No secret on a command line: Rasa starts through ``bot.rasa_entry``, which reads its API
  token from the environment (``ps`` shows every process's arguments to every user).
* Log files are created 0600 (the hub's log names customers and agents).
* Children die with the process that started them, even when it is killed with SIGKILL
  (``PR_SET_PDEATHSIG``), so a crashed launcher leaves no process holding the ports.
* A port already in use is reported with the process that holds it, before anything starts.
* ``supervise()`` (called in a loop by `python -m bot run`) restarts a child that died, with
  exponential back-off, and says so in the launcher's output and ``<log_dir>/stack.log``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.core.config import ROOT, VAR_DIR, Settings
from bot.training import model_path, rasa_env

RESTART_FIRST_DELAY = 1.0  # seconds before the first restart of a dead child
RESTART_MAX_DELAY = 30.0  # back-off doubles per consecutive crash, up to this
STABLE_AFTER = 60.0  # a child up this long has its back-off reset
PR_SET_PDEATHSIG = 1
LOG_MODE = 0o600

_ENV_OF_PORT = {"hub": "HUB_PORT", "rasa": "RASA_PORT", "actions": "ACTION_PORT"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortInUse(RuntimeError):
    """A port the stack needs is taken (message: which port, by which process)."""


# --- who holds a port -----------------------------------------------------------------------

def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    shown = []
    for arg in args:  # an old launcher put Rasa's token here: never repeat it
        if arg.startswith("--auth-token") or "token=" in arg:
            arg = arg.split("=", 1)[0] + "=***"
        shown.append(arg)
    text = " ".join(shown)
    return text if len(text) <= 160 else text[:157] + "..."


def port_owner(port: int) -> str | None:
    """'pid 123: python -m uvicorn …' for the process listening on ``port`` (None: unknown,
    e.g. a process of another user)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    return f"pid {proc.name}: {_cmdline(int(proc.name))}"
            except OSError:
                continue
    return None


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


# --- dying with the parent ---------------------------------------------------------------------

def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGKILL the child when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not after fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: follow it now
            os._exit(1)

    return preexec


def _open_log(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_MODE)
    os.fchmod(fd, LOG_MODE)  # files from older runs, created with the umask
    return fd


@dataclass
class Stack:
    settings: Settings
    rasa_port: int
    action_port: int
    log_dir: Path = field(default_factory=lambda: VAR_DIR / "log")
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # supervision state: consecutive restarts, when a dead child is due, when it started
    restarts: dict[str, int] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    say: Callable[[str], None] | None = None

    @property
    def hub_url(self) -> str:
        return f"http://{self.settings.hub_host}:{self.settings.hub_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def env(self, name: str | None = None) -> dict[str, str]:
        """Environment of a child; only Rasa and the hub get Rasa's token."""
        s = self.settings
        env = rasa_env()
        env.update({
            "DATABASE_URL": s.database_url,
            "RASA_URL": self.rasa_url,
            "RASA_TOKEN": s.rasa_token,
            "ACTION_SERVER_URL": f"http://127.0.0.1:{self.action_port}/webhook",
            "RASA_TRACKER_URL": s.tracker_url(),
            "RASA_TRACKER_DIALECT": s.tracker_url().split(":", 1)[0].split("+")[0],
            "HUB_HOST": s.hub_host,
            "HUB_PORT": str(s.hub_port),
            "SANIC_HOST": "127.0.0.1",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        if name and name.split("-")[0] == "actions":  # also the scale profile's actions-k
            env.pop("RASA_TOKEN", None)
            env.pop("ADMIN_PASSWORD", None)
            env.pop("NEW_USER_PASSWORD", None)
        return env

    def _spawn(self, name: str, cmd: list[str]) -> None:
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = _open_log(self.log_dir / f"{name}.log")
        try:
            self.procs[name] = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env(name), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        finally:
            os.close(log)
        self.started_at[name] = time.monotonic()

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        return {
            "actions": [py, "-m", "rasa_sdk", "--actions", "actions",
                        "-p", str(self.action_port)],
            # the token comes from RASA_TOKEN in the environment, not from argv (see
            # bot/rasa_entry.py)
            "rasa": [
                py, "-m", "bot.rasa_entry", "run", "-m", str(model_path()), "--enable-api",
                "-i", "127.0.0.1", "-p", str(self.rasa_port), "--endpoints", "endpoints.yml",
                "--credentials", "credentials.yml",
            ],
            "hub": [
                py, "-m", "uvicorn", "--factory", "bot.hub.app:create_app",
                "--host", self.settings.hub_host, "--port", str(self.settings.hub_port),
                "--no-access-log", "--timeout-graceful-shutdown", "5",
            ],
        }

    def ports(self) -> dict[str, tuple[str, int]]:
        return {"hub": (self.settings.hub_host, self.settings.hub_port),
                "rasa": ("127.0.0.1", self.rasa_port),
                "actions": ("127.0.0.1", self.action_port)}

    def port_setting(self, name: str) -> str:
        """The environment variable that moves a child's port (named in port errors)."""
        return _ENV_OF_PORT[name]

    def describe(self) -> str:
        """What the launcher says it starts and stops."""
        return "Rasa server, action server and hub"

    def banner_lines(self) -> list[str]:
        """Extra lines for the launcher's banner (the scale profile lists its processes)."""
        return []

    def check_ports(self, names: list[str] | None = None) -> None:
        """Raise ``PortInUse`` naming the port and its holder when one is taken."""
        for name, (host, port) in self.ports().items():
            if names is None or name in names:
                self.check_port(name, host, port, self.port_setting(name))

    @staticmethod
    def check_port(name: str, host: str, port: int, setting: str) -> None:
        if port_in_use(host, port):
            owner = port_owner(port) or "a process this user cannot see"
            raise PortInUse(
                f"port {port} ({name}) is already in use by {owner}; stop that process "
                f"or choose another port with {setting}")

    def start(self, only: str | None = None) -> None:
        """Start all three processes (or one of them again, e.g. after a fault test)."""
        if not self.settings.rasa_token:
            raise RuntimeError("RASA_TOKEN is empty: Rasa's HTTP API must not run without one")
        if not model_path().exists():
            raise RuntimeError(f"no trained model at {model_path()}: run `make train`")
        names = [n for n in self.commands() if only in (None, n)]
        self.check_ports(names)
        for name, cmd in self.commands().items():
            if name in names:
                self._spawn(name, cmd)

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.dead():
                raise RuntimeError(f"process exited: {self.dead()}; see logs in {self.log_dir}")
            try:
                resp = httpx.get(f"{self.hub_url}/healthz", timeout=5.0)
                if resp.status_code == 200:
                    return
                last = resp.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise TimeoutError(f"stack not healthy after {timeout:.0f}s: {last}")

    # --- supervision ---------------------------------------------------------------------

    def _report(self, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} launcher: {text}"
        (self.say or (lambda t: print(t, file=sys.stderr, flush=True)))(line)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            fd = _open_log(self.log_dir / "stack.log")
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def supervise(self, now: float | None = None) -> list[str]:
        """One round: schedule a restart for each child found dead, restart those that are
        due. Returns the children restarted in this round."""
        now = time.monotonic() if now is None else now
        restarted = []
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                if now - self.started_at.get(name, now) >= STABLE_AFTER:
                    self.restarts.pop(name, None)
                continue
            if name not in self.due:
                count = self.restarts.get(name, 0)
                delay = min(RESTART_FIRST_DELAY * 2 ** count, RESTART_MAX_DELAY)
                self.due[name] = now + delay
                how = f"signal {-code}" if code < 0 else f"code {code}"
                self._report(f"{name} exited ({how}); restarting in {delay:.0f}s "
                             f"(restart #{count + 1}; logs: {self.log_dir / (name + '.log')})")
                continue
            if now < self.due[name]:
                continue
            del self.due[name]
            try:
                self.check_ports([name])
            except PortInUse as exc:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._report(f"cannot restart {name} yet: {exc}")
                continue
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self._spawn(name, self.commands()[name])
            self._report(f"{name} restarted (pid {self.procs[name].pid})")
            restarted.append(name)
        return restarted

    def stop_one(self, name: str, timeout: float = 15.0) -> None:
        self.due.pop(name, None)
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in ("hub", "rasa", "actions"):
            self.stop_one(name)
