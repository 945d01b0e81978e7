//! Thin, safe wrappers over the few Linux system calls the program needs.
//!
//! This is the only module with `unsafe`. Everything here returns `io::Result` or a plain
//! value and never panics; callers decide what an error means.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
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
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
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

/// What `kill(pid, 0)` says about a PID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No process has this PID (`ESRCH`).
    Dead,
    /// Some process has it (success, or `EPERM`: it exists but is someone else's).
    Alive,
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

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, signal: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a pidfd we hold.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits until every pidfd reports its process gone, or `timeout` passes. Returns, for each
/// fd, whether its process is gone.
pub fn wait_exited(pidfds: &[BorrowedFd], timeout: Duration) -> Vec<bool> {
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

/// The file `fd` refers to, opened again through `/proc/self/fd`, non-blocking: a new
/// open file description, so the flag changes nothing for the processes that share `fd`'s.
/// (For a pipe where `RWF_NOWAIT` is not supported.)
pub fn reopen_nonblocking(fd: BorrowedFd) -> io::Result<OwnedFd> {
    let path = cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    open_read_at(None, &path, true)
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

/// Seconds since boot, counting suspend: the clock `/proc/<pid>/stat` starttime uses.
pub fn boottime_secs() -> f64 {
    clock_secs(libc::CLOCK_BOOTTIME)
}

/// Seconds since the Unix epoch.
pub fn realtime_secs() -> f64 {
    clock_secs(libc::CLOCK_REALTIME)
}

fn clock_secs(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Clock ticks per second for `/proc/<pid>/stat` times (glibc answers from the aux vector).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
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

/// Renames `from` to `to`, both in `dir`. `flags` 0 replaces `to` (plain `renameat`);
/// `libc::RENAME_NOREPLACE` fails with `EEXIST` if `to` exists; `libc::RENAME_EXCHANGE`
/// swaps the two atomically. File systems without a flag answer `EINVAL`.
pub fn rename_in(dir: BorrowedFd, from: &CStr, to: &CStr, flags: libc::c_uint) -> io::Result<()> {
    let d = dir.as_raw_fd();
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
/// announced). Sockets use `MSG_DONTWAIT` and pipes `RWF_NOWAIT`, both per call, so the
/// file description shared with the writer and with other processes keeps its flags.
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
        FdKind::Pipe => {
            let iov = libc::iovec {
                iov_base: spare.cast(),
                iov_len: room,
            };
            // SAFETY: one iovec over the spare capacity; offset -1 is "the current one".
            let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
                // A kernel without RWF_NOWAIT for pipes: the caller reads a description of
                // its own instead (`reopen_nonblocking`).
                return Err(io::Error::from(io::ErrorKind::Unsupported));
            }
            n
        }
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
