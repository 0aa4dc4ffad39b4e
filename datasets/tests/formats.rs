//! Every format on small files written here in that exact format, and the error cases.

use std::fs;
use std::io::Write;
use std::path::Path;

use datasets::image_folder::{scan_image_folder, PLACES10_CLASSES};
use datasets::{
    balance, check_split_has_classes, idx, jigsaw, load, rotten, split_indices, sst, train_val_split,
    DatasetError, DatasetKind, Examples, LabeledSet, Labels, LoadOptions, SstThresholds,
};

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Every error must print on one line and name `file`.
fn assert_one_line_naming(err: &DatasetError, file: &str) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(msg.contains(file), "error does not name {file}: {msg}");
}

fn texts(set: &LabeledSet) -> &[String] {
    match &set.examples {
        Examples::Text(t) => t,
        other => panic!("expected text, got {}", other.form()),
    }
}

fn classes(set: &LabeledSet) -> &[u32] {
    set.labels.as_class().expect("class labels")
}

// ---------------------------------------------------------------- image folders

fn touch_images(root: &Path, class: &str, n: usize, ext: &str) {
    for i in 0..n {
        write(
            &root.join(class).join(format!("img_{i:03}.{ext}")),
            vec![0u8; 10 + i],
        );
    }
}

#[test]
fn image_folder_sorted_classes_skips_non_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch_images(root, "dog", 3, "jpg");
    touch_images(root, "cat", 2, "PNG");
    touch_images(root, "bird", 4, "JPEG");
    write(&root.join("cat/notes.txt"), "not an image");
    write(&root.join("dog/.DS_Store"), "x");
    write(&root.join("dog/sub/deeper.jpeg"), "nested image");
    write(&root.join("README"), "file at the root, ignored");
    fs::create_dir_all(root.join(".ipynb_checkpoints")).unwrap();

    let f = scan_image_folder(root, None, &[]).unwrap();
    assert_eq!(f.class_names, ["bird", "cat", "dog"]);
    assert_eq!(f.stats.per_class, [4, 2, 4]);
    assert_eq!(f.stats.images, 10);
    assert_eq!(f.stats.skipped_non_image, 1);
    assert_eq!(f.stats.skipped_hidden, 1);
    assert_eq!(f.labels, [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]);
    assert_eq!(f.paths[4], root.join("cat/img_000.PNG"));
    assert_eq!(f.paths[9], root.join("dog/sub/deeper.jpeg"));

    // No train/ folder: seeded 80/10/10.
    let s = load(DatasetKind::ImageFolder, root, &LoadOptions::default()).unwrap();
    assert_eq!(
        (
            s.train.len(),
            s.val.as_ref().unwrap().len(),
            s.test.as_ref().unwrap().len()
        ),
        (8, 1, 1)
    );
    assert!(
        s.notes.iter().any(|n| n.contains("1 non-image files skipped")),
        "{:?}",
        s.notes
    );
    assert!(matches!(s.train.examples, Examples::Images(_)));
}

#[test]
fn imagenet_train_val_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (c, n) in [("n01440764", 10), ("n01443537", 10), ("n01484850", 10)] {
        touch_images(&root.join("train"), c, n, "JPEG");
    }
    // val lacks one class: fine, labels follow train's class list.
    touch_images(&root.join("val"), "n01443537", 2, "JPEG");
    touch_images(&root.join("val"), "n01484850", 3, "JPEG");

    let s = load(DatasetKind::ImageNet, root, &LoadOptions::default()).unwrap();
    assert_eq!(s.class_names(), ["n01440764", "n01443537", "n01484850"]);
    let test = s.test.as_ref().unwrap();
    assert_eq!(classes(test), [1, 1, 2, 2, 2]);
    assert_eq!(s.val.as_ref().unwrap().len(), 3); // 10% of 30
    assert_eq!(s.train.len(), 27);
    assert!(s.notes.iter().any(|n| n.contains("used as the test split")));

    // A val class that is not a train class has no label: error naming it.
    touch_images(&root.join("val"), "n99999999", 1, "JPEG");
    let err = load(DatasetKind::ImageNet, root, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownClasses { .. }), "{err}");
    assert_one_line_naming(&err, "n99999999");

    // ImageNet needs val/.
    let dir2 = tempfile::tempdir().unwrap();
    touch_images(&dir2.path().join("train"), "n01440764", 2, "JPEG");
    let err = load(DatasetKind::ImageNet, dir2.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFile { .. }), "{err}");
    assert_one_line_naming(&err, "val");

    // A flat val/ (not sorted into class folders) is reported as such.
    let dir3 = tempfile::tempdir().unwrap();
    touch_images(&dir3.path().join("train"), "n01440764", 2, "JPEG");
    touch_images(&dir3.path().join("train"), "n01443537", 2, "JPEG");
    write(&dir3.path().join("val/ILSVRC2012_val_00000001.JPEG"), "x");
    let err = load(DatasetKind::ImageNet, dir3.path(), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("valprep"), "{err}");
}

#[test]
fn image_folder_with_train_val_test_uses_all_three() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for split in ["train", "val", "test"] {
        touch_images(&root.join(split), "a", 4, "png");
        touch_images(&root.join(split), "b", 4, "png");
    }
    let s = load(DatasetKind::ImageFolder, root, &LoadOptions::default()).unwrap();
    assert_eq!(
        (
            s.train.len(),
            s.val.as_ref().unwrap().len(),
            s.test.as_ref().unwrap().len()
        ),
        (8, 8, 8)
    );
}

#[test]
fn places10_subset_relabels_in_list_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for c in PLACES10_CLASSES.iter().chain(["abbey", "zoo"].iter()) {
        touch_images(&root.join("train"), c, 3, "jpg");
        touch_images(&root.join("val"), c, 1, "jpg");
    }
    let s = load(DatasetKind::Places10, root, &LoadOptions::default()).unwrap();
    assert_eq!(s.class_names(), PLACES10_CLASSES);
    let test = s.test.as_ref().unwrap();
    assert_eq!(classes(test), (0..10).collect::<Vec<u32>>());
    assert_eq!(s.train.len() + s.val.as_ref().unwrap().len(), 30);

    // A custom subset, in list order (not sorted), with a nested data_256-style name.
    touch_images(&root.join("train"), "a/airfield", 3, "jpg");
    let opts = LoadOptions {
        classes: Some(vec!["volcano".into(), "a/airfield".into(), "bridge".into()]),
        val_frac: 0.0,
        ..Default::default()
    };
    let s = load(DatasetKind::ImageFolder, root, &opts).unwrap();
    assert_eq!(s.class_names(), ["volcano", "a/airfield", "bridge"]);
    assert_eq!(classes(&s.train), [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert!(s.val.is_none());

    // Missing classes are named.
    let opts = LoadOptions {
        classes: Some(vec!["volcano".into(), "moon".into()]),
        ..Default::default()
    };
    let err = load(DatasetKind::Places10, root, &opts).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownClasses { ref missing, .. } if missing == &["moon"]));
    assert_one_line_naming(&err, "moon");
}

#[test]
fn image_folder_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = load(DatasetKind::ImageFolder, &missing, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingPath { .. }));
    assert_one_line_naming(&err, "nope");

    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let err = load(DatasetKind::ImageFolder, &empty, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::EmptyDir { .. }), "{err}");
    assert_one_line_naming(&err, "empty");

    let noimg = dir.path().join("noimg");
    write(&noimg.join("cat/a.txt"), "x");
    write(&noimg.join("dog/b.csv"), "x");
    let err = load(DatasetKind::ImageFolder, &noimg, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::NoImages {
                classes: 2,
                skipped: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_one_line_naming(&err, "noimg");

    // One class only: the training split cannot train a classifier.
    let one = dir.path().join("one");
    touch_images(&one, "cat", 10, "jpg");
    let err = load(DatasetKind::ImageFolder, &one, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::SingleClass { .. }), "{err}");
    assert_one_line_naming(&err, "train");
}

// ---------------------------------------------------------------- CIFAR-10

/// A CIFAR record whose pixel (y, x) of channel c is `(label + c * 50 + y + x) % 256`.
fn cifar_record(label: u8) -> Vec<u8> {
    let mut rec = vec![label];
    for c in 0..3usize {
        for y in 0..32usize {
            for x in 0..32usize {
                rec.push(((label as usize + c * 50 + y + x) % 256) as u8);
            }
        }
    }
    rec
}

fn write_cifar(dir: &Path, batches: &[&[u8]], test: &[u8]) {
    for (k, labels) in batches.iter().enumerate() {
        let bytes: Vec<u8> = labels.iter().flat_map(|&l| cifar_record(l)).collect();
        write(&dir.join(format!("data_batch_{}.bin", k + 1)), bytes);
    }
    let bytes: Vec<u8> = test.iter().flat_map(|&l| cifar_record(l)).collect();
    write(&dir.join("test_batch.bin"), bytes);
    write(
        &dir.join("batches.meta.txt"),
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
    );
}

#[test]
fn cifar10_binary_batches() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("cifar-10-batches-bin");
    write_cifar(&inner, &[&[0, 1, 2, 3, 4], &[5, 6, 7, 8, 9]], &[9, 3, 1]);
    let opts = LoadOptions {
        val_frac: 0.2,
        ..Default::default()
    };
    let s = load(DatasetKind::Cifar10, dir.path(), &opts).unwrap();
    assert_eq!(s.class_names()[0], "airplane");
    assert_eq!(s.class_names()[9], "truck");
    assert_eq!(s.train.len(), 8);
    assert_eq!(s.val.as_ref().unwrap().len(), 2);
    let test = s.test.as_ref().unwrap();
    assert_eq!(classes(test), [9, 3, 1]);
    let Examples::Pixels {
        height,
        width,
        channels,
        ..
    } = test.examples
    else {
        panic!()
    };
    assert_eq!((height, width, channels), (32, 32, 3));
    // HWC: pixel (y=2, x=5), channel c of the first test image (label 9).
    let px = test.examples.pixels(0).unwrap();
    for c in 0..3 {
        assert_eq!(px[(2 * 32 + 5) * 3 + c] as usize, (9 + c * 50 + 2 + 5) % 256);
    }
    // Train + val together hold every training label once.
    let mut all: Vec<u32> = classes(&s.train).to_vec();
    all.extend(classes(s.val.as_ref().unwrap()));
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<u32>>());
}

#[test]
fn cifar10_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path(), &[&[0, 1, 2]], &[1]);
    // Truncated record.
    let p = dir.path().join("data_batch_1.bin");
    let mut bytes = fs::read(&p).unwrap();
    bytes.truncate(3073 * 2 + 100);
    fs::write(&p, &bytes).unwrap();
    let err = load(DatasetKind::Cifar10, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Truncated { .. }), "{err}");
    assert_one_line_naming(&err, "data_batch_1.bin");
    assert!(err.to_string().contains("record 2"), "{err}");

    // Label out of range.
    write_cifar(dir.path(), &[&[0, 1, 12]], &[1]);
    let err = load(DatasetKind::Cifar10, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::LabelOutOfRange {
                record: 2,
                label: 12,
                ..
            }
        ),
        "{err}"
    );
    assert_one_line_naming(&err, "data_batch_1.bin");

    // No batches at all.
    let empty = tempfile::tempdir().unwrap();
    let err = load(DatasetKind::Cifar10, empty.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFile { .. }), "{err}");
    assert_one_line_naming(&err, "data_batch_1.bin");
}

// ---------------------------------------------------------------- IDX

fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x803u32, n, rows, cols] {
        b.extend(v.to_be_bytes());
    }
    for i in 0..n * rows * cols {
        b.push((i % 251) as u8);
    }
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(0x801u32.to_be_bytes());
    b.extend((labels.len() as u32).to_be_bytes());
    b.extend(labels);
    b
}

fn write_idx(dir: &Path, prefix: &str, n: u32, labels: &[u8], gzip: bool) {
    let (imgs, labs) = (idx_images(n, 28, 28), idx_labels(labels));
    let (imgs, labs, ext) = if gzip {
        (gz(&imgs), gz(&labs), ".gz")
    } else {
        (imgs, labs, "")
    };
    write(&dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), imgs);
    write(&dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), labs);
}

#[test]
fn idx_raw_and_gz() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let train_labels: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
        write_idx(dir.path(), "train", 20, &train_labels, gzip);
        write_idx(dir.path(), "t10k", 5, &[4, 3, 2, 1, 0], gzip);
        let s = load(DatasetKind::FashionMnist, dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(s.class_names()[0], "T-shirt/top");
        assert_eq!(s.class_names()[9], "Ankle boot");
        assert_eq!((s.train.len(), s.val.as_ref().unwrap().len()), (18, 2));
        let test = s.test.as_ref().unwrap();
        assert_eq!(classes(test), [4, 3, 2, 1, 0]);
        let Examples::Pixels {
            ref data,
            height,
            width,
            channels,
        } = test.examples
        else {
            panic!()
        };
        assert_eq!((height, width, channels, data.len()), (28, 28, 1, 5 * 784));
        assert_eq!(data[785], (785 % 251) as u8);

        let m = load(DatasetKind::Mnist, dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(m.class_names()[7], "7");
    }
}

#[test]
fn idx_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_idx(d, "train", 4, &[0, 1, 2, 3], false);
    let img = d.join("train-images-idx3-ubyte");
    let lab = d.join("train-labels-idx1-ubyte");

    // Bad magic (labels swapped in for images).
    fs::write(&img, idx_labels(&[0, 1])).unwrap();
    let err = idx::read_idx_images(&img).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{err}"
    );
    assert_one_line_naming(&err, "train-images-idx3-ubyte");

    // Truncated pixels, raw and gzipped.
    let mut bytes = idx_images(4, 28, 28);
    bytes.truncate(bytes.len() - 1);
    fs::write(&img, &bytes).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Truncated { .. }), "{err}");
    assert_one_line_naming(&err, "train-images-idx3-ubyte");
    fs::remove_file(&img).unwrap();
    let gz_img = d.join("train-images-idx3-ubyte.gz");
    fs::write(&gz_img, gz(&bytes)).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Truncated { .. }), "{err}");
    assert_one_line_naming(&err, "train-images-idx3-ubyte.gz");

    // A corrupt gzip stream.
    let good = gz(&idx_images(4, 28, 28));
    fs::write(&gz_img, &good[..good.len() / 2]).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }), "{err}");
    assert_one_line_naming(&err, "train-images-idx3-ubyte.gz");
    fs::write(&gz_img, &good).unwrap();

    // Trailing bytes.
    let mut long = idx_labels(&[0, 1, 2, 3]);
    long.push(7);
    fs::write(&lab, &long).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::WrongSize { .. }), "{err}");

    // Count mismatch.
    fs::write(&lab, idx_labels(&[0, 1, 2])).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::CountMismatch {
                expected: 4,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_one_line_naming(&err, "train-labels-idx1-ubyte");

    // Label out of range.
    fs::write(&lab, idx_labels(&[0, 1, 10, 3])).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::LabelOutOfRange {
                record: 2,
                label: 10,
                classes: 10,
                ..
            }
        ),
        "{err}"
    );

    // Missing label file.
    fs::remove_file(&lab).unwrap();
    let err = load(DatasetKind::Mnist, d, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFile { .. }), "{err}");
    assert_one_line_naming(&err, "train-labels-idx1-ubyte");
}

// ---------------------------------------------------------------- SST (original release)

/// A miniature of the Stanford release: the sentence file has PTB escapes and UTF-8 read as
/// Latin-1 (`Ã©`), the dictionary the plain forms, as in the real files.
fn write_sst(dir: &Path) {
    let dict = "\
The film is great|0
The film is great .|1
A clichÃ©d mess|99
A clichéd mess .|2
It 's ( mostly ) fine .|3
Dull|4
Dull , dull , dull .|5
Na\u{ef}ve and sweet .|6
Exactly sixty|7
Exactly forty .|8
A|B|9
";
    write(&dir.join("dictionary.txt"), dict);
    write(
        &dir.join("sentiment_labels.txt"),
        "phrase ids|sentiment values\n0|0.9\n1|0.95\n2|0.1\n3|0.5\n4|0.2\n5|0.0\n6|0.8\n7|0.6\n8|0.4\n9|0.61\n99|0.7\n",
    );
    // Written as bytes: "clichÃ©d" is the UTF-8 of "é" decoded as Latin-1 and re-encoded.
    let sentences = "sentence_index\tsentence\n\
1\tThe film is great .\n\
2\tA clichÃ©d mess .\n\
3\tIt 's -LRB- mostly -RRB- fine .\n\
4\tDull , dull , dull .\n\
5\tNaÃ¯ve and sweet .\n\
6\tNot in the dictionary at all .\n\
7\tExactly forty .\n\
8\tA|B\n";
    write(&dir.join("datasetSentences.txt"), sentences);
    write(
        &dir.join("datasetSplit.txt"),
        "sentence_index,splitset_label\n1,1\n2,1\n3,1\n4,2\n5,3\n6,1\n7,2\n8,1\n",
    );
}

#[test]
fn sst_original_release() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stanfordSentimentTreebank");
    write_sst(&root);
    let s = sst::load_sst(dir.path(), SstThresholds::default()).unwrap();
    // train: 1 (0.95 → pos), 2 (0.1 → neg, via mojibake fix), 3 (0.5 neutral, via -LRB-), 8 (0.61 → pos)
    assert_eq!(
        texts(&s.train),
        ["The film is great .", "A clichéd mess .", "A|B"]
    );
    assert_eq!(classes(&s.train), [1, 0, 1]);
    // dev: 5 (0.8 → pos, via Ã¯ → ï)
    assert_eq!(texts(&s.dev), ["Naïve and sweet ."]);
    assert_eq!(classes(&s.dev), [1]);
    // test: 4 (0.0 → neg), 7 (0.4 → neg: the bound is inclusive)
    assert_eq!(classes(&s.test), [0, 0]);
    assert_eq!(s.report.sentences, 8);
    assert_eq!(s.report.not_in_dictionary, [6]);
    assert_eq!(s.report.neutral_dropped, [1, 0, 0]);
    assert_eq!(s.report.kept, [3, 1, 2]);
    assert_eq!(s.report.matched_after_normalizing, 3);

    // Thresholds are explicit: a stricter positive bound drops 0.61 and 0.8 as neutral.
    let strict = SstThresholds {
        negative_at_most: 0.4,
        positive_above: 0.85,
    };
    let s2 = sst::load_sst(&root, strict).unwrap();
    assert_eq!(classes(&s2.train), [1, 0]);
    assert_eq!(s2.dev.len(), 0);
    assert_eq!(SstThresholds::default().label(0.6), None);
    assert_eq!(SstThresholds::default().label(0.600001), Some(1));
    assert_eq!(SstThresholds::default().label(0.4), Some(0));

    // Through load(): dev → val, test → test, not-found sentences noted.
    let splits = load(DatasetKind::Sst, dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(splits.val.as_ref().unwrap().len(), 1);
    assert_eq!(splits.test.as_ref().unwrap().len(), 2);
    assert!(
        splits
            .notes
            .iter()
            .any(|n| n.contains("1 sentences not in dictionary.txt")),
        "{:?}",
        splits.notes
    );
}

#[test]
fn sst_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_sst(dir.path());
    write(
        &dir.path().join("datasetSplit.txt"),
        "sentence_index,splitset_label\n1,1\n2,4\n",
    );
    let err = sst::load_sst(dir.path(), SstThresholds::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Malformed { line: 3, .. }), "{err}");
    assert_one_line_naming(&err, "datasetSplit.txt:3");

    write_sst(dir.path());
    write(
        &dir.path().join("sentiment_labels.txt"),
        "phrase ids|sentiment values\n0|0.9\n1|1.7\n",
    );
    let err = sst::load_sst(dir.path(), SstThresholds::default()).unwrap_err();
    assert_one_line_naming(&err, "sentiment_labels.txt:3");

    write_sst(dir.path());
    write(&dir.path().join("dictionary.txt"), "fine|0\nno separator here\n");
    let err = sst::load_sst(dir.path(), SstThresholds::default()).unwrap_err();
    assert_one_line_naming(&err, "dictionary.txt:2");

    fs::remove_file(dir.path().join("datasetSentences.txt")).unwrap();
    let err = sst::load_sst(dir.path(), SstThresholds::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFile { .. }), "{err}");
    assert_one_line_naming(&err, "datasetSentences.txt");
}

// ---------------------------------------------------------------- GLUE SST-2

#[test]
fn sst2_tsv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut train = String::from("sentence\tlabel\n");
    for i in 0..20 {
        train.push_str(&format!("sentence \"number\" {i} \t{}\n", i % 2));
    }
    write(&d.join("train.tsv"), train);
    write(
        &d.join("dev.tsv"),
        "sentence\tlabel\nit 's a charming journey . \t1\nbad .\t0\n",
    );
    write(
        &d.join("test.tsv"),
        "index\tsentence\n0\tuneasy mishmash .\n1\tthis is fine .\n",
    );
    let s = load(DatasetKind::Sst2Tsv, d, &LoadOptions::default()).unwrap();
    assert_eq!((s.train.len(), s.val.as_ref().unwrap().len()), (18, 2));
    let test = s.test.as_ref().unwrap();
    assert_eq!(texts(test), ["it 's a charming journey .", "bad ."]);
    assert_eq!(classes(test), [1, 0]);
    assert_eq!(
        sst::read_sst2_unlabeled(&d.join("test.tsv")).unwrap(),
        [
            (0, "uneasy mishmash .".to_string()),
            (1, "this is fine .".to_string())
        ]
    );

    // Errors: missing column, label out of range, wrong field count.
    write(&d.join("bad.tsv"), "text\tlabel\nfoo\t1\n");
    let err = sst::read_sst2_tsv(&d.join("bad.tsv")).unwrap_err();
    assert!(matches!(err, DatasetError::MissingColumns { ref missing, .. } if missing == &["sentence"]));
    assert_one_line_naming(&err, "bad.tsv");
    write(&d.join("bad.tsv"), "sentence\tlabel\nfoo\t1\nbar\t2\n");
    let err = sst::read_sst2_tsv(&d.join("bad.tsv")).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::LabelOutOfRange {
                record: 1,
                label: 2,
                ..
            }
        ),
        "{err}"
    );
    write(&d.join("bad.tsv"), "sentence\tlabel\n");
    let err = sst::read_sst2_tsv(&d.join("bad.tsv")).unwrap_err();
    assert!(matches!(err, DatasetError::NoExamples { .. }), "{err}");
    write(&d.join("bad.tsv"), "sentence\tlabel\nfoo\t1\nbar\n");
    let err = sst::read_sst2_tsv(&d.join("bad.tsv")).unwrap_err();
    assert_one_line_naming(&err, "bad.tsv:3");
}

// ---------------------------------------------------------------- Jigsaw

const JIGSAW_HEADER: &str = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n";

fn write_jigsaw(dir: &Path) {
    let mut train = String::from(JIGSAW_HEADER);
    train.push_str("0001,\"A long comment,\nover \"\"two\"\" lines\",1,0,1,0,1,0\n");
    train.push_str("0002,plain comment,0,0,0,0,0,0\n");
    for i in 3..23 {
        let t = u8::from(i % 4 == 0);
        train.push_str(&format!("{i:04},\"comment {i}\",{t},0,0,0,{t},0\n"));
    }
    write(&dir.join("train.csv"), train);
    write(
        &dir.join("test.csv"),
        "id,comment_text\nt1,\"nice, really\"\nt2,unscored\nt3,awful\n",
    );
    write(
        &dir.join("test_labels.csv"),
        "id,toxic,severe_toxic,obscene,threat,insult,identity_hate\n\
         t1,0,0,0,0,0,0\nt2,-1,-1,-1,-1,-1,-1\nt3,1,0,0,0,1,0\n",
    );
}

#[test]
fn jigsaw_binary_and_multilabel() {
    let dir = tempfile::tempdir().unwrap();
    write_jigsaw(dir.path());
    let table = jigsaw::read_jigsaw_csv(&dir.path().join("train.csv"), &["toxic".to_string()]).unwrap();
    assert_eq!(table.texts[0], "A long comment,\nover \"two\" lines");
    assert_eq!(table.ids[1], "0002");
    assert_eq!(table.texts.len(), 22);

    let s = load(DatasetKind::Jigsaw, dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(s.class_names(), ["not toxic", "toxic"]);
    let test = s.test.as_ref().unwrap();
    assert_eq!(texts(test), ["nice, really", "awful"]);
    assert_eq!(classes(test), [0, 1]);
    assert!(s.notes.iter().any(|n| n.contains("1 unscored")), "{:?}", s.notes);

    let opts = LoadOptions {
        label_columns: vec!["toxic".into(), "insult".into()],
        val_frac: 0.0,
        ..Default::default()
    };
    let s = load(DatasetKind::Jigsaw, dir.path(), &opts).unwrap();
    assert_eq!(s.class_names(), ["toxic", "insult"]);
    let Labels::Multi(ref m) = s.train.labels else {
        panic!("multilabel expected")
    };
    assert_eq!(m[0], [1.0, 1.0]);
    assert_eq!(m[1], [0.0, 0.0]);

    // A single CSV file: seeded 80/10/10.
    let s = load(
        DatasetKind::Jigsaw,
        &dir.path().join("train.csv"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(s.train.len() + s.val.unwrap().len() + s.test.unwrap().len(), 22);
}

#[test]
fn jigsaw_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("train.csv"),
        "id,comment_text,toxic\n1,hello,0\n2,bye,1\n",
    );
    let opts = LoadOptions {
        label_columns: vec!["toxic".into(), "threat".into(), "insult".into()],
        ..Default::default()
    };
    let err = load(DatasetKind::Jigsaw, dir.path(), &opts).unwrap_err();
    assert!(
        matches!(err, DatasetError::MissingColumns { ref missing, .. } if missing == &["threat", "insult"]),
        "{err}"
    );
    assert_one_line_naming(&err, "train.csv");
    assert!(err.to_string().contains("\"threat\", \"insult\""), "{err}");

    write(
        &dir.path().join("train.csv"),
        "id,comment_text,toxic\n1,hello,0\n2,\"bye\nbye\",yes\n",
    );
    let err = load(DatasetKind::Jigsaw, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Malformed { line: 3, .. }), "{err}");
    assert_one_line_naming(&err, "train.csv:3");

    write(
        &dir.path().join("train.csv"),
        "id,comment_text,toxic\n1,hello,0\n2,bye\n",
    );
    let err = load(DatasetKind::Jigsaw, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::Malformed { line: 3, .. }), "{err}");

    write(
        &dir.path().join("train.csv"),
        "id,comment_text,toxic\n1,hello,0\n2,bye,3\n",
    );
    let err = load(DatasetKind::Jigsaw, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("outside [0, 1]"), "{err}");

    write(&dir.path().join("train.csv"), JIGSAW_HEADER);
    let err = load(DatasetKind::Jigsaw, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::NoExamples { .. }), "{err}");
    assert_one_line_naming(&err, "train.csv");

    fs::remove_file(dir.path().join("train.csv")).unwrap();
    let err = load(DatasetKind::Jigsaw, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFile { .. }), "{err}");
    assert_one_line_naming(&err, "train.csv");
}

// ---------------------------------------------------------------- Rotten Tomatoes

#[test]
fn rotten_tomatoes_crlf_sign_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    let ratings = [
        2.27, -1.5, 0.0, 3.53, -0.06, 0.25, -3.0, 1.0, -2.0, 0.5, -0.5, 0.0,
    ];
    for (i, r) in ratings.iter().enumerate() {
        body.push_str(&format!(
            "{}\t{r}\tSnippet ''{i}'' with a \"quote\" and caf\u{e9}.\r\n",
            i + 1
        ));
    }
    let file = dir
        .path()
        .join("hutto_ICWSM_2014")
        .join(rotten::ROTTEN_TOMATOES_FILE);
    write(&file, body.trim_end());
    let (set, r) = rotten::read_rotten_tomatoes(dir.path()).unwrap();
    assert_eq!((r.rows, r.positives, r.negatives, r.zeros_dropped), (12, 5, 5, 2));
    assert_eq!(classes(&set), [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
    assert_eq!(texts(&set)[0], "Snippet ''0'' with a \"quote\" and café.");
    assert!(!texts(&set).iter().any(|t| t.ends_with('\r')));

    let s = load(DatasetKind::RottenTomatoes, &file, &LoadOptions::default()).unwrap();
    assert_eq!(
        (
            s.train.len(),
            s.val.as_ref().unwrap().len(),
            s.test.as_ref().unwrap().len()
        ),
        (8, 1, 1)
    );
    assert!(
        s.notes.iter().any(|n| n.contains("2 rated 0 dropped")),
        "{:?}",
        s.notes
    );

    write(&file, "1\t2.0\tgood\r\n2\tgreat\r\n");
    let err = rotten::read_rotten_tomatoes(&file).unwrap_err();
    assert_one_line_naming(&err, "movieReviewSnippets_GroundTruth.txt:2");
    write(&file, "1\t2.0\tgood\r\n2\tabc\tbad\r\n");
    let err = rotten::read_rotten_tomatoes(&file).unwrap_err();
    assert!(matches!(err, DatasetError::Malformed { line: 2, .. }), "{err}");
    write(&file, "1\t7.0\tgood\r\n");
    let err = rotten::read_rotten_tomatoes(&file).unwrap_err();
    assert!(err.to_string().contains("outside [-4, 4]"), "{err}");
    write(&file, "1\t0.0\tmeh\r\n\r\n");
    let err = load(DatasetKind::RottenTomatoes, &file, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::NoExamples { .. }), "{err}");
    assert_one_line_naming(&err, "movieReviewSnippets_GroundTruth.txt");
}

// ---------------------------------------------------------------- splits, balance, fingerprint

#[test]
fn split_indices_partition_and_are_seeded() {
    let s = split_indices(103, (0.8, 0.1, 0.1), 7).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (82, 10, 11));
    let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
    all.sort();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
    assert!(s.train.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(s, split_indices(103, (0.8, 0.1, 0.1), 7).unwrap());
    assert_ne!(s, split_indices(103, (0.8, 0.1, 0.1), 8).unwrap());

    // Golden values: the same on every platform and rand patch release.
    let g = split_indices(10, (0.6, 0.2, 0.2), 0).unwrap();
    let (tr, va) = train_val_split(10, 0.3, 0).unwrap();
    assert_eq!(
        (g.train, g.val, g.test),
        (vec![1, 2, 3, 6, 8, 9], vec![0, 5], vec![4, 7])
    );
    assert_eq!((tr, va), (vec![0, 2, 3, 4, 6, 7, 8], vec![1, 5, 9]));
    let b = balance(&[0, 0, 1, 0, 0, 1, 0, 0, 0, 1], 3).unwrap();
    assert_eq!(b.indices, [2, 4, 5, 7, 8, 9]);

    assert!(matches!(
        split_indices(10, (0.8, 0.1, 0.2), 0),
        Err(DatasetError::InvalidOption(_))
    ));
    assert!(matches!(
        split_indices(10, (1.2, -0.1, -0.1), 0),
        Err(DatasetError::InvalidOption(_))
    ));
    assert!(matches!(
        train_val_split(10, 1.0, 0),
        Err(DatasetError::InvalidOption(_))
    ));
    let (tr, va) = train_val_split(10, 0.0, 0).unwrap();
    assert_eq!((tr.len(), va.len()), (10, 0));
}

#[test]
fn balance_keeps_all_positives() {
    let labels = [0, 0, 1, 0, 0, 1, 0, 0, 0, 1];
    let b = balance(&labels, 3).unwrap();
    assert_eq!(
        (b.positives, b.negatives_available, b.negatives_kept, b.short_by()),
        (3, 7, 3, 0)
    );
    assert_eq!(b.indices.len(), 6);
    assert!([2, 5, 9].iter().all(|i| b.indices.contains(i)));
    assert_eq!(b, balance(&labels, 3).unwrap());

    // Fewer negatives than positives: everything kept, nothing duplicated.
    let b = balance(&[1, 1, 1, 0], 0).unwrap();
    assert_eq!(
        (b.indices.clone(), b.negatives_kept, b.short_by()),
        (vec![0, 1, 2, 3], 1, 2)
    );
    assert!(matches!(
        balance(&[0, 1, 2], 0),
        Err(DatasetError::InvalidOption(_))
    ));

    // Through load(): the training split of a binary task is balanced, val/test are not.
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..100 {
        let r = if i % 5 == 0 { 2.0 } else { -2.0 };
        body.push_str(&format!("{i}\t{r}\ttext {i}\r\n"));
    }
    let file = dir.path().join("rt.txt");
    write(&file, body);
    let opts = LoadOptions {
        balance: true,
        ..Default::default()
    };
    let s = load(DatasetKind::RottenTomatoes, &file, &opts).unwrap();
    let counts = s.train.class_counts();
    assert_eq!(counts[0], counts[1]);
    assert!(
        s.notes.iter().any(|n| n.starts_with("train balanced")),
        "{:?}",
        s.notes
    );
}

#[test]
fn single_class_split_is_rejected() {
    let set = LabeledSet {
        examples: Examples::Text(vec!["a".into(), "b".into()]),
        labels: Labels::Class(vec![1, 1]),
        class_names: vec!["negative".into(), "positive".into()],
    };
    let err = check_split_has_classes("val", &set).unwrap_err();
    assert_eq!(
        err.to_string(),
        "val split: all 2 examples are of one class (\"positive\"); need at least two classes"
    );
    let multi = LabeledSet {
        examples: Examples::Text(vec!["a".into(), "b".into()]),
        labels: Labels::Multi(vec![vec![1.0, 0.0], vec![0.0, 0.0]]),
        class_names: vec!["toxic".into(), "threat".into()],
    };
    let err = check_split_has_classes("train", &multi).unwrap_err();
    assert!(err.to_string().contains("\"threat\""), "{err}");
    let empty = set.select(&[]);
    assert!(check_split_has_classes("test", &empty).is_err());
}

#[test]
fn fingerprint_follows_content_not_location() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for root in [a.path(), b.path()] {
        touch_images(root, "cat", 6, "jpg");
        touch_images(root, "dog", 6, "jpg");
    }
    let opts = LoadOptions::default();
    let fa = load(DatasetKind::ImageFolder, a.path(), &opts)
        .unwrap()
        .fingerprint()
        .unwrap();
    let fb = load(DatasetKind::ImageFolder, b.path(), &opts)
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_eq!(fa, fb);
    assert_eq!(fa.len(), 64);
    let reseeded = LoadOptions {
        seed: 1,
        ..Default::default()
    };
    let fc = load(DatasetKind::ImageFolder, a.path(), &reseeded)
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_ne!(fa, fc);
    // A file's size changes the fingerprint.
    write(&b.path().join("dog/img_000.jpg"), vec![0u8; 999]);
    let fd = load(DatasetKind::ImageFolder, b.path(), &opts)
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_ne!(fa, fd);

    // Content datasets: one changed pixel changes it.
    let d = tempfile::tempdir().unwrap();
    write_idx(d.path(), "train", 10, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], false);
    let f1 = load(DatasetKind::Mnist, d.path(), &opts)
        .unwrap()
        .fingerprint()
        .unwrap();
    let p = d.path().join("train-images-idx3-ubyte");
    let mut bytes = fs::read(&p).unwrap();
    bytes[100] ^= 1;
    fs::write(&p, bytes).unwrap();
    let f2 = load(DatasetKind::Mnist, d.path(), &opts)
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_ne!(f1, f2);
}

#[test]
fn kind_names_round_trip() {
    for k in DatasetKind::ALL {
        assert_eq!(k.to_string().parse::<DatasetKind>().unwrap(), k);
    }
    assert_eq!(
        "image-folder".parse::<DatasetKind>().unwrap(),
        DatasetKind::ImageFolder
    );
    assert_eq!(
        "Fashion_MNIST".parse::<DatasetKind>().unwrap(),
        DatasetKind::FashionMnist
    );
    assert_eq!("places-10".parse::<DatasetKind>().unwrap(), DatasetKind::Places10);
    let err = "cifar100".parse::<DatasetKind>().unwrap_err();
    assert!(err.to_string().contains("rotten-tomatoes"), "{err}");
    assert!(DatasetKind::Sst.is_text() && !DatasetKind::Cifar10.is_text());
}
