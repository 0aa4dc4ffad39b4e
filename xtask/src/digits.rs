//! The offline demo data: the UCI optical handwritten digits (8×8 images, 10 classes) as shipped
//! inside scikit-learn's wheel on PyPI (`sklearn/datasets/data/digits.csv.gz`).

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use solver::io::{encode_npy, write_atomic, Array};

use crate::run;

const PACKAGE: &str = "scikit-learn==1.9.1";
const MEMBER: &str = "sklearn/datasets/data/digits.csv.gz";
/// sha256 of the decompressed CSV (1,797 rows of 64 pixel counts 0–16 and the label).
const CSV_SHA256: &str = "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8";
const SPLIT_SEED: u64 = 0;

/// Fetch (once) and return the folder holding `X_{train,val,test}.npy` and `y_…npy`.
pub fn fetch() -> Result<PathBuf> {
    let dir = crate::fetch::data_dir().join("digits");
    if dir.join("SOURCE.txt").exists() {
        return Ok(dir);
    }
    let downloads = crate::fetch::data_dir().join("downloads");
    std::fs::create_dir_all(&downloads)?;
    let wheel = find_wheel(&downloads);
    let wheel = match wheel {
        Some(w) => w,
        None => {
            eprintln!("fetching {PACKAGE} from PyPI (the digits CSV ships inside its wheel)");
            run(Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--quiet",
                ])
                .arg("-d")
                .arg(&downloads)
                .arg(PACKAGE))
            .context("pip download failed (needs python3 with pip and access to PyPI)")?;
            find_wheel(&downloads).context("pip download left no scikit-learn wheel")?
        }
    };
    let out = Command::new("unzip")
        .arg("-p")
        .arg(&wheel)
        .arg(MEMBER)
        .output()
        .context("cannot run unzip")?;
    if !out.status.success() || out.stdout.is_empty() {
        bail!("{} holds no {MEMBER}", wheel.display());
    }
    let mut csv = String::new();
    flate2::read::GzDecoder::new(&out.stdout[..])
        .read_to_string(&mut csv)
        .context("digits.csv.gz")?;
    let digest = format!("{:x}", Sha256::digest(csv.as_bytes()));
    if digest != CSV_SHA256 {
        bail!("digits.csv has sha256 {digest}, expected {CSV_SHA256}");
    }

    let mut rows: Vec<(Vec<f32>, i64)> = Vec::new();
    for (i, line) in csv.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("digits.csv line {}", i + 1))?;
        if vals.len() != 65 {
            bail!(
                "digits.csv line {} has {} columns, expected 65",
                i + 1,
                vals.len()
            );
        }
        rows.push((vals[..64].to_vec(), vals[64] as i64));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let n_train = rows.len() * 6 / 10;
    let n_val = rows.len() * 2 / 10;
    let parts = [
        ("train", &order[..n_train]),
        ("val", &order[n_train..n_train + n_val]),
        ("test", &order[n_train + n_val..]),
    ];
    for (name, idx) in parts {
        let x: Vec<f32> = idx.iter().flat_map(|&i| rows[i].0.clone()).collect();
        let y: Vec<i64> = idx.iter().map(|&i| rows[i].1).collect();
        write_atomic(
            &dir.join(format!("X_{name}.npy")),
            &encode_npy(&Array::Float {
                shape: vec![idx.len(), 64],
                data: x,
            }),
        )?;
        write_atomic(
            &dir.join(format!("y_{name}.npy")),
            &encode_npy(&Array::Int {
                shape: vec![idx.len()],
                data: y,
            }),
        )?;
    }
    write_atomic(
        &dir.join("SOURCE.txt"),
        format!(
            "UCI optical recognition of handwritten digits, from {PACKAGE} ({MEMBER}, sha256 {CSV_SHA256}).\n\
             {} examples, 64 features (8x8 pixel counts 0-16), 10 classes.\n\
             Seeded split (ChaCha8 seed {SPLIT_SEED}): train {n_train}, val {n_val}, test {}.\n",
            rows.len(),
            rows.len() - n_train - n_val
        )
        .as_bytes(),
    )?;
    eprintln!(
        "wrote {} (train {n_train}, val {n_val}, test {})",
        dir.display(),
        rows.len() - n_train - n_val
    );
    Ok(dir)
}

fn find_wheel(dir: &std::path::Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("scikit_learn-1.9.1") && n.ends_with(".whl"))
        })
}
