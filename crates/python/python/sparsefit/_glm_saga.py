"""`glm_saga`: a drop-in for glm_saga 0.1.2's function of the same name.

A script written for glm_saga runs unchanged with `from sparsefit import glm_saga`: the same
arguments, the same λ grid (λ_max from `metadata['max_reg']` or from the data, divided by
max(0.001, alpha); `k` log-spaced values down to `epsilon`·λ_max; λ = 0 after them with
`do_zero`), the same objective (mean loss + λα‖W‖₁ + ½λ(1−α)‖W‖², on the features as the
loader gives them: glm_saga does not standardize) and the same return value: `{'path': [...],
'best': ..., 'state': ...}` with one entry per λ (`lam`, `lr`, `alpha`, `time`, `loss`,
`metrics`, `weight`, `bias`), torch tensors when torch is installed. `linear` ends holding the
last λ's layer, as glm_saga leaves it.

What differs, by design:
- The loader is read once into memory (after `preprocess`), then the Rust path solver runs
  on the arrays; each λ stops on the solver's rules (relative weight change ≤ `tol`, or no
  objective decrease for `lookbehind` epochs, default 3), at most `nepochs` epochs.
- `max_lr`: by default (`step="auto"`) the solver's automatic step size, which is safe for the
  data's curvature; `step="max_lr"` uses `max_lr` (decayed by `lr_decay_factor` along the
  path), as glm_saga does. Each entry's `lr` is the step actually used.
- Every λ starts from the previous solution (the first from zero, glm_saga's usual start): a
  nonzero `linear` or a `state` is not a warm start here. `state` in the result is None (the
  SAGA table stays inside the solver). `table_device` is ignored (the table lives on the
  solver's backend).
- `family='multilabel'` (the patched glm_saga copies' family) is binary cross-entropy with
  logits per output; its `loss` is the mean over examples and outputs, its `acc` the mean
  per-output accuracy of `logit > 0`.
Extra keyword arguments: `seed`, `backend`, `step`, `max_features_per_class` (end the path once
the layer uses that many nonzero weights per class, the `max_sparsity` patch).
"""
import logging
import math
import os
import time

import numpy as np

from ._path import glm_path

log = logging.getLogger("sparsefit")


def _numpy(t):
    """A batch element as a numpy array (torch tensors detached and moved to the CPU)."""
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def _batches(loader, preprocess, indexed):
    """Each batch of `loader` as numpy arrays `(x [b, d] float32, y, weight or None, idx or
    None)`, `preprocess` applied to x (on its device, without gradients)."""
    if preprocess is not None:
        import torch

        device = next(preprocess.parameters()).device if hasattr(preprocess, "parameters") else None
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                "a batch must be (X, y), (X, y, index) or (X, y, weight, index); "
                f"got {type(batch).__name__}"
            )
        if indexed and len(batch) not in (3, 4):
            raise ValueError(
                "Loader must return (data, target, index) or (data, target, weight, index) "
                f"but instead got a tuple of length {len(batch)}"
            )
        x = batch[0]
        if preprocess is not None:
            with torch.no_grad():
                x = preprocess(x.to(device) if device is not None else x)
        y = _numpy(batch[1])
        x = _numpy(x).astype(np.float32, copy=False).reshape(len(y), -1)
        w = _numpy(batch[2]).astype(np.float32) if indexed and len(batch) == 4 else None
        idx = _numpy(batch[-1]).astype(np.int64) if indexed else None
        yield x, y, w, idx


def _read_loader(loader, preprocess, family, indexed, n_ex=None, features_file=None):
    """Every batch of `loader` as one array each: X [n, d] float32, y, and per-example weights
    (or None). Indexed loaders (glm_saga's `(X, y, idx)` / `(X, y, w, idx)` batches) place each
    row at its index, so a shuffling loader gives the dataset's order. With `features_file`
    the rows go straight into that `.npy` file (a memory map; the labels beside it, as
    `y_<name>`) and X is returned as the file's name, for the solver to stream."""
    if features_file is not None:
        if not indexed:
            raise ValueError("features_file applies to the indexed training loader")
        return _spill_loader(loader, preprocess, family, n_ex, features_file)
    xs, ys, ws, idxs = [], [], [], []
    for x, y, w, idx in _batches(loader, preprocess, indexed):
        xs.append(x)
        ys.append(y)
        if w is not None:
            ws.append(w)
        if idx is not None:
            idxs.append(idx)
    if not xs:
        raise ValueError("the loader gave no batches")
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    w = np.concatenate(ws) if ws else None
    if indexed:
        idx = np.concatenate(idxs)
        n = n_ex if n_ex is not None else len(idx)
        _check_cover(idx, n)
        order = np.empty(n, dtype=np.int64)
        order[idx] = np.arange(n)
        x, y = x[order], y[order]
        w = None if w is None else w[order]
    return np.ascontiguousarray(x), _targets(y, family), w


def _check_cover(idx, n):
    distinct = len(np.unique(idx))
    if len(idx) != n or idx.min() < 0 or idx.max() >= n or distinct != n:
        raise ValueError(
            f"the loader's indices must cover 0..{n} once each (got {len(idx)} rows, "
            f"indices {idx.min()}..{idx.max()}, {distinct} distinct)"
        )


def _targets(y, family):
    if family == "multinomial":
        return np.ascontiguousarray(y.astype(np.int64))
    return np.ascontiguousarray(y.astype(np.float32).reshape(len(y), -1))


def _spill_loader(loader, preprocess, family, n_ex, features_file):
    """The training loader written to `features_file` (`.npy`) row by row at each row's index,
    so an ImageNet-sized X is never in memory; the labels go to the `y` file beside it."""
    features_file = os.fspath(features_file)
    name = os.path.basename(features_file)
    if not (name.startswith("X") and name.endswith(".npy")):
        raise ValueError(f"features_file must be an .npy file whose name starts with 'X', got {name!r}")
    n = n_ex if n_ex is not None else len(getattr(loader, "dataset", ()))
    if not n:
        raise ValueError("give n_ex (the number of training examples) to write features_file")
    out = ys = ws = None
    seen = np.zeros(n, dtype=bool)
    for x, y, w, idx in _batches(loader, preprocess, indexed=True):
        if out is None:
            out = np.lib.format.open_memmap(features_file, mode="w+", dtype=np.float32, shape=(n, x.shape[1]))
            ys = np.zeros((n,) + y.shape[1:], dtype=y.dtype)
            ws = np.zeros(n, dtype=np.float32) if w is not None else None
        if idx.min() < 0 or idx.max() >= n or seen[idx].any():
            raise ValueError(f"the loader's indices must cover 0..{n} once each (index out of range or repeated)")
        seen[idx] = True
        out[idx] = x
        ys[idx] = y
        if ws is not None:
            ws[idx] = w
    if out is None:
        raise ValueError("the loader gave no batches")
    if not seen.all():
        raise ValueError(f"the loader's indices must cover 0..{n} once each ({int((~seen).sum())} never seen)")
    out.flush()
    del out
    targets = _targets(ys, family)
    np.save(os.path.join(os.path.dirname(features_file), "y" + name[1:]), targets)
    return features_file, targets, ws


CHUNK = 8192  # rows per float64 block: the passes here never copy all of X


def _target_block(y, k, family):
    return np.eye(k)[y] if family == "multinomial" else y.astype(np.float64)


def _max_reg(x, y, k, group, family):
    """glm_saga's `maximum_reg_loader`: max over features of |Xᵀ(Y − Ȳ)| / n (the 2-norm over
    outputs with `group`), Y one-hot for multinomial; in row blocks."""
    n = len(x)
    mean = sum(_target_block(y[s:s + CHUNK], k, family).sum(0) for s in range(0, n, CHUNK)) / n
    inner = 0.0
    for s in range(0, n, CHUNK):
        inner = inner + x[s:s + CHUNK].astype(np.float64).T @ (_target_block(y[s:s + CHUNK], k, family) - mean)
    if group:
        inner = np.linalg.norm(inner, axis=1)
    return float(np.abs(inner).max() / n)


def _loss_and_acc(w, b, x, y, lam, alpha, family):
    """glm_saga's `elastic_loss_and_acc` on arrays: mean loss plus the elastic-net penalty,
    and the accuracy; in row blocks (float64)."""
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    loss_sum = hits = 0.0
    for s in range(0, len(x), CHUNK):
        out = x[s:s + CHUNK].astype(np.float64) @ w64.T + b64
        t = y[s:s + CHUNK]
        if family == "multinomial":
            m = out.max(1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(out - m).sum(1))
            loss_sum += float(np.sum(lse - out[np.arange(len(t)), t]))
            hits += float(np.sum(out.argmax(1) == t))
        elif family == "gaussian":
            loss_sum += float(0.5 * np.sum((out - t) ** 2)) / out.shape[1]
            hits += float(np.sum(out == t)) / out.shape[1]
        else:
            per = np.maximum(out, 0) - out * t + np.log1p(np.exp(-np.abs(out)))
            loss_sum += float(per.sum()) / out.shape[1]
            hits += float(np.sum((out > 0) == (t > 0.5))) / out.shape[1]
    penalty = lam * alpha * np.abs(w64).sum() + 0.5 * lam * (1 - alpha) * (w64**2).sum()
    return loss_sum / len(x) + float(penalty), hits / len(x)


def _tensor(a):
    try:
        import torch

        return torch.from_numpy(np.ascontiguousarray(a))
    except ImportError:
        return a


def glm_saga(
    linear,
    loader,
    max_lr,
    nepochs,
    alpha,
    table_device=None,
    preprocess=None,
    group=False,
    verbose=None,
    state=None,
    n_ex=None,
    n_classes=None,
    tol=1e-4,
    epsilon=0.001,
    k=100,
    checkpoint=None,
    do_zero=True,
    lr_decay_factor=1,
    metadata=None,
    val_loader=None,
    test_loader=None,
    lookbehind=None,
    family="multinomial",
    encoder=None,
    *,
    seed=0,
    backend="flex",
    step="auto",
    max_features_per_class=None,
    features_file=None,
):
    """glm_saga's regularization path, solved by sparsefit (see the module's doc)."""
    if family not in ("multinomial", "gaussian", "multilabel"):
        raise ValueError(f"Unknown family: {family}")
    if step not in ("auto", "max_lr"):
        raise ValueError(f'step must be "auto" or "max_lr", got {step!r}')
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if encoder is not None:
        preprocess = encoder
    if metadata is not None:
        n_ex = n_ex if n_ex is not None else metadata.get("X", {}).get("num_examples")
        n_classes = n_classes if n_classes is not None else metadata.get("y", {}).get("num_classes")
    started = time.time()
    x, y, w = _read_loader(loader, preprocess, family, indexed=True, n_ex=n_ex, features_file=features_file)
    # With features_file, X stays in its file: a memory map for the few passes made here.
    xs = np.load(x, mmap_mode="r") if features_file is not None else x
    weight = getattr(linear, "weight", None)
    if n_classes is None:
        n_classes = int(weight.shape[0]) if weight is not None else (int(y.max()) + 1 if family == "multinomial" else y.shape[1])
    if weight is not None and tuple(weight.shape) != (n_classes, xs.shape[1]):
        raise ValueError(
            f"linear has weight {tuple(weight.shape)} but the loader gives {xs.shape[1]} features "
            f"and {n_classes} outputs"
        )
    xv = yv = None
    if val_loader is not None:
        xv, yv, _ = _read_loader(val_loader, preprocess, family, indexed=False)

    if metadata is not None and "max_reg" in metadata:
        max_reg = metadata["max_reg"]["group" if group else "nongrouped"]
    else:
        max_reg = _max_reg(xs, y, n_classes, group, family)
    max_lam = float(max_reg) / max(0.001, alpha)
    # glm_saga's torch.logspace grid (float32), as float64 values.
    lams = np.logspace(math.log10(max_lam), math.log10(epsilon * max_lam), k).astype(np.float32).astype(np.float64)
    if np.any(np.diff(lams) > 0):
        raise ValueError(f"epsilon must be at most 1 (the grid runs from λ_max down), got {epsilon}")

    path = glm_path(
        x,
        None if features_file is not None else y,  # a file's labels are read from beside it
        xv,
        yv,
        alpha=alpha,
        family=family,
        group=group,
        sample_weight=w,
        lambdas=lams,
        dense_end=do_zero,
        max_features_per_class=max_features_per_class,
        lr=None if step == "auto" else float(max_lr),
        lr_decay=float(lr_decay_factor),
        max_epochs=nepochs,
        tol=tol,
        lookbehind=3 if lookbehind is None else lookbehind,
        seed=seed,
        standardize=False,
        num_classes=n_classes,
        backend=backend,
        progress=bool(verbose),
        stream=None if features_file is None else "disk",
    )

    xt = yt = None
    if test_loader is not None:
        xt, yt, _ = _read_loader(test_loader, preprocess, family, indexed=False)
    entries, best, best_val = [], None, float("inf")
    if checkpoint is not None:
        os.makedirs(checkpoint, exist_ok=True)
    for i, record in enumerate(path["records"]):
        lam, wi, bi = record["lambda"], path["weights"][i], path["biases"][i]
        if family == "multinomial" and w is None:
            # The solver's training loss is glm_saga's here (unweighted mean cross-entropy).
            loss, acc = record["objective"], record["train"]["accuracy"]
        else:
            loss, acc = _loss_and_acc(wi, bi, xs, y, lam, alpha, family)
        loss_val = acc_val = loss_test = acc_test = -1
        if xv is not None:
            loss_val, acc_val = _loss_and_acc(wi, bi, xv, yv, lam, alpha, family)
        if xt is not None:
            loss_test, acc_test = _loss_and_acc(wi, bi, xt, yt, lam, alpha, family)
        entry = {
            "lam": lam,
            "lr": record["lr"],
            "alpha": alpha,
            "time": record["seconds"],
            "loss": loss,
            "metrics": {
                "loss_tr": loss,
                "acc_tr": acc,
                "loss_val": loss_val,
                "acc_val": acc_val,
                "loss_test": loss_test,
                "acc_test": acc_test,
            },
            "weight": _tensor(wi),
            "bias": _tensor(bi),
        }
        entries.append(entry)
        # glm_saga keeps the lowest validation loss (-1 without a val_loader: the first λ).
        if loss_val < best_val:
            best_val, best = loss_val, entry
        nnz = int(np.count_nonzero(np.abs(wi) > 1e-5))
        log.info(
            "(%d) lambda %.4f, loss %.4f, acc %.4f [val acc %.4f] [test acc %.4f], sparsity %s [%d/%d], time %s, lr %.4f",
            i, lam, loss, acc, acc_val, acc_test, nnz / wi.size, nnz, wi.size, entry["time"], entry["lr"],
        )
        if checkpoint is not None:
            import torch

            torch.save(entry, os.path.join(checkpoint, f"params{i}.pth"))
    if weight is not None and entries:
        import torch

        with torch.no_grad():
            linear.weight.copy_(entries[-1]["weight"].to(linear.weight.device, linear.weight.dtype))
            linear.bias.copy_(entries[-1]["bias"].to(linear.bias.device, linear.bias.dtype))
    log.info("sparsefit glm_saga: %d λs in %.1f s", len(entries), time.time() - started)
    return {"path": entries, "best": best, "state": None}
