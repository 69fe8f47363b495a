#!/usr/bin/env bash
# Install (dev extras), lint and type-check, then run the whole test suite; real-data tests
# read $LEGAL_HPO_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
. .venv/bin/activate
ruff check .
mypy
python -m pytest -q "$@"
