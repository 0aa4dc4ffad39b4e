//! `fit predict --run DIR INPUT…`: the debuggable network on new inputs. Each input goes
//! through the run's backbone; the sparse decision layer's class and probability come with the
//! evidence a person reads: the features it used for that class ranked by contribution
//! (weight × standardized activation, which with the bias sum to the logit), and for each
//! feature what the report shows of it (word-cloud words or prototype images, a link to its
//! card). The dense layer's (and the network's own head's) verdict stand beside it.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use datasets::Examples;
use serde::{Deserialize, Serialize};
use solver::{BackendKind, Family, Layer};

use crate::backbones::Backbone;
use crate::progress::Progress;
use crate::recipe::RunRecipe;
use crate::run_folder::{InterpretOutput, LayerKind, RunFolder};

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A finished `fit` run folder (it holds run.json, metrics.json and the layers).
    #[arg(long)]
    pub run: PathBuf,
    /// Sentences (text runs) or image files and folders (image runs). With none, the inputs
    /// are read from `--file`, else from stdin, one per line.
    pub inputs: Vec<String>,
    /// A file with one input per line (a sentence, or an image path); `-` reads stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Features shown per input, largest contribution first (`--json` lists them all).
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Print the predictions as JSON (one array) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a page with each input beside its top features' pictures and card links.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Inputs per forward pass (default: the run's extraction batch).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Compute backend for the backbone.
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
    #[arg(long, short)]
    pub quiet: bool,
}

/// What a run reads: sentences or image files.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    Text(Vec<String>),
    Images(Vec<PathBuf>),
}

impl Inputs {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Text(t) => t.len(),
            Inputs::Images(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Input `i` as the output names it: the sentence or the path.
    pub fn label(&self, i: usize) -> String {
        match self {
            Inputs::Text(t) => t[i].clone(),
            Inputs::Images(p) => p[i].display().to_string(),
        }
    }

    /// Sentences as given (each must have a word) or image paths, folders expanded to the
    /// images inside them (recursively, sorted). `source` names where the entries came from.
    pub fn parse(entries: Vec<String>, text: bool, source: &str) -> Result<Self> {
        if entries.is_empty() {
            bail!("no inputs in {source}");
        }
        if text {
            if let Some(i) = entries.iter().position(|e| e.trim().is_empty()) {
                bail!(
                    "input {} of {source} is empty: give one sentence per input",
                    i + 1
                );
            }
            return Ok(Inputs::Text(entries));
        }
        let mut paths = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.trim().is_empty() {
                bail!(
                    "input {} of {source} is empty: give one image path per input",
                    i + 1
                );
            }
            let p = PathBuf::from(e);
            if p.is_dir() {
                let before = paths.len();
                image_files(&p, &mut paths)?;
                if paths.len() == before {
                    bail!(
                        "{} holds no image files (.jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .ppm)",
                        p.display()
                    );
                }
            } else if p.is_file() {
                paths.push(p);
            } else {
                bail!("{} does not exist", p.display());
            }
        }
        Ok(Inputs::Images(paths))
    }
}

const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "ppm"];

/// The image files under `dir`, sorted by path, appended to `out`.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            image_files(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// A layer's verdict on one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub class: usize,
    pub name: String,
    /// Softmax probability (multinomial runs) or the class's sigmoid (multilabel runs).
    pub probability: f64,
    pub logit: f64,
}

/// One feature's share of the predicted class's logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: usize,
    /// The sparse layer's weight of this feature for the predicted class.
    pub weight: f32,
    /// The feature's activation, standardized as the layer reads it.
    pub activation: f32,
    /// The backbone's raw activation.
    pub raw_activation: f32,
    /// `weight × activation`.
    pub contribution: f64,
    /// Words that raise the feature (its word cloud, from `fit interpret`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<String>,
    /// Its top-activating images (files, or the report's prototype picture).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prototypes: Vec<String>,
    /// Its word cloud picture (text runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_cloud: Option<String>,
    /// Its card in report.html (or the class's section when the card is not shown there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
}

/// The debuggable network's answer for one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub input: String,
    pub sparse: Verdict,
    /// The sparse layer's bias for its class: `logit = bias + Σ contributions`.
    pub bias: f32,
    /// Every feature the sparse layer uses for its class, largest |contribution| first.
    pub evidence: Vec<Contribution>,
    pub dense: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Verdict>,
    /// The sparse layer's logits of every class (what an exported network computes).
    pub logits: Vec<f64>,
}

/// A finished run loaded to predict: its backbone, layers and what `fit interpret` read.
pub struct Predictor {
    pub folder: RunFolder,
    pub recipe: RunRecipe,
    pub family: Family,
    pub sparse: Layer,
    pub dense: Layer,
    pub head: Option<Layer>,
    /// `fit interpret`'s readings, when it has run.
    pub interpretation: Option<InterpretOutput>,
    /// The image files of the split the readings' prototypes index (image-folder runs).
    prototype_files: Option<Vec<PathBuf>>,
    backbone: Backbone,
}

/// Words and prototype images listed per feature.
const SHOWN_PER_FEATURE: usize = 5;

impl Predictor {
    /// Open a finished run and load its backbone on `device`.
    pub fn open(run: &Path, device: &burn::tensor::Device, batch: Option<usize>) -> Result<Self> {
        let (folder, recipe) = RunFolder::open_finished(run)?;
        let sparse = folder.layer(LayerKind::Selected)?;
        let dense = folder.layer(LayerKind::Dense)?;
        let head = folder.head()?;
        let family = folder.family()?;
        if !matches!(family, Family::Multinomial | Family::Multilabel) {
            bail!("`fit predict` reads classifiers; this run's path is a {family:?} regression");
        }
        let interpretation = folder.interpretation()?;
        let arch = recipe.arch()?;
        let mut backbone = match arch {
            crate::backbones::Arch::Pixels => Backbone::Pixels { dim: sparse.d },
            _ => {
                let form = if arch.is_text() {
                    Examples::Text(Vec::new())
                } else {
                    Examples::Images(Vec::new())
                };
                recipe.load_backbone(&form, device)?
            }
        };
        backbone.set_batch(batch.unwrap_or(recipe.extract_batch_size));
        if backbone.describe().dim != sparse.d {
            bail!(
                "the run's backbone now gives {} features, its layers read {}: the weights at {} changed since the run",
                backbone.describe().dim,
                sparse.d,
                recipe.model_path.as_deref().unwrap_or("?")
            );
        }
        // Runs interpreted before interpret.json kept each prototype's file: list the split.
        let files_recorded = |i: &InterpretOutput| i.examples.values().any(|e| e.file.is_some());
        let prototype_files = match &interpretation {
            Some(i) if !arch.is_text() && !files_recorded(i) => {
                let data = recipe.load_data()?;
                let set = if i.split == "test" { data.test } else { data.val };
                match set.map(|s| s.examples) {
                    Some(Examples::Images(paths)) => Some(paths),
                    _ => None,
                }
            }
            _ => None,
        };
        Ok(Predictor {
            folder,
            recipe,
            family,
            sparse,
            dense,
            head,
            interpretation,
            prototype_files,
            backbone,
        })
    }

    pub fn is_text(&self) -> bool {
        matches!(self.backbone, Backbone::Text { .. })
    }

    /// The backbone's raw feature rows `[n, d]` of `inputs`, in chunks with progress; an input
    /// it cannot read is an error naming it.
    pub fn features(&self, inputs: &Inputs, show_progress: bool) -> Result<Vec<f32>> {
        let d = self.sparse.d;
        let chunk = (self.recipe.extract_batch_size.max(1) * 4).max(32);
        let mut progress = Progress::new(inputs.len(), "features", show_progress && inputs.len() > chunk);
        let mut rows = Vec::with_capacity(inputs.len() * d);
        match inputs {
            Inputs::Text(texts) => {
                if !self.is_text() {
                    bail!("this run reads images; give image files or folders");
                }
                for part in texts.chunks(chunk) {
                    rows.extend(self.backbone.text_features(part)?);
                    progress.set(rows.len() / d);
                }
            }
            Inputs::Images(paths) => {
                if self.is_text() {
                    bail!("this run reads text; give sentences");
                }
                for part in paths.chunks(chunk) {
                    let examples = Examples::Images(part.to_vec());
                    let views = (0..part.len())
                        .map(|i| {
                            self.backbone
                                .view(&examples, i)
                                .with_context(|| format!("cannot read the image {}", part[i].display()))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    rows.extend(self.backbone.view_features(&views)?);
                    progress.set(rows.len() / d);
                }
            }
        }
        progress.finish();
        if rows.len() != inputs.len() * d {
            bail!(
                "the backbone gave {} values for {} inputs of {d} features",
                rows.len(),
                inputs.len()
            );
        }
        if let Some(i) = rows
            .chunks_exact(d)
            .position(|r| r.iter().any(|v| !v.is_finite()))
        {
            bail!("the backbone's features of {} are not finite", inputs.label(i));
        }
        Ok(rows)
    }

    /// A layer's verdict on one raw row.
    fn verdict(&self, layer: &Layer, raw_row: &[f32]) -> Verdict {
        self.verdict_of(&debug::logits_f64(layer, raw_row))
    }

    /// The class, probability and logit a layer's `logits` give.
    fn verdict_of(&self, logits: &[f64]) -> Verdict {
        let class = debug::argmax(logits);
        let probability = match self.family {
            Family::Multinomial => debug::softmax(logits)[class],
            _ => 1.0 / (1.0 + (-logits[class]).exp()),
        };
        Verdict {
            class,
            name: self.class_name(class),
            probability,
            logit: logits[class],
        }
    }

    fn class_name(&self, c: usize) -> String {
        self.recipe
            .class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    }

    /// The prediction for one raw feature row, with its evidence.
    pub fn explain(&self, input: String, raw_row: &[f32]) -> Prediction {
        let logits = debug::logits_f64(&self.sparse, raw_row);
        let sparse = self.verdict_of(&logits);
        let c = sparse.class;
        let d = self.sparse.d;
        let z = debug::standardize(&self.sparse, raw_row);
        let weights = &self.sparse.weight[c * d..(c + 1) * d];
        let mut evidence: Vec<Contribution> = (0..d)
            .filter(|&j| weights[j] != 0.0)
            .map(|j| self.contribution(c, j, weights[j], z[j], raw_row[j]))
            .collect();
        evidence.sort_by(|a, b| {
            b.contribution
                .abs()
                .total_cmp(&a.contribution.abs())
                .then(a.feature.cmp(&b.feature))
        });
        Prediction {
            input,
            logits,
            bias: self.sparse.bias[c],
            evidence,
            dense: self.verdict(&self.dense, raw_row),
            head: self.head.as_ref().map(|h| self.verdict(h, raw_row)),
            sparse,
        }
    }

    /// Feature `j`'s share of class `c`'s logit and what the report shows of it.
    fn contribution(&self, c: usize, j: usize, weight: f32, z: f32, raw: f32) -> Contribution {
        let mut out = Contribution {
            feature: j,
            weight,
            activation: z,
            raw_activation: raw,
            contribution: weight as f64 * z as f64,
            words: Vec::new(),
            prototypes: Vec::new(),
            word_cloud: None,
            card: None,
        };
        let Some(interp) = &self.interpretation else {
            return out;
        };
        let in_run = |rel: &str| self.folder.dir.join(rel).display().to_string();
        if let Some(r) = interp.reading(j) {
            out.words = r
                .positive_words
                .iter()
                .take(SHOWN_PER_FEATURE)
                .map(|w| w.word.clone())
                .collect();
            out.prototypes = r
                .top
                .iter()
                .filter_map(|p| match &self.prototype_files {
                    Some(files) => files.get(p.index).map(|f| f.display().to_string()),
                    None => interp.examples.get(&p.index).and_then(|e| e.file.clone()),
                })
                .take(SHOWN_PER_FEATURE)
                .collect();
        }
        if let Some(pics) = interp.pictures.get(&j) {
            out.word_cloud = pics.word_cloud.as_deref().map(in_run);
            if out.prototypes.is_empty() && !self.is_text() {
                out.prototypes.extend(pics.prototypes.as_deref().map(in_run));
            }
        }
        if self.folder.report_path().is_file() {
            let name = self.class_name(c);
            let shown = interp
                .classes
                .get(c)
                .is_some_and(|cf| cf.sparse[..cf.sparse_shown].iter().any(|f| f.feature == j));
            let id = if shown {
                interpret::report::card_id(&name, "sparse", j)
            } else {
                interpret::report::anchor(&name)
            };
            out.card = Some(format!("{}#{id}", self.folder.report_path().display()));
        }
        out
    }

    /// Predictions with evidence for all `inputs`.
    pub fn predict(&self, inputs: &Inputs, show_progress: bool) -> Result<Vec<Prediction>> {
        let rows = self.features(inputs, show_progress)?;
        Ok(rows
            .chunks_exact(self.sparse.d)
            .enumerate()
            .map(|(i, row)| self.explain(inputs.label(i), row))
            .collect())
    }
}

/// The inputs of `fit predict`: its arguments, else `--file`, else stdin.
fn gather_inputs(args: &PredictArgs, text: bool) -> Result<Inputs> {
    if !args.inputs.is_empty() {
        if args.file.is_some() {
            bail!("give inputs as arguments or with --file, not both");
        }
        return Inputs::parse(args.inputs.clone(), text, "the arguments");
    }
    let (content, source) = match args.file.as_deref() {
        Some(p) if p != Path::new("-") => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        _ => {
            if args.file.is_none() && std::io::stdin().is_terminal() {
                bail!("no inputs: give sentences or image paths as arguments, --file FILE, or pipe them on stdin");
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read stdin")?;
            (s, "stdin".to_string())
        }
    };
    let lines: Vec<String> = content
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    // A final newline ends the last line; it is not an empty input.
    Inputs::parse(lines, text, &source)
}

/// One prediction as text: the verdicts, then the top features with what they are.
pub fn render_text(p: &Prediction, top: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", p.input);
    let _ = write!(
        s,
        "  sparse: {} (p = {:.3})   dense: {} ({:.3})",
        p.sparse.name, p.sparse.probability, p.dense.name, p.dense.probability
    );
    if let Some(h) = &p.head {
        let _ = write!(s, "   head: {} ({:.3})", h.name, h.probability);
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  logit {:.4} = bias {:+.4} + {} feature{}:",
        p.sparse.logit,
        p.bias,
        p.evidence.len(),
        if p.evidence.len() == 1 { "" } else { "s" }
    );
    for e in p.evidence.iter().take(top) {
        let mut line = format!(
            "    {:+9.4}  f{:<5} weight {:+.4} × activation {:+.3}",
            e.contribution, e.feature, e.weight, e.activation
        );
        if !e.words.is_empty() {
            let _ = write!(line, "  words: {}", e.words.join(", "));
        }
        if !e.prototypes.is_empty() {
            let _ = write!(line, "  prototypes: {}", e.prototypes.join(" "));
        }
        if let Some(card) = &e.card {
            let _ = write!(line, "  {card}");
        }
        let _ = writeln!(s, "{line}");
    }
    if p.evidence.len() > top {
        let rest: f64 = p.evidence[top..].iter().map(|e| e.contribution).sum();
        let _ = writeln!(
            s,
            "    {:+9.4}  the other {} features",
            rest,
            p.evidence.len() - top
        );
    }
    s
}

/// A page with each input beside its top features' pictures and card links.
pub fn render_html(predictions: &[Prediction], top: usize, images: bool, run: &Path) -> String {
    use interpret::report::escape;
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fit predict</title><style>\
         body{font-family:sans-serif;margin:1.5em;max-width:80em}\
         .input{border-top:1px solid #ccc;padding:1em 0;display:flex;gap:1.5em}\
         .input>img{width:10em;align-self:flex-start;image-rendering:pixelated}\
         table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;vertical-align:top}\
         .pos{color:#1a7f37}.neg{color:#b42318}td img{max-height:6em;max-width:100%}\
         </style></head><body>\n",
    );
    let _ = writeln!(
        h,
        "<h1>Predictions of {}</h1><p>Each feature's contribution is the sparse layer's weight × the feature's standardized activation; with the bias they sum to the logit.</p>",
        escape(&run.display().to_string())
    );
    for p in predictions {
        h.push_str("<div class=\"input\">");
        if images {
            let _ = write!(
                h,
                "<img src=\"{}\" alt=\"the input image\">",
                escape(&absolute(&p.input))
            );
        }
        h.push_str("<div>");
        if !images {
            let _ = write!(h, "<blockquote>{}</blockquote>", escape(&p.input));
        } else {
            let _ = write!(h, "<p><code>{}</code></p>", escape(&p.input));
        }
        let _ = write!(
            h,
            "<p><b>sparse: {} (p = {:.3})</b> · dense: {} ({:.3})",
            escape(&p.sparse.name),
            p.sparse.probability,
            escape(&p.dense.name),
            p.dense.probability
        );
        if let Some(hd) = &p.head {
            let _ = write!(h, " · head: {} ({:.3})", escape(&hd.name), hd.probability);
        }
        let _ = write!(
            h,
            "</p><p>logit {:.4} = bias {:+.4} + {} features</p><table><tr><th>contribution</th><th>feature</th><th>weight × activation</th><th>what it responds to</th></tr>",
            p.sparse.logit,
            p.bias,
            p.evidence.len()
        );
        for e in p.evidence.iter().take(top) {
            let class = if e.contribution >= 0.0 { "pos" } else { "neg" };
            let feature = match &e.card {
                Some(card) => format!("<a href=\"{}\">f{}</a>", escape(&absolute(card)), e.feature),
                None => format!("f{}", e.feature),
            };
            let mut what = escape(&e.words.join(", "));
            for pic in e.word_cloud.iter().chain(e.prototypes.iter().take(3)) {
                let _ = write!(
                    what,
                    " <img src=\"{}\" alt=\"feature {}\">",
                    escape(&absolute(pic)),
                    e.feature
                );
            }
            let _ = write!(
                h,
                "<tr><td class=\"{class}\">{:+.4}</td><td>{feature}</td><td>{:+.4} × {:+.3}</td><td>{what}</td></tr>",
                e.contribution, e.weight, e.activation
            );
        }
        h.push_str("</table></div></div>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// A path (with an optional `#fragment`) made absolute, so the page finds it from anywhere.
fn absolute(p: &str) -> String {
    let (path, fragment) = match p.split_once('#') {
        Some((a, b)) => (a, format!("#{b}")),
        None => (p, String::new()),
    };
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    format!("{}{fragment}", abs.display())
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (_, recipe) = RunFolder::open_finished(&args.run)?;
    // The inputs first: a bad one fails before the network loads.
    let inputs = gather_inputs(&args, recipe.arch()?.is_text())?;
    let device = args.backend.device()?;
    let predictor = Predictor::open(&args.run, &device, args.batch_size)?;
    if !args.quiet && predictor.interpretation.is_none() {
        eprintln!(
            "note: run `fit interpret --run {}` to see what each feature responds to",
            args.run.display()
        );
    }
    let predictions = predictor.predict(&inputs, !args.quiet)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&predictions)?);
    } else {
        for p in &predictions {
            println!("{}", render_text(p, args.top));
        }
    }
    if let Some(path) = &args.html {
        let page = render_html(&predictions, args.top, !predictor.is_text(), &args.run);
        solver::io::write_atomic(path, page.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !args.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
