"""Write .env from .env.example, filling every secret with a fresh random value."""

import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {"RASA_TOKEN", "SECRET_KEY", "ADMIN_PASSWORD"}

lines = []
for line in (ROOT / ".env.example").read_text().splitlines():
    key, sep, value = line.partition("=")
    if sep and key.strip() in SECRETS and not value.strip():
        line = f"{key}={secrets.token_urlsafe(24)}"
    lines.append(line)
env = ROOT / ".env"
env.write_text("\n".join(lines) + "\n")
env.chmod(0o600)
