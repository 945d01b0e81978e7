//! `--kill`: stopping the orphans a scan reported, and nothing else.
//!
//! The process that is judged is the process that is signalled: the scan pins each
//! candidate (`Pinned`, a pidfd opened *before* its `/proc` files are read, and found still
//! running after they were), and every signal goes through that pidfd. A PID that changed
//! hands after the scan, even within one clock tick, is never signalled: the pidfd still
//! refers to the process that exited. PID 1 and below, other users' processes and the
//! hook's own ancestors are refused. Nothing else in the program sends a signal.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::procfs::ProcFs;
use crate::report::{NotStopped, OrphanGroup, Sink, Stopped};
use crate::sys;

/// One process held by a pidfd from before its `/proc` files were read. While the process
/// runs, its PID cannot be given to another, so reads made between `open` and a later
/// `still_running` were reads of this process.
pub struct Pinned {
    pub pid: i32,
    fd: OwnedFd,
}

impl Pinned {
    pub fn open(pid: i32) -> io::Result<Pinned> {
        Ok(Pinned {
            pid,
            fd: sys::pidfd_open(pid)?,
        })
    }

    /// Not exited (a zombie has exited).
    pub fn still_running(&self) -> bool {
        !sys::wait_exited(&[self.fd.as_fd()], Duration::ZERO)[0]
    }
}

/// The pins of the processes a scan reported, by PID.
pub type Pins = BTreeMap<i32, Pinned>;

/// Stops every process of `groups`: SIGTERM, then SIGKILL for what is left after `grace`.
/// Only pinned processes are signalled, each through its pin.
pub fn stop(
    groups: &[OrphanGroup],
    pins: &Pins,
    fs: &ProcFs,
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
        if !fs.is_real() {
            refuse(pid, "the process table read was not the system's /proc");
            continue;
        }
        if pid <= 1 {
            refuse(pid, "PID 1 and below are never signalled");
            continue;
        }
        if exclude.contains(&pid) {
            refuse(pid, "an ancestor of this hook");
            continue;
        }
        let Some(pin) = pins.get(&pid) else {
            refuse(
                pid,
                "not pinned by the scan: cannot prove it is the process judged",
            );
            continue;
        };
        // By PID, but while the pinned process runs the PID is still its own.
        match fs.uid(pid) {
            Ok(u) if u == uid && pin.still_running() => {}
            Ok(u) if u != uid => {
                refuse(pid, "belongs to another user");
                continue;
            }
            _ => {
                refuse(pid, "already exited");
                continue;
            }
        }
        match sys::pidfd_send_signal(pin.fd.as_fd(), libc::SIGTERM) {
            Ok(()) => signalled.push(pin),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => refuse(pid, "already exited"),
            Err(e) => refuse(pid, &format!("SIGTERM failed: {e}")),
        }
    }
    if signalled.is_empty() {
        return;
    }
    let fds: Vec<_> = signalled.iter().map(|p| p.fd.as_fd()).collect();
    let gone = sys::wait_exited(&fds, grace);
    let mut killed = Vec::new();
    for (pin, gone) in signalled.iter().zip(gone) {
        let stopped = |signal| {
            sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: pin.pid,
                    signal,
                })
            })
        };
        if gone {
            stopped("SIGTERM");
            continue;
        }
        match sys::pidfd_send_signal(pin.fd.as_fd(), libc::SIGKILL) {
            Ok(()) => killed.push(*pin),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => stopped("SIGTERM"),
            Err(e) => refuse(pin.pid, &format!("SIGKILL failed: {e}")),
        }
    }
    let fds: Vec<_> = killed.iter().map(|p| p.fd.as_fd()).collect();
    let gone = sys::wait_exited(&fds, Duration::from_millis(200));
    for (pin, gone) in killed.iter().zip(gone) {
        if gone {
            sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: pin.pid,
                    signal: "SIGKILL",
                })
            });
        } else {
            refuse(pin.pid, "still running after SIGKILL");
        }
    }
}
