//! The fine-tuning loop on the random-weight BERT of `fixtures/train_step` and a task its
//! tokens decide (each class plants one marker token): it learns it, a second run with the same
//! seed is the same run, and early stopping keeps the best epoch.

use std::path::Path;

use burn::tensor::Device;
use finetune::train::{accuracy, train, Example, Progress, TrainConfig};
use rand::{Rng, SeedableRng};

/// The device's random generator (dropout masks) is one per process: runs that compare their
/// masks take turns.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The fixture's folder, the autodiff device, and its spec with transformers' default dropout.
fn setup() -> (std::path::PathBuf, Device, bert::ModelSpec) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/train_step");
    let device = Device::flex().autodiff();
    let (mut spec, _) = bert::load_network(&dir, &device).unwrap();
    spec.dropout = bert::Dropout {
        hidden: 0.1,
        attention: 0.1,
        classifier: 0.1,
    };
    (dir, device, spec)
}

fn examples(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let label = (i % 3) as i64;
            let len = rng.random_range(4..9);
            let mut ids: Vec<u32> = (0..len).map(|_| rng.random_range(50..300)).collect();
            let at = rng.random_range(1..len);
            ids[at] = 10 + label as u32;
            ids[0] = 2;
            Example {
                tokens: bert::Encoded {
                    type_ids: vec![0; ids.len()],
                    ids,
                    truncated: false,
                },
                label,
            }
        })
        .collect()
}

#[test]
fn the_loop_learns_a_token_task_reproducibly() {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, device, spec) = setup();
    let (train_set, val_set) = (examples(240, 1), examples(90, 2));
    let config = TrainConfig {
        epochs: 4,
        batch_size: 16,
        lr: 2e-3,
        patience: 4,
        ..TrainConfig::default()
    };
    let run = || {
        let (_, net) = bert::load_network(&dir, &device).unwrap();
        let before = accuracy(&net, &spec, &val_set, 32);
        let mut steps = 0;
        let (net, records) = train(net, &spec, &train_set, &val_set, &config, None, |p| {
            if let Progress::Step { .. } = p {
                steps += 1;
            }
        })
        .unwrap();
        assert_eq!(steps, 4 * 15, "15 batches of 16 per epoch");
        (before, accuracy(&net, &spec, &val_set, 32), records)
    };
    let (before, after, records) = run();
    eprintln!("val accuracy {before:.3} -> {after:.3}; {records:?}");
    assert!(after > 0.9 && after > before + 0.3, "{before} -> {after}");
    assert!(records.last().unwrap().train_loss < records[0].train_loss);
    let best = records.iter().map(|r| r.val_accuracy).fold(0.0, f64::max);
    assert_eq!(after, best, "the best epoch's network is returned");
    let (_, again, records_again) = run();
    assert_eq!(after, again);
    let losses = |r: &[finetune::train::EpochRecord]| r.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&records), losses(&records_again), "same seed, same run");
}

#[test]
fn a_resumed_run_equals_the_uninterrupted_one() {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    // The checkpoint after epoch 2 of 4 (copied when epoch 3 reports, before it overwrites
    // the files), resumed: the same records and the same network as the run that went on.
    let (dir, device, spec) = setup();
    let (train_set, val_set) = (examples(96, 3), examples(30, 4));
    let config = TrainConfig {
        epochs: 4,
        batch_size: 16,
        lr: 2e-3,
        patience: 4,
        ..TrainConfig::default()
    };
    let scratch = std::env::temp_dir().join(format!("finetune-resume-{}", std::process::id()));
    let (full, halfway) = (scratch.join("full"), scratch.join("halfway"));
    let ck = |d: &Path, resume| finetune::train::Checkpoint {
        dir: d.to_path_buf(),
        resume,
    };
    let params = |net: &bert::BertNet| finetune::named_params(net, None);
    let (_, net) = bert::load_network(&dir, &device).unwrap();
    let (uninterrupted, records) = train(
        net,
        &spec,
        &train_set,
        &val_set,
        &config,
        Some(&ck(&full, false)),
        |p| {
            if let Progress::Epoch { epoch: 2, .. } = p {
                std::fs::create_dir_all(&halfway).unwrap();
                for f in std::fs::read_dir(&full).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, halfway.join(f.file_name().unwrap())).unwrap();
                }
            }
        },
    )
    .unwrap();
    assert_eq!(records.len(), 4);
    let (_, fresh) = bert::load_network(&dir, &device).unwrap();
    let mut epochs_run = Vec::new();
    let (resumed, records_resumed) = train(
        fresh,
        &spec,
        &train_set,
        &val_set,
        &config,
        Some(&ck(&halfway, true)),
        |p| {
            if let Progress::Epoch { epoch, .. } = p {
                epochs_run.push(epoch);
            }
        },
    )
    .unwrap();
    assert_eq!(epochs_run, vec![2, 3], "only the epochs after the checkpoint run");
    let strip = |r: &[finetune::train::EpochRecord]| {
        r.iter()
            .map(|e| (e.epoch, e.train_loss, e.val_accuracy))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&records), strip(&records_resumed));
    for (a, b) in params(&uninterrupted).iter().zip(&params(&resumed)) {
        assert_eq!((&a.name, &a.values), (&b.name, &b.values));
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}
