//! Loading from a hub id (`owner/name`, as `timm/resnet50.a1_in1k`) resolves offline through the
//! hub cache: synthetic ResNet-18 weights and a timm `config.json` laid into a temporary cache the
//! way `cargo xtask fetch` lays real files. Its own test binary, since it sets HF_HUB_CACHE and
//! HF_HUB_OFFLINE for the whole process.

mod common;

use common::*;
use vision::{synthetic, Interpolation, VisionArch, VisionModel, WeightsSource};

#[test]
fn hub_id_resolves_from_the_cache_with_its_timm_config() {
    let cache = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let weights = files.path().join("model.safetensors");
    synthetic::write_safetensors(
        &synthetic::state_dict(VisionArch::ResNet18, 7, 1000),
        &[""],
        &weights,
    )
    .unwrap();
    let config = files.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"architecture": "resnet18", "num_classes": 1000, "pretrained_cfg": {"input_size": [3, 224, 224],
            "interpolation": "bicubic", "crop_pct": 0.95, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225]}}"#,
    )
    .unwrap();
    model_hub::install_into_cache(
        cache.path(),
        "timm/resnet18.synthetic",
        &"7".repeat(40),
        &[("model.safetensors", &weights), ("config.json", &config)],
    )
    .unwrap();
    // SAFETY: set before any other thread of this test binary reads the environment.
    unsafe {
        std::env::set_var("HF_HUB_CACHE", cache.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let source = WeightsSource::parse("timm/resnet18.synthetic").unwrap();
    assert!(matches!(
        source,
        WeightsSource::Model(model_hub::ModelRef::Hub { .. })
    ));
    let model = VisionModel::load(VisionArch::ResNet18, &source, &device()).unwrap();
    assert_eq!(model.source(), "timm/resnet18.synthetic");
    let pre = model.preprocessing();
    assert_eq!(
        (pre.resize, pre.crop, pre.interpolation),
        (235, 224, Interpolation::Bicubic)
    );
    let reference = VisionModel::random(VisionArch::ResNet18, 7, &device()).unwrap();
    assert_eq!(model.head(), reference.head());

    // a repository that is not cached fails with the hub's typed error, offline
    let missing = WeightsSource::parse("timm/resnet50.a1_in1k").unwrap();
    match VisionModel::load(VisionArch::ResNet50, &missing, &device()) {
        Err(vision::VisionError::Hub(model_hub::HubError::NotCached { .. })) => {}
        other => panic!("{other:?}"),
    }
}
