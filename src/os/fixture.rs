//! An in-memory process table with the facts of Linux or macOS, always built: the decision
//! tests run against it on any machine. What each platform does that the decisions must
//! survive is applied as processes are added, not left to each test:
//!
//! - comm is the executable's name cut to `Platform::comm_len` bytes;
//! - Linux: PID 1 and kthreadd (PID 2) have parent 0; another user's command line is
//!   readable, their environment is not; a zombie's command line is empty;
//! - macOS: PID 1 is launchd with parent 0, there is no kthreadd, and PID 0 is the
//!   kernel; another user's arguments and environment (one `sysctl`) are denied, and so are
//!   their start time and memory; a zombie's arguments read as gone.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use super::{LINUX, MACOS, Platform, Probe, ProcInfo, ProcessSource, ReadError, Started};

/// One process of the fixture, as the backend of its platform would show it.
#[derive(Clone, Debug, PartialEq)]
pub struct FixtureProc {
    /// `Err`: its facts may not be read (a garbled `stat`, a denied `proc_pidinfo`).
    pub info: Result<ProcInfo, ReadError>,
    pub uid: u32,
    pub argv: Result<Vec<u8>, ReadError>,
    pub environ: Result<Vec<u8>, ReadError>,
    pub exe: Option<Vec<u8>>,
}

/// The table: processes by PID, as seen by the user `viewer`.
#[derive(Clone)]
pub struct Fixture {
    platform: &'static Platform,
    viewer: u32,
    procs: BTreeMap<i32, FixtureProc>,
    nested: BTreeSet<i32>,
    /// Whose PIDs these are (Linux: a made-up host and namespace; macOS: darwin).
    pub domain: super::PidDomain,
    buf: Vec<u8>,
}

impl Fixture {
    /// A Linux table with init and kthreadd, seen by `viewer`.
    pub fn linux(viewer: u32) -> Fixture {
        let mut f = Fixture::empty(&LINUX, viewer);
        f.spawn(1, 0, 0, &["/sbin/init"], &[]);
        f.spawn_named(2, 0, 0, b"kthreadd", &[], &[]);
        f
    }

    /// A macOS table with the kernel (PID 0) and launchd (PID 1), seen by `viewer`.
    pub fn macos(viewer: u32) -> Fixture {
        let mut f = Fixture::empty(&MACOS, viewer);
        f.spawn_named(0, 0, 0, b"kernel_task", &[], &[]);
        f.spawn(1, 0, 0, &["/sbin/launchd"], &[]);
        f
    }

    fn empty(platform: &'static Platform, viewer: u32) -> Fixture {
        Fixture {
            platform,
            viewer,
            procs: BTreeMap::new(),
            nested: BTreeSet::new(),
            domain: super::PidDomain {
                host: (platform == &LINUX).then(|| "f".repeat(32)),
                pid_namespace: (platform == &LINUX).then(|| "pid:[4026531836]".to_string()),
                darwin: platform == &MACOS,
            },
            buf: Vec::new(),
        }
    }

    /// Adds a running process; comm is argv[0]'s file name. Started 100 s ago.
    pub fn spawn(&mut self, pid: i32, ppid: i32, uid: u32, argv: &[&str], env: &[&str]) {
        let name = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or("");
        self.spawn_named(pid, ppid, uid, name.as_bytes(), argv, env);
    }

    /// Adds a running process with its own comm (Linux threads rename themselves, macOS
    /// native installs are named by their version).
    pub fn spawn_named(
        &mut self,
        pid: i32,
        ppid: i32,
        uid: u32,
        comm: &[u8],
        argv: &[&str],
        env: &[&str],
    ) {
        let nul = |parts: &[&str]| -> Vec<u8> {
            parts
                .iter()
                .flat_map(|p| p.bytes().chain(std::iter::once(0)))
                .collect()
        };
        let theirs = uid != self.viewer && self.viewer != 0;
        let macos = self.platform == &MACOS;
        let age = 100.0;
        let at = 1_790_000_000.0 - age;
        let id = if self.platform.start_in_ticks {
            // Ticks after a boot 10,000 s ago, at 100 per second.
            ((10_000.0 - age) * 100.0) as u64 + pid as u64
        } else {
            (at * 1e6) as u64 + pid as u64
        };
        let info = ProcInfo {
            pid,
            ppid,
            comm: comm[..comm.len().min(self.platform.comm_len)].to_vec(),
            zombie: false,
            started: (!(macos && theirs)).then_some(Started { id, at, age }),
            rss_bytes: if macos && theirs { 0 } else { 10 << 20 },
        };
        let denied = |b: Vec<u8>| {
            if theirs {
                Err(ReadError::Denied)
            } else {
                Ok(b)
            }
        };
        let proc = FixtureProc {
            info: Ok(info),
            uid,
            argv: if macos {
                denied(nul(argv))
            } else {
                Ok(nul(argv))
            },
            environ: denied(nul(env)),
            exe: (!theirs).then(|| {
                argv.first()
                    .map(|a| a.as_bytes().to_vec())
                    .unwrap_or_default()
            }),
        };
        self.procs.insert(pid, proc);
    }

    /// The process has exited and waits for its parent.
    pub fn zombify(&mut self, pid: i32) {
        let macos = self.platform == &MACOS;
        if let Some(p) = self.procs.get_mut(&pid) {
            if let Ok(info) = &mut p.info {
                info.zombie = true;
                info.rss_bytes = 0;
            }
            if macos {
                p.argv = Err(ReadError::Gone);
                p.environ = Err(ReadError::Gone);
            } else {
                p.argv = Ok(Vec::new());
                p.environ = Ok(Vec::new());
            }
        }
    }

    /// The process is gone: its PID is free.
    pub fn exit(&mut self, pid: i32) {
        self.procs.remove(&pid);
    }

    /// Some process in a PID namespace below ours has `pid` there (Linux only).
    pub fn nest(&mut self, pid: i32) {
        self.nested.insert(pid);
    }

    /// Direct access, for a fact a test sets by hand.
    pub fn get_mut(&mut self, pid: i32) -> Option<&mut FixtureProc> {
        self.procs.get_mut(&pid)
    }

    fn get(&self, pid: i32) -> Result<&FixtureProc, ReadError> {
        self.procs.get(&pid).ok_or(ReadError::Gone)
    }

    fn bytes(
        &mut self,
        pid: i32,
        which: fn(&FixtureProc) -> &Result<Vec<u8>, ReadError>,
    ) -> Result<&[u8], ReadError> {
        let b = which(self.get(pid)?).clone()?;
        self.buf = b;
        Ok(&self.buf)
    }
}

impl ProcessSource for Fixture {
    fn platform(&self) -> &'static Platform {
        self.platform
    }

    fn is_system(&self) -> bool {
        false
    }

    fn pids(&mut self) -> io::Result<Vec<i32>> {
        Ok(self.procs.keys().copied().collect())
    }

    fn uid(&mut self, pid: i32) -> Result<u32, ReadError> {
        self.get(pid).map(|p| p.uid)
    }

    fn info(&mut self, pid: i32) -> Result<ProcInfo, ReadError> {
        self.get(pid)?.info.clone()
    }

    fn argv(&mut self, pid: i32) -> Result<&[u8], ReadError> {
        self.bytes(pid, |p| &p.argv)
    }

    fn environ(&mut self, pid: i32) -> Result<&[u8], ReadError> {
        self.bytes(pid, |p| &p.environ)
    }

    fn exe(&mut self, pid: i32) -> Option<Vec<u8>> {
        self.get(pid).ok()?.exe.clone()
    }

    fn probe(&mut self, pid: i32) -> Probe {
        if self.procs.contains_key(&pid) {
            Probe::Alive
        } else {
            Probe::Dead
        }
    }

    fn children(&mut self, pid: i32) -> Result<Vec<i32>, ReadError> {
        self.get(pid)?;
        Ok(self
            .procs
            .values()
            .filter_map(|p| p.info.as_ref().ok())
            .filter(|i| i.ppid == pid && i.pid != pid)
            .map(|i| i.pid)
            .collect())
    }

    fn held_in_nested_namespace(&mut self, pid: i32) -> bool {
        self.nested.contains(&pid)
    }

    fn pid_domain(&mut self) -> super::PidDomain {
        self.domain.clone()
    }
}
