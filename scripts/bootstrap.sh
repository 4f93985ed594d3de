#!/usr/bin/env bash
# First-run bootstrap, fast when everything is already in place:
#   Python 3.10 → .venv → pinned dependencies → .env with fresh secrets → database
#   (migrations, demo data, knowledge base, first admin) → Rasa model (only if inputs changed).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

find_python310() {
  local candidates=(python3.10)
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for p in "$root"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
    candidates+=("$p")
  done
  for c in "${candidates[@]}"; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
  if ! PY=$(find_python310); then
    echo "error: Python 3.10 is required (Rasa 3.6 supports 3.8-3.10 only)." >&2
    echo "       Install it (e.g. 'pyenv install 3.10') or put python3.10 on PATH." >&2
    exit 1
  fi
  say "creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
fi

LOCK_SUM=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat .venv/.lock.sha256 2>/dev/null)" != "$LOCK_SUM" ]; then
  say "installing pinned dependencies (requirements.lock) - first time takes a few minutes"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip<26"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off \
    -r requirements.lock
  echo "$LOCK_SUM" > .venv/.lock.sha256
fi

if [ ! -f .env ]; then
  say "creating .env from .env.example with fresh secrets"
  .venv/bin/python scripts/make_env.py
fi

mkdir -p var models
say "preparing the database (migrations, demo data, first admin)"
.venv/bin/python -m bot setup
.venv/bin/python -m bot train
