//! Reading `/proc`: one `read` per file into a reused buffer, and the parsers for what is read.
//!
//! The parsers are pure functions over bytes, so they can be tested and fuzzed without a
//! process. `ProcFs` is rooted at a directory handle: the real `/proc`, or a fixture tree in
//! tests.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use camino::Utf8Path;

use crate::defaults;
use crate::sys;

/// The fields of `/proc/<pid>/stat` this program uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    /// At most 15 bytes in the kernel; any bytes, including spaces and `)`.
    pub comm: Vec<u8>,
    pub state: u8,
    pub ppid: i32,
    /// Clock ticks after boot.
    pub starttime: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

impl Stat {
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z' || self.state == b'X'
    }
}

/// Parses `pid (comm) state ppid … starttime(22) vsize rss(24) …`. comm may hold spaces and
/// parentheses, so it ends at the *last* `)`.
pub fn parse_stat(bytes: &[u8]) -> Option<Stat> {
    let open = bytes.iter().position(|&b| b == b'(')?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = parse_decimal(trim(&bytes[..open]))?;
    let comm = bytes[open + 1..close].to_vec();
    let rest = bytes.get(close + 1..)?;
    let mut fields = rest
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty());
    let state_field = fields.next()?;
    if state_field.len() != 1 {
        return None;
    }
    let state = state_field[0];
    let ppid = parse_decimal(fields.next()?)?;
    // Fields 5..=21 are skipped; starttime is field 22, rss field 24.
    let mut fields = fields.skip(17);
    let starttime = parse_u64(fields.next()?)?;
    let _vsize = fields.next()?;
    let rss = fields.next()?;
    // rss is signed in the kernel's format; a negative value is treated as zero.
    let rss_pages = if rss.first() == Some(&b'-') {
        0
    } else {
        parse_u64(rss)?
    };
    Some(Stat {
        pid,
        comm,
        state,
        ppid,
        starttime,
        rss_pages,
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn parse_decimal(b: &[u8]) -> Option<i32> {
    let v = parse_u64(b)?;
    i32::try_from(v).ok()
}

/// A PID written the canonical way: decimal digits, no sign, no leading zero, 1 up to the
/// kernel's largest possible PID.
pub fn parse_pid(s: &[u8]) -> Option<i32> {
    if s.is_empty() || s.len() > 7 || s[0] == b'0' || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u32 = std::str::from_utf8(s).ok()?.parse().ok()?;
    if v == 0 || v > defaults::PID_MAX_LIMIT {
        return None;
    }
    Some(v as i32)
}

/// The `NSpid:` line of `/proc/<pid>/status`: the process's PID in each PID namespace, from
/// the one of this `/proc` down to its own. Empty when the line is missing or garbled.
pub fn nspids(status: &[u8]) -> Vec<i32> {
    let Some(line) = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"NSpid:"))
    else {
        return Vec::new();
    };
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b'\t' || b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let pids: Vec<i32> = fields.iter().filter_map(|f| parse_pid(f)).collect();
    if pids.len() == fields.len() {
        pids
    } else {
        Vec::new()
    }
}

/// The arguments of a NUL-separated command line (a missing final NUL is tolerated).
pub fn split_args(cmdline: &[u8]) -> Vec<&[u8]> {
    let body = cmdline.strip_suffix(b"\0").unwrap_or(cmdline);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).collect()
}

/// Writes the command line into `out` with its arguments joined by spaces (what match rules
/// see), reusing `out`'s allocation.
pub fn join_cmdline_into(cmdline: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let body = cmdline.strip_suffix(b"\0").unwrap_or(cmdline);
    out.extend(body.iter().map(|&b| if b == 0 { b' ' } else { b }));
}

/// The command line as one string, arguments joined by spaces: what match rules see.
pub fn joined_cmdline(cmdline: &[u8]) -> String {
    let args = split_args(cmdline);
    let mut out = Vec::with_capacity(cmdline.len());
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(arg);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Claude Code's marks in a process environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaudeMarkers {
    /// `CLAUDECODE=1`.
    pub claudecode: bool,
    pub session_id: Option<String>,
    /// `CLAUDE_CODE_CHILD_SESSION` is set: a tool or hook child, not an MCP server.
    pub child_session: bool,
    pub project_dir: Option<String>,
}

impl ClaudeMarkers {
    /// Started by Claude Code as a (stdio MCP) server: the env rule.
    pub fn marks_server(&self) -> bool {
        self.claudecode && self.session_id.is_some() && !self.child_session
    }
}

/// Whether the environment holds exactly the entry `entry` (e.g. `CLAUDECODE=1`): one
/// `memmem` over the buffer, so most processes are settled without parsing theirs.
pub fn has_entry(environ: &[u8], entry: &[u8]) -> bool {
    let mut hay = environ;
    while let Some(at) = crate::glob::find(hay, entry) {
        let starts = at == 0 || hay[at - 1] == 0;
        let end = at + entry.len();
        if starts && (end == hay.len() || hay[end] == 0) {
            return true;
        }
        hay = &hay[at + 1..];
    }
    false
}

pub fn parse_environ(environ: &[u8]) -> ClaudeMarkers {
    let mut m = ClaudeMarkers::default();
    for entry in environ.split(|&b| b == 0) {
        if entry == b"CLAUDECODE=1" {
            m.claudecode = true;
        } else if let Some(v) = entry.strip_prefix(b"CLAUDE_CODE_SESSION_ID=")
            && !v.is_empty()
        {
            m.session_id = Some(String::from_utf8_lossy(v).into_owned());
        } else if entry.starts_with(b"CLAUDE_CODE_CHILD_SESSION=") {
            m.child_session = true;
        } else if let Some(v) = entry.strip_prefix(b"CLAUDE_PROJECT_DIR=")
            && !v.is_empty()
        {
            m.project_dir = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    m
}

/// Why a `/proc` read gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The process is gone (it exited between two reads).
    Gone,
    /// It exists but we may not look (another user, `hidepid`).
    Denied,
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
        sys::for_each_name(self.root.as_fd(), |name| pids.extend(parse_pid(name)))?;
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

    pub fn stat(&mut self, pid: i32) -> Result<Stat, ReadError> {
        let bytes = self.read(pid, "stat")?;
        // A stat file that does not parse is treated as a process we cannot judge.
        parse_stat(bytes).ok_or(ReadError::Denied)
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
    pub fn probe(&self, pid: i32) -> sys::Probe {
        if self.real {
            sys::probe(pid)
        } else {
            match self.uid(pid) {
                Err(ReadError::Gone) => sys::Probe::Dead,
                _ => sys::Probe::Alive,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(comm: &str) -> Vec<u8> {
        format!(
            "42 ({comm}) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
        )
        .into_bytes()
    }

    #[test]
    fn stat_fields() {
        let s = parse_stat(&stat_line("bun")).unwrap();
        assert_eq!(
            (
                s.pid,
                s.comm.as_slice(),
                s.state,
                s.ppid,
                s.starttime,
                s.rss_pages
            ),
            (42, &b"bun"[..], b'S', 7, 123456, 250)
        );
    }

    #[test]
    fn stat_comm_with_parentheses_and_spaces() {
        let s = parse_stat(&stat_line("x) S 1 (y z")).unwrap();
        assert_eq!(s.comm, b"x) S 1 (y z");
        assert_eq!((s.ppid, s.starttime), (7, 123456));
    }

    #[test]
    fn stat_rejects_truncated_and_garbage() {
        let full = stat_line("bun");
        // Up to the start of rss (field 24) a cut line lacks a field the parser needs.
        let rss_at = full.windows(5).position(|w| w == b" 250 ").unwrap();
        for cut in 0..=rss_at {
            assert_eq!(parse_stat(&full[..cut]), None, "cut at {cut}");
        }
        assert_eq!(parse_stat(b"99999999999999999999999 (a) S 1"), None);
        assert_eq!(parse_stat(b")("), None);
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
    fn pid_names() {
        assert_eq!(parse_pid(b"1"), Some(1));
        assert_eq!(parse_pid(b"4194304"), Some(4_194_304));
        for bad in [
            &b""[..],
            b"0",
            b"007",
            b"+5",
            b"-5",
            b"4194305",
            b"12a",
            b" 12",
            b"99999999",
        ] {
            assert_eq!(parse_pid(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn listing_twice_lists_everything_twice() {
        let mut fs = ProcFs::open(Utf8Path::new("/proc")).unwrap();
        let me = std::process::id() as i32;
        for _ in 0..3 {
            assert!(fs.pids().unwrap().contains(&me));
        }
    }

    #[test]
    fn nspid_lines() {
        let status = b"Name:\tsleep\nTgid:\t812\nNSpid:\t812\t7\t1\nPPid:\t1\n";
        assert_eq!(nspids(status), vec![812, 7, 1]);
        assert_eq!(nspids(b"NSpid:\t42\n"), vec![42]);
        assert_eq!(nspids(b"NSpid:\t42"), vec![42]);
        assert!(nspids(b"Name:\tx\n").is_empty());
        assert!(nspids(b"NSpid:\t42\tx\n").is_empty());
        assert!(nspids(b"NSpid:\n").is_empty());
    }

    #[test]
    fn args_and_join() {
        assert_eq!(split_args(b"a\0b c\0"), vec![&b"a"[..], b"b c"]);
        assert_eq!(split_args(b"a\0b"), vec![&b"a"[..], b"b"]);
        assert!(split_args(b"").is_empty());
        assert_eq!(
            joined_cmdline(b"bun\0/x/dist/server.js\0"),
            "bun /x/dist/server.js"
        );
        assert_eq!(joined_cmdline(b"\xff\0"), "\u{fffd}");
    }

    #[test]
    fn environ_markers() {
        let m = parse_environ(
            b"PATH=/bin\0CLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=abc\0CLAUDE_PROJECT_DIR=/p\0",
        );
        assert!(m.marks_server());
        assert_eq!(m.session_id.as_deref(), Some("abc"));
        assert_eq!(m.project_dir.as_deref(), Some("/p"));
        assert!(has_entry(b"A=1\0CLAUDECODE=1\0B=2", b"CLAUDECODE=1"));
        assert!(has_entry(b"CLAUDECODE=1", b"CLAUDECODE=1"));
        assert!(!has_entry(b"XCLAUDECODE=1\0CLAUDECODE=10", b"CLAUDECODE=1"));
        assert!(has_entry(b"XCLAUDECODE=1\0CLAUDECODE=1\0", b"CLAUDECODE=1"));
        let hook =
            parse_environ(b"CLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=abc\0CLAUDE_CODE_CHILD_SESSION=1");
        assert!(!hook.marks_server());
        assert!(!parse_environ(b"CLAUDECODE=0\0CLAUDE_CODE_SESSION_ID=abc").marks_server());
        assert!(!parse_environ(b"XCLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=abc").marks_server());
    }
}
