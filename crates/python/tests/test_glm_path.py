"""The sparsefit wheel: a path from Python equals `fit path` on the same arrays bit for bit,
and bad input raises one-line Python exceptions, never a crash.

Run after installing the wheel (README, "From Python"):
    FIT_BIN=target/release/fit python -m pytest crates/python/tests
"""
import json
import os
import subprocess

import numpy as np
import pytest

import sparsefit

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIT = os.environ.get("FIT_BIN", os.path.join(ROOT, "target", "release", "fit"))


def problem(n=600, d=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, k))
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(x @ w + rng.normal(size=(n, k)), 1).astype(np.int64)
    xv = rng.normal(size=(200, d)).astype(np.float32)
    yv = np.argmax(xv @ w, 1).astype(np.int64)
    return x, y, xv, yv


def test_a_path_has_one_layer_and_record_per_lambda():
    x, y, xv, yv = problem()
    r = sparsefit.glm_path(x, y, xv, yv, k=12)
    assert len(r["lambdas"]) == len(r["records"]) == len(r["weights"]) == 12
    assert r["weights"][0].shape == (4, 20) and r["biases"][0].shape == (4,)
    assert np.count_nonzero(r["weights"][0]) == 0, "λ_max's layer is empty"
    assert all(a >= b for a, b in zip(r["lambdas"], r["lambdas"][1:]))
    selected = r["records"][r["selected"]]
    assert selected["val"]["accuracy"] >= max(rec["val"]["accuracy"] for rec in r["records"]) - 0.05


@pytest.mark.skipif(not os.path.exists(FIT), reason="needs the fit binary (cargo build --release -p fit)")
def test_the_same_problem_through_fit_path_gives_the_same_layers(tmp_path):
    from safetensors.numpy import load_file

    x, y, xv, yv = problem()
    r = sparsefit.glm_path(x, y, xv, yv, k=20, seed=3)
    for name, arr in [("X_train", x), ("y_train", y), ("X_val", xv), ("y_val", yv)]:
        np.save(tmp_path / f"{name}.npy", arr)
    subprocess.run(
        [FIT, "path", "--train", str(tmp_path / "X_train.npy"), "--val", str(tmp_path / "X_val.npy"),
         "--k", "20", "--seed", "3", "--out", str(tmp_path / "cli"), "--quiet"],
        check=True,
    )
    for i in range(20):
        layer = load_file(str(tmp_path / "cli" / "layers" / f"lambda_{i:03d}.safetensors"))
        assert np.array_equal(layer["weight"], r["weights"][i]), i
        assert np.array_equal(layer["bias"], r["biases"][i]), i
    cli = json.load(open(tmp_path / "cli" / "path.json"))
    assert [rec["objective"] for rec in cli["records"]] == [rec["objective"] for rec in r["records"]]
    assert cli["selection"]["selected_index"] == r["selected"]


def test_bad_input_raises_one_line_errors():
    x, y, xv, yv = problem()
    cases = [
        (TypeError, "must be a 2-D float32 numpy array", lambda: sparsefit.glm_path(x.astype(np.float64), y, xv, yv)),
        (TypeError, "int64 or int32", lambda: sparsefit.glm_path(x, y.astype(np.float32), xv, yv)),
        (ValueError, "is not finite", lambda: sparsefit.glm_path(np.where(x > 2, np.nan, x).astype(np.float32), y, xv, yv)),
        (ValueError, "out of range", lambda: sparsefit.glm_path(x, y, xv, yv + 7, num_classes=4)),
        (ValueError, "alpha must lie in [0, 1]", lambda: sparsefit.glm_path(x, y, xv, yv, alpha=2.0)),
        (ValueError, "200 feature rows but", lambda: sparsefit.glm_path(x, y, xv, yv[:150])),
    ]
    for kind, needle, call in cases:
        with pytest.raises(kind) as err:
            call()
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_non_contiguous_arrays_are_read_in_their_logical_order():
    x, y, xv, yv = problem(d=40)
    strided = sparsefit.glm_path(x[:, ::2], y, xv[:, ::2], yv, k=5)
    copied = sparsefit.glm_path(np.ascontiguousarray(x[:, ::2]), y, np.ascontiguousarray(xv[:, ::2]), yv, k=5)
    for a, b in zip(strided["weights"], copied["weights"]):
        assert np.array_equal(a, b)
