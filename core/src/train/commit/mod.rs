//! Crash-consistent commits: every file of a checkpoint becomes visible together, or none does.
//!
//! # On disk
//!
//! ```text
//! dir/
//!   manifest.json    the commit point: {"format", "generation", "files": {name: {"bytes", "crc64"}}}
//!   gen-00000007/    the published generation: its files and a copy of its manifest
//!   gen-00000006/    an older generation, kept while `keep_last` allows
//!   lock             advisory lock held by the writer for the length of a commit
//! ```
//!
//! # Commit protocol ([`commit`])
//!
//! 1. Take `dir/lock` exclusively ([`std::fs::File::try_lock`]); a second writer gets
//!    [`Error::CheckpointBusy`]. The lock dies with its process, so whatever temporary the writer
//!    then finds belongs to a writer that is dead.
//! 2. Clean leftovers: temporary generations (`.gen-<n>.tmp`), temporary manifests
//!    (`.manifest-<n>.tmp`), the `<file>.tmp<pid>` files of the per-file format sepo wrote before,
//!    and generations newer than the published one (renamed, never published).
//! 3. Write every file into the fresh `.gen-<n>.tmp/` and fsync it; write the generation's manifest
//!    there; fsync the directory.
//! 4. Rename `.gen-<n>.tmp` to `gen-<n>` and fsync `dir`.
//! 5. Write `.manifest-<n>.tmp`, fsync it, rename it over `manifest.json`, fsync `dir`. **This rename
//!    is the commit.**
//! 6. Remove the generations older than the `keep_last` newest.
//!
//! # Why this design
//!
//! `rename(2)` replaces a file atomically but not a non-empty directory: publishing a whole directory
//! in place takes two renames (with a moment where there is no checkpoint at all) or a
//! platform-specific exchange (`renameat2(RENAME_EXCHANGE)`). Replacing one small pointer file is
//! atomic on every POSIX filesystem, and the generation it names was made durable before it. So after
//! a crash at any instant `manifest.json` names the old complete generation or the new complete one,
//! never a mix; an I/O error (a full disk) at any step leaves the old one published. The manifest's
//! sizes and CRC-64s ([`crc64`]) catch what the protocol cannot: a filesystem that acknowledges an
//! fsync it did not do, bit rot, a hand-edited file. Readers ([`Committed::read`]) verify each file
//! against them and get [`Error::CheckpointIntegrity`] otherwise. Keeping whole generations (rather
//! than per-file versions) makes the unit of commit, of verification and of cleanup the same thing.
//!
//! # Guarantees and limits
//!
//! - Crash (SIGKILL, power loss on a filesystem that honours fsync) at any moment: the next reader sees
//!   the last published generation, complete and verified; the next writer removes the leftovers.
//! - A reader does not take the lock. A writer prunes old generations after publishing, so a reader
//!   still holding the previous pointer may find its files gone ([`Integrity::Missing`]) when
//!   `keep_last = 1`; with the default of 2 it must have been overtaken by two commits.
//! - On filesystems without `flock` (some network mounts) the lock is skipped: then two concurrent
//!   writers in one directory are not safe.
//! - Directories without `manifest.json` but with a flat `model.safetensors` (pretrained checkpoints
//!   written before this format) still open, unverified ([`Committed::is_verified`]).

mod crc64;
pub mod fault;
#[cfg(test)]
mod tests;

pub use crc64::{crc64, crc64_hex};
pub use fault::{fault_point, set_fault_hook, FaultHook};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Integrity, Result};

/// Name of the pointer file (and of each generation's copy of its manifest).
pub const MANIFEST: &str = "manifest.json";
/// Name of the writers' lock file.
pub const LOCK: &str = "lock";
/// The `format` a manifest of this layout carries.
pub const FORMAT: &str = "sepo-checkpoint/1";
/// Generations a commit keeps by default: the new one and the one before.
pub const DEFAULT_KEEP_LAST: usize = 2;

/// One file of a generation as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub bytes: u64,
    /// CRC-64/XZ of the content, 16 hex digits.
    pub crc64: String,
}

/// What a generation holds: the contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`FORMAT`]).
    pub format: String,
    /// The generation's number (directory `gen-<generation>`, 8 digits or more).
    pub generation: u64,
    /// Every file of the generation by name.
    pub files: BTreeMap<String, FileEntry>,
}

/// The directory of generation `n` under `root`.
pub fn generation_dir(root: &Path, n: u64) -> PathBuf {
    root.join(format!("gen-{n:08}"))
}

fn parse_generation(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("gen-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a plain file name a generation may hold (no separators, not hidden, not the
/// manifest itself).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != MANIFEST
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs a directory, so that the entries created or renamed in it are durable (a no-op where
/// directories cannot be opened, i.e. off Unix).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A published checkpoint, opened for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    root: PathBuf,
    dir: PathBuf,
    manifest: Option<Manifest>,
}

impl Committed {
    /// The generation `manifest.json` in `root` publishes, `Ok(None)` if nothing was ever published
    /// there. A directory without a manifest but with a flat `model.safetensors` opens unverified
    /// (the layout before this one). A manifest that does not parse, or names files outside its
    /// generation, is [`Error::CorruptCheckpoint`].
    pub fn open(root: &Path) -> Result<Option<Self>> {
        let path = root.join(MANIFEST);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(root.join("model.safetensors").is_file().then(|| Self {
                    root: root.to_path_buf(),
                    dir: root.to_path_buf(),
                    manifest: None,
                }));
            }
            Err(e) => return Err(io_at(&path)(e)),
        };
        let manifest = parse_manifest(&bytes).map_err(|reason| Error::CorruptCheckpoint {
            path: path.clone(),
            reason,
        })?;
        Ok(Some(Self {
            root: root.to_path_buf(),
            dir: generation_dir(root, manifest.generation),
            manifest: Some(manifest),
        }))
    }

    /// Generation `n` of `root` through its own manifest copy (an older generation kept by
    /// `keep_last`, or one to inspect by hand); [`Error::NoCheckpoint`] if it is not there.
    pub fn open_generation(root: &Path, n: u64) -> Result<Self> {
        let dir = generation_dir(root, n);
        let path = dir.join(MANIFEST);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NoCheckpoint { path: dir.clone() },
            _ => io_at(&path)(e),
        })?;
        let manifest = parse_manifest(&bytes).map_err(|reason| Error::CorruptCheckpoint {
            path: path.clone(),
            reason,
        })?;
        if manifest.generation != n {
            return Err(Error::CorruptCheckpoint {
                path,
                reason: format!("names generation {}", manifest.generation),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            dir,
            manifest: Some(manifest),
        })
    }

    /// The checkpoint directory it was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding its files (`gen-<n>`, or the root itself for the unverified layout).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its generation (`None` for the unverified layout).
    pub fn generation(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.generation)
    }

    /// Its manifest (`None` for the unverified layout).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Whether it has a manifest that every read is checked against.
    pub fn is_verified(&self) -> bool {
        self.manifest.is_some()
    }

    /// Path of the file `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether the checkpoint holds `name` (its manifest lists it; unverified: the file exists).
    pub fn contains(&self, name: &str) -> bool {
        match &self.manifest {
            Some(m) => m.files.contains_key(name),
            None => self.path(name).is_file(),
        }
    }

    /// The bytes of `name`, checked against the manifest: [`Integrity::Missing`] if the file is
    /// absent or not listed, [`Integrity::Size`] if its length differs, [`Integrity::Checksum`] if
    /// its CRC-64 does. The bytes returned are the ones checked (read once).
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        let missing = |path: PathBuf| Error::CheckpointIntegrity {
            path,
            problem: Integrity::Missing,
        };
        let read = |path: &Path| match fs::read(path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing(path.to_path_buf())),
            Err(e) => Err(io_at(path)(e)),
        };
        let Some(manifest) = &self.manifest else {
            return read(&path);
        };
        let entry = manifest
            .files
            .get(name)
            .ok_or_else(|| missing(path.clone()))?;
        let bytes = read(&path)?;
        if bytes.len() as u64 != entry.bytes {
            return Err(Error::CheckpointIntegrity {
                path,
                problem: Integrity::Size {
                    expected: entry.bytes,
                    found: bytes.len() as u64,
                },
            });
        }
        let found = crc64_hex(&bytes);
        if found != entry.crc64 {
            return Err(Error::CheckpointIntegrity {
                path,
                problem: Integrity::Checksum {
                    expected: entry.crc64.clone(),
                    found,
                },
            });
        }
        Ok(bytes)
    }

    /// Reads and checks every file the manifest lists (nothing for the unverified layout).
    pub fn verify(&self) -> Result<()> {
        if let Some(m) = &self.manifest {
            for name in m.files.keys() {
                self.read(name)?;
            }
        }
        Ok(())
    }
}

fn parse_manifest(bytes: &[u8]) -> std::result::Result<Manifest, String> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if m.format != FORMAT {
        return Err(format!("format `{}`, this sepo reads `{FORMAT}`", m.format));
    }
    if let Some(bad) = m.files.keys().find(|n| !valid_name(n)) {
        return Err(format!("file name `{bad}` is not a plain name"));
    }
    if let Some((name, _)) = m
        .files
        .iter()
        .find(|(_, e)| e.crc64.len() != 16 || !e.crc64.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("`{name}` has no 16-digit CRC-64"));
    }
    Ok(m)
}

/// The writer's exclusive lock on `dir/lock`, released when dropped (or when the process dies).
struct Lock {
    _file: Option<File>,
}

fn lock(root: &Path) -> Result<Lock> {
    fs::create_dir_all(root).map_err(io_at(root))?;
    let path = root.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: Some(file) }),
        Err(fs::TryLockError::WouldBlock) => Err(Error::CheckpointBusy {
            path: root.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            Ok(Lock { _file: None })
        }
        Err(fs::TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

/// Whether `name` is a temporary of an older sepo's per-file writes: `<file>.tmp<pid>` with `<file>`
/// a `.safetensors` or `.json` file.
fn is_legacy_temporary(name: &str) -> bool {
    name.rfind(".tmp").is_some_and(|i| {
        let (stem, pid) = (&name[..i], &name[i + 4..]);
        !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && (stem.ends_with(".safetensors") || stem.ends_with(".json"))
    })
}

fn is_temporary(name: &str) -> bool {
    (name.starts_with(".gen-") || name.starts_with(".manifest-")) && name.ends_with(".tmp")
}

/// Generations present under `root`, ascending.
fn generations(root: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| parse_generation(&e.file_name().to_string_lossy()))
        .collect();
    out.sort_unstable();
    out
}

fn remove(path: &Path) -> bool {
    if path.is_dir() {
        fs::remove_dir_all(path).is_ok()
    } else {
        fs::remove_file(path).is_ok()
    }
}

/// With the lock held: removes the temporaries of dead writers and the generations newer than the
/// published one (`published`: `Err` when the manifest does not parse, then no generation is
/// touched). Best effort: what cannot be removed is left for the next writer. Returns what it
/// removed.
fn clean_locked(root: &Path, published: &Result<Option<Committed>>) -> Vec<PathBuf> {
    let newest = match published {
        Ok(Some(c)) => c.generation(),
        _ => None,
    };
    let mut removed = Vec::new();
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = matches!((parse_generation(&name), newest), (Some(g), Some(p)) if g > p);
        if is_temporary(&name) || is_legacy_temporary(&name) || orphan {
            let path = entry.path();
            if remove(&path) {
                removed.push(path);
            }
        }
    }
    removed.sort();
    removed
}

/// Removes what killed writers left in `root` (temporary generations and manifests, generations never
/// published, temporaries of the older per-file format), never the published generation nor anything
/// not named like sepo's own. Skipped (`Ok(empty)`) while another writer holds the lock.
pub fn clean(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = match lock(root) {
        Ok(l) => l,
        Err(Error::CheckpointBusy { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(clean_locked(root, &Committed::open(root)))
}

/// Writes `bytes` to a new file at `path` in two halves with the fault point `write <label>` between
/// them, then fsyncs it.
fn write_file(root: &Path, path: &Path, label: &str, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    let half = bytes.len() / 2;
    f.write_all(&bytes[..half])?;
    fault_point(root, &format!("write {label}"))?;
    f.write_all(&bytes[half..])?;
    f.sync_all()
}

/// Commits `files` (name, content) to `root` as one new generation and publishes it; keeps the
/// `keep_last` newest generations (the new one included) and removes older ones. Returns the new
/// generation's number. On any error the previously published generation stays published and the
/// partial one is removed (best effort; the next writer removes it otherwise). See the module docs
/// for the protocol and why it is crash-consistent.
pub fn commit(root: &Path, files: &[(&str, &[u8])], keep_last: usize) -> Result<u64> {
    if keep_last == 0 {
        return Err(Error::invalid(
            "keep_last",
            0,
            "at least the published generation is kept",
        ));
    }
    if files.is_empty() {
        return Err(Error::Empty {
            op: "commit",
            what: "no file",
        });
    }
    for (i, (name, _)) in files.iter().enumerate() {
        if !valid_name(name) || files[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::invalid(
                "file name",
                name,
                "must be a plain, unique file name other than `manifest.json`, not starting with `.`",
            ));
        }
    }
    let _lock = lock(root)?;
    let published = Committed::open(root);
    clean_locked(root, &published);
    let newest = generations(root).last().copied().unwrap_or(0);
    let previous = match &published {
        Ok(Some(c)) => c.generation().unwrap_or(0),
        _ => 0,
    };
    let n = newest.max(previous) + 1;
    let tmp = root.join(format!(".gen-{n:08}.tmp"));
    let dest = generation_dir(root, n);
    let result = write_generation(root, &tmp, &dest, n, files);
    if result.is_err() {
        remove(&tmp);
        // Renamed but not published (the error came before the manifest's rename): an orphan.
        let published_now =
            matches!(Committed::open(root), Ok(Some(c)) if c.generation() == Some(n));
        if !published_now {
            remove(&dest);
        }
    }
    result?;
    fault_point(root, "published").map_err(io_at(root))?;
    prune(root, n, keep_last);
    fault_point(root, "pruned").map_err(io_at(root))?;
    Ok(n)
}

/// Steps 3–5 of the protocol: the temporary generation, its rename, the new manifest.
fn write_generation(
    root: &Path,
    tmp: &Path,
    dest: &Path,
    n: u64,
    files: &[(&str, &[u8])],
) -> Result<()> {
    fault_point(root, "begin").map_err(io_at(root))?;
    fs::create_dir(tmp).map_err(io_at(tmp))?;
    let mut entries = BTreeMap::new();
    for (name, bytes) in files {
        let path = tmp.join(name);
        write_file(root, &path, name, bytes).map_err(io_at(&path))?;
        fault_point(root, &format!("synced {name}")).map_err(io_at(&path))?;
        entries.insert(
            name.to_string(),
            FileEntry {
                bytes: bytes.len() as u64,
                crc64: crc64_hex(bytes),
            },
        );
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        generation: n,
        files: entries,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Io {
        path: tmp.join(MANIFEST),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })?;
    let copy = tmp.join(MANIFEST);
    write_file(root, &copy, "generation manifest", &json).map_err(io_at(&copy))?;
    sync_dir(tmp).map_err(io_at(tmp))?;
    fault_point(root, "synced generation").map_err(io_at(tmp))?;
    fs::rename(tmp, dest).map_err(io_at(dest))?;
    sync_dir(root).map_err(io_at(root))?;
    fault_point(root, "renamed generation").map_err(io_at(dest))?;
    let pointer = root.join(format!(".manifest-{n:08}.tmp"));
    let target = root.join(MANIFEST);
    let published = write_file(root, &pointer, "manifest", &json)
        .map_err(io_at(&pointer))
        .and_then(|()| fs::rename(&pointer, &target).map_err(io_at(&target)));
    if published.is_err() {
        remove(&pointer);
    }
    published?;
    sync_dir(root).map_err(io_at(root))
}

/// Removes the generations older than `newest` beyond the `keep_last` newest (best effort).
fn prune(root: &Path, newest: u64, keep_last: usize) {
    let older: Vec<u64> = generations(root)
        .into_iter()
        .filter(|&g| g < newest)
        .rev()
        .skip(keep_last - 1)
        .collect();
    for g in older {
        remove(&generation_dir(root, g));
    }
}
