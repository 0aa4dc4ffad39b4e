//! The Stanford Sentiment Treebank: the original release and GLUE's SST-2 TSVs.
//!
//! **Original release** (`stanfordSentimentTreebank/`):
//! - `dictionary.txt`: `phrase|phrase id`, no header;
//! - `sentiment_labels.txt`: header `phrase ids|sentiment values`, then `id|value` with value in [0, 1];
//! - `datasetSentences.txt`: header `sentence_index\tsentence`;
//! - `datasetSplit.txt`: header `sentence_index,splitset_label`, 1 = train, 2 = test, 3 = dev.
//!
//! A sentence's label is the sentiment value of the dictionary phrase equal to it, made binary by
//! [`SstThresholds`] (neutral sentences are dropped and counted). `datasetSentences.txt` writes
//! brackets as PTB escapes (`-LRB-`) and has UTF-8 read as Latin-1 (`Ã©` for `é`) where
//! `dictionary.txt` has the plain forms, so a sentence not found as it is gets looked up again after
//! [`normalize_sst`] on both sides; sentences still not found are dropped and reported. The text
//! returned is the normalised sentence.
//!
//! **GLUE SST-2**: `train.tsv` and `dev.tsv` with header `sentence\tlabel` (0/1); `test.tsv` with
//! header `index\tsentence` and no labels ([`read_sst2_unlabeled`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{excerpt, DatasetError};
use crate::text::{normalize_sst, read_lines};
use crate::types::{Examples, LabeledSet, Labels, SstThresholds};

/// Binary sentiment class names: label 0, label 1.
pub const SENTIMENT_CLASSES: [&str; 2] = ["negative", "positive"];

fn sentiment_names() -> Vec<String> {
    SENTIMENT_CLASSES.iter().map(|s| s.to_string()).collect()
}

/// The folder with the four files: `path` or `path/stanfordSentimentTreebank`.
pub fn sst_dir(path: &Path) -> PathBuf {
    let inner = path.join("stanfordSentimentTreebank");
    if !path.join("dictionary.txt").is_file() && inner.is_dir() {
        inner
    } else {
        path.to_path_buf()
    }
}

/// What happened to each sentence of the original release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SstReport {
    /// Sentences in `datasetSentences.txt`.
    pub sentences: usize,
    /// Found only after normalisation (PTB escapes, mojibake).
    pub matched_after_normalizing: usize,
    /// Sentence indices not in the dictionary even after normalisation (dropped).
    pub not_in_dictionary: Vec<u64>,
    /// Sentence indices whose phrase id has no sentiment value (dropped).
    pub no_sentiment: Vec<u64>,
    /// Sentence indices absent from `datasetSplit.txt` (dropped).
    pub no_split: Vec<u64>,
    /// Neutral sentences dropped, per split (train, dev, test).
    pub neutral_dropped: [usize; 3],
    /// Sentences kept, per split (train, dev, test).
    pub kept: [usize; 3],
}

/// The three splits of the original release, binary labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sst {
    pub train: LabeledSet,
    pub dev: LabeledSet,
    pub test: LabeledSet,
    pub report: SstReport,
}

fn need(dir: &Path, name: &str) -> Result<PathBuf, DatasetError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(DatasetError::MissingFile {
            path: p,
            what: "file of the SST release".to_string(),
        })
    }
}

/// Lines after an optional header whose first field is `header_start` (matched case-insensitively).
fn body<'a>(lines: &'a [String], header_start: &str) -> (usize, &'a [String]) {
    match lines.first() {
        Some(l) if l.trim_start().to_ascii_lowercase().starts_with(header_start) => (1, &lines[1..]),
        _ => (0, lines),
    }
}

fn parse_u64(path: &Path, line: u64, field: &str, what: &str) -> Result<u64, DatasetError> {
    field.trim().parse::<u64>().map_err(|_| {
        DatasetError::malformed(path, line, format!("{what} {:?} is not a number", excerpt(field)))
    })
}

/// Load the original release from `path` (see [`sst_dir`]).
pub fn load_sst(path: &Path, thresholds: SstThresholds) -> Result<Sst, DatasetError> {
    let ordered = thresholds.negative_at_most.is_finite()
        && thresholds.positive_above.is_finite()
        && thresholds.negative_at_most <= thresholds.positive_above;
    if !ordered {
        return Err(DatasetError::InvalidOption(format!(
            "SST thresholds must be finite with negative_at_most ({}) <= positive_above ({})",
            thresholds.negative_at_most, thresholds.positive_above
        )));
    }
    let dir = sst_dir(path);
    let dict_p = need(&dir, "dictionary.txt")?;
    let labels_p = need(&dir, "sentiment_labels.txt")?;
    let sent_p = need(&dir, "datasetSentences.txt")?;
    let split_p = need(&dir, "datasetSplit.txt")?;

    // dictionary.txt: phrase|id (the phrase may itself hold '|', the id is after the last one).
    let mut dict: HashMap<String, u64> = HashMap::new();
    let mut dict_norm: HashMap<String, u64> = HashMap::new();
    for (i, line) in read_lines(&dict_p)?.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let ln = i as u64 + 1;
        let (phrase, id) = line
            .rsplit_once('|')
            .ok_or_else(|| DatasetError::malformed(&dict_p, ln, format!("no '|' in {:?}", excerpt(line))))?;
        let id = parse_u64(&dict_p, ln, id, "phrase id")?;
        dict_norm.entry(normalize_sst(phrase)).or_insert(id);
        dict.entry(phrase.to_string()).or_insert(id);
    }

    // sentiment_labels.txt: id|value.
    let lines = read_lines(&labels_p)?;
    let (skip, rows) = body(&lines, "phrase ids");
    let mut sentiment: HashMap<u64, f64> = HashMap::with_capacity(rows.len());
    for (i, line) in rows.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let ln = (i + skip) as u64 + 1;
        let (id, value) = line.split_once('|').ok_or_else(|| {
            DatasetError::malformed(&labels_p, ln, format!("no '|' in {:?}", excerpt(line)))
        })?;
        let id = parse_u64(&labels_p, ln, id, "phrase id")?;
        let v: f64 = value.trim().parse().map_err(|_| {
            DatasetError::malformed(
                &labels_p,
                ln,
                format!("sentiment value {:?} is not a number", excerpt(value)),
            )
        })?;
        if !(0.0..=1.0).contains(&v) {
            return Err(DatasetError::malformed(
                &labels_p,
                ln,
                format!("sentiment value {v} outside [0, 1]"),
            ));
        }
        sentiment.insert(id, v);
    }

    // datasetSplit.txt: index,split.
    let lines = read_lines(&split_p)?;
    let (skip, rows) = body(&lines, "sentence_index");
    let mut split_of: HashMap<u64, usize> = HashMap::with_capacity(rows.len());
    for (i, line) in rows.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let ln = (i + skip) as u64 + 1;
        let (idx, s) = line
            .split_once(',')
            .ok_or_else(|| DatasetError::malformed(&split_p, ln, format!("no ',' in {:?}", excerpt(line))))?;
        let idx = parse_u64(&split_p, ln, idx, "sentence index")?;
        let slot = match s.trim() {
            "1" => 0, // train
            "3" => 1, // dev
            "2" => 2, // test
            other => {
                return Err(DatasetError::malformed(
                    &split_p,
                    ln,
                    format!(
                        "split label {:?} is not 1 (train), 2 (test) or 3 (dev)",
                        excerpt(other)
                    ),
                ))
            }
        };
        split_of.insert(idx, slot);
    }

    // datasetSentences.txt: index<TAB>sentence.
    let lines = read_lines(&sent_p)?;
    let (skip, rows) = body(&lines, "sentence_index");
    let mut report = SstReport::default();
    let mut texts: [Vec<String>; 3] = Default::default();
    let mut labels: [Vec<u32>; 3] = Default::default();
    for (i, line) in rows.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let ln = (i + skip) as u64 + 1;
        let (idx, sentence) = line
            .split_once('\t')
            .ok_or_else(|| DatasetError::malformed(&sent_p, ln, format!("no tab in {:?}", excerpt(line))))?;
        let idx = parse_u64(&sent_p, ln, idx, "sentence index")?;
        report.sentences += 1;
        let normalized = normalize_sst(sentence);
        let id = match dict.get(sentence) {
            Some(&id) => id,
            None => match dict.get(&normalized).or_else(|| dict_norm.get(&normalized)) {
                Some(&id) => {
                    report.matched_after_normalizing += 1;
                    id
                }
                None => {
                    report.not_in_dictionary.push(idx);
                    continue;
                }
            },
        };
        let Some(&value) = sentiment.get(&id) else {
            report.no_sentiment.push(idx);
            continue;
        };
        let Some(&slot) = split_of.get(&idx) else {
            report.no_split.push(idx);
            continue;
        };
        match thresholds.label(value) {
            Some(y) => {
                texts[slot].push(normalized);
                labels[slot].push(y);
                report.kept[slot] += 1;
            }
            None => report.neutral_dropped[slot] += 1,
        }
    }
    if report.kept[0] == 0 {
        return Err(DatasetError::NoExamples {
            path: sent_p,
            what: format!(
                "no training sentence kept of {} ({} not in dictionary.txt, {} neutral)",
                report.sentences,
                report.not_in_dictionary.len(),
                report.neutral_dropped[0]
            ),
        });
    }
    let [t0, t1, t2] = texts;
    let [l0, l1, l2] = labels;
    let set = |t: Vec<String>, l: Vec<u32>| LabeledSet {
        examples: Examples::Text(t),
        labels: Labels::Class(l),
        class_names: sentiment_names(),
    };
    Ok(Sst {
        train: set(t0, l0),
        dev: set(t1, l1),
        test: set(t2, l2),
        report,
    })
}

/// Split a TSV line into fields (GLUE's TSVs are not quoted: a tab always separates).
fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

fn header_index(path: &Path, header: &[&str], wanted: &[&str]) -> Result<Vec<usize>, DatasetError> {
    let found: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    let mut idx = Vec::new();
    let mut missing = Vec::new();
    for w in wanted {
        match found.iter().position(|h| h == w) {
            Some(i) => idx.push(i),
            None => missing.push(w.to_string()),
        }
    }
    if missing.is_empty() {
        Ok(idx)
    } else {
        Err(DatasetError::MissingColumns {
            path: path.to_path_buf(),
            missing,
            found,
        })
    }
}

/// Read a labelled GLUE SST-2 TSV (`train.tsv`, `dev.tsv`): header with `sentence` and `label`
/// columns, labels 0 (negative) / 1 (positive).
pub fn read_sst2_tsv(path: &Path) -> Result<LabeledSet, DatasetError> {
    let lines = read_lines(path)?;
    let Some(head) = lines.first() else {
        return Err(DatasetError::malformed(
            path,
            1,
            "empty file: expected header `sentence<TAB>label`",
        ));
    };
    let header = fields(head);
    let cols = header_index(path, &header, &["sentence", "label"])?;
    let (si, li) = (cols[0], cols[1]);
    let mut texts = Vec::with_capacity(lines.len());
    let mut labels = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let ln = i as u64 + 1;
        let f = fields(line);
        if f.len() != header.len() {
            return Err(DatasetError::malformed(
                path,
                ln,
                format!("{} tab-separated fields, header has {}", f.len(), header.len()),
            ));
        }
        let label = f[li].trim();
        let y: i64 = label.parse().map_err(|_| {
            DatasetError::malformed(path, ln, format!("label {:?} is not an integer", excerpt(label)))
        })?;
        if !(0..=1).contains(&y) {
            return Err(DatasetError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: (labels.len()) as u64,
                label: y,
                classes: 2,
            });
        }
        texts.push(f[si].trim().to_string());
        labels.push(y as u32);
    }
    if texts.is_empty() {
        return Err(DatasetError::NoExamples {
            path: path.to_path_buf(),
            what: "header only".to_string(),
        });
    }
    Ok(LabeledSet {
        examples: Examples::Text(texts),
        labels: Labels::Class(labels),
        class_names: sentiment_names(),
    })
}

/// Read GLUE's unlabelled SST-2 `test.tsv` (header `index\tsentence`): `(index, sentence)` pairs.
pub fn read_sst2_unlabeled(path: &Path) -> Result<Vec<(u64, String)>, DatasetError> {
    let lines = read_lines(path)?;
    let Some(head) = lines.first() else {
        return Err(DatasetError::malformed(
            path,
            1,
            "empty file: expected header `index<TAB>sentence`",
        ));
    };
    let header = fields(head);
    let cols = header_index(path, &header, &["index", "sentence"])?;
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let ln = i as u64 + 1;
        let f = fields(line);
        if f.len() != header.len() {
            return Err(DatasetError::malformed(
                path,
                ln,
                format!("{} tab-separated fields, header has {}", f.len(), header.len()),
            ));
        }
        let idx = parse_u64(path, ln, f[cols[0]], "index")?;
        out.push((idx, f[cols[1]].trim().to_string()));
    }
    Ok(out)
}
