"""The glm_saga drop-in against glm_saga itself: the same two scripts written for glm_saga, run
once with `from glm_saga.elasticnet import glm_saga` and once with `from sparsefit import
glm_saga` (nothing else changes), on a workload of shared/bench (standardized features).

    python crates/python/bench/glm_saga_dropin.py --workload w1 [--calls labelfree,path] [--first N]

- `labelfree`: Label-free CBM's call (a fixed λ through `metadata['max_reg']`, `k=1`,
  `epsilon=1`, `do_zero=False`, step 0.05, 1000 epochs, no lookbehind) at λ_max/2, /10, /100.
- `path`: a plain 100-λ path with a `val_loader` (step 0.1, 2000 epochs, lookbehind 3, the
  peers' settings in shared/bench/run_peers.py), timed; objectives compared at every λ of the
  (shared) grid and printed at grid indices 10, 33 and 66 (λ_max/2, /10, /100).
Objectives are recomputed here in float64 from each returned layer, the same function for
both. Both run on one thread (torch.set_num_threads(1); the wheel's flex backend is
single-threaded). Needs torch and glm_saga (PyPI) and the sparsefit wheel.
"""
import argparse
import math
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


def path_call(glm_saga, X, y, Xv, yv, first=100):
    """A plain 100-λ path with a validation loader, as run_peers.py runs glm_saga; with
    `first` < 100 its first λs only (the same grid points: k=first and the matching epsilon)."""
    train, val = loaders(X, y, Xv, yv)
    linear = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    linear.weight.data.zero_()
    linear.bias.data.zero_()
    epsilon = 1e-3 ** ((first - 1) / 99)
    return glm_saga(linear, train, 0.1, 2000, ALPHA, k=first, epsilon=epsilon, tol=1e-4, lookbehind=3,
                    do_zero=False, val_loader=val, n_ex=len(X), n_classes=int(y.max()) + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="w1")
    ap.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS", "bench-data/workloads"))
    ap.add_argument("--calls", default="labelfree,path")
    ap.add_argument("--first", type=int, default=100, help="the path call's first λs only (its head)")
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

    if "path" in args.calls:
        print(f"\n100-λ path with val_loader (step 0.1, 2000 epochs, tol 1e-4, lookbehind 3), first {args.first} λs")
        runs = {}
        for name, fn in impls:
            t0 = time.perf_counter()
            out = path_call(fn, X, y, Xv, yv, args.first)
            runs[name] = (time.perf_counter() - t0, out["path"])
            print(f"  {name}: {runs[name][0]:.1f} s for {len(out['path'])} λs")
        (t_theirs, p_theirs), (t_ours, p_ours) = runs["glm_saga"], runs["sparsefit"]
        lams = [float(e["lam"]) for e in p_theirs]
        assert all(math.isclose(a, float(e["lam"]), rel_tol=1e-6) for a, e in zip(lams, p_ours))
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
        print(f"  time: glm_saga {t_theirs:.1f} s, sparsefit {t_ours:.1f} s = {t_theirs / t_ours:.1f}× faster")


if __name__ == "__main__":
    main()
