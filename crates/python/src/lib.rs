//! `sparsefit`: the elastic-net path solver of `crates/solver` from Python.
//!
//! `glm_path(X, y, X_val, y_val, ...)` runs the same path as `fit path` on the same arrays
//! (same problem, standardization, settings and seed: the same layers bit for bit on flex) and
//! returns its λs, per-λ records and layers as numpy arrays. The GIL is released while the
//! path runs. Bad input raises `ValueError` with the CLI's one-line message.

use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use solver::{Family, Features, PathConfig, Problem, RunOptions, Split, StepSize, Targets, Threshold};

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// What a Python object is, for type errors.
fn describe(x: &Bound<'_, PyAny>) -> String {
    let dtype = x
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| x.get_type().to_string());
    let ndim = x
        .getattr("ndim")
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    format!("{ndim}-D {dtype}")
}

/// A 2-D float32 array as row-major values (any memory layout; copied once).
fn features(x: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    let array: PyReadonlyArray2<f32> = x.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a 2-D float32 numpy array [n, d], got {} (use X.astype(numpy.float32))",
            describe(x)
        ))
    })?;
    let view = array.as_array();
    let (n, d) = view.dim();
    Ok((view.iter().copied().collect(), n, d))
}

/// Class labels from a 1-D integer array (int64 or int32).
fn labels(y: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<i64>> {
    if let Ok(a) = y.extract::<PyReadonlyArray1<i64>>() {
        return Ok(a.as_array().to_vec());
    }
    if let Ok(a) = y.extract::<PyReadonlyArray1<i32>>() {
        return Ok(a.as_array().iter().map(|&v| v as i64).collect());
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a 1-D int64 or int32 numpy array of class labels, got {}",
        describe(y)
    )))
}

fn split(name: &str, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<Split> {
    let (values, n, d) = features(x, &format!("X_{name}"))?;
    let classes = labels(y, &format!("y_{name}"))?;
    Split::new(name, Features::F32(values), n, d, Targets::Classes(classes)).map_err(value_error)
}

/// The elastic-net path on `X` [n, d] (float32) and class labels `y` [n], validated on
/// `X_val`, `y_val`: the arguments of `fit path` (`lr=None` is its `--lr auto`). Returns a dict:
/// `lambdas`, `lambda_max`, `records` (one dict per λ: objective, KKT, epochs, accuracies,
/// nonzeros per class…), `weights` and `biases` (per λ, on standardized features), `mean`,
/// `std` (the standardization: `logits = ((X - mean) / std) @ W.T + b`), and `selected` (the
/// sparsest λ within `select_threshold` of the best validation accuracy).
#[pyfunction]
#[pyo3(signature = (
    x, y, x_val, y_val, *, alpha=0.99, k=100, eps=1e-3, family="multinomial", group=false,
    lr=None, batch_size=256, max_epochs=1000, tol=1e-4, lookbehind=3, seed=0,
    standardize=true, num_classes=None, first=None, select_threshold=0.05, backend="flex"
))]
#[allow(clippy::too_many_arguments)]
fn glm_path<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    x_val: &Bound<'py, PyAny>,
    y_val: &Bound<'py, PyAny>,
    alpha: f64,
    k: usize,
    eps: f64,
    family: &str,
    group: bool,
    lr: Option<f64>,
    batch_size: usize,
    max_epochs: usize,
    tol: f64,
    lookbehind: usize,
    seed: u64,
    standardize: bool,
    num_classes: Option<usize>,
    first: Option<usize>,
    select_threshold: f64,
    backend: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let family: Family = match family {
        "multinomial" => Family::Multinomial,
        other => {
            return Err(value_error(format!(
                "family must be \"multinomial\" here (class labels), got {other:?}"
            )))
        }
    };
    let config = PathConfig {
        family,
        alpha,
        n_lambdas: k,
        eps,
        group,
        lr: lr.map_or(StepSize::Auto, StepSize::Fixed),
        batch_size,
        max_epochs,
        tol,
        lookbehind,
        seed,
        ..PathConfig::default()
    };
    config.validate().map_err(value_error)?;
    let threshold = Threshold::Absolute(select_threshold);
    threshold.validate().map_err(value_error)?;
    let train = split("train", x, y)?;
    let val = split("val", x_val, y_val)?;
    let mut problem = Problem::new(family, train, Some(val), None, num_classes).map_err(value_error)?;
    let standardizer = problem.standardize(standardize);
    let device = backend
        .parse::<solver::BackendKind>()
        .and_then(|b| b.device())
        .map_err(value_error)?;
    let opts = RunOptions {
        keep_layers: true,
        stop_after: first,
        ..RunOptions::default()
    };
    let result = py
        .allow_threads(|| solver::run_path(problem, &standardizer, &config, &device, &opts))
        .map_err(value_error)?;
    let selection = solver::select(&result.records, threshold).map_err(value_error)?;

    let out = PyDict::new(py);
    out.set_item("lambdas", result.lambdas.clone())?;
    out.set_item("lambda_max", result.lambda_max)?;
    let records = serde_json::to_string(&result.records).map_err(value_error)?;
    out.set_item("records", py.import("json")?.call_method1("loads", (records,))?)?;
    let (kk, d) = (result.k, result.d);
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for layer in &result.layers {
        let w = numpy::ndarray::Array2::from_shape_vec((kk, d), layer.weight.clone()).map_err(value_error)?;
        weights.push(w.into_pyarray(py));
        biases.push(layer.bias.clone().into_pyarray(py));
    }
    out.set_item("weights", weights)?;
    out.set_item("biases", biases)?;
    out.set_item("mean", standardizer.mean.clone().into_pyarray(py))?;
    out.set_item("std", standardizer.std.clone().into_pyarray(py))?;
    out.set_item("selected", selection.selected_index)?;
    Ok(out)
}

#[pymodule]
fn sparsefit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(glm_path, m)?)?;
    Ok(())
}
