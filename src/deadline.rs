//! The deadline where no watchdog thread can start (a user at the process limit): kernel
//! timers instead of a thread.
//!
//! At the deadline, SIGALRM's handler only sets a flag: a signal can arrive anywhere, even
//! inside `malloc`, so the handler itself must neither allocate nor lock. The work looks at
//! the flag at its checkpoints (each file, each process, each step of a run) and makes the
//! report there, in normal context. A run stuck where it never reaches a checkpoint (a
//! kernel wait that only a fatal signal ends: a hung mount) is ended by the backstop,
//! `defaults::DEADLINE_BACKSTOP` later: on Linux a second timer sending SIGKILL, never
//! disarmed. macOS has no POSIX timers: its one interval timer is that backstop (SIGALRM at
//! its default action, fatal, so it also ends a wait a handled signal would not), and the
//! checkpoints compare the clock with the deadline instead of waiting for a signal.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::defaults;
use crate::os::sys;

type Reporter = Box<dyn Fn() + Send + Sync>;
static REPORT: OnceLock<Reporter> = OnceLock::new();
static FIRED: AtomicBool = AtomicBool::new(false);

/// Arms the timers; `report` is called at the first checkpoint after the deadline (it
/// reports and ends the process, or returns if the run already reported).
pub fn arm(after: Duration, report: impl Fn() + Send + Sync + 'static) -> std::io::Result<()> {
    if REPORT.set(Box::new(report)).is_err() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    sys::arm_deadline_timers(after, defaults::DEADLINE_BACKSTOP, on_alarm)
}

extern "C" fn on_alarm(_: libc::c_int) {
    FIRED.store(true, Ordering::SeqCst);
}

/// Where the work may stop for the deadline: one load of a flag unless the timers fired
/// (macOS: and of the armed deadline, compared with the clock).
#[inline]
pub fn checkpoint() {
    if (FIRED.load(Ordering::Relaxed) || sys::deadline_reached())
        && let Some(report) = REPORT.get()
    {
        report();
    }
}
