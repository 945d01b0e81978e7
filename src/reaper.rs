//! Reaping stale per-PID state files (`<project>/.orchestrator-state/active-session-<pid>` and
//! the config's rules).
//!
//! `judge` is the decision, a pure function. `reap` is the I/O around it: the folder is opened
//! without following symlinks, entries are looked at with `lstat` and never opened (a FIFO
//! cannot block the run), and files are removed relative to the folder's handle.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use camino::Utf8Path;

use crate::config::{RuleDir, StateRule};
use crate::defaults;
use crate::process_table::ProcessTable;
use crate::report::{FileEntry, KeepReason, StaleReason};
use crate::run::Sink;
use crate::sys::{self, Probe};

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
pub fn judge(probe: Probe, holder: Option<Holder>, mtime: f64) -> Result<KeepReason, StaleReason> {
    match (probe, holder) {
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

/// Applies every rule to the project; results and warnings go to `sink`.
pub fn reap(
    rules: &[StateRule],
    project: Option<&Utf8Path>,
    table: &mut ProcessTable,
    dry_run: bool,
    sink: &Sink,
) {
    let clock = Clock::now();
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
        reap_dir(
            rule,
            dir.as_fd(),
            dir_path.as_str(),
            table,
            dry_run,
            &clock,
            sink,
        );
    }
}

/// Opens a rule's folder; `Ok(None)` when it does not exist (nothing to do).
fn open_rule_dir(rule: &StateRule, project: Option<&Utf8Path>) -> Result<Option<OwnedFd>, String> {
    let missing_is_fine = |e: std::io::Error, at: Option<(BorrowedFd, &CStr)>| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        // Tell a symlink (refused by O_NOFOLLOW) from other failures.
        if let Some((parent, name)) = at
            && let Ok(st) = sys::lstat_at(parent, name)
            && st.st_mode & libc::S_IFMT == libc::S_IFLNK
        {
            return Err("is a symlink; not entered".to_string());
        }
        Err(format!("cannot be opened: {e}"))
    };
    match &rule.dir {
        RuleDir::Anywhere(path) => {
            let c = sys::cstring(path.as_str().as_bytes()).map_err(|e| e.to_string())?;
            match sys::open_dir_at(None, &c, true) {
                Ok(fd) => Ok(Some(fd)),
                Err(e) => {
                    let parent = path.parent().unwrap_or(Utf8Path::new("/"));
                    let pc = sys::cstring(parent.as_str().as_bytes()).map_err(|e| e.to_string())?;
                    let pfd = sys::open_dir_at(None, &pc, false).ok();
                    let name = sys::cstring(path.file_name().unwrap_or("").as_bytes())
                        .map_err(|e| e.to_string())?;
                    missing_is_fine(e, pfd.as_ref().map(|p| (p.as_fd(), name.as_c_str())))
                }
            }
        }
        RuleDir::InProject(parts) => {
            let Some(project) = project else {
                return Ok(None);
            };
            // One folder below the project (the built-in rule): O_NOFOLLOW on the joined path
            // guards that folder as well as a walk would, in one open instead of two.
            if let [only] = parts.as_slice() {
                let path = sys::cstring(project.join(only).as_str().as_bytes())
                    .map_err(|e| e.to_string())?;
                return match sys::open_dir_at(None, &path, true) {
                    Ok(fd) => Ok(Some(fd)),
                    Err(e) => {
                        let c =
                            sys::cstring(project.as_str().as_bytes()).map_err(|e| e.to_string())?;
                        let parent = sys::open_dir_at(None, &c, false).ok();
                        let name = sys::cstring(only.as_bytes()).map_err(|e| e.to_string())?;
                        missing_is_fine(e, parent.as_ref().map(|p| (p.as_fd(), name.as_c_str())))
                    }
                };
            }
            let c = sys::cstring(project.as_str().as_bytes()).map_err(|e| e.to_string())?;
            let mut fd = match sys::open_dir_at(None, &c, false) {
                Ok(fd) => fd,
                Err(e) => return missing_is_fine(e, None),
            };
            for part in parts {
                let name = sys::cstring(part.as_bytes()).map_err(|e| e.to_string())?;
                fd = match sys::open_dir_at(Some(fd.as_fd()), &name, true) {
                    Ok(next) => next,
                    Err(e) => return missing_is_fine(e, Some((fd.as_fd(), name.as_c_str()))),
                };
            }
            Ok(Some(fd))
        }
    }
}

fn reap_dir(
    rule: &StateRule,
    dir: BorrowedFd,
    dir_path: &str,
    table: &mut ProcessTable,
    dry_run: bool,
    clock: &Clock,
    sink: &Sink,
) {
    let names = match sys::list_dir(dir, |n| rule.pid_of(n).is_some()) {
        Ok(n) => n,
        Err(e) => {
            sink.warn(format!("state folder {dir_path} cannot be listed: {e}"));
            return;
        }
    };
    for name in names {
        let Some(pid) = rule.pid_of(name.to_bytes()) else {
            continue;
        };
        // Another run may have removed it since the listing: then it is not ours to count.
        let Ok(st) = sys::lstat_at(dir, &name) else {
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
                    .push(entry(dir_path, &name, pid, KeepReason::NotRegular))
            });
            continue;
        }
        let mtime = st.st_mtime as f64 + st.st_mtime_nsec as f64 / 1e9;
        let probe = table.fs.probe(pid);
        let holder = match probe {
            Probe::Dead => None,
            Probe::Alive => table.stat(pid).ok().map(|s| Holder {
                zombie: s.is_zombie(),
                owner: table.is_owner(pid).unwrap_or(false),
                started_at: clock.started_at(s.starttime),
            }),
        };
        match judge(probe, holder, mtime) {
            Ok(keep) => sink.push(|r| r.kept.push(entry(dir_path, &name, pid, keep))),
            Err(stale) => {
                if dry_run || remove_if_unchanged(dir, &name, &st, dir_path, sink) {
                    sink.push(|r| r.reaped.push(entry(dir_path, &name, pid, stale)));
                }
            }
        }
    }
}

/// Removes the file unless it changed since it was judged (a new session may have taken the
/// PID and rewritten it). Returns whether this run removed it.
fn remove_if_unchanged(
    dir: BorrowedFd,
    name: &CStr,
    judged: &libc::stat,
    dir_path: &str,
    sink: &Sink,
) -> bool {
    match sys::lstat_at(dir, name) {
        Ok(now)
            if now.st_ino == judged.st_ino
                && now.st_dev == judged.st_dev
                && now.st_mtime == judged.st_mtime
                && now.st_mtime_nsec == judged.st_mtime_nsec
                && sys::is_regular(&now) => {}
        _ => return false,
    }
    match sys::unlink_at(dir, name) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
        Err(e) => {
            sink.warn(format!(
                "cannot remove {dir_path}/{}: {e}",
                name.to_string_lossy()
            ));
            false
        }
    }
}

/// Turns `/proc/<pid>/stat` start times (ticks after boot) into wall-clock seconds.
struct Clock {
    boot_at: f64,
    ticks: f64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            boot_at: sys::realtime_secs() - sys::boottime_secs(),
            ticks: sys::clock_ticks() as f64,
        }
    }

    fn started_at(&self, starttime: u64) -> f64 {
        self.boot_at + starttime as f64 / self.ticks
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
        assert_eq!(judge(Probe::Dead, None, mtime), Err(StaleReason::Dead));
        assert_eq!(judge(Probe::Alive, None, mtime), Ok(KeepReason::Alive));
        assert_eq!(
            judge(Probe::Alive, holder(true, true, 0.0), mtime),
            Err(StaleReason::Zombie)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, true, 9999.0), mtime),
            Ok(KeepReason::Owner)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, false, 9999.0), mtime),
            Err(StaleReason::Reused)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, false, 1004.0), mtime),
            Ok(KeepReason::Alive)
        );
        assert_eq!(
            judge(Probe::Alive, holder(false, false, 10.0), mtime),
            Ok(KeepReason::Alive)
        );
    }
}
