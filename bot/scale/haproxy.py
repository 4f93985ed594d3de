"""HAProxy in front of the hubs, and of the action servers: its config, generated at every
start of the scale profile.

Why these settings:

* ``leastconn``: widget sockets stay open for minutes, so counting open connections spreads
  customers better than taking turns per request.
* Health checks on ``/healthz`` (200 only when the hub's Rasa, action server and database
  answer). When *no* hub is fully healthy (Rasa or the action server down for all of them) the
  traffic still goes to any hub that is alive (``hubs_any``): it apologises to customers and
  keeps the agents' console working, which beats a bare 503 from the balancer.
* The client's address travels in ``X-Forwarded-For`` (the hubs' per-address rate limit, with
  uvicorn's ``--proxy-headers``); the balancer is the edge, so a client's own
  ``X-Forwarded-For`` is dropped, not believed.
* ``timeout tunnel`` covers ``/ws`` after the upgrade; the console's event stream
  (``/console/events``) is a plain streamed answer: HAProxy forwards it as it comes (it does
  not buffer responses) and the hub's heartbeat (every 15 s) stays well inside
  ``timeout server`` (150 s as shipped: a turn's wait in line, ``RASA_QUEUE_TIMEOUT``, and
  its Rasa calls, ``RASA_TIMEOUT``, with room to spare; more when they are raised).
* ``X-Served-By`` names the hub that answered (tests and the load bench count them).
* The action servers sit behind one address on the loopback (``ACTION_PORT``), which every
  Rasa server calls, also ``leastconn``: one action server per Rasa server would tie a Rasa
  server's turns to a process that may be busy or dead, and a single one was the scale
  profile's ceiling (it does the FAQ search and parses typed answers with the sentence model:
  about a third of a turn's CPU). An action server that fails its ``/health`` check is taken
  out; a call that cannot connect is sent to another one (``redispatch``). Nothing that
  reached an action server is retried: an action may have written a case.
* A stats socket next to the config (owner only, read-only level): the launcher declares the
  stack ready only when the balancer itself counts every hub as UP. A hub that booted after
  the balancer needs two passing checks (``rise 2``) before it gets traffic; without this
  wait the first seconds all went to the other hub.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
from pathlib import Path

TURN_TIMEOUT_S = 120  # at least; longer than any turn (see ``turn_timeout``)
TUNNEL_TIMEOUT = "1h"  # an idle widget socket (the hub pings it every 20 s anyway)
CHECK = "inter 2s fastinter 1s downinter 2s fall 2 rise 2"


class HAProxyMissing(RuntimeError):
    """No usable haproxy binary (the message says how to get one)."""


def binary() -> str:
    """``HAPROXY_BIN``, else ``haproxy`` on PATH or in /usr/sbin (not on a user's PATH)."""
    given = os.environ.get("HAPROXY_BIN", "")
    found = given or shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if not found or not os.access(found, os.X_OK):
        raise HAProxyMissing(
            "the scale profile needs HAProxy (the load balancer in front of the hubs): run "
            "`scripts/ensure_haproxy.sh` (what `make run-scale` does; installs Debian's "
            "package) or `sudo apt-get install -y haproxy`, or set HAPROXY_BIN")
    return found


def max_connections() -> int:
    """What this process's open-file limit allows (HAProxy refuses to start asking for more:
    each proxied connection holds two descriptors), at most 10000."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10000
    return max(100, min(10000, (soft - 200) // 2))


def turn_timeout(rasa_timeout: float, queue_timeout: float = 90.0) -> int:
    """Seconds the balancer waits for a hub's answer: a turn may wait in line for its Rasa
    server (``RASA_QUEUE_TIMEOUT``), then for Rasa (``RASA_TIMEOUT`` per request, a few
    requests), so well beyond that; the hub answers by then, if only to say it is busy."""
    return max(TURN_TIMEOUT_S, int(queue_timeout + 3 * rasa_timeout) + 30)


def render(bind_host: str, bind_port: int, hubs: list[tuple[str, int]],
           maxconn: int | None = None, rasa_timeout: float = 10.0,
           queue_timeout: float = 90.0, stats_socket: Path | None = None,
           actions: list[tuple[str, int]] | None = None, action_port: int | None = None) -> str:
    """The config text for ``hubs`` = [(name, port on 127.0.0.1), …], and for ``actions``
    (the same) behind 127.0.0.1:``action_port`` when given."""
    maxconn = maxconn or max_connections()
    turn = turn_timeout(rasa_timeout, queue_timeout)
    bind = f"[{bind_host}]:{bind_port}" if ":" in bind_host else f"{bind_host}:{bind_port}"

    def servers(check: str, of: list[tuple[str, int]] = hubs) -> str:
        return "\n".join(f"    server {name} 127.0.0.1:{port} {check}" for name, port in of)

    action_block = "" if not actions or action_port is None else f"""
# the action servers, for the Rasa servers on this machine only
frontend actions_in
    bind 127.0.0.1:{action_port}
    no log
    default_backend actions

backend actions
    balance leastconn
    option httpchk
    http-check send meth GET uri /health
    http-check expect status 200
    # only a call that never connected goes to another action server
    retry-on conn-failure
    retries 2
    option redispatch 1
{servers("check " + CHECK, actions)}
"""

    return f"""\
# Generated by bot/scale/haproxy.py at every start of the scale profile: edit that file.
global
    log stdout format raw local0 info
    maxconn {maxconn}
    # one thread is plenty for a few thousand requests a second and leaves the cores to
    # Rasa and the hubs
    nbthread 1
    hard-stop-after 10s
{f"    stats socket {stats_socket} mode 600 level user" if stats_socket else ""}

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    timeout connect 5s
    timeout client {turn}s
    timeout server {turn}s
    timeout http-request 15s
    timeout http-keep-alive 15s
    timeout tunnel {TUNNEL_TIMEOUT}
    timeout client-fin 5s

frontend public
    bind {bind}
    maxconn {maxconn}
    http-request del-header X-Forwarded-For
    http-request set-header X-Forwarded-Proto http
    use_backend hubs_any if {{ nbsrv(hubs) eq 0 }}
    default_backend hubs

backend hubs
    balance leastconn
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    http-response set-header X-Served-By %[srv_name]
{servers("check " + CHECK)}

# no hub is fully healthy: any hub that accepts connections (it apologises for what is down)
backend hubs_any
    balance leastconn
    http-response set-header X-Served-By %[srv_name]
{servers("check " + CHECK)}
{action_block}"""


def write_config(path: Path, bind_host: str, bind_port: int, hubs: list[tuple[str, int]],
                 rasa_timeout: float = 10.0, queue_timeout: float = 90.0,
                 actions: list[tuple[str, int]] | None = None,
                 action_port: int | None = None) -> Path:
    """Write the config and have HAProxy validate it (a clear error now, not a dead child)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(render(bind_host, bind_port, hubs, rasa_timeout=rasa_timeout,
                           queue_timeout=queue_timeout, stats_socket=stats_socket_of(path),
                           actions=actions, action_port=action_port),
                    encoding="utf-8")
    check = subprocess.run([binary(), "-c", "-q", "-f", str(path)], capture_output=True,
                           text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"HAProxy refuses the generated {path}:\n"
                           f"{(check.stderr or check.stdout).strip()}")
    return path


def stats_socket_of(config: Path) -> Path:
    """The balancer's stats socket, next to its config (in the owner-only run directory)."""
    return config.with_name("haproxy.sock")


def servers_not_up(sock: Path, backend: str = "hubs", timeout: float = 2.0) -> list[str]:
    """Names of ``backend``'s servers the balancer does not count as UP (all of them when
    the socket does not answer yet), read from ``show stat`` on the stats socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sock))
            conn.sendall(b"show stat\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError:
        return ["(balancer stats socket not answering)"]
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return ["(balancer stats unreadable)"]
    header = lines[0][2:].split(",")
    name, server, status = (header.index(k) for k in ("pxname", "svname", "status"))
    rows = [line.split(",") for line in lines[1:] if line]
    servers = [r for r in rows if r[name] == backend and r[server] not in ("FRONTEND", "BACKEND")]
    return [r[server] for r in servers if not r[status].startswith("UP")] or (
        [] if servers else [f"(no servers in backend {backend})"])


def command(path: Path) -> list[str]:
    """Foreground (``-db``), so the launcher supervises it like the other children."""
    return [binary(), "-db", "-f", str(path)]
