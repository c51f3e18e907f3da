#!/usr/bin/env bash
# Create .venv (once) with CPU PyTorch and sparsercnn installed in editable mode with its extras.
# Torch is installed first and pinned so pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" 2>&1 | grep -v "is ignored" || true
python -m pip install -q -e ".[dev,export,serve,video]" 2>&1 | grep -v "is ignored" || true
python -c "import sparsercnn, torch; print(f'sparsercnn ready (torch {torch.__version__})')"
