//! `--kill`: stopping the orphans a scan reported, and nothing else.
//!
//! Every signal goes through a pidfd opened for the process and checked, after opening, to
//! still have the start time the scan saw: a PID reused in between is never signalled.
//! PID 1 and below, other users' processes and the hook's own ancestors are refused. Nothing
//! else in the program sends a signal.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::procfs::{ProcFs, ReadError};
use crate::report::{NotStopped, OrphanGroup, Stopped};
use crate::run::Sink;
use crate::sys;

/// Stops every process of `groups`: SIGTERM, then SIGKILL for what is left after `grace`.
pub fn stop(
    groups: &[OrphanGroup],
    fs: &mut ProcFs,
    uid: u32,
    exclude: &BTreeSet<i32>,
    grace: Duration,
    sink: &Sink,
) {
    let refuse = |pid: i32, reason: &str| {
        let reason = reason.to_string();
        sink.push(|r| r.not_stopped.push(NotStopped { pid, reason }));
    };
    let mut signalled: Vec<(i32, OwnedFd)> = Vec::new();
    for member in groups
        .iter()
        .flat_map(|g| std::iter::once(&g.top).chain(&g.descendants))
    {
        let pid = member.pid;
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
        match fs.uid(pid) {
            Ok(u) if u == uid => {}
            Ok(_) => {
                refuse(pid, "belongs to another user");
                continue;
            }
            Err(_) => {
                refuse(pid, "already exited");
                continue;
            }
        }
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                refuse(pid, "already exited");
                continue;
            }
            Err(e) => {
                refuse(pid, &format!("cannot open a pidfd: {e}"));
                continue;
            }
        };
        // The pidfd now pins one process; check that it is the one the scan judged.
        match fs.stat(pid) {
            Ok(s) if s.starttime != member.starttime => {
                refuse(pid, "PID reused since the scan");
                continue;
            }
            Ok(s) if s.is_zombie() => {
                refuse(pid, "already exited");
                continue;
            }
            Ok(_) => {}
            Err(ReadError::Gone) => {
                refuse(pid, "already exited");
                continue;
            }
            Err(ReadError::Denied) => {
                refuse(pid, "cannot verify it is the process the scan saw");
                continue;
            }
        }
        match sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGTERM) {
            Ok(()) => signalled.push((pid, pidfd)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => refuse(pid, "already exited"),
            Err(e) => refuse(pid, &format!("SIGTERM failed: {e}")),
        }
    }
    if signalled.is_empty() {
        return;
    }
    let fds: Vec<_> = signalled.iter().map(|(_, fd)| fd.as_fd()).collect();
    let gone = sys::wait_exited(&fds, grace);
    let mut killed = Vec::new();
    for ((pid, fd), gone) in signalled.iter().zip(gone) {
        if gone {
            sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: *pid,
                    signal: "SIGTERM",
                })
            });
            continue;
        }
        match sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL) {
            Ok(()) => killed.push((*pid, fd.as_fd())),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: *pid,
                    signal: "SIGTERM",
                })
            }),
            Err(e) => refuse(*pid, &format!("SIGKILL failed: {e}")),
        }
    }
    let fds: Vec<_> = killed.iter().map(|(_, fd)| *fd).collect();
    let gone = sys::wait_exited(&fds, Duration::from_millis(200));
    for ((pid, _), gone) in killed.iter().zip(gone) {
        if gone {
            sink.push(|r| {
                r.stopped.push(Stopped {
                    pid: *pid,
                    signal: "SIGKILL",
                })
            });
        } else {
            refuse(*pid, "still running after SIGKILL");
        }
    }
}
