//! Claude Code's registry of live sessions: `${CLAUDE_CONFIG_DIR:-~/.claude}/sessions/<pid>.json`
//! holds `{"pid", "sessionId", "procStart", "pidDomain", ...}`. A session is live when its
//! PID exists and that process's start time still equals `procStart`. Entries are left
//! behind by a killed session, so the start time check is what makes an entry trustworthy.
//!
//! `procStart` is Linux's `stat` field 22 (clock ticks after boot) as a string, or, with
//! `"pidDomain": "darwin"`, `ps -o lstart` text in local time to the second
//! (`"Mon Oct  5 09:12:34 2026"`), compared with the process's start rendered the same way.
//!
//! Read only when a candidate orphan names a session, and then once.

use std::os::fd::AsFd;

use camino::Utf8PathBuf;
use serde_json::Value;

use crate::defaults;
use crate::os::sys::{self, LocalTime};
use crate::os::{Platform, Started};
use crate::process_table::ProcessTable;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub pid: i32,
    pub session_id: String,
    pub proc_start: ProcStart,
    /// Whose PIDs these are: `linux:<host>:pid:[<inode>]`, `darwin`; absent before 2.1.332.
    pub pid_domain: Option<String>,
}

/// When the session's process started, as Claude Code wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcStart {
    /// Clock ticks after boot (Linux).
    Ticks(u64),
    /// `ps -o lstart` text, local time (macOS, `"pidDomain": "darwin"`).
    LocalTime(String),
}

impl ProcStart {
    /// Whether a process that started at `started` is the one the entry names. `local`
    /// renders a wall-clock second in local time. Ticks mean nothing on a platform whose
    /// start identity is not in ticks: such an entry cannot be checked, and is taken as live
    /// (unknown is never orphan).
    pub fn matches(
        &self,
        started: &Started,
        platform: &Platform,
        local: impl Fn(i64) -> Option<LocalTime>,
    ) -> bool {
        match self {
            ProcStart::Ticks(t) => !platform.start_in_ticks || *t == started.id,
            ProcStart::LocalTime(text) => {
                local(started.at.floor() as i64).is_some_and(|tm| lstart(&tm) == *text)
            }
        }
    }
}

/// `ps -o lstart`'s form: `Mon Oct  5 09:12:34 2026` (the day padded to two).
pub fn lstart(tm: &LocalTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS.get(tm.weekday as usize).unwrap_or(&"???"),
        MONTHS.get(tm.month as usize).unwrap_or(&"???"),
        tm.day,
        tm.hour,
        tm.minute,
        tm.second,
        tm.year
    )
}

pub struct Registry {
    dir: Option<Utf8PathBuf>,
    entries: Option<Vec<Entry>>,
}

impl Registry {
    /// The registry folder from `CLAUDE_CONFIG_DIR` or `HOME`.
    pub fn from_env() -> Registry {
        let get = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        let base = get("CLAUDE_CONFIG_DIR")
            .map(Utf8PathBuf::from)
            .or_else(|| get("HOME").map(|h| Utf8PathBuf::from(h).join(".claude")));
        Registry {
            dir: base.map(|b| b.join("sessions")),
            entries: None,
        }
    }

    /// The registry in `dir` (a `sessions` folder).
    pub fn at(dir: Utf8PathBuf) -> Registry {
        Registry {
            dir: Some(dir),
            entries: None,
        }
    }

    /// Is `session_id` a live session?
    pub fn is_live(&mut self, session_id: &str, table: &mut ProcessTable) -> bool {
        let dir = self.dir.clone();
        let entries = self
            .entries
            .get_or_insert_with(|| dir.map(|d| load(&d)).unwrap_or_default());
        let platform = table.source.platform();
        entries
            .iter()
            .filter(|e| e.session_id == session_id)
            .any(|e| match table.stat(e.pid) {
                Ok(s) if !s.zombie => s.started.is_none_or(|started| {
                    e.proc_start.matches(&started, platform, sys::local_time)
                }),
                _ => false,
            })
    }
}

fn load(dir: &camino::Utf8Path) -> Vec<Entry> {
    let Ok(c) = sys::cstring(dir.as_str().as_bytes()) else {
        return Vec::new();
    };
    let Ok(fd) = sys::open_dir_at(None, &c, false) else {
        return Vec::new();
    };
    let Ok(names) = sys::list_dir(fd.as_fd(), |n| n.ends_with(b".json")) else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    names
        .iter()
        .take(defaults::MAX_REGISTRY_FILES)
        .filter_map(|name| {
            let file = sys::open_read_at(Some(fd.as_fd()), name, true).ok()?;
            if !sys::is_regular(&sys::fstat(file.as_fd()).ok()?) {
                return None;
            }
            sys::read_all(file.as_fd(), &mut buf, 64 * 1024).ok()?;
            parse_entry(&buf)
        })
        .collect()
}

/// One registry file; `procStart` is a string in the files seen so far, a number is accepted
/// too. With `"pidDomain": "darwin"` it is lstart text.
pub fn parse_entry(bytes: &[u8]) -> Option<Entry> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let pid = i32::try_from(v.get("pid")?.as_i64()?)
        .ok()
        .filter(|p| *p > 0)?;
    let session_id = v.get("sessionId")?.as_str()?.to_string();
    let darwin = v.get("pidDomain").and_then(Value::as_str) == Some("darwin");
    let proc_start = match v.get("procStart")? {
        Value::String(s) if darwin && !s.trim().is_empty() => ProcStart::LocalTime(s.clone()),
        Value::String(s) => ProcStart::Ticks(s.parse().ok()?),
        Value::Number(n) => ProcStart::Ticks(n.as_u64()?),
        _ => return None,
    };
    Some(Entry {
        pid,
        session_id,
        proc_start,
        pid_domain: v
            .get("pidDomain")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let e = parse_entry(br#"{"pid":123,"sessionId":"s-1","cwd":"/p","startedAt":1,"procStart":"4567","version":"2.1.197"}"#);
        assert_eq!(
            e,
            Some(Entry {
                pid: 123,
                session_id: "s-1".into(),
                proc_start: ProcStart::Ticks(4567),
                pid_domain: None,
            })
        );
        assert!(parse_entry(br#"{"pid":123,"sessionId":"s","procStart":7}"#).is_some());
        for bad in [
            &br#"{"pid":0,"sessionId":"s","procStart":"1"}"#[..],
            br#"{"pid":1,"procStart":"1"}"#,
            br#"{"pid":1,"sessionId":"s","procStart":"x"}"#,
            b"[]",
            b"{",
        ] {
            assert_eq!(parse_entry(bad), None);
        }
    }
}
