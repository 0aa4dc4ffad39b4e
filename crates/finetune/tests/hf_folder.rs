//! The written model folder reads back through our loader as the same network, and a
//! checkpoint without a head gets transformers' initialization of one.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use finetune::hf::{add_classifier_head, save_hf_folder};
use finetune::{classifier_logits, named_params, ClassifierBatch};

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/train_step"))
}

fn batch(device: &Device) -> ClassifierBatch {
    let ids: Vec<i64> = vec![2, 15, 77, 3, 0, 2, 40, 41, 42, 3];
    let mask: Vec<i64> = vec![1, 1, 1, 1, 0, 1, 1, 1, 1, 1];
    let up = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [2, 5]), device);
    ClassifierBatch {
        input_ids: up(ids),
        attention_mask: up(mask),
        token_type_ids: up(vec![0; 10]),
        labels: Tensor::from_data(TensorData::new(vec![0i64, 1], [2]), device),
    }
}

#[test]
fn a_written_folder_loads_back_as_the_same_network() {
    let device = Device::flex();
    let (spec, net) = bert::load_network(fixture(), &device).unwrap();
    let out = std::env::temp_dir().join(format!("finetune-hf-{}", std::process::id()));
    let names: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
    save_hf_folder(&net, &spec, fixture(), &out, &names).unwrap();
    let (spec2, again) = bert::load_network(&out, &device).unwrap();
    assert_eq!(spec2.labels.as_deref(), Some(&names[..]));
    let (a, b) = (named_params(&net, None), named_params(&again, None));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.name, &x.shape, &x.values), (&y.name, &y.shape, &y.values));
    }
    let logits = |net: &bert::BertNet| {
        classifier_logits(net, &spec, &batch(&device), false)
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    assert_eq!(logits(&net), logits(&again));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["label2id"]["positive"], 2);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_headless_checkpoint_gets_a_head_initialized_as_transformers_does() {
    let device = Device::flex();
    let (spec, mut net) = bert::load_network(fixture(), &device).unwrap();
    net.classifier = None;
    net.pooler = None;
    assert!(classifier_logits(&net, &spec, &batch(&device), false).is_none());
    device.seed(3);
    add_classifier_head(&mut net, &spec, 5, &device);
    let logits = classifier_logits(&net, &spec, &batch(&device), false).unwrap();
    assert_eq!(logits.dims(), [2, 5]);
    let w = net
        .classifier
        .as_ref()
        .unwrap()
        .weight
        .val()
        .try_into_vec_as::<f32>()
        .unwrap();
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std - 0.02).abs() < 0.004, "N(0, 0.02) weights, found std {std}");
    let b = net.classifier.as_ref().unwrap().bias.as_ref().unwrap().val();
    assert_eq!(b.abs().sum().into_scalar::<f32>(), 0.0);
}
