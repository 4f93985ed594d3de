"""The Rasa project itself: contract intents, bilingual responses, data validation, stories."""

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.core.config import ROOT
from bot.training import fingerprint, model_path
from tests.conftest import ARTIFACTS

CONTRACT_INTENTS = (
    "greet goodbye thank affirm deny bot_challenge out_of_scope request_human complain "
    "ask_faq open_warranty_claim open_return check_case_status inform"
).split()
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())


def nlu_examples_by_language() -> Counter:
    """Count training examples per (intent, language) using the `# es` / `# en` markers."""
    counts: Counter = Counter()
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        lang = intent = None
        in_block = False
        for line in path.read_text().splitlines():
            marker = re.match(r"^\s*#\s*(es|en)\s*$", line)
            if marker:
                lang, in_block = marker.group(1), False
                continue
            m = re.match(r"^\s*- intent:\s*(\S+)", line)
            if m:
                intent, in_block = m.group(1), False
                continue
            if re.match(r"^\s*examples:\s*\|", line):
                in_block = intent is not None
                continue
            if re.match(r"^\s*- (regex|lookup|synonym):", line):
                intent, in_block = None, False
                continue
            if in_block and re.match(r"^\s+- \S", line):
                counts[(intent, lang)] += 1
    return counts


def test_every_contract_intent_is_in_the_domain():
    assert set(CONTRACT_INTENTS) <= set(DOMAIN["intents"])


@pytest.mark.parametrize("intent", CONTRACT_INTENTS)
def test_every_contract_intent_has_25_examples_per_language(intent):
    counts = nlu_examples_by_language()
    assert counts[(intent, "es")] >= 25, counts[(intent, "es")]
    assert counts[(intent, "en")] >= 25, counts[(intent, "en")]


@pytest.mark.parametrize("name", sorted(DOMAIN["responses"]))
def test_every_response_has_spanish_default_and_english_variant(name):
    variants = DOMAIN["responses"][name]
    default = [v for v in variants if not v.get("condition")]
    english = [v for v in variants
               if any(c.get("name") == "language" and c.get("value") == "en"
                      for c in v.get("condition") or [])]
    assert default and english, name
    # same buttons (payloads) in both languages
    payloads = lambda v: [b["payload"] for b in v.get("buttons", [])]  # noqa: E731
    assert payloads(default[0]) == payloads(english[0])


def test_dev_set_is_separate_from_training():
    """The NLU development set must not leak into the training data."""
    def texts(path: Path) -> set[str]:
        out = set()
        for item in yaml.safe_load(path.read_text())["nlu"]:
            for line in (item.get("examples") or "").splitlines():
                line = re.sub(r"\[([^\]]+)\]\([^)]+\)|\[([^\]]+)\]\{[^}]+\}",
                              lambda m: m.group(1) or m.group(2), line.strip()[2:])
                out.add(line.strip().lower())
        return out
    train = set().union(*(texts(p) for p in (ROOT / "data" / "nlu").glob("*.yml")))
    overlap = texts(ROOT / "bench" / "nlu_dev.yml") & train
    assert not overlap, sorted(overlap)


def test_fingerprint_tracks_training_inputs(tmp_path):
    for name in ("config.yml", "domain.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.yml").write_text("version: '3.1'\n")
    before = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == before
    (tmp_path / "data" / "a.yml").write_text("version: '3.1'\nnlu: []\n")
    assert fingerprint(tmp_path) != before
    changed = fingerprint(tmp_path)
    (tmp_path / "nlu_components").mkdir()
    (tmp_path / "nlu_components" / "intents.py").write_text("WEIGHT = 1\n")
    assert fingerprint(tmp_path) != changed, "NLU component code is a training input"


def _rasa(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    from bot.training import rasa_env

    rasa = Path(sys.executable).with_name("rasa")
    return subprocess.run([str(rasa), *args], cwd=ROOT, env=rasa_env(), capture_output=True,
                          text=True, timeout=timeout)


ACTIONS_SOURCE = "\n".join(p.read_text() for p in (ROOT / "actions").glob("*.py"))


def test_rasa_data_validate_is_clean():
    """No errors and no warnings, except responses that custom actions send themselves
    (Rasa's validator only looks at stories and rules); those must really be used."""
    result = _rasa("data", "validate", "--domain", "domain.yml", "--data", "data")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warnings = [line for line in output.splitlines() if "UserWarning" in line]
    unexplained = []
    for line in warnings:
        m = re.search(r"The utterance '(\w+)' is not used in any story or rule", line)
        # utter_default is sent by Rasa's own action_default_fallback
        if m and (f'"{m.group(1)}"' in ACTIONS_SOURCE or m.group(1).startswith("utter_ask_")
                  or m.group(1) == "utter_default"):
            continue
        # EXTERNAL_* intents are triggered by the hub through Rasa's API, never typed
        if re.search(r"intent 'EXTERNAL_\w+' is listed in the domain file, but is not found",
                     line):
            continue
        unexplained.append(line)
    assert not unexplained, "\n".join(unexplained)


def test_responses_sent_by_actions_exist():
    used = set(re.findall(r'"(utter_\w+)"', ACTIONS_SOURCE)) - {"utter_action"}  # event key
    assert used and used <= set(DOMAIN["responses"]), used - set(DOMAIN["responses"])


def test_rasa_test_stories_pass():
    assert model_path().exists(), "train first (make test does)"
    out = ARTIFACTS / "rasa-test"
    result = _rasa("test", "core", "--model", str(model_path()), "--stories", "tests/stories",
                   "--out", str(out), "--fail-on-prediction-errors")
    failed = out / "failed_test_stories.yml"
    detail = failed.read_text()[:3000] if failed.exists() else result.stdout[-3000:]
    assert result.returncode == 0, detail
