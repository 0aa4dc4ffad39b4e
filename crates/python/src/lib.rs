//! `sparsefit._core`: the elastic-net path solver of `crates/solver` from Python.
//!
//! `glm_path(X, y, X_val, y_val, ...)` runs the same path as `fit path` on the same arrays
//! (same problem, standardization, settings and seed: the same layers bit for bit on flex) and
//! returns its λs, per-λ records and layers as numpy arrays; `select` is the CLI's selection
//! rule on those records. The Python package (`python/sparsefit`) wraps both and adds the
//! glm_saga drop-in. The GIL is released while the path runs; Ctrl-C stops it after the epoch
//! in progress (`KeyboardInterrupt`), and bad input raises `ValueError`/`TypeError` with the
//! CLI's one-line message.

use std::sync::{Arc, Mutex};

use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use solver::{
    Family, FeatureSource, Features, Hooks, LambdaRecord, PathConfig, Problem, RunOptions, SolverError,
    Split, StepSize, Storage, Targets, Threshold,
};

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
fn matrix(x: &Bound<'_, PyAny>, name: &str, what: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    let array: PyReadonlyArray2<f32> = x.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a 2-D float32 numpy array [n, {what}], got {} (use {name}.astype(numpy.float32))",
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

/// The targets of one split: class labels (multinomial) or an [n, K] float32 array
/// (gaussian outputs, multilabel 0/1 indicators).
fn targets(y: &Bound<'_, PyAny>, name: &str, family: Family) -> PyResult<Targets> {
    match family {
        Family::Multinomial => Ok(Targets::Classes(labels(y, name)?)),
        Family::Gaussian | Family::Multilabel => {
            let (values, _, k) = matrix(y, name, "K")?;
            Ok(Targets::Dense { values, k })
        }
    }
}

fn family_named(name: &str) -> PyResult<Family> {
    match name {
        "multinomial" => Ok(Family::Multinomial),
        "gaussian" => Ok(Family::Gaussian),
        "multilabel" => Ok(Family::Multilabel),
        other => Err(value_error(format!(
            "family must be \"multinomial\", \"gaussian\" or \"multilabel\", got {other:?}"
        ))),
    }
}

/// Where a split's features come from and how they are held: arrays in memory (copied once
/// into the solver, which standardizes and shuffles its copy: the caller's arrays are never
/// changed), or files as `fit path --train` reads them (`X.npy` with `y.npy` beside it,
/// `X.npy,y.npy`, or a `.safetensors` file), loaded (in `storage` precision) or, with
/// `stream="disk"`, read by rows while the path runs.
struct Input<'a> {
    stream: Option<&'a str>,
    storage: Option<Storage>,
    family: Family,
}

impl Input<'_> {
    fn split(
        &self,
        name: &str,
        x: &Bound<'_, PyAny>,
        y: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Split> {
        let split = if let Ok(spec) = x.extract::<std::path::PathBuf>() {
            if y.is_some() {
                return Err(value_error(format!(
                    "X_{name} is a file, so its labels come from the file too: give y_{name}=None"
                )));
            }
            let source = FeatureSource::parse(&spec.to_string_lossy()).map_err(value_error)?;
            match self.stream {
                Some("disk") => source.load_streamed(name),
                _ => source.load_as(name, self.storage),
            }
            .map_err(value_error)?
        } else {
            let y =
                y.ok_or_else(|| value_error(format!("y_{name} is missing: give the targets of X_{name}")))?;
            let (values, n, d) = matrix(x, &format!("X_{name}"), "d")?;
            let targets = targets(y, &format!("y_{name}"), self.family)?;
            let features = match self.storage {
                None | Some(Storage::F32) => Features::F32(values),
                Some(s) => Features::F32(values).into_storage(s),
            };
            Split::new(name, features, n, d, targets).map_err(value_error)?
        };
        with_weights(split, weights)
    }
}

fn with_weights(split: Split, weights: Option<&Bound<'_, PyAny>>) -> PyResult<Split> {
    match weights {
        None => Ok(split),
        Some(w) => {
            let w: PyReadonlyArray1<f32> = w.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "sample_weight must be a 1-D float32 numpy array [n], got {}",
                    describe(w)
                ))
            })?;
            split.with_weights(w.as_array().to_vec()).map_err(value_error)
        }
    }
}

/// A record as the dict `json.loads` makes of its JSON (the same keys as path.json).
fn record_dict<'py>(py: Python<'py>, record: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(record).map_err(value_error)?;
    py.import("json")?.call_method1("loads", (json,))
}

/// The hooks that connect a solve to the interpreter: Ctrl-C (checked after every epoch) and
/// an optional Python callable `on_lambda(record, total)` after each λ. An exception in the
/// callable stops the solve and is raised in its place.
fn python_hooks(on_lambda: Option<PyObject>, failed: Arc<Mutex<Option<PyErr>>>) -> Hooks {
    let stop = failed.clone();
    let interrupted = Arc::new(move || {
        let callback_failed = stop.lock().map(|e| e.is_some()).unwrap_or(true);
        callback_failed || Python::with_gil(|py| py.check_signals().is_err())
    });
    let on_lambda = on_lambda.map(|callable| {
        let report: solver::LambdaReport = Arc::new(move |record: &LambdaRecord, total: usize| {
            Python::with_gil(|py| {
                let called = record_dict(py, record).and_then(|r| callable.call1(py, (r, total)));
                if let Err(e) = called {
                    if let Ok(mut slot) = failed.lock() {
                        slot.get_or_insert(e);
                    }
                }
            })
        });
        report
    });
    Hooks {
        interrupted: Some(interrupted),
        on_lambda,
    }
}

/// The elastic-net path on `X` [n, d] (float32) and targets `y`, validated on `X_val`,
/// `y_val` when given: the arguments of `fit path` (`lr=None` is its `--lr auto`, `lambdas` its
/// `--lambdas`, `first` its `--first`, `stream` and `storage` its `--stream` and `--storage`).
/// `X` and `X_val` may also be files as `fit path --train` reads them (their labels then come
/// from the files: `y=None`). Returns a dict: `lambdas`, `lambda_max`, `records`
/// (one dict per λ: objective, KKT, epochs, accuracies, nonzeros per class…), `weights` and
/// `biases` (per λ, on standardized features), `mean`, `std` (the standardization:
/// `logits = ((X - mean) / std) @ W.T + b`), `lr` (the base step), `ended_early` and
/// `path_seconds`.
#[pyfunction]
#[pyo3(signature = (
    x, y=None, x_val=None, y_val=None, *, alpha=0.99, k=100, eps=1e-3, family="multinomial",
    group=false, sample_weight=None, lambdas=None, dense_end=false, max_features_per_class=None,
    lr=None, lr_decay=1.0, batch_size=256, max_epochs=2000, tol=1e-4, lookbehind=3, seed=0,
    standardize=true, num_classes=None, first=None, backend="flex", checkpoint_dir=None,
    resume=false, verbose=false, on_lambda=None, stream=None, storage=None
))]
#[allow(clippy::too_many_arguments)]
fn glm_path<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: Option<&Bound<'py, PyAny>>,
    x_val: Option<&Bound<'py, PyAny>>,
    y_val: Option<&Bound<'py, PyAny>>,
    alpha: f64,
    k: usize,
    eps: f64,
    family: &str,
    group: bool,
    sample_weight: Option<&Bound<'py, PyAny>>,
    lambdas: Option<Vec<f64>>,
    dense_end: bool,
    max_features_per_class: Option<f64>,
    lr: Option<f64>,
    lr_decay: f64,
    batch_size: usize,
    max_epochs: usize,
    tol: f64,
    lookbehind: usize,
    seed: u64,
    standardize: bool,
    num_classes: Option<usize>,
    first: Option<usize>,
    backend: &str,
    checkpoint_dir: Option<std::path::PathBuf>,
    resume: bool,
    verbose: bool,
    on_lambda: Option<PyObject>,
    stream: Option<&str>,
    storage: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let family = family_named(family)?;
    if let Some(s) = stream.filter(|s| !matches!(*s, "memory" | "disk")) {
        return Err(value_error(format!(
            "stream must be \"memory\" or \"disk\", got {s:?}"
        )));
    }
    let storage: Option<Storage> = storage.map(str::parse).transpose().map_err(value_error)?;
    if let (Some("disk"), Some(s)) = (stream, storage) {
        return Err(value_error(format!(
            "storage {s:?} cannot apply to stream=\"disk\": the rows are read in the files' own precision"
        )));
    }
    let input = Input {
        stream,
        storage,
        family,
    };
    let config = PathConfig {
        family,
        alpha,
        n_lambdas: k,
        eps,
        dense_end,
        group,
        lr: lr.map_or(StepSize::Auto, StepSize::Fixed),
        lr_decay,
        batch_size,
        max_epochs,
        tol,
        lookbehind,
        seed,
        lambda_list: lambdas,
        ..PathConfig::default()
    };
    config.validate().map_err(value_error)?;
    let failed = Arc::new(Mutex::new(None));
    let opts = RunOptions {
        keep_layers: true,
        stop_after: first,
        max_features_per_class,
        out_dir: checkpoint_dir,
        resume,
        verbose,
        hooks: python_hooks(on_lambda, failed.clone()),
        host_rows: stream.is_some(),
        ..RunOptions::default()
    };
    opts.validate().map_err(value_error)?;
    let train = input.split("train", x, y, sample_weight)?;
    let val = match (x_val, y_val) {
        (Some(xv), yv) => Some(input.split("val", xv, yv, None)?),
        (None, None) => None,
        (None, Some(_)) => return Err(value_error("y_val was given without X_val")),
    };
    let mut problem = Problem::new(family, train, val, None, num_classes).map_err(value_error)?;
    let standardizer = problem.standardize(standardize);
    let device = backend
        .parse::<solver::BackendKind>()
        .and_then(|b| b.device())
        .map_err(value_error)?;
    let solved = py.allow_threads(|| -> solver::Result<_> {
        if let Some(dir) = &opts.out_dir {
            std::fs::create_dir_all(dir).map_err(|source| SolverError::Write {
                path: dir.clone(),
                source,
            })?;
        }
        solver::run_path(problem, &standardizer, &config, &device, &opts)
    });
    if let Some(e) = failed.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    let result = match solved {
        Ok(result) => result,
        Err(e @ SolverError::Interrupted { .. }) => return Err(PyKeyboardInterrupt::new_err(e.to_string())),
        Err(e) => return Err(value_error(e)),
    };

    let out = PyDict::new(py);
    out.set_item("lambdas", result.lambdas.clone())?;
    out.set_item("lambda_max", result.lambda_max)?;
    out.set_item("lr", result.base_lr)?;
    out.set_item("records", record_dict(py, &result.records)?)?;
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
    out.set_item("ended_early", result.ended_early.clone())?;
    out.set_item("path_seconds", result.path_seconds)?;
    Ok(out)
}

/// The CLI's selection rule on a path's records (their JSON, as `glm_path` returns them):
/// the sparsest λ whose validation score is within `threshold` (absolute, or relative with
/// `relative=True`) of the best one, or of `reference` when given (e.g. the backbone's own
/// head). Returns the selection as a dict (`selected_index`, `best_index`, `cutoff`, …).
#[pyfunction]
#[pyo3(signature = (records_json, threshold=0.05, relative=false, reference=None))]
fn select<'py>(
    py: Python<'py>,
    records_json: &str,
    threshold: f64,
    relative: bool,
    reference: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let records: Vec<LambdaRecord> = serde_json::from_str(records_json).map_err(value_error)?;
    let threshold = if relative {
        Threshold::Relative(threshold)
    } else {
        Threshold::Absolute(threshold)
    };
    threshold.validate().map_err(value_error)?;
    let selection = match reference {
        None => solver::select(&records, threshold),
        Some(r) => solver::select_against(&records, threshold, r),
    }
    .map_err(value_error)?;
    record_dict(py, &selection)
}

#[pymodule]
#[pyo3(name = "_core")]
fn sparsefit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(glm_path, m)?)?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    Ok(())
}
