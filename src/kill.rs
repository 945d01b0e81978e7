//! `--kill`: stopping the orphans a scan reported, and nothing else.
//!
//! The process that is judged is the process that is signalled: the scan pins each
//! candidate (`os::Pinned`, taken *before* its facts are read, and found still running
//! after they were), and every signal goes through that pin. On Linux the pin is a pidfd:
//! a PID that changed hands after the scan, even within one clock tick, is never
//! signalled. On macOS it is a kqueue watch of the process's exit, checked right before
//! each signal: what is left is a window of one system call (see ARCHITECTURE.md). PID 1
//! and below, other users' processes and the hook's own ancestors are refused (`refusal`,
//! a pure rule). Nothing else in the program sends a signal.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::os::{Pinned, ProcessSource, ReadError, Signal, SignalError};
use crate::report::{NotStopped, OrphanGroup, Sink, Stopped};

/// The pins of the processes a scan reported, by PID.
pub type Pins = BTreeMap<i32, Pinned>;

/// What is known of a reported process just before it would be signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub pid: i32,
    /// The table read was this system's.
    pub system: bool,
    /// One of this hook's ancestors.
    pub ancestor: bool,
    /// The scan pinned it.
    pub pinned: bool,
    /// Its user now, read while the pin holds it.
    pub uid_now: Result<u32, ReadError>,
    /// The pin still holds a running process.
    pub running: bool,
}

/// Why `c` must not be signalled by the user `uid`, or `None` when it may be.
pub fn refusal(c: &Candidate, uid: u32) -> Option<&'static str> {
    if !c.system {
        return Some("the process table read was not the system's");
    }
    if c.pid <= 1 {
        return Some("PID 1 and below are never signalled");
    }
    if c.ancestor {
        return Some("an ancestor of this hook");
    }
    if !c.pinned {
        return Some("not pinned by the scan: cannot prove it is the process judged");
    }
    match c.uid_now {
        Ok(u) if u != uid => Some("belongs to another user"),
        Ok(_) if c.running => None,
        _ => Some("already exited"),
    }
}

/// Stops every process of `groups`: SIGTERM, then SIGKILL for what is left after `grace`.
/// Only pinned processes are signalled, each through its pin.
pub fn stop(
    groups: &[OrphanGroup],
    pins: &Pins,
    source: &mut dyn ProcessSource,
    uid: u32,
    exclude: &BTreeSet<i32>,
    grace: Duration,
    sink: &Sink,
) {
    let refuse = |pid: i32, reason: &str| {
        let reason = reason.to_string();
        sink.push(|r| r.not_stopped.push(NotStopped { pid, reason }));
    };
    let mut signalled: Vec<&Pinned> = Vec::new();
    for pid in groups.iter().flat_map(OrphanGroup::pids) {
        crate::deadline::checkpoint();
        let pin = pins.get(&pid);
        let system = source.is_system();
        let candidate = Candidate {
            pid,
            system,
            ancestor: exclude.contains(&pid),
            pinned: pin.is_some(),
            // By PID, but while the pinned process runs the PID is still its own.
            uid_now: match pin {
                Some(_) if system && pid > 1 => source.uid(pid),
                _ => Err(ReadError::Gone),
            },
            running: pin.is_some_and(Pinned::still_running),
        };
        if let Some(why) = refusal(&candidate, uid) {
            refuse(pid, why);
            continue;
        }
        let Some(pin) = pin else { continue };
        match pin.signal(Signal::Term) {
            Ok(()) => signalled.push(pin),
            Err(SignalError::Gone) => refuse(pid, "already exited"),
            Err(SignalError::Failed(e)) => refuse(pid, &format!("SIGTERM failed: {e}")),
        }
    }
    if signalled.is_empty() {
        return;
    }
    let gone = Pinned::wait_exited(&signalled, grace);
    let mut killed = Vec::new();
    for (pin, gone) in signalled.iter().zip(gone) {
        let stopped = |signal: Signal| {
            sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: pin.pid,
                    signal: signal.name(),
                })
            })
        };
        if gone {
            stopped(Signal::Term);
            continue;
        }
        match pin.signal(Signal::Kill) {
            Ok(()) => killed.push(*pin),
            Err(SignalError::Gone) => stopped(Signal::Term),
            Err(SignalError::Failed(e)) => refuse(pin.pid, &format!("SIGKILL failed: {e}")),
        }
    }
    let gone = Pinned::wait_exited(&killed, Duration::from_millis(200));
    for (pin, gone) in killed.iter().zip(gone) {
        if gone {
            sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: pin.pid,
                    signal: Signal::Kill.name(),
                })
            });
        } else {
            refuse(pin.pid, "still running after SIGKILL");
        }
    }
}
