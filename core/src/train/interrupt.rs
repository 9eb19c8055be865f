//! Graceful stops: Ctrl-C (SIGINT), SIGTERM or SIGHUP during [`fit`](crate::train::fit) stops the run
//! at the next step boundary, after committing a checkpoint when one is configured, and `fit` returns
//! [`Error::Interrupted`] saying how many steps are done and where they were saved.
//!
//! [`install`] puts one process-wide handler in place (the `ctrlc` crate; [`crate::train::Run::fit`]
//! and [`crate::train::FlowRun::fit`] call it when they checkpoint). The handler runs on its own
//! thread and does, per signal:
//!
//! - while a `fit` is running: the first signal sets the stop flag (the step in progress finishes,
//!   is saved, and `fit` returns); a second one exits the process at once with status 130, for a run
//!   stuck inside a step;
//! - while no `fit` is running: exits with status 130 (what the signal would have done).
//!
//! Programs that handle signals themselves skip [`install`] (it leaves an existing handler alone) and
//! call [`request`] instead, e.g. from their own handler or another thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Exit status after a second signal, or a signal outside a run: `128 + SIGINT`, as a shell reports
/// a process that Ctrl-C ended.
pub const EXIT_STATUS: i32 = 130;

/// Installs the handler for SIGINT, SIGTERM and SIGHUP (once per process; later calls return the
/// first call's outcome). Errors ([`Error::InvalidParameter`] named `interrupt`) if the process
/// already has a handler another library installed through `ctrlc`, or the OS refuses.
pub fn install() -> Result<()> {
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if ACTIVE.load(Ordering::SeqCst) == 0 || REQUESTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(EXIT_STATUS);
                }
            })
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::invalid("interrupt", "signal handler", e))
}

/// Asks the running `fit` to stop at its next step boundary (what the handler does on the first
/// signal). Outside a `fit` the request waits for the next one, which then stops after its first
/// checkpoint.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested and not yet honoured.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Takes the request: `true` once per [`request`] (or signal).
pub(crate) fn take() -> bool {
    REQUESTED.swap(false, Ordering::SeqCst)
}

/// Marks a `fit` as running for as long as it lives (signals then request a stop instead of exiting).
pub(crate) struct Active;

impl Active {
    pub(crate) fn enter() -> Self {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}
