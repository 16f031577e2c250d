#!/usr/bin/env bash
# Install what the app needs and start it: bash scripts/run.sh [app.py flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"
