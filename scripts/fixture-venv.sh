#!/usr/bin/env bash
# The Python environment that generates the committed reference fixtures (torch, torchvision,
# transformers, sentence-transformers, tokenizers). CI never needs it: only the small outputs of the
# fixture scripts are committed. Idempotent.
#   FIXTURE_VENV  virtualenv folder (default .fixture-venv at the repository root, git-ignored)
# Usage: scripts/fixture-venv.sh && .fixture-venv/bin/python models/bert/fixtures/make_fixtures.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FIXTURE_VENV:-$ROOT/.fixture-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import torch, torchvision, transformers, sentence_transformers, timm' 2>/dev/null; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q torch==2.9.0 torchvision==0.24.0 transformers==4.57.1 \
        sentence-transformers==5.1.2 tokenizers safetensors numpy pillow timm==1.0.31 scikit-image==0.26.0
fi
"$VENV/bin/python" -c 'import torch, transformers, sentence_transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "sentence-transformers", sentence_transformers.__version__)'
