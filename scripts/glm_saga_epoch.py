"""glm_saga's seconds per SAGA epoch on a shared workload, from a timed run of its own epoch
loop (`glm_saga.elasticnet.train_saga`, the code the path calls for every λ) over the first
B batches of the training rows, scaled to the n/256 batches of a whole epoch.

glm_saga's batch cost does not depend on which rows it reads or on λ: it forms two
batch × classes × features tensors per batch (`(a.unsqueeze(2) * X.unsqueeze(1)).mean(0)`
for the new and the stored gradient), so B batches time the epoch's work per batch. The
SAGA table is allocated for all n rows as in a real run.

Run by `cargo xtask bench-epoch` with the bench virtualenv (scripts/bench-setup.sh):
    python scripts/glm_saga_epoch.py bench-data/workloads/w4 --batches 20 --threads 2
Prints one JSON line.
"""
import argparse
import json
import math
import time
import warnings

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload_dir")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.99)
    args = ap.parse_args()

    import torch
    from torch.utils.data import DataLoader
    from glm_saga.elasticnet import IndexedTensorDataset, train_saga

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    X = np.load(f"{args.workload_dir}/X_train.npy", mmap_mode="r")
    y = np.load(f"{args.workload_dir}/y_train.npy")
    n, d = X.shape
    k = int(y.max()) + 1
    rows = min(n, args.batches * args.batch_size)
    xs = torch.from_numpy(np.ascontiguousarray(X[:rows], dtype=np.float32))
    ys = torch.from_numpy(y[:rows].astype(np.int64))
    loader = DataLoader(IndexedTensorDataset(xs, ys), batch_size=args.batch_size, shuffle=True, num_workers=0)
    # λ at half of λ_max (as the shared benchmark computes λ_max on these rows): the head of
    # the path; glm_saga's batch cost is the same at every λ.
    onehot = np.eye(k, dtype=np.float64)[y[:rows]]
    grad = X[:rows].T.astype(np.float64) @ (onehot - onehot.mean(0)) / rows
    lam = 0.5 * np.abs(grad).max() / args.alpha
    linear = torch.nn.Linear(d, k)
    for p in linear.parameters():
        p.data.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        train_saga(linear, loader, 0.1, 1, float(lam), args.alpha, group=False, verbose=None,
                   state=None, n_ex=n, n_classes=k, tol=1e-4, lookbehind=3, logger=lambda *_: None)
        seconds = time.perf_counter() - t0
    batches = math.ceil(rows / args.batch_size)
    per_batch = seconds / batches
    print(json.dumps({
        "solver": "glm_saga",
        "glm_saga_version": __import__("importlib.metadata").metadata.version("glm-saga"),
        "torch_version": torch.__version__,
        "threads": args.threads,
        "n": n, "d": d, "k": k,
        "batches_timed": batches,
        "seconds_timed": seconds,
        "seconds_per_batch": per_batch,
        "seconds_per_epoch": per_batch * math.ceil(n / args.batch_size),
    }))


if __name__ == "__main__":
    main()
