//! macOS: the process table through libproc (`proc_listallpids`, `proc_pidinfo`,
//! `proc_pidpath`, `proc_listpids`) and `sysctl(KERN_PROCARGS2)`, which gives a process's
//! arguments and environment in one call; pins are kqueue watches of a process's exit.
//! Facts and their sources: `../shared/reference/macos.md`. This backend is type-checked
//! here and has not yet run on a Mac (README, "macOS").

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use camino::Utf8Path;

use super::sys::{self, Rename, cvt};
use super::{
    MACOS, Platform, Probe, ProcInfo, ProcessSource, ReadError, Signal, SignalError, Started,
    procargs,
};

pub const PLATFORM: &Platform = &MACOS;

// The structs read from the kernel, at the sizes libproc's headers give (a libc that
// disagreed would make every read fail or, worse, misread).
const _: () = assert!(size_of::<libc::proc_bsdinfo>() == 136);
const _: () = assert!(size_of::<libc::proc_bsdshortinfo>() == 64);
const _: () = assert!(size_of::<libc::proc_taskinfo>() == 96);
const _: () = assert!(size_of::<libc::kevent>() == 32);
const _: () = assert!(size_of::<libc::timeval>() == 16);
const _: () = assert!(size_of::<libc::itimerval>() == 32);
const _: () = assert!(size_of::<libc::dirent>() == 1048);

// `proc_listpids` types, which libc does not define (`sys/proc_info.h`).
const PROC_PPID_ONLY: u32 = 6;

/// The system's table; a fixture tree is a Linux thing.
pub fn open(root: &Utf8Path) -> io::Result<Box<dyn ProcessSource>> {
    if root != Utf8Path::new("/proc") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a process-table tree is read on Linux only",
        ));
    }
    Ok(Box::new(LibProc::new()))
}

#[derive(Clone, Copy)]
struct Parsed {
    pid: i32,
    argv: (usize, usize),
    environ: (usize, usize),
}

/// libproc and sysctl, with the buffer of the last `KERN_PROCARGS2` read.
pub struct LibProc {
    args: Vec<u8>,
    /// The process the buffer holds, and where its argv and environment are in it.
    parsed: Option<Parsed>,
    /// `KERN_ARGMAX`, read once: a smaller buffer gets the tail of the area, not its head.
    argmax: Option<usize>,
    now: Option<f64>,
}

impl LibProc {
    fn new() -> LibProc {
        LibProc {
            args: Vec::new(),
            parsed: None,
            argmax: None,
            now: None,
        }
    }

    /// `KERN_PROCARGS2` of `pid`, parsed; the buffer stays for `environ`.
    fn procargs(&mut self, pid: i32) -> Result<(), ReadError> {
        self.parsed = None;
        let size = *self.argmax.get_or_insert_with(argmax);
        // Zero-filled once; later reads overwrite what they need.
        if self.args.len() < size {
            self.args.resize(size, 0);
        }
        let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
        let mut len = self.args.len();
        // SAFETY: the kernel writes at most `len` bytes into `args` and sets `len`.
        let r = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                3,
                self.args.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if r != 0 {
            let errno = io::Error::last_os_error().raw_os_error();
            // psutil's translation: gone when gone or a zombie; otherwise (EINVAL, EIO, 0:
            // another user's process, no user stack, a failed copy) denied.
            return Err(match errno {
                Some(libc::ESRCH) => ReadError::Gone,
                _ if sys::probe(pid) == Probe::Dead => ReadError::Gone,
                _ if short_info(pid).is_ok_and(|s| s.pbsi_status == libc::SZOMB) => ReadError::Gone,
                _ => ReadError::Denied,
            });
        }
        let p = procargs::parse(&self.args[..len.min(size)]).ok_or(ReadError::Denied)?;
        let base = self.args.as_ptr() as usize;
        let range = |s: &[u8]| {
            let at = s.as_ptr() as usize - base;
            (at, at + s.len())
        };
        self.parsed = Some(Parsed {
            pid,
            argv: range(p.argv),
            environ: range(p.environ),
        });
        Ok(())
    }

    fn now(&mut self) -> f64 {
        *self.now.get_or_insert_with(sys::realtime_secs)
    }
}

/// `proc_pidinfo` of one flavor into a zeroed `T` (the structs have private padding).
fn pidinfo<T>(pid: i32, flavor: libc::c_int, arg: u64) -> Result<T, ReadError> {
    // SAFETY: the libproc structs are plain data, valid when zeroed.
    let mut v: T = unsafe { std::mem::zeroed() };
    let size = size_of::<T>() as libc::c_int;
    // SAFETY: the kernel writes at most `size` bytes into `v`.
    let n = unsafe { libc::proc_pidinfo(pid, flavor, arg, (&raw mut v).cast(), size) };
    if n == size {
        return Ok(v);
    }
    if n != 0 {
        // A short answer sets no errno.
        return Err(ReadError::Denied);
    }
    Err(match io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => ReadError::Gone,
        _ => ReadError::Denied,
    })
}

/// `arg = 1`: a zombie answers too (with 0 it is `ESRCH`, and a file a zombie holds would be
/// kept as alive).
fn short_info(pid: i32) -> Result<libc::proc_bsdshortinfo, ReadError> {
    pidinfo(pid, libc::PROC_PIDT_SHORTBSDINFO, 1)
}

/// The full info; `arg = 1` makes it answer for a zombie too (else `ESRCH`).
fn bsd_info(pid: i32) -> Result<libc::proc_bsdinfo, ReadError> {
    pidinfo(pid, libc::PROC_PIDTBSDINFO, 1)
}

fn comm_of(raw: &[libc::c_char]) -> Vec<u8> {
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    bytes[..end].to_vec()
}

fn argmax() -> usize {
    match sysctl_int(libc::KERN_ARGMAX).and_then(|v| usize::try_from(v).ok()) {
        Some(v) if v > 0 => v.min(16 << 20),
        _ => 1 << 20,
    }
}

/// One `int` of `kern.*`.
fn sysctl_int(name: libc::c_int) -> Option<libc::c_int> {
    let mut mib = [libc::CTL_KERN, name];
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>();
    // SAFETY: the kernel writes one int.
    let r = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&raw mut v).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (r == 0).then_some(v)
}

/// A PID list from one of libproc's calls: sized by a first call with no buffer (`bytes`
/// says whether the call answers in bytes or in PIDs), with room for some born between.
fn pid_list(
    call: impl Fn(*mut libc::c_void, libc::c_int) -> libc::c_int,
    bytes: bool,
) -> io::Result<Vec<i32>> {
    let unit = if bytes { size_of::<i32>() } else { 1 };
    let first = call(std::ptr::null_mut(), 0);
    if first < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut pids = vec![0i32; first as usize / unit + 64];
    let room = (pids.len() * size_of::<i32>()).min(libc::c_int::MAX as usize) as libc::c_int;
    let n = call(pids.as_mut_ptr().cast(), room);
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    pids.truncate((n as usize / unit).min(pids.len()));
    pids.retain(|&p| p >= 0);
    Ok(pids)
}

impl ProcessSource for LibProc {
    fn platform(&self) -> &'static Platform {
        PLATFORM
    }

    fn is_system(&self) -> bool {
        true
    }

    fn pids(&mut self) -> io::Result<Vec<i32>> {
        // SAFETY: the kernel writes at most `size` bytes of PIDs into `buf`.
        pid_list(
            |buf, size| unsafe { libc::proc_listallpids(buf, size) },
            false,
        )
    }

    fn uid(&mut self, pid: i32) -> Result<u32, ReadError> {
        short_info(pid).map(|s| s.pbsi_uid)
    }

    /// The short info for anyone's process (ancestors may be root's); start time and
    /// memory only where allowed (same user, or root).
    fn info(&mut self, pid: i32) -> Result<ProcInfo, ReadError> {
        let short = short_info(pid)?;
        let now = self.now();
        let started = bsd_info(pid).ok().map(|b| {
            let at = b.pbi_start_tvsec as f64 + b.pbi_start_tvusec as f64 / 1e6;
            Started {
                id: b.pbi_start_tvsec.saturating_mul(1_000_000) + b.pbi_start_tvusec,
                at,
                age: (now - at).max(0.0),
            }
        });
        let rss_bytes = pidinfo::<libc::proc_taskinfo>(pid, libc::PROC_PIDTASKINFO, 0)
            .map_or(0, |t| t.pti_resident_size);
        Ok(ProcInfo {
            pid,
            ppid: short.pbsi_ppid as i32,
            comm: comm_of(&short.pbsi_comm),
            zombie: short.pbsi_status == libc::SZOMB,
            started,
            rss_bytes,
        })
    }

    fn argv(&mut self, pid: i32) -> Result<&[u8], ReadError> {
        self.procargs(pid)?;
        match self.parsed {
            Some(Parsed { argv: (a, b), .. }) => Ok(&self.args[a..b]),
            None => Err(ReadError::Denied),
        }
    }

    fn environ(&mut self, pid: i32) -> Result<&[u8], ReadError> {
        if self.parsed.is_none_or(|p| p.pid != pid) {
            self.procargs(pid)?;
        }
        match self.parsed {
            Some(Parsed {
                environ: (a, b), ..
            }) => Ok(&self.args[a..b]),
            None => Err(ReadError::Denied),
        }
    }

    fn exe(&mut self, pid: i32) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
        // SAFETY: the kernel writes at most `buf.len()` bytes.
        let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
        if n <= 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }

    fn probe(&mut self, pid: i32) -> Probe {
        sys::probe(pid)
    }

    fn children(&mut self, pid: i32) -> Result<Vec<i32>, ReadError> {
        let Ok(ppid) = u32::try_from(pid) else {
            return Err(ReadError::Gone);
        };
        // SAFETY: the kernel writes at most `size` bytes of PIDs into `buf`.
        pid_list(
            |buf, size| unsafe { libc::proc_listpids(PROC_PPID_ONLY, ppid, buf, size) },
            true,
        )
        .map_err(|_| ReadError::Denied)
    }

    fn held_in_nested_namespace(&mut self, _: i32) -> bool {
        false
    }

    /// Claude Code writes `darwin` on macOS.
    fn pid_domain(&mut self) -> super::PidDomain {
        super::PidDomain {
            darwin: true,
            ..super::PidDomain::default()
        }
    }
}

/// A process watched by a kqueue from before its facts were read: `EVFILT_PROC` with
/// `NOTE_EXIT` is tied to that one process (the attach fails for a zombie or a gone PID),
/// so its queue turns readable when it exits, PID reuse or not. macOS has no pidfd: a
/// signal goes by PID, right after the queue shows no exit and the start time read again
/// is the one pinned. The window left is that one system call.
pub struct Pinned {
    pub pid: i32,
    kq: OwnedFd,
    uid: u32,
    start: (u64, u64),
}

impl Pinned {
    pub fn open(pid: i32) -> io::Result<Pinned> {
        // SAFETY: kqueue takes no arguments and returns a new fd we own.
        let kq = cvt(unsafe { libc::kqueue() })?;
        // SAFETY: fresh fd from the kernel.
        let kq = unsafe { OwnedFd::from_raw_fd(kq) };
        let ident = usize::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: a zeroed kevent is valid; the fields that matter are set below.
        let mut change: libc::kevent = unsafe { std::mem::zeroed() };
        change.ident = ident;
        change.filter = libc::EVFILT_PROC;
        change.flags = libc::EV_ADD | libc::EV_RECEIPT;
        change.fflags = libc::NOTE_EXIT;
        // SAFETY: as above.
        let mut receipt: libc::kevent = unsafe { std::mem::zeroed() };
        // SAFETY: one change in, at most one receipt out, no waiting.
        let n = unsafe {
            libc::kevent(
                kq.as_raw_fd(),
                &change,
                1,
                &mut receipt,
                1,
                std::ptr::null(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let data = receipt.data;
        if n == 1 && receipt.flags & libc::EV_ERROR != 0 && data != 0 {
            return Err(io::Error::from_raw_os_error(data as i32));
        }
        let info = bsd_info(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        Ok(Pinned {
            pid,
            kq,
            uid: info.pbi_uid,
            start: (info.pbi_start_tvsec, info.pbi_start_tvusec),
        })
    }

    /// No exit reported on the queue.
    pub fn still_running(&self) -> bool {
        !sys::wait_readable(self.kq.as_fd(), Duration::ZERO).unwrap_or(true)
    }

    /// Signals the pinned process by PID, once its identity is read again and the queue
    /// shows no exit.
    pub fn signal(&self, signal: Signal) -> Result<(), SignalError> {
        let same = bsd_info(self.pid).is_ok_and(|b| {
            b.pbi_uid == self.uid
                && b.pbi_status != libc::SZOMB
                && (b.pbi_start_tvsec, b.pbi_start_tvusec) == self.start
        });
        if !same || !self.still_running() {
            return Err(SignalError::Gone);
        }
        // SAFETY: kill with a positive PID the checks above just tied to the pin.
        SignalError::check(unsafe { libc::kill(self.pid, signal.number()) }.into())
    }

    /// Waits until every pin's process has exited, or `timeout` passes: for each, whether
    /// it has. A kqueue with a pending event polls readable.
    pub fn wait_exited(pins: &[&Pinned], timeout: Duration) -> Vec<bool> {
        let fds: Vec<BorrowedFd> = pins.iter().map(|p| p.kq.as_fd()).collect();
        sys::wait_all_readable(&fds, timeout)
    }
}

/// Calls `f` with each name in a directory but `.` and `..` (`readdir` on a duplicate of
/// the handle: its offset is shared, so each handle is listed once).
pub fn for_each_name(dir: BorrowedFd, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    // SAFETY: dup of an fd we hold; the new fd is given to fdopendir, closed by closedir.
    let fd = cvt(unsafe { libc::dup(dir.as_raw_fd()) })?;
    // SAFETY: `fd` is a directory fd we own.
    let d = unsafe { libc::fdopendir(fd) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut result = Ok(());
    loop {
        // readdir says "the end" and "an error" both with NULL; errno tells them apart.
        // SAFETY: errno is this thread's.
        unsafe { *libc::__error() = 0 };
        // SAFETY: `d` is an open DIR; the entry stays valid until the next readdir.
        let entry = unsafe { libc::readdir(d) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(0) {
                result = Err(e);
            }
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            f(name);
        }
    }
    // SAFETY: closes the DIR and its fd.
    unsafe { libc::closedir(d) };
    result
}

/// Renames `from` to `to`, both in `dir` (`renameatx_np`). A file system without a flag
/// answers `EINVAL`, as on Linux (macOS says `ENOTSUP`).
pub fn rename_in(dir: BorrowedFd, from: &CStr, to: &CStr, how: Rename) -> io::Result<()> {
    let d = dir.as_raw_fd();
    let flags = match how {
        // SAFETY: valid C strings and a directory fd.
        Rename::Replace => {
            return cvt(unsafe { libc::renameat(d, from.as_ptr(), d, to.as_ptr()) }).map(drop);
        }
        Rename::NoReplace => libc::RENAME_EXCL,
        Rename::Exchange => libc::RENAME_SWAP,
    };
    // SAFETY: as above.
    match cvt(unsafe { libc::renameatx_np(d, from.as_ptr(), d, to.as_ptr(), flags) }) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
        r => r.map(drop),
    }
}

/// One read of a pipe that never waits, without touching the shared description's flags:
/// no more than `FIONREAD` says is there; nothing there and the pipe still readable means
/// its end (the writer closed it). A second reader taking the bytes between the two calls
/// could still make the read wait: that window is the cost of having no `RWF_NOWAIT`.
pub(super) fn read_pipe_nowait(
    fd: BorrowedFd,
    spare: *mut libc::c_void,
    room: usize,
) -> io::Result<isize> {
    let available = || -> io::Result<libc::c_int> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) })?;
        Ok(n)
    };
    let mut avail = available()?;
    if avail <= 0 {
        if !sys::wait_readable(fd, Duration::ZERO)? {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        // Readable: the end, unless a writer wrote since the first look.
        avail = available()?;
        if avail <= 0 {
            return Ok(0);
        }
    }
    let want = room.min(avail as usize);
    // SAFETY: the caller's spare capacity holds `room` ≥ `want` bytes.
    Ok(unsafe { libc::read(fd.as_raw_fd(), spare, want) })
}

pub(super) fn reopen_nonblocking_imp(_: BorrowedFd) -> io::Result<OwnedFd> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `kern.maxfilesperproc`: the hard limit is often `RLIM_INFINITY`, which `setrlimit`
/// refuses before macOS 12 and which the kernel caps at this anyway.
pub(super) fn open_file_ceiling() -> libc::rlim_t {
    match sysctl_int(libc::KERN_MAXFILESPERPROC).and_then(|v| libc::rlim_t::try_from(v).ok()) {
        Some(v) if v > 0 => v,
        _ => 10_240,
    }
}

/// When the deadline passes, for `deadline_reached`; unset unless the timers were armed.
static DEADLINE_AT: OnceLock<Instant> = OnceLock::new();

/// The deadline without POSIX timers. The one interval timer is the backstop: it sends
/// SIGALRM at `after + backstop`, left at its default action, which ends the process and,
/// unlike a handled signal, also interrupts a wait that only a fatal signal ends (a hung
/// NFS mount). The deadline itself is a time the checkpoints compare with the clock.
/// `_handler` is not installed: a handled SIGALRM would never end such a wait.
pub fn arm_deadline_timers(
    after: Duration,
    backstop: Duration,
    _handler: extern "C" fn(libc::c_int),
) -> io::Result<()> {
    let _ = DEADLINE_AT.set(Instant::now() + after);
    // SAFETY: restores the default action of SIGALRM.
    unsafe { libc::signal(libc::SIGALRM, libc::SIG_DFL) };
    let t = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: (after + backstop).as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_usec: (after + backstop).subsec_micros() as libc::suseconds_t,
        },
    };
    // SAFETY: valid pointer; the old value is not wanted.
    cvt(unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) }).map(drop)
}

/// Whether the armed deadline has passed (no timers armed: never).
#[inline]
pub fn deadline_reached() -> bool {
    DEADLINE_AT.get().is_some_and(|at| Instant::now() >= *at)
}
