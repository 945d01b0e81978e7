//! Finding MCP servers that no live Claude Code session owns.
//!
//! A process of ours is an orphan when it matches (a command-line rule, or Claude Code's
//! environment markers), is not an owner itself, has no owner anywhere above it, and its
//! session, if it names one, is not live in Claude Code's registry. The scan reads as little
//! as it can: one listing of the process table, the owner of each entry before anything of
//! it, one read of each of our processes' command line and environment, `stat` only along
//! the ancestor chains of matches, and children only of the orphans found.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::argv;
use crate::config::{IgnoreRule, MatchRule};
use crate::defaults;
use crate::glob;
use crate::kill::Pins;
use crate::os::{Pinned, ProcInfo, Started};
use crate::process_table::{Ancestry, ProcessTable};
use crate::registry::Registry;
use crate::report::{OrphanProc, Sink};

/// What the scan needs besides the process table.
pub struct Scan<'a> {
    pub rules: &'a [MatchRule],
    /// What is never reported or stopped, whatever matched it.
    pub ignore: &'a [IgnoreRule],
    /// How many of `rules`, at the front, are built in: those are always applied. The rest
    /// (the user's) are applied until `user_rules_until`, so that no rule, however slow on
    /// however many long command lines, keeps the scan from the built-in and
    /// environment-marker results before the deadline.
    pub builtin_rules: usize,
    pub user_rules_until: Option<Instant>,
    /// Pin each orphan for `--kill` (see `scan`), at most this many: each pin is an open
    /// file until the run ends. 0: none.
    pub pins: usize,
    pub uid: u32,
    /// This process: it and its ancestors are never reported.
    pub me: i32,
    pub registry: &'a mut Registry,
}

/// Scans the process table; every orphan found goes to `sink` as soon as it is known, so a
/// run cut short by its deadline still reports it. With `Scan::pins` (for `--kill`), in the
/// system's table, each orphan reported is pinned (`os::Pinned`): the pin is taken first,
/// then its facts are read again, then it is found still running, so what was judged is
/// the process `--kill` may signal. Returns those pins.
pub fn scan(table: &mut ProcessTable, scan: Scan, sink: &Sink) -> Pins {
    let mut pins = Pins::new();
    let pids = match table.source.pids() {
        Ok(p) => p,
        Err(e) => {
            sink.warn(format!("cannot list processes: {e}"));
            return pins;
        }
    };
    // Kernel threads belong to root: for anyone else the owner check below skips them anyway.
    let kernel_threads = if scan.uid == 0 {
        kernel_threads(table)
    } else {
        BTreeSet::new()
    };
    // Our own ancestors cost a `stat` each, so they are looked up only once a match needs it.
    let mut ancestors_of_me: Option<BTreeSet<i32>> = None;
    let mut line = Vec::with_capacity(4096);
    // Only --kill needs pins (a pidfd each, kept to the end, and a second read).
    let mut pinner = Pinner {
        on: scan.pins > 0 && table.source.is_system(),
        limit: scan.pins,
    };
    let mut found: Vec<i32> = Vec::new();
    let mut matcher = Matcher {
        rules: scan.rules,
        // A rule the matcher refuses (too long to match in linear time) is said, not dropped
        // silently; the others still run.
        globs: scan
            .rules
            .iter()
            .map(|r| {
                glob::Glob::new(&r.glob)
                    .map_err(|e| sink.warn(format!("match rule {:?} ignored: {e}", r.label)))
                    .ok()
            })
            .collect(),
        builtin: scan.builtin_rules.min(scan.rules.len()),
        uid: scan.uid,
        until: scan.user_rules_until,
        stopped: false,
    };
    let ignore: Vec<(&IgnoreRule, glob::Glob)> = scan
        .ignore
        .iter()
        .filter_map(|r| match glob::Glob::new(&r.glob) {
            Ok(g) => Some((r, g)),
            Err(e) => {
                sink.warn(format!("ignore rule {:?} not applied: {e}", r.label));
                None
            }
        })
        .collect();
    for pid in pids {
        crate::deadline::checkpoint();
        if pid == scan.me || kernel_threads.contains(&pid) {
            continue;
        }
        let was_stopped = matcher.stopped;
        let first = matcher.matches(table, pid, &mut line);
        if matcher.stopped && !was_stopped {
            sink.warn(
                "the command-line rules of your config and --match stopped at half the deadline; the built-in and environment-marker rules went on"
                    .to_string(),
            );
        }
        let Some(first) = first else {
            continue;
        };

        // A candidate: pin it, then read it all again, so every fact below is of the pinned
        // process (the first reads may have been of an earlier holder of the PID).
        let Ok(pin) = pinner.pin(pid, &pins, sink) else {
            continue;
        };
        let (matched_by, markers) = match pin {
            Some(_) => match matcher.matches(table, pid, &mut line) {
                Some(again) => again,
                None => continue,
            },
            None => first,
        };
        let stat = match pin {
            Some(_) => table.reread(pid),
            None => table.stat(pid),
        };
        // Unknown (a start time that may not be read) is not orphan.
        let Ok(stat) = stat else { continue };
        let Some(started) = stat.started else {
            continue;
        };
        if stat.zombie || table.is_owner(pid) != Ok(false) {
            continue;
        }
        if pin.as_ref().is_some_and(|p| !p.still_running()) {
            continue;
        }
        if table.ancestry(pid) != Ancestry::NoOwner {
            continue;
        }
        let ours = ancestors_of_me
            .get_or_insert_with(|| table.self_and_ancestors(scan.me).into_iter().collect());
        if ours.contains(&pid) {
            continue;
        }
        if let Some(session) = &markers.session_id
            && scan.registry.is_live(session, table)
        {
            continue;
        }
        // An orphan the user never wants reported or stopped (its pin, if any, is dropped).
        if is_ignored(&ignore, &line, markers.project_dir.as_ref()) {
            sink.push(|r| r.ignored += 1);
            continue;
        }
        let orphan = orphan_of(&stat, started, &line, matched_by, markers);
        if let Some(pin) = pin {
            pins.insert(pid, pin);
        }
        found.push(pid);
        sink.push(|r| r.orphans.push(orphan));
    }
    if !found.is_empty() {
        let ours = ancestors_of_me
            .get_or_insert_with(|| table.self_and_ancestors(scan.me).into_iter().collect());
        add_subtrees(
            table,
            &scan,
            found,
            ours,
            &ignore,
            &mut pinner,
            &mut pins,
            sink,
        );
    }
    pins
}

/// The orphans' whole subtrees: every process below an orphan belongs to the dead session
/// too, matched or not (the shell between a wrapper and its server, a headless browser, a
/// sidecar), and `--kill` must not leave them behind as new, unmatched orphans. Children are
/// asked of the orphans and what is added below them only. A child that is an owner, another
/// user's, a zombie, one of this hook's ancestors or ignored is left out with what is below
/// it.
#[allow(clippy::too_many_arguments)]
fn add_subtrees(
    table: &mut ProcessTable,
    scan: &Scan,
    orphans: Vec<i32>,
    ours: &BTreeSet<i32>,
    ignore: &[(&IgnoreRule, glob::Glob)],
    pinner: &mut Pinner,
    pins: &mut Pins,
    sink: &Sink,
) {
    let mut seen: BTreeSet<i32> = orphans.iter().copied().collect();
    let mut queue = orphans;
    let mut added = 0;
    let mut line = Vec::new();
    while let Some(parent) = queue.pop() {
        crate::deadline::checkpoint();
        let Ok(children) = table.source.children(parent) else {
            continue;
        };
        for pid in children {
            if added >= defaults::MAX_SUBTREE {
                return;
            }
            if !seen.insert(pid) || pid == scan.me || ours.contains(&pid) {
                continue;
            }
            if table.source.uid(pid) != Ok(scan.uid) {
                continue;
            }
            let Ok(pin) = pinner.pin(pid, pins, sink) else {
                continue;
            };
            let info = match pin {
                Some(_) => table.reread(pid),
                None => table.stat(pid),
            };
            let Ok(info) = info else { continue };
            let Some(started) = info.started else {
                continue;
            };
            // The parent is asked again: a PID that changed hands is not this child.
            if info.ppid != parent || info.zombie || table.is_owner(pid) != Ok(false) {
                continue;
            }
            if pin.as_ref().is_some_and(|p| !p.still_running()) {
                continue;
            }
            match table.source.argv(pid) {
                Ok(c) => argv::join_cmdline_into(c, &mut line),
                Err(_) => line.clear(),
            }
            if is_ignored(ignore, &line, None) {
                sink.push(|r| r.ignored += 1);
                continue;
            }
            let label = defaults::SUBTREE_LABEL.to_string();
            let orphan = orphan_of(&info, started, &line, label, argv::ClaudeMarkers::default());
            if let Some(pin) = pin {
                pins.insert(pid, pin);
            }
            added += 1;
            queue.push(pid);
            sink.push(|r| r.orphans.push(orphan));
        }
    }
}

/// Whether an ignore rule hides the command line `line` of a process of `project` (a
/// project's rule hides only that project's processes).
fn is_ignored(ignore: &[(&IgnoreRule, glob::Glob)], line: &[u8], project: Option<&String>) -> bool {
    ignore.iter().any(|(r, g)| {
        g.matches_bytes(line) && r.project.as_ref().is_none_or(|p| project == Some(p))
    })
}

fn orphan_of(
    info: &ProcInfo,
    started: Started,
    line: &[u8],
    matched_by: String,
    markers: argv::ClaudeMarkers,
) -> OrphanProc {
    OrphanProc {
        pid: info.pid,
        ppid: info.ppid,
        starttime: started.id,
        comm: String::from_utf8_lossy(&info.comm).into_owned(),
        cmdline: String::from_utf8_lossy(line).into_owned(),
        matched_by,
        rss_bytes: info.rss_bytes,
        age_secs: started.age as u64,
        session_id: markers.session_id,
        project_dir: markers.project_dir,
    }
}

/// Pins for `--kill`, while the open-file budget lasts.
struct Pinner {
    on: bool,
    limit: usize,
}

impl Pinner {
    /// A pin of `pid` when pinning (`None` when not), or `Err` when the process is gone.
    fn pin(&mut self, pid: i32, pins: &Pins, sink: &Sink) -> Result<Option<Pinned>, ()> {
        if self.on && pins.len() >= self.limit {
            self.on = false;
            sink.warn(format!(
                "--kill pins at most {} processes here (the open-file limit); the rest of the orphans are reported, not stopped",
                self.limit
            ));
        }
        if !self.on {
            return Ok(None);
        }
        match Pinned::open(pid) {
            Ok(pin) => Ok(Some(pin)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(()),
            Err(e) => {
                // Out of file descriptors, or no pins here (Linux before 5.3): the rest is
                // reported, never signalled, and no more descriptors are spent on it.
                self.on = false;
                sink.warn(format!(
                    "cannot pin processes for --kill ({e}); the rest of the orphans are reported, not stopped"
                ));
                Ok(None)
            }
        }
    }
}

/// The match rules of a scan: a command-line glob, or Claude Code's environment markers.
struct Matcher<'a> {
    rules: &'a [MatchRule],
    globs: Vec<Option<glob::Glob>>,
    /// `rules[..builtin]` are built in.
    builtin: usize,
    uid: u32,
    /// The other rules are applied until then.
    until: Option<Instant>,
    /// They stopped there.
    stopped: bool,
}

impl Matcher<'_> {
    /// Whether `pid` is a process of ours that a rule matches: the rule's label and the
    /// markers. Its command line, joined, is left in `line`.
    fn matches(
        &mut self,
        table: &mut ProcessTable,
        pid: i32,
        line: &mut Vec<u8>,
    ) -> Option<(String, argv::ClaudeMarkers)> {
        // Another user's process is skipped before anything of it is read.
        if table.source.uid(pid) != Ok(self.uid) {
            return None;
        }
        match table.source.argv(pid) {
            // Kernel threads and zombies have no command line.
            Ok(c) if !c.is_empty() => argv::join_cmdline_into(c, line),
            _ => return None,
        };
        // The built-in rules first; the user's only while their time lasts.
        let hit = |g: &Option<glob::Glob>| g.as_ref().is_some_and(|g| g.matches_bytes(line));
        let mut named = self.globs[..self.builtin].iter().position(hit);
        if named.is_none() && !self.stopped {
            for (i, g) in self.globs.iter().enumerate().skip(self.builtin) {
                if self.until.is_some_and(|t| Instant::now() >= t) {
                    self.stopped = true;
                    break;
                }
                if hit(g) {
                    named = Some(i);
                    break;
                }
            }
        }
        let markers = match table.source.environ(pid) {
            Ok(env) if named.is_some() || argv::has_entry(env, b"CLAUDECODE=1") => {
                argv::parse_environ(env)
            }
            _ if named.is_some() => argv::ClaudeMarkers::default(),
            _ => return None,
        };
        let matched_by = match named {
            Some(i) => self.rules[i].label.clone(),
            None if markers.marks_server() => defaults::ENV_RULE_LABEL.to_string(),
            None => return None,
        };
        Some((matched_by, markers))
    }
}

/// The children of kthreadd, read in one go: on a typical Linux machine most of the table
/// is kernel threads, and this spares a read for each. Only trusted when PID 2 really is
/// kthreadd (in a PID namespace, or on macOS, it is an ordinary process).
fn kernel_threads(table: &mut ProcessTable) -> BTreeSet<i32> {
    match table.stat(2) {
        Ok(s) if s.ppid == 0 && s.comm == b"kthreadd" => {}
        _ => return BTreeSet::new(),
    }
    table
        .source
        .children(2)
        .map(BTreeSet::from_iter)
        .unwrap_or_default()
}
