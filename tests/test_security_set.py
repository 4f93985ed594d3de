"""The attack set cannot shrink silently: every test it names exists (a rename would otherwise
drop an attack from `make security` without anyone noticing)."""

from __future__ import annotations

import re

from bot.core.config import ROOT
from tests.security_set import ATTACKS, finding_of


def test_every_named_attack_test_exists():
    missing = []
    for finding, patterns in ATTACKS.items():
        assert patterns, finding
        for pattern in patterns:
            file, _, name = pattern.partition("::")
            path = ROOT / "tests" / file
            assert path.is_file(), (finding, file)
            if name and not re.search(rf"^def {re.escape(name)}", path.read_text(), re.M):
                missing.append(pattern)
    assert not missing, missing


def test_findings_are_found_by_node_id():
    assert finding_of("tests/test_hub_hardening.py::test_no_public_api_description") \
        == "Public API description, missing nosniff and security headers"
    assert finding_of("tests/test_privacy.py::test_identifiers[raw0-expected0]") is None
