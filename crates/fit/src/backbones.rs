//! The backbones `fit` can extract deep features with, behind one interface: what the features
//! are (for the cache manifest) and the feature rows of a range of examples.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use datasets::Examples;
use model_hub::ModelRef;
use solver::BackendKind;

/// `--arch`: the network family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// BERT or RoBERTa (the checkpoint's config.json says which); MiniLM is a BERT.
    Bert,
    Vision(vision::VisionArch),
    /// No network: the raw pixels scaled to [0, 1] are the features (a baseline for small
    /// image datasets such as Fashion-MNIST).
    Pixels,
}

impl FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bert" | "roberta" | "minilm" => Ok(Arch::Bert),
            "pixels" | "none" => Ok(Arch::Pixels),
            other => other.parse::<vision::VisionArch>().map(Arch::Vision).map_err(|_| {
                anyhow::anyhow!(
                    "unknown --arch `{s}`: expected bert (also roberta, minilm), resnet18, resnet34, resnet50, \
                     resnet101, resnet152, efficientnet-lite0 or pixels"
                )
            }),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Bert => f.write_str("bert"),
            Arch::Vision(v) => f.write_str(v.name()),
            Arch::Pixels => f.write_str("pixels"),
        }
    }
}

impl Arch {
    pub fn is_text(self) -> bool {
        self == Arch::Bert
    }
}

impl Backbone {
    /// Inputs per forward pass from now on (LIME sends its perturbed inputs in batches of this).
    pub fn set_batch(&mut self, n: usize) {
        let n = n.max(1);
        match self {
            Backbone::Text { batch, .. } | Backbone::Vision { batch, .. } => *batch = n,
            Backbone::Pixels { .. } => {}
        }
    }

    /// A convolutional image network (not raw pixels, not text).
    pub fn is_cnn(&self) -> bool {
        matches!(self, Backbone::Vision { .. })
    }
}

/// A network's own last layer on raw features: `logits = weight · x + bias`.
pub struct OwnHead {
    /// `[K, D]` row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// Its class names, when the weights name them.
    pub labels: Option<Vec<String>>,
}

/// What the cache manifest records about a backbone.
pub struct Description {
    pub backbone: String,
    pub weights_sha256: String,
    pub feature_mode: String,
    pub preprocessing: String,
    pub dim: usize,
}

/// A loaded backbone.
pub enum Backbone {
    Text {
        encoder: Box<bert::TextEncoder>,
        mode: bert::FeatureMode,
        batch: usize,
    },
    Vision {
        model: Box<vision::VisionModel>,
        mode: vision::FeatureMode,
        pre: vision::Preprocess,
        batch: usize,
        device: Device,
    },
    Pixels {
        dim: usize,
    },
}

impl Backbone {
    /// Load `arch` from `model` (a folder, file or hub id) with an optional feature mode.
    pub fn load(
        arch: Arch,
        model: Option<&str>,
        mode: Option<&str>,
        batch: usize,
        examples: &Examples,
        device: &Device,
    ) -> Result<Self> {
        match arch {
            Arch::Bert => {
                if !matches!(examples, Examples::Text(_)) {
                    bail!(
                        "--arch bert needs a text dataset, this one has {}",
                        examples.form()
                    );
                }
                let model = model.context("--arch bert needs --model-path (a folder or a hub id)")?;
                let reference = ModelRef::parse(model)?;
                let encoder = bert::TextEncoder::load(&reference, device)?;
                let mode = match mode {
                    Some(m) => m.parse()?,
                    None => encoder.default_mode(),
                };
                Ok(Backbone::Text {
                    encoder: Box::new(encoder),
                    mode,
                    batch,
                })
            }
            Arch::Vision(v) => {
                if matches!(examples, Examples::Text(_)) {
                    bail!("--arch {v} needs an image dataset, this one is text");
                }
                let model = model.with_context(|| {
                    format!("--arch {v} needs --model-path (a weights file, folder or hub id)")
                })?;
                let source = vision::WeightsSource::parse(model)?;
                let net = vision::VisionModel::load(v, &source, device)?;
                let mode = mode.map(str::parse).transpose()?.unwrap_or_default();
                let pre = net.preprocessing();
                Ok(Backbone::Vision {
                    model: Box::new(net),
                    mode,
                    pre,
                    batch,
                    device: device.clone(),
                })
            }
            Arch::Pixels => match examples {
                Examples::Pixels {
                    height,
                    width,
                    channels,
                    ..
                } => Ok(Backbone::Pixels {
                    dim: height * width * channels,
                }),
                other => bail!(
                    "--arch pixels needs a dataset of decoded pixels (MNIST, CIFAR-10), this one has {}",
                    other.form()
                ),
            },
        }
    }

    /// The network's own last layer on the features this backbone extracts, when it has one
    /// that reads them. BERT's `classifier` on pooler features (RoBERTa's on `roberta-dense`), a
    /// CNN's fc on its post-ReLU pooled features. This is the paper's "dense" layer: the
    /// network's original head, beside the ridge layer we fit.
    pub fn own_head(&self) -> Option<OwnHead> {
        match self {
            Backbone::Text { encoder, mode, .. } => {
                let (weight, bias, reads) = encoder.head_with_mode()?;
                (reads == *mode).then(|| OwnHead {
                    weight,
                    bias,
                    labels: encoder.labels().map(<[String]>::to_vec),
                })
            }
            Backbone::Vision { model, mode, .. } => {
                let (weight, bias) = model.head();
                (*mode == vision::FeatureMode::PostRelu).then_some(OwnHead {
                    weight,
                    bias,
                    labels: None,
                })
            }
            Backbone::Pixels { .. } => None,
        }
    }

    pub fn describe(&self) -> Description {
        match self {
            Backbone::Text { encoder, mode, .. } => Description {
                backbone: format!("bert {}", encoder.name()),
                weights_sha256: encoder.weights_fingerprint(),
                feature_mode: mode.to_string(),
                preprocessing: format!(
                    "{}, max {} tokens",
                    encoder.inputs_fingerprint(),
                    encoder.max_length()
                ),
                dim: encoder.feature_dim(*mode),
            },
            Backbone::Vision { model, mode, pre, .. } => Description {
                backbone: format!("{} {}", model.arch().name(), model.source()),
                weights_sha256: model.weights_fingerprint().to_string(),
                feature_mode: mode.to_string(),
                preprocessing: format!("{pre:?}"),
                dim: model.feature_dim(),
            },
            Backbone::Pixels { dim } => Description {
                backbone: "pixels".into(),
                weights_sha256: "none".into(),
                feature_mode: "raw".into(),
                preprocessing: "pixel / 255".into(),
                dim: *dim,
            },
        }
    }

    /// Feature rows `[range.len(), dim]` of `examples[range]`.
    pub fn extract(&self, examples: &Examples, range: Range<usize>) -> Result<Vec<f32>> {
        match (self, examples) {
            (Backbone::Text { encoder, mode, batch }, Examples::Text(texts)) => {
                let slice: Vec<&str> = texts[range].iter().map(String::as_str).collect();
                Ok(encoder.features(&slice, *mode, *batch)?.data)
            }
            (
                Backbone::Vision {
                    model,
                    mode,
                    pre,
                    batch,
                    device,
                },
                _,
            ) => {
                let mut out = Vec::with_capacity(range.len() * model.feature_dim());
                let indices: Vec<usize> = range.collect();
                let dim = model.feature_dim();
                for chunk in indices.chunks(*batch) {
                    // An image that cannot be decoded gets a NaN row: `fit` drops such rows after
                    // loading the cache and counts them, so one bad file does not stop a run.
                    let mut images = Vec::with_capacity(chunk.len());
                    let mut readable = Vec::with_capacity(chunk.len());
                    for &i in chunk {
                        let image = match examples {
                            Examples::Images(paths) => pre.load_image(&paths[i]).map_err(|e| {
                                eprintln!("warning: skipping unreadable image {}: {e}", paths[i].display());
                            }),
                            Examples::Pixels {
                                height,
                                width,
                                channels,
                                ..
                            } => {
                                let px = examples.pixels(i).expect("index in range");
                                match channels {
                                    1 => Ok(pre.from_gray_u8(px, *height, *width)?),
                                    3 => Ok(pre.from_rgb_u8(px, *height, *width)?),
                                    c => bail!("images with {c} channels are not supported"),
                                }
                            }
                            Examples::Text(_) => unreachable!("checked at load"),
                        };
                        readable.push(image.is_ok());
                        if let Ok(image) = image {
                            images.push(image);
                        }
                    }
                    let mut rows = if images.is_empty() {
                        Vec::new()
                    } else {
                        image_features(model, *mode, pre, device, &images)?
                    }
                    .into_iter();
                    for ok in readable {
                        if ok {
                            out.extend(rows.by_ref().take(dim));
                        } else {
                            out.extend(std::iter::repeat_n(f32::NAN, dim));
                        }
                    }
                }
                Ok(out)
            }
            (
                Backbone::Pixels { .. },
                Examples::Pixels {
                    data,
                    height,
                    width,
                    channels,
                },
            ) => {
                let per = height * width * channels;
                Ok(data[range.start * per..range.end * per]
                    .iter()
                    .map(|&v| v as f32 / 255.0)
                    .collect())
            }
            _ => bail!("this backbone cannot read {} examples", examples.form()),
        }
    }
}

/// Feature rows of one batch of preprocessed images (`[3, crop, crop]` each).
fn image_features(
    model: &vision::VisionModel,
    mode: vision::FeatureMode,
    pre: &vision::Preprocess,
    device: &Device,
    images: &[Vec<f32>],
) -> Result<Vec<f32>> {
    let x = pre.batch(images, device)?;
    model
        .features(x, mode)
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading features: {e:?}"))
}

/// The inputs LIME perturbs, as the network sees them.
impl Backbone {
    /// Feature rows of arbitrary sentences (LIME's perturbed texts).
    pub fn text_features(&self, texts: &[String]) -> Result<Vec<f32>> {
        match self {
            Backbone::Text { encoder, mode, batch } => {
                let slice: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok(encoder.features(&slice, *mode, *batch)?.data)
            }
            _ => bail!("this backbone reads images, not text"),
        }
    }

    /// Example `i` as the network sees it, in 8 bits: resized and center-cropped for a CNN,
    /// the raw pixels for `pixels`.
    pub fn view(&self, examples: &Examples, i: usize) -> Result<image::RgbImage> {
        let raw = match examples {
            Examples::Images(paths) => vision::preprocess::decode_rgb(&paths[i])?,
            Examples::Pixels {
                height,
                width,
                channels,
                ..
            } => {
                let px = examples.pixels(i).context("example index out of range")?;
                let data = match channels {
                    1 => px.iter().flat_map(|&p| [p, p, p]).collect(),
                    3 => px.to_vec(),
                    c => bail!("images with {c} channels are not supported"),
                };
                vision::preprocess::Rgb8 {
                    width: *width,
                    height: *height,
                    data,
                }
            }
            Examples::Text(_) => bail!("text examples have no image view"),
        };
        let seen = match self {
            Backbone::Vision { pre, .. } => pre.resize_crop(&raw),
            Backbone::Pixels { .. } => raw,
            Backbone::Text { .. } => bail!("a text backbone has no image view"),
        };
        image::RgbImage::from_raw(seen.width as u32, seen.height as u32, seen.data)
            .context("image view has the wrong number of bytes")
    }

    /// Feature rows of views made by [`Backbone::view`] (possibly perturbed), batched.
    pub fn view_features(&self, views: &[image::RgbImage]) -> Result<Vec<f32>> {
        match self {
            Backbone::Vision {
                model,
                mode,
                pre,
                batch,
                device,
            } => {
                let mut out = Vec::with_capacity(views.len() * model.feature_dim());
                for chunk in views.chunks(*batch) {
                    let images: Vec<Vec<f32>> = chunk
                        .iter()
                        .map(|v| {
                            pre.normalize(&vision::preprocess::Rgb8 {
                                width: v.width() as usize,
                                height: v.height() as usize,
                                data: v.as_raw().clone(),
                            })
                        })
                        .collect();
                    out.extend(image_features(model, *mode, pre, device, &images)?);
                }
                Ok(out)
            }
            Backbone::Pixels { dim } => {
                let mut out = Vec::with_capacity(views.len() * dim);
                for v in views {
                    let channels = dim / (v.width() * v.height()).max(1) as usize;
                    match channels {
                        1 => out.extend(v.pixels().map(|p| p.0[0] as f32 / 255.0)),
                        3 => out.extend(v.as_raw().iter().map(|&b| b as f32 / 255.0)),
                        _ => bail!(
                            "a {}x{} view does not fit {dim} pixel features",
                            v.width(),
                            v.height()
                        ),
                    }
                }
                Ok(out)
            }
            Backbone::Text { .. } => bail!("a text backbone does not read images"),
        }
    }
}

impl Backbone {
    /// Gradient-ascent visualizations of `features` (image backbones only; design §4). The
    /// ascent maximizes the *pre-activation* of each feature (before the last ReLU/ReLU6): the
    /// pooled post-ReLU feature has no gradient where it is 0 and, for ReLU6, where it saturates
    /// at 6, so ascent on it stalls at a gray start or a saturated image. Consumes the backbone:
    /// its weights move to the autodiff wrapper of its device.
    pub fn visualize(
        self,
        features: &[usize],
        config: &interpret::featvis::FeatVisConfig,
        batch: usize,
    ) -> Result<Vec<interpret::featvis::Visualization>> {
        match self {
            Backbone::Vision {
                model, pre, device, ..
            } => {
                let model = model.to_device(&device.clone().autodiff());
                let mode = vision::FeatureMode::PreRelu;
                let mut out = Vec::with_capacity(features.len());
                for chunk in features.chunks(batch.max(1)) {
                    out.extend(interpret::featvis::visualize(
                        chunk,
                        config,
                        pre.mean,
                        pre.std,
                        &device,
                        |x| model.features(x, mode),
                    )?);
                }
                Ok(out)
            }
            _ => bail!("feature visualization needs an image backbone (resnet*, efficientnet-lite0)"),
        }
    }
}

/// Perturbed inputs per forward pass for LIME: `asked`, else what `cargo run --release -p fit
/// --example bench_lime` measured fastest on the CPU backends (flex, 2 cores: MiniLM 112
/// passes/s at 16 vs 77 at 64 and 51 at 1; EfficientNet-Lite0 at 224² 21.7 passes/s at 1 vs
/// 15.8 at 8 and 13.8 at 32: big batches of large activations fall out of cache), else (GPU and
/// libtorch backends, which gain from large batches) the run's extraction batch.
pub fn lime_batch(asked: Option<usize>, backend: BackendKind, text: bool, run_batch: usize) -> usize {
    match (asked, backend) {
        (Some(n), _) => n.max(1),
        (None, BackendKind::Flex | BackendKind::Ndarray) => {
            if text {
                16
            } else {
                1
            }
        }
        (None, _) => run_batch.max(1),
    }
}

/// The backbone's description with paths cut to their file names, for plot titles.
pub fn short_name(backbone: &str) -> String {
    backbone
        .split_whitespace()
        .map(|t| {
            std::path::Path::new(t)
                .file_name()
                .and_then(|f| f.to_str())
                .filter(|_| t.contains('/') && std::path::Path::new(t).exists())
                .unwrap_or(t)
        })
        .collect::<Vec<_>>()
        .join(" ")
}
