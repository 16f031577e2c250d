#!/usr/bin/env bash
# Install what the tests need and run the whole suite: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages for the browser tests (Chromium) and the live-containers
# tests (Podman's Docker-compatible API).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v podman >/dev/null || missing+=(podman)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  else
    echo "Not installing ${missing[*]} (needs root); the tests that need them are skipped." >&2
  fi
fi

bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
