//! The fine-tuning loop on the random-weight BERT of `fixtures/train_step` and a task its
//! tokens decide (each class plants one marker token): it learns it, a second run with the same
//! seed is the same run, and early stopping keeps the best epoch.

use std::path::Path;

use burn::tensor::Device;
use finetune::train::{accuracy, train, Example, Progress, TrainConfig};
use rand::{Rng, SeedableRng};

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
                type_ids: vec![0; ids.len()],
                ids,
                label,
            }
        })
        .collect()
}

#[test]
fn the_loop_learns_a_token_task_reproducibly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/train_step");
    let device = Device::flex().autodiff();
    let (mut spec, _) = bert::load_network(&dir, &device).unwrap();
    spec.dropout = bert::Dropout {
        hidden: 0.1,
        attention: 0.1,
        classifier: 0.1,
    };
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
        let (net, records) = train(net, &spec, &train_set, &val_set, &config, |p| {
            if let Progress::Step { .. } = p {
                steps += 1;
            }
        });
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
