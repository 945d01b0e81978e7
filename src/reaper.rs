//! Reaping stale per-PID state files (`<project>/.orchestrator-state/active-session-<pid>` and
//! the config's rules).
//!
//! `judge` is the decision, a pure function. `reap` is the I/O around it: the folder is opened
//! without following symlinks, entries are looked at with `lstat` and never opened (a FIFO
//! cannot block the run), and files are removed relative to the folder's handle.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use camino::{Utf8Path, Utf8PathBuf};

use crate::config::{RuleDir, RuleKind, StateRule};
use crate::defaults;
use crate::os::PidDomain;
use crate::os::sys::{self, Probe, Rename};
use crate::process_table::ProcessTable;
use crate::registry;
use crate::report::{FileEntry, KeepReason, Sink, StaleReason};

/// What is known about the live process holding a file's PID.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Holder {
    pub zombie: bool,
    pub owner: bool,
    /// When it started, in seconds since the epoch.
    pub started_at: f64,
}

/// The decision for one regular file named after `pid`, last modified at `mtime`.
/// `holder` is `None` when the PID is taken but its process cannot be inspected.
/// `elsewhere`: no process here has the PID, but one in another PID namespace does (a
/// container sharing the folder names its files by the PIDs it sees).
pub fn judge(
    probe: Probe,
    holder: Option<Holder>,
    mtime: f64,
    elsewhere: bool,
) -> Result<KeepReason, StaleReason> {
    match (probe, holder) {
        (Probe::Dead, _) if elsewhere => Ok(KeepReason::OtherNamespace),
        (Probe::Dead, _) => Err(StaleReason::Dead),
        (Probe::Alive, None) => Ok(KeepReason::Alive),
        (Probe::Alive, Some(h)) if h.zombie => Err(StaleReason::Zombie),
        (Probe::Alive, Some(h)) if h.owner => Ok(KeepReason::Owner),
        (Probe::Alive, Some(h)) if h.started_at > mtime + defaults::REUSE_SLACK_SECS => {
            Err(StaleReason::Reused)
        }
        (Probe::Alive, Some(_)) => Ok(KeepReason::Alive),
    }
}

/// The decision for Claude Code's registry file of `pid` holding `proc_start`: stale when
/// the PID is free (and no nested PID namespace has it), a zombie, or held by a process
/// that started at another time than the file says (a reused PID: the file's own record
/// decides, no guess from times). `started_matches` is `None` when the holder's start may
/// not be read: kept.
pub fn judge_session(
    probe: Probe,
    zombie: bool,
    started_matches: Option<bool>,
    elsewhere: bool,
) -> Result<KeepReason, StaleReason> {
    match probe {
        Probe::Dead if elsewhere => Ok(KeepReason::OtherNamespace),
        Probe::Dead => Err(StaleReason::Dead),
        Probe::Alive if zombie => Err(StaleReason::Zombie),
        Probe::Alive if started_matches == Some(false) => Err(StaleReason::Reused),
        Probe::Alive => Ok(KeepReason::Alive),
    }
}

/// Whether a registry file's `pidDomain` names this hook's PIDs: absent (clients before
/// 2.1.332), or the platform's own form naming this host and PID namespace. Anything else
/// (another container, another host, another OS) is not ours to judge.
pub fn domain_is_ours(domain: Option<&str>, ours: &PidDomain) -> bool {
    let Some(domain) = domain else {
        return true;
    };
    if domain == "darwin" {
        return ours.darwin;
    }
    let Some(rest) = domain.strip_prefix("linux:") else {
        return false;
    };
    let Some((host, ns)) = rest.split_once(':') else {
        return false;
    };
    ours.host.as_deref() == Some(host) && ours.pid_namespace.as_deref() == Some(ns)
}

/// Applies every rule to the project; results and warnings go to `sink`.
pub fn reap(
    rules: &[StateRule],
    project: Option<&Utf8Path>,
    table: &mut ProcessTable,
    dry_run: bool,
    sink: &Sink,
) {
    for rule in rules {
        let dir_path = match (&rule.dir, project) {
            (RuleDir::InProject(_), None) => continue,
            (_, p) => rule.dir_path(p.unwrap_or(Utf8Path::new("/"))),
        };
        let dir = match open_rule_dir(rule, project) {
            Ok(Some(fd)) => fd,
            Ok(None) => continue,
            Err(why) => {
                sink.warn(format!("state folder {dir_path} {why}"));
                continue;
            }
        };
        reap_dir(rule, dir.as_fd(), dir_path.as_str(), table, dry_run, sink);
    }
}

/// Opens a rule's folder; `Ok(None)` when it does not exist (nothing to do). An error
/// names the folder that could not be entered: the rule's own, or a symlink on the way.
fn open_rule_dir(rule: &StateRule, project: Option<&Utf8Path>) -> Result<Option<OwnedFd>, String> {
    // `at` is the folder just refused and its name in its parent, when known.
    let refused = |e: std::io::Error, at: Option<(BorrowedFd, &CStr, Utf8PathBuf)>| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        // Tell a symlink (refused by O_NOFOLLOW) from other failures.
        if let Some((parent, name, path)) = &at
            && let Ok(st) = sys::lstat_at(*parent, name)
            && st.st_mode & libc::S_IFMT == libc::S_IFLNK
        {
            return Err(link_refused(path, rule, project));
        }
        Err(format!("cannot be opened: {e}"))
    };
    let cstr = |p: &str| sys::cstring(p.as_bytes()).map_err(|e| e.to_string());
    match &rule.dir {
        RuleDir::Anywhere(path) => match sys::open_dir_at(None, &cstr(path.as_str())?, true) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) => {
                let parent = path.parent().unwrap_or(Utf8Path::new("/"));
                let pfd = sys::open_dir_at(None, &cstr(parent.as_str())?, false).ok();
                let name = cstr(path.file_name().unwrap_or(""))?;
                refused(
                    e,
                    pfd.as_ref()
                        .map(|p| (p.as_fd(), name.as_c_str(), path.clone())),
                )
            }
        },
        RuleDir::InProject(parts) => {
            let Some(project) = project else {
                return Ok(None);
            };
            // One folder below the project (the built-in rule): O_NOFOLLOW on the joined path
            // guards that folder as well as a walk would, in one open instead of two.
            if let [only] = parts.as_slice() {
                let path = project.join(only);
                return match sys::open_dir_at(None, &cstr(path.as_str())?, true) {
                    Ok(fd) => Ok(Some(fd)),
                    Err(e) => {
                        let parent = sys::open_dir_at(None, &cstr(project.as_str())?, false).ok();
                        let name = cstr(only)?;
                        refused(
                            e,
                            parent.as_ref().map(|p| (p.as_fd(), name.as_c_str(), path)),
                        )
                    }
                };
            }
            let mut fd = match sys::open_dir_at(None, &cstr(project.as_str())?, false) {
                Ok(fd) => fd,
                Err(e) => return refused(e, None),
            };
            let mut walked = project.to_path_buf();
            for part in parts {
                walked.push(part);
                let name = cstr(part)?;
                fd = match sys::open_dir_at(Some(fd.as_fd()), &name, true) {
                    Ok(next) => next,
                    Err(e) => return refused(e, Some((fd.as_fd(), name.as_c_str(), walked))),
                };
            }
            Ok(Some(fd))
        }
    }
}

/// "is a symlink; not entered", naming the link when it is a folder on the way.
fn link_refused(link: &Utf8Path, rule: &StateRule, project: Option<&Utf8Path>) -> String {
    let dir = rule.dir_path(project.unwrap_or(Utf8Path::new("/")));
    if link == dir {
        "is a symlink; not entered".to_string()
    } else {
        format!("is behind {link}, which is a symlink; not entered")
    }
}

fn reap_dir(
    rule: &StateRule,
    dir: BorrowedFd,
    dir_path: &str,
    table: &mut ProcessTable,
    dry_run: bool,
    sink: &Sink,
) {
    let sessions = rule.kind == RuleKind::ClaudeSessions;
    let names = match sys::list_dir(dir, |n| {
        rule.pid_of(n).is_some()
            || n.starts_with(ASIDE_PREFIX.as_bytes())
            || (sessions && key_pid(n).is_some())
    }) {
        Ok(n) => n,
        Err(e) => {
            sink.warn(format!("state folder {dir_path} cannot be listed: {e}"));
            return;
        }
    };
    let keys: Vec<&CStr> = names
        .iter()
        .filter(|n| sessions && key_pid(n.to_bytes()).is_some())
        .map(|n| n.as_c_str())
        .collect();
    for name in names.iter().map(|n| n.as_c_str()) {
        crate::deadline::checkpoint();
        if keys.contains(&name) {
            continue;
        }
        let Some(pid) = rule.pid_of(name.to_bytes()) else {
            put_back_if_orphaned(rule, dir, name, dir_path, table, sink);
            continue;
        };
        // Another run may have removed it since the listing: then it is not ours to count.
        let Ok(st) = sys::lstat_at(dir, name) else {
            continue;
        };
        fn entry<R>(dir: &str, name: &CStr, pid: i32, reason: R) -> FileEntry<R> {
            FileEntry {
                dir: dir.to_string(),
                name: String::from_utf8_lossy(name.to_bytes()).into_owned(),
                pid,
                reason,
            }
        }
        if !sys::is_regular(&st) {
            sink.push(|r| {
                r.kept
                    .push(entry(dir_path, name, pid, KeepReason::NotRegular))
            });
            continue;
        }
        if rule.kind == RuleKind::ClaudeSessions {
            let verdict = judge_registry_file(dir, name, &st, pid, table);
            match verdict {
                Ok(keep) => sink.push(|r| r.kept.push(entry(dir_path, name, pid, keep))),
                Err(stale) => {
                    if dry_run || remove_judged(dir, name, &st, dir_path, sink) {
                        sink.push(|r| r.reaped.push(entry(dir_path, name, pid, stale)));
                        remove_keys(dir, &keys, pid, dir_path, dry_run, stale, sink);
                    }
                }
            }
            continue;
        }
        let mtime = st.st_mtime as f64 + st.st_mtime_nsec as f64 / 1e9;
        let probe = table.source.probe(pid);
        let holder = match probe {
            Probe::Dead => None,
            // A holder whose start may not be read (macOS: another user's) is not inspected.
            Probe::Alive => match table.stat(pid) {
                Ok(s) => s.started.map(|started| Holder {
                    zombie: s.zombie,
                    owner: table.is_owner(pid).unwrap_or(false),
                    started_at: started.at,
                }),
                Err(_) => None,
            },
        };
        // Only for a file that already looks dead: it costs a read of every process.
        let elsewhere = probe == Probe::Dead && table.source.held_in_nested_namespace(pid);
        match judge(probe, holder, mtime, elsewhere) {
            Ok(keep) => sink.push(|r| r.kept.push(entry(dir_path, name, pid, keep))),
            Err(stale) => {
                if dry_run || remove_judged(dir, name, &st, dir_path, sink) {
                    sink.push(|r| r.reaped.push(entry(dir_path, name, pid, stale)));
                }
            }
        }
    }
}

/// Reads a registry file (the inode `st` that was listed, never through a link, at most
/// 64 KiB) and judges it. A file that does not parse, or names another PID than its name,
/// is never touched.
fn judge_registry_file(
    dir: BorrowedFd,
    name: &CStr,
    st: &libc::stat,
    pid: i32,
    table: &mut ProcessTable,
) -> Result<KeepReason, StaleReason> {
    let read = || -> Option<registry::Entry> {
        let fd = sys::open_read_at(Some(dir), name, true).ok()?;
        let now = sys::fstat(fd.as_fd()).ok()?;
        if now.st_ino != st.st_ino || now.st_dev != st.st_dev || !sys::is_regular(&now) {
            return None;
        }
        let mut buf = Vec::new();
        sys::read_all(fd.as_fd(), &mut buf, 64 * 1024).ok()?;
        registry::parse_entry(&buf)
    };
    let Some(e) = read().filter(|e| e.pid == pid) else {
        return Ok(KeepReason::NotParsed);
    };
    if !domain_is_ours(e.pid_domain.as_deref(), &table.source.pid_domain()) {
        return Ok(KeepReason::OtherDomain);
    }
    let probe = table.source.probe(pid);
    let (zombie, matches) = match probe {
        Probe::Dead => (false, None),
        Probe::Alive => match table.stat(pid) {
            Ok(info) => {
                let platform = table.source.platform();
                let matches = info
                    .started
                    .map(|s| e.proc_start.matches(&s, platform, sys::local_time));
                (info.zombie, matches)
            }
            Err(_) => (false, None),
        },
    };
    let elsewhere = probe == Probe::Dead && table.source.held_in_nested_namespace(pid);
    judge_session(probe, zombie, matches, elsewhere)
}

/// The PID of a registry key file's name, `<pid>.<64 hex>.key`.
fn key_pid(name: &[u8]) -> Option<i32> {
    let (pid, rest) = name.split_at(name.iter().position(|&b| b == b'.')?);
    let hex = rest.strip_prefix(b".")?.strip_suffix(b".key")?;
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    crate::os::procfs::parse_pid(pid)
}

/// Removes the `<pid>.<64 hex>.key` files (of the folder's listing, `keys`) that go with a
/// removed registry file: only regular files, each set aside and checked like the file.
fn remove_keys(
    dir: BorrowedFd,
    keys: &[&CStr],
    pid: i32,
    dir_path: &str,
    dry_run: bool,
    stale: StaleReason,
    sink: &Sink,
) {
    for &key in keys.iter().filter(|k| key_pid(k.to_bytes()) == Some(pid)) {
        let Ok(st) = sys::lstat_at(dir, key) else {
            continue;
        };
        if !sys::is_regular(&st) {
            continue;
        }
        if dry_run || remove_judged(dir, key, &st, dir_path, sink) {
            let entry = FileEntry {
                dir: dir_path.to_string(),
                name: String::from_utf8_lossy(key.to_bytes()).into_owned(),
                pid,
                reason: stale,
            };
            sink.push(|r| r.reaped.push(entry));
        }
    }
}

/// A judged file is first renamed to `<ASIDE_PREFIX><our pid>.<its name>`, a name no rule
/// matches and no other live process uses, then removed if it is the judged file.
const ASIDE_PREFIX: &str = ".startup-hygiene.";

fn aside_name(name: &CStr) -> Option<CString> {
    let mut aside = format!("{ASIDE_PREFIX}{}.", sys::pid()).into_bytes();
    aside.extend_from_slice(name.to_bytes());
    CString::new(aside).ok()
}

/// Removes exactly the file that was judged, whatever is put in its place meanwhile: a
/// check by name followed by an unlink by name would remove whatever is there at the
/// unlink (a symlink, a live session's fresh file renamed into place). So the entry is set
/// aside under a name of ours, the set-aside entry is checked to be the judged inode,
/// unchanged, and only then unlinked; anything else is put back. Returns whether this run
/// removed the judged file.
fn remove_judged(
    dir: BorrowedFd,
    name: &CStr,
    judged: &libc::stat,
    dir_path: &str,
    sink: &Sink,
) -> bool {
    let shown = || format!("{dir_path}/{}", name.to_string_lossy());
    let Some(aside) = aside_name(name) else {
        return false;
    };
    // The aside name is this process's own: where the file system cannot promise
    // "no replace" (EINVAL), a plain rename is as good.
    let set_aside = match sys::rename_in(dir, name, &aside, Rename::NoReplace) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys::rename_in(dir, name, &aside, Rename::Replace)
        }
        r => r,
    };
    match set_aside {
        Ok(()) => {}
        // Another run removed it first: not ours to count.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return false,
        Err(e) => {
            sink.warn(format!("cannot remove {}: {e}", shown()));
            return false;
        }
    }
    let same = matches!(sys::lstat_at(dir, &aside), Ok(now)
        if now.st_ino == judged.st_ino
            && now.st_dev == judged.st_dev
            && now.st_mtime == judged.st_mtime
            && now.st_mtime_nsec == judged.st_mtime_nsec
            && sys::is_regular(&now));
    if same {
        match sys::unlink_at(dir, &aside) {
            Ok(()) => return true,
            Err(e) => sink.warn(format!("cannot remove {}: {e}", shown())),
        }
    }
    // Not the file that was judged (or it could not be removed): it goes back.
    if let Err(e) = put_back(dir, &aside, name) {
        sink.warn(format!(
            "{} changed while it was being removed and could not be put back ({e}); it is at {dir_path}/{}",
            shown(),
            aside.to_string_lossy()
        ));
    }
    false
}

/// Gives a set-aside entry its name back, never over an entry that took the name meanwhile
/// (`EEXIST`): with `RENAME_NOREPLACE`, or where the file system lacks it (`EINVAL`, NFS),
/// a hard link under the name, then the aside name removed.
fn put_back(dir: BorrowedFd, aside: &CStr, name: &CStr) -> std::io::Result<()> {
    match sys::rename_in(dir, aside, name, Rename::NoReplace) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys::link_in(dir, aside, name)?;
            sys::unlink_at(dir, aside)
        }
        r => r,
    }
}

/// An entry set aside by a run that ended before it could finish (the deadline, a kill):
/// put back under its name, to be judged again by the next run.
fn put_back_if_orphaned(
    rule: &StateRule,
    dir: BorrowedFd,
    aside: &CStr,
    dir_path: &str,
    table: &mut ProcessTable,
    sink: &Sink,
) {
    let Some(rest) = aside.to_bytes().strip_prefix(ASIDE_PREFIX.as_bytes()) else {
        return;
    };
    let Some(dot) = rest.iter().position(|&b| b == b'.') else {
        return;
    };
    let (owner, name) = (&rest[..dot], &rest[dot + 1..]);
    let Some(owner) = crate::os::procfs::parse_pid(owner) else {
        return;
    };
    // Only this rule's names, and only if the run that set it aside is gone (a process of
    // ours with the same PID, in another container, is gone too).
    if rule.pid_of(name).is_none()
        || (owner != sys::pid() && table.source.probe(owner) != Probe::Dead)
    {
        return;
    }
    let Ok(name) = CString::new(name) else { return };
    match put_back(dir, aside, &name) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => sink.warn(format!(
            "{dir_path}/{} was set aside by an earlier run and cannot be put back: {e}",
            aside.to_string_lossy()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(zombie: bool, owner: bool, started_at: f64) -> Option<Holder> {
        Some(Holder {
            zombie,
            owner,
            started_at,
        })
    }

    #[test]
    fn decisions() {
        let mtime = 1000.0;
        assert_eq!(
            judge(Probe::Dead, None, mtime, false),
            Err(StaleReason::Dead)
        );
        assert_eq!(
            judge(Probe::Alive, None, mtime, false),
            Ok(KeepReason::Alive)
        );
        assert_eq!(
            judge(Probe::Alive, holder(true, true, 0.0), mtime, false),
            Err(StaleReason::Zombie)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, true, 9999.0), mtime, false),
            Ok(KeepReason::Owner)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, false, 9999.0), mtime, false),
            Err(StaleReason::Reused)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, false, 1004.0), mtime, false),
            Ok(KeepReason::Alive)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, false, 10.0), mtime, false),
            Ok(KeepReason::Alive)
        );
    }

    /// What the README says of clock steps, held exactly. A holder started at `s` (wall
    /// time) and the file was last written `lead` seconds later. The wall clock is then
    /// stepped by `step`: start times are rebuilt from the boot clock with today's offset,
    /// so the holder's start moves by `step` while the file's mtime does not. A forward
    /// step misjudges the holder as a reuse exactly when `step > lead + 5 s`; a backward
    /// step never removes its file.
    #[test]
    fn clock_steps_misjudge_only_where_the_readme_says() {
        let s = 1_000_000.0;
        for lead in [0.0, 1.0, 4.0, 10.0, 60.0, 3600.0] {
            for step in [
                -86400.0, -3600.0, -10.0, 0.0, 3.0, 6.0, 10.0, 70.0, 3700.0, 86400.0,
            ] {
                let mtime = s + lead;
                let got = judge(Probe::Alive, holder(false, false, s + step), mtime, false);
                let misjudged = step > lead + defaults::REUSE_SLACK_SECS;
                assert_eq!(
                    got,
                    if misjudged {
                        Err(StaleReason::Reused)
                    } else {
                        Ok(KeepReason::Alive)
                    },
                    "lead {lead} s, step {step} s"
                );
            }
        }
    }

    #[test]
    fn registry_file_decisions() {
        use KeepReason::*;
        use StaleReason::*;
        assert_eq!(judge_session(Probe::Dead, false, None, false), Err(Dead));
        assert_eq!(
            judge_session(Probe::Dead, false, None, true),
            Ok(OtherNamespace)
        );
        assert_eq!(
            judge_session(Probe::Alive, true, Some(true), false),
            Err(Zombie)
        );
        assert_eq!(
            judge_session(Probe::Alive, false, Some(false), false),
            Err(Reused)
        );
        assert_eq!(
            judge_session(Probe::Alive, false, Some(true), false),
            Ok(Alive)
        );
        // A holder whose start may not be read is kept.
        assert_eq!(judge_session(Probe::Alive, false, None, false), Ok(Alive));
    }

    #[test]
    fn pid_domains() {
        let linux = PidDomain {
            host: Some("ab".repeat(16)),
            pid_namespace: Some("pid:[4026531836]".into()),
            darwin: false,
        };
        let ours = format!("linux:{}:pid:[4026531836]", "ab".repeat(16));
        assert!(domain_is_ours(None, &linux));
        assert!(domain_is_ours(Some(&ours), &linux));
        for other in [
            format!("linux:{}:pid:[4026532000]", "ab".repeat(16)),
            format!("linux:{}:pid:[4026531836]", "cd".repeat(16)),
            "darwin".to_string(),
            "win32:x".to_string(),
            "linux:".to_string(),
            String::new(),
        ] {
            assert!(!domain_is_ours(Some(&other), &linux), "{other}");
        }
        // Unknown facts of our own: nothing is ours but the absent domain.
        assert!(!domain_is_ours(Some(&ours), &PidDomain::default()));
        let mac = PidDomain {
            darwin: true,
            ..PidDomain::default()
        };
        assert!(domain_is_ours(Some("darwin"), &mac));
        assert!(!domain_is_ours(Some(&ours), &mac));
    }
}
