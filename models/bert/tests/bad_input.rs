//! Acceptance 3: bad input is a typed error with a clear message, never a panic; empty and
//! over-long texts behave as documented.

mod common;

use bert::{read_lines, BertError, EmptyText, FeatureMode, LoadOptions, TextEncoder};
use common::*;
use model_hub::{HubError, ModelRef};

fn load(dir: &std::path::Path) -> Result<TextEncoder, BertError> {
    TextEncoder::load(&ModelRef::Local(dir.to_path_buf()), &burn::tensor::Device::flex())
}

fn load_with(dir: &std::path::Path, options: LoadOptions) -> Result<TextEncoder, BertError> {
    TextEncoder::load_with(
        &ModelRef::Local(dir.to_path_buf()),
        &burn::tensor::Device::flex(),
        options,
    )
}

#[test]
fn empty_and_whitespace_texts_are_encoded_or_rejected_as_chosen() {
    let dir = random_model("random_bert");
    let encoder = load(dir).unwrap();
    let texts = ["a fine film", "", "  \t ", "\u{3000}"];
    let enc = encoder.tokenize(&texts).unwrap();
    let (cls, sep) = (enc[0].ids[0], *enc[0].ids.last().unwrap());
    for e in &enc[1..] {
        assert_eq!(e.ids, vec![cls, sep], "empty text = [CLS] [SEP], as transformers");
    }
    let f = encoder.features(&texts, FeatureMode::Cls, 2).unwrap();
    assert_eq!(f.empty, vec![1, 2, 3]);
    assert!(f.data.iter().all(|v| v.is_finite()));
    assert_eq!(encoder.features(&[], FeatureMode::Cls, 2).unwrap().n, 0);

    let strict = load_with(
        dir,
        LoadOptions {
            empty: EmptyText::Reject,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let err = strict.features(&texts, FeatureMode::Cls, 2).unwrap_err();
    assert!(matches!(err, BertError::EmptyText { index: 1 }), "{err}");
    assert_eq!(err.to_string(), "text #1 is empty or whitespace only");
}

#[test]
fn over_long_texts_are_truncated_and_reported() {
    let dir = random_model("random_bert");
    let encoder = load_with(
        dir,
        LoadOptions {
            max_length: Some(8),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(encoder.max_length(), 8);
    let long = "the film is a gorgeous and moving portrait of a family in crisis";
    let f = encoder
        .features(&["short", long, long], FeatureMode::Mean, 2)
        .unwrap();
    assert_eq!(f.truncated, vec![1, 2]);
    let enc = encoder.tokenize(&[long]).unwrap();
    assert_eq!(enc[0].ids.len(), 8, "special tokens included");
    assert!(enc[0].truncated);

    for bad in [600, 1] {
        let err = load_with(
            dir,
            LoadOptions {
                max_length: Some(bad),
                ..LoadOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, BertError::InvalidArgument(_)), "{err}");
    }
    let err = load(dir)
        .unwrap()
        .features(&["x"], FeatureMode::Cls, 0)
        .unwrap_err();
    assert!(matches!(err, BertError::InvalidArgument(_)), "{err}");
}

#[test]
fn read_lines_names_the_line_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(&good, b"first\r\nsecond\n\nfourth, caf\xc3\xa9\n").unwrap();
    assert_eq!(
        read_lines(&good).unwrap(),
        ["first", "second", "", "fourth, café"]
    );

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"ok\r\nfine\nbroken \xff\xfe here\nafter\n").unwrap();
    let err = read_lines(&bad).unwrap_err();
    assert!(matches!(err, BertError::InvalidUtf8 { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");

    let err = read_lines(dir.path().join("absent.txt")).unwrap_err();
    assert!(matches!(err, BertError::Io { .. }), "{err}");
}

#[test]
fn a_tokenizer_larger_than_the_embedding_matrix_is_refused() {
    // The RoBERTa fixture has 1,024 embedding rows; the BERT fixture's tokenizer has 2,000 ids.
    let v = variant("random_roberta");
    std::fs::remove_file(v.path().join("tokenizer.json")).unwrap();
    std::fs::copy(
        random_model("random_bert").join("tokenizer.json"),
        v.path().join("tokenizer.json"),
    )
    .unwrap();
    let err = load(v.path()).unwrap_err();
    assert!(
        matches!(
            err,
            BertError::VocabMismatch {
                max_id: 1999,
                rows: 1024,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("do not belong together"), "{err}");
}

#[test]
fn config_problems_name_the_field() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "missing field",
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("hidden_size"))),
            "hidden_size",
        ),
        (
            "missing eps",
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("layer_norm_eps"))),
            "layer_norm_eps",
        ),
        (
            "wrong type",
            Box::new(|c| c["num_hidden_layers"] = "two".into()),
            "num_hidden_layers",
        ),
        (
            "heads",
            Box::new(|c| c["num_attention_heads"] = 7.into()),
            "multiple of num_attention_heads",
        ),
        (
            "model type",
            Box::new(|c| c["model_type"] = "gpt2".into()),
            "model_type `gpt2`",
        ),
        (
            "activation",
            Box::new(|c| c["hidden_act"] = "swish".into()),
            "hidden_act `swish`",
        ),
        (
            "positions",
            Box::new(|c| c["position_embedding_type"] = "relative_key".into()),
            "relative_key",
        ),
    ];
    for (what, edit, needle) in cases {
        let v = variant("random_bert");
        edit_json(&v.path().join("config.json"), edit);
        let err = load(v.path()).unwrap_err();
        assert!(
            matches!(err, BertError::Config { .. } | BertError::Unsupported { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
    let v = variant("random_bert");
    std::fs::remove_file(v.path().join("config.json")).unwrap();
    std::fs::write(v.path().join("config.json"), "{ not json").unwrap();
    assert!(matches!(load(v.path()).unwrap_err(), BertError::Config { .. }));
}

#[test]
fn weights_that_do_not_fit_the_config_are_errors() {
    let v = variant("random_bert");
    edit_json(&v.path().join("config.json"), |c| {
        c["num_hidden_layers"] = 3.into()
    });
    let err = load(v.path()).unwrap_err();
    assert!(matches!(err, BertError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("bert.encoder.layer.2."), "{err}");

    let v = variant("random_bert");
    edit_json(&v.path().join("config.json"), |c| {
        c["intermediate_size"] = 1024.into()
    });
    let err = load(v.path()).unwrap_err();
    assert!(matches!(err, BertError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("intermediate.dense"), "{err}");

    let v = variant("random_bert");
    std::fs::remove_file(v.path().join("model.safetensors")).unwrap();
    std::fs::write(v.path().join("model.safetensors"), b"this is not a checkpoint").unwrap();
    let err = load(v.path()).unwrap_err();
    assert!(matches!(err, BertError::Weights { .. }), "{err}");

    std::fs::remove_file(v.path().join("model.safetensors")).unwrap();
    write_safetensors(
        &v.path().join("model.safetensors"),
        &[("something.else".into(), vec![2, 2], vec![0.0; 4])],
    );
    let err = load(v.path()).unwrap_err();
    assert!(err.to_string().contains("not a BERT/RoBERTa checkpoint"), "{err}");

    std::fs::remove_file(v.path().join("model.safetensors")).unwrap();
    std::fs::write(v.path().join("pytorch_model.bin"), b"PK\x03\x04 truncated zip").unwrap();
    let err = load(v.path()).unwrap_err();
    assert!(matches!(err, BertError::Weights { .. }), "{err}");

    std::fs::remove_file(v.path().join("pytorch_model.bin")).unwrap();
    let err = load(v.path()).unwrap_err();
    assert!(
        matches!(err, BertError::Hub(HubError::MissingLocal { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("model.safetensors or pytorch_model.bin"),
        "{err}"
    );

    let v = variant("random_bert");
    std::fs::remove_file(v.path().join("tokenizer.json")).unwrap();
    assert!(matches!(
        load(v.path()).unwrap_err(),
        BertError::Hub(HubError::MissingLocal { .. })
    ));
    std::fs::write(v.path().join("tokenizer.json"), "{}").unwrap();
    assert!(matches!(load(v.path()).unwrap_err(), BertError::Tokenizer { .. }));
}

#[test]
fn a_bare_encoder_without_head_has_no_logits() {
    // The BERT fixture's weights with the `bert.` prefix and the classifier removed: MiniLM's layout.
    let v = variant("random_bert");
    let tensors: Vec<_> = generated_tensors(&fixtures().join("random_bert/tensors.json"))
        .into_iter()
        .filter(|(n, _, _)| !n.starts_with("classifier."))
        .map(|(n, s, t)| (n.trim_start_matches("bert.").to_string(), s, t))
        .collect();
    std::fs::remove_file(v.path().join("model.safetensors")).unwrap();
    write_safetensors(&v.path().join("model.safetensors"), &tensors);
    let bare = load(v.path()).unwrap();
    let full = load(random_model("random_bert")).unwrap();
    assert!(bare.head().is_none());
    assert_eq!(bare.default_mode(), FeatureMode::Cls);
    let err = bare.logits(&["x"], 1).unwrap_err();
    assert!(matches!(err, BertError::NoHead { .. }), "{err}");
    let texts = ["same weights", "same features"];
    for mode in [FeatureMode::Cls, FeatureMode::Pooler] {
        let a = bare.features(&texts, mode, 2).unwrap();
        let b = full.features(&texts, mode, 2).unwrap();
        assert_eq!(a.data, b.data, "{mode}");
    }
    assert_ne!(bare.weights_fingerprint(), full.weights_fingerprint());
}

#[test]
fn feature_modes_parse_and_print() {
    for mode in FeatureMode::ALL {
        assert_eq!(mode.to_string().parse::<FeatureMode>().unwrap(), mode);
    }
    assert_eq!(
        "roberta-dense".parse::<FeatureMode>().unwrap(),
        FeatureMode::RobertaDense
    );
    let err = "max".parse::<FeatureMode>().unwrap_err();
    assert!(matches!(err, BertError::UnknownMode(_)), "{err}");
    assert!(err
        .to_string()
        .contains("expected cls, pooler, mean, mean-l2 or roberta-dense"));
}
