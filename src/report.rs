//! What a run found and did, and its three renderings: the text block for the model's
//! context, Claude Code's hook JSON, and the full JSON report for scripts.
//!
//! It also holds `Sink`, where the work puts its findings piece by piece, and `group`, the
//! wrapper chains. This module does no I/O. Every string that came from another process or a file passes
//! through `sanitize` here, on its way out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

use crate::defaults;
use crate::sanitize::{quote, sanitize, sanitize_json};

/// Why a per-PID file is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleReason {
    /// No process has the PID.
    Dead,
    /// The process is a zombie: it has exited and waits for its parent.
    Zombie,
    /// A younger, unrelated process holds the PID now.
    Reused,
}

/// Why a per-PID file was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// Its process is alive (or exists and cannot be inspected).
    Alive,
    /// Its process is a live owner (`claude`), whatever the file's age.
    Owner,
    /// It is a directory, symlink, FIFO or other non-regular file.
    NotRegular,
    /// No process here has its PID, but a process in another PID namespace does.
    OtherNamespace,
    /// A Claude Code registry file that does not parse, or names another PID than its name:
    /// never touched.
    NotParsed,
    /// A registry file whose `pidDomain` is another PID namespace or host: not ours to judge.
    OtherDomain,
}

impl StaleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::Dead => "dead",
            StaleReason::Zombie => "zombie",
            StaleReason::Reused => "reused",
        }
    }
}

impl KeepReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::Alive => "alive",
            KeepReason::Owner => "owner",
            KeepReason::NotRegular => "not_regular",
            KeepReason::OtherNamespace => "other_namespace",
            KeepReason::NotParsed => "not_parsed",
            KeepReason::OtherDomain => "other_domain",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry<R> {
    pub dir: String,
    pub name: String,
    pub pid: i32,
    pub reason: R,
}

impl<R> FileEntry<R> {
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }
}

/// One process judged an orphan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanProc {
    pub pid: i32,
    pub ppid: i32,
    pub starttime: u64,
    pub comm: String,
    /// Arguments joined by spaces, unsanitized.
    pub cmdline: String,
    pub matched_by: String,
    pub rss_bytes: u64,
    pub age_secs: u64,
    pub session_id: Option<String>,
    pub project_dir: Option<String>,
}

/// An orphan at the top of its group, with the orphans below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanGroup {
    pub top: OrphanProc,
    pub descendants: Vec<OrphanProc>,
}

impl OrphanGroup {
    pub fn rss_bytes(&self) -> u64 {
        self.top.rss_bytes + self.descendants.iter().map(|d| d.rss_bytes).sum::<u64>()
    }

    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        std::iter::once(self.top.pid).chain(self.descendants.iter().map(|d| d.pid))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    pub pid: i32,
    pub signal: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotStopped {
    pub pid: i32,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub project: Option<String>,
    pub dry_run: bool,
    pub reaped: Vec<FileEntry<StaleReason>>,
    pub kept: Vec<FileEntry<KeepReason>>,
    /// Collected one by one during the scan; grouped when rendered.
    pub orphans: Vec<OrphanProc>,
    pub kill_requested: bool,
    pub stopped: Vec<Stopped>,
    pub not_stopped: Vec<NotStopped>,
    /// Processes an ignore rule kept out of the report (and out of `--kill`).
    pub ignored: usize,
    pub warnings: Vec<String>,
    /// The deadline fired before the run finished.
    pub cut_short: bool,
    pub deadline_ms: u64,
}

/// Where the work puts what it finds, a piece at a time, so that a run cut short by the
/// deadline still reports everything found until then. The lock is never held across I/O.
pub struct Sink(Mutex<Report>);

impl Sink {
    pub fn new(report: Report) -> Sink {
        Sink(Mutex::new(report))
    }

    pub fn push(&self, f: impl FnOnce(&mut Report)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn warn(&self, warning: String) {
        self.push(|r| r.warnings.push(warning));
    }

    pub fn snapshot(&self) -> Report {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Groups orphans under their topmost orphan ancestor (a wrapper chain such as `npm exec` →
/// `sh` → `node` becomes one group). Largest resident memory first. Each parent link is
/// followed once (the tops found are kept), so a chain of N orphans costs N steps, not N².
/// A parent loop makes each of its members a group of its own: nobody is lost.
pub fn group(orphans: &[OrphanProc]) -> Vec<OrphanGroup> {
    let by_pid: BTreeMap<i32, &OrphanProc> = orphans.iter().map(|o| (o.pid, o)).collect();
    let mut top_of: BTreeMap<i32, i32> = BTreeMap::new();
    for o in orphans {
        let mut path = vec![o.pid];
        let mut on_path = BTreeSet::from([o.pid]);
        let top = loop {
            let here = by_pid[path.last().expect("the path starts with o")];
            if let Some(&t) = top_of.get(&here.pid) {
                break Some(t);
            }
            match by_pid.get(&here.ppid) {
                None => break Some(here.pid),
                Some(parent) if on_path.contains(&parent.pid) => break None,
                Some(parent) => {
                    path.push(parent.pid);
                    on_path.insert(parent.pid);
                }
            }
        };
        for pid in path {
            top_of.entry(pid).or_insert(top.unwrap_or(pid));
        }
    }
    let mut groups: Vec<OrphanGroup> = Vec::new();
    let mut index: BTreeMap<i32, usize> = BTreeMap::new();
    for o in orphans.iter().filter(|o| top_of[&o.pid] == o.pid) {
        index.insert(o.pid, groups.len());
        groups.push(OrphanGroup {
            top: o.clone(),
            descendants: Vec::new(),
        });
    }
    for o in orphans.iter().filter(|o| top_of[&o.pid] != o.pid) {
        groups[index[&top_of[&o.pid]]].descendants.push(o.clone());
    }
    groups.sort_by(|a, b| {
        b.rss_bytes()
            .cmp(&a.rss_bytes())
            .then(a.top.pid.cmp(&b.top.pid))
    });
    groups
}

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    HookJson,
    Json,
}

impl Report {
    pub fn groups(&self) -> Vec<OrphanGroup> {
        group(&self.orphans)
    }

    /// Whether the text and hook formats have anything to say.
    pub fn is_noteworthy(&self) -> bool {
        !self.reaped.is_empty()
            || !self.orphans.is_empty()
            || !self.stopped.is_empty()
            || !self.not_stopped.is_empty()
            || !self.warnings.is_empty()
            || self.cut_short
    }

    /// What goes to stdout in `format` (empty: print nothing).
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut s = self.to_json().to_string();
                s.push('\n');
                s
            }
            Format::Text if self.is_noteworthy() => self.text_block(),
            Format::HookJson if self.is_noteworthy() => {
                let mut s = json!({
                    "systemMessage": self.summary_line(),
                    "hookSpecificOutput": {
                        "hookEventName": "SessionStart",
                        "additionalContext": self.text_block(),
                    }
                })
                .to_string();
                s.push('\n');
                s
            }
            _ => String::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        let cap = defaults::JSON_FIELD_CAP;
        let file = |dir: &str, name: &str, pid: i32, reason: &str| json!({"path": sanitize_json(&format!("{dir}/{name}"), cap), "pid": pid, "reason": reason});
        let orphans: Vec<Value> = self
            .groups()
            .iter()
            .map(|g| {
                let t = &g.top;
                json!({
                    "pid": t.pid,
                    "ppid": t.ppid,
                    "comm": sanitize_json(&t.comm, 64),
                    "cmdline": sanitize_json(&t.cmdline, cap),
                    "matched_by": sanitize_json(&t.matched_by, 256),
                    "descendants": g.descendants.iter().map(|d| d.pid).collect::<Vec<_>>(),
                    "rss_bytes": g.rss_bytes(),
                    "age_secs": t.age_secs,
                    "session_id": t.session_id.as_deref().map(|s| sanitize_json(s, 128)),
                    "project_dir": t.project_dir.as_deref().map(|s| sanitize_json(s, cap)),
                })
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "project": self.project.as_deref().map(|p| sanitize_json(p, cap)),
            "dry_run": self.dry_run,
            "reaped": self.reaped.iter().map(|f| file(&f.dir, &f.name, f.pid, f.reason.as_str())).collect::<Vec<_>>(),
            "kept": self.kept.iter().map(|f| file(&f.dir, &f.name, f.pid, f.reason.as_str())).collect::<Vec<_>>(),
            "orphans": orphans,
            "kill_requested": self.kill_requested,
            "stopped": self.stopped.iter().map(|s| json!({"pid": s.pid, "signal": s.signal})).collect::<Vec<_>>(),
            "not_stopped": self.not_stopped.iter().map(|s| json!({"pid": s.pid, "reason": sanitize_json(&s.reason, 256)})).collect::<Vec<_>>(),
            "ignored": self.ignored,
            "warnings": self.warnings.iter().map(|w| sanitize_json(w, cap)).collect::<Vec<_>>(),
            "cut_short": self.cut_short,
        })
    }

    /// One line for the user's terminal (`systemMessage`).
    pub fn summary_line(&self) -> String {
        let mut parts = Vec::new();
        if !self.reaped.is_empty() {
            let verb = if self.dry_run {
                "would remove"
            } else {
                "removed"
            };
            parts.push(format!(
                "{verb} {}",
                plural(self.reaped.len(), "stale state file")
            ));
        }
        let groups = self.groups();
        if !groups.is_empty() {
            let rss: u64 = groups.iter().map(OrphanGroup::rss_bytes).sum();
            let state = if self.stopped.is_empty() {
                "still running"
            } else {
                "found"
            };
            parts.push(format!(
                "{} {state} ({}, pids {})",
                plural(groups.len(), "orphaned MCP server group"),
                human_bytes(rss),
                pid_list(groups.iter().map(|g| g.top.pid), 8)
            ));
        }
        if !self.stopped.is_empty() {
            parts.push(format!("stopped {}", plural(self.stopped.len(), "process")));
        }
        if self.cut_short {
            parts.push("scan cut short by its deadline".into());
        }
        if parts.is_empty() && !self.warnings.is_empty() {
            parts.push(plural(self.warnings.len(), "warning"));
        }
        format!("startup-hygiene: {}", parts.join("; "))
    }

    /// The block for the model's context: plain statements of fact, under the cap.
    pub fn text_block(&self) -> String {
        let mut head = String::from("startup-hygiene (session start check):\n");
        self.write_reaped(&mut head);
        let groups = self.groups();
        let mut footer = String::new();
        self.write_footer(&groups, &mut footer);

        let mut body = String::new();
        if !groups.is_empty() {
            let procs: usize = groups.iter().map(|g| 1 + g.descendants.len()).sum();
            let rss: u64 = groups.iter().map(OrphanGroup::rss_bytes).sum();
            let _ = write!(
                body,
                "- {}: {} ({}, {} resident) whose Claude Code session has ended",
                if self.kill_requested {
                    "Found"
                } else {
                    "Still running"
                },
                plural(groups.len(), "orphaned MCP server process group"),
                plural(procs, "process"),
                human_bytes(rss),
            );
            let projects = distinct_projects(&groups);
            if !projects.is_empty() {
                let shown: Vec<String> = projects
                    .iter()
                    .take(5)
                    .map(|p| quote(p, defaults::TEXT_FIELD_CAP))
                    .collect();
                let _ = write!(body, "; projects: {}", shown.join(", "));
                if projects.len() > 5 {
                    let _ = write!(body, " and {} more", projects.len() - 5);
                }
            }
            body.push_str(if self.kill_requested {
                ".\n"
            } else {
                ". Nothing was stopped.\n"
            });
        }
        // Room for the "N more" line, then as many groups as fit, largest first.
        let reserve = 120;
        let mut listed = 0;
        for g in &groups {
            let line = group_line(g);
            if head.len() + body.len() + line.len() + footer.len() + reserve > defaults::BLOCK_CAP {
                break;
            }
            body.push_str(&line);
            listed += 1;
        }
        if listed < groups.len() {
            let rest = &groups[listed..];
            let procs: usize = rest.iter().map(|g| 1 + g.descendants.len()).sum();
            let rss: u64 = rest.iter().map(OrphanGroup::rss_bytes).sum();
            let _ = writeln!(
                body,
                "  - and {} not listed ({}, {}).",
                plural(rest.len(), "more group"),
                plural(procs, "process"),
                human_bytes(rss)
            );
        }
        let mut out = head;
        out.push_str(&body);
        out.push_str(&footer);
        cap_text(out, defaults::BLOCK_CAP)
    }

    fn write_reaped(&self, out: &mut String) {
        let mut dirs: Vec<&str> = Vec::new();
        for f in &self.reaped {
            if !dirs.contains(&f.dir.as_str()) {
                dirs.push(&f.dir);
            }
        }
        for dir in dirs.iter().take(5) {
            let files: Vec<_> = self.reaped.iter().filter(|f| f.dir == *dir).collect();
            let count = |r| files.iter().filter(|f| f.reason == r).count();
            let mut why = Vec::new();
            for (reason, text) in [
                (StaleReason::Dead, "whose process has exited"),
                (StaleReason::Zombie, "whose process is a zombie"),
                (
                    StaleReason::Reused,
                    "whose PID now belongs to an unrelated newer process",
                ),
            ] {
                let n = count(reason);
                if n > 0 {
                    why.push(format!("{n} {text}"));
                }
            }
            let _ = writeln!(
                out,
                "- {} {} in {}: {}.{}",
                if self.dry_run {
                    "Would remove"
                } else {
                    "Removed"
                },
                plural(files.len(), "stale per-PID state file"),
                quote(dir, defaults::TEXT_FIELD_CAP),
                why.join(", "),
                if self.dry_run {
                    " Dry run: nothing was removed."
                } else {
                    ""
                },
            );
        }
        if dirs.len() > 5 {
            let _ = writeln!(out, "- Stale files in {} more folders.", dirs.len() - 5);
        }
    }

    fn write_footer(&self, groups: &[OrphanGroup], out: &mut String) {
        if !groups.is_empty() && !self.kill_requested {
            let pids: Vec<String> = groups
                .iter()
                .flat_map(|g| g.pids())
                .map(|p| p.to_string())
                .collect();
            let cmd = format!("kill {}", pids.join(" "));
            if cmd.len() <= 1200 {
                // PIDs in a printed command can go stale; --kill checks each process again.
                let _ = writeln!(
                    out,
                    "To stop them: {cmd} (or: startup-hygiene --kill, which re-checks each process first)"
                );
            } else {
                let _ = writeln!(out, "To stop them all: startup-hygiene --kill");
            }
        }
        if self.kill_requested {
            let term = self
                .stopped
                .iter()
                .filter(|s| s.signal == "SIGTERM")
                .count();
            let killed = self.stopped.len() - term;
            let _ = writeln!(
                out,
                "- --kill: stopped {} ({term} on SIGTERM, {killed} after SIGKILL).",
                plural(self.stopped.len(), "process"),
            );
            if !self.not_stopped.is_empty() {
                let shown: Vec<String> = self
                    .not_stopped
                    .iter()
                    .take(10)
                    .map(|n| format!("pid {} ({})", n.pid, sanitize(&n.reason, 80)))
                    .collect();
                let more = self.not_stopped.len().saturating_sub(10);
                let _ = writeln!(
                    out,
                    "- Not stopped: {}{}.",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
        }
        if self.cut_short {
            let _ = writeln!(
                out,
                "- The run stopped at its {} ms deadline; what is listed is what was found by then.",
                self.deadline_ms
            );
        }
        for w in self.warnings.iter().take(defaults::TEXT_WARNINGS) {
            let _ = writeln!(out, "- Warning: {}", sanitize(w, 300));
        }
        if self.warnings.len() > defaults::TEXT_WARNINGS {
            let _ = writeln!(
                out,
                "- {} more in --format json.",
                plural(self.warnings.len() - defaults::TEXT_WARNINGS, "warning")
            );
        }
    }
}

fn group_line(g: &OrphanGroup) -> String {
    let t = &g.top;
    let mut line = format!(
        "  - pid {} (parent {}), up {}, {}",
        t.pid,
        t.ppid,
        human_age(t.age_secs),
        human_bytes(g.rss_bytes())
    );
    if !g.descendants.is_empty() {
        let _ = write!(line, " in {}", plural(1 + g.descendants.len(), "process"));
    }
    if let Some(p) = &t.project_dir {
        let _ = write!(line, ", project {}", quote(p, defaults::TEXT_FIELD_CAP));
    }
    if let Some(s) = &t.session_id {
        let _ = write!(line, ", session {}", quote(s, 40));
    }
    let _ = writeln!(
        line,
        ", matched by {}: {}",
        quote(&t.matched_by, 60),
        quote(&t.cmdline, defaults::TEXT_FIELD_CAP)
    );
    line
}

fn distinct_projects(groups: &[OrphanGroup]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for g in groups {
        if let Some(p) = g.top.project_dir.as_deref()
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

fn cap_text(mut s: String, cap: usize) -> String {
    if s.len() <= cap {
        return s;
    }
    // Slicing at `cap` itself would panic inside a multi-byte character.
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s[..end].rfind('\n').map_or(0, |i| i + 1);
    s.truncate(cut);
    s
}

pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with("ss") {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

fn pid_list(pids: impl Iterator<Item = i32>, max: usize) -> String {
    let all: Vec<i32> = pids.collect();
    let mut s: Vec<String> = all.iter().take(max).map(|p| p.to_string()).collect();
    if all.len() > max {
        s.push("…".into());
    }
    s.join(" ")
}

pub fn human_bytes(b: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if b >= 10 * GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else if b >= MIB {
        format!("{} MiB", b / MIB)
    } else {
        format!("{} KiB", b / 1024)
    }
}

pub fn human_age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(pid: i32, ppid: i32, rss_mib: u64, cmdline: &str) -> OrphanProc {
        OrphanProc {
            pid,
            ppid,
            starttime: 1,
            comm: "node".into(),
            cmdline: cmdline.into(),
            matched_by: defaults::ENV_RULE_LABEL.into(),
            rss_bytes: rss_mib << 20,
            age_secs: 3725,
            session_id: Some("0f4c".into()),
            project_dir: Some("/home/u/proj".into()),
        }
    }

    #[test]
    fn quiet_when_nothing_to_say() {
        let r = Report::default();
        assert_eq!(r.render(Format::Text), "");
        assert_eq!(r.render(Format::HookJson), "");
        assert!(r.render(Format::Json).starts_with('{'));
    }

    #[test]
    fn block_states_the_facts() {
        let r = Report {
            reaped: vec![
                FileEntry {
                    dir: "/p/.orchestrator-state".into(),
                    name: "active-session-9".into(),
                    pid: 9,
                    reason: StaleReason::Dead,
                },
                FileEntry {
                    dir: "/p/.orchestrator-state".into(),
                    name: "active-session-8".into(),
                    pid: 8,
                    reason: StaleReason::Reused,
                },
            ],
            orphans: vec![
                orphan(100, 1, 30, "npm exec srv"),
                orphan(101, 100, 50, "node srv"),
            ],
            ..Report::default()
        };
        let text = r.render(Format::Text);
        assert!(text.contains("Removed 2 stale per-PID state files in \"/p/.orchestrator-state\": 1 whose process has exited, 1 whose PID now belongs"), "{text}");
        assert!(
            text.contains("1 orphaned MCP server process group (2 processes, 80 MiB resident)"),
            "{text}"
        );
        assert!(
            text.contains(
                "pid 100 (parent 1), up 1h2m, 80 MiB in 2 processes, project \"/home/u/proj\""
            ),
            "{text}"
        );
        assert!(text.contains("Nothing was stopped."), "{text}");
        assert!(
            text.ends_with("To stop them: kill 100 101 (or: startup-hygiene --kill, which re-checks each process first)\n"),
            "{text}"
        );
        let hook: Value = serde_json::from_str(&r.render(Format::HookJson)).unwrap();
        assert_eq!(hook["hookSpecificOutput"]["additionalContext"], text);
        assert_eq!(hook["hookSpecificOutput"]["hookEventName"], "SessionStart");
        assert!(!hook["systemMessage"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn block_stays_under_cap_with_many_hostile_orphans() {
        let evil = format!("\x1b]0;pwned\x07\n{}", "A".repeat(5000));
        let orphans = (0..500).map(|i| orphan(1000 + i, 1, 1, &evil)).collect();
        let r = Report {
            orphans,
            warnings: vec!["w\n".repeat(400); 10],
            ..Report::default()
        };
        let text = r.render(Format::Text);
        assert!(text.len() < defaults::BLOCK_CAP, "{}", text.len());
        assert!(text.contains("more groups not listed ("), "{text}");
        assert!(text.contains("To stop them all: startup-hygiene --kill"));
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
        assert!(
            text.lines().all(|l| l.starts_with("startup-hygiene")
                || l.starts_with("- ")
                || l.starts_with("  - ")
                || l.starts_with("To stop")),
            "{text}"
        );
    }

    #[test]
    fn kill_results_are_reported() {
        let r = Report {
            orphans: vec![
                orphan(100, 1, 30, "srv"),
                orphan(101, 100, 5, "child"),
                orphan(200, 1, 1, "other"),
            ],
            kill_requested: true,
            stopped: vec![
                Stopped {
                    pid: 100,
                    signal: "SIGTERM",
                },
                Stopped {
                    pid: 101,
                    signal: "SIGKILL",
                },
            ],
            not_stopped: vec![NotStopped {
                pid: 200,
                reason: "PID reused since the scan".into(),
            }],
            ..Report::default()
        };
        let text = r.render(Format::Text);
        assert!(
            text.contains("- Found: 2 orphaned MCP server process groups"),
            "{text}"
        );
        assert!(
            text.contains("- --kill: stopped 2 processes (1 on SIGTERM, 1 after SIGKILL)."),
            "{text}"
        );
        assert!(
            text.contains("- Not stopped: pid 200 (PID reused since the scan)."),
            "{text}"
        );
        assert!(
            !text.contains("To stop them") && !text.contains("Nothing was stopped"),
            "{text}"
        );
        assert!(
            r.summary_line().contains("stopped 2 processes"),
            "{}",
            r.summary_line()
        );
    }

    #[test]
    fn sizes_and_ages() {
        assert_eq!(human_bytes(512 << 10), "512 KiB");
        assert_eq!(human_bytes(412 << 20), "412 MiB");
        assert_eq!(human_bytes(48 << 30), "48.0 GiB");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(90061), "1d1h");
        assert_eq!(plural(2, "process"), "2 processes");
    }

    fn proc(pid: i32, ppid: i32, rss: u64) -> OrphanProc {
        OrphanProc {
            pid,
            ppid,
            starttime: 0,
            comm: "x".into(),
            cmdline: "x".into(),
            matched_by: "env".into(),
            rss_bytes: rss,
            age_secs: 0,
            session_id: None,
            project_dir: None,
        }
    }

    #[test]
    fn wrapper_chain_is_one_group() {
        let groups = group(&[
            proc(30, 20, 5),
            proc(10, 1, 1),
            proc(20, 10, 1),
            proc(40, 1, 100),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].top.pid, 40);
        assert_eq!(groups[1].top.pid, 10);
        let mut d: Vec<i32> = groups[1].descendants.iter().map(|p| p.pid).collect();
        d.sort();
        assert_eq!(d, vec![20, 30]);
        assert_eq!(groups[1].rss_bytes(), 7);
    }

    #[test]
    fn parent_loop_loses_nobody() {
        let groups = group(&[proc(1, 2, 1), proc(2, 1, 1)]);
        let total: usize = groups.iter().map(|g| 1 + g.descendants.len()).sum();
        assert_eq!(total, 2);
    }
}
