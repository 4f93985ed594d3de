"""Typed settings read once from the environment.

Every tunable of the product is here, with its default, so that the README's configuration
table, ``.env.example`` and the code can be checked against one list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = ROOT / "var"


def _dotenv() -> dict[str, str]:
    """Values from ``.env`` (or ``ENV_FILE``); the real environment always wins over them."""
    path = Path(os.environ.get("ENV_FILE") or ROOT / ".env")
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def _env(name: str, default: str) -> str:
    value = os.environ.get(name) or _dotenv().get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class Settings:
    """Product configuration. Field names match the environment variables (upper-cased)."""

    database_url: str = field(default_factory=lambda: f"sqlite:///{VAR_DIR / 'postventa.db'}")
    hub_host: str = "127.0.0.1"
    hub_port: int = 8000
    rasa_url: str = "http://127.0.0.1:5005"
    # several Rasa servers sharing the tracker store (scale profile), comma-separated; each
    # sender always goes to the same one while it is up. Empty: RASA_URL alone.
    rasa_urls: str = ""
    rasa_token: str = ""
    rasa_tracker_url: str = ""
    action_server_url: str = "http://127.0.0.1:5055/webhook"
    rasa_timeout: float = 10.0
    # Admission control (bot/hub/rasa_client.py AdmissionGate): turns one hub keeps in flight
    # at each Rasa server (0 = no limit); the others wait in line, in arrival order, up to
    # RASA_QUEUE_TIMEOUT seconds (then the customer is told we are busy; the message is kept).
    # RASA_TIMEOUT counts from when a request is sent, not while it waits in line. The wait
    # limit is for a line that does not move: while it moves, waiting on beats "send it again",
    # which puts the customer at the back of the line.
    rasa_max_in_flight: int = 3
    rasa_queue_timeout: float = 90.0
    conversation_idle_timeout: int = 1800
    default_language: str = "es"
    max_message_chars: int = 10000
    nlu_max_chars: int = 1000
    warranty_years: int = 3
    extended_warranty_years: int = 2
    return_days: int = 30
    refund_days: int = 14
    order_service: str = "db"  # db | rest
    order_api_url: str = ""
    order_api_token: str = ""
    order_api_timeout: float = 3.0
    upload_max_bytes: int = 5_000_000  # photos customers attach to a claim
    # all stored photos together (sum of their sizes): beyond it uploads get 507, the operator
    # a warning — a full disk would stop the database, not only the photos
    upload_quota_bytes: int = 2_000_000_000
    upload_dir: str = ""  # where those photos are stored (var/uploads; relative: under ROOT)
    max_body_bytes: int = 1_000_000  # any other request body (JSON, forms, webhooks)
    # transcripts and photos of conversations quiet for this many days are erased by the hub
    # (hourly); cases, survey scores and times stay for the KPIs. 0 keeps them forever.
    retention_days: int = 365
    survey_csat: bool = False  # also ask CSAT (1-5) in the closing survey
    # KPI dashboard: service-level targets whose compliance it charts (share of first agent
    # replies after a hand-off within the minutes, of cases resolved within the hours)
    sla_first_response_minutes: int = 30
    sla_resolution_hours: int = 168
    secret_key: str = ""
    # Telegram (enabled only when a token is set). Webhook mode when TELEGRAM_WEBHOOK_URL is
    # set (public HTTPS URL that reaches the hub's /telegram/webhook), polling otherwise.
    telegram_bot_token: str = ""
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_url: str = "https://api.telegram.org"  # a local fake Bot API in tests
    telegram_link_ttl: int = 600  # seconds a widget → Telegram hand-over link stays valid
    # Web widget: other sites allowed to embed it (comma-separated origins; empty = same
    # origin only) and how fast one customer may send (burst, then messages per second; the
    # same budget for the widget's sockets, the turn API and photo uploads).
    widget_origins: str = ""
    # Origins (scheme://host[:port]) at which people reach the hub by name, comma-separated:
    # the console accepts logins only from these, IP addresses and localhost (DNS rebinding)
    public_origins: str = ""
    # Human team (hand-off): weekly hours, holidays (YYYY-MM-DD, comma-separated), time zone.
    # the same hours as the knowledge base's answer about them (contact-hours)
    support_hours: str = "mon-fri 09:00-20:00; sat 10:00-14:00"
    support_holidays: str = ""
    support_timezone: str = "Europe/Madrid"
    widget_rate_burst: int = 8
    widget_rate_per_second: float = 2.0
    # The same per client address (all senders behind it together). Generous: a shop's or a
    # carrier's NAT puts many real customers behind one address (see bot/hub/rate_limit.py).
    ip_rate_burst: int = 60
    ip_rate_per_second: float = 10.0
    # Redis shared by several hub processes (their rate limits then add up to one budget);
    # empty = limits kept in the process's memory. Keys start with the prefix.
    redis_url: str = ""
    redis_key_prefix: str = "postventa:"
    log_level: str = "INFO"
    log_dir: str = ""  # where `python -m bot run` writes the processes' logs (var/log)
    # Rasa's token goes in a header (understood by `python -m bot.rasa_entry`); set this only
    # for a Rasa you start yourself with plain `rasa run --auth-token` (it also means a Rasa
    # that cannot take a turn's tracker events with the message: bot/hub/rasa_client.py)
    rasa_token_in_query: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        values: dict[str, object] = {}
        dotenv = _dotenv()
        for f in fields(cls):
            raw = os.environ.get(f.name.upper()) or dotenv.get(f.name.upper())
            if raw is None or raw == "":
                continue
            if f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("float", float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        return cls(**values)

    def tracker_url(self) -> str:
        """Where Rasa keeps trackers: PostgreSQL beside our tables, or its own SQLite file.

        A separate SQLite file keeps Rasa's writes from contending with the hub's.
        """
        if self.rasa_tracker_url:
            return self.rasa_tracker_url
        if self.database_url.startswith("sqlite"):
            return f"sqlite:///{VAR_DIR / 'rasa_tracker.db'}"
        return self.database_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests build their own ``Settings``)."""
    return Settings.from_env()
