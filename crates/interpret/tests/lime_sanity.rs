//! LIME sanity checks on synthetic models whose answer is known (issue 7, acceptance 1): a
//! text model whose feature j counts the occurrences of word w_j, and an image model whose
//! feature responds to the texture of one region only.

use image::{Rgb, RgbImage};
use interpret::lime::{LimeConfig, LimeError};
use interpret::reading::{read_image_features, read_text_features, ReadConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TARGETS: [&str; 4] = ["superb", "dull", "camera", "villain"];
const FILLER: [&str; 12] = [
    "the", "film", "is", "a", "with", "and", "story", "of", "its", "very", "plot", "cast",
];

/// Feature j = number of occurrences of TARGETS[j]; feature 4 = number of words (a nuisance
/// feature every word moves a little).
fn count_model(texts: &[String]) -> Vec<f32> {
    texts
        .iter()
        .flat_map(|t| {
            let words: Vec<&str> = t
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            let mut row: Vec<f32> = TARGETS
                .iter()
                .map(|target| words.iter().filter(|w| **w == *target).count() as f32)
                .collect();
            row.push(words.len() as f32 * 0.1);
            row
        })
        .collect()
}

fn sentences(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(8..20);
            let mut words: Vec<&str> = (0..len)
                .map(|_| FILLER[rng.random_range(0..FILLER.len())])
                .collect();
            // Most sentences carry one or two target words, some none.
            for _ in 0..rng.random_range(0..3) {
                let at = rng.random_range(0..words.len());
                words.insert(at, TARGETS[rng.random_range(0..TARGETS.len())]);
            }
            words.join(" ")
        })
        .collect()
}

#[test]
fn text_lime_ranks_the_counted_word_first_for_its_feature() {
    let texts = sentences(120, 7);
    let acts = count_model(&texts);
    let d = TARGETS.len() + 1;
    let features: Vec<usize> = (0..TARGETS.len()).collect();
    let config = ReadConfig {
        prototypes: 5,
        lime_inputs: 4,
        lime: LimeConfig {
            samples: 200,
            ..LimeConfig::default()
        },
        ..ReadConfig::default()
    };
    let mut passes = 0;
    let (readings, stats) = read_text_features(
        &texts,
        &acts,
        d,
        &features,
        &config,
        |batch| {
            passes += batch.len();
            Ok(count_model(batch))
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(stats.forward_passes, passes);
    assert_eq!(stats.forward_passes, stats.inputs * 200);
    for (j, r) in readings.iter().enumerate() {
        assert_eq!(r.feature, j);
        // Every top prototype contains the word, every bottom one does not.
        for p in &r.top {
            assert!(texts[p.index].contains(TARGETS[j]), "{}", texts[p.index]);
        }
        assert_eq!(
            r.positive_words.first().map(|w| w.word.as_str()),
            Some(TARGETS[j]),
            "feature {j}: {:?}",
            &r.positive_words[..3.min(r.positive_words.len())]
        );
        // Its LIME weight is about one occurrence's worth; other words get next to nothing.
        let w = r.positive_words[0].weight;
        assert!(w > 0.5, "weight of {} is {w}", TARGETS[j]);
        assert!(r.positive_words[1..].iter().all(|o| o.weight < 0.2 * w));
        assert!(
            r.lime_r2 > 0.9,
            "an additive model is fitted almost exactly: {}",
            r.lime_r2
        );
    }
    // Deterministic for a seed, different for another.
    let again = read_text_features(
        &texts,
        &acts,
        d,
        &features,
        &config,
        |b| Ok(count_model(b)),
        &mut |_, _| {},
    )
    .unwrap()
    .0;
    assert_eq!(readings, again);
    let other = ReadConfig {
        lime: LimeConfig {
            seed: 1,
            ..config.lime
        },
        ..config
    };
    let reseeded = read_text_features(
        &texts,
        &acts,
        d,
        &features,
        &other,
        |b| Ok(count_model(b)),
        &mut |_, _| {},
    )
    .unwrap()
    .0;
    assert_ne!(readings, reseeded);
}

#[test]
fn text_lime_passes_forward_errors_through() {
    let texts = sentences(10, 1);
    let acts = count_model(&texts);
    let err = read_text_features(
        &texts,
        &acts,
        5,
        &[0],
        &ReadConfig::default(),
        |_| Err(LimeError::Forward("backbone failed".into())),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("backbone failed"));
    let short = read_text_features(
        &texts,
        &acts[..7],
        5,
        &[0],
        &ReadConfig::default(),
        |b| Ok(count_model(b)),
        &mut |_, _| {},
    );
    assert!(short.is_err());
}

/// The region feature 0 responds to, in a 64×64 image.
const REGION: (u32, u32, u32, u32) = (8, 8, 28, 30); // x0, y0, x1, y1 (exclusive)

fn in_region(x: u32, y: u32) -> bool {
    x >= REGION.0 && x < REGION.2 && y >= REGION.1 && y < REGION.3
}

/// Flat blocks of saturated colours as a background, and a noisy gray (textured) patch in
/// REGION. LIME hides a superpixel by its mean colour (lime's default), which removes texture:
/// the feature below reads texture, so hiding the patch's superpixels lowers it.
fn textured_image(seed: u64) -> RgbImage {
    const PALETTE: [[u8; 3]; 6] = [
        [200, 30, 30],
        [30, 160, 40],
        [30, 60, 200],
        [220, 200, 20],
        [160, 30, 170],
        [20, 170, 170],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks: Vec<[u8; 3]> = (0..16)
        .map(|_| PALETTE[rng.random_range(0..PALETTE.len())])
        .collect();
    RgbImage::from_fn(64, 64, |x, y| {
        if in_region(x, y) {
            let v = (128 + rng.random_range(-50i32..=50)) as u8;
            Rgb([v, v, v])
        } else {
            Rgb(blocks[((y / 16) * 4 + x / 16) as usize])
        }
    })
}

/// Feature 0: texture (sum of |horizontal gradient|) inside REGION; feature 1: texture outside.
fn region_model(images: &[RgbImage]) -> Vec<f32> {
    images
        .iter()
        .flat_map(|img| {
            let (mut inside, mut outside) = (0f32, 0f32);
            for y in 0..img.height() {
                for x in 1..img.width() {
                    let a = img.get_pixel(x, y).0;
                    let b = img.get_pixel(x - 1, y).0;
                    let g: f32 = (0..3).map(|c| (a[c] as f32 - b[c] as f32).abs()).sum();
                    if in_region(x, y) && in_region(x - 1, y) {
                        inside += g;
                    } else {
                        outside += g;
                    }
                }
            }
            [inside / 1000.0, outside / 1000.0]
        })
        .collect()
}

#[test]
fn image_lime_top_superpixels_cover_the_region_the_feature_responds_to() {
    let images: Vec<RgbImage> = (0..6).map(textured_image).collect();
    let acts = region_model(&images);
    let config = ReadConfig {
        prototypes: 3,
        lime_inputs: 3,
        lime: LimeConfig {
            samples: 300,
            ..LimeConfig::default()
        },
        segments: 40,
        ..ReadConfig::default()
    };
    let run = || {
        read_image_features(
            &acts,
            2,
            &[0],
            &config,
            |i| Ok(images[i].clone()),
            |batch| Ok(region_model(batch)),
            &mut |_, _| {},
        )
        .unwrap()
    };
    let interpret::reading::ImageReadings {
        readings,
        segments,
        stats,
    } = run();
    assert_eq!(stats.inputs, 3);
    assert_eq!(stats.forward_passes, 900);
    let r = &readings[0];
    assert_eq!(r.image_lime.len(), 3);
    for lime in &r.image_lime {
        let seg = &segments[&lime.index];
        assert_eq!(lime.segment_weights.len(), seg.count);
        let max = lime.segment_weights.iter().cloned().fold(f32::MIN, f32::max);
        assert!(max > 0.0);
        // The superpixels LIME credits (≥ 10% of the largest weight) lie in the region and
        // cover most of it.
        let credited: Vec<bool> = lime.segment_weights.iter().map(|&w| w >= 0.1 * max).collect();
        let (mut hit, mut credited_px, mut region_px, mut region_hit) = (0, 0, 0, 0);
        for y in 0..64u32 {
            for x in 0..64u32 {
                let s = seg.labels[(y * 64 + x) as usize] as usize;
                let inside = in_region(x, y);
                region_px += inside as usize;
                if credited[s] {
                    credited_px += 1;
                    hit += inside as usize;
                    region_hit += inside as usize;
                }
            }
        }
        let precision = hit as f64 / credited_px as f64;
        let recall = region_hit as f64 / region_px as f64;
        assert!(
            precision > 0.8,
            "image {}: credited superpixels are {precision:.2} inside",
            lime.index
        );
        assert!(
            recall > 0.8,
            "image {}: they cover {recall:.2} of the region",
            lime.index
        );
    }
    let again = run().readings;
    assert_eq!(readings, again, "deterministic for a seed");
}
