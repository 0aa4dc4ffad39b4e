#!/usr/bin/env bash
# Set up the peer benchmark (shared/bench/README.md): gfortran, a virtualenv with
# the peer solvers (glmnet, glm_saga, scikit-learn) and the synthetic workloads.
# Idempotent: every step is skipped when its result is already there.
#
# Run from anywhere; paths are relative to the repository root.
#   BENCH_VENV       virtualenv            (default bench-data/bench-venv)
#   BENCH_WORKLOADS  workload .npy folder  (default bench-data/workloads)
#   BENCH_SCRIPTS    the shared bench scripts (default ../shared/bench beside the repo)
#   BENCH_NAMES      workloads to generate (default "w1 w2 w3")
#   BENCH_PYTHON     interpreter for the venv (default python3; must be < 3.12, see glmnet below)
#   BENCH_NICE       niceness of the heavy steps (default 15)
#
# Afterwards run the peers from the repository root through the symlinked copy
# (so results/ lands in bench-data, not in the read-only shared folder):
#   BENCH_WORKLOADS=bench-data/workloads BENCH_PATHS=bench-data/paths \
#     bench-data/bench-venv/bin/python bench-data/bench/run_peers.py w1 --solver glmnet
# (add --no-wait for smoke runs only). glm_saga with the default --threads 2 is
# ~17x slower when another process holds a core (w1, first 3 lambdas: 29.7 s vs
# 1.7 s with --threads 1, same objectives): time it only on a quiet machine.
#
# Verified 2026-11 on Debian 12 / Python 3.11.7 (pyenv): numpy 2.4.6, scipy 1.17.1,
# scikit-learn 1.9.1, torch 2.15.0 (PyPI, CUDA wheels, ~3 GB), glm-saga 0.1.2,
# glmnet 2.2.1 built with gfortran 12.2, tqdm (glm-saga needs it, undeclared).
#
# glmnet 2.2.1 is an sdist whose setup.py imports numpy.distutils:
#  - plain `pip install glmnet` fails: "install requires: 'numpy'. use pip or
#    easy_install." (no build-system requirements, so the isolated build env has
#    no numpy) -> build with --no-build-isolation against the venv's numpy;
#  - then it fails with "error: invalid command 'bdist_wheel'" -> `wheel` must be
#    installed in the venv first;
#  - numpy.distutils exists only for Python < 3.12 (also in numpy 2.x) and wants an
#    older setuptools (65.5.0, the venv default of Python 3.11, and 65.7.0 work; torch's
#    setuptools>=77 fails with "'python_requires' must be a string containing valid
#    version specifiers; Invalid specifier: '>=3.6.*'"), so glmnet is built before
#    torch is installed (or setuptools is pinned down for its build and restored).
#  The module run_peers.py imports is the top-level extension `_glmnet`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${BENCH_VENV:-bench-data/bench-venv}"
WL="${BENCH_WORKLOADS:-bench-data/workloads}"
SCRIPTS="${BENCH_SCRIPTS:-$ROOT/../shared/bench}"
NAMES="${BENCH_NAMES:-w1 w2 w3}"
PYTHON="${BENCH_PYTHON:-python3}"
NICE=(nice -n "${BENCH_NICE:-15}")

log() { printf '[bench-setup] %s\n' "$*" >&2; }

[ -f "$SCRIPTS/run_peers.py" ] || { log "no run_peers.py in $SCRIPTS (set BENCH_SCRIPTS)"; exit 1; }
SCRIPTS="$(cd "$SCRIPTS" && pwd)"

# ---------------------------------------------------------------- apt: gfortran
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" "${NICE[@]}" apt-get install -y -qq "$@"
}

if command -v gfortran >/dev/null 2>&1; then
    log "gfortran present: $(gfortran --version | head -n1)"
else
    apt_install gfortran
fi

# ---------------------------------------------------------------- virtualenv
"$PYTHON" - <<'EOF' || { log "$PYTHON is >= 3.12: glmnet 2.2.1 needs numpy.distutils (Python < 3.12); set BENCH_PYTHON"; exit 1; }
import sys
sys.exit(0 if sys.version_info < (3, 12) else 1)
EOF

if [ -x "$VENV/bin/python" ]; then
    log "venv present: $VENV"
else
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("${NICE[@]}" "$PY" -m pip install --disable-pip-version-check)

has() { "$PY" -c "$1" >/dev/null 2>&1; }

if has 'import numpy, scipy, sklearn, wheel, setuptools'; then
    log "numpy/scipy/scikit-learn present"
else
    "${PIP[@]}" numpy scipy scikit-learn wheel
fi

if has 'from _glmnet import lognet, lsolns'; then
    log "glmnet present"
else
    # see the header: numpy + wheel must already be in the venv, and setuptools
    # must be old (torch pulls setuptools>=77, which rejects glmnet's
    # python_requires='>=3.6.*' and breaks numpy.distutils)
    "${PIP[@]}" "setuptools<66" wheel
    "${PIP[@]}" --no-build-isolation glmnet==2.2.1
    "$PY" -c 'from _glmnet import lognet, lsolns'
    if has 'import torch'; then
        "${PIP[@]}" "setuptools>=77.0.3"      # torch's own requirement, restored
    fi
fi

# glm-saga 0.1.2 imports tqdm without declaring it
if has 'import torch, tqdm; from glm_saga.elasticnet import glm_saga, IndexedTensorDataset'; then
    log "torch/glm-saga present"
else
    "${PIP[@]}" glm-saga torch tqdm
fi

"$PY" - <<'EOF'
from importlib.metadata import version
import sys
print("[bench-setup] python", sys.version.split()[0], " ".join(
    f"{p} {version(p)}" for p in ("numpy", "scipy", "scikit-learn", "torch", "glm-saga", "glmnet")),
    file=sys.stderr)
EOF

# ---------------------------------------------------------------- script links
# run_peers.py / make_table.py write results/ next to their own path
# (os.path.abspath, symlinks not resolved): link them from bench-data/bench so the
# JSONs land there instead of in the shared folder.
LINKS=bench-data/bench
mkdir -p "$LINKS"
for f in run_peers.py run_more_peers.py make_table.py make_workloads.py README.md; do
    if [ "$(readlink "$LINKS/$f" 2>/dev/null || true)" != "$SCRIPTS/$f" ]; then
        ln -sfn "$SCRIPTS/$f" "$LINKS/$f"
    fi
done
mkdir -p "$LINKS/results" bench-data/paths

# ---------------------------------------------------------------- workloads
for w in $NAMES; do
    d="$WL/$w"
    done_=1
    for f in X_train.npy y_train.npy X_val.npy y_val.npy meta.json; do
        [ -s "$d/$f" ] || done_=0
    done
    if [ "$done_" -eq 1 ]; then
        log "workload $w present: $d"
    else
        log "generating workload $w into $d"
        "${NICE[@]}" "$PY" "$SCRIPTS/make_workloads.py" "$w" --out "$WL"
    fi
done
log "done"
