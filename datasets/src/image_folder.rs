//! Image-folder trees (`root/<class>/<image files>`), the layout of ImageNet and Places365.
//!
//! Classes are the sub-folders of the root sorted by name (byte order of their UTF-8 names, which is
//! Python's `sorted` and so torchvision's `ImageFolder` order); label `i` is the `i`-th class. A
//! class subset (e.g. Places-10) is labelled in the order of the list instead, and a class name may be
//! a nested folder (`a/airfield` in Places365's `data_256` layout). Inside a class folder files are
//! collected recursively, in sorted order; files whose extension is not an image extension, and
//! hidden files and folders (names starting with `.`), are skipped and counted. Images are not decoded
//! here: the vision crate does that.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::DatasetError;

/// File extensions taken as images (compared case-insensitively: ImageNet's `.JPEG` matches).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "ppm", "pgm",
];

/// The paper's Places-10 classes (Places365-Standard folder names), labelled 0..9 in this order.
pub const PLACES10_CLASSES: [&str; 10] = [
    "airport_terminal",
    "boat_deck",
    "bridge",
    "butchers_shop",
    "church-outdoor",
    "hotel_room",
    "laundromat",
    "river",
    "ski_slope",
    "volcano",
];

/// How deep class folders are walked (guards against symlink cycles).
const MAX_DEPTH: usize = 32;

/// Counts from one scan of a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Images found, in all classes.
    pub images: usize,
    /// Images per class, in label order.
    pub per_class: Vec<usize>,
    /// Files skipped because their extension is not an image extension.
    pub skipped_non_image: usize,
    /// Hidden files and folders skipped (names starting with `.`).
    pub skipped_hidden: usize,
    /// Classes with no image in this tree (their folder is empty or absent).
    pub empty_classes: Vec<String>,
}

/// One scanned tree: image paths, their labels, and the class names.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub paths: Vec<PathBuf>,
    pub labels: Vec<u32>,
    pub class_names: Vec<String>,
    pub stats: ScanStats,
}

/// Seconds between progress lines while listing a tree.
const LIST_PROGRESS_S: u64 = 5;

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

fn is_dir(p: &Path) -> bool {
    fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(std::ffi::OsString, PathBuf)>, DatasetError> {
    let rd = fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| DatasetError::io(dir, e))?;
        out.push((entry.file_name(), entry.path()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The class folder names of `root`, sorted; hidden folders and plain files are ignored.
pub fn list_classes(root: &Path) -> Result<Vec<String>, DatasetError> {
    if !root.exists() {
        return Err(DatasetError::MissingPath {
            path: root.to_path_buf(),
        });
    }
    let mut classes = Vec::new();
    for (name, path) in read_dir_sorted(root)? {
        if is_hidden(&name) || !is_dir(&path) {
            continue;
        }
        classes.push(name.to_string_lossy().into_owned());
    }
    classes.sort();
    Ok(classes)
}

fn is_image(path: &Path, extra: &[String]) -> bool {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return false;
    };
    let ext = ext.to_ascii_lowercase();
    IMAGE_EXTENSIONS.contains(&ext.as_str()) || extra.iter().any(|x| x.eq_ignore_ascii_case(&ext))
}

fn walk(
    dir: &Path,
    depth: usize,
    extra: &[String],
    out: &mut Vec<PathBuf>,
    stats: &mut ScanStats,
) -> Result<(), DatasetError> {
    for (name, path) in read_dir_sorted(dir)? {
        if is_hidden(&name) {
            stats.skipped_hidden += 1;
            continue;
        }
        if is_dir(&path) {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, extra, out, stats)?;
            }
        } else if is_image(&path, extra) {
            out.push(path);
        } else {
            stats.skipped_non_image += 1;
        }
    }
    Ok(())
}

fn extensions_list(extra: &[String]) -> String {
    let mut all: Vec<String> = IMAGE_EXTENSIONS.iter().map(|s| s.to_string()).collect();
    all.extend(extra.iter().map(|s| s.to_ascii_lowercase()));
    all.join(",")
}

/// Scan `root` for the given classes (label = position in `classes`). With `allow_missing` a class
/// whose folder is absent just has no images (held-out trees need not have every class).
fn scan_classes(
    root: &Path,
    classes: &[String],
    allow_missing: bool,
    extra: &[String],
) -> Result<ImageFolder, DatasetError> {
    let mut seen = std::collections::HashSet::new();
    for c in classes {
        if !seen.insert(c) {
            return Err(DatasetError::InvalidOption(format!(
                "class {c:?} is listed twice"
            )));
        }
    }
    let missing: Vec<String> = classes
        .iter()
        .filter(|c| !is_dir(&root.join(c)))
        .cloned()
        .collect();
    if !missing.is_empty() && !allow_missing {
        return Err(DatasetError::UnknownClasses {
            path: root.to_path_buf(),
            missing,
        });
    }
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    let mut stats = ScanStats {
        per_class: vec![0; classes.len()],
        ..Default::default()
    };
    // A large tree (ImageNet: 1,000 folders, 1.28M files; slower on network storage) shows
    // it is moving: a line every LIST_PROGRESS_S once listing has taken that long.
    let started = std::time::Instant::now();
    let mut last_line = started;
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let before = paths.len();
        if is_dir(&dir) {
            walk(&dir, 0, extra, &mut paths, &mut stats)?;
        }
        if last_line.elapsed().as_secs() >= LIST_PROGRESS_S {
            last_line = std::time::Instant::now();
            eprintln!(
                "listing {}: {} of {} class folders, {} images so far, {:.0} s",
                root.display(),
                label + 1,
                classes.len(),
                paths.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let found = paths.len() - before;
        labels.extend(std::iter::repeat_n(label as u32, found));
        stats.per_class[label] = found;
        if found == 0 {
            stats.empty_classes.push(class.clone());
        }
    }
    stats.images = paths.len();
    if paths.is_empty() {
        return Err(DatasetError::NoImages {
            path: root.to_path_buf(),
            classes: classes.len() - missing.len(),
            skipped: stats.skipped_non_image + stats.skipped_hidden,
            extensions: extensions_list(extra),
        });
    }
    Ok(ImageFolder {
        root: root.to_path_buf(),
        paths,
        labels,
        class_names: classes.to_vec(),
        stats,
    })
}

/// Scan one `root/<class>/<images>` tree. `classes`: keep only these, labelled in list order;
/// `None`: every non-hidden sub-folder, sorted. `extra_extensions`: accepted besides
/// [`IMAGE_EXTENSIONS`].
///
/// Errors: the root is missing ([`DatasetError::MissingPath`]), has no class folder
/// ([`DatasetError::EmptyDir`]), lacks a listed class ([`DatasetError::UnknownClasses`]), or holds no
/// image at all ([`DatasetError::NoImages`]).
pub fn scan_image_folder(
    root: &Path,
    classes: Option<&[String]>,
    extra_extensions: &[String],
) -> Result<ImageFolder, DatasetError> {
    if !root.exists() {
        return Err(DatasetError::MissingPath {
            path: root.to_path_buf(),
        });
    }
    if !is_dir(root) {
        return Err(DatasetError::InvalidOption(format!(
            "{} is a file; an image-folder dataset is a folder of class folders",
            root.display()
        )));
    }
    match classes {
        Some(list) => {
            if list.is_empty() {
                return Err(DatasetError::InvalidOption("empty class list".to_string()));
            }
            scan_classes(root, list, false, extra_extensions)
        }
        None => {
            let list = list_classes(root)?;
            if list.is_empty() {
                return Err(DatasetError::EmptyDir {
                    path: root.to_path_buf(),
                    what: "no class sub-folders".to_string(),
                });
            }
            scan_classes(root, &list, false, extra_extensions)
        }
    }
}

/// Scan a held-out tree (`val/`, `test/`) with the training classes: labels follow the training
/// class list; a class absent here simply has no image. Without a class subset, a folder here that
/// is not a training class is an error (its images would have no label).
pub fn scan_heldout(
    root: &Path,
    train_classes: &[String],
    subset: bool,
    extra_extensions: &[String],
) -> Result<ImageFolder, DatasetError> {
    if !subset {
        let here = list_classes(root)?;
        let unknown: Vec<String> = here.into_iter().filter(|c| !train_classes.contains(c)).collect();
        if !unknown.is_empty() {
            return Err(DatasetError::UnknownClasses {
                path: root.to_path_buf(),
                missing: unknown,
            });
        }
    }
    let present = train_classes.iter().filter(|c| is_dir(&root.join(c))).count();
    if present == 0 {
        return Err(DatasetError::EmptyDir {
            path: root.to_path_buf(),
            what: "none of the training class folders is here (a flat ImageNet val/ must first be \
                   sorted into <wnid>/ folders, e.g. with valprep.sh)"
                .to_string(),
        });
    }
    scan_classes(root, train_classes, true, extra_extensions)
}

/// `train/`, then `val/` or `validation/`, then `test/` under `root`, where present.
pub(crate) fn split_dirs(root: &Path) -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
    let find = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| is_dir(p));
    (find(&["train"]), find(&["val", "validation"]), find(&["test"]))
}

/// One line describing a scan, for [`crate::DatasetSplits::notes`].
pub(crate) fn describe(split: &str, f: &ImageFolder) -> String {
    let mut s = format!(
        "{split}: {} images in {} classes from {}",
        f.stats.images,
        f.class_names.len(),
        f.root.display()
    );
    if f.stats.skipped_non_image > 0 {
        s.push_str(&format!(
            "; {} non-image files skipped",
            f.stats.skipped_non_image
        ));
    }
    if f.stats.skipped_hidden > 0 {
        s.push_str(&format!("; {} hidden entries skipped", f.stats.skipped_hidden));
    }
    if !f.stats.empty_classes.is_empty() {
        let shown: Vec<&str> = f.stats.empty_classes.iter().take(5).map(|s| s.as_str()).collect();
        s.push_str(&format!(
            "; {} classes without images ({}{})",
            f.stats.empty_classes.len(),
            shown.join(", "),
            if f.stats.empty_classes.len() > 5 {
                ", ..."
            } else {
                ""
            }
        ));
    }
    s
}
