//! Thin, safe wrappers over the POSIX calls the program needs, and (re-exported from the
//! platform's module) the few that differ per OS: directory listing, renames with flags,
//! non-waiting pipe reads, the deadline's timers.
//!
//! Everything here returns `io::Result` or a plain value and never panics; callers decide
//! what an error means.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub use super::Probe;
pub use super::imp::{arm_deadline_timers, deadline_reached, for_each_name, rename_in};
#[cfg(target_os = "linux")]
pub use super::imp::{boottime_secs, clock_ticks};
use super::imp::{open_file_ceiling, read_pipe_nowait, reopen_nonblocking_imp};

pub(super) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path for a `*at` call; a name with an interior NUL cannot exist on disk.
pub fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))
}

/// Opens a directory. With `nofollow`, a symlink in the last component fails with `ELOOP`
/// (or `ENOTDIR`) instead of being followed.
pub fn open_dir_at(dir: Option<BorrowedFd>, path: &CStr, nofollow: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let base = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is a valid C string; the returned fd is owned by us.
    let fd = cvt(unsafe { libc::openat(base, path.as_ptr(), flags) })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a file for reading. `O_NONBLOCK` keeps a FIFO from blocking the open itself.
pub fn open_read_at(dir: Option<BorrowedFd>, path: &CStr, nonblock: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY;
    if nonblock {
        flags |= libc::O_NONBLOCK;
    }
    let base = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: as in `open_dir_at`.
    let fd = cvt(unsafe { libc::openat(base, path.as_ptr(), flags) })?;
    // SAFETY: as in `open_dir_at`.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a whole file into `buf` (cleared first) with as few `read` calls as possible:
/// `/proc` files fill a buffer as far as they can, so a short read means the end. The
/// buffer grows up to `cap`; what lies beyond `cap` is not read.
pub fn read_all(fd: BorrowedFd, buf: &mut Vec<u8>, cap: usize) -> io::Result<()> {
    buf.clear();
    if buf.capacity() == 0 {
        buf.reserve(4096);
    }
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= cap {
                return Ok(());
            }
            buf.reserve(buf.capacity().min(cap - buf.len()));
        }
        let spare = buf.capacity() - buf.len();
        // SAFETY: we write at most `spare` bytes into the vector's spare capacity and only
        // extend its length by what the kernel reports as written.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr().add(buf.len()).cast(),
                spare,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let n = n as usize;
        // SAFETY: the kernel initialised `n` bytes past the old length.
        unsafe { buf.set_len(buf.len() + n) };
        if n == 0 || n < spare {
            return Ok(());
        }
    }
}

/// The names in a directory that `keep` accepts, without `.` and `..`.
pub fn list_dir(dir: BorrowedFd, mut keep: impl FnMut(&[u8]) -> bool) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for_each_name(dir, |name| {
        if keep(name)
            && let Ok(c) = CString::new(name)
        {
            names.push(c);
        }
    })?;
    Ok(names)
}

/// Raises this process's soft limit of open files to its hard limit (`--kill` keeps a pidfd
/// per orphan, and a machine may have more orphans than the usual 1,024). Returns the
/// limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes `lim`; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let ceiling = lim.rlim_max.min(open_file_ceiling());
        if lim.rlim_cur < ceiling {
            let raised = libc::rlimit {
                rlim_cur: ceiling,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// Moves a directory handle back to its first entry.
pub fn rewind(dir: BorrowedFd) -> io::Result<()> {
    // SAFETY: lseek on an fd we hold.
    if unsafe { libc::lseek(dir.as_raw_fd(), 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fstatat` without following a symlink in the last component.
pub fn lstat_at(dir: BorrowedFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded.
    Ok(unsafe { st.assume_init() })
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: as in `lstat_at`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded.
    Ok(unsafe { st.assume_init() })
}

pub fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

pub fn unlink_at(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

pub fn readlink_at(dir: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: the kernel writes at most `buf.len()` bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Probes a PID. Never called with a PID ≤ 0, which would address process groups.
pub fn probe(pid: i32) -> Probe {
    if pid <= 0 {
        return Probe::Alive;
    }
    // SAFETY: signal 0 sends nothing; it only checks existence and permission.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return Probe::Alive;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => Probe::Dead,
        _ => Probe::Alive,
    }
}

/// Waits until every fd is readable, or `timeout` passes; for each fd, whether it is. (A
/// pidfd or a kqueue of a pin turns readable when its process exits.)
pub fn wait_all_readable(pidfds: &[BorrowedFd], timeout: Duration) -> Vec<bool> {
    let mut gone = vec![false; pidfds.len()];
    let end = std::time::Instant::now() + timeout;
    loop {
        let mut polls: Vec<libc::pollfd> = pidfds
            .iter()
            .zip(&gone)
            .filter(|(_, g)| !**g)
            .map(|(fd, _)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if polls.is_empty() {
            return gone;
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `polls` is a valid array of pollfd.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return gone;
        }
        for p in &polls {
            if p.revents != 0
                && let Some(i) = pidfds.iter().position(|fd| fd.as_raw_fd() == p.fd)
            {
                gone[i] = true;
            }
        }
        if n == 0 || left.is_zero() {
            return gone;
        }
    }
}

/// Waits until `fd` is readable or `timeout` passes; true when readable (or hung up).
pub fn wait_readable(fd: BorrowedFd, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The file `fd` refers to, opened again as a new, non-blocking open file description
/// (Linux: through `/proc/self/fd`), so the flag changes nothing for the processes that
/// share `fd`'s; `Unsupported` where no such reopening exists (macOS).
pub fn reopen_nonblocking(fd: BorrowedFd) -> io::Result<OwnedFd> {
    reopen_nonblocking_imp(fd)
}

/// How `rename_in` treats an existing `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rename {
    /// Replace it (plain `renameat`).
    Replace,
    /// Fail with `EEXIST`.
    NoReplace,
    /// Swap the two atomically.
    Exchange,
}

/// What `fd` is, from `fstat`: `None` for a character device (a terminal, `/dev/null`),
/// which is never read as input, and when `fd` is not open.
pub fn fd_kind(fd: BorrowedFd) -> Option<FdKind> {
    match fstat(fd).ok()?.st_mode & libc::S_IFMT {
        libc::S_IFCHR => None,
        libc::S_IFSOCK => Some(FdKind::Socket),
        libc::S_IFIFO => Some(FdKind::Pipe),
        _ => Some(FdKind::Other),
    }
}

/// Seconds since the Unix epoch.
pub fn realtime_secs() -> f64 {
    clock_secs(libc::CLOCK_REALTIME)
}

pub(super) fn clock_secs(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn pid() -> i32 {
    std::process::id() as i32
}

/// Ends the process at once with `code`: no at-exit work, nothing flushed but what the
/// caller flushed. Safe in a signal handler, and from any thread (it ends them all, also
/// one stuck in a kernel wait).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Installs `handler` for `signal` (no `SA_RESTART`: an interrupted call returns `EINTR`,
/// which every loop here retries).
pub fn on_signal(signal: i32, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is a
    // plain `extern "C"` function.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as libc::sighandler_t;
    // SAFETY: valid pointers; the old action is not wanted.
    cvt(unsafe { libc::sigaction(signal, &act, std::ptr::null_mut()) }).map(drop)
}

/// The effective user ID: whose permissions the process acts with.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `name` in `dir` for writing, failing with `EEXIST` if anything already has that
/// name (a symlink included: it is not followed). `mode` is narrowed by the umask.
pub fn create_new_at(dir: BorrowedFd, name: &CStr, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let flags = libc::O_WRONLY
        | libc::O_CREAT
        | libc::O_EXCL
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NOCTTY;
    // SAFETY: `name` is a valid C string; the returned fd is owned by us.
    let fd =
        cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What kind of file an fd is, for reading it without blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    Socket,
    Pipe,
    /// A regular file, or anything else that `poll` always reports ready.
    Other,
}

/// One read of at most `max_len - buf.len()` bytes appended to `buf`, which never waits:
/// `WouldBlock` when nothing is there (even when another reader took the data `poll`
/// announced). Sockets use `MSG_DONTWAIT` per call, so the file description shared with
/// the writer and with other processes keeps its flags; pipes, the platform's way
/// (Linux: `RWF_NOWAIT`; macOS: no more than `FIONREAD` says is there). `Unsupported` when
/// the pipe cannot be read so: then read `reopen_nonblocking`'s description instead.
pub fn read_nowait(
    fd: BorrowedFd,
    kind: FdKind,
    buf: &mut Vec<u8>,
    max_len: usize,
) -> io::Result<usize> {
    if buf.len() == buf.capacity() {
        let left = max_len.saturating_sub(buf.len()).max(1);
        buf.reserve(buf.len().max(4096).min(left));
    }
    let room = (buf.capacity() - buf.len()).min(max_len.saturating_sub(buf.len()));
    // SAFETY: the spare capacity is valid for `room` bytes.
    let spare = unsafe { buf.as_mut_ptr().add(buf.len()) };
    let n = match kind {
        // SAFETY: the kernel writes at most `room` bytes into the spare capacity.
        FdKind::Socket => unsafe {
            libc::recv(fd.as_raw_fd(), spare.cast(), room, libc::MSG_DONTWAIT)
        },
        FdKind::Pipe => read_pipe_nowait(fd, spare.cast(), room)?,
        // SAFETY: as above.
        FdKind::Other => unsafe { libc::read(fd.as_raw_fd(), spare.cast(), room) },
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `n` bytes past the old length were initialised by the kernel.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
}

/// Gives the file `from` in `dir` the second name `to`; `EEXIST` if `to` exists.
pub fn link_in(dir: BorrowedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    let d = dir.as_raw_fd();
    // SAFETY: valid C strings and a directory fd; no flags, so no symlink is followed.
    cvt(unsafe { libc::linkat(d, from.as_ptr(), d, to.as_ptr(), 0) }).map(drop)
}

/// `flock(fd, op)`, again when a signal interrupts the wait.
pub fn flock(fd: BorrowedFd, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: plain syscall on an fd we hold.
        match cvt(unsafe { libc::flock(fd.as_raw_fd(), op) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(drop),
        }
    }
}

/// A wall-clock second broken down in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 0 = January.
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

/// `secs` since the epoch in local time (`localtime_r`: `TZ`, else the system's zone).
pub fn local_time(secs: i64) -> Option<LocalTime> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: a zeroed tm is a valid out-value; localtime_r writes it or returns null.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    let u = |v: libc::c_int| u32::try_from(v).ok();
    Some(LocalTime {
        year: tm.tm_year.checked_add(1900)?,
        month: u(tm.tm_mon)?,
        day: u(tm.tm_mday)?,
        hour: u(tm.tm_hour)?,
        minute: u(tm.tm_min)?,
        second: u(tm.tm_sec)?,
        weekday: u(tm.tm_wday)?,
    })
}

/// The permission bits of a `stat` (`st_mode` is 16 bits on macOS, 32 on Linux).
#[allow(clippy::unnecessary_cast)]
pub fn permission_bits(st: &libc::stat) -> u32 {
    st.st_mode as u32 & 0o7777
}

/// A write to a closed pipe must fail with EPIPE, not kill the hook with SIGPIPE. (main.rs
/// skips std's runtime set-up, which would otherwise do this at every start.)
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no other effect.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
