//! Jigsaw Toxic Comment Classification CSVs (Kaggle): `train.csv` with header
//! `id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate`, and optionally
//! `test.csv` (`id,comment_text`) with `test_labels.csv` (`id,toxic,...`, where `-1` marks a comment
//! that was not scored). Real CSV: quoted fields spanning lines, doubled quotes.
//!
//! Label values are numbers in [0, 1] (0/1 in the toxic-comment challenge, fractions in the
//! unintended-bias one); a value ≥ 0.5 is positive. A negative value marks an unscored row, which is
//! dropped and counted. One label column gives a binary task with classes `not <col>` and `<col>`
//! (the paper's naming); several give a multilabel task over those columns.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{excerpt, DatasetError};
use crate::types::{Examples, LabeledSet, Labels};

/// The label columns of the toxic-comment challenge.
pub const JIGSAW_LABEL_COLUMNS: [&str; 6] = [
    "toxic",
    "severe_toxic",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
];

/// Rows of a Jigsaw CSV: ids (empty when the file has no `id` column), comments, and the raw values
/// of the requested label columns (one vector per row, in column order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JigsawTable {
    pub ids: Vec<String>,
    pub texts: Vec<String>,
    pub values: Vec<Vec<f32>>,
    /// Rows dropped because a label value was negative (unscored).
    pub unscored_dropped: usize,
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>, DatasetError> {
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DatasetError::MissingFile {
                path: path.to_path_buf(),
                what: "Jigsaw CSV".to_string(),
            }
        } else {
            DatasetError::io(path, e)
        }
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> DatasetError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.kind() {
        csv::ErrorKind::Io(_) => DatasetError::io(path, std::io::Error::other(e.to_string())),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => DatasetError::malformed(
            path,
            line,
            format!("record has {len} fields, header has {expected_len}"),
        ),
        csv::ErrorKind::Utf8 { .. } => DatasetError::malformed(path, line, "not valid UTF-8"),
        _ => DatasetError::malformed(path, line, e.to_string()),
    }
}

fn columns(
    path: &Path,
    reader: &mut csv::Reader<std::fs::File>,
    wanted: &[&str],
) -> Result<(Vec<usize>, Vec<String>), DatasetError> {
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut idx = Vec::new();
    let mut missing = Vec::new();
    for w in wanted {
        match header.iter().position(|h| h == w) {
            Some(i) => idx.push(i),
            None => missing.push(w.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(DatasetError::MissingColumns {
            path: path.to_path_buf(),
            missing,
            found: header,
        });
    }
    Ok((idx, header))
}

fn parse_value(path: &Path, line: u64, column: &str, field: &str) -> Result<f32, DatasetError> {
    let v: f32 = field.trim().parse().map_err(|_| {
        DatasetError::malformed(
            path,
            line,
            format!("column {column:?}: {:?} is not a number", excerpt(field)),
        )
    })?;
    if !v.is_finite() || v > 1.0 {
        return Err(DatasetError::malformed(
            path,
            line,
            format!("column {column:?}: label value {v} outside [0, 1] (negative = unscored)"),
        ));
    }
    Ok(v)
}

fn check_columns(label_columns: &[String]) -> Result<(), DatasetError> {
    if label_columns.is_empty() {
        return Err(DatasetError::InvalidOption(
            "Jigsaw needs at least one label column".to_string(),
        ));
    }
    Ok(())
}

/// Read a labelled Jigsaw CSV (`train.csv`, or any CSV with `comment_text` and the label columns).
/// Rows with a negative value in a requested column are dropped and counted.
pub fn read_jigsaw_csv(path: &Path, label_columns: &[String]) -> Result<JigsawTable, DatasetError> {
    check_columns(label_columns)?;
    let mut reader = open(path)?;
    let mut wanted: Vec<&str> = vec!["comment_text"];
    wanted.extend(label_columns.iter().map(|s| s.as_str()));
    let (idx, header) = columns(path, &mut reader, &wanted)?;
    let id_col = header.iter().position(|h| h == "id");
    let mut table = JigsawTable::default();
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let mut values = Vec::with_capacity(label_columns.len());
        for (k, col) in label_columns.iter().enumerate() {
            values.push(parse_value(path, line, col, &rec[idx[k + 1]])?);
        }
        if values.iter().any(|&v| v < 0.0) {
            table.unscored_dropped += 1;
            continue;
        }
        table
            .ids
            .push(id_col.map(|i| rec[i].to_string()).unwrap_or_default());
        table.texts.push(rec[idx[0]].to_string());
        table.values.push(values);
    }
    if table.texts.is_empty() {
        return Err(DatasetError::NoExamples {
            path: path.to_path_buf(),
            what: format!("no scored row ({} unscored dropped)", table.unscored_dropped),
        });
    }
    Ok(table)
}

/// Read Kaggle's `test.csv` (`id,comment_text`) joined by id with `test_labels.csv`
/// (`id,<label columns>`); rows unscored (`-1`) in a requested column are dropped and counted.
/// A test id without a labels row is a [`DatasetError::Malformed`] naming its line.
pub fn read_jigsaw_test(
    test_csv: &Path,
    labels_csv: &Path,
    label_columns: &[String],
) -> Result<JigsawTable, DatasetError> {
    check_columns(label_columns)?;
    let mut wanted: Vec<&str> = vec!["id"];
    wanted.extend(label_columns.iter().map(|s| s.as_str()));
    let mut reader = open(labels_csv)?;
    let (idx, _) = columns(labels_csv, &mut reader, &wanted)?;
    let mut by_id: HashMap<String, Vec<f32>> = HashMap::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_error(labels_csv, e))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let mut values = Vec::with_capacity(label_columns.len());
        for (k, col) in label_columns.iter().enumerate() {
            values.push(parse_value(labels_csv, line, col, &rec[idx[k + 1]])?);
        }
        by_id.insert(rec[idx[0]].to_string(), values);
    }
    let mut reader = open(test_csv)?;
    let (idx, _) = columns(test_csv, &mut reader, &["id", "comment_text"])?;
    let mut table = JigsawTable::default();
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_error(test_csv, e))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let id = &rec[idx[0]];
        let Some(values) = by_id.get(id) else {
            return Err(DatasetError::malformed(
                test_csv,
                line,
                format!("id {:?} has no row in {}", excerpt(id), labels_csv.display()),
            ));
        };
        if values.iter().any(|&v| v < 0.0) {
            table.unscored_dropped += 1;
            continue;
        }
        table.ids.push(id.to_string());
        table.texts.push(rec[idx[1]].to_string());
        table.values.push(values.clone());
    }
    Ok(table)
}

/// Class names for a Jigsaw task: `["not <col>", "<col>"]` for one column, the columns otherwise.
pub fn jigsaw_class_names(label_columns: &[String]) -> Vec<String> {
    if label_columns.len() == 1 {
        vec![format!("not {}", label_columns[0]), label_columns[0].clone()]
    } else {
        label_columns.to_vec()
    }
}

/// Turn a table into a labelled set: binary class labels for one column, 0/1 vectors for several
/// (a value ≥ 0.5 is positive).
pub fn jigsaw_set(table: JigsawTable, label_columns: &[String]) -> LabeledSet {
    let labels = if label_columns.len() == 1 {
        Labels::Class(table.values.iter().map(|v| u32::from(v[0] >= 0.5)).collect())
    } else {
        Labels::Multi(
            table
                .values
                .iter()
                .map(|v| v.iter().map(|&x| if x >= 0.5 { 1.0 } else { 0.0 }).collect())
                .collect(),
        )
    };
    LabeledSet {
        examples: Examples::Text(table.texts),
        labels,
        class_names: jigsaw_class_names(label_columns),
    }
}
