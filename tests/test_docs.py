"""The configuration is documented: every setting is in the README table and .env.example."""

from dataclasses import fields

import pytest

from bot.core.config import ROOT, Settings

README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
EXTRA = ["RASA_PORT", "ACTION_PORT", "ADMIN_USERNAME", "ADMIN_PASSWORD",
         # the scale profile's (bot/scale/layout.py)
         "RASA_REPLICAS", "HUB_REPLICAS", "ACTION_REPLICAS"]


@pytest.mark.parametrize("name", [f.name.upper() for f in fields(Settings)] + EXTRA)
def test_setting_is_documented(name):
    assert f"`{name}`" in README, f"{name} missing from the README configuration table"
    assert f"\n{name}=" in ENV_EXAMPLE, f"{name} missing from .env.example"
