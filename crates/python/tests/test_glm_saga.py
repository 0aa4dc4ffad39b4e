"""The glm_saga drop-in and the rest of the Python API: the drop-in against glm_saga 0.1.2 itself
(PyPI; skipped where glm_saga or torch is missing), numpy loaders without torch, the result
helpers, fit_lambda, the other families, progress callbacks and Ctrl-C.

    FIT_BIN=target/release/fit python -m pytest crates/python/tests
"""
import math
import threading
import _thread
import time

import numpy as np
import pytest

import sparsefit
from sparsefit import _core

ALPHA = 0.99


def problem(n=1500, d=24, k=3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, k)) * (rng.random(size=(d, 1)) < 0.4)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(x @ w + rng.normal(size=(n, k)), 1).astype(np.int64)
    xv = rng.normal(size=(300, d)).astype(np.float32)
    yv = np.argmax(xv @ w, 1).astype(np.int64)
    return x, y, xv, yv


def objective(x, y, w, b, lam):
    z = x.astype(np.float64) @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)
    m = z.max(1, keepdims=True)
    ce = np.mean(m[:, 0] + np.log(np.exp(z - m).sum(1)) - z[np.arange(len(y)), y])
    w = np.asarray(w, np.float64)
    return ce + lam * (ALPHA * np.abs(w).sum() + (1 - ALPHA) / 2 * (w**2).sum())


def numpy_batches(x, y, batch=256, shuffle_seed=None):
    """A glm_saga-style indexed loader without torch: (X, y, idx) tuples, optionally shuffled."""
    idx = np.arange(len(x))
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(idx)
    return [(x[i], y[i], i) for i in (idx[s:s + batch] for s in range(0, len(x), batch))]


def test_numpy_loader_gives_glm_sagas_grid_and_entries():
    x, y, xv, yv = problem()
    out = sparsefit.glm_saga(None, numpy_batches(x, y, shuffle_seed=1), 0.1, 500, ALPHA, k=8,
                             epsilon=0.01, val_loader=[(xv, yv)], do_zero=True)
    path = out["path"]
    assert len(path) == 9 and path[-1]["lam"] == 0.0
    # glm_saga's grid: max|Xᵀ(Y − Ȳ)|/n / α, log-spaced down to ε·λ_max.
    target = np.eye(3)[y]
    lam_max = np.abs(x.astype(np.float64).T @ (target - target.mean(0))).max() / len(x) / ALPHA
    expect = np.logspace(math.log10(lam_max), math.log10(0.01 * lam_max), 8)
    assert np.allclose([e["lam"] for e in path[:8]], expect, rtol=1e-6)
    assert set(path[0]) == {"lam", "lr", "alpha", "time", "loss", "metrics", "weight", "bias"}
    assert set(path[0]["metrics"]) == {"loss_tr", "acc_tr", "loss_val", "acc_val", "loss_test", "acc_test"}
    assert np.count_nonzero(np.asarray(path[0]["weight"])) == 0
    # The reported loss is glm_saga's objective of the returned layer; no test loader gives -1.
    for e in path:
        w, b = np.asarray(e["weight"]), np.asarray(e["bias"])
        assert abs(e["loss"] - objective(x, y, w, b, e["lam"])) < 1e-6
        assert e["metrics"]["loss_test"] == -1
    # Rows were placed by their index: the same layers as from the unshuffled loader.
    again = sparsefit.glm_saga(None, numpy_batches(x, y), 0.1, 500, ALPHA, k=8, epsilon=0.01,
                               val_loader=[(xv, yv)], do_zero=True)
    assert all(np.array_equal(np.asarray(a["weight"]), np.asarray(b["weight"]))
               for a, b in zip(path, again["path"]))
    best = min(range(9), key=lambda i: path[i]["metrics"]["loss_val"])
    assert out["best"] is path[best] and out["state"] is None


def test_bad_loaders_raise_one_line_errors():
    x, y, _, _ = problem()
    cases = [
        ("tuple of length 2", lambda: sparsefit.glm_saga(None, [(x, y)], 0.1, 10, ALPHA, k=2)),
        ("must cover 0..", lambda: sparsefit.glm_saga(None, numpy_batches(x, y)[1:], 0.1, 10, ALPHA, k=2, n_ex=len(x))),
        ("Unknown family", lambda: sparsefit.glm_saga(None, numpy_batches(x, y), 0.1, 10, ALPHA, family="poisson")),
        ("gave no batches", lambda: sparsefit.glm_saga(None, [], 0.1, 10, ALPHA)),
    ]
    for needle, call in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_path_helpers_and_fit_lambda():
    x, y, xv, yv = problem()
    path = sparsefit.glm_path(x, y, xv, yv, k=10, eps=0.02)
    assert path.lambdas == path["lambdas"] and len(path.weights) == 10
    assert path.selected == path.select(0.05)
    best = max(r["val"]["accuracy"] for r in path.records)
    assert path.records[path.select(0.0)]["val"]["accuracy"] == best
    # layer(i) folds the standardization in.
    z = ((x - path.mean) / path.std) @ path.weights[5].T + path.biases[5]
    assert np.allclose(path.logits(x, 5), z, atol=1e-4)
    # One λ alone: the λ the path solved, the same optimum (objective to 1e-4).
    one = sparsefit.fit_lambda(x, y, path.lambdas[5], xv, yv)
    assert one["record"]["lambda"] == path.lambdas[5]
    assert abs(one["record"]["objective"] - path.records[5]["objective"]) <= 1e-4 * path.records[5]["objective"]
    with pytest.raises(TypeError):
        sparsefit.fit_lambda(x, y, 0.1, k=3)


def test_gaussian_and_multilabel_families():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 12)).astype(np.float32)
    w = rng.normal(size=(12, 3)) * (rng.random((12, 1)) < 0.5)
    yg = (x @ w + 0.1 * rng.normal(size=(800, 3))).astype(np.float32)
    g = sparsefit.glm_path(x, yg, x[:200], yg[:200], k=12, family="gaussian")
    assert g.weights[0].shape == (3, 12) and g.records[-1]["val"]["r2"] > 0.9
    ym = (x @ w > 0).astype(np.float32)
    m = sparsefit.glm_path(x, ym, x[:200], ym[:200], k=12, family="multilabel")
    assert m.records[-1]["val"]["accuracy"] > 0.85
    out = sparsefit.glm_saga(None, numpy_batches(x, ym), 0.1, 300, ALPHA, k=5, family="multilabel", do_zero=False)
    assert len(out["path"]) == 5 and 0 < out["path"][-1]["metrics"]["acc_tr"] <= 1
    with pytest.raises(TypeError, match="float32 numpy array"):
        sparsefit.glm_path(x, ym.astype(np.int64), family="multilabel")


def test_callback_errors_and_ctrl_c_stop_the_solve():
    x, y, xv, yv = problem()
    seen = []

    def fail_on_third(record, total):
        seen.append((record["index"], total))
        if record["index"] == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        _core.glm_path(x, y, xv, yv, k=10, on_lambda=fail_on_third)
    assert seen == [(0, 10), (1, 10), (2, 10)]

    # Ctrl-C (SIGINT to the main thread) during a long solve: KeyboardInterrupt soon after.
    rng = np.random.default_rng(2)
    big = rng.normal(size=(40000, 64)).astype(np.float32)
    labels = np.argmax(big[:, :5] + rng.normal(size=(40000, 5)), 1).astype(np.int64)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    started = time.perf_counter()
    timer.start()
    # (The core directly: no Python callback runs during the solve, so the signal is seen by
    # the solver's check after an epoch.)
    with pytest.raises(KeyboardInterrupt, match="interrupted during λ #"):
        _core.glm_path(big, labels, k=100, eps=1e-4, tol=1e-7)
    timer.cancel()
    assert time.perf_counter() - started < 10


def torch_and_glm_saga():
    try:
        import torch  # noqa: F401
        import glm_saga.elasticnet  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not torch_and_glm_saga(), reason="needs torch and glm_saga (pip install glm_saga)")
def test_drop_in_matches_or_beats_glm_saga():
    """A script written for glm_saga, run with each import: the same grid and entries, and
    our objectives at or below glm_saga's (Label-free CBM's fixed-λ call and a short path)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from glm_saga.elasticnet import IndexedTensorDataset, glm_saga as theirs

    x, y, xv, yv = problem(n=2000, d=32, k=4, seed=7)
    torch.set_num_threads(1)

    def script(glm_saga, **kwargs):
        torch.manual_seed(0)
        loader = DataLoader(IndexedTensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                            batch_size=256, shuffle=True)
        val = DataLoader(TensorDataset(torch.from_numpy(xv), torch.from_numpy(yv)), batch_size=256)
        linear = torch.nn.Linear(32, 4)
        linear.weight.data.zero_()
        linear.bias.data.zero_()
        out = glm_saga(linear, loader, 0.1, 1000, ALPHA, val_loader=val, n_ex=len(x), n_classes=4, **kwargs)
        return linear, out

    # Label-free CBM: a fixed λ through metadata, k=1, epsilon=1.
    lam_max = theirs.__globals__["maximum_reg"](torch.from_numpy(x), torch.from_numpy(y), group=False) / ALPHA
    for div in (2, 10, 100):
        meta = {"max_reg": {"nongrouped": ALPHA * lam_max / div}}
        results = [script(fn, epsilon=1, k=1, do_zero=False, metadata=meta)[1]["path"][0]
                   for fn in (theirs, sparsefit.glm_saga)]
        assert math.isclose(float(results[0]["lam"]), results[1]["lam"], rel_tol=1e-6)
        o_t, o_o = (objective(x, y, r["weight"].numpy(), r["bias"].numpy(), results[1]["lam"]) for r in results)
        assert o_o <= o_t + 1e-7, (div, o_o, o_t)

    # A short path with lookbehind: every λ at or below glm_saga's objective, torch tensors out,
    # and `linear` left holding the last layer.
    (l_t, out_t), (l_o, out_o) = (script(fn, k=12, epsilon=0.01, lookbehind=3) for fn in (theirs, sparsefit.glm_saga))
    assert len(out_t["path"]) == len(out_o["path"]) == 13
    for et, eo in zip(out_t["path"], out_o["path"]):
        assert isinstance(eo["weight"], torch.Tensor) and eo["weight"].shape == et["weight"].shape
        assert math.isclose(float(et["lam"]), eo["lam"], rel_tol=1e-6, abs_tol=1e-12)
        o_t = objective(x, y, et["weight"].numpy(), et["bias"].numpy(), eo["lam"])
        o_o = objective(x, y, eo["weight"].numpy(), eo["bias"].numpy(), eo["lam"])
        assert o_o <= o_t + 1e-6, (eo["lam"], o_o, o_t)
    assert torch.equal(l_o.weight.data, out_o["path"][-1]["weight"])


def test_feature_files_and_a_spilled_loader_give_the_in_memory_layers(tmp_path):
    """X from a file streamed by rows (`stream="disk"`, never all in memory) and the glm_saga
    drop-in writing its loader to `features_file`: the same layers as from arrays."""
    x, y, xv, yv = problem()
    np.save(tmp_path / "X_train.npy", x)
    np.save(tmp_path / "y_train.npy", y)
    np.save(tmp_path / "X_val.npy", xv)
    np.save(tmp_path / "y_val.npy", yv)
    mem = sparsefit.glm_path(x, y, xv, yv, k=8, seed=2)
    disk = sparsefit.glm_path(str(tmp_path / "X_train.npy"), None, str(tmp_path / "X_val.npy"), k=8, seed=2,
                              stream="disk")
    assert all(np.array_equal(a, b) for a, b in zip(mem.weights, disk.weights))
    assert disk.selected == mem.selected
    with pytest.raises(ValueError, match="give y_train=None"):
        sparsefit.glm_path(str(tmp_path / "X_train.npy"), y)

    spill = tmp_path / "spill"
    spill.mkdir()
    kwargs = dict(k=6, epsilon=0.01, val_loader=[(xv, yv)], do_zero=False, n_ex=len(x))
    in_memory = sparsefit.glm_saga(None, numpy_batches(x, y, shuffle_seed=4), 0.1, 500, ALPHA, **kwargs)
    spilled = sparsefit.glm_saga(None, numpy_batches(x, y, shuffle_seed=4), 0.1, 500, ALPHA,
                                 features_file=spill / "X_train.npy", **kwargs)
    assert np.array_equal(np.load(spill / "X_train.npy"), x) and np.array_equal(np.load(spill / "y_train.npy"), y)
    for a, b in zip(in_memory["path"], spilled["path"]):
        assert np.array_equal(np.asarray(a["weight"]), np.asarray(b["weight"]))
        assert abs(a["loss"] - b["loss"]) < 1e-9 and a["metrics"]["acc_val"] == b["metrics"]["acc_val"]
