"""sparsefit: sparse elastic-net decision layers (Wong, Santurkar & Madry 2021) from Python.

- `glm_path(X, y, X_val, y_val, ...)`: the regularization path of `fit path` (the Rust solver,
  the same layers bit for bit), returned as a `Path` with per-λ weights, biases and records and
  the selection rule as `Path.select`.
- `fit_lambda(X, y, lam, ...)`: one layer at a fixed λ.
- `glm_saga(linear, loader, max_lr, nepochs, alpha, ...)`: a drop-in for glm_saga 0.1.2's
  function of the same name, solved by the same Rust solver.

Progress: one `logging` line per λ (logger "sparsefit"), and a tqdm bar on a terminal when
tqdm is installed. Ctrl-C stops a solve after the epoch in progress.
"""
from ._glm_saga import glm_saga
from ._path import Path, fit_lambda, glm_path

__all__ = ["glm_path", "fit_lambda", "glm_saga", "Path"]
