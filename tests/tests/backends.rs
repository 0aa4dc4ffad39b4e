//! Acceptance 3: the solver gives the same path on every compiled-in backend (flex is the
//! reference); with `--features wgpu` this runs on wgpu too (software Vulkan in CI).

use integration_tests::synthetic;
use solver::{BackendKind, Family, PathConfig, RunOptions};

fn path_on(backend: BackendKind, family: Family, group: bool) -> solver::PathResult {
    let (problem, st) = synthetic(family, 1200, 24, 3, 21);
    let config = PathConfig {
        family,
        group,
        n_lambdas: 6,
        eps: 0.02,
        tol: 1e-8,
        lookbehind: 0,
        max_epochs: 600,
        seed: 9,
        ..PathConfig::default()
    };
    let opts = RunOptions {
        keep_layers: true,
        ..RunOptions::default()
    };
    let device = backend.device().expect("backend available");
    solver::run_path(problem.clone(), &st, &config, &device, &opts).expect("path runs")
}

#[test]
fn every_backend_agrees_with_flex() {
    let others: Vec<BackendKind> = BackendKind::available()
        .into_iter()
        .filter(|b| *b != BackendKind::Flex)
        .collect();
    for (family, group) in [
        (Family::Multinomial, false),
        (Family::Gaussian, false),
        (Family::Multinomial, true),
    ] {
        let reference = path_on(BackendKind::Flex, family, group);
        for &backend in &others {
            let other = path_on(backend, family, group);
            assert!((reference.lambda_max - other.lambda_max).abs() <= 1e-5 * reference.lambda_max);
            for (a, b) in reference.records.iter().zip(&other.records) {
                let rel = (a.objective - b.objective).abs() / a.objective.abs();
                assert!(
                    rel <= 1e-4,
                    "{family:?} λ#{}: objective {} on flex, {} on {}",
                    a.index,
                    a.objective,
                    b.objective,
                    backend.name()
                );
            }
            let mut worst = 0f32;
            for (a, b) in reference.layers.iter().zip(&other.layers) {
                for (x, y) in a.weight.iter().chain(&a.bias).zip(b.weight.iter().chain(&b.bias)) {
                    worst = worst.max((x - y).abs() / x.abs().max(1.0));
                }
            }
            eprintln!(
                "{family:?} group={group}: {} vs flex, max weight difference {worst:.2e}",
                backend.name()
            );
            assert!(
                worst <= 1e-4,
                "{family:?}: {} weights differ from flex by {worst:.2e}",
                backend.name()
            );
        }
    }
}

#[test]
fn one_seed_gives_one_path_on_cpu() {
    let a = path_on(BackendKind::Flex, Family::Multinomial, false);
    let b = path_on(BackendKind::Flex, Family::Multinomial, false);
    assert_eq!(a.layers, b.layers);
    let strip = |r: &solver::LambdaRecord| solver::LambdaRecord {
        seconds: 0.0,
        ..r.clone()
    };
    assert_eq!(
        a.records.iter().map(strip).collect::<Vec<_>>(),
        b.records.iter().map(strip).collect::<Vec<_>>()
    );
}
