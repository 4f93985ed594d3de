"""The scale profile's processes, supervised exactly like the default profile's (same spawn,
same log files, same restart back-off, same death with the launcher): ``actions-1..K``,
``rasa-1..N``, ``hub-1..M`` and ``balancer`` (HAProxy, in front of the hubs and, on the
loopback, of the action servers).

Only the balancer listens on ``HUB_HOST``; every other process on 127.0.0.1. Each process
learns where the others are from its environment only (``RASA_URLS``, ``REDIS_URL``,
``DATABASE_URL``, ``ACTION_SERVER_URL``), so the same variables split the layout across
machines (README, "Scale profile").
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

import httpx

from bot.scale import haproxy
from bot.scale.endpoints import PASSWORD_ENV, redis_parts
from bot.scale.layout import ScaleLayout
from bot.stack import Stack

# the environment a balancer needs: no secret, no database
_BALANCER_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


def _hide_password(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':')[0]}:***@{tail}" if ":" in userinfo else url


@dataclass
class ScaleStack(Stack):
    layout: ScaleLayout | None = field(default=None)

    @property
    def lay(self) -> ScaleLayout:
        assert self.layout is not None, "ScaleStack needs a layout (bot.scale.prepare)"
        return self.layout

    def describe(self) -> str:
        return (f"{len(self.lay.rasa_ports)} Rasa servers, {len(self.lay.action_ports)} action "
                f"servers, {len(self.lay.hub_ports)} hubs and the load balancer (HAProxy)")

    def banner_lines(self) -> list[str]:
        lay = self.lay
        hubs = ", ".join(f"{n} 127.0.0.1:{p}" for n, p in lay.hubs)
        rasa = ", ".join(f"{n} 127.0.0.1:{p}" for n, p in lay.rasa)
        return [
            f"  Profile  : scale ({self.describe()})",
            f"  Balancer : {self.hub_url} (HAProxy, {lay.run_dir / 'haproxy.cfg'}) → {hubs}",
            f"  Rasa     : {rasa} (SQL tracker store + RedisLockStore)",
            f"  Actions  : 127.0.0.1:{lay.action_port} (HAProxy) → "
            + ", ".join(f"{n} 127.0.0.1:{p}" for n, p in lay.actions),
            f"  Database : {_hide_password(lay.database_url)} (cases and Rasa trackers)",
            f"  Redis    : {_hide_password(lay.redis_url)} (key prefix {lay.redis_key_prefix})",
        ]

    # --- what runs where ---------------------------------------------------------------

    def commands(self) -> dict[str, list[str]]:
        base = super().commands()
        lay = self.lay
        cmds: dict[str, list[str]] = {}
        for name, port in lay.actions:
            cmd = list(base["actions"])
            cmd[cmd.index("-p") + 1] = str(port)
            cmds[name] = cmd
        rasa = base["rasa"]
        for name, port in lay.rasa:
            cmd = list(rasa)
            cmd[cmd.index("-p") + 1] = str(port)
            cmd[cmd.index("--endpoints") + 1] = str(lay.run_dir / "endpoints.yml")
            cmds[name] = cmd
        hub = base["hub"]
        for name, port in lay.hubs:
            cmd = list(hub)
            cmd[cmd.index("--host") + 1] = "127.0.0.1"
            cmd[cmd.index("--port") + 1] = str(port)
            # the client's address comes from the balancer's X-Forwarded-For (rate limits
            # per address); only the balancer, on this machine, is believed
            cmds[name] = [*cmd, "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
        cmds["balancer"] = haproxy.command(lay.run_dir / "haproxy.cfg")
        return cmds

    def ports(self) -> dict[str, tuple[str, int]]:
        lay = self.lay
        ports = {n: ("127.0.0.1", p) for n, p in lay.actions}
        ports.update({n: ("127.0.0.1", p) for n, p in lay.rasa})
        ports.update({n: ("127.0.0.1", p) for n, p in lay.hubs})
        ports["balancer"] = (self.settings.hub_host, self.settings.hub_port)
        return ports

    def port_setting(self, name: str) -> str:
        if name.startswith("rasa-"):
            return "SCALE_RASA_PORTS (or RASA_PORT, the first of consecutive ports)"
        if name.startswith("hub-"):
            return "SCALE_HUB_PORTS (or HUB_PORT: the hubs take the ports after it)"
        if name.startswith("actions-"):
            return "SCALE_ACTION_PORTS (or ACTION_PORT: the action servers take the ports after it)"
        return {"balancer": "HUB_PORT"}.get(name) or super().port_setting(name)

    def check_ports(self, names: list[str] | None = None) -> None:
        super().check_ports(names)
        if names is None or "balancer" in names:  # it also listens for the Rasa servers
            self.check_port("balancer (action servers)", "127.0.0.1", self.lay.action_port,
                            "ACTION_PORT")

    def env(self, name: str | None = None) -> dict[str, str]:
        lay = self.lay
        if name == "balancer":
            return {k: os.environ[k] for k in _BALANCER_ENV if k in os.environ}
        env = super().env(name)
        env.update({"REDIS_URL": lay.redis_url, "REDIS_KEY_PREFIX": lay.redis_key_prefix})
        if name and name.startswith("hub-"):
            i = lay.hub_names.index(name)
            urls = lay.rasa_urls
            # RASA_URLS is what the hubs use (each sender to its replica); RASA_URL, for a hub
            # that reads only it, spreads the hubs over the replicas
            env.update({"HUB_HOST": "127.0.0.1", "HUB_PORT": str(lay.hub_ports[i]),
                        "RASA_URL": urls[i % len(urls)], "RASA_URLS": ",".join(urls),
                        "HUB_NAME": name})
        if name and name.startswith("rasa-"):
            password = redis_parts(lay.redis_url)["password"]
            if password:
                env[PASSWORD_ENV] = str(password)
        return env

    # --- health and stopping -------------------------------------------------------------

    def _unhealthy(self, client: httpx.Client) -> str | None:
        """None when every hub, every Rasa server and the balancer answer; else who not."""
        lay = self.lay
        probes = [(n, f"http://127.0.0.1:{p}/") for n, p in lay.rasa]
        probes += [(n, f"http://127.0.0.1:{p}/health") for n, p in lay.actions]
        probes += [(n, f"http://127.0.0.1:{p}/healthz")
                   for n, p in lay.hubs]
        probes.append(("balancer", f"{self.hub_url}/healthz"))
        for name, url in probes:
            try:
                resp = client.get(url)
            except httpx.HTTPError as exc:
                return f"{name}: {exc or type(exc).__name__}"
            if resp.status_code != 200:
                return f"{name}: {resp.status_code} {resp.text[:200]}"
        # every hub answers; the balancer must also have seen it pass its own checks
        sock = haproxy.stats_socket_of(lay.run_dir / "haproxy.cfg")
        waiting = haproxy.servers_not_up(sock) + haproxy.servers_not_up(sock, "actions")
        if waiting:
            return f"balancer: not yet sending traffic to {', '.join(waiting)}"
        return None

    def wait_healthy(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.dead():
                    raise RuntimeError(f"process exited: {self.dead()}; see logs in "
                                       f"{self.log_dir}")
                problem = self._unhealthy(client)
                if problem is None:
                    return
                last = problem
                time.sleep(0.5)
        raise TimeoutError(f"scale stack not healthy after {timeout:.0f}s: {last}")

    def stop(self) -> None:
        """Outside in (balancer, hubs, Rasa, actions); each tier in parallel, because a Rasa
        server takes seconds to stop and there are several."""
        lay = self.lay
        for tier in (["balancer"], lay.hub_names, lay.rasa_names, lay.action_names):
            self._stop_tier(tier)

    def _stop_tier(self, names: list[str], timeout: float = 15.0) -> None:
        running = []
        for name in names:
            self.due.pop(name, None)
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                running.append(proc)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
