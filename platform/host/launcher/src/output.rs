//! The launcher's standard output. A closed output (`warden-host run … | head -3`) is not a
//! panic: the line is dropped, [`closed`] says so, and the run stops cleanly (every PD stopped,
//! the run's directory removed).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints `line` and a newline on standard output; a failed write marks the output closed.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        CLOSED.store(true, Ordering::SeqCst);
    }
}

/// Has a write to standard output failed (its reader is gone)?
#[must_use]
pub fn closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}
