//! The parsers for Linux's `/proc` formats (`stat`, `status`, PID names): pure functions
//! over bytes, built and tested on every target and fuzzed, without a process.

use crate::defaults;

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
    fn nspid_lines() {
        let status = b"Name:\tsleep\nTgid:\t812\nNSpid:\t812\t7\t1\nPPid:\t1\n";
        assert_eq!(nspids(status), vec![812, 7, 1]);
        assert_eq!(nspids(b"NSpid:\t42\n"), vec![42]);
        assert_eq!(nspids(b"NSpid:\t42"), vec![42]);
        assert!(nspids(b"Name:\tx\n").is_empty());
        assert!(nspids(b"NSpid:\t42\tx\n").is_empty());
        assert!(nspids(b"NSpid:\n").is_empty());
    }
}
