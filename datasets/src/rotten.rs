//! Rotten Tomatoes sentence snippets rated by humans (Hutto & Gilbert, ICWSM 2014):
//! `movieReviewSnippets_GroundTruth.txt`, one `id<TAB>mean rating<TAB>text` per line, no header,
//! UTF-8 with CRLF line ends, ratings in [−4, 4]. The label is the sign of the rating (1 positive,
//! 0 negative); zero ratings are dropped and counted. These are the sentences SST was built from.

use std::path::{Path, PathBuf};

use crate::error::{excerpt, DatasetError};
use crate::sst::SENTIMENT_CLASSES;
use crate::text::read_lines;
use crate::types::{Examples, LabeledSet, Labels};

/// The file's name in the ICWSM 2014 archive.
pub const ROTTEN_TOMATOES_FILE: &str = "movieReviewSnippets_GroundTruth.txt";

/// Counts from one read of the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RottenTomatoesReport {
    /// Data rows read (blank lines and a header, if any, not counted).
    pub rows: usize,
    pub positives: usize,
    pub negatives: usize,
    /// Rows rated exactly 0, dropped.
    pub zeros_dropped: usize,
}

/// `path` when it is a file; else the snippets file in `path` or in `path/hutto_ICWSM_2014`.
pub fn rotten_tomatoes_file(path: &Path) -> PathBuf {
    if path.is_file() {
        return path.to_path_buf();
    }
    let direct = path.join(ROTTEN_TOMATOES_FILE);
    let nested = path.join("hutto_ICWSM_2014").join(ROTTEN_TOMATOES_FILE);
    if !direct.is_file() && nested.is_file() {
        nested
    } else {
        direct
    }
}

/// Read the snippets file (see [`rotten_tomatoes_file`] for where it is looked for).
pub fn read_rotten_tomatoes(path: &Path) -> Result<(LabeledSet, RottenTomatoesReport), DatasetError> {
    let file = rotten_tomatoes_file(path);
    if !file.is_file() {
        return Err(DatasetError::MissingFile {
            path: file,
            what: "Rotten Tomatoes snippets file".to_string(),
        });
    }
    let lines = read_lines(&file)?;
    let mut report = RottenTomatoesReport::default();
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let ln = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let (id, rating, text) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => {
                return Err(DatasetError::malformed(
                    &file,
                    ln,
                    format!("expected id<TAB>rating<TAB>text, got {:?}", excerpt(line)),
                ))
            }
        };
        let r: f64 = match rating.trim().parse() {
            Ok(r) => r,
            Err(_) if i == 0 && id.trim().parse::<u64>().is_err() => continue, // a header line
            Err(_) => {
                return Err(DatasetError::malformed(
                    &file,
                    ln,
                    format!("rating {:?} is not a number", excerpt(rating)),
                ))
            }
        };
        if !r.is_finite() || !(-4.0..=4.0).contains(&r) {
            return Err(DatasetError::malformed(
                &file,
                ln,
                format!("rating {r} outside [-4, 4]"),
            ));
        }
        report.rows += 1;
        if r == 0.0 {
            report.zeros_dropped += 1;
            continue;
        }
        let y = u32::from(r > 0.0);
        if y == 1 {
            report.positives += 1;
        } else {
            report.negatives += 1;
        }
        texts.push(text.trim().to_string());
        labels.push(y);
    }
    if texts.is_empty() {
        return Err(DatasetError::NoExamples {
            path: file,
            what: format!("{} rows, none with a non-zero rating", report.rows),
        });
    }
    let set = LabeledSet {
        examples: Examples::Text(texts),
        labels: Labels::Class(labels),
        class_names: SENTIMENT_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    Ok((set, report))
}
