//! Fault points: named moments of the commit protocol where a test can stop the process (to kill it
//! there) or make the step fail (a full disk), to check what a crash or an I/O error at that moment
//! leaves behind.
//!
//! The points, in the order a commit reaches them (`<file>` is each file's name, in the order given):
//! `begin` (lock held, leftovers cleaned), `write <file>` (half of the file written to the temporary
//! generation), `synced <file>`, `synced generation` (every file and the temporary directory
//! fsynced), `renamed generation` (the generation in place, not yet published), `write manifest`
//! (half of the new manifest written to its temporary file), `published` (the manifest renamed over
//! the old one and the directory fsynced: the commit point is behind), `pruned` (old generations
//! removed). [`Finetuner::fit_checkpointed`](crate::train::Finetuner::fit_checkpointed) adds
//! `metrics written` after each round's metrics line.
//!
//! Hooks are process-wide and keyed by the checkpoint directory (as given, not canonicalised), so
//! tests running in parallel on different directories do not see each other's.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A hook called at every fault point of commits to one directory with the point's name; an `Err`
/// makes that step fail with it (e.g. `io::ErrorKind::StorageFull`). A hook that never returns (a
/// child process waiting to be killed) stops the writer exactly there.
pub type FaultHook = Arc<dyn Fn(&str) -> io::Result<()> + Send + Sync>;

static ANY: AtomicBool = AtomicBool::new(false);
static HOOKS: Mutex<Vec<(PathBuf, FaultHook)>> = Mutex::new(Vec::new());

/// Installs (`Some`) or removes (`None`) the fault hook of the checkpoint directory `dir`.
pub fn set_fault_hook(dir: &Path, hook: Option<FaultHook>) {
    let mut hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    hooks.retain(|(d, _)| d != dir);
    if let Some(h) = hook {
        hooks.push((dir.to_path_buf(), h));
    }
    ANY.store(!hooks.is_empty(), Ordering::SeqCst);
}

/// Runs the hook of `dir` (if any) at `point`. Costs one relaxed load when no hook is installed.
pub fn fault_point(dir: &Path, point: &str) -> io::Result<()> {
    if !ANY.load(Ordering::Relaxed) {
        return Ok(());
    }
    let hook = {
        let hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
        hooks
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, h)| Arc::clone(h))
    };
    match hook {
        Some(h) => h(point),
        None => Ok(()),
    }
}
