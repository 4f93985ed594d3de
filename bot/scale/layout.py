"""Who listens where in the scale profile, read from the environment (and ``.env``).

Every address is a setting, because the same layout split across machines only changes
addresses: the hubs find Rasa through ``RASA_URLS``, Redis through ``REDIS_URL``, the database
through ``DATABASE_URL``; the balancer finds the hubs through its generated config.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.core.config import ROOT, VAR_DIR, Settings, _env

# A database and a Redis database number of the scale profile's own, so that it never mixes
# with the default profile's SQLite data or with the tests' Redis keys (db 9).
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postventa_scale"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
MAX_REPLICAS = 16


class LayoutError(ValueError):
    """A scale setting that cannot work (message says which and why)."""


def _ports(raw: str, count: int | None, first: int, name: str, count_name: str) -> list[int]:
    """Explicit ports (comma list), or ``count`` consecutive ones from ``first``."""
    if raw.strip():
        try:
            ports = [int(p) for p in raw.split(",") if p.strip()]
        except ValueError as exc:
            raise LayoutError(f"{name} must be a comma-separated list of ports: {raw!r}") from exc
        if count is not None and count != len(ports):
            raise LayoutError(f"{name} lists {len(ports)} ports but {count_name} is {count}")
        return ports
    return [first + i for i in range(count or 2)]


def _count(get: Callable[[str, str], str], name: str) -> int | None:
    raw = get(name, "")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise LayoutError(f"{name} must be a number, not {raw!r}") from exc
    if not 1 <= value <= MAX_REPLICAS:
        raise LayoutError(f"{name} must be between 1 and {MAX_REPLICAS}, not {value}")
    return value


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


@dataclass(frozen=True)
class ScaleLayout:
    database_url: str
    tracker_url: str
    redis_url: str
    redis_key_prefix: str
    rasa_ports: tuple[int, ...]
    hub_ports: tuple[int, ...]
    action_port: int  # the action servers' one address (the balancer, 127.0.0.1): Rasa calls it
    action_ports: tuple[int, ...]  # each action server's own port (127.0.0.1)
    balancer_host: str
    balancer_port: int
    run_dir: Path  # generated files: Rasa's endpoints, HAProxy's config

    @property
    def rasa_names(self) -> list[str]:
        return [name for name, _ in self.rasa]

    @property
    def hub_names(self) -> list[str]:
        return [name for name, _ in self.hubs]

    @property
    def rasa(self) -> list[tuple[str, int]]:
        """[("rasa-1", port), …]"""
        return [(f"rasa-{i + 1}", p) for i, p in enumerate(self.rasa_ports)]

    @property
    def hubs(self) -> list[tuple[str, int]]:
        """[("hub-1", port), …]"""
        return [(f"hub-{i + 1}", p) for i, p in enumerate(self.hub_ports)]

    @property
    def actions(self) -> list[tuple[str, int]]:
        """[("actions-1", port), …]"""
        return [(f"actions-{i + 1}", p) for i, p in enumerate(self.action_ports)]

    @property
    def action_names(self) -> list[str]:
        return [name for name, _ in self.actions]

    @property
    def rasa_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.rasa_ports]

    @property
    def lock_key_prefix(self) -> str:
        """Rasa's RedisLockStore accepts only an alphanumeric prefix (else it ignores it)."""
        return re.sub(r"[^A-Za-z0-9]", "", self.redis_key_prefix) or "postventa"

    @classmethod
    def from_env(cls, settings: Settings,
                 get: Callable[[str, str], str] = _env) -> ScaleLayout:
        given_db = get("SCALE_DATABASE_URL", "")
        database_url = given_db or (settings.database_url if _is_postgres(settings.database_url)
                                    else DEFAULT_DATABASE_URL)
        if not _is_postgres(database_url):
            raise LayoutError("the scale profile keeps cases and Rasa's trackers in PostgreSQL: "
                              f"SCALE_DATABASE_URL must be a postgresql:// URL, not "
                              f"{database_url.split(':', 1)[0]}:")
        tracker = settings.rasa_tracker_url
        tracker_url = tracker if tracker and _is_postgres(tracker) and not given_db \
            else database_url
        rasa_ports = _ports(get("SCALE_RASA_PORTS", ""), _count(get, "RASA_REPLICAS"),
                            int(get("RASA_PORT", "5005")), "SCALE_RASA_PORTS", "RASA_REPLICAS")
        hub_ports = _ports(get("SCALE_HUB_PORTS", ""), _count(get, "HUB_REPLICAS"),
                           settings.hub_port + 1, "SCALE_HUB_PORTS", "HUB_REPLICAS")
        action_port = int(get("ACTION_PORT", "5055"))
        action_ports = _ports(get("SCALE_ACTION_PORTS", ""), _count(get, "ACTION_REPLICAS"),
                              action_port + 1, "SCALE_ACTION_PORTS", "ACTION_REPLICAS")
        every = [*rasa_ports, *hub_ports, action_port, *action_ports, settings.hub_port]
        if len(set(every)) != len(every):
            raise LayoutError(f"the scale profile's ports overlap: {every} (RASA_PORT, "
                              "SCALE_RASA_PORTS, SCALE_HUB_PORTS, ACTION_PORT, "
                              "SCALE_ACTION_PORTS, HUB_PORT)")
        run_dir = Path(get("SCALE_DIR", str(VAR_DIR / "scale")))
        return cls(
            database_url=database_url, tracker_url=tracker_url,
            redis_url=settings.redis_url or DEFAULT_REDIS_URL,
            redis_key_prefix=settings.redis_key_prefix,
            rasa_ports=tuple(rasa_ports), hub_ports=tuple(hub_ports), action_port=action_port,
            action_ports=tuple(action_ports),
            balancer_host=settings.hub_host, balancer_port=settings.hub_port,
            run_dir=run_dir if run_dir.is_absolute() else ROOT / run_dir)
