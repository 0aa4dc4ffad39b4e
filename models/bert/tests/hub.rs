//! Loading by hub id from the Hugging Face cache, offline (as `cargo xtask fetch` installs MiniLM),
//! including the sentence-transformers files that sit in the same snapshot. Its own test binary:
//! it sets HF_HUB_CACHE and HF_HUB_OFFLINE for the whole process.

mod common;

use bert::{BertError, FeatureMode, TextEncoder};
use common::*;
use model_hub::{install_into_cache, HubError, ModelRef};

#[test]
fn hub_ids_resolve_offline_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let minilm = minilm_dir();
    let files = [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ];
    let pairs: Vec<(&str, std::path::PathBuf)> = files.iter().map(|f| (*f, minilm.join(f))).collect();
    let borrowed: Vec<(&str, &std::path::Path)> = pairs.iter().map(|(f, p)| (*f, p.as_path())).collect();
    install_into_cache(
        cache.path(),
        "sentence-transformers/all-MiniLM-L6-v2",
        &"1".repeat(40),
        &borrowed,
    )
    .unwrap();
    let roberta = random_model("random_roberta");
    let files = ["config.json", "tokenizer.json", "pytorch_model.bin"];
    let pairs: Vec<(&str, std::path::PathBuf)> = files.iter().map(|f| (*f, roberta.join(f))).collect();
    let borrowed: Vec<(&str, &std::path::Path)> = pairs.iter().map(|(f, p)| (*f, p.as_path())).collect();
    install_into_cache(cache.path(), "someone/tiny-roberta", &"2".repeat(40), &borrowed).unwrap();
    // SAFETY: set before any other thread of this test binary reads the environment.
    unsafe {
        std::env::set_var("HF_HUB_CACHE", cache.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let device = burn::tensor::Device::flex();

    let by_id = TextEncoder::load(
        &ModelRef::parse("sentence-transformers/all-MiniLM-L6-v2").unwrap(),
        &device,
    )
    .unwrap();
    let local = TextEncoder::load(&ModelRef::Local(minilm), &device).unwrap();
    assert_eq!(by_id.name(), "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(by_id.max_length(), 256);
    assert_eq!(by_id.default_mode(), FeatureMode::MeanL2);
    assert_eq!(by_id.weights_fingerprint(), local.weights_fingerprint());
    let texts = ["an intelligent, moving film", "flat and tedious"];
    assert_eq!(
        by_id.features(&texts, FeatureMode::MeanL2, 2).unwrap().data,
        local.features(&texts, FeatureMode::MeanL2, 2).unwrap().data
    );

    let rob = TextEncoder::load(&ModelRef::parse("someone/tiny-roberta").unwrap(), &device).unwrap();
    assert!(rob.weights_path().ends_with("pytorch_model.bin"));
    assert_eq!(rob.num_classes(), Some(2));

    let err = TextEncoder::load(&ModelRef::parse("someone/absent-model").unwrap(), &device).unwrap_err();
    assert!(matches!(err, BertError::Hub(HubError::NotCached { .. })), "{err}");
    assert!(err.to_string().contains("cargo xtask fetch"), "{err}");
}
