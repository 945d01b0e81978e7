//! The decisions against the in-memory process table (`os::fixture`) with the facts of
//! each platform: the same code must reach the same verdicts on Linux's and macOS's
//! shapes of the same world, and the platform-only facts (launchd as PID 1 with no
//! kthreadd, a native install named by its version, lstart `procStart`, another user's
//! arguments denied, a zombie's arguments gone) must not change a verdict into a report.
//! Runs on every target: this is how the macOS decisions are tested without a Mac.

use std::collections::BTreeSet;
use std::time::Duration;

use camino::Utf8PathBuf;
use startup_hygiene::config::{Config, IgnoreRule, MatchRule};
use startup_hygiene::kill::{self, Candidate};
use startup_hygiene::orphans;
use startup_hygiene::os::fixture::Fixture;
use startup_hygiene::os::{ProcessSource, ReadError, sys};
use startup_hygiene::process_table::{Ancestry, OwnerSet, ProcessTable};
use startup_hygiene::registry::{self, Registry};
use startup_hygiene::report::{Format, KeepReason, OrphanProc, Report, Sink, StaleReason, group};

const ME: u32 = 501;
const OTHER: u32 = 502;
/// The hook itself, somewhere in the table.
const HOOK: i32 = 9999;

fn worlds() -> [(&'static str, Fixture); 2] {
    let mut linux = Fixture::linux(ME);
    let mut macos = Fixture::macos(ME);
    for f in [&mut linux, &mut macos] {
        f.spawn(HOOK, 1, ME, &["startup-hygiene"], &[]);
    }
    [("linux", linux), ("macos", macos)]
}

const SESSION_ENV: &[&str] = &[
    "CLAUDECODE=1",
    "CLAUDE_CODE_SESSION_ID=s-1",
    "HOME=/Users/u",
];

/// Runs the scan as the user `ME` with one named rule, the built-in ones not included.
fn scan_in(
    source: Fixture,
    rule: &str,
    registry: &mut Registry,
) -> (Vec<OrphanProc>, ProcessTable, Report) {
    scan_ignoring(source, rule, &[], registry)
}

fn scan_ignoring(
    source: Fixture,
    rule: &str,
    ignore: &[IgnoreRule],
    registry: &mut Registry,
) -> (Vec<OrphanProc>, ProcessTable, Report) {
    let mut table = ProcessTable::new(Box::new(source), OwnerSet::default());
    let sink = Sink::new(Report::default());
    let rules = [MatchRule {
        label: "rule".into(),
        glob: rule.into(),
    }];
    let pins = orphans::scan(
        &mut table,
        orphans::Scan {
            rules: &rules,
            ignore,
            builtin_rules: 0,
            pins: 0,
            user_rules_until: None,
            uid: ME,
            me: HOOK,
            registry,
        },
        &sink,
    );
    assert!(pins.is_empty(), "a fixture table is never pinned");
    let report = sink.snapshot();
    (report.orphans.clone(), table, report)
}

fn scan(source: Fixture, rule: &str) -> Vec<i32> {
    let (found, _, _) = scan_in(source, rule, &mut Registry::at(nowhere()));
    found.iter().map(|o| o.pid).collect()
}

fn nowhere() -> Utf8PathBuf {
    Utf8PathBuf::from("/nonexistent/startup-hygiene-registry")
}

#[test]
fn a_server_adopted_by_the_top_of_the_tree_is_an_orphan_and_one_under_an_owner_is_not() {
    for (name, mut f) in worlds() {
        f.spawn(100, 1, ME, &["node", "/srv/mcp-server.js"], &[]);
        f.spawn(200, 1, ME, &["claude"], &[]);
        f.spawn(201, 200, ME, &["node", "/srv/mcp-server.js"], &[]);
        assert_eq!(scan(f, "*mcp-server*"), [100], "{name}");
    }
}

#[test]
fn environment_markers_find_servers_and_never_tools_or_other_users() {
    for (name, mut f) in worlds() {
        f.spawn(100, 1, ME, &["python3", "-m", "srv"], SESSION_ENV);
        let mut tool = SESSION_ENV.to_vec();
        tool.push("CLAUDE_CODE_CHILD_SESSION=1");
        f.spawn(101, 1, ME, &["python3", "-m", "tool"], &tool);
        f.spawn(102, 1, OTHER, &["python3", "-m", "srv"], SESSION_ENV);
        assert_eq!(scan(f, "no-such-rule"), [100], "{name}");
    }
}

#[test]
fn a_denied_or_vanished_environment_is_unknown_never_orphan() {
    for (name, mut f) in worlds() {
        f.spawn(100, 1, ME, &["python3", "-m", "srv"], SESSION_ENV);
        f.spawn(101, 1, ME, &["python3", "-m", "srv"], SESSION_ENV);
        f.get_mut(100).unwrap().environ = Err(ReadError::Denied);
        f.get_mut(101).unwrap().environ = Err(ReadError::Gone);
        assert_eq!(scan(f, "no-such-rule"), Vec::<i32>::new(), "{name}");
    }
}

#[test]
fn a_wrapper_chain_under_the_top_of_the_tree_is_one_group() {
    for (name, mut f) in worlds() {
        f.spawn(300, 1, ME, &["npm exec @x/mcp-server"], SESSION_ENV);
        f.spawn(301, 300, ME, &["sh", "-c", "mcp-server"], SESSION_ENV);
        f.spawn(302, 301, ME, &["node", "/x/mcp-server"], SESSION_ENV);
        let (found, _, _) = scan_in(f, "no-such-rule", &mut Registry::at(nowhere()));
        let groups = group(&found);
        assert_eq!(groups.len(), 1, "{name}");
        assert_eq!(groups[0].top.pid, 300, "{name}");
        let mut below: Vec<i32> = groups[0].descendants.iter().map(|d| d.pid).collect();
        below.sort();
        assert_eq!(below, [301, 302], "{name}");
    }
}

/// A native install runs `~/.local/share/claude/versions/<X.Y.Z>`: comm is the version.
#[test]
fn a_native_install_named_by_its_version_owns_its_servers() {
    for (name, mut f) in worlds() {
        let path = "/Users/u/.local/share/claude/versions/2.1.332";
        f.spawn_named(200, 1, ME, b"2.1.332", &[path], &[]);
        f.spawn(201, 200, ME, &["node", "/srv/mcp-server.js"], SESSION_ENV);
        // argv[0] rewritten: the executable's path still tells.
        f.spawn_named(210, 1, ME, b"2.1.332", &["claude-session"], &[]);
        f.get_mut(210).unwrap().exe = Some(path.as_bytes().to_vec());
        f.spawn(211, 210, ME, &["node", "/srv/mcp-server.js"], SESSION_ENV);
        assert_eq!(scan(f, "*mcp-server*"), Vec::<i32>::new(), "{name}");
    }
}

#[test]
fn comm_is_cut_to_the_platform_length() {
    for (name, mut f) in worlds() {
        f.spawn(200, 1, ME, &["/opt/a-very-long-owner-name"], &[]);
        let comm = f.info(200).unwrap().comm;
        assert_eq!(comm, b"a-very-long-own", "{name}");
        let mut table = ProcessTable::new(
            Box::new(f),
            OwnerSet::new(vec!["a-very-long-owner-name".into()]),
        );
        assert_eq!(table.is_owner(200), Ok(true), "{name}");
    }
}

#[test]
fn only_the_platform_roots_end_a_walk_with_no_owner() {
    for (name, mut f) in worlds() {
        // Parent 0 but not a root: started from outside what we see.
        f.spawn(50, 0, ME, &["node", "/srv/mcp-server.js"], &[]);
        f.spawn(100, 1, ME, &["node", "/srv/mcp-server.js"], &[]);
        // PID 2 is kthreadd on Linux only; on macOS a PID 2 with parent 0 is unknown.
        f.spawn(400, 2, ME, &["node", "/srv/mcp-server.js"], &[]);
        if name == "macos" {
            f.spawn(2, 0, 0, &["/usr/libexec/kthreadd-lookalike"], &[]);
        }
        let mut table = ProcessTable::new(Box::new(f), OwnerSet::default());
        assert_eq!(table.ancestry(50), Ancestry::Unknown, "{name}");
        assert_eq!(table.ancestry(100), Ancestry::NoOwner, "{name}");
        let want = if name == "linux" {
            Ancestry::NoOwner
        } else {
            Ancestry::Unknown
        };
        assert_eq!(table.ancestry(400), want, "{name}");
    }
}

#[test]
fn zombies_are_never_reported_whatever_their_arguments_read() {
    for (name, mut f) in worlds() {
        f.spawn(100, 1, ME, &["node", "/srv/mcp-server.js"], SESSION_ENV);
        f.zombify(100);
        let gone = name == "macos";
        assert_eq!(f.argv(100).is_err(), gone, "{name}");
        assert_eq!(scan(f, "*mcp-server*"), Vec::<i32>::new(), "{name}");
    }
}

#[test]
fn another_users_facts_follow_the_platform() {
    let [(_, mut linux), (_, mut macos)] = worlds();
    for f in [&mut linux, &mut macos] {
        f.spawn(100, 1, OTHER, &["node", "srv"], SESSION_ENV);
    }
    assert!(linux.argv(100).is_ok());
    assert_eq!(linux.environ(100), Err(ReadError::Denied));
    assert!(linux.info(100).unwrap().started.is_some());
    assert_eq!(macos.argv(100), Err(ReadError::Denied));
    assert_eq!(macos.environ(100), Err(ReadError::Denied));
    assert_eq!(macos.info(100).unwrap().started, None);
    assert_eq!(macos.info(1).unwrap().ppid, 0);
    assert_eq!(macos.info(1).unwrap().comm, b"launchd");
    assert!(macos.info(2).is_err(), "no kthreadd on macOS");
}

/// A session's servers are kept while its registry entry names a live process started when
/// the entry says: ticks on Linux, `ps -o lstart` text in local time on macOS.
#[test]
fn the_registry_keeps_a_live_sessions_servers_in_each_platforms_form() {
    for (name, mut f) in worlds() {
        f.spawn(700, 1, ME, &["python3", "-m", "srv"], SESSION_ENV);
        // The session's claude has exited; its registry entry names PID 600.
        f.spawn(600, 1, ME, &["some-other-program"], &[]);
        let started = f.info(600).unwrap().started.unwrap();
        let dir = temp_dir(&format!("registry-{name}"));
        let right = if name == "linux" {
            format!(
                r#"{{"pid":600,"sessionId":"s-1","procStart":"{}"}}"#,
                started.id
            )
        } else {
            let tm = sys::local_time(started.at.floor() as i64).unwrap();
            let text = registry::lstart(&tm);
            format!(r#"{{"pid":600,"sessionId":"s-1","procStart":"{text}","pidDomain":"darwin"}}"#)
        };
        std::fs::write(dir.join("600.json"), &right).unwrap();
        let (found, _, _) = scan_in(f.clone(), "no-such-rule", &mut Registry::at(dir.clone()));
        assert!(found.is_empty(), "{name}: live by {right}");
        // The same entry with a start a second off: a reused PID, so the session is gone.
        let wrong = if name == "linux" {
            format!(
                r#"{{"pid":600,"sessionId":"s-1","procStart":"{}"}}"#,
                started.id + 1
            )
        } else {
            let tm = sys::local_time(started.at.floor() as i64 + 1).unwrap();
            format!(
                r#"{{"pid":600,"sessionId":"s-1","procStart":"{}","pidDomain":"darwin"}}"#,
                registry::lstart(&tm)
            )
        };
        std::fs::write(dir.join("600.json"), &wrong).unwrap();
        let (found, _, _) = scan_in(f, "no-such-rule", &mut Registry::at(dir.clone()));
        assert_eq!(
            found.iter().map(|o| o.pid).collect::<Vec<_>>(),
            [700],
            "{name}: {wrong}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn lstart_text_is_ps_s_form() {
    let tm = sys::LocalTime {
        year: 2026,
        month: 9,
        day: 5,
        hour: 9,
        minute: 12,
        second: 34,
        weekday: 1,
    };
    assert_eq!(registry::lstart(&tm), "Mon Oct  5 09:12:34 2026");
    let e = registry::parse_entry(
        br#"{"pid":7,"sessionId":"s","procStart":"Mon Oct  5 09:12:34 2026","pidDomain":"darwin"}"#,
    )
    .unwrap();
    assert_eq!(
        e.proc_start,
        registry::ProcStart::LocalTime("Mon Oct  5 09:12:34 2026".into())
    );
    // Linux's tick form is unchanged; ticks cannot be checked on macOS, so such an entry
    // is taken as live there (unknown is never orphan).
    let ticks = registry::ProcStart::Ticks(5);
    let started = startup_hygiene::os::Started {
        id: 5,
        at: 0.0,
        age: 0.0,
    };
    let other = startup_hygiene::os::Started { id: 6, ..started };
    let never = |_| None;
    assert!(ticks.matches(&started, &startup_hygiene::os::LINUX, never));
    assert!(!ticks.matches(&other, &startup_hygiene::os::LINUX, never));
    assert!(ticks.matches(&other, &startup_hygiene::os::MACOS, never));
}

fn temp_dir(tag: &str) -> Utf8PathBuf {
    let dir = Utf8PathBuf::from_path_buf(std::env::temp_dir())
        .unwrap()
        .join(format!("sh-platforms-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The reaper's verdicts through the table: a dead PID's file goes, a live holder's stays,
/// a zombie's goes, and a holder whose start may not be read (another user's, on macOS) is
/// kept.
#[test]
fn the_reaper_judges_each_platforms_table_the_same_way() {
    for (name, mut f) in worlds() {
        let project = temp_dir(&format!("reaper-{name}"));
        let state = project.join(".orchestrator-state");
        std::fs::create_dir(&state).unwrap();
        f.spawn(800, 1, ME, &["claude"], &[]);
        f.spawn(801, 1, ME, &["node", "x"], &[]);
        f.zombify(801);
        f.spawn(802, 1, OTHER, &["claude"], &[]);
        for pid in [800, 801, 802, 803] {
            std::fs::write(state.join(format!("active-session-{pid}")), b"").unwrap();
        }
        let mut table = ProcessTable::new(Box::new(f), OwnerSet::default());
        let sink = Sink::new(Report::default());
        startup_hygiene::reaper::reap(
            &Config::builtin().state_rules,
            Some(&project),
            &mut table,
            false,
            &sink,
        );
        let r = sink.snapshot();
        let mut reaped: Vec<(i32, StaleReason)> =
            r.reaped.iter().map(|e| (e.pid, e.reason)).collect();
        reaped.sort_by_key(|e| e.0);
        assert_eq!(
            reaped,
            [(801, StaleReason::Zombie), (803, StaleReason::Dead)],
            "{name}"
        );
        let mut kept: Vec<(i32, KeepReason)> = r.kept.iter().map(|e| (e.pid, e.reason)).collect();
        kept.sort_by_key(|e| e.0);
        let other = if name == "linux" {
            KeepReason::Owner
        } else {
            KeepReason::Alive
        };
        assert_eq!(kept, [(800, KeepReason::Owner), (802, other)], "{name}");
        assert!(!state.join("active-session-803").exists());
        assert!(state.join("active-session-800").exists());
        std::fs::remove_dir_all(&project).unwrap();
    }
}

#[test]
fn kill_refuses_by_its_rules() {
    let ok = Candidate {
        pid: 100,
        system: true,
        ancestor: false,
        pinned: true,
        uid_now: Ok(ME),
        running: true,
    };
    assert_eq!(kill::refusal(&ok, ME), None);
    let cases = [
        (
            Candidate {
                system: false,
                ..ok
            },
            "the process table read was not the system's",
        ),
        (
            Candidate { pid: 1, ..ok },
            "PID 1 and below are never signalled",
        ),
        (
            Candidate { pid: 0, ..ok },
            "PID 1 and below are never signalled",
        ),
        (
            Candidate { pid: -5, ..ok },
            "PID 1 and below are never signalled",
        ),
        (
            Candidate {
                ancestor: true,
                ..ok
            },
            "an ancestor of this hook",
        ),
        (
            Candidate {
                pinned: false,
                ..ok
            },
            "not pinned by the scan: cannot prove it is the process judged",
        ),
        (
            Candidate {
                uid_now: Ok(OTHER),
                ..ok
            },
            "belongs to another user",
        ),
        (
            Candidate {
                uid_now: Err(ReadError::Gone),
                ..ok
            },
            "already exited",
        ),
        (
            Candidate {
                running: false,
                ..ok
            },
            "already exited",
        ),
    ];
    for (c, want) in cases {
        assert_eq!(kill::refusal(&c, ME), Some(want), "{c:?}");
    }
}

/// What the fixture scan found on each platform, stopped and rendered: nothing is
/// signalled (the table is not the system's), and the text is sanitized.
#[test]
fn kill_and_the_report_over_each_platforms_table() {
    for (name, mut f) in worlds() {
        f.spawn(
            100,
            1,
            ME,
            &["node", "/srv/mcp-server.js", "\u{1b}[31mred"],
            &[],
        );
        let (found, mut table, mut report) =
            scan_in(f, "*mcp-server*", &mut Registry::at(nowhere()));
        assert_eq!(found.len(), 1, "{name}");
        let sink = Sink::new(report.clone());
        kill::stop(
            &group(&found),
            &kill::Pins::new(),
            table.source.as_mut(),
            ME,
            &BTreeSet::new(),
            Duration::from_millis(1),
            &sink,
        );
        report = sink.snapshot();
        assert!(report.stopped.is_empty(), "{name}");
        let refused: Vec<(i32, &str)> = report
            .not_stopped
            .iter()
            .map(|n| (n.pid, n.reason.as_str()))
            .collect();
        assert_eq!(
            refused,
            [(100, "the process table read was not the system's")],
            "{name}"
        );
        let text = report.render(Format::Text);
        assert!(text.contains("pid 100 (parent 1)"), "{name}: {text}");
        assert!(text.contains("\\u{1b}[31mred"), "{name}: {text}");
        assert!(!text.contains('\u{1b}'), "{name}: {text}");
    }
}

/// A small deterministic generator (xorshift64*), so that a failing world can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Random process forests (loops, missing parents, parent 0, unreadable links, owners,
/// zombies, another user's processes; on Linux kthreadd's children) in each platform's
/// table: the orphans reported are exactly the matched processes whose whole chain up to a
/// root of that platform was read and holds no owner, with their whole subtrees, and
/// grouping loses nobody.
#[test]
fn orphans_are_exactly_the_unowned_matches_on_each_platform() {
    let (mut procs_total, mut orphans_total) = (0, 0);
    for case in 0..300u64 {
        for (name, _) in worlds() {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (case + 1));
            let mut f = if name == "linux" {
                Fixture::linux(ME)
            } else {
                Fixture::macos(ME)
            };
            let roots: &[i32] = f.platform().roots;
            let count = 2 + rng.below(40) as usize;
            let mut pids: Vec<i32> = Vec::new();
            while pids.len() < count {
                let p = 3 + rng.below(400) as i32;
                if p != HOOK && !pids.contains(&p) {
                    pids.push(p);
                }
            }
            // (ppid, owner, zombie, matched, unreadable, other user)
            let mut world = std::collections::BTreeMap::new();
            for (i, &pid) in pids.iter().enumerate() {
                let ppid = match rng.below(10) {
                    0 => 0,
                    1 => pid,
                    2 => 999_000 + rng.below(10) as i32,
                    3 => pids[rng.below(pids.len() as u64) as usize],
                    4..=5 => 1,
                    6 => 2,
                    _ if i > 0 => pids[rng.below(i as u64) as usize],
                    _ => 1,
                };
                let p = (
                    ppid,
                    rng.chance(6),
                    rng.chance(12),
                    rng.chance(2),
                    rng.chance(15),
                    rng.chance(15),
                );
                world.insert(pid, p);
                let uid = if p.5 { OTHER } else { ME };
                let argv: &[&str] = if p.3 {
                    &["node", "/srv/orphan-marker/server.js"]
                } else {
                    &["node", "/srv/other.js"]
                };
                if p.1 {
                    f.spawn(pid, ppid, uid, &["/usr/bin/claude"], &[]);
                } else {
                    f.spawn(pid, ppid, uid, argv, &[]);
                }
                if p.2 {
                    f.zombify(pid);
                }
                if p.4 {
                    f.get_mut(pid).unwrap().info = Err(ReadError::Denied);
                }
            }
            let readable = |pid: i32| world.get(&pid).filter(|p| !p.4);
            let mut want = BTreeSet::new();
            for (&pid, p) in &world {
                // A match: not an owner, not a zombie, readable, ours.
                if !p.3 || p.1 || p.2 || p.4 || p.5 {
                    continue;
                }
                let mut seen = vec![pid];
                let mut cur = pid;
                let no_owner = loop {
                    let parent = match cur {
                        1 => 0,
                        2 if name == "linux" => 0,
                        _ => readable(cur).unwrap().0,
                    };
                    if parent <= 0 {
                        break roots.contains(&cur);
                    }
                    if seen.contains(&parent) {
                        break false;
                    }
                    if parent == 1 || (parent == 2 && name == "linux") {
                        seen.push(parent);
                        cur = parent;
                        continue;
                    }
                    match readable(parent) {
                        Some(pp) if pp.1 => break false,
                        Some(_) => {}
                        None => break false,
                    }
                    seen.push(parent);
                    cur = parent;
                };
                if no_owner {
                    want.insert(pid);
                }
            }
            // And the orphans' whole subtrees: every readable child of ours that is not an
            // owner or a zombie, matched or not.
            let mut queue: Vec<i32> = want.iter().copied().collect();
            while let Some(parent) = queue.pop() {
                for (&c, p) in &world {
                    let (ppid, owner, zombie, _, unreadable, theirs) = *p;
                    if ppid == parent
                        && c != parent
                        && !unreadable
                        && !theirs
                        && !zombie
                        && !owner
                        && want.insert(c)
                    {
                        queue.push(c);
                    }
                }
            }
            let (found, _, _) = scan_in(f, "*orphan-marker*", &mut Registry::at(nowhere()));
            let got: BTreeSet<i32> = found.iter().map(|o| o.pid).collect();
            assert_eq!(got, want, "{name} case {case}: {world:?}");
            let mut grouped: Vec<i32> = group(&found).iter().flat_map(|g| g.pids()).collect();
            grouped.sort();
            assert_eq!(
                grouped,
                got.iter().copied().collect::<Vec<_>>(),
                "{name} case {case}"
            );
            procs_total += world.len();
            orphans_total += want.len();
        }
    }
    assert!(
        orphans_total > 100,
        "the worlds hold orphans: {orphans_total}"
    );
    eprintln!(
        "property orphan worlds, both platforms: {procs_total} processes, {orphans_total} orphans"
    );
}

/// The user's ignore rules hide a process wherever it comes from; a project's hide only
/// that project's servers (a repository cannot hide another project's orphans). Only
/// orphans are counted as ignored.
#[test]
fn ignore_rules_hide_orphans_and_a_projects_hide_only_its_own() {
    for (name, mut f) in worlds() {
        let env_of = |project: &str| {
            vec![
                "CLAUDECODE=1".to_string(),
                "CLAUDE_CODE_SESSION_ID=s-9".to_string(),
                format!("CLAUDE_PROJECT_DIR={project}"),
            ]
        };
        let mine = env_of("/p/mine");
        let theirs = env_of("/p/theirs");
        let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
        let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
        f.spawn(100, 1, ME, &["node", "/srv/shared-sidecar.js"], &mine);
        f.spawn(101, 1, ME, &["node", "/srv/shared-sidecar.js"], &theirs);
        f.spawn(102, 1, ME, &["node", "/srv/other.js"], &mine);
        // Not an orphan: under a live owner. Not counted.
        f.spawn(200, 1, ME, &["claude"], &[]);
        f.spawn(201, 200, ME, &["node", "/srv/shared-sidecar.js"], &mine);
        let rule = |project: Option<&str>| IgnoreRule {
            label: "sidecar".into(),
            glob: "*shared-sidecar*".into(),
            project: project.map(str::to_string),
        };
        let pids = |found: &[OrphanProc]| found.iter().map(|o| o.pid).collect::<Vec<_>>();
        let (found, _, r) = scan_ignoring(f.clone(), "none", &[], &mut Registry::at(nowhere()));
        assert_eq!(
            (pids(&found), r.ignored),
            (vec![100, 101, 102], 0),
            "{name}"
        );
        let (found, _, r) = scan_ignoring(
            f.clone(),
            "none",
            &[rule(None)],
            &mut Registry::at(nowhere()),
        );
        assert_eq!((pids(&found), r.ignored), (vec![102], 2), "{name}");
        let (found, _, r) = scan_ignoring(
            f.clone(),
            "none",
            &[rule(Some("/p/mine"))],
            &mut Registry::at(nowhere()),
        );
        assert_eq!((pids(&found), r.ignored), (vec![101, 102], 1), "{name}");
        // The placeholder a project's rule has before `load` names it: hides nothing.
        let (found, _, r) =
            scan_ignoring(f, "none", &[rule(Some(""))], &mut Registry::at(nowhere()));
        assert_eq!(
            (pids(&found), r.ignored),
            (vec![100, 101, 102], 0),
            "{name}"
        );
    }
}

/// `load` gives a project's ignore rules that project, and the user's none.
#[test]
fn a_projects_ignore_rules_are_confined_to_it_when_loaded() {
    let project = temp_dir("ignore-load");
    std::fs::create_dir_all(project.join(".claude")).unwrap();
    std::fs::write(
        project.join(startup_hygiene::defaults::PROJECT_CONFIG),
        br#"{"orphans":{"ignore":[{"cmdline":"*side*"}]}}"#,
    )
    .unwrap();
    let user = project.join("user.json");
    std::fs::write(&user, br#"{"orphans":{"ignore":[{"cmdline":"*mine*"}]}}"#).unwrap();
    let mut warnings = Vec::new();
    let c = startup_hygiene::config::load(
        Some(&user),
        Some(&project),
        &startup_hygiene::config::Env::default(),
        &mut warnings,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let got: Vec<(&str, Option<&str>)> = c
        .ignore_rules
        .iter()
        .map(|r| (r.glob.as_str(), r.project.as_deref()))
        .collect();
    assert_eq!(got, [("*mine*", None), ("*side*", Some(project.as_str()))]);
    std::fs::remove_dir_all(&project).unwrap();
}

/// A group is the topmost orphan and its whole subtree, matched or not: `npm exec` → `sh -c`
/// (which matches no rule) → `node` is one group of three, not two groups without the
/// shell. An owner below it (and what is below that), another user's child and a zombie
/// are left out.
#[test]
fn a_group_is_the_top_orphan_and_its_whole_subtree() {
    for (name, mut f) in worlds() {
        f.spawn(300, 1, ME, &["npm exec stubborn-mcp globtest"], &[]);
        f.spawn(301, 300, ME, &["sh", "-c", "node srv"], &[]);
        f.spawn(302, 301, ME, &["node", "stubborn-mcp globtest"], &[]);
        f.spawn(303, 302, ME, &["chromium", "--headless"], &[]);
        f.spawn(310, 300, ME, &["claude"], &[]);
        f.spawn(311, 310, ME, &["node", "live-server"], &[]);
        f.spawn(320, 300, OTHER, &["sudo-helper"], &[]);
        f.spawn(330, 301, ME, &["defunct"], &[]);
        f.zombify(330);
        let (found, _, _) = scan_in(f, "*stubborn-mcp globtest*", &mut Registry::at(nowhere()));
        let groups = group(&found);
        assert_eq!(groups.len(), 1, "{name}: {found:?}");
        assert_eq!(groups[0].top.pid, 300, "{name}");
        let mut below: Vec<(i32, String)> = groups[0]
            .descendants
            .iter()
            .map(|d| (d.pid, d.matched_by.clone()))
            .collect();
        below.sort();
        let sub = startup_hygiene::defaults::SUBTREE_LABEL.to_string();
        assert_eq!(
            below,
            [(301, sub.clone()), (302, "rule".to_string()), (303, sub)],
            "{name}"
        );
    }
}

/// Claude Code's registry files judged in each platform's form: ticks on Linux, lstart text
/// with `"pidDomain": "darwin"` on macOS; a free PID's file and key go, a reused PID's go,
/// a live session's stay, another domain's are not judged.
#[test]
fn claude_codes_session_files_are_judged_in_each_platforms_form() {
    use startup_hygiene::config::{RuleDir, RuleKind, StateRule};
    for (name, mut f) in worlds() {
        let dir = temp_dir(&format!("sessions-{name}"));
        f.spawn(600, 1, ME, &["claude"], &[]);
        f.spawn(601, 1, ME, &["some-other-program"], &[]);
        let start = |f: &mut Fixture, pid: i32, shift: i64| -> (String, String) {
            let s = f.info(pid).unwrap().started.unwrap();
            if name == "linux" {
                ((s.id as i64 + shift).to_string(), String::new())
            } else {
                let tm = sys::local_time(s.at.floor() as i64 + shift).unwrap();
                (
                    registry::lstart(&tm),
                    r#","pidDomain":"darwin""#.to_string(),
                )
            }
        };
        let key = |pid: i32| dir.join(format!("{pid}.{}.key", "0f".repeat(32)));
        let write = |pid: i32, (proc_start, domain): (String, String)| {
            std::fs::write(
                dir.join(format!("{pid}.json")),
                format!(r#"{{"pid":{pid},"sessionId":"s","procStart":"{proc_start}"{domain}}}"#),
            )
            .unwrap();
            std::fs::write(key(pid), b"k").unwrap();
        };
        let live = start(&mut f, 600, 0);
        write(600, live.clone());
        write(601, start(&mut f, 601, 1));
        write(602, live.clone());
        // Another container's file (Linux), a Linux host's file (macOS).
        let other = r#","pidDomain":"linux:00000000000000000000000000000000:pid:[1]""#;
        let other_start = if name == "linux" {
            live.0.clone()
        } else {
            "12345".to_string()
        };
        write(603, (other_start, other.to_string()));
        let rule = StateRule {
            dir: RuleDir::Anywhere(dir.clone()),
            prefix: String::new(),
            suffix: ".json".into(),
            kind: RuleKind::ClaudeSessions,
        };
        let mut table = ProcessTable::new(Box::new(f), OwnerSet::default());
        let sink = Sink::new(Report::default());
        startup_hygiene::reaper::reap(&[rule], None, &mut table, false, &sink);
        let r = sink.snapshot();
        let mut reaped: Vec<(i32, StaleReason, bool)> = r
            .reaped
            .iter()
            .map(|e| (e.pid, e.reason, e.name.ends_with(".key")))
            .collect();
        reaped.sort_by_key(|e| (e.0, e.2));
        assert_eq!(
            reaped,
            [
                (601, StaleReason::Reused, false),
                (601, StaleReason::Reused, true),
                (602, StaleReason::Dead, false),
                (602, StaleReason::Dead, true)
            ],
            "{name}"
        );
        let mut kept: Vec<(i32, KeepReason)> = r.kept.iter().map(|e| (e.pid, e.reason)).collect();
        kept.sort_by_key(|e| e.0);
        assert_eq!(
            kept,
            [(600, KeepReason::Alive), (603, KeepReason::OtherDomain)],
            "{name}"
        );
        assert!(key(600).exists() && key(603).exists());
        assert!(!key(601).exists() && !key(602).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
