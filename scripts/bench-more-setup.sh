#!/usr/bin/env bash
# The virtualenv of the two extra peers (shared/bench/run_more_peers.py): adelie 1.1.52 needs
# numpy < 2, so it cannot share bench-data/bench-venv (numpy 2, torch). Idempotent.
#   BENCH_MORE_VENV  virtualenv (default bench-data/more-venv)
#   BENCH_PYTHON     interpreter for the venv (default python3)
# Verified 2026-12-05 on Debian 12 / Python 3.11.7: numpy 1.26.4, scipy 1.17.1, adelie 1.1.52,
# cyanure 1.2.2, all binary wheels from PyPI (no compiler needed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${BENCH_MORE_VENV:-bench-data/more-venv}"
PYTHON="${BENCH_PYTHON:-python3}"
log() { printf '[bench-more-setup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if "$VENV/bin/python" -c "import adelie, cyanure.estimators" 2>/dev/null; then
    log "adelie and cyanure present in $VENV"
else
    log "pip install numpy<2 scipy adelie==1.1.52 cyanure==1.2.2 into $VENV"
    "$VENV/bin/pip" install -q "numpy<2" scipy adelie==1.1.52 cyanure==1.2.2
fi
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
import sys
print("[bench-more-setup] python", sys.version.split()[0], " ".join(
    f"{p} {version(p)}" for p in ("numpy", "scipy", "adelie", "cyanure")), file=sys.stderr)
PY
