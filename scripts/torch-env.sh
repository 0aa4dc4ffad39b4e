#!/usr/bin/env bash
# The libtorch that burn's tch backend links, from PyPI's torch wheel (torch-sys 0.22 needs exactly
# PyTorch 2.9.0), in a virtualenv outside the repository. Idempotent: installs only what is missing.
# PyPI's Linux wheel carries the CUDA libraries (nvidia-* wheels): about 6.8 GB installed, 3.2 GB
# downloaded; the CPU tch backend works without a GPU or driver.
#
# Prints the environment that building (`--features tch`, torch-sys reads LIBTORCH_USE_PYTORCH and
# the venv's python) and running (torch/lib on LD_LIBRARY_PATH) need, as `export` lines on stdout;
# progress goes to stderr:
#
#     eval "$(scripts/torch-env.sh)"            # then: cargo test --release -p vision --features tch
#     eval "$(scripts/torch-env.sh --bench)"    # also torchvision + sentence-transformers, for the
#                                               # bench_resnet50 / bench_minilm PyTorch columns
#
#   TORCH_VENV  virtualenv folder (default: torch-venv beside the repository)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TORCH_VENV:-$(dirname "$ROOT")/torch-venv}"
BENCH=0
for a in "$@"; do
    case "$a" in
        --bench) BENCH=1 ;;
        *) echo "usage: scripts/torch-env.sh [--bench]" >&2; exit 2 ;;
    esac
done

if [ ! -x "$VENV/bin/python" ]; then
    echo "torch-env: creating $VENV" >&2
    python3 -m venv "$VENV" >&2
fi
PY="$VENV/bin/python"
if ! "$PY" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.9.0")' 2>/dev/null; then
    echo "torch-env: installing torch 2.9.0 from PyPI into $VENV (about 6.8 GB with its CUDA wheels)" >&2
    "$PY" -m pip install -q torch==2.9.0 >&2
fi
if [ "$BENCH" = 1 ] && ! "$PY" -c 'import torchvision, sentence_transformers' 2>/dev/null; then
    echo "torch-env: installing torchvision 0.24.0 and sentence-transformers 5.1.2" >&2
    "$PY" -m pip install -q torch==2.9.0 torchvision==0.24.0 transformers==4.57.1 \
        sentence-transformers==5.1.2 >&2
fi
LIB="$("$PY" -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parent / "lib")')"
[ -f "$LIB/libtorch_cpu.so" ] || { echo "torch-env: no libtorch_cpu.so in $LIB" >&2; exit 1; }
echo "torch-env: torch $("$PY" -c 'import torch; print(torch.__version__)') at $LIB" >&2

# torch-sys runs `python` when VIRTUAL_ENV is set (else `python3`): the venv's bin goes first on PATH.
echo "export VIRTUAL_ENV='$VENV'"
echo "export PATH='$VENV/bin':\"\$PATH\""
echo "export LIBTORCH_USE_PYTORCH=1"
echo "export LD_LIBRARY_PATH='$LIB'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export TORCH_PYTHON='$PY'"
