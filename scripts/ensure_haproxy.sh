#!/usr/bin/env bash
# The scale profile (`make run-scale`) puts HAProxy in front of the hubs. Installs Debian's
# package when it is missing (root, or sudo without a password), otherwise says how to.
# The default profile (`make run`) never needs it, so the bootstrap does not call this.
set -euo pipefail

if [ -n "${HAPROXY_BIN:-}" ] && [ -x "$HAPROXY_BIN" ]; then
  exit 0
fi
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    SUDO="none"
  fi
  if [ "$SUDO" != "none" ]; then
    say "installing HAProxy (Debian package) for the scale profile's load balancer"
    # the package's service script may try to start a default instance: there is none to
    # start without a frontend, and the launcher runs its own in the foreground
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null 2>&1 ||
       { $SUDO apt-get update -qq >/dev/null 2>&1 &&
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }; then
      { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } && exit 0
    fi
  fi
fi
cat >&2 <<'EOF'
error: the scale profile needs HAProxy (the load balancer in front of the hubs) and it is
       not installed, and this script could not install it (needs root or passwordless sudo,
       and Debian's apt). Install it yourself, e.g.:
           sudo apt-get update && sudo apt-get install -y haproxy
       or put an `haproxy` (2.4 or newer) on PATH, or set HAPROXY_BIN to its path.
EOF
exit 1
