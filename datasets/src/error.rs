//! The one error type of this crate. Every variant prints on one line and names the file (and the
//! line or record where there is one), so a CLI can print it as is.

use std::path::PathBuf;

/// Anything that can go wrong while loading a dataset. Bad data is always one of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Reading a file or folder failed (permissions, I/O, a corrupt gzip stream).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The dataset folder (or file) given does not exist.
    #[error("{}: dataset path does not exist", path.display())]
    MissingPath { path: PathBuf },
    /// A file the format needs is not there.
    #[error("{}: missing {what}", path.display())]
    MissingFile { path: PathBuf, what: String },
    /// A dataset folder with nothing usable in it (no class sub-folders, no batch files).
    #[error("{}: dataset folder is empty ({what})", path.display())]
    EmptyDir { path: PathBuf, what: String },
    /// A data file with no example in it (only a header, or nothing left after dropping rows).
    #[error("{}: no examples ({what})", path.display())]
    NoExamples { path: PathBuf, what: String },
    /// An image-folder tree whose class folders hold no file with an image extension.
    #[error(
        "{}: no images found in {classes} class folder(s) ({skipped} non-image file(s) skipped; \
         extensions looked for: {extensions})",
        path.display()
    )]
    NoImages {
        path: PathBuf,
        classes: usize,
        skipped: usize,
        extensions: String,
    },
    /// Class names asked for (a subset such as Places-10) that are not folders of the tree.
    #[error("{}: class folder(s) not found: {}", path.display(), join_quoted(missing))]
    UnknownClasses { path: PathBuf, missing: Vec<String> },
    /// A CSV/TSV whose header lacks columns the task needs.
    #[error("{}: missing column(s) {} (header has {})", path.display(), join_quoted(missing), join_quoted(found))]
    MissingColumns {
        path: PathBuf,
        missing: Vec<String>,
        found: Vec<String>,
    },
    /// A line or record that does not parse. `line` is 1-based.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// An IDX file whose magic number is not the expected one.
    #[error("{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({what})", path.display())]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    /// A binary file shorter than its header (or record size) says.
    #[error("{}: truncated: {what}: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        expected: u64,
        found: u64,
    },
    /// A binary file longer than its header says (trailing bytes), or otherwise of the wrong size.
    #[error("{}: wrong size: {what}: expected {expected} bytes, found {found}", path.display())]
    WrongSize {
        path: PathBuf,
        what: String,
        expected: u64,
        found: u64,
    },
    /// A label outside `0..classes`. `record` is the 0-based record (example) index in the file.
    #[error("{}: record {record}: label {label} out of range 0..{classes}", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        record: u64,
        label: i64,
        classes: u32,
    },
    /// Image and label files that disagree on the number of examples.
    #[error("{}: {found} labels, but {} holds {expected} images", path.display(), images.display())]
    CountMismatch {
        path: PathBuf,
        images: PathBuf,
        expected: u64,
        found: u64,
    },
    /// A split whose labels cannot train or evaluate a classifier (see [`crate::check_split_has_classes`]).
    #[error("{split} split: {message}")]
    SingleClass { split: String, message: String },
    /// An option that makes no sense (fractions not summing to 1, balance on a multiclass task...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A dataset kind name that [`crate::DatasetKind`] does not know.
    #[error("unknown dataset kind '{name}' (expected one of: {expected})")]
    UnknownKind { name: String, expected: String },
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, line: u64, message: impl Into<String>) -> Self {
        DatasetError::Malformed {
            path: path.into(),
            line,
            message: one_line(&message.into()),
        }
    }
}

/// `"a", "b"` with each name escaped so the message stays on one line.
fn join_quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "nothing".to_string();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replace line breaks so that a message built from file content stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.replace('\r', "\\r").replace('\n', "\\n")
}

/// Shorten a piece of file content quoted in an error message.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    let s = one_line(s);
    if s.chars().count() <= MAX {
        s
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}...")
    }
}
