//! Acceptance 4: checkpoint reading on real `torch.save` files (zip, legacy, a robustness-library
//! training checkpoint) and one test per typed loading error: missing, unexpected, wrong shape,
//! wrong dtype, truncated file, not a checkpoint, pickle asking for an unknown global, bad hub id.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use vision::checkpoint::Format;
use vision::{synthetic, Checkpoint, VisionArch, VisionError, VisionModel, WeightsSource};

fn pth(name: &str) -> PathBuf {
    fixtures().join("pth").join(name)
}

fn tiny_values() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(pth("tiny_values.json")).unwrap()).unwrap()
}

fn check_tiny(ckpt: &Checkpoint, prefix: &str) {
    let values = tiny_values();
    for (name, v) in values.as_object().unwrap() {
        let full = format!("{prefix}{name}");
        let entry = ckpt.entry(&full).unwrap_or_else(|| panic!("{full} missing"));
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(entry.shape, shape, "{full}");
        let expected: Vec<f32> = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        if v["dtype"] == "int64" {
            assert!(matches!(
                ckpt.read_f32(&full),
                Err(VisionError::WrongDtype { .. })
            ));
        } else {
            assert_eq!(ckpt.read_f32(&full).unwrap(), expected, "{full}");
        }
    }
}

#[test]
fn reads_zip_and_legacy_torch_files() {
    let zip = Checkpoint::open(pth("tiny_zip.pth")).unwrap();
    assert_eq!(zip.format(), Format::TorchZip);
    assert_eq!(zip.len(), 5);
    check_tiny(&zip, "");
    let legacy = Checkpoint::open(pth("tiny_legacy.pth")).unwrap();
    assert_eq!(legacy.format(), Format::TorchLegacy);
    check_tiny(&legacy, "");
}

#[test]
fn reads_a_robustness_training_checkpoint() {
    let ckpt = Checkpoint::open(pth("tiny_robustness.pth")).unwrap();
    check_tiny(&ckpt, "model.module.model.");
    check_tiny(&ckpt, "model.module.attacker.model.");
    assert!(ckpt.entry("optimizer.state.0.momentum_buffer").is_some());
    let (mean, std) = vision::state_dict::input_normalizer(&ckpt)
        .unwrap()
        .expect("normalizer");
    assert_eq!(mean, [0.4914, 0.4822, 0.4465]);
    assert_eq!(std, [0.2023, 0.1994, 0.2010]);
    // the model is found under the shortest wrapper prefix; the tiny file lacks the rest of a
    // ResNet, and the error names the first missing tensor with that prefix
    match VisionModel::load(
        VisionArch::ResNet18,
        &WeightsSource::File(pth("tiny_robustness.pth")),
        &device(),
    ) {
        Err(VisionError::MissingTensor { name, more, .. }) => {
            assert_eq!(name, "model.module.model.bn1.weight");
            assert!(more > 50);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_pickle_globals_are_refused() {
    match Checkpoint::open(pth("tiny_unknown_global.pth")) {
        Err(VisionError::UnknownGlobal { module, name, .. }) => {
            // protocol 2, what torch.save writes, spells the module with its Python 2 name
            assert_eq!((module.as_str(), name.as_str()), ("__builtin__", "print"));
        }
        other => panic!("{other:?}"),
    }
    // a whole-module save names the module's class
    match Checkpoint::open(pth("tiny_full_module.pth")) {
        Err(VisionError::UnknownGlobal { module, name, .. }) => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("torch.nn.modules.linear", "Linear")
            );
        }
        other => panic!("{other:?}"),
    }
}

fn copy_cut(src: &Path, keep: usize, dir: &Path, name: &str) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &bytes[..keep.min(bytes.len())]).unwrap();
    path
}

/// Open and read every tensor: a truncated file must fail with `Truncated` at one of the two.
fn open_and_read(path: &Path) -> Result<(), VisionError> {
    let ckpt = Checkpoint::open(path)?;
    for name in ckpt.names().map(String::from).collect::<Vec<_>>() {
        match ckpt.read_f32(&name) {
            Err(VisionError::WrongDtype { .. }) | Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[test]
fn truncated_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("tiny.safetensors");
    synthetic::write_safetensors(&[("w".into(), vec![4, 4], vec![1.0; 16])], &[""], &st).unwrap();
    let len = std::fs::metadata(&st).unwrap().len() as usize;
    let zip_len = std::fs::metadata(pth("tiny_zip.pth")).unwrap().len() as usize;
    let legacy_len = std::fs::metadata(pth("tiny_legacy.pth")).unwrap().len() as usize;
    let cases = [
        copy_cut(&st, len - 4, dir.path(), "a.safetensors"),
        copy_cut(&st, 40, dir.path(), "b.safetensors"),
        copy_cut(&pth("tiny_zip.pth"), zip_len - 100, dir.path(), "c.pth"),
        copy_cut(&pth("tiny_zip.pth"), zip_len / 2, dir.path(), "d.pth"),
        copy_cut(&pth("tiny_legacy.pth"), legacy_len - 8, dir.path(), "e.pth"),
        copy_cut(&pth("tiny_legacy.pth"), 300, dir.path(), "f.pth"),
        copy_cut(&pth("tiny_legacy.pth"), 700, dir.path(), "g.pth"),
    ];
    for path in cases {
        match open_and_read(&path) {
            Err(VisionError::Truncated { .. }) => {}
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}

#[test]
fn non_checkpoints_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "these are not weights\n").unwrap();
    let empty = dir.path().join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    for path in [text, empty, fixtures().join("preprocess/gray28.png")] {
        match Checkpoint::open(&path) {
            Err(VisionError::NotACheckpoint { .. }) => {}
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    match Checkpoint::open(dir.path().join("absent.safetensors")) {
        Err(VisionError::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn resnet18(
    mutate: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
) -> Result<VisionModel, VisionError> {
    let mut sd = synthetic::state_dict(VisionArch::ResNet18, 1, 1000);
    mutate(&mut sd);
    let ckpt = Checkpoint::from_f32("<test>", sd);
    VisionModel::from_checkpoint(VisionArch::ResNet18, &ckpt, &device())
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_named() {
    match resnet18(|sd| sd.retain(|(n, _, _)| n != "layer2.0.bn1.running_mean")) {
        Err(VisionError::MissingTensor { name, more: 0, .. }) => {
            assert_eq!(name, "layer2.0.bn1.running_mean")
        }
        other => panic!("{other:?}"),
    }
    match resnet18(|sd| sd.push(("layer5.0.conv1.weight".into(), vec![1], vec![0.0]))) {
        Err(VisionError::UnexpectedTensor { name, more: 0, .. }) => assert_eq!(name, "layer5.0.conv1.weight"),
        other => panic!("{other:?}"),
    }
    match resnet18(|sd| {
        let t = sd
            .iter_mut()
            .find(|(n, _, _)| n == "layer3.1.conv2.weight")
            .unwrap();
        t.1 = vec![256, 256, 1, 9];
    }) {
        Err(VisionError::WrongShape {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(name, "layer3.1.conv2.weight");
            assert_eq!((expected, found), (vec![256, 256, 3, 3], vec![256, 256, 1, 9]));
        }
        other => panic!("{other:?}"),
    }
    // ResNet-18 weights are not ResNet-50 weights
    let ckpt = Checkpoint::from_f32("<r18>", synthetic::state_dict(VisionArch::ResNet18, 1, 1000));
    match VisionModel::from_checkpoint(VisionArch::ResNet50, &ckpt, &device()) {
        Err(VisionError::MissingTensor { name, .. }) => assert_eq!(name, "layer1.0.conv3.weight"),
        other => panic!("{other:?}"),
    }
    // a 10-class head is fine: the class count comes from the checkpoint
    let model = resnet18(|sd| {
        for (n, s, v) in sd.iter_mut() {
            if n.starts_with("fc.") {
                s[0] = 10;
                v.truncate(s.iter().product());
            }
        }
    })
    .unwrap();
    assert_eq!(model.num_classes(), 10);
    // and an error message says what and where
    let err = resnet18(|sd| sd.retain(|(n, _, _)| !n.starts_with("layer4"))).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("layer4.0.conv1.weight") && msg.contains("resnet18") && msg.contains("more"),
        "{msg}"
    );
}

#[test]
fn integer_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut sd = synthetic::state_dict(VisionArch::ResNet18, 1, 1000);
    sd.retain(|(n, _, _)| n != "conv1.weight");
    synthetic::write_safetensors(&sd, &[""], &path).unwrap();
    // append conv1.weight as int32 by rewriting the file with safetensors directly
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let conv = vec![0u8; 64 * 3 * 7 * 7 * 4];
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    views.push((
        "conv1.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![64, 3, 7, 7], &conv).unwrap(),
    ));
    let out = dir.path().join("int.safetensors");
    safetensors::serialize_to_file(views, None, &out).unwrap();
    match VisionModel::load(VisionArch::ResNet18, &WeightsSource::File(out), &device()) {
        Err(VisionError::WrongDtype { name, dtype, .. }) => {
            assert_eq!(name, "conv1.weight");
            assert_eq!(dtype, "int32");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_references_are_reported() {
    assert!(matches!(
        WeightsSource::parse("not a/valid id"),
        Err(VisionError::Hub(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    match VisionModel::load(VisionArch::ResNet50, &WeightsSource::from(dir.path()), &device()) {
        Err(VisionError::Hub(model_hub::HubError::MissingLocal { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        "resnet-51".parse::<VisionArch>(),
        Err(VisionError::UnknownArch(_))
    ));
}
