#!/usr/bin/env bash
# Create .venv (once) with CPU PyTorch and sparsercnn installed in editable mode with its extras.
# Torch is installed first, as the CPU build, so pip never pulls a CUDA build; a torch already
# installed (e.g. a CUDA build for a GPU machine) is kept. TORCH_VERSION picks another version.
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
quiet_pip() {
  # pip, without its notes on config options that this pip ignores; its exit status kept.
  local status=0
  python -m pip "$@" 2>&1 | { grep -v "is ignored" || true; } || status=$?
  return "$status"
}
install_cpu_torch() {
  # PyPI's Linux x86_64 torch is the CUDA build (with ~3 GB of nvidia-* wheels); the CPU build is
  # "+cpu", on PyTorch's CPU index. A local wheel (a find-links folder in pip's config) is tried
  # first, so the CPU index is only asked when none is there. Elsewhere PyPI's torch is CPU-only.
  local version="${TORCH_VERSION:-2.13.0}"
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    quiet_pip install -q "torch==$version"
  elif ! python -m pip install -q "torch==$version+cpu" >/dev/null 2>&1; then
    quiet_pip install -q "torch==$version+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
}
quiet_pip install -q --upgrade pip || true
if ! python -c "import torch" 2>/dev/null && ! install_cpu_torch; then
  echo "setup.sh: could not install CPU torch ${TORCH_VERSION:-2.13.0} (install torch into .venv yourself, then run this again)" >&2
  exit 1
fi
quiet_pip install -q -e ".[dev,export,serve,video]"
python -c "import sparsercnn, torch; print(f'sparsercnn ready (torch {torch.__version__})')"
if [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    echo "chromium installed for the browser test"
  else
    echo "no /usr/bin/chromium and no root apt-get to install it: the browser test will be skipped"
  fi
fi
