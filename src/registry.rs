//! Claude Code's registry of live sessions: `${CLAUDE_CONFIG_DIR:-~/.claude}/sessions/<pid>.json`
//! holds `{"pid", "sessionId", "procStart", ...}`. A session is live when its PID exists
//! and that process's start time still equals `procStart`. Entries are left behind by a
//! killed session, so the start time check is what makes an entry trustworthy.
//!
//! Read only when a candidate orphan names a session, and then once.

use std::os::fd::AsFd;

use camino::Utf8PathBuf;
use serde_json::Value;

use crate::defaults;
use crate::process_table::ProcessTable;
use crate::sys;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub pid: i32,
    pub session_id: String,
    pub proc_start: u64,
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

    /// Is `session_id` a live session?
    pub fn is_live(&mut self, session_id: &str, table: &mut ProcessTable) -> bool {
        let dir = self.dir.clone();
        let entries = self
            .entries
            .get_or_insert_with(|| dir.map(|d| load(&d)).unwrap_or_default());
        entries.iter().filter(|e| e.session_id == session_id).any(
            |e| matches!(table.stat(e.pid), Ok(s) if s.starttime == e.proc_start && !s.is_zombie()),
        )
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

/// One registry file; `procStart` is a string in the files seen so far, a number is accepted too.
pub fn parse_entry(bytes: &[u8]) -> Option<Entry> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let pid = i32::try_from(v.get("pid")?.as_i64()?)
        .ok()
        .filter(|p| *p > 0)?;
    let session_id = v.get("sessionId")?.as_str()?.to_string();
    let proc_start = match v.get("procStart")? {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    Some(Entry {
        pid,
        session_id,
        proc_start,
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
                proc_start: 4567
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
