//! One coverage-guided target for every parser of outside input and for the report renderer.
//! The first byte picks the parser, the rest is its input; each branch checks the invariant
//! the program relies on, not only that nothing panics.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run parsers -- -max_total_time=300`

#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use startup_hygiene::config::{self, Env, Origin, RuleDir};
use startup_hygiene::report::{
    FileEntry, Format, KeepReason, NotStopped, OrphanProc, Report, StaleReason, Stopped,
};
use startup_hygiene::os::{procargs, procfs};
use startup_hygiene::{argv, cli, defaults, glob, input, registry, sanitize};

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    match route % 11 {
        0 => stat(rest),
        1 => pid(rest),
        2 => cmdline_and_environ(rest),
        3 => glob_matches(rest),
        4 => sanitizer(rest),
        5 => {
            let _ = input::parse(rest);
        }
        6 => config_rules(rest),
        7 => {
            if let Some(e) = registry::parse_entry(rest) {
                assert!(e.pid > 0);
            }
        }
        8 => report(rest),
        9 => {
            let args = rest
                .split(|&b| b == 0)
                .map(|a| OsString::from_vec(a.to_vec()));
            let _ = cli::parse(args);
        }
        _ => procargs_buffer(rest),
    }
});

fn stat(b: &[u8]) {
    if let Some(s) = procfs::parse_stat(b) {
        let open = b.iter().position(|&c| c == b'(').unwrap();
        let close = b.iter().rposition(|&c| c == b')').unwrap();
        assert_eq!(s.comm, &b[open + 1..close]);
        assert!(s.pid >= 0);
    }
}

fn pid(b: &[u8]) {
    if let Some(p) = procfs::parse_pid(b) {
        assert!(p >= 1 && p as u32 <= defaults::PID_MAX_LIMIT);
        assert_eq!(p.to_string().as_bytes(), b);
    }
}

fn cmdline_and_environ(b: &[u8]) {
    let joined = argv::joined_cmdline(b);
    assert!(!joined.contains('\0'));
    for arg in argv::split_args(b) {
        assert!(!arg.contains(&0));
    }
    let m = argv::parse_environ(b);
    if m.claudecode {
        assert!(b.split(|&c| c == 0).any(|e| e == b"CLAUDECODE=1"));
    }
}

/// The pattern and the text, split at the first NUL, each cut short so a run stays fast
/// (the pattern long enough for an automaton of several words).
/// A `KERN_PROCARGS2` buffer: what parses has the `/proc` shapes the Linux helpers take, and
/// cutting the buffer at the environment's end, or inside its last entry, keeps argv and
/// the whole entries only.
fn procargs_buffer(b: &[u8]) {
    let Some(p) = procargs::parse(b) else {
        return;
    };
    let at = |s: &[u8]| s.as_ptr().addr() - b.as_ptr().addr();
    let argc = i32::from_ne_bytes(b[..4].try_into().unwrap());
    assert!(argc >= 0);
    assert_eq!(at(p.exec_path), 4);
    assert!(!p.exec_path.contains(&0));
    assert!(at(p.argv) > 4 + p.exec_path.len());
    assert_eq!(p.argv.iter().filter(|&&c| c == 0).count(), argc as usize);
    assert!(p.argv.is_empty() || p.argv.ends_with(b"\0"));
    // argv never starts with a NUL (padding is skipped), so the splitter sees argc less the
    // empty arguments at the end (a rewritten title's NULs: padding, not arguments).
    let trailing_empty = p.argv.iter().rev().skip(1).take_while(|&&c| c == 0).count();
    let want = (argc as usize).saturating_sub(trailing_empty);
    assert_eq!(argv::split_args(p.argv).len(), want);
    assert!(!argv::joined_cmdline(p.argv).contains('\0'));
    assert!(at(p.environ) >= at(p.argv) + p.argv.len());
    assert!(p.environ.is_empty() || p.environ.ends_with(b"\0"));
    assert!(!p.environ.starts_with(b"\0") && !p.environ.windows(2).any(|w| w == b"\0\0"));
    let _ = argv::parse_environ(p.environ);
    let env_end = at(p.environ) + p.environ.len();
    assert_eq!(procargs::parse(&b[..env_end]), Some(p));
    if let Some(body) = p.environ.strip_suffix(b"\0") {
        let kept = body.iter().rposition(|&c| c == 0).map_or(0, |i| i + 1);
        let cut = procargs::parse(&b[..env_end - 1]).expect("argv is still whole");
        assert_eq!((cut.argv, cut.environ), (p.argv, &p.environ[..kept]));
    }
}

fn glob_matches(b: &[u8]) {
    let (p, t) = match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b""[..]),
    };
    let p: String = String::from_utf8_lossy(p).chars().take(160).collect();
    let t = &t[..t.len().min(512)];
    let want = reference_glob(&p, &String::from_utf8_lossy(t));
    // The prepared matcher the scan uses, on raw bytes, and the character matcher.
    let prepared = glob::Glob::new(&p).expect("160 characters are within the bound");
    assert_eq!(prepared.matches_bytes(t), want, "{p:?} ~ {t:?}");
    let t = String::from_utf8_lossy(t);
    assert_eq!(glob::matches(&p, &t), want, "{p:?} ~ {t:?}");
}

/// Dynamic programming over (pattern prefix, text prefix): slow and obviously right.
fn reference_glob(p: &str, t: &str) -> bool {
    let p: Vec<char> = p.chars().collect();
    let t: Vec<char> = t.chars().collect();
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            next[0] = row[0];
            for j in 1..=t.len() {
                next[j] = row[j] || next[j - 1];
            }
        } else {
            for j in 1..=t.len() {
                next[j] = row[j - 1] && (pc == '?' || pc == t[j - 1]);
            }
        }
        row = next;
    }
    row[t.len()]
}

fn sanitizer(b: &[u8]) {
    let Some((&cap, text)) = b.split_first() else {
        return;
    };
    let cap = cap as usize;
    let text = String::from_utf8_lossy(text);
    for out in [
        sanitize::sanitize(&text, cap),
        sanitize::quote(&text, cap.max(2)),
    ] {
        assert!(out.chars().count() <= cap.max(2), "{out:?}");
        assert!(
            !out.chars()
                .any(|c| c.is_control() || sanitize::is_unsafe(c)),
            "{out:?}"
        );
    }
}

fn config_rules(b: &[u8]) {
    let env = Env {
        home: Some("/home/u".into()),
        claude_config_dir: None,
        xdg_config_home: None,
    };
    for origin in [Origin::Project, Origin::User] {
        let Ok(c) = config::parse(b, origin, &env) else {
            continue;
        };
        // A repository cannot choose which processes are reported.
        assert!(origin == Origin::User || c.match_rules.is_empty());
        for rule in &c.state_rules {
            match (&rule.dir, origin) {
                (RuleDir::InProject(parts), _) => {
                    assert!(!parts.is_empty());
                    for p in parts {
                        assert!(!p.is_empty() && p != "." && p != "..");
                        assert!(!p.contains('/') && !p.contains('\0'));
                    }
                }
                (RuleDir::Anywhere(path), Origin::User) => assert!(path.is_absolute()),
                (RuleDir::Anywhere(_), Origin::Project) => panic!("a project rule left it"),
            }
            let name = format!("{}123{}", rule.prefix, rule.suffix);
            assert_eq!(rule.pid_of(name.as_bytes()), Some(123));
        }
    }
}

/// A report made of the input's pieces, rendered in every format.
fn report(b: &[u8]) {
    // A piece's first byte says how often it repeats, so short inputs can make a block
    // that must be cut at the cap.
    let mut pieces = b.split(|&c| c == 0).map(|p| {
        let times = 1 + p.first().map_or(0, |&n| (n % 8) as usize * 40);
        String::from_utf8_lossy(p).repeat(times)
    });
    let mut next = || pieces.next().unwrap_or_default();
    let counts: Vec<usize> = b.iter().take(6).map(|&c| c as usize).collect();
    let count = |i: usize, max: usize| counts.get(i).copied().unwrap_or(0) % max;
    let mut r = Report {
        project: Some(next()),
        dry_run: count(0, 2) == 1,
        kill_requested: count(1, 2) == 1,
        cut_short: count(2, 2) == 1,
        deadline_ms: 2000,
        ..Report::default()
    };
    for i in 0..count(3, 40) {
        let dir = if i % 3 == 0 {
            next()
        } else {
            format!("/d{}", i % 7)
        };
        r.reaped.push(FileEntry {
            dir,
            name: next(),
            pid: i as i32 + 1,
            reason: [StaleReason::Dead, StaleReason::Zombie, StaleReason::Reused][i % 3],
        });
        r.kept.push(FileEntry {
            dir: next(),
            name: next(),
            pid: i as i32 + 1,
            reason: KeepReason::Alive,
        });
    }
    for i in 0..count(4, 120) {
        r.orphans.push(OrphanProc {
            pid: 1000 + i as i32,
            ppid: if i % 4 == 0 { 1 } else { 999 + i as i32 },
            starttime: i as u64,
            comm: next(),
            cmdline: next(),
            matched_by: next(),
            rss_bytes: (i as u64) << 20,
            age_secs: i as u64 * 977,
            session_id: Some(next()),
            project_dir: Some(next()),
        });
        r.not_stopped.push(NotStopped {
            pid: i as i32,
            reason: next(),
        });
        if i % 2 == 0 {
            r.stopped.push(Stopped {
                pid: i as i32,
                signal: "SIGTERM",
            });
        }
    }
    for _ in 0..count(5, 12) {
        r.warnings.push(next());
    }
    let text = r.render(Format::Text);
    assert!(text.len() <= defaults::BLOCK_CAP, "{}", text.len());
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || sanitize::is_unsafe(c) && c != '\n'),
        "{text:?}"
    );
    let hook = r.render(Format::HookJson);
    if !hook.is_empty() {
        let v: serde_json::Value = serde_json::from_str(&hook).unwrap();
        assert_eq!(v["hookSpecificOutput"]["additionalContext"], text.as_str());
    }
    let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
    assert!(json.is_object());
}
