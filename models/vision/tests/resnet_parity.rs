//! Acceptance 1: ResNet-18 and ResNet-50 on deterministic synthetic weights, written in
//! torchvision's layout and loaded through the real loader, give torchvision's post-/pre-ReLU
//! pooled features and logits (fixtures from `fixtures/make_fixtures.py`).

mod common;

use burn::tensor::{Tensor, TensorData};
use common::*;
use vision::{synthetic, FeatureMode, VisionArch, VisionModel, WeightsSource};

const SEED: u64 = 7;

fn input(meta: &[(String, String)]) -> (Vec<usize>, Vec<f32>) {
    let shape: Vec<usize> = serde_json::from_str(
        &meta
            .iter()
            .find(|(k, _)| k == "input_shape")
            .expect("input_shape")
            .1,
    )
    .unwrap();
    let seed: u64 = meta.iter().find(|(k, _)| k == "seed").unwrap().1.parse().unwrap();
    assert_eq!(seed, SEED);
    let x = synthetic::input(SEED, &shape);
    (shape, x)
}

/// Compare a model against a fixture; returns the three relative differences.
fn check(model: &VisionModel, fixture: &str) -> [f32; 3] {
    let (refs, meta) = read_fixture(fixture);
    let (shape, x) = input(&meta);
    let device = device();
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let (post, logits) = model.features_and_logits(x.clone(), FeatureMode::PostRelu);
    let pre = model.features(x.clone(), FeatureMode::PreRelu);
    let only_logits = model.logits(x);
    let diffs = [
        rel_diff(&to_vec(post), &refs["features_post"].1),
        rel_diff(&to_vec(pre.clone()), &refs["features_pre"].1),
        rel_diff(&to_vec(logits.clone()), &refs["logits"].1),
    ];
    assert_eq!(to_vec(only_logits), to_vec(logits));
    let pre = to_vec(pre);
    assert!(
        pre.iter().any(|&v| v < 0.0),
        "pre-ReLU features should have negative entries"
    );
    diffs
}

fn parity(arch: VisionArch, fixture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    synthetic::write_safetensors(&synthetic::state_dict(arch, SEED, 1000), &[""], &path).unwrap();
    let device = device();
    let model = VisionModel::load(arch, &WeightsSource::File(path.clone()), &device).expect("loads");
    assert_eq!(model.feature_dim(), arch.feature_dim());
    assert_eq!(model.num_classes(), 1000);
    assert_eq!(model.weights_fingerprint().len(), 64);
    let diffs = check(&model, fixture);
    eprintln!(
        "{arch} on {}: max relative difference to torchvision: post-ReLU features {:.2e}, pre-ReLU {:.2e}, logits {:.2e}",
        backend_name(),
        diffs[0],
        diffs[1],
        diffs[2]
    );
    for d in diffs {
        assert!(d <= tolerance(), "{arch}: {d:.3e} > {}", tolerance());
    }
    // the folder form of the same file (model-hub's local resolution)
    let from_dir = VisionModel::load(arch, &WeightsSource::from(dir.path()), &device).unwrap();
    assert_eq!(from_dir.weights_fingerprint(), model.weights_fingerprint());
    let (w, b) = model.head();
    assert_eq!((w.len(), b.len()), (1000 * arch.feature_dim(), 1000));
    let fc = synthetic::tensor(SEED, "fc.weight", &[1000, arch.feature_dim()]);
    assert_eq!(w, fc);
}

#[test]
fn resnet18_matches_torchvision() {
    parity(VisionArch::ResNet18, "resnet18_synthetic.safetensors");
}

#[test]
fn resnet50_matches_torchvision() {
    parity(VisionArch::ResNet50, "resnet50_synthetic.safetensors");
}

/// The same ResNet-18 weights inside a robustness-library checkpoint layout (a `model` dict whose
/// names carry `module.model.` and `module.attacker.model.`, plus the input normalizer), and in
/// Hugging Face transformers' names, give the same outputs; the normalizer becomes the
/// preprocessing's mean/std.
#[test]
fn resnet18_robustness_and_transformers_layouts() {
    let arch = VisionArch::ResNet18;
    let sd = synthetic::state_dict(arch, SEED, 1000);
    let dir = tempfile::tempdir().unwrap();
    let device = device();

    let mut with_norm = sd.clone();
    with_norm.push((
        "module.normalizer.new_mean".into(),
        vec![3, 1, 1],
        vec![0.4914, 0.4822, 0.4465],
    ));
    with_norm.push((
        "module.normalizer.new_std".into(),
        vec![3, 1, 1],
        vec![0.2023, 0.1994, 0.2010],
    ));
    let robust = dir.path().join("robust.safetensors");
    // normalizer keys get the `model.` prefix only; the model under both wrappers
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (n, s, v) in &with_norm {
        if n.starts_with("module.normalizer") {
            tensors.push((format!("model.{n}"), s.clone(), v.clone()));
            tensors.push((
                format!("model.{}", n.replace("normalizer", "attacker.normalize")),
                s.clone(),
                v.clone(),
            ));
        } else {
            tensors.push((format!("model.module.model.{n}"), s.clone(), v.clone()));
            tensors.push((format!("model.module.attacker.model.{n}"), s.clone(), v.clone()));
        }
    }
    tensors.push((
        "optimizer.state.0.momentum_buffer".into(),
        vec![2],
        vec![0.0, 0.0],
    ));
    synthetic::write_safetensors(&tensors, &[""], &robust).unwrap();
    let model = VisionModel::load(arch, &WeightsSource::File(robust), &device).unwrap();
    assert_eq!(model.layout().prefix, "model.module.model.");
    let pre = model.preprocessing();
    assert_eq!(pre.mean, [0.4914, 0.4822, 0.4465]);
    assert_eq!(pre.std, [0.2023, 0.1994, 0.2010]);
    for d in check(&model, "resnet18_synthetic.safetensors") {
        assert!(d <= tolerance());
    }

    // transformers ResNetForImageClassification names
    let hf = dir.path().join("hf.safetensors");
    let rename = |n: &str| -> String {
        if let Some(p) = n.strip_prefix("conv1.") {
            return format!("resnet.embedder.embedder.convolution.{p}");
        }
        if let Some(p) = n.strip_prefix("bn1.") {
            return format!("resnet.embedder.embedder.normalization.{p}");
        }
        if let Some(p) = n.strip_prefix("fc.") {
            return format!("classifier.1.{p}");
        }
        let parts: Vec<&str> = n.split('.').collect();
        let stage = parts[0].trim_start_matches("layer").parse::<usize>().unwrap() - 1;
        let base = format!("resnet.encoder.stages.{stage}.layers.{}", parts[1]);
        match &parts[2..] {
            ["downsample", "0", p] => format!("{base}.shortcut.convolution.{p}"),
            ["downsample", "1", p] => format!("{base}.shortcut.normalization.{p}"),
            [c, p] if c.starts_with("conv") => {
                format!(
                    "{base}.layer.{}.convolution.{p}",
                    c[4..].parse::<usize>().unwrap() - 1
                )
            }
            [c, p] if c.starts_with("bn") => {
                format!(
                    "{base}.layer.{}.normalization.{p}",
                    c[2..].parse::<usize>().unwrap() - 1
                )
            }
            _ => panic!("{n}"),
        }
    };
    let renamed: Vec<_> = sd
        .iter()
        .map(|(n, s, v)| (rename(n), s.clone(), v.clone()))
        .collect();
    synthetic::write_safetensors(&renamed, &[""], &hf).unwrap();
    let model = VisionModel::load(arch, &WeightsSource::File(hf), &device).unwrap();
    assert_eq!(model.layout().naming, vision::Naming::HfTransformers);
    for d in check(&model, "resnet18_synthetic.safetensors") {
        assert!(d <= tolerance());
    }
}

/// `VisionModel::random` builds the same network as the synthetic file.
#[test]
fn random_equals_synthetic_file() {
    let model = VisionModel::random(VisionArch::ResNet18, SEED, &device())
        .unwrap()
        .to_device(&device());
    for d in check(&model, "resnet18_synthetic.safetensors") {
        assert!(d <= tolerance());
    }
}
