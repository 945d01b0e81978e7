//! Linux: the process table is `/proc` (the real one, or a directory tree in tests), read
//! with one `read` per file into a reused buffer; pins are pidfds.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use camino::Utf8Path;

use super::sys::{self, Rename, cvt};
use super::{
    LINUX, Platform, Probe, ProcInfo, ProcessSource, ReadError, Signal, SignalError, Started,
    procfs,
};
use crate::defaults;

pub const PLATFORM: &Platform = &LINUX;

/// The system's `/proc`, or a fixture tree at `root` (tests).
pub fn open(root: &Utf8Path) -> io::Result<Box<dyn ProcessSource>> {
    Ok(Box::new(ProcFs::open(root)?))
}

fn classify(err: &io::Error) -> ReadError {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENOTDIR) => ReadError::Gone,
        _ => ReadError::Denied,
    }
}

/// A `/proc` tree and a buffer reused for every read.
pub struct ProcFs {
    root: OwnedFd,
    /// The real `/proc`: PIDs in it are this system's, so `kill(pid, 0)` may be asked.
    real: bool,
    /// The root handle has been listed once.
    listed: bool,
    buf: Vec<u8>,
    /// The clocks that turn `stat` start times into ages, read at the first `info`.
    clock: Option<Clock>,
    /// The PIDs processes have in PID namespaces below ours, read once when first asked.
    nested_pids: Option<BTreeSet<i32>>,
    /// Whose PIDs these are, read once when first asked.
    domain: Option<super::PidDomain>,
}

impl ProcFs {
    pub fn open(root: &Utf8Path) -> io::Result<ProcFs> {
        let path = sys::cstring(root.as_str().as_bytes())?;
        let fd = sys::open_dir_at(None, &path, false)?;
        Ok(ProcFs {
            root: fd,
            real: root == Utf8Path::new("/proc"),
            listed: false,
            buf: Vec::with_capacity(16 * 1024),
            clock: None,
            nested_pids: None,
            domain: None,
        })
    }

    pub fn is_real(&self) -> bool {
        self.real
    }

    /// Every numeric entry: one directory listing (the handle is rewound first when it
    /// was listed before: a listing reads on from where the last one ended).
    pub fn pids(&mut self) -> io::Result<Vec<i32>> {
        if self.listed {
            sys::rewind(self.root.as_fd())?;
        }
        self.listed = true;
        let mut pids = Vec::with_capacity(512);
        sys::for_each_name(self.root.as_fd(), |name| {
            pids.extend(procfs::parse_pid(name))
        })?;
        Ok(pids)
    }

    /// The owner of `/proc/<pid>`: the process's user, known before reading anything of it.
    pub fn uid(&self, pid: i32) -> Result<u32, ReadError> {
        let name = PidPath::new(pid, "");
        sys::lstat_at(self.root.as_fd(), name.as_cstr())
            .map(|st| st.st_uid)
            .map_err(|e| classify(&e))
    }

    /// Reads `/proc/<pid>/<file>` whole (up to the cap) into the shared buffer.
    pub fn read(&mut self, pid: i32, file: &str) -> Result<&[u8], ReadError> {
        let path = PidPath::new(pid, file);
        let fd = sys::open_read_at(Some(self.root.as_fd()), path.as_cstr(), false)
            .map_err(|e| classify(&e))?;
        sys::read_all(fd.as_fd(), &mut self.buf, defaults::PROC_READ_CAP)
            .map_err(|e| classify(&e))?;
        Ok(&self.buf)
    }

    pub fn stat(&mut self, pid: i32) -> Result<procfs::Stat, ReadError> {
        let bytes = self.read(pid, "stat")?;
        // A stat file that does not parse is treated as a process we cannot judge.
        procfs::parse_stat(bytes).ok_or(ReadError::Denied)
    }

    /// The target of `/proc/<pid>/exe`; needs the right to trace the process.
    pub fn exe(&self, pid: i32) -> Option<Vec<u8>> {
        sys::readlink_at(self.root.as_fd(), PidPath::new(pid, "exe").as_cstr()).ok()
    }

    /// The PID namespace of `pid` (`pid:[<inode>]`), or of this process for `None`; needs
    /// the right to trace the process.
    pub fn pid_namespace(&self, pid: Option<i32>) -> Option<Vec<u8>> {
        let path = match pid {
            Some(pid) => PidPath::new(pid, "ns/pid"),
            None => PidPath::named("self/ns/pid"),
        };
        sys::readlink_at(self.root.as_fd(), path.as_cstr()).ok()
    }

    /// Whether a PID is taken. Asks the kernel for the real `/proc`; in a fixture tree a PID
    /// lives while its directory exists.
    fn probe_at(&self, pid: i32) -> Probe {
        if self.real {
            sys::probe(pid)
        } else {
            match self.uid(pid) {
                Err(ReadError::Gone) => Probe::Dead,
                _ => Probe::Alive,
            }
        }
    }
}

/// `<pid>/<file>` as a C string in a stack buffer: no allocation and no formatting
/// machinery per read (this runs several times for every process on the machine).
struct PidPath([u8; 48]);

impl PidPath {
    fn new(pid: i32, file: &str) -> PidPath {
        let mut buf = [0u8; 48];
        let mut digits = [0u8; 10];
        let mut n = pid.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            buf[i] = *d;
        }
        // File names here are short constants; a longer one is cut, never overflows, and
        // the last byte stays NUL.
        if !file.is_empty() {
            buf[len] = b'/';
            let room = buf.len() - len - 2;
            let name = &file.as_bytes()[..file.len().min(room)];
            buf[len + 1..len + 1 + name.len()].copy_from_slice(name);
        }
        PidPath(buf)
    }

    /// A fixed path below the root, such as `self/…`.
    fn named(path: &str) -> PidPath {
        let mut buf = [0u8; 48];
        let n = path.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&path.as_bytes()[..n]);
        PidPath(buf)
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }
}

/// Turns `stat` start times (ticks after boot) into ages and wall-clock times.
#[derive(Clone, Copy)]
struct Clock {
    boot_secs: f64,
    real_secs: f64,
    ticks: f64,
    page_size: u64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            boot_secs: boottime_secs(),
            real_secs: sys::realtime_secs(),
            ticks: clock_ticks() as f64,
            page_size: sys::page_size(),
        }
    }

    fn record(&self, s: procfs::Stat) -> ProcInfo {
        let age = (self.boot_secs - s.starttime as f64 / self.ticks).max(0.0);
        ProcInfo {
            pid: s.pid,
            ppid: s.ppid,
            zombie: s.is_zombie(),
            started: Some(Started {
                id: s.starttime,
                at: self.real_secs - age,
                age,
            }),
            rss_bytes: s.rss_pages * self.page_size,
            comm: s.comm,
        }
    }
}

impl ProcessSource for ProcFs {
    fn platform(&self) -> &'static Platform {
        PLATFORM
    }

    fn is_system(&self) -> bool {
        self.real
    }

    fn pids(&mut self) -> io::Result<Vec<i32>> {
        ProcFs::pids(self)
    }

    fn uid(&mut self, pid: i32) -> Result<u32, ReadError> {
        ProcFs::uid(self, pid)
    }

    fn info(&mut self, pid: i32) -> Result<ProcInfo, ReadError> {
        let stat = self.stat(pid)?;
        let clock = *self.clock.get_or_insert_with(Clock::now);
        Ok(clock.record(stat))
    }

    fn argv(&mut self, pid: i32) -> Result<&[u8], ReadError> {
        self.read(pid, "cmdline")
    }

    fn environ(&mut self, pid: i32) -> Result<&[u8], ReadError> {
        self.read(pid, "environ")
    }

    fn exe(&mut self, pid: i32) -> Option<Vec<u8>> {
        ProcFs::exe(self, pid)
    }

    fn probe(&mut self, pid: i32) -> Probe {
        self.probe_at(pid)
    }

    /// The children of the process's main thread (`task/<pid>/children`).
    fn children(&mut self, pid: i32) -> Result<Vec<i32>, ReadError> {
        let list = self.read(pid, &format!("task/{pid}/children"))?;
        Ok(list
            .split(|&b| b == b' ' || b == b'\n')
            .filter_map(procfs::parse_pid)
            .collect())
    }

    /// The later entries of `NSpid:` in each process's status. The reaper asks only about
    /// PIDs that no process here has. The first call looks at every process's namespace
    /// (one `readlink`), and reads the status only of those in another namespace, or whose
    /// namespace it may not see (another user's): on a machine without containers, one
    /// readlink per process.
    fn held_in_nested_namespace(&mut self, pid: i32) -> bool {
        if self.nested_pids.is_none() {
            let ours = self.pid_namespace(None);
            let mut nested = BTreeSet::new();
            for p in ProcFs::pids(self).unwrap_or_default() {
                if ours.is_some() && self.pid_namespace(Some(p)) == ours {
                    continue;
                }
                if let Ok(status) = self.read(p, "status") {
                    nested.extend(procfs::nspids(status).into_iter().skip(1));
                }
            }
            self.nested_pids = Some(nested);
        }
        self.nested_pids.as_ref().is_some_and(|n| n.contains(&pid))
    }

    /// `/etc/machine-id` and this process's `ns/pid`, read once, for the real `/proc`; a
    /// fixture tree's is unknown.
    fn pid_domain(&mut self) -> super::PidDomain {
        if !self.real {
            return super::PidDomain::default();
        }
        if self.domain.is_none() {
            let host = sys::cstring(b"/etc/machine-id")
                .and_then(|p| sys::open_read_at(None, &p, true))
                .ok()
                .and_then(|fd| {
                    let mut buf = Vec::new();
                    sys::read_all(fd.as_fd(), &mut buf, 256).ok()?;
                    let id = std::str::from_utf8(&buf).ok()?.trim().to_string();
                    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
                });
            self.domain = Some(super::PidDomain {
                host,
                pid_namespace: self
                    .pid_namespace(None)
                    .and_then(|l| String::from_utf8(l).ok()),
                darwin: false,
            });
        }
        self.domain.clone().unwrap_or_default()
    }
}

/// One process held by a pidfd from before its files were read. While the process runs,
/// its PID cannot be given to another, so reads made between `open` and a later
/// `still_running` were reads of this process, and a signal through the pidfd reaches it
/// or nobody: race-free.
pub struct Pinned {
    pub pid: i32,
    fd: OwnedFd,
}

impl Pinned {
    pub fn open(pid: i32) -> io::Result<Pinned> {
        // SAFETY: plain syscall; returns a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pinned {
            pid,
            // SAFETY: fresh fd from the kernel.
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        })
    }

    /// Not exited (a zombie has exited).
    pub fn still_running(&self) -> bool {
        !sys::wait_all_readable(&[self.fd.as_fd()], Duration::ZERO)[0]
    }

    pub fn signal(&self, signal: Signal) -> Result<(), SignalError> {
        // SAFETY: plain syscall on a pidfd we hold.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal.number(),
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        SignalError::check(ret)
    }

    /// Waits until every pin's process has exited, or `timeout` passes: for each, whether
    /// it has.
    pub fn wait_exited(pins: &[&Pinned], timeout: Duration) -> Vec<bool> {
        let fds: Vec<BorrowedFd> = pins.iter().map(|p| p.fd.as_fd()).collect();
        sys::wait_all_readable(&fds, timeout)
    }
}

/// Calls `f` with each name in a directory but `.` and `..`: `getdents64` straight into a
/// buffer, since `fdopendir` would cost a dup, an fstat and three fcntls per listing, and a
/// name is allocated only if `f` keeps it. Reads from the handle's current offset, so each
/// handle is listed once.
pub fn for_each_name(dir: BorrowedFd, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    // Not zero-filled: only what the kernel writes is read, and untouched pages stay unmapped.
    let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
    loop {
        // SAFETY: the kernel writes at most `capacity` bytes of dirent64 records into the
        // spare capacity; only the `n` bytes it reports are then exposed by `set_len`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.capacity(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel initialised these `n` bytes.
        unsafe { buf.set_len(n as usize) };
        if n == 0 {
            return Ok(());
        }
        let mut at = 0usize;
        while at + 19 < n as usize {
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            if reclen == 0 || at + reclen > n as usize {
                break;
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                f(name);
            }
            at += reclen;
        }
    }
}

/// Seconds since boot, counting suspend: the clock `/proc/<pid>/stat` starttime uses.
pub fn boottime_secs() -> f64 {
    sys::clock_secs(libc::CLOCK_BOOTTIME)
}

/// Clock ticks per second for `/proc/<pid>/stat` times (glibc answers from the aux vector).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// A one-shot kernel timer on the monotonic clock that sends `signal` to this process:
/// it needs no thread, so it works where no thread can start (a user at the process
/// limit). Returns the timer's id for `rearm_timer`.
pub fn signal_timer(signal: i32, after: Duration) -> io::Result<i32> {
    // SAFETY: a zeroed sigevent is valid; the public fields are set below.
    let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
    ev.sigev_notify = libc::SIGEV_SIGNAL;
    ev.sigev_signo = signal;
    let mut id: libc::c_int = 0;
    // SAFETY: the kernel reads `ev` and writes the timer id (an int in the kernel's ABI).
    let r = unsafe {
        libc::syscall(
            libc::SYS_timer_create,
            libc::CLOCK_MONOTONIC,
            &mut ev as *mut libc::sigevent,
            &mut id as *mut libc::c_int,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    rearm_timer(id, after)?;
    Ok(id)
}

/// Sets timer `id` to fire once, `after` from now, or disarms it for a zero `after`
/// (async-signal-safe).
pub fn rearm_timer(id: i32, after: Duration) -> io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: after.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: the kernel reads `spec`; the old value is not wanted.
    let r = unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            id,
            0,
            &spec as *const libc::itimerspec,
            std::ptr::null_mut::<libc::itimerspec>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The most open files the kernel allows a process beyond its hard limit: none.
pub(super) fn open_file_ceiling() -> libc::rlim_t {
    libc::rlim_t::MAX
}

/// The deadline's timers: SIGALRM `after`, handled by `handler`, and SIGKILL
/// `after + backstop`, never disarmed.
pub fn arm_deadline_timers(
    after: Duration,
    backstop: Duration,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<()> {
    sys::on_signal(libc::SIGALRM, handler)?;
    signal_timer(libc::SIGALRM, after)?;
    signal_timer(libc::SIGKILL, after + backstop)?;
    Ok(())
}

/// The handler's flag says when the deadline passed here.
#[inline]
pub fn deadline_reached() -> bool {
    false
}

/// Renames `from` to `to`, both in `dir` (`renameat2`). File systems without a flag
/// answer `EINVAL`.
pub fn rename_in(dir: BorrowedFd, from: &CStr, to: &CStr, how: Rename) -> io::Result<()> {
    let d = dir.as_raw_fd();
    let flags = match how {
        Rename::Replace => 0,
        Rename::NoReplace => libc::RENAME_NOREPLACE,
        Rename::Exchange => libc::RENAME_EXCHANGE,
    };
    if flags == 0 {
        // SAFETY: valid C strings and a directory fd.
        return cvt(unsafe { libc::renameat(d, from.as_ptr(), d, to.as_ptr()) }).map(drop);
    }
    // SAFETY: as above; renameat2 has no libc wrapper on every libc, so the raw syscall.
    let r = unsafe { libc::syscall(libc::SYS_renameat2, d, from.as_ptr(), d, to.as_ptr(), flags) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One read of a pipe that never waits: `preadv2(RWF_NOWAIT)`, per call. `Unsupported`
/// where the kernel lacks it for pipes.
pub(super) fn read_pipe_nowait(
    fd: BorrowedFd,
    spare: *mut libc::c_void,
    room: usize,
) -> io::Result<isize> {
    let iov = libc::iovec {
        iov_base: spare,
        iov_len: room,
    };
    // SAFETY: one iovec over the caller's spare capacity of `room` bytes; offset -1 is
    // "the current one".
    let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
    if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(n)
}

pub(super) fn reopen_nonblocking_imp(fd: BorrowedFd) -> io::Result<OwnedFd> {
    let path = sys::cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    sys::open_read_at(None, &path, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::sys::{FdKind, read_nowait, reopen_nonblocking};
    use std::os::fd::AsFd;

    /// The promise itself: with nothing to read and the writer still there (as when another
    /// reader took what `poll` announced), a read of a pipe or a socket returns at once.
    /// (A read that waits would hang here: it is bounded by the channel's time-out.)
    #[test]
    fn reads_of_an_empty_pipe_or_socket_do_not_wait() {
        for kind in [FdKind::Pipe, FdKind::Socket] {
            let mut fds = [0; 2];
            // SAFETY: pipe2 and socketpair write two fds, owned below.
            let r = unsafe {
                match kind {
                    FdKind::Pipe => libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC),
                    _ => libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()),
                }
            };
            assert_eq!(r, 0);
            // SAFETY: fresh fds.
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = tx.send(read_nowait(r.as_fd(), kind, &mut buf, 10).map_err(|e| e.kind()));
            });
            let got = rx.recv_timeout(Duration::from_secs(5));
            assert_eq!(got, Ok(Err(io::ErrorKind::WouldBlock)), "{kind:?}");
            drop(w);
        }
    }

    /// The fallback for pipes without RWF_NOWAIT: a description of our own that does not
    /// wait, while the original one still does.
    #[test]
    fn a_reopened_pipe_does_not_wait() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds, owned below.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh fds.
        let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let own = reopen_nonblocking(r.as_fd()).unwrap();
        let mut buf = Vec::new();
        let e = read_nowait(own.as_fd(), FdKind::Other, &mut buf, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // SAFETY: F_GETFL on an fd we hold.
        let flags = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(
            flags & libc::O_NONBLOCK,
            0,
            "the shared description changed"
        );
    }

    #[test]
    fn paths_below_proc() {
        assert_eq!(PidPath::new(1, "").as_cstr(), c"1");
        assert_eq!(
            PidPath::new(4194304, "task/2/children").as_cstr(),
            c"4194304/task/2/children"
        );
        assert_eq!(PidPath::new(90, "cmdline").as_cstr(), c"90/cmdline");
        let long = "x".repeat(100);
        assert_eq!(PidPath::new(7, &long).as_cstr().to_bytes().len(), 47);
    }

    #[test]
    fn listing_twice_lists_everything_twice() {
        let mut fs = ProcFs::open(Utf8Path::new("/proc")).unwrap();
        let me = std::process::id() as i32;
        for _ in 0..3 {
            assert!(fs.pids().unwrap().contains(&me));
        }
    }
}
