//! ImageNet-1k class names in index order, from timm's `imagenet_synsets.txt` (one WordNet id
//! per line, index order) and `imagenet_synset_to_lemma.txt` (`wnid<TAB>lemmas`).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Result, VisionError};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| VisionError::Io {
        path: path.into(),
        source,
    })
}

/// The 1,000 class names (first lemma of each synset), index `i` = ImageNet class `i`.
pub fn imagenet_classes(synsets: &Path, lemmas: &Path) -> Result<Vec<String>> {
    let lemma_text = read(lemmas)?;
    let map: HashMap<&str, &str> = lemma_text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, names)| (id.trim(), names.split(',').next().unwrap_or(names).trim()))
        .collect();
    let synset_text = read(synsets)?;
    let ids: Vec<&str> = synset_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if ids.len() != 1000 {
        return Err(VisionError::InvalidInput(format!(
            "{} lists {} synsets, ImageNet-1k has 1000",
            synsets.display(),
            ids.len()
        )));
    }
    ids.into_iter()
        .map(|id| {
            map.get(id).map(|s| s.to_string()).ok_or_else(|| {
                VisionError::InvalidInput(format!("synset {id} has no lemma in {}", lemmas.display()))
            })
        })
        .collect()
}
