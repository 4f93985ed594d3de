#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (no browser download at run
# time). Install it when missing: as root directly, otherwise through passwordless sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: /usr/bin/chromium is missing and apt-get is not available; install Chromium" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "error: /usr/bin/chromium is missing; run: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi
printf '\033[1m==>\033[0m %s\n' "installing Debian's chromium for the browser tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
