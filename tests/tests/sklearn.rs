//! Acceptance 2: the same objective as scikit-learn's SAGA at λ_max/2 and λ_max/10 on a
//! committed fixture (`tests/fixtures/make_sklearn_fixture.py` made it).

use std::path::PathBuf;

use integration_tests::{layer64, test_device, Dense64};
use solver::{Family, FeatureSource, PathConfig, Problem, Standardizer};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sklearn_enet")
}

#[test]
fn objective_matches_scikit_learn_saga() {
    let dir = fixture();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let source = FeatureSource::NpyPair {
        features: dir.join("X_train.npy"),
        labels: dir.join("y_train.npy"),
    };
    let mut train = source.load("train").unwrap();
    let st = Standardizer::fit(&train);
    let as_f64 = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for (ours, theirs) in st.mean.iter().zip(as_f64(&expected["mean"])) {
        assert!(
            (*ours as f64 - theirs).abs() <= 1e-5 * theirs.abs().max(1.0),
            "mean {ours} vs {theirs}"
        );
    }
    for (ours, theirs) in st.std.iter().zip(as_f64(&expected["std"])) {
        assert!(
            (*ours as f64 - theirs).abs() <= 1e-5 * theirs,
            "std {ours} vs {theirs}"
        );
    }
    st.apply(&mut train);
    let problem = Problem::new(Family::Multinomial, train, None, None, None).unwrap();
    let reference = Dense64::from_problem(&problem);
    let device = test_device();

    for case in expected["cases"].as_array().unwrap() {
        let alpha = case["alpha"].as_f64().unwrap();
        let lambda = case["lambda"].as_f64().unwrap();
        let lmax = solver::path::lambda_max(&problem, alpha, false, &device);
        let lmax_sk = case["lambda_max"].as_f64().unwrap();
        assert!(
            (lmax - lmax_sk).abs() <= 1e-5 * lmax_sk,
            "λ_max {lmax} vs scikit-learn's {lmax_sk}"
        );

        let config = PathConfig {
            alpha,
            tol: 1e-8,
            lookbehind: 0,
            max_epochs: 5000,
            seed: 3,
            ..Default::default()
        };
        let (layer, record) = solver::fit_lambda(&problem, &st, lambda, &config, &device).unwrap();
        let (w, b) = layer64(&layer);
        let ours = reference.objective(&w, &b, lambda, alpha, false);
        let sk = case["sklearn_objective"].as_f64().unwrap();
        let rel = (ours - sk).abs() / sk;
        let coef: Vec<f64> = case["sklearn_coef"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(as_f64)
            .collect();
        let max_dw = w
            .iter()
            .zip(&coef)
            .map(|(a, c)| (a - c).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "α={alpha} λ={lambda:.5e} ({}): ours {ours:.10} scikit-learn {sk:.10} rel {rel:.2e}; max |ΔW| {max_dw:.2e}; nnz {} vs {}; {} epochs",
            case["lambda_fraction"].as_str().unwrap(),
            record.nnz,
            case["nnz"],
            record.epochs
        );
        assert!(
            rel <= 1e-4,
            "objective {ours} vs scikit-learn {sk}: rel {rel:.2e}"
        );
        assert_eq!(
            record.nnz as u64,
            case["nnz"].as_u64().unwrap(),
            "same support as scikit-learn"
        );
        assert!(max_dw < 1e-3, "weights differ from scikit-learn's by {max_dw}");
    }
}
