#!/usr/bin/env bash
# Create .venv (once) with CPU PyTorch and sparsercnn installed in editable mode with its extras.
# Torch is installed first and pinned so pip never pulls a CUDA build.
# --browser: also install Debian's chromium (as root, with apt-get) for the page's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    *) echo "setup.sh: unknown option $arg (known: --browser)" >&2; exit 2 ;;
  esac
done
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" 2>&1 | grep -v "is ignored" || true
python -m pip install -q -e ".[dev,export,serve,video]" 2>&1 | grep -v "is ignored" || true
python -c "import sparsercnn, torch; print(f'sparsercnn ready (torch {torch.__version__})')"
if [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    echo "chromium installed for the browser test"
  else
    echo "no /usr/bin/chromium and no root apt-get to install it: the browser test will be skipped"
  fi
fi
