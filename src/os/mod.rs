//! The operating system, behind one seam. The decision modules (reaper, orphans, registry,
//! kill's rules, report) see processes only through `ProcessSource` and the plain
//! `ProcInfo` record every backend fills; nothing OS-shaped crosses. This folder is the
//! only place with `cfg(target_os)` and FFI `unsafe`.
//!
//! - `linux.rs`: `/proc` (the real one, or a directory tree in tests) and pidfds.
//! - `macos.rs`: libproc, `sysctl(KERN_PROCARGS2)` and kqueue.
//! - `fixture.rs`: an in-memory table with the facts of either platform, for tests.
//! - `procfs.rs`, `procargs.rs`: the pure parsers of both formats, built and tested on
//!   every target.
//! - `sys.rs`: thin wrappers over the POSIX calls both share, and the per-OS ones.
//!
//! Signalling is not part of the seam: only the native backend can do it, through the
//! concrete `Pinned` of each platform.

use std::io;

pub mod fixture;
pub mod procargs;
pub mod procfs;
pub mod sys;

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;
#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod imp;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!(
    "startup-hygiene has a process-table backend for Linux and macOS only (see README, \"Windows\")"
);

/// The Linux `/proc` reader, also over a fixture tree (tests).
#[cfg(target_os = "linux")]
pub use imp::ProcFs;
pub use imp::{PLATFORM, Pinned, open};

/// Why a read of a process gave nothing: the callers decide on these two cases, not on errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The process is gone (it exited between two reads), or is a zombie whose memory is gone.
    Gone,
    /// It exists but we may not look (another user, `hidepid`, a failed copy).
    Denied,
}

/// What `kill(pid, 0)` says about a PID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No process has this PID (`ESRCH`).
    Dead,
    /// Some process has it (success, or `EPERM`: it exists but is someone else's).
    Alive,
}

/// When a process started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Started {
    /// The same for one process and different for a later holder of its PID, in the
    /// platform's units (`Platform::start_in_ticks`): Linux, clock ticks after boot (`stat`
    /// field 22); macOS, microseconds since the epoch at fork.
    pub id: u64,
    /// Wall-clock seconds since the epoch.
    pub at: f64,
    /// Seconds since it started (Linux: by the boot clock, which a clock step does not move).
    pub age: f64,
}

/// One process, as every backend reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    /// The kernel's short name, at most `Platform::comm_len` bytes.
    pub comm: Vec<u8>,
    pub zombie: bool,
    /// `None` where it may not be read (macOS: another user's process).
    pub started: Option<Started>,
    /// Resident memory; 0 where it may not be read.
    pub rss_bytes: u64,
}

/// What differs between platforms and the decisions must know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub name: &'static str,
    /// How many bytes of a name the kernel keeps as comm.
    pub comm_len: usize,
    /// The processes with parent 0 that are the tops of the tree (Linux: init and
    /// kthreadd; macOS: launchd). Any other process with parent 0 was started from outside
    /// what we can see.
    pub roots: &'static [i32],
    /// `Started::id` counts clock ticks after boot, the unit of Linux's `procStart`.
    pub start_in_ticks: bool,
}

pub const LINUX: Platform = Platform {
    name: "linux",
    comm_len: 15,
    roots: &[1, 2],
    start_in_ticks: true,
};

pub const MACOS: Platform = Platform {
    name: "macos",
    comm_len: 15,
    roots: &[1],
    start_in_ticks: false,
};

/// Whose PIDs a table holds, in the forms of Claude Code's `pidDomain`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PidDomain {
    /// The host's id (`/etc/machine-id`, 32 hex digits; Linux).
    pub host: Option<String>,
    /// The PID namespace, `pid:[<inode>]` (Linux).
    pub pid_namespace: Option<String>,
    /// The PIDs are macOS's.
    pub darwin: bool,
}

/// A read-only view of a process table.
pub trait ProcessSource: Send {
    fn platform(&self) -> &'static Platform;
    /// This system's own table: its PIDs may be probed, pinned and signalled.
    fn is_system(&self) -> bool;
    /// Every PID, zombies included.
    fn pids(&mut self) -> io::Result<Vec<i32>>;
    /// The process's user, known before anything of it is read.
    fn uid(&mut self, pid: i32) -> Result<u32, ReadError>;
    fn info(&mut self, pid: i32) -> Result<ProcInfo, ReadError>;
    /// The arguments, each followed by a NUL (as `/proc/<pid>/cmdline`). Read afresh.
    fn argv(&mut self, pid: i32) -> Result<&[u8], ReadError>;
    /// The environment, each entry followed by a NUL. Right after `argv` of the same
    /// process, the same read may answer both (macOS).
    fn environ(&mut self, pid: i32) -> Result<&[u8], ReadError>;
    /// The executable's path, where it may be read.
    fn exe(&mut self, pid: i32) -> Option<Vec<u8>>;
    fn probe(&mut self, pid: i32) -> Probe;
    fn children(&mut self, pid: i32) -> Result<Vec<i32>, ReadError>;
    /// Whether a process in a PID namespace below ours has `pid` there (Linux containers
    /// sharing a folder); false where there are none.
    fn held_in_nested_namespace(&mut self, pid: i32) -> bool;
    /// Whose PIDs these are.
    fn pid_domain(&mut self) -> PidDomain;
}

/// What is left when the process table cannot be opened: `kill(pid, 0)`, which the reaper
/// needs, and nothing else. The reaper still runs; the scan finds nothing to list.
pub struct ProbeOnly {
    pub platform: &'static Platform,
}

impl ProcessSource for ProbeOnly {
    fn platform(&self) -> &'static Platform {
        self.platform
    }
    fn is_system(&self) -> bool {
        false
    }
    fn pids(&mut self) -> io::Result<Vec<i32>> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    fn uid(&mut self, _: i32) -> Result<u32, ReadError> {
        Err(ReadError::Denied)
    }
    fn info(&mut self, _: i32) -> Result<ProcInfo, ReadError> {
        Err(ReadError::Denied)
    }
    fn argv(&mut self, _: i32) -> Result<&[u8], ReadError> {
        Err(ReadError::Denied)
    }
    fn environ(&mut self, _: i32) -> Result<&[u8], ReadError> {
        Err(ReadError::Denied)
    }
    fn exe(&mut self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn probe(&mut self, pid: i32) -> Probe {
        sys::probe(pid)
    }
    fn children(&mut self, _: i32) -> Result<Vec<i32>, ReadError> {
        Err(ReadError::Denied)
    }
    fn held_in_nested_namespace(&mut self, _: i32) -> bool {
        false
    }
    /// Unknown without the table: only registry files that name no domain are judged.
    fn pid_domain(&mut self) -> PidDomain {
        PidDomain::default()
    }
}

/// The signals `--kill` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }

    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// Why a pinned process was not signalled.
#[derive(Debug)]
pub enum SignalError {
    /// It has exited (or its identity changed: macOS).
    Gone,
    Failed(io::Error),
}

impl SignalError {
    /// The outcome of a signalling call that returned `ret` (errno read on failure).
    fn check(ret: libc::c_long) -> Result<(), SignalError> {
        if ret == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Err(SignalError::Gone)
        } else {
            Err(SignalError::Failed(e))
        }
    }
}
