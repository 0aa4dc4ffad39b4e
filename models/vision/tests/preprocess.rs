//! Acceptance 3: image preprocessing equals torchvision's Resize(256) + CenterCrop(224) +
//! ToTensor + Normalize on PIL images (scikit-image 0.26.0 sample photos: RGB, grayscale, RGBA;
//! and an in-memory 28x28 grayscale image) within 1e-2 per value. The references are PIL's 8-bit
//! crops saved losslessly by `fixtures/make_fixtures.py`; Normalize is the f32 formula the script
//! checked against torchvision. Needs `cargo xtask fetch` for the photos.

mod common;

use common::*;
use vision::preprocess::{decode_rgb, Rgb8};
use vision::Preprocess;

fn reference(crop: &str) -> Rgb8 {
    decode_rgb(&fixtures().join(crop)).expect("reference crop")
}

/// max |a − b| and the share of values that differ at all.
fn compare(a: &[f32], b: &[f32]) -> (f32, f64) {
    let max = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let differ = a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64;
    (max, differ)
}

#[test]
fn photos_match_torchvision() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("preprocess.json")).unwrap()).unwrap();
    let skimage = data_file("pkg/scikit-image-0.26.0/skimage/data");
    let mut seen_modes = Vec::new();
    for entry in meta["images"].as_array().unwrap() {
        let source = entry["source"].as_str().unwrap();
        // timm's evaluation transform (resnet50.a1_in1k: Resize(235, bicubic)) where given
        let mut pre = Preprocess::imagenet();
        if let Some(resize) = entry["resize"].as_u64() {
            pre.resize = resize as usize;
            assert_eq!(entry["interpolation"], "bicubic");
            pre.interpolation = vision::Interpolation::Bicubic;
        }
        let crop = reference(entry["crop"].as_str().unwrap());
        let expected = pre.normalize(&crop);
        let got = if source == "gray28" {
            pre.from_gray_u8(&gray28(), 28, 28).unwrap()
        } else {
            seen_modes.push(entry["mode"].as_str().unwrap().to_string());
            pre.load_image(skimage.join(source)).unwrap()
        };
        assert_eq!(got.len(), 3 * 224 * 224);
        let (max, differ) = compare(&got, &expected);
        eprintln!(
            "{source} ({}, resize {} {:?}): max |difference| {max:.2e} after Normalize, {:.3}% of values differ",
            entry["mode"].as_str().unwrap(),
            pre.resize,
            pre.interpolation,
            differ * 100.0
        );
        assert!(max <= 1e-2, "{source}: {max}");
        // same decoders (libpng/zlib, libjpeg-turbo) and PIL's resampling transcribed: bit for bit
        assert_eq!(max, 0.0, "{source}");
    }
    for mode in ["RGB", "L", "RGBA"] {
        assert!(seen_modes.iter().any(|m| m == mode), "no {mode} photo tested");
    }
}

/// The 28x28 test card of make_fixtures.py (`gray28`).
fn gray28() -> Vec<u8> {
    let mut v = Vec::with_capacity(28 * 28);
    for y in 0..28usize {
        for x in 0..28usize {
            v.push(((x * 9 + y * 5 + (x * y) % 7 * 11) % 256) as u8);
        }
    }
    v
}

#[test]
fn batches_stack_images() {
    let pre = Preprocess::imagenet();
    let a = pre.from_gray_u8(&gray28(), 28, 28).unwrap();
    let rgb: Vec<u8> = gray28().iter().flat_map(|&p| [p, p, p]).collect();
    let b = pre.from_rgb_u8(&rgb, 28, 28).unwrap();
    assert_eq!(a, b);
    let t = pre.batch(&[a.clone(), b], &device()).unwrap();
    assert_eq!(t.dims(), [2, 3, 224, 224]);
    let back = to_vec(t);
    assert_eq!(&back[..a.len()], &a[..]);
    assert!(pre.from_gray_u8(&[0; 10], 28, 28).is_err());
    assert!(pre.batch(&[vec![0.0; 5]], &device()).is_err());
}
