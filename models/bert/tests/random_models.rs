//! Acceptance 2 (and 4 with `BERT_TEST_BACKEND`): random-weight BertForSequenceClassification
//! (safetensors, `bert.` keys) and RobertaForSequenceClassification (zip-pickle
//! pytorch_model.bin, `roberta.` keys) with base widths: token ids equal the Python `tokenizers`,
//! logits and every feature mode equal transformers'.

mod common;

use bert::{BertError, FeatureMode, LoadOptions, TextEncoder};
use common::*;
use model_hub::ModelRef;

struct Case {
    fixture: &'static str,
    modes: &'static [(FeatureMode, &'static str)],
}

fn check(case: &Case) -> TextEncoder {
    let (device, tol, backend) = backend();
    let dir = random_model(case.fixture);
    let options = LoadOptions {
        warn_truncation: false,
        ..LoadOptions::default()
    };
    let encoder = TextEncoder::load_with(&ModelRef::Local(dir.to_path_buf()), &device, options).unwrap();
    let fixture = fixtures().join(case.fixture);
    let texts = texts(&fixture.join("texts.json"));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let expected = read_safetensors(&fixture.join("expected.safetensors"));

    let got_ids: Vec<Vec<u32>> = encoder
        .tokenize(&refs)
        .unwrap()
        .into_iter()
        .map(|e| e.ids)
        .collect();
    assert_eq!(
        got_ids,
        ids(&fixture.join("ids.json")),
        "token ids differ from the Python tokenizers"
    );
    assert_eq!(encoder.max_length(), 512);

    // Small batches: several batches with different padding.
    let logits = encoder.logits(&refs, 5).unwrap();
    let (shape, want) = &expected["logits"];
    assert_eq!([logits.n, logits.dim], [shape[0], shape[1]]);
    let diff = max_abs_diff(&logits.data, want);
    eprintln!("{} on {backend}: logits max-abs diff {diff:.2e}", case.fixture);
    assert!(diff <= tol, "{}: logits differ by {diff}", case.fixture);
    assert_eq!(
        logits.truncated,
        vec![texts.len() - 4],
        "the one text over 512 tokens"
    );
    assert_eq!(logits.empty, vec![texts.len() - 2, texts.len() - 1]);

    let (_, _, head_mode) = encoder.head_with_mode().unwrap();
    let mut head_features = None;
    for &(mode, key) in case.modes {
        let f = encoder.features(&refs, mode, 7).unwrap();
        assert_eq!(f.dim, encoder.feature_dim(mode));
        let diff = max_abs_diff(&f.data, &expected[key].1);
        eprintln!("{} on {backend}: {mode} max-abs diff {diff:.2e}", case.fixture);
        assert!(diff <= tol, "{}: {mode} differs by {diff}", case.fixture);
        if mode == head_mode {
            head_features = Some(f);
        }
    }

    // The head reproduces the logits from the features it reads.
    let (w, b, mode) = encoder.head_with_mode().unwrap();
    let k = b.len();
    let d = encoder.feature_dim(mode);
    let feats = head_features.expect("the head's mode is among the modes checked");
    for i in 0..feats.n {
        for c in 0..k {
            let z: f32 = b[c] + (0..d).map(|j| w[c * d + j] * feats.row(i)[j]).sum::<f32>();
            assert!((z - logits.row(i)[c]).abs() <= 1e-3, "head·features != logits");
        }
    }
    encoder
}

#[test]
fn bert_for_sequence_classification_safetensors_matches_transformers() {
    let encoder = check(&Case {
        fixture: "random_bert",
        modes: &[
            (FeatureMode::Cls, "cls"),
            (FeatureMode::Pooler, "pooler"),
            (FeatureMode::Mean, "mean"),
            (FeatureMode::MeanL2, "mean_l2"),
        ],
    });
    assert_eq!(encoder.default_mode(), FeatureMode::Pooler);
    assert_eq!(encoder.labels().unwrap(), ["negative", "neutral", "positive"]);
    assert_eq!(encoder.num_classes(), Some(3));
    assert_eq!(encoder.head_with_mode().unwrap().2, FeatureMode::Pooler);
    assert!(matches!(
        encoder.features(&["x"], FeatureMode::RobertaDense, 1),
        Err(BertError::ModeUnavailable { .. })
    ));
}

#[test]
fn roberta_for_sequence_classification_pytorch_bin_matches_transformers() {
    let encoder = check(&Case {
        fixture: "random_roberta",
        modes: &[
            (FeatureMode::Cls, "cls"),
            (FeatureMode::RobertaDense, "roberta_dense"),
            (FeatureMode::Mean, "mean"),
            (FeatureMode::MeanL2, "mean_l2"),
        ],
    });
    assert!(encoder.weights_path().ends_with("pytorch_model.bin"));
    assert_eq!(encoder.default_mode(), FeatureMode::RobertaDense);
    assert_eq!(encoder.labels().unwrap(), ["NEGATIVE", "POSITIVE"]);
    // RobertaForSequenceClassification has no pooler.
    let err = encoder.features(&["x"], FeatureMode::Pooler, 1).unwrap_err();
    assert!(matches!(err, BertError::ModeUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("pooler"), "{err}");
}
