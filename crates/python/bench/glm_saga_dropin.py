"""The glm_saga drop-in against glm_saga itself: the same two scripts written for glm_saga, run
once with `from glm_saga.elasticnet import glm_saga` and once with `from sparsefit import
glm_saga` (nothing else changes), on a workload of shared/bench (standardized features).

    python crates/python/bench/glm_saga_dropin.py --workload w1 [--calls labelfree,path] [--first N]
        [--checkpoint DIR]          # both paths write params{i}.pth per λ (theirs: glm_saga's own)
    python crates/python/bench/glm_saga_dropin.py --workload w2 --compare DIR   # a partial run, too

- `labelfree`: Label-free CBM's call (a fixed λ through `metadata['max_reg']`, `k=1`,
  `epsilon=1`, `do_zero=False`, step 0.05, 1000 epochs, no lookbehind) at λ_max/2, /10, /100.
- `path`: a plain 100-λ path with a `val_loader` (step 0.1, 2000 epochs, lookbehind 3, the
  peers' settings in shared/bench/run_peers.py), timed; objectives compared at every λ of the
  (shared) grid and printed at grid indices 10, 33 and 66 (λ_max/2, /10, /100).
With `--checkpoint DIR` the path call runs ours first, then glm_saga, each writing its layers per
λ under DIR/<name>/ (glm_saga's `checkpoint` argument, passed to both); `--compare DIR` compares
the λs both have finished, so a run stopped early (glm_saga's w2 path takes hours) still gives
per-λ objectives and, from the files' times, a lower bound on the speed ratio.
Objectives are recomputed here in float64 from each returned layer, the same function for
both. Both run on one thread (torch.set_num_threads(1); the wheel's flex backend is
single-threaded). Needs torch and glm_saga (PyPI) and the sparsefit wheel.
"""
import argparse
import glob
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import glm_saga.elasticnet as theirs
import sparsefit

ALPHA = 0.99


def objective(X, y, W, b, lam):
    """Mean cross-entropy + λ(α‖W‖₁ + (1−α)/2 ‖W‖²) in float64, in row chunks."""
    W64, b64, tot = W.astype(np.float64), b.astype(np.float64), 0.0
    for s in range(0, len(X), 5000):
        Z = X[s:s + 5000].astype(np.float64) @ W64.T + b64
        Z -= Z.max(1, keepdims=True)
        tot += float(np.sum(np.log(np.exp(Z).sum(1)) - Z[np.arange(len(Z)), y[s:s + 5000]]))
    return tot / len(X) + lam * (ALPHA * np.abs(W64).sum() + (1 - ALPHA) / 2 * (W64**2).sum())


def loaders(X, y, Xv, yv):
    torch.manual_seed(0)
    train = DataLoader(theirs.IndexedTensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
                       batch_size=256, shuffle=True)
    val = DataLoader(TensorDataset(torch.from_numpy(Xv), torch.from_numpy(yv)), batch_size=256)
    return train, val


def labelfree_call(glm_saga, X, y, Xv, yv, lam):
    """Label-free CBM's call (train_cbm.py), with its lam as `metadata['max_reg']`."""
    train, val = loaders(X, y, Xv, yv)
    linear = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    linear.weight.data.zero_()
    linear.bias.data.zero_()
    metadata = {"max_reg": {"nongrouped": lam}}
    out = glm_saga(linear, train, 0.05, 1000, ALPHA, epsilon=1, k=1, val_loader=val,
                   do_zero=False, metadata=metadata, n_ex=len(X), n_classes=int(y.max()) + 1)
    return out["path"][0]


def path_call(glm_saga, X, y, Xv, yv, first=100, checkpoint=None):
    """A plain 100-λ path with a validation loader, as run_peers.py runs glm_saga; with
    `first` < 100 its first λs only (the same grid points: k=first and the matching epsilon)."""
    train, val = loaders(X, y, Xv, yv)
    linear = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    linear.weight.data.zero_()
    linear.bias.data.zero_()
    epsilon = 1e-3 ** ((first - 1) / 99)
    return glm_saga(linear, train, 0.1, 2000, ALPHA, k=first, epsilon=epsilon, tol=1e-4, lookbehind=3,
                    do_zero=False, val_loader=val, n_ex=len(X), n_classes=int(y.max()) + 1,
                    checkpoint=checkpoint)


def read_checkpoints(d):
    """The per-λ entries a path call wrote under `d` (params0.pth, params1.pth, … while they
    exist), each with the seconds from the call's start (the `start` file main() writes before
    the call) to its file."""
    start = os.path.getmtime(os.path.join(d, "start"))
    entries, i = [], 0
    while os.path.exists(f"{d}/params{i}.pth"):
        e = torch.load(f"{d}/params{i}.pth", weights_only=False)
        e["elapsed"] = os.path.getmtime(f"{d}/params{i}.pth") - start
        entries.append(e)
        i += 1
    assert len(glob.glob(f"{d}/params*.pth")) == i, f"{d}: params files with a gap"
    return entries


def compare_paths(X, y, lam_max, p_theirs, p_ours, t_theirs, t_ours, partial=False):
    n = min(len(p_theirs), len(p_ours))
    lams = [float(e["lam"]) for e in p_theirs[:n]]
    # The same grid up to float32 rounding: both compute max_reg from the data in float32 (in
    # another summation order) and take a float32 logspace; both layers are scored at glm_saga's λ.
    lam_gap = max(abs(a - float(e["lam"])) / a for a, e in zip(lams, p_ours))
    assert lam_gap < 1e-5, f"the two grids differ: relative {lam_gap:.1e}"
    print(f"  grids: largest relative λ difference {lam_gap:.1e} (float32 rounding); "
          f"objectives at glm_saga's λs")
    gaps = []
    for i, lam in enumerate(lams):
        o_t = objective(X, y, np.asarray(p_theirs[i]["weight"]), np.asarray(p_theirs[i]["bias"]), lam)
        o_o = objective(X, y, np.asarray(p_ours[i]["weight"]), np.asarray(p_ours[i]["bias"]), lam)
        gaps.append(o_o - o_t)
        if i in (10, 33, 66):
            print(f"  grid #{i} λ {lam:.5g} (λ_max/{lam_max / lam:.3g}): glm_saga {o_t:.10f}, "
                  f"sparsefit {o_o:.10f}, ours − theirs {o_o - o_t:+.3e}; val acc "
                  f"{p_theirs[i]['metrics']['acc_val']:.4f} / {p_ours[i]['metrics']['acc_val']:.4f}")
    gaps = np.array(gaps)
    print(f"  ours at or below theirs at {int(np.sum(gaps <= 1e-9))} of {len(gaps)} λs; "
          f"largest excess {gaps.max():+.3e}, median {np.median(gaps):+.3e}")
    if partial:
        print(f"  time: glm_saga {t_theirs:.1f} s for its first {len(p_theirs)} λs, sparsefit "
              f"{t_ours:.1f} s for {len(p_ours)} λs: ≥ {t_theirs / t_ours:.1f}× faster")
    else:
        print(f"  time: glm_saga {t_theirs:.1f} s, sparsefit {t_ours:.1f} s = {t_theirs / t_ours:.1f}× faster")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="w1")
    ap.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS", "bench-data/workloads"))
    ap.add_argument("--calls", default="labelfree,path")
    ap.add_argument("--first", type=int, default=100, help="the path call's first λs only (its head)")
    ap.add_argument("--checkpoint", help="folder: both path calls write their per-λ layers there")
    ap.add_argument("--compare", help="folder of a --checkpoint run: compare the λs both finished")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = os.path.join(args.workloads, args.workload)
    X, y = np.load(f"{d}/X_train.npy"), np.load(f"{d}/y_train.npy").astype(np.int64)
    Xv, yv = np.load(f"{d}/X_val.npy"), np.load(f"{d}/y_val.npy").astype(np.int64)
    K = int(y.max()) + 1
    lam_max = theirs.maximum_reg(torch.from_numpy(X), torch.from_numpy(y), group=False) / ALPHA
    print(f"{args.workload}: n={len(X)} d={X.shape[1]} K={K}; λ_max {lam_max:.6g}; "
          f"torch {torch.__version__}, one thread each")
    impls = [("glm_saga", theirs.glm_saga), ("sparsefit", sparsefit.glm_saga)]

    if "labelfree" in args.calls:
        print("\nLabel-free CBM's call (k=1, epsilon=1, metadata max_reg = α·λ, step 0.05, 1000 epochs)")
        print(f"{'λ':>14} {'glm_saga obj':>16} {'sparsefit obj':>16} {'ours − theirs':>14} "
              f"{'s theirs':>9} {'s ours':>8}")
        for div in (2, 10, 100):
            lam = lam_max / div
            objs, secs = [], []
            for _, fn in impls:
                t0 = time.perf_counter()
                entry = labelfree_call(fn, X, y, Xv, yv, ALPHA * lam)
                secs.append(time.perf_counter() - t0)
                W, b = np.asarray(entry["weight"]), np.asarray(entry["bias"])
                objs.append(objective(X, y, W, b, float(entry["lam"])))
            print(f"{'λ_max/' + str(div):>14} {objs[0]:16.10f} {objs[1]:16.10f} "
                  f"{objs[1] - objs[0]:+14.3e} {secs[0]:9.2f} {secs[1]:8.2f}")

    if args.compare:
        runs = {n: read_checkpoints(os.path.join(args.compare, n)) for n in ("glm_saga", "sparsefit")}
        p_theirs, p_ours = runs["glm_saga"], runs["sparsefit"]
        print(f"\nfrom {args.compare}: glm_saga finished {len(p_theirs)} λs, sparsefit {len(p_ours)}")
        compare_paths(X, y, lam_max, p_theirs, p_ours, p_theirs[-1]["elapsed"], p_ours[-1]["elapsed"],
                      partial=len(p_theirs) < len(p_ours))
    elif "path" in args.calls:
        print(f"\n100-λ path with val_loader (step 0.1, 2000 epochs, tol 1e-4, lookbehind 3), first {args.first} λs")
        runs = {}
        order = impls[::-1] if args.checkpoint else impls
        for name, fn in order:
            ckpt = None
            if args.checkpoint:
                ckpt = os.path.join(args.checkpoint, name)
                os.makedirs(ckpt, exist_ok=True)
                open(os.path.join(ckpt, "start"), "w").close()
            t0 = time.perf_counter()
            out = path_call(fn, X, y, Xv, yv, args.first, ckpt)
            runs[name] = (time.perf_counter() - t0, out["path"])
            print(f"  {name}: {runs[name][0]:.1f} s for {len(out['path'])} λs", flush=True)
        (t_theirs, p_theirs), (t_ours, p_ours) = runs["glm_saga"], runs["sparsefit"]
        compare_paths(X, y, lam_max, p_theirs, p_ours, t_theirs, t_ours)

if __name__ == "__main__":
    main()
