//! The training step against PyTorch: on the random-weight BERT classifier of
//! `fixtures/train_step` (transformers' initialization), the logits, the loss, every
//! parameter's gradient and every parameter after 3 AdamW steps equal what transformers and
//! torch.optim.AdamW computed on the same batch (`fixtures/make_fixtures.py`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use finetune::{classifier_logits, cross_entropy, named_params, step, AdamW, ClassifierBatch};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/train_step")
}

fn expected() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    finetune::tensors::read_f32(&fixture().join("expected.safetensors"))
        .unwrap()
        .0
}

fn batch(device: &Device) -> ClassifierBatch {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("batch.json")).unwrap()).unwrap();
    let rows = |key: &str| -> Tensor<2, Int> {
        let rows: Vec<Vec<i64>> = serde_json::from_value(json[key].clone()).unwrap();
        let (b, l) = (rows.len(), rows[0].len());
        Tensor::from_data(TensorData::new(rows.concat(), [b, l]), device)
    };
    let labels: Vec<i64> = serde_json::from_value(json["labels"].clone()).unwrap();
    let b = labels.len();
    ClassifierBatch {
        input_ids: rows("input_ids"),
        attention_mask: rows("attention_mask"),
        token_type_ids: rows("token_type_ids"),
        labels: Tensor::from_data(TensorData::new(labels, [b]), device),
    }
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, x| m.max(x.abs() as f64))
}

/// Largest |a − b| relative to the reference tensor's scale |b|∞, or to `floor` where the
/// tensor is smaller: entries that are 0 in one framework and 1e-12 in the other do not count
/// as infinitely wrong.
fn relative_error_above(a: &[f32], b: &[f32], floor: f64) -> f64 {
    let scale = max_abs(b).max(floor).max(1e-30);
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs() / scale)
        .fold(0.0, f64::max)
}

fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    relative_error_above(a, b, 0.0)
}

/// ‖a − b‖₂ / ‖b‖₂.
fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm.max(1e-60)).sqrt()
}

#[test]
fn loss_gradients_and_adamw_steps_equal_pytorch() {
    let device = Device::flex().autodiff();
    let (spec, net) = bert::load_network(&fixture(), &device).unwrap();
    let expected = expected();
    let batch = batch(&device);

    let logits = classifier_logits(&net, &spec, &batch, false).expect("the fixture has a head");
    let ours = logits.clone().inner().try_into_vec_as::<f32>().unwrap();
    let err = relative_error(&ours, &expected["logits"].1);
    assert!(err < 1e-5, "logits: relative error {err:.2e}");
    let loss = cross_entropy(logits, batch.labels.clone());
    let value = loss.clone().inner().into_scalar::<f32>();
    let reference = expected["loss"].1[0];
    assert!(
        ((value - reference) / reference).abs() < 1e-5,
        "loss {value} vs {reference}"
    );

    let grads = loss.backward();
    let params = named_params(&net, Some(&grads));
    let pytorch_params = expected.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        params.len(),
        pytorch_params,
        "every parameter has a PyTorch counterpart"
    );
    // The key biases' gradient is exactly 0 (a per-query constant does not change a softmax):
    // both frameworks give rounding noise there, so each gradient is compared on the scale of
    // the largest one where its own is smaller than 1e-4 of it.
    let largest = expected
        .iter()
        .filter(|(k, _)| k.starts_with("grad."))
        .map(|(_, (_, v))| max_abs(v))
        .fold(0.0, f64::max);
    let mut worst = (0.0, String::new());
    for p in &params {
        let (shape, reference) = expected
            .get(&format!("grad.{}", p.name))
            .unwrap_or_else(|| panic!("no PyTorch gradient for {}", p.name));
        assert_eq!(&p.shape, shape, "{}", p.name);
        let grad = p
            .grad
            .as_ref()
            .unwrap_or_else(|| panic!("no gradient for {}", p.name));
        let err = relative_error_above(grad, reference, 1e-4 * largest);
        if err > worst.0 {
            worst = (err, p.name.clone());
        }
    }
    eprintln!("largest gradient error: {} {:.2e}", worst.1, worst.0);
    assert!(
        worst.0 < 1e-5,
        "gradient of {}: relative error {:.2e}",
        worst.1,
        worst.0
    );

    let mut optim = AdamW::new(0.9, 0.999, 1e-8, 0.01);
    let mut net = net;
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(
            classifier_logits(&net, &spec, &batch, false).unwrap(),
            batch.labels.clone(),
        );
        losses.push(loss.clone().inner().into_scalar::<f32>());
        net = step(&mut optim, 1e-3, net, loss);
    }
    let err = relative_error(&losses, &expected["step_losses"].1);
    assert!(
        err < 1e-5,
        "losses before each step {losses:?}: relative error {err:.2e}"
    );
    // Adam divides a gradient by its own root mean square, so a gradient that is rounding
    // noise (the key biases': exactly 0, above) becomes a full-size step of random sign in
    // either framework: those parameters are left out here; their gradients were checked to be
    // noise on both sides.
    let noise = |name: &str| name.ends_with("attention.self_attn.key.bias");
    for p in params.iter().filter(|p| noise(&p.name)) {
        let reference = &expected[&format!("grad.{}", p.name)].1;
        let ours = p.grad.as_deref().unwrap();
        assert!(
            max_abs(reference) < 1e-6 * largest && max_abs(ours) < 1e-6 * largest,
            "{}: not a zero gradient",
            p.name
        );
    }
    let mut worst = (0.0, String::new());
    let mut worst_l2 = (0.0, String::new());
    for p in named_params(&net, None).into_iter().filter(|p| !noise(&p.name)) {
        let (_, reference) = &expected[&format!("step3.{}", p.name)];
        let err = relative_error(&p.values, reference);
        if err > worst.0 {
            worst = (err, p.name.clone());
        }
        let err = relative_l2(&p.values, reference);
        if err > worst_l2.0 {
            worst_l2 = (err, p.name.clone());
        }
    }
    eprintln!(
        "largest L2 error after 3 steps: {} {:.2e}",
        worst_l2.1, worst_l2.0
    );
    eprintln!("largest error after 3 steps: {} {:.2e}", worst.1, worst.0);
    // Per tensor, ‖ours − PyTorch‖₂ / ‖PyTorch‖₂ (measured 3.7e-6). Element by element the
    // bound is looser: Adam's m / (√v + ε) turns the rounding of gradients near ε (here down to
    // 3e-10, ε = 1e-8) into visibly different steps (measured 6.2e-5 of the tensor's largest
    // weight), in either framework.
    assert!(
        worst_l2.0 < 1e-5,
        "after 3 AdamW steps, {}: relative L2 error {:.2e}",
        worst_l2.1,
        worst_l2.0
    );
    assert!(
        worst.0 < 1e-4,
        "after 3 AdamW steps, {}: relative error {:.2e}",
        worst.1,
        worst.0
    );
}

#[test]
fn training_dropout_is_seeded_and_off_in_evaluation() {
    let device = Device::flex().autodiff();
    let (mut spec, net) = bert::load_network(&fixture(), &device).unwrap();
    let batch = batch(&device);
    let eval = |spec: &bert::ModelSpec| {
        let logits = classifier_logits(&net, spec, &batch, false).unwrap();
        logits.inner().try_into_vec_as::<f32>().unwrap()
    };
    let train = |spec: &bert::ModelSpec, seed: u64| {
        device.seed(seed);
        let logits = classifier_logits(&net, spec, &batch, true).unwrap();
        logits.inner().try_into_vec_as::<f32>().unwrap()
    };
    // The fixture's config sets every dropout to 0: training is then evaluation.
    assert_eq!(spec.dropout.hidden, 0.0);
    assert_eq!(train(&spec, 1), eval(&spec));
    spec.dropout = bert::Dropout {
        hidden: 0.1,
        attention: 0.1,
        classifier: 0.1,
    };
    let (a, b, c) = (train(&spec, 7), train(&spec, 7), train(&spec, 8));
    assert_eq!(a, b, "the same seed, the same masks");
    assert_ne!(a, c, "another seed, other masks");
    assert_ne!(a, eval(&spec), "dropout changes the training logits");
    assert_eq!(eval(&spec), eval(&spec));
}

#[test]
fn clipped_scheduled_steps_equal_pytorch() {
    // 4 steps of the fine-tuning loop: global-norm clipping to 0.05 (it acts: the norms are
    // larger) and transformers' linear schedule with 1 warmup step, as the fixture ran them.
    let device = Device::flex().autodiff();
    let (spec, mut net) = bert::load_network(&fixture(), &device).unwrap();
    let expected = expected();
    let batch = batch(&device);
    let mut optim = AdamW::new(0.9, 0.999, 1e-8, 0.01);
    let mut norms = Vec::new();
    for step in 0..4 {
        let loss = cross_entropy(
            classifier_logits(&net, &spec, &batch, true).unwrap(),
            batch.labels.clone(),
        );
        let mut grads = burn::optim::GradientsParams::from_grads(loss.backward(), &net);
        norms.push(finetune::clip_grad_norm(&net, &mut grads, 0.05) as f32);
        net = optim.step(1e-3 * finetune::linear_schedule(step, 1, 4), net, &mut grads);
    }
    let reference = &expected["sched_norms"].1;
    assert!(
        reference.iter().all(|&n| n > 0.05),
        "clipping acts: {reference:?}"
    );
    let err = relative_error(&norms, reference);
    assert!(err < 1e-5, "gradient norms {norms:?} vs {reference:?}");
    let mut worst = (0.0, String::new());
    for p in named_params(&net, None) {
        if p.name.ends_with("attention.self_attn.key.bias") {
            continue; // noise-driven under Adam, see above
        }
        let err = relative_l2(&p.values, &expected[&format!("sched4.{}", p.name)].1);
        if err > worst.0 {
            worst = (err, p.name.clone());
        }
    }
    eprintln!(
        "largest L2 error after 4 clipped, scheduled steps: {} {:.2e}",
        worst.1, worst.0
    );
    assert!(worst.0 < 1e-5, "{}: relative L2 error {:.2e}", worst.1, worst.0);
}

#[test]
fn trainer_adamw_decays_weights_but_not_biases_or_layer_norms() {
    // A step whose gradients are all 0 moves nothing but the decay: θ(1 − lr·wd) for weight
    // matrices and embeddings, θ unchanged for biases and LayerNorm parameters.
    let device = Device::flex().autodiff();
    let (spec, net) = bert::load_network(&fixture(), &device).unwrap();
    let batch = batch(&device);
    let before = named_params(&net, None);
    let mut optim = AdamW::trainer(1.0);
    let loss = cross_entropy(
        classifier_logits(&net, &spec, &batch, false).unwrap(),
        batch.labels.clone(),
    ) * 0.0;
    let net = step(&mut optim, 0.1, net, loss);
    let after = named_params(&net, None);
    assert_eq!(before.len(), after.len());
    let mut decayed = 0;
    for (b, a) in before.iter().zip(&after) {
        let exempt = b.name.ends_with(".bias") || b.name.contains("LayerNorm.");
        let factor = if exempt { 1.0 } else { 0.9 };
        decayed += usize::from(!exempt);
        let want: Vec<f32> = b.values.iter().map(|v| v * factor).collect();
        assert!(
            relative_error(&a.values, &want) < 1e-6,
            "{} (exempt: {exempt})",
            b.name
        );
    }
    assert!(decayed > 10, "{decayed} decayed tensors");
}
