"""Train the Rasa model only when its inputs changed.

The fingerprint is a hash of ``data/``, ``config.yml``, ``domain.yml`` and the code of our own
NLU components (``nlu_components/*.py``: a change in how features or intents are computed
changes the model); it is written next to the model after a successful training, so an
interrupted training retrains next time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.core.config import ROOT

MODEL_NAME = "postventa"


def model_path(root: Path = ROOT) -> Path:
    return root / "models" / f"{MODEL_NAME}.tar.gz"


def fingerprint(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    files = (sorted((root / "data").rglob("*.yml")) + [root / "config.yml", root / "domain.yml"]
             + sorted((root / "nlu_components").glob("*.py")))
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamp(root: Path) -> Path:
    return root / "models" / f"{MODEL_NAME}.fingerprint"


def is_up_to_date(root: Path = ROOT) -> bool:
    stamp = _stamp(root)
    return (
        model_path(root).exists()
        and stamp.exists()
        and stamp.read_text().strip() == fingerprint(root)
    )


def rasa_env() -> dict[str, str]:
    """Environment for every Rasa subprocess: no telemetry, quiet TensorFlow."""
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    # config.yml names our own NLU component (nlu_components/): Rasa must be able to import it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def train(force: bool = False, root: Path = ROOT) -> bool:
    """Train if needed; returns True when a training ran. Raises on failure."""
    if not force and is_up_to_date(root):
        print("model is up to date (data, config and domain unchanged)", flush=True)
        return False
    print("training the Rasa model (NLU + dialogue); this takes a few minutes…", flush=True)
    started = time.monotonic()
    # The inputs as they were when training started: an edit made during the training must
    # make the next run train again, not be stamped as included.
    inputs = fingerprint(root)
    rasa = Path(sys.executable).with_name("rasa")
    cmd = [
        str(rasa), "train", "--data", "data", "--config", "config.yml", "--domain", "domain.yml",
        "--out", "models", "--fixed-model-name", MODEL_NAME,
    ]
    subprocess.run(cmd, cwd=root, env=rasa_env(), check=True)
    _stamp(root).write_text(inputs + "\n")
    print(f"model trained in {time.monotonic() - started:.0f}s: {model_path(root)}", flush=True)
    return True
