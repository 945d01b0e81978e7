//! The deadline covers the whole run: every path the hook touches (stdin, the project, the
//! configs, state folders, the session registry) may hang, the watchdog thread may be
//! impossible to start, and stdin may be drained by someone else, and the built binary
//! still ends on time, exit 0, with what it knew.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Generous: a hung path blocks for ever without the fix, and the hook's own deadline in
/// these tests is 300 ms.
const LIMIT: Duration = Duration::from_secs(10);

fn hung(env: &TestEnv) -> Option<HungMount> {
    match HungMount::new(&env.root.join("hung")) {
        Ok(m) => Some(m),
        Err(why) => {
            skip(&format!("no FUSE mount can be made here: {why}"));
            None
        }
    }
}

/// Runs `hook` with a 300 ms deadline and checks it ended by itself, exit 0, with a JSON
/// report cut short at its deadline; returns the report.
fn cut_short_on_time(what: &str, hook: Hook) -> Value {
    let b = hook
        .args(["--format", "json", "--deadline-ms", "300"])
        .run_within(LIMIT);
    assert!(
        b.ended_by_itself,
        "{what}: still running after {:?}: {}",
        LIMIT,
        b.run.stderr()
    );
    let report = b.run.json();
    assert_eq!(report["cut_short"], true, "{what}: {report}");
    eprintln!("{what}: ended after {:?}", b.elapsed);
    report
}

#[test]
fn a_project_on_a_hung_mount_is_inside_the_deadline() {
    let env = TestEnv::new();
    let Some(mount) = hung(&env) else { return };
    let project = mount.dir.to_str().unwrap().to_string();

    let r = cut_short_on_time("--project", env.hook().args(["--project", &project]));
    assert_eq!(r["project"], project);

    // From the input's cwd: the check that it is a directory hangs.
    let input = serde_json::json!({"cwd": project}).to_string();
    let r = cut_short_on_time("stdin cwd", env.hook().stdin(input));
    assert_eq!(r["project"], Value::Null, "{r}");
}

#[test]
fn configs_state_folders_and_the_registry_on_a_hung_mount_are_inside_the_deadline() {
    let env = TestEnv::new();
    let Some(mount) = hung(&env) else { return };
    let on_mount = |name: &str| mount.dir.join(name).to_str().unwrap().to_string();
    let project = env.project.to_str().unwrap().to_string();

    cut_short_on_time(
        "--config",
        env.hook()
            .args(["--project", &project, "--config"])
            .arg(on_mount("config.json")),
    );
    cut_short_on_time(
        "the user's config",
        env.hook()
            .args(["--project", &project])
            .env("XDG_CONFIG_HOME", on_mount("xdg")),
    );

    // A state folder the user's own config names.
    let config = env.root.join("config.json");
    let rule =
        serde_json::json!({"state_files": [{"dir": on_mount("state"), "name": "{pid}.pid"}]});
    std::fs::write(&config, rule.to_string()).unwrap();
    cut_short_on_time(
        "a state folder",
        env.hook()
            .args(["--project", &project, "--config"])
            .arg(&config),
    );

    // The registry is read once a candidate names a session: one of this test's own.
    let mut procs = Procs::new();
    let server = procs.server(
        "deadline-server",
        &[],
        &[
            ("CLAUDECODE", "1"),
            ("CLAUDE_CODE_SESSION_ID", "deadline-session"),
        ],
    );
    wait_for_comm(server, "deadline-server");
    let r = cut_short_on_time(
        "the registry",
        env.hook()
            .args(["--project", &project])
            .env("CLAUDE_CONFIG_DIR", on_mount("claude")),
    );
    // The scan stopped at the registry, so the server is not reported: unknown, not orphan.
    assert!(entry(&r, "orphans", server).is_none(), "{r}");
}

/// `prlimit --nproc=1 setpriv --reuid=<uid> …` with a user ID of this test's own, which no
/// other process has (with `nobody`, any other process of nobody's on the machine would
/// use up the limit first): a user at their process limit, where no thread can start.
/// `None` when that cannot be arranged here.
fn at_the_process_limit(env: &TestEnv) -> Option<Hook> {
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root to run the hook as another user at a process limit");
        return None;
    }
    let uid = (2_000_000_000 + std::process::id()).to_string();
    let mut prlimit = std::process::Command::new("prlimit");
    prlimit
        .args(["--nproc=1", "setpriv"])
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "--"]);
    Some(env.hook().under(prlimit))
}

/// At the process limit the watchdog thread cannot start; timers keep the deadline. The
/// binary's own deadline fires in the middle of work (50,000 stale files), at deadlines
/// from 5 ms to 100 ms, so that it falls while the listing and its allocations are being
/// made as well as later: each run reports what it knew, exit 0, and none hangs. (When the
/// signal handler itself made the report, a signal inside `malloc` deadlocked it: 15 of
/// 150 release runs at 5–25 ms.)
#[test]
fn without_a_watchdog_thread_a_timer_keeps_the_deadline() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    for pid in 0..50_000 {
        std::fs::write(dir.join(format!("active-session-{}", 4_000_000 + pid)), b"").unwrap();
    }
    // The hook's user must be able to look into the project.
    for d in [&env.root, &env.project, &dir] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let project = env.project.to_str().unwrap().to_string();
    let mut judged = Vec::new();
    for ms in [5, 8, 10, 12, 15, 18, 20, 25, 50, 100] {
        let Some(hook) = at_the_process_limit(&env) else {
            return;
        };
        let b = hook
            .args(["--format", "json", "--dry-run", "--deadline-ms"])
            .arg(ms.to_string())
            .args(["--project", &project])
            .run_within(LIMIT);
        assert!(b.ended_by_itself, "{ms} ms: {}", b.run.stderr());
        let report = b.run.json();
        let warnings = report["warnings"].to_string();
        assert!(
            warnings.contains("cannot start the deadline's watchdog thread")
                && warnings.contains("a timer keeps the deadline"),
            "{report}"
        );
        assert_eq!(report["cut_short"], true, "{ms} ms: {warnings}");
        let found = report["reaped"].as_array().unwrap().len();
        assert!(found < 50_000, "{ms} ms: the run was not cut short");
        judged.push((ms, found, b.elapsed));
    }
    eprintln!("at the process limit (deadline, files judged of 50,000, time): {judged:?}");
}

/// At the process limit, and the project on a mount that never answers: the work is stuck
/// in a kernel wait that no signal handler can interrupt. The backstop timer ends the
/// process (SIGKILL) shortly after its deadline: on time, without a report.
#[test]
fn without_a_watchdog_thread_a_hung_mount_is_ended_by_the_backstop() {
    let env = TestEnv::new();
    let Some(mount) = hung(&env) else { return };
    let Some(hook) = at_the_process_limit(&env) else {
        return;
    };
    let project = mount.dir.to_str().unwrap().to_string();
    let b = hook
        .args(["--format", "json", "--deadline-ms", "300"])
        .args(["--project", &project])
        .run_within(LIMIT);
    assert!(b.ended_by_itself, "{}", b.run.stderr());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        b.run.0.status.signal(),
        Some(libc::SIGKILL),
        "{:?}",
        b.run.0
    );
    let backstop = startup_hygiene::defaults::DEADLINE_BACKSTOP;
    eprintln!(
        "hung mount at the process limit: killed after {:?} (deadline 300 ms + backstop {backstop:?})",
        b.elapsed
    );
}

/// Another reader drains stdin between the hook's `poll` and its `read`, and the writer
/// keeps the pipe open: the read must not wait. The hook gives up on stdin after its wait
/// (half its 600 ms deadline) and does its work, not cut short. Racy by nature, so tried
/// 30 times: with a read that waits, some tries hang until the deadline (about 1 in 10).
/// The deterministic check of the same promise is
/// `sys::tests::reads_of_an_empty_pipe_or_socket_do_not_wait`.
#[test]
fn stdin_drained_by_another_reader_does_not_block() {
    let env = TestEnv::new();
    let project = env.project.to_str().unwrap().to_string();
    const TRIES: usize = 30;
    let (mut blocked, mut taken_by_the_other) = (0, 0);
    for _ in 0..TRIES {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh fds from pipe2, owned here.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The other reader polls a non-blocking description of its own (opening the pipe
        // again through /proc makes one) every 100 µs, so that now and then it takes the
        // byte after the hook's `poll` returned and before its `read`.
        let mut drainer_end = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{}", read_end.as_raw_fd()))
            .unwrap();
        let drainer = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut got = 0;
            loop {
                match std::io::Read::read(&mut drainer_end, &mut buf) {
                    Ok(0) => break got,
                    Ok(n) => got += n,
                    // Not spinning: a spinning reader takes the byte before the hook's
                    // `poll` even returns, so the hook would never meet the race.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(100))
                    }
                    Err(e) => panic!("drainer: {e}"),
                }
            }
        });
        let mut hook = env
            .hook()
            .args(["--format", "json", "--deadline-ms", "600"])
            .args(["--project", &project]);
        hook.cmd
            .stdin(Stdio::from(read_end))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let child = hook.cmd.spawn().unwrap();
        let mut writer = std::fs::File::from(write_end);
        std::thread::sleep(Duration::from_millis(50));
        writer.write_all(b"{").unwrap();
        let b = Bounded::wait(child, started, LIMIT, None);
        drop(writer);
        let drained = drainer.join().unwrap();
        taken_by_the_other += usize::from(drained > 0);
        assert!(b.ended_by_itself, "{}", b.run.stderr());
        let report = b.run.json();
        if report["cut_short"] == true {
            blocked += 1;
        }
    }
    eprintln!("the other reader took the byte in {taken_by_the_other} of {TRIES} runs");
    assert!(
        taken_by_the_other > 0,
        "the race never happened: the test proves nothing"
    );
    assert_eq!(
        blocked, 0,
        "{blocked} of {TRIES} runs blocked in read(0) until the deadline"
    );
}

/// The binary's own deadline, with its watchdog thread: 50,001 stale files and 20 ms. The
/// watchdog reports and the process ends (a run that only reported, without ending the
/// process, would go on until the work is done: many seconds here), exit 0, on time.
#[test]
fn the_binarys_own_deadline_ends_the_run() {
    let env = TestEnv::new();
    let dir = env.state_dir();
    for pid in 0..50_001 {
        std::fs::write(dir.join(format!("active-session-{}", 4_000_000 + pid)), b"").unwrap();
    }
    let project = env.project.to_str().unwrap().to_string();
    let b = env
        .hook()
        .args(["--format", "json", "--dry-run", "--deadline-ms", "20"])
        .args(["--project", &project])
        .run_within(LIMIT);
    assert!(b.ended_by_itself, "{}", b.run.stderr());
    let report = b.run.json();
    assert_eq!(report["cut_short"], true);
    let judged = report["reaped"].as_array().unwrap().len();
    assert!(judged < 50_001, "{judged}");
    // Bounded, with room for a loaded machine: the work alone takes far longer.
    assert!(b.elapsed < Duration::from_secs(3), "{:?}", b.elapsed);
    eprintln!(
        "deadline 20 ms: ended after {:?}, {judged} files judged",
        b.elapsed
    );
}
