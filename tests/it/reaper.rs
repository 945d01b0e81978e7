//! The stale per-PID file reaper, run as the built binary against real files and processes.

use std::collections::HashSet;
use std::os::unix::fs::symlink;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const HOUR: Duration = Duration::from_secs(3600);
const FRESH: Duration = Duration::ZERO;

fn reasons(report: &Value, key: &str) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = report[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pid"].as_i64().unwrap(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn dead_removed_live_kept() {
    let env = TestEnv::new();
    let dead = dead_pid();
    let me = std::process::id() as i32;
    env.pid_file(dead, HOUR);
    env.pid_file(me, FRESH);
    let r = env.report(&[]);
    assert_eq!(reasons(&r, "reaped"), vec![(dead as i64, "dead".into())]);
    assert_eq!(reasons(&r, "kept"), vec![(me as i64, "alive".into())]);
    assert_eq!(
        env.names_in_state_dir(),
        vec![format!("active-session-{me}")]
    );
    assert_eq!(r["dry_run"], false);
    assert_eq!(r["project"], env.project.to_str().unwrap());
    let path = r["reaped"][0]["path"].as_str().unwrap();
    assert!(
        path.ends_with(&format!(".orchestrator-state/active-session-{dead}")),
        "{path}"
    );
}

#[test]
fn text_block_counts_and_explains() {
    let env = TestEnv::new();
    env.pid_file(dead_pid(), HOUR);
    env.pid_file(dead_pid(), HOUR);
    let run = env.hook().args(["--project"]).arg(&env.project).run();
    assert_eq!(run.code(), 0);
    let state = env.project.join(".orchestrator-state");
    let expected = format!(
        "- Removed 2 stale per-PID state files in \"{}\": 2 whose process has exited.\n",
        state.display()
    );
    assert!(run.stdout().contains(&expected), "{}", run.stdout());
    assert!(run.stdout().len() < 4000);
}

#[test]
fn names_that_are_not_canonical_pids_are_ignored() {
    let env = TestEnv::new();
    let names = [
        "active-session",
        "active-session-",
        "active-session-0",
        "active-session-00",
        "active-session-007",
        "active-session--5",
        "active-session-+5",
        "active-session-5.bak",
        "active-session-5x",
        "active-session-99999999",
        "xactive-session-5",
        "notes.txt",
    ];
    for n in names {
        env.file(&format!(".orchestrator-state/{n}"), HOUR);
    }
    let r = env.report(&[]);
    assert_eq!(r["reaped"], Value::Array(vec![]));
    assert_eq!(r["kept"], Value::Array(vec![]));
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(env.names_in_state_dir(), expected);
}

#[test]
fn missing_and_empty_folders_are_no_ops() {
    let env = TestEnv::new();
    for state in ["missing", "empty"] {
        if state == "empty" {
            env.state_dir();
        }
        let r = env.report(&[]);
        assert_eq!(r["reaped"], Value::Array(vec![]), "{state}");
        assert_eq!(r["kept"], Value::Array(vec![]), "{state}");
        assert_eq!(r["warnings"], Value::Array(vec![]), "{state}");
    }
}

#[test]
fn pid_1_is_alive_and_kept() {
    let env = TestEnv::new();
    env.pid_file(1, FRESH);
    let r = env.report(&[]);
    assert_eq!(reasons(&r, "kept"), vec![(1, "alive".into())]);
    assert_eq!(env.names_in_state_dir(), vec!["active-session-1"]);
}

#[test]
fn zombie_is_stale() {
    let env = TestEnv::new();
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id() as i32;
    // Not waited for: it stays a zombie until reaped below.
    for _ in 0..500 {
        if state(pid) == Some('Z') {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(state(pid), Some('Z'));
    env.pid_file(pid, FRESH);
    let r = env.report(&[]);
    let _ = child.wait();
    assert_eq!(reasons(&r, "reaped"), vec![(pid as i64, "zombie".into())]);
}

/// "Younger than the file" is judged to the sub-second. The file's time is set to 0.9 s
/// past a whole second, close to 5 s (the slack) before its holder started: within the
/// slack by at least 0.4 s, so the file is kept; its whole seconds alone, or its fraction
/// taken the wrong way, would put it outside.
#[test]
fn a_holder_started_within_the_slack_of_the_write_keeps_its_file() {
    use startup_hygiene::os::sys;
    let env = TestEnv::new();
    let mut procs = Procs::new();
    let holder = procs.server("some-tool", &[], &[]);
    let started = sys::realtime_secs() - sys::boottime_secs()
        + starttime(holder) as f64 / sys::clock_ticks() as f64;
    let written = (started - startup_hygiene::defaults::REUSE_SLACK_SECS).round() + 0.9;
    let path = env.pid_file(holder, FRESH);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs_f64(written))
        .unwrap();
    let r = env.report(&[]);
    assert_eq!(
        reasons(&r, "kept"),
        vec![(holder as i64, "alive".into())],
        "{r}"
    );
}

#[test]
fn reused_pid_younger_than_file_is_stale_but_owner_keeps_its_file() {
    let env = TestEnv::new();
    let mut procs = Procs::new();
    let stranger = procs.server("some-tool", &[], &[]);
    let owner = procs.server(&env.owner, &[], &[]);
    // Written 20 s before its holder started: well past the 5 s of slack, and well after
    // the boot of any machine that built this test (an hour could be before it, and then a
    // start time misread as the boot would still look younger than the file).
    let written = Duration::from_secs(20);
    env.pid_file(stranger, written);
    env.pid_file(owner, written);
    let r = env.report(&[]);
    assert_eq!(
        reasons(&r, "reaped"),
        vec![(stranger as i64, "reused".into())]
    );
    assert_eq!(reasons(&r, "kept"), vec![(owner as i64, "owner".into())]);
    assert!(
        is_alive(stranger) && is_alive(owner),
        "the reaper never signals"
    );
}

#[test]
fn default_owner_names_are_claude() {
    let env = TestEnv::new();
    let mut procs = Procs::new();
    let claude = procs.server("claude", &[], &[]);
    env.pid_file(claude, HOUR);
    // Without --owner: the built-in owner names.
    let mut hook = env.hook();
    hook.cmd = Command::new(bin());
    clean_env(&mut hook.cmd, &env.home);
    let r = hook
        .args(["--format", "json", "--project"])
        .arg(&env.project)
        .run()
        .json();
    assert_eq!(reasons(&r, "kept"), vec![(claude as i64, "owner".into())]);
}

#[test]
fn eperm_means_alive() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        skip("needs root to run the hook as nobody against a root-owned process");
        return;
    }
    let env = TestEnv::new();
    let me = std::process::id() as i32;
    env.pid_file(me, FRESH);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        bin(),
        "--format",
        "json",
        "--owner",
        &env.owner,
        "--project",
    ])
    .arg(&env.project);
    clean_env(&mut cmd, &env.home);
    make_world_readable(&env.root);
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reasons(&r, "kept"), vec![(me as i64, "alive".into())]);
    assert_eq!(
        env.names_in_state_dir(),
        vec![format!("active-session-{me}")]
    );
}

fn make_world_readable(root: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for dir in [
        root.to_path_buf(),
        root.join("project"),
        root.join("project/.orchestrator-state"),
        root.join("home"),
    ] {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn only_regular_files_are_reaped() {
    let env = TestEnv::new();
    let state = env.state_dir();
    let (d1, d2, d3) = (dead_pid(), dead_pid(), dead_pid());
    std::fs::create_dir(state.join(format!("active-session-{d1}"))).unwrap();
    let target = env.root.join("precious");
    std::fs::write(&target, "keep me").unwrap();
    symlink(&target, state.join(format!("active-session-{d2}"))).unwrap();
    let fifo = std::ffi::CString::new(state.join(format!("active-session-{d3}")).to_str().unwrap())
        .unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let r = env.report(&[]);
    assert_eq!(r["reaped"], Value::Array(vec![]));
    let kept = reasons(&r, "kept");
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|(_, why)| why == "not_regular"), "{kept:?}");
    assert_eq!(env.names_in_state_dir().len(), 3);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn symlinked_state_folder_is_reported_not_entered() {
    let env = TestEnv::new();
    let elsewhere = env.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let victim = elsewhere.join(format!("active-session-{}", dead_pid()));
    std::fs::write(&victim, "x").unwrap();
    symlink(&elsewhere, env.project.join(".orchestrator-state")).unwrap();
    let r = env.report(&[]);
    assert_eq!(r["reaped"], Value::Array(vec![]));
    assert!(victim.exists());
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("is a symlink; not entered"), "{warnings}");
}

#[test]
fn hostile_project_config_cannot_reach_outside() {
    let env = TestEnv::new();
    let outside = env.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join(format!("lock-{}", dead_pid()));
    std::fs::write(&victim, "x").unwrap();
    symlink(&outside, env.project.join("link")).unwrap();
    let rel = format!("../{}", outside.file_name().unwrap().to_str().unwrap());
    for dir in [
        outside.to_str().unwrap(),
        rel.as_str(),
        "~/x",
        "link",
        "link/.",
        "./link",
    ] {
        let cfg = format!(r#"{{"state_files":[{{"dir":{dir:?},"name":"lock-{{pid}}"}}]}}"#);
        env.file(".claude/startup-hygiene.json", FRESH);
        std::fs::write(env.project.join(".claude/startup-hygiene.json"), cfg).unwrap();
        let r = env.report(&[]);
        assert_eq!(r["reaped"], Value::Array(vec![]), "{dir}");
        assert!(victim.exists(), "{dir}");
        assert!(
            !r["warnings"].as_array().unwrap().is_empty(),
            "{dir}: a refused rule is reported"
        );
    }
}

#[test]
fn config_rules_add_state_folders() {
    let env = TestEnv::new();
    let dead = dead_pid();
    env.file(&format!("run/locks/lock-{dead}.json"), HOUR);
    env.file(".claude/startup-hygiene.json", FRESH);
    std::fs::write(
        env.project.join(".claude/startup-hygiene.json"),
        r#"{"state_files":[{"dir":"run/locks","name":"lock-{pid}.json"}]}"#,
    )
    .unwrap();
    let r = env.report(&[]);
    assert_eq!(reasons(&r, "reaped"), vec![(dead as i64, "dead".into())]);
    assert!(
        !env.project
            .join(format!("run/locks/lock-{dead}.json"))
            .exists()
    );

    // The user's own config may name a folder anywhere, with ~.
    let user_dir = env.home.join("state");
    std::fs::create_dir_all(&user_dir).unwrap();
    let dead2 = dead_pid();
    std::fs::write(user_dir.join(format!("{dead2}.pid")), "x").unwrap();
    std::fs::create_dir_all(env.home.join(".config/startup-hygiene")).unwrap();
    std::fs::write(
        env.home.join(".config/startup-hygiene/config.json"),
        r#"{"state_files":[{"dir":"~/state","name":"{pid}.pid"}]}"#,
    )
    .unwrap();
    std::fs::remove_file(env.project.join(".claude/startup-hygiene.json")).unwrap();
    let r = env.report(&[]);
    assert_eq!(reasons(&r, "reaped"), vec![(dead2 as i64, "dead".into())]);
}

#[test]
fn invalid_config_warns_and_keeps_builtin_rules() {
    let env = TestEnv::new();
    let dead = dead_pid();
    env.pid_file(dead, HOUR);
    env.file(".claude/startup-hygiene.json", FRESH);
    std::fs::write(
        env.project.join(".claude/startup-hygiene.json"),
        "{ not json",
    )
    .unwrap();
    let run = env.hook().args(["--project"]).arg(&env.project).run();
    assert_eq!(run.code(), 0);
    assert!(run.stdout().contains("Warning: config"), "{}", run.stdout());
    assert!(
        run.stdout().contains("its rules are not used"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("Removed 1 stale per-PID state file "),
        "{}",
        run.stdout()
    );
    assert!(run.stderr().contains("warning: config"), "{}", run.stderr());
}

#[test]
fn dry_run_changes_nothing() {
    let env = TestEnv::new();
    let dead = dead_pid();
    env.pid_file(dead, HOUR);
    let r = env.report(&["--dry-run"]);
    assert_eq!(r["dry_run"], true);
    assert_eq!(reasons(&r, "reaped"), vec![(dead as i64, "dead".into())]);
    assert_eq!(
        env.names_in_state_dir(),
        vec![format!("active-session-{dead}")]
    );
    let text = env
        .hook()
        .args(["--dry-run", "--project"])
        .arg(&env.project)
        .run()
        .stdout();
    assert!(
        text.contains("Would remove 1 stale per-PID state file ")
            && text.contains("nothing was removed"),
        "{text}"
    );
}

#[test]
fn project_comes_from_stdin_cwd_then_env_then_current_dir() {
    let env = TestEnv::new();
    let other = TestEnv::new();
    let dead = dead_pid();
    env.pid_file(dead, HOUR);
    let stdin = format!(
        r#"{{"session_id":"s","cwd":{:?},"hook_event_name":"SessionStart","source":"startup"}}"#,
        env.project.to_str().unwrap()
    );
    // The hook runs in `other`'s project; stdin names `env`'s.
    let mut hook = other.hook().args(["--format", "json"]).stdin(stdin);
    hook.cmd.env("CLAUDE_PROJECT_DIR", &other.project);
    let r = hook.run().json();
    assert_eq!(r["project"], env.project.to_str().unwrap());
    assert_eq!(pids(&r, "reaped"), vec![dead as i64]);

    // A relative cwd is ignored: CLAUDE_PROJECT_DIR wins, then the current directory.
    let r = other
        .hook()
        .args(["--format", "json"])
        .stdin(r#"{"cwd":"relative"}"#)
        .env("CLAUDE_PROJECT_DIR", &env.project)
        .run()
        .json();
    assert_eq!(r["project"], env.project.to_str().unwrap());
    let r = other.hook().args(["--format", "json"]).run().json();
    assert_eq!(r["project"], other.project.to_str().unwrap());
}

#[test]
fn stdin_variants_never_fail_the_hook() {
    let env = TestEnv::new();
    let dead = dead_pid();
    env.pid_file(dead, HOUR);
    let huge = format!(
        r#"{{"cwd":"{}","pad":"{}"}}"#,
        env.project.display(),
        "x".repeat(2 << 20)
    );
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("empty", Vec::new(), false),
        ("garbage", b"\x00\xff garbage {{{".to_vec(), true),
        ("truncated", br#"{"cwd": "/tm"#.to_vec(), true),
        (
            "wrong types",
            br#"{"cwd": 42, "session_id": []}"#.to_vec(),
            false,
        ),
        ("array", b"[1,2]".to_vec(), true),
        ("huge", huge.into_bytes(), true),
    ];
    for (name, input, warns) in cases {
        env.pid_file(dead, HOUR);
        let r = env
            .hook()
            .args(["--format", "json", "--project"])
            .arg(&env.project)
            .stdin(input)
            .run()
            .json();
        assert_eq!(pids(&r, "reaped"), vec![dead as i64], "{name}");
        assert_eq!(
            !r["warnings"].as_array().unwrap().is_empty(),
            warns,
            "{name}: {}",
            r["warnings"]
        );
    }
    // A pipe nobody closes: the hook goes on without input and still does its work.
    env.pid_file(dead, HOUR);
    let run = env
        .hook()
        .args(["--format", "json", "--project"])
        .arg(&env.project)
        .run_with_open_stdin();
    assert_eq!(pids(&run.json(), "reaped"), vec![dead as i64]);
}

/// The name a run of PID `run` sets the file `name` aside under, before removing it.
fn aside(run: i32, name: &str) -> String {
    format!(".startup-hygiene.{run}.{name}")
}

/// `n` runs of the hook started at once on `env`'s project (`--format json`, then `extra`);
/// their reports, each run having exited 0.
fn runs_at_once(env: &TestEnv, n: usize, extra: &[&str]) -> Vec<Value> {
    let runs: Vec<_> = (0..n)
        .map(|_| {
            let mut hook = env
                .hook()
                .args(["--format", "json", "--project"])
                .arg(&env.project)
                .args(extra);
            hook.cmd
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped());
            hook.cmd.spawn().unwrap()
        })
        .collect();
    runs.into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0));
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect()
}

#[test]
fn parallel_runs_remove_each_file_once_and_count_it_once() {
    let env = TestEnv::new();
    env.state_dir();
    let dead = dead_pid();
    let others = dead_pids(1999);
    let mut expected = HashSet::new();
    for i in 0..2000 {
        let pid = if i == 0 { dead } else { others[i - 1] };
        std::fs::write(
            env.project
                .join(format!(".orchestrator-state/active-session-{pid}")),
            "x",
        )
        .unwrap();
        expected.insert(format!("active-session-{pid}"));
    }
    assert_eq!(expected.len(), 2000);
    let mut seen = Vec::new();
    let mut per_run = Vec::new();
    for r in runs_at_once(&env, 16, &[]) {
        // A file another run removed first is not this run's, and not a failure either.
        assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
        per_run.push(r["reaped"].as_array().unwrap().len());
        for e in r["reaped"].as_array().unwrap() {
            let path = e["path"].as_str().unwrap();
            seen.push(path.rsplit('/').next().unwrap().to_string());
        }
    }
    eprintln!("files removed per run: {per_run:?}");
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        seen.len(),
        2000,
        "every file counted exactly once across 16 runs"
    );
    assert_eq!(unique, expected);
    assert!(env.names_in_state_dir().is_empty());
}

/// Swaps `a` and `b` in `dir` atomically (`renameat2(RENAME_EXCHANGE)`).
fn exchange(dir: &std::path::Path, a: &str, b: &str) -> bool {
    let c = |n: &str| {
        std::ffi::CString::new(dir.join(n).into_os_string().into_encoded_bytes()).unwrap()
    };
    let (a, b) = (c(a), c(b));
    // SAFETY: valid C strings, AT_FDCWD.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// The review's check-then-unlink race: while the hook judges a stale file, another
/// process keeps swapping it with something else under the same name — a symlink named
/// like a state file (removed in 64 of 500 runs), or a live session's fresh file renamed
/// into place (removed without ever being judged). Only the judged file may go.
#[test]
fn only_the_judged_file_is_removed_whatever_is_swapped_in() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = TestEnv::new();
    let dir = env.state_dir();
    let dead = dead_pid();
    let other = "swapped-in".to_string();
    let target = env.root.join("target");
    std::fs::write(&target, "keep me").unwrap();
    let (mut lost, mut judged_removed) = ([0, 0], 0);
    // The symlink under a dead PID's name; the fresh file under this test's own PID, which
    // the hour-old stale file is judged reused for (this process started after it was
    // written) while a fresh file of it is judged alive.
    let me = std::process::id();
    for (k, (kind, name)) in [
        ("symlink", format!("active-session-{dead}")),
        ("fresh file", format!("active-session-{me}")),
    ]
    .into_iter()
    .enumerate()
    {
        for _ in 0..250 {
            // The stale file under the name; the other thing beside it.
            let _ = std::fs::remove_file(dir.join(&name));
            let _ = std::fs::remove_file(dir.join(&other));
            std::fs::write(dir.join(&name), "stale").unwrap();
            set_mtime(&dir.join(&name), std::time::SystemTime::now() - HOUR);
            if kind == "symlink" {
                symlink(&target, dir.join(&other)).unwrap();
            } else {
                std::fs::write(dir.join(&other), "fresh").unwrap();
            }
            let stop = Arc::new(AtomicBool::new(false));
            let swapper = {
                let (stop, dir, name, other) =
                    (Arc::clone(&stop), dir.clone(), name.clone(), other.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        exchange(&dir, &name, &other);
                    }
                })
            };
            let run = env
                .hook()
                .args(["--format", "json", "--project"])
                .arg(&env.project)
                .run();
            stop.store(true, Ordering::Relaxed);
            swapper.join().unwrap();
            assert_eq!(run.code(), 0, "{}", run.stderr());
            // The other thing must still be there, under one name or the other.
            let survivors: Vec<String> = [&name, &other]
                .iter()
                .filter(|n| {
                    let p = dir.join(n);
                    match kind {
                        "symlink" => p
                            .symlink_metadata()
                            .is_ok_and(|m| m.file_type().is_symlink()),
                        _ => std::fs::read_to_string(&p).is_ok_and(|t| t == "fresh"),
                    }
                })
                .map(|n| n.to_string())
                .collect();
            if survivors.is_empty() {
                lost[k] += 1;
            }
            if ![&name, &other]
                .iter()
                .any(|n| std::fs::read_to_string(dir.join(n)).is_ok_and(|t| t == "stale"))
            {
                judged_removed += 1;
            }
            // Nothing set aside is left behind.
            assert_eq!(
                env.names_in_state_dir()
                    .iter()
                    .filter(|n| n.starts_with(".startup-hygiene."))
                    .count(),
                0
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    eprintln!(
        "race: 500 runs, the stale file removed in {judged_removed}; lost: the symlink in {} of 250, the fresh file in {} of 250",
        lost[0], lost[1]
    );
    assert!(
        judged_removed > 0,
        "the stale file was never removed: the race was never run"
    );
    assert_eq!(lost, [0, 0], "runs that removed what was swapped in");
}

/// A run that ended between setting a file aside and removing it (killed at its deadline):
/// the next run puts it back under its name, and judges it again.
#[test]
fn a_file_left_aside_by_a_dead_run_is_put_back() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    let (gone_run, dead, live) = (dead_pid(), dead_pid(), std::process::id());
    std::fs::write(
        dir.join(aside(gone_run, &format!("active-session-{live}"))),
        "live",
    )
    .unwrap();
    std::fs::write(
        dir.join(aside(gone_run, &format!("active-session-{dead}"))),
        "stale",
    )
    .unwrap();
    env.report(&[]);
    assert_eq!(env.names_in_state_dir(), {
        let mut v = vec![
            format!("active-session-{dead}"),
            format!("active-session-{live}"),
        ];
        v.sort();
        v
    });
    let r = env.report(&[]);
    assert_eq!(reasons(&r, "reaped"), vec![(dead as i64, "dead".into())]);
    assert_eq!(
        env.names_in_state_dir(),
        vec![format!("active-session-{live}")]
    );

    // A name taken again meanwhile (a live session wrote a new file) is never overwritten:
    // the entry set aside stays where it is, and a warning says so.
    let aside = aside(gone_run, &format!("active-session-{live}"));
    std::fs::write(dir.join(&aside), "older").unwrap();
    let r = env.report(&[]);
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("active-session-{live}"))).unwrap(),
        "live"
    );
    assert_eq!(std::fs::read_to_string(dir.join(&aside)).unwrap(), "older");
    assert!(
        r["warnings"].to_string().contains("cannot be put back"),
        "{r}"
    );
}

/// Runs at once over the leftovers of a run that ended: each entry is put back once, a
/// run that finds another was first says nothing, and the next run judges every name.
#[test]
fn parallel_runs_put_each_leftover_back_once() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    let gone_run = dead_pid();
    let pids = dead_pids(300);
    for pid in &pids {
        std::fs::write(
            dir.join(aside(gone_run, &format!("active-session-{pid}"))),
            "x",
        )
        .unwrap();
    }
    for r in runs_at_once(&env, 8, &["--dry-run"]) {
        assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
    }
    let mut want: Vec<String> = pids.iter().map(|p| format!("active-session-{p}")).collect();
    want.sort();
    assert_eq!(env.names_in_state_dir(), want);
}

/// On a file system without `RENAME_NOREPLACE` (simulated: a seccomp filter answers
/// `EINVAL`, as NFS does) a stale file is still removed, a leftover of a run that ended is
/// still put back, and a name taken again meanwhile is still never overwritten.
#[test]
fn without_rename_noreplace_files_are_removed_and_put_back_the_same() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    let (gone_run, stale, back, taken) = (dead_pid(), dead_pid(), dead_pid(), dead_pid());
    env.pid_file(stale, HOUR);
    std::fs::write(
        dir.join(aside(gone_run, &format!("active-session-{back}"))),
        "back",
    )
    .unwrap();
    let taken_aside = aside(gone_run, &format!("active-session-{taken}"));
    std::fs::write(dir.join(&taken_aside), "older").unwrap();
    std::fs::write(dir.join(format!("active-session-{taken}")), "newer").unwrap();
    let hook = |dry_run: bool| {
        let mut hook = env
            .hook()
            .args(["--format", "json", "--project"])
            .arg(&env.project);
        if dry_run {
            hook = hook.arg("--dry-run");
        }
        without_rename_flags(&mut hook.cmd);
        hook.run()
    };
    // A dry run removes nothing; leftovers go back all the same.
    let r = hook(true).json();
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("active-session-{back}"))).unwrap(),
        "back"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(&taken_aside)).unwrap(),
        "older"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("active-session-{taken}"))).unwrap(),
        "newer"
    );
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("cannot be put back"), "{r}");
    let r = hook(false).json();
    let mut removed: Vec<i64> = reasons(&r, "reaped").iter().map(|(p, _)| *p).collect();
    removed.sort();
    let mut want = vec![stale as i64, back as i64, taken as i64];
    want.sort();
    assert_eq!(removed, want, "{r}");
    // "newer" was stale and is gone; "older", set aside by the run that ended, is kept
    // (put back once its name was free, or still aside: the listing's order decides).
    let left = env.names_in_state_dir();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join(&left[0])).unwrap(),
        "older"
    );
}

/// A leftover under the name this very run sets files aside by (a run of the same PID
/// before it, in a PID namespace where the hook is PID 1) is never overwritten by setting
/// the stale file of the same name aside.
#[test]
fn a_leftover_under_the_hooks_own_aside_name_is_never_overwritten() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    let dead = dead_pid();
    let aside = aside(1, &format!("active-session-{dead}"));
    std::fs::write(dir.join(&aside), "older").unwrap();
    env.pid_file(dead, HOUR);
    let Some(hook) = env
        .hook()
        .args(["--format", "json", "--project"])
        .arg(&env.project)
        .in_pid_namespace()
    else {
        return;
    };
    let r = hook.run().json();
    let kept: Vec<String> = env
        .names_in_state_dir()
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap())
        .collect();
    assert!(kept.contains(&"older".to_string()), "{kept:?} {r}");
}

/// Only a leftover of a run that has ended is put back. One named by a PID that is alive is
/// a run still going, which may be about to remove it: PID 1 here. The same leftover seen by
/// a hook that is itself PID 1 (of a PID namespace of its own) is its own, and goes back.
/// A leftover whose name is not one of the rule's PID files is never given that name.
#[test]
fn only_a_leftover_of_an_ended_run_is_put_back() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    let dead = dead_pid();
    let running = aside(1, &format!("active-session-{dead}"));
    let not_a_pid_file = aside(dead_pid(), "notes.txt");
    std::fs::write(dir.join(&running), "stale").unwrap();
    std::fs::write(dir.join(&not_a_pid_file), "notes").unwrap();
    env.report(&[]);
    assert_eq!(env.names_in_state_dir(), {
        let mut v = vec![running.clone(), not_a_pid_file.clone()];
        v.sort();
        v
    });

    let Some(hook) = env
        .hook()
        .args(["--format", "json", "--project"])
        .arg(&env.project)
        .in_pid_namespace()
    else {
        return;
    };
    let r = hook.run().json();
    let names = env.names_in_state_dir();
    assert!(!names.contains(&running), "{names:?}");
    let back = names.contains(&format!("active-session-{dead}"));
    let removed = reasons(&r, "reaped") == vec![(dead as i64, "dead".into())];
    assert!(back || removed, "{names:?} {r}");
}

/// A live session in a container that shares the project folder names its file by the PID
/// it has there; no process on the host has that PID. The host's hook sees the container's
/// processes (`NSpid:` gives their PIDs in each namespace) and keeps the file.
#[test]
fn a_file_of_a_session_in_another_pid_namespace_is_kept() {
    if pid_namespace().is_none() {
        return;
    }
    let env = TestEnv::new();
    let dir = env.state_dir();
    for _ in 0..20 {
        // A PID free on the host, for the container's session to have there: one just
        // freed, behind the host's next PID, so not handed out again until a wrap-around.
        let inner = dead_pid();
        if std::path::Path::new(&format!("/proc/{inner}")).exists() {
            continue;
        }
        let ready = env.root.join(unique("ready"));
        let script = format!(
            "echo {} > /proc/sys/kernel/ns_last_pid; sleep 600 & S=$!; : > '{}/active-session-'$S; echo $S > '{}'; wait",
            inner - 1,
            dir.display(),
            ready.display()
        );
        let mut container = pid_namespace()
            .unwrap()
            .args(["sh", "-c", &script])
            .spawn()
            .unwrap();
        let mut said = String::new();
        for _ in 0..500 {
            said = std::fs::read_to_string(&ready).unwrap_or_default();
            if said.ends_with('\n') {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let report = env.report(&[]);
        let host_took_it = std::path::Path::new(&format!("/proc/{inner}")).exists();
        // End the container by its init (unshare's child): the kernel ends the rest of the
        // namespace before init is reaped, and unshare exits once it has reaped init.
        let id = container.id();
        let init: i32 = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut procs = Procs::new();
        procs.adopt(init);
        procs.kill(init);
        container.wait().unwrap();
        if said.trim() != inner.to_string() || host_took_it {
            // The container did not get that PID, or the host gave it out meanwhile.
            let _ = std::fs::remove_file(dir.join(format!("active-session-{}", said.trim())));
            continue;
        }
        assert_eq!(
            reasons(&report, "kept"),
            vec![(inner as i64, "other_namespace".into())],
            "{report}"
        );
        assert_eq!(report["reaped"], serde_json::json!([]), "{report}");
        assert!(dir.join(format!("active-session-{inner}")).exists());
        // Once the container is gone, the file is stale like any other.
        let report = env.report(&[]);
        assert_eq!(
            reasons(&report, "reaped"),
            vec![(inner as i64, "dead".into())],
            "{report}"
        );
        return;
    }
    panic!("no free PID could be given to the container's session in 20 tries");
}

/// Claude Code's own registry files (`~/.claude/sessions/<pid>.json` and the
/// `<pid>.<64 hex>.key` beside it) are judged by the start time they record: a free PID, a
/// PID whose holder started at another time (reused) and its key go; a live session's file
/// and key stay; a file that does not parse, or whose `pidDomain` is another namespace or
/// host, is never touched.
#[test]
fn claude_codes_stale_session_files_are_reaped_by_their_recorded_start() {
    let env = TestEnv::new();
    let sessions = env.home.join(".claude/sessions");
    let me = std::process::id() as i32;
    let dead = dead_pids(2);
    let key = |pid: i32| sessions.join(format!("{pid}.{}.key", "ab".repeat(32)));
    let write = |pid: i32, json: String| {
        std::fs::write(sessions.join(format!("{pid}.json")), json).unwrap();
        std::fs::write(key(pid), b"secret").unwrap();
    };
    let entry = |pid: i32, start: u64, domain: &str| {
        format!(r#"{{"pid":{pid},"sessionId":"s-{pid}","procStart":"{start}"{domain}}}"#)
    };
    let host = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ours = format!(
        r#","pidDomain":"linux:{}:{}""#,
        host.trim(),
        ns.to_string_lossy()
    );
    // Live, recorded start equal: kept (no pidDomain, as 2.1.197 writes; and ours).
    write(me, entry(me, starttime(me), ""));
    let mut holder = Procs::new();
    let live = holder.server("session-holder", &[], &[]);
    write(live, entry(live, starttime(live), &ours));
    // Free PID: reaped, key too.
    write(dead[0], entry(dead[0], 12345, ""));
    // Reused PID: a live process started at another time than recorded.
    let reused = holder.server("session-holder", &[], &[]);
    write(reused, entry(reused, starttime(reused) + 1, ""));
    // Not ours to judge: another PID namespace; and one that does not parse.
    let other = format!(r#","pidDomain":"linux:{}:pid:[1]""#, host.trim());
    write(dead[1], entry(dead[1], 1, &other));
    std::fs::write(sessions.join("77.json"), b"{not json").unwrap();
    let r = env.report(&[]);
    let in_sessions = |key: &str| -> Vec<(i64, String, String)> {
        let mut v: Vec<(i64, String, String)> = r[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["path"].as_str().unwrap().contains("/.claude/sessions/"))
            .map(|e| {
                let path = e["path"].as_str().unwrap();
                let kind = if path.ends_with(".key") {
                    "key"
                } else {
                    "json"
                };
                (
                    e["pid"].as_i64().unwrap(),
                    e["reason"].as_str().unwrap().to_string(),
                    kind.to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut want_reaped = vec![
        (dead[0] as i64, "dead".to_string(), "json".to_string()),
        (dead[0] as i64, "dead".to_string(), "key".to_string()),
        (reused as i64, "reused".to_string(), "json".to_string()),
        (reused as i64, "reused".to_string(), "key".to_string()),
    ];
    want_reaped.sort();
    assert_eq!(in_sessions("reaped"), want_reaped, "{r}");
    let host_known = host.trim().len() == 32;
    let mut want_kept = vec![
        (me as i64, "alive".to_string(), "json".to_string()),
        (
            live as i64,
            if host_known { "alive" } else { "other_domain" }.to_string(),
            "json".to_string(),
        ),
        (
            dead[1] as i64,
            "other_domain".to_string(),
            "json".to_string(),
        ),
        (77, "not_parsed".to_string(), "json".to_string()),
    ];
    want_kept.sort();
    assert_eq!(in_sessions("kept"), want_kept, "{r}");
    for pid in [me, live, dead[1]] {
        assert!(sessions.join(format!("{pid}.json")).exists());
        assert!(key(pid).exists());
    }
    for pid in [dead[0], reused] {
        assert!(!sessions.join(format!("{pid}.json")).exists());
        assert!(!key(pid).exists());
    }
    assert!(sessions.join("77.json").exists());
}
