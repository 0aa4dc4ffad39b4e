"""The path solver's Python API: `glm_path`, `fit_lambda` and the `Path` they return."""
import json
import logging
import sys

import numpy as np

from . import _core

log = logging.getLogger("sparsefit")


def _progress(total_hint, progress):
    """A per-λ report: one `logging` line per λ (logger "sparsefit", INFO) and, when `progress`
    is true (default: stderr is a terminal) and tqdm is installed, a tqdm bar over the λs."""
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_hint, unit="λ", desc="sparsefit path")
        except ImportError:
            bar = None

    def on_lambda(record, total):
        if bar is not None:
            bar.total = total
            bar.update(1)
            bar.set_postfix(nnz=record["nnz"], obj=f"{record['objective']:.5g}")
        val = record.get("val") or {}
        score = val.get("accuracy", val.get("r2"))
        log.info(
            "λ %d/%d %.4e: %d epochs, objective %.6g, %d nonzero weights%s",
            record["index"] + 1,
            total,
            record["lambda"],
            record["epochs"],
            record["objective"],
            record["nnz"],
            "" if score is None else f", val {score:.4f}",
        )

    return on_lambda, bar


class Path(dict):
    """A solved path: a dict (`lambdas`, `lambda_max`, `records`, `weights`, `biases`, `mean`,
    `std`, `lr`, `ended_early`, `path_seconds`, and `selected` when there was a validation set)
    whose keys are also attributes. Weights are [K, d] on standardized features:
    `logits = ((X - mean) / std) @ W.T + b`; `layer(i)` folds the standardization in."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def select(self, threshold=0.05, relative=False, reference=None):
        """The CLI's selection rule: the index of the sparsest λ whose validation score is
        within `threshold` of the best (or of `reference`, e.g. the backbone's own head)."""
        selection = _core.select(json.dumps(self["records"]), threshold, relative, reference)
        return selection["selected_index"]

    def layer(self, index):
        """λ #`index`'s layer on raw features: `(W, b)` with `logits = X @ W.T + b`."""
        w = self["weights"][index] / self["std"][None, :]
        b = self["biases"][index] - w @ self["mean"]
        return w.astype(np.float32), b.astype(np.float32)

    def logits(self, x, index):
        """Logits of λ #`index`'s layer on raw features `x` [n, d]."""
        w, b = self.layer(index)
        return np.asarray(x, dtype=np.float32) @ w.T + b


def glm_path(
    X,
    y=None,
    X_val=None,
    y_val=None,
    *,
    alpha=0.99,
    k=100,
    eps=1e-3,
    family="multinomial",
    group=False,
    sample_weight=None,
    lambdas=None,
    dense_end=False,
    max_features_per_class=None,
    lr=None,
    lr_decay=1.0,
    batch_size=256,
    max_epochs=2000,
    tol=1e-4,
    lookbehind=3,
    seed=0,
    standardize=True,
    num_classes=None,
    first=None,
    select_threshold=0.05,
    backend="flex",
    checkpoint_dir=None,
    resume=False,
    progress=None,
    stream=None,
    storage=None,
):
    """The elastic-net regularization path of `fit path` on numpy arrays.

    `X` [n, d] float32; `y` int64/int32 class labels [n] (multinomial) or float32 [n, K]
    targets (gaussian, multilabel). With `X_val`/`y_val` each λ is scored on them and
    `selected` is the sparsest λ within `select_threshold` of the best validation score.
    `X` and `X_val` may instead be feature files as `fit path --train` reads them (`X.npy` with
    `y.npy` beside it, `"X.npy,y.npy"`, or a `.safetensors` file; `y=None`): with
    `stream="disk"` they are read by rows while the path runs and never held in memory.
    `storage="f16"`/`"bf16"` holds features in half precision. `lambdas`: solve this
    non-increasing list instead of the grid λ_max … eps·λ_max of `k` values. `lr=None`: the automatic step size. `checkpoint_dir` writes every λ's layer and a
    checkpoint there (`resume=True` continues one). The same arrays and settings give the same
    layers as `fit path`, bit for bit. Ctrl-C stops the solve after the epoch in progress.
    """
    total = len(lambdas) + int(dense_end) if lambdas is not None else k + int(dense_end)
    on_lambda, bar = _progress(first or total, progress)
    try:
        out = _core.glm_path(
            X,
            y,
            X_val,
            y_val,
            alpha=alpha,
            k=k,
            eps=eps,
            family=family,
            group=group,
            sample_weight=sample_weight,
            lambdas=None if lambdas is None else [float(v) for v in lambdas],
            dense_end=dense_end,
            max_features_per_class=max_features_per_class,
            lr=lr,
            lr_decay=lr_decay,
            batch_size=batch_size,
            max_epochs=max_epochs,
            tol=tol,
            lookbehind=lookbehind,
            seed=seed,
            standardize=standardize,
            num_classes=num_classes,
            first=first,
            backend=backend,
            checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
            resume=resume,
            on_lambda=on_lambda,
            stream=stream,
            storage=storage,
        )
    finally:
        if bar is not None:
            bar.close()
    path = Path(out)
    if X_val is not None:
        path["selected"] = path.select(select_threshold)
    return path


def fit_lambda(X, y, lam, X_val=None, y_val=None, **kwargs):
    """One layer at the fixed λ `lam` (from the λ_max solution, as Label-free CBM runs
    glm_saga with `k=1`): a dict with `weight` [K, d] and `bias` [K] on standardized features,
    `record`, `mean` and `std`. Keyword arguments are `glm_path`'s."""
    for name in ("lambdas", "k", "eps", "dense_end", "first"):
        if name in kwargs:
            raise TypeError(f"fit_lambda() fixes the λ; {name}= does not apply")
    path = glm_path(X, y, X_val, y_val, lambdas=[lam], **kwargs)
    return {
        "weight": path["weights"][0],
        "bias": path["biases"][0],
        "record": path["records"][0],
        "mean": path["mean"],
        "std": path["std"],
    }
