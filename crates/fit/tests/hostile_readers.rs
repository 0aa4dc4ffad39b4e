//! Generated hostile inputs for every reader of user files: `.npy` arrays, safetensors (layers
//! and feature shards), path checkpoints, and the files of a run folder. Each reader gets
//! `HOSTILE_INPUTS` (default 10,000) inputs made by seeded mutations of a valid file — bytes
//! flipped (mostly in the header), truncations, insertions, numbers swapped for absurd ones,
//! garbage appended — and must answer each with `Ok` or an error, never a panic. The readers
//! must also not allocate what a header claims before checking it against the file: the suite
//! runs in the CI's memory, and in seconds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use solver::io::{encode_arrays, encode_npy, Array};

mod common;

/// Inputs per reader (`HOSTILE_INPUTS` to change; the acceptance asks for 10,000).
fn inputs_per_reader() -> usize {
    std::env::var("HOSTILE_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

const ABSURD_NUMBERS: [&str; 9] = [
    "0",
    "-1",
    "1",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e308",
    "NaN",
    "340282366920938463463374607431768211456",
];

/// One seeded mutation of `valid`; `header` is how many leading bytes are header (where most
/// mutations land).
fn mutate(valid: &[u8], header: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    let pos = |rng: &mut ChaCha8Rng, len: usize| {
        if len == 0 {
            0
        } else if rng.random_bool(0.7) {
            rng.random_range(0..header.clamp(1, len))
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..7) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let i = pos(rng, b.len());
                if let Some(v) = b.get_mut(i) {
                    *v ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => {
            let cut = rng.random_range(0..=b.len());
            b.truncate(cut);
        }
        2 => {
            let i = pos(rng, b.len());
            let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
            b.splice(i..i, extra);
        }
        3 => {
            let i = pos(rng, b.len());
            let n = rng.random_range(1..16).min(b.len() - i.min(b.len()));
            b.drain(i..i + n);
        }
        4 => {
            // A run of ASCII digits in the header replaced by an absurd number.
            let starts: Vec<usize> = (0..header.min(b.len()))
                .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
                .collect();
            if let Some(&s) = starts.get(rng.random_range(0..starts.len().max(1))) {
                let e = (s..b.len()).find(|&i| !b[i].is_ascii_digit()).unwrap_or(b.len());
                let n = ABSURD_NUMBERS[rng.random_range(0..ABSURD_NUMBERS.len())];
                b.splice(s..e, n.bytes());
            }
        }
        5 => {
            let extra: Vec<u8> = (0..rng.random_range(1..4096)).map(|_| rng.random()).collect();
            b.extend(extra);
        }
        _ => {
            // Overwrite the 8 bytes at a position with an extreme little-endian integer (the
            // safetensors header length, a .npy header length).
            let i = pos(rng, b.len());
            let v: u64 = [u64::MAX, 1 << 40, 1 << 32, 0, 7][rng.random_range(0..5)];
            for (k, byte) in v.to_le_bytes().iter().enumerate() {
                if let Some(x) = b.get_mut(i + k) {
                    *x = *byte;
                }
            }
        }
    }
    b
}

/// Feed `count` mutations of `valid` (written to `file`) to `read` (true: the input was read
/// as valid); panics if any read panicked, naming the first. Returns `count`.
fn hammer(
    name: &str,
    file: &Path,
    valid: &[u8],
    (header, seed, count): (usize, u64, usize),
    read: impl Fn(&Path) -> bool,
) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut panics = Vec::new();
    let mut accepted = 0;
    let started = std::time::Instant::now();
    for i in 0..count {
        let bytes = mutate(valid, header, &mut rng);
        std::fs::write(file, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| read(file))) {
            Ok(read_ok) => accepted += read_ok as usize,
            Err(_) => panics.push(i),
        }
    }
    std::fs::write(file, valid).unwrap();
    eprintln!(
        "{name}: {count} hostile inputs in {:.1} s ({accepted} read as valid, the rest refused), {} panics",
        started.elapsed().as_secs_f64(),
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{name}: {} of {count} inputs panicked (first: input #{})",
        panics.len(),
        panics[0]
    );
    count
}

/// The header length of a safetensors file (8 + its JSON).
fn safetensors_header(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

#[test]
fn npy_reader_survives_hostile_files() {
    let dir = common::scratch("hostile", "npy");
    let file = dir.join("x.npy");
    let float = encode_npy(&Array::Float {
        shape: vec![20, 6],
        data: (0..120).map(|i| i as f32 * 0.5).collect(),
    });
    let ints = encode_npy(&Array::Int {
        shape: vec![20],
        data: (0..20).collect(),
    });
    for (seed, valid) in [(1, &float), (2, &ints)] {
        hammer("npy", &file, valid, (128, seed, inputs_per_reader()), |p| {
            let half = solver::io::read_npy_as(p, Some(solver::Storage::F16)).is_ok();
            solver::io::read_npy(p).is_ok() && half
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn safetensors_readers_survive_hostile_files() {
    let dir = common::scratch("hostile", "safetensors");
    let file = dir.join("x.safetensors");
    let layer = solver::Layer {
        k: 3,
        d: 6,
        weight: (0..18).map(|i| i as f32 - 9.0).collect(),
        bias: vec![0.1, -0.2, 0.3],
        mean: vec![0.0; 6],
        std: vec![1.0; 6],
    };
    let layer_bytes = layer.encode(None).unwrap();
    hammer(
        "layer (safetensors)",
        &file,
        &layer_bytes,
        (safetensors_header(&layer_bytes), 3, inputs_per_reader()),
        |p| {
            let raw = solver::io::read_safetensors(p).is_ok();
            solver::Layer::load(p).is_ok() && raw
        },
    );
    let shard = encode_arrays(
        &[
            (
                "features",
                &Array::Float {
                    shape: vec![4, 6],
                    data: vec![0.5; 24],
                },
            ),
            (
                "labels",
                &Array::Int {
                    shape: vec![4],
                    data: vec![0, 1, 2, 1],
                },
            ),
        ],
        None,
    )
    .unwrap();
    hammer(
        "feature shard (safetensors)",
        &file,
        &shard,
        (safetensors_header(&shard), 4, inputs_per_reader()),
        |p| {
            let raw = solver::io::read_safetensors(p).is_ok();
            solver::io::read_safetensors_tensor(p, "features").is_ok() && raw
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_reader_survives_hostile_files() {
    let dir = common::scratch("hostile", "checkpoint");
    let (n, d, k) = (60usize, 5usize, 3usize);
    let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % k as i64).collect();
    for (name, rows) in [("train", n), ("val", n / 2)] {
        std::fs::write(
            dir.join(format!("X_{name}.npy")),
            encode_npy(&Array::Float {
                shape: vec![rows, d],
                data: x[..rows * d].to_vec(),
            }),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("y_{name}.npy")),
            encode_npy(&Array::Int {
                shape: vec![rows],
                data: y[..rows].to_vec(),
            }),
        )
        .unwrap();
    }
    let out = dir.join("out");
    let ran = common::fit()
        .args(["path", "--quiet", "--k", "4", "--train"])
        .arg(dir.join("X_train.npy"))
        .arg("--val")
        .arg(dir.join("X_val.npy"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let checkpoint = solver::path::checkpoint_file(&out);
    let valid = std::fs::read(&checkpoint).unwrap();
    let (_, meta) = solver::io::read_safetensors(&checkpoint).unwrap();
    let fingerprint = meta["fingerprint"].clone();
    assert_eq!(
        solver::path::read_checkpoint(&checkpoint, &fingerprint, (d, k)).unwrap(),
        Some(4)
    );
    let file = dir.join("checkpoint.safetensors");
    hammer(
        "checkpoint",
        &file,
        &valid,
        (safetensors_header(&valid), 5, inputs_per_reader()),
        |p| solver::path::read_checkpoint(p, &fingerprint, (d, k)).is_ok(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_folder_readers_survive_hostile_files() {
    let dir = common::scratch("hostile", "run");
    let run = common::small_pixels_run(&dir);
    let interpreted = common::fit()
        .args([
            "interpret",
            "--quiet",
            "--lime-samples",
            "8",
            "--max-features",
            "1",
            "--run",
        ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        interpreted.status.success(),
        "{}",
        String::from_utf8_lossy(&interpreted.stderr)
    );
    let folder = fit::run_folder::RunFolder::new(&run);
    let read_all = || {
        let finished = fit::run_folder::RunFolder::open_finished(&run).is_ok();
        let _ = folder.recipe().map(|r| (r.kind().ok(), r.arch().ok()));
        let _ = folder.debugging();
        let layers = [
            fit::run_folder::LayerKind::Selected,
            fit::run_folder::LayerKind::Dense,
        ]
        .map(|kind| folder.layer(kind).is_ok());
        let _ = folder.head();
        finished
            && folder.metrics().is_ok()
            && folder.family().is_ok()
            && folder.interpretation().is_ok()
            && layers.iter().all(|ok| *ok)
    };
    let files = [
        ("run.json", 0usize),
        ("metrics.json", 0),
        ("path.json", 0),
        ("interpret.json", 0),
        ("selected.safetensors", 1),
        ("dense.safetensors", 1),
    ];
    let per_file = inputs_per_reader().div_ceil(files.len());
    let mut total = 0;
    for (seed, (name, kind)) in files.iter().enumerate() {
        let path = run.join(name);
        let valid = std::fs::read(&path).unwrap();
        let header = if *kind == 1 {
            safetensors_header(&valid)
        } else {
            valid.len()
        };
        let settings = (header, 10 + seed as u64, per_file);
        total += hammer(&format!("run folder: {name}"), &path, &valid, settings, |_| {
            read_all()
        });
    }
    assert!(total >= inputs_per_reader());
    let _ = std::fs::remove_dir_all(&dir);
}
