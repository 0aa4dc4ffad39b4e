//! The real files `cargo xtask fetch` lays out under `$FIT_DATA_DIR` (default: `data/` at the
//! workspace root). These tests fail, saying so, when the files are missing.

use std::path::PathBuf;

use datasets::{fetched, idx, load, rotten, DatasetKind, Examples, LoadOptions};

use model_hub::data_dir;

fn require(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask fetch` first (or set FIT_DATA_DIR to the folder it filled)",
        p.display()
    );
    p
}

#[test]
fn real_rotten_tomatoes_snippets() {
    let file = require(fetched::ROTTEN_TOMATOES);
    let (set, r) = rotten::read_rotten_tomatoes(&file).unwrap();
    assert_eq!(
        (r.rows, r.positives, r.negatives, r.zeros_dropped),
        (10_605, 5_242, 5_326, 37)
    );
    assert_eq!(set.len(), 10_568);
    let Examples::Text(t) = &set.examples else {
        panic!()
    };
    assert!(
        t[0].starts_with("The Rock is destined to be the 21st Century's new ''Conan''"),
        "{}",
        t[0]
    );
    assert!(t.iter().all(|s| !s.contains('\r') && !s.contains('\t')));

    let s = load(DatasetKind::RottenTomatoes, &file, &LoadOptions::default()).unwrap();
    let sizes = (
        s.train.len(),
        s.val.as_ref().unwrap().len(),
        s.test.as_ref().unwrap().len(),
    );
    assert_eq!(sizes, (8_454, 1_057, 1_057));
    let fp = s.fingerprint().unwrap();
    assert_eq!(
        fp,
        load(DatasetKind::RottenTomatoes, &file, &LoadOptions::default())
            .unwrap()
            .fingerprint()
            .unwrap()
    );
}

#[test]
fn real_fashion_mnist() {
    let dir = require(fetched::FASHION_MNIST);
    let s = load(DatasetKind::FashionMnist, &dir, &LoadOptions::default()).unwrap();
    assert_eq!(s.train.len(), 54_000);
    assert_eq!(s.val.as_ref().unwrap().len(), 6_000);
    let test = s.test.as_ref().unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.class_counts(), vec![1_000; 10]);
    let mut train_counts = s.train.class_counts();
    for (c, v) in train_counts
        .iter_mut()
        .zip(s.val.as_ref().unwrap().class_counts())
    {
        *c += v;
    }
    assert_eq!(train_counts, vec![6_000; 10]);
    let Examples::Pixels {
        height,
        width,
        channels,
        ref data,
    } = test.examples
    else {
        panic!()
    };
    assert_eq!((height, width, channels, data.len()), (28, 28, 1, 10_000 * 784));
    // The first test image is an ankle boot (label 9), as in every Fashion-MNIST copy.
    assert_eq!(test.labels.as_class().unwrap()[0], 9);
    assert_eq!(s.class_names()[9], "Ankle boot");

    let raw = idx::read_idx_images(&dir.join("train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((raw.count, raw.rows, raw.cols), (60_000, 28, 28));
}
