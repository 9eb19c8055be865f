//! The local model cache in the Hugging Face hub layout, so a model id resolves to a folder:
//!
//! ```text
//! <cache>/models--<org>--<name>/refs/<branch or tag>     the commit hash it points to
//! <cache>/models--<org>--<name>/snapshots/<commit>/…     config.json, model.safetensors, …
//! ```
//!
//! `<cache>` is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//! `~/.cache/huggingface/hub` (huggingface_hub's order), so models fetched by Python's
//! `huggingface_hub` (or `git clone` into a snapshot folder) are found without a network. With the
//! `hub` feature, `HubCache::download` fills the same layout through the `hf-hub` crate.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Revision used when none is given.
pub const DEFAULT_REVISION: &str = "main";

/// A hub cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// The cache at `root` (the folder holding `models--*`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache the environment names ([module docs](self)).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var_os(k).map(PathBuf::from))
    }

    /// [`HubCache::from_env`] with the variables read through `var` (`HF_HUB_CACHE`, `HF_HOME`,
    /// `XDG_CACHE_HOME`, `HOME`); empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<PathBuf>) -> Self {
        let var = |k: &str| var(k).filter(|p| !p.as_os_str().is_empty());
        let root = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        Self::new(root)
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<cache>/models--<org>--<name>` for model id `org/name` (or `name`). The id is checked: one
    /// or two non-empty parts of letters, digits, `-`, `_`, `.`, and no `..`.
    pub fn repo_dir(&self, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        Ok(self.root.join(format!("models--{}", id.replace('/', "--"))))
    }

    /// The snapshot folder of model `id` at `revision` (a branch or tag recorded under `refs/`, or a
    /// commit hash with a snapshot): [`Error::ModelNotCached`] if the cache does not hold it.
    pub fn snapshot(&self, id: &str, revision: &str) -> Result<PathBuf> {
        let repo = self.repo_dir(id)?;
        let not_cached = || Error::ModelNotCached {
            id: id.to_string(),
            revision: revision.to_string(),
            cache: self.root.clone(),
        };
        if revision.is_empty() || revision.contains("..") || revision.starts_with('/') {
            return Err(Error::invalid(
                "revision",
                revision,
                "must be a branch, tag or commit",
            ));
        }
        let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
            Ok(hash) => hash.trim().to_string(),
            Err(_) => revision.to_string(),
        };
        let dir = repo.join("snapshots").join(&commit);
        if commit.is_empty() || commit.contains('/') || !dir.is_dir() {
            return Err(not_cached());
        }
        Ok(dir)
    }

    /// Downloads `files` of model `id` at `revision` into the cache (the `hf-hub` crate's blocking
    /// client; `HF_TOKEN`/the token file of `HF_HOME` for gated models) and returns the snapshot
    /// folder. A failed request is [`Error::Io`] naming the cache.
    #[cfg(feature = "hub")]
    pub fn download(&self, id: &str, revision: &str, files: &[&str]) -> Result<PathBuf> {
        check_id(id)?;
        let failed = |e: hf_hub::api::sync::ApiError| Error::Io {
            path: self.root.clone(),
            source: std::io::Error::other(format!("downloading {id}@{revision}: {e}")),
        };
        let api = hf_hub::api::sync::ApiBuilder::new()
            .with_cache_dir(self.root.clone())
            .with_progress(false)
            .build()
            .map_err(failed)?;
        let repo = api.repo(hf_hub::Repo::with_revision(
            id.to_string(),
            hf_hub::RepoType::Model,
            revision.to_string(),
        ));
        for file in files {
            repo.get(file).map_err(failed)?;
        }
        self.snapshot(id, revision)
    }
}

fn check_id(id: &str) -> Result<()> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok_part = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() > 2 || !parts.iter().all(ok_part) {
        return Err(Error::invalid(
            "model id",
            id,
            "must be `org/name` or `name` (letters, digits, `-`, `_`, `.`)",
        ));
    }
    Ok(())
}

/// A model folder from `spec`: an existing directory as given, otherwise a model id looked up in
/// [`HubCache::from_env`] at `revision` ([`DEFAULT_REVISION`] when `None`).
pub fn resolve_model(spec: &str, revision: Option<&str>) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    HubCache::from_env().snapshot(spec, revision.unwrap_or(DEFAULT_REVISION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_order_follows_huggingface_hub() {
        let vars = |set: &[(&str, &str)]| {
            let set: Vec<(String, PathBuf)> = set
                .iter()
                .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
                .collect();
            move |k: &str| {
                set.iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
            }
        };
        let all = [
            ("HF_HUB_CACHE", "/a"),
            ("HF_HOME", "/b"),
            ("XDG_CACHE_HOME", "/c"),
            ("HOME", "/d"),
        ];
        assert_eq!(HubCache::from_vars(vars(&all)).root(), Path::new("/a"));
        assert_eq!(
            HubCache::from_vars(vars(&all[1..])).root(),
            Path::new("/b/hub")
        );
        assert_eq!(
            HubCache::from_vars(vars(&all[2..])).root(),
            Path::new("/c/huggingface/hub")
        );
        assert_eq!(
            HubCache::from_vars(vars(&all[3..])).root(),
            Path::new("/d/.cache/huggingface/hub")
        );
        assert_eq!(
            HubCache::from_vars(vars(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/b")])).root(),
            Path::new("/b/hub")
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        let cache = HubCache::new("/tmp/none");
        for id in ["", "a/b/c", "../x", "a/..", "a b", "a//b"] {
            assert!(
                matches!(cache.repo_dir(id), Err(Error::InvalidParameter { .. })),
                "{id}"
            );
        }
        assert_eq!(
            cache.repo_dir("louaaron/sedd-small").unwrap(),
            Path::new("/tmp/none/models--louaaron--sedd-small")
        );
    }
}
