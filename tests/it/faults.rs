//! Faults: a `/proc` that changes under the scan, reads that block, a state folder that is
//! unreadable, vanishes, changes between check and removal, is read-only or holds 100,000
//! files, and an output nobody reads. None may crash, hang past the deadline, turn
//! "unknown" into "orphan", lose a live file, or fail the hook.
//!
//! Most of these run the program in-process (`run::run`) over a fixture process table: a
//! directory of `<pid>/stat`, `<pid>/cmdline`… files, where a PID is alive while its folder
//! exists. A FIFO in that tree is a sync point: opening it blocks the scan exactly where
//! the test wants to change the world, and the test knows it got there when a non-blocking
//! open for writing succeeds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use serde_json::Value;
use startup_hygiene::cli::Options;
use startup_hygiene::report::{Format, Report};
use startup_hygiene::run;

use crate::properties::mkfifo;
use crate::support::*;

// ---------------------------------------------------------------------------------------
// Fixtures

/// A fixture `/proc` under a test's temporary folder.
pub struct ProcTree {
    pub root: PathBuf,
}

impl ProcTree {
    pub fn new(env: &TestEnv) -> ProcTree {
        let root = env.root.join(unique("proc"));
        std::fs::create_dir_all(&root).unwrap();
        ProcTree { root }
    }

    pub fn utf8(&self) -> Utf8PathBuf {
        Utf8PathBuf::from_path_buf(self.root.clone()).unwrap()
    }

    /// `<root>/<pid>`, created: the PID is taken.
    pub fn dir(&self, pid: i32) -> PathBuf {
        let d = self.root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// `<root>/<pid>/<file>` (folders created) holding `bytes`.
    pub fn raw(&self, pid: i32, file: &str, bytes: &[u8]) {
        let p = self.dir(pid).join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn stat(&self, pid: i32, ppid: i32, comm: &[u8], state: u8, starttime: u64) {
        self.raw(pid, "stat", &stat_line(pid, ppid, comm, state, starttime));
    }

    /// A process started by `ppid` with command line `cmdline` (NUL-separated).
    /// comm is cut to 15 bytes, as the kernel does.
    pub fn process(&self, pid: i32, ppid: i32, comm: &str, cmdline: &str) {
        let comm = &comm.as_bytes()[..comm.len().min(15)];
        self.stat(pid, ppid, comm, b'S', 100);
        self.raw(pid, "cmdline", cmdline.as_bytes());
    }

    pub fn exe(&self, pid: i32, target: &str) {
        std::os::unix::fs::symlink(target, self.dir(pid).join("exe")).unwrap();
    }

    /// `<root>/<pid>/<file>` as a FIFO: reading it blocks until a writer comes.
    pub fn fifo(&self, pid: i32, file: &str) -> PathBuf {
        let p = self.dir(pid).join(file);
        let _ = std::fs::remove_file(&p);
        mkfifo(&p);
        p
    }

    /// The process exits: its folder goes.
    pub fn remove(&self, pid: i32) {
        std::fs::remove_dir_all(self.root.join(pid.to_string())).unwrap();
    }
}

/// A `/proc/<pid>/stat` line as the kernel writes it.
pub fn stat_line(pid: i32, ppid: i32, comm: &[u8], state: u8, starttime: u64) -> Vec<u8> {
    let mut out = format!("{pid} (").into_bytes();
    out.extend_from_slice(comm);
    out.extend_from_slice(
        format!(
            ") {} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {starttime} 1000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
            state as char
        )
        .as_bytes(),
    );
    out
}

/// Options for an in-process run over `tree`: JSON, this env's project and owner name, an
/// empty config of its own (the user's config is never read) and a deadline no healthy run
/// reaches.
pub fn in_process_options(env: &TestEnv, tree: &ProcTree) -> Options {
    let config = env.root.join("empty-config.json");
    std::fs::write(&config, b"{}").unwrap();
    Options {
        project: Some(Utf8PathBuf::from_path_buf(env.project.clone()).unwrap()),
        config: Some(Utf8PathBuf::from_path_buf(config).unwrap()),
        format: Format::Json,
        owners: Some(vec![env.owner.clone()]),
        deadline: Duration::from_secs(60),
        proc_root: tree.utf8(),
        ..Options::default()
    }
}

/// `run::run` in this process. It reads fd 0 first; the test harness's stdin may be a pipe
/// nobody closes, so it is pointed at /dev/null once for the whole test binary.
pub fn run_in_process(opts: &Options) -> Report {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let null = File::open("/dev/null").unwrap();
        // SAFETY: dup2 onto fd 0 with a valid fd; nothing in the tests reads fd 0 otherwise.
        let r = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) };
        assert_eq!(r, 0);
    });
    run::run(opts)
}

/// Waits until someone opens `fifo` for reading (the scan reached it), then returns the
/// write end: the reader stays blocked until it is written to or dropped. Panics if the
/// scan never gets there (a hang is a failure, not a wait).
pub fn wait_for_reader(fifo: &Path) -> File {
    for _ in 0..3000 {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(f) => return f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("open {fifo:?}: {e}"),
        }
    }
    panic!("the scan never opened {fifo:?}")
}

/// Runs `opts` on another thread; at the moment the scan opens `fifo`, calls `change`, then
/// hands the scan `bytes` through the FIFO.
fn run_changing_world(opts: &Options, fifo: &Path, bytes: &[u8], change: impl FnOnce()) -> Report {
    let opts = opts.clone();
    let runner = std::thread::spawn(move || run_in_process(&opts));
    let mut w = wait_for_reader(fifo);
    change();
    w.write_all(bytes).unwrap();
    drop(w);
    runner.join().expect("the run did not panic")
}

fn orphan_pids(r: &Report) -> Vec<i32> {
    let mut v: Vec<i32> = r.orphans.iter().map(|o| o.pid).collect();
    v.sort();
    v
}

const MATCH: &str = "node\0/srv/fault-marker/server.js\0";

fn matching(env: &TestEnv, tree: &ProcTree) -> Options {
    let mut o = in_process_options(env, tree);
    o.matches = vec!["*fault-marker*".into()];
    o
}

// ---------------------------------------------------------------------------------------
// A process table that changes under the scan

#[test]
fn processes_exiting_after_the_listing_are_skipped() {
    // The sync point, PID 2's stat, is read right after the listing by a root scan only.
    if unsafe { libc::geteuid() } != 0 {
        skip("only a root scan reads PID 2's stat after the listing");
        return;
    }
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    for pid in [10, 11, 12, 13] {
        tree.process(pid, 1, "node", MATCH);
    }
    // PID 2's stat is read right after the listing (the kernel-thread check, as root).
    let fifo = tree.fifo(2, "stat");
    let report = run_changing_world(
        &matching(&env, &tree),
        &fifo,
        &stat_line(2, 0, b"kthreadd", b'S', 1),
        || {
            tree.remove(10);
            tree.remove(12);
        },
    );
    assert!(!report.cut_short);
    assert_eq!(orphan_pids(&report), vec![11, 13]);
}

#[test]
fn a_process_exiting_between_cmdline_and_stat_is_skipped() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(10, 1, "node", MATCH);
    tree.process(11, 1, "node", MATCH);
    // environ is read between cmdline and stat.
    let fifo = tree.fifo(10, "environ");
    let report = run_changing_world(&matching(&env, &tree), &fifo, b"A=1\0", || tree.remove(10));
    assert_eq!(orphan_pids(&report), vec![11]);
}

#[test]
fn a_pid_reused_by_an_owned_process_between_cmdline_and_stat_is_not_an_orphan() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(5, 1, &env.owner, "x\0");
    tree.process(10, 1, "node", MATCH);
    // Undisturbed, 10 is an orphan: the fixture is right.
    assert_eq!(
        orphan_pids(&run_in_process(&matching(&env, &tree))),
        vec![10]
    );
    let fifo = tree.fifo(10, "environ");
    let report = run_changing_world(&matching(&env, &tree), &fifo, b"", || {
        // The process exits and a new one, started by an owner, gets its PID.
        std::fs::remove_file(tree.root.join("10/stat")).unwrap();
        tree.stat(10, 5, b"node", b'S', 999);
    });
    assert_eq!(orphan_pids(&report), Vec::<i32>::new());
}

#[test]
fn an_ancestor_exiting_during_the_walk_makes_the_answer_unknown() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(50, 1, "sh", "sh\0");
    tree.process(60, 50, "sh", "sh\0");
    tree.process(70, 60, "node", MATCH);
    // Undisturbed, 70 is an orphan: the fixture is right.
    let report = run_in_process(&matching(&env, &tree));
    assert_eq!(orphan_pids(&report), vec![70]);

    let fifo = tree.fifo(60, "stat");
    let report = run_changing_world(
        &matching(&env, &tree),
        &fifo,
        &stat_line(60, 50, b"sh", b'S', 100),
        || tree.remove(50),
    );
    assert_eq!(orphan_pids(&report), Vec::<i32>::new());
}

/// The owner test reads an ancestor's stat, then its command line: the ancestor exits in
/// between. Its comm already said "not an owner", and a process whose parent just exited
/// is orphaned by then: the walk goes on from the stat it read, without a crash.
#[test]
fn an_ancestor_exiting_between_its_stat_and_cmdline() {
    // The scan's own loop reads every command line of ours; another user's ancestor is read
    // only by the walk, so the FIFO is met there and nowhere else.
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root to give a fixture folder another owner");
        return;
    }
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(50, 1, "sh", "sh\0");
    tree.stat(60, 50, b"sh", b'S', 100);
    tree.process(70, 60, "node", MATCH);
    let fifo = tree.fifo(60, "cmdline");
    std::os::unix::fs::lchown(tree.root.join("60"), Some(65534), Some(65534)).unwrap();
    let report = run_changing_world(&matching(&env, &tree), &fifo, b"", || tree.remove(60));
    assert!(!report.cut_short);
    assert_eq!(orphan_pids(&report), vec![70]);
}

/// Links that cannot be followed: a stat that does not parse (how an unreadable one looks
/// to the parser: as root, `chmod` would not stop the read, so the fixture uses garbage),
/// a missing folder (`hidepid`), a folder without stat, parent 0 (a PID namespace), loops,
/// and a chain longer than the walk's cap. Each is "unknown", never "orphan".
#[test]
fn unreadable_hidden_looping_and_foreign_parents_are_unknown() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    let m = |pid, ppid| tree.process(pid, ppid, "node", MATCH);
    m(70, 60);
    tree.raw(60, "stat", b"60 (sh) S"); // does not parse
    m(71, 61); // 61 is not there
    m(72, 62);
    tree.dir(62); // visible, nothing readable
    m(74, 0); // started from outside the namespace
    m(75, 65);
    tree.process(65, 0, "sh", "sh\0");
    m(76, 66);
    tree.process(66, 76, "sh", "sh\0"); // 76 → 66 → 76
    m(77, 77); // its own parent
    // A chain of 5,000 ancestors, beyond the walk's safety cap.
    m(78, 100_000);
    for i in 0..5000 {
        let parent = if i == 4999 { 1 } else { 100_001 + i };
        tree.stat(100_000 + i, parent, b"sh", b'S', 100);
    }
    m(79, 1); // the control: a plain orphan
    let report = run_in_process(&matching(&env, &tree));
    assert!(!report.cut_short);
    assert_eq!(orphan_pids(&report), vec![79]);
    const _: () = assert!(startup_hygiene::defaults::MAX_ANCESTRY_HOPS < 5000);
}

/// An ancestor that belongs to another user is followed like any other (its stat is
/// public); only the candidate itself must be ours.
#[test]
fn another_users_ancestor_is_followed_and_another_users_match_skipped() {
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root to give fixture folders another owner");
        return;
    }
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(63, 1, "sh", "sh\0");
    tree.process(73, 63, "node", MATCH);
    tree.process(74, 1, "node", MATCH);
    std::os::unix::fs::lchown(tree.root.join("63"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::lchown(tree.root.join("74"), Some(65534), Some(65534)).unwrap();
    let report = run_in_process(&matching(&env, &tree));
    assert_eq!(orphan_pids(&report), vec![73]);
}

/// Regression: a project config nested 127 deep overflowed the scan thread's 256 KiB stack
/// in a debug build (serde_json recurses once per level up to its limit of 128) and the
/// hook died of SIGABRT. Config and registry are both parsed on that thread.
#[test]
fn deeply_nested_json_does_not_overflow_the_scan_thread() {
    for depth in [100usize, 120, 127, 128, 129, 1000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let env = TestEnv::new();
            let tree = ProcTree::new(&env);
            std::fs::create_dir_all(env.project.join(".claude")).unwrap();
            let text = format!(
                "{{\"orphans\":{{\"match\":[{{\"cmdline\":\"*x*\",\"deep\":{}1{}}}]}}}}",
                open.repeat(depth),
                close.repeat(depth)
            );
            std::fs::write(env.project.join(".claude/startup-hygiene.json"), text).unwrap();
            let mut opts = in_process_options(&env, &tree);
            opts.config = None; // the project's config
            let report = run_in_process(&opts);
            assert!(!report.cut_short, "depth {depth}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reads that block

/// A read of `/proc` that never returns (a FIFO standing in for a process holding its
/// memory lock): the run reports at its deadline, with what it found before.
#[test]
fn a_blocked_read_does_not_hold_the_deadline() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    let dead = env.pid_file(31_000, Duration::from_secs(60));
    let fifo = tree.fifo(10, "cmdline");
    let mut opts = in_process_options(&env, &tree);
    opts.deadline = Duration::from_millis(1000);

    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let w = wait_for_reader(&fifo);
            seen_tx.send(Instant::now()).unwrap();
            // Hold the write end: the scan stays blocked in `read` until released.
            let _ = release_rx.recv();
            drop(w);
        })
    };
    let t0 = Instant::now();
    let report = run_in_process(&opts);
    assert!(
        report.cut_short,
        "the FIFO never returns, so the deadline must cut the run"
    );
    // Once the scan is blocked at the FIFO, the reaper is done: if that happened before the
    // deadline, its findings must be in the report.
    let seen = seen_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("scan reached the FIFO");
    if seen < t0 + opts.deadline {
        assert_eq!(report.reaped.len(), 1, "{report:?}");
        assert_eq!(report.reaped[0].pid, 31_000);
        assert!(!dead.exists());
    } else {
        eprintln!("note: the scan reached the FIFO only after the deadline; findings unchecked");
    }
    let text = report.render(Format::Text);
    assert!(text.contains("stopped at its 1000 ms deadline"), "{text}");
    // Unblock the worker thread so that it ends.
    release_tx.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn a_blocked_read_in_the_reaper_does_not_hold_the_deadline() {
    // The control: the same read answered at once (a zombie) removes the file.
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    let file = env.pid_file(20, Duration::from_secs(60));
    let fifo = tree.fifo(20, "stat");
    let zombie = stat_line(20, 1, b"node", b'Z', 1);
    let report = run_changing_world(&in_process_options(&env, &tree), &fifo, &zombie, || {});
    assert_eq!(report.reaped.len(), 1, "{report:?}");
    assert!(!file.exists());

    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    env.pid_file(20, Duration::from_secs(60));
    let fifo = tree.fifo(20, "stat");
    let mut opts = in_process_options(&env, &tree);
    opts.deadline = Duration::from_millis(300);
    let report = run_in_process(&opts);
    // Release the worker first, so that a failed assertion leaves no thread blocked.
    drop(wait_for_reader(&fifo));
    assert!(report.cut_short);
    assert!(
        env.project
            .join(".orchestrator-state/active-session-20")
            .exists()
    );
}

#[test]
fn stdin_that_nobody_closes_does_not_fail_the_hook() {
    let env = TestEnv::new();
    let run = env
        .hook()
        .args(["--format", "json", "--dry-run", "--project"])
        .arg(&env.project)
        .run_with_open_stdin();
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.json();
}

#[test]
fn complete_input_on_a_pipe_left_open_is_used() {
    let env = TestEnv::new();
    let mut hook = env.hook().args(["--format", "json", "--dry-run"]);
    // Run from elsewhere: the project can only come from the input's cwd.
    hook.cmd
        .current_dir(&env.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = hook.cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = serde_json::json!({"cwd": env.project, "session_id": "s"}).to_string();
    stdin.write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let run = Run(out);
    let report = run.json();
    assert_eq!(report["project"], env.project.to_str().unwrap());
}

// ---------------------------------------------------------------------------------------
// The state folder

#[test]
fn the_state_folder_removed_mid_scan() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    for pid in 20..30 {
        env.pid_file(pid, Duration::from_secs(60));
        tree.stat(pid, 1, b"node", b'S', 1);
    }
    env.pid_file(30, Duration::from_secs(60));
    let fifo = tree.fifo(30, "stat");
    let zombie = stat_line(30, 1, b"node", b'Z', 1);
    // The control: with the folder left alone, the zombie's file is removed and reported.
    let report = run_changing_world(&in_process_options(&env, &tree), &fifo, &zombie, || {});
    assert!(report.reaped.iter().any(|f| f.pid == 30), "{report:?}");
    env.pid_file(30, Duration::from_secs(60));
    let report = run_changing_world(&in_process_options(&env, &tree), &fifo, &zombie, || {
        std::fs::remove_dir_all(env.project.join(".orchestrator-state")).unwrap()
    });
    assert!(!report.cut_short);
    // The zombie's file was judged stale, but this run did not remove it: not reported.
    assert!(report.reaped.iter().all(|f| f.pid != 30), "{report:?}");
}

/// Between the decision and the removal another session rewrote the file, or something
/// else took its name: the run must leave it.
#[test]
fn a_file_replaced_between_check_and_removal_is_left() {
    let outside_text = b"outside".to_vec();
    for variant in [
        "undisturbed",
        "renamed over",
        "rewritten in place",
        "symlink",
        "directory",
        "fifo",
    ] {
        let env = TestEnv::new();
        let tree = ProcTree::new(&env);
        let path = env.pid_file(30, Duration::from_secs(60));
        let outside = env.root.join("outside");
        std::fs::write(&outside, &outside_text).unwrap();
        let fifo = tree.fifo(30, "stat");
        let report = run_changing_world(
            &in_process_options(&env, &tree),
            &fifo,
            // A zombie: the file as first seen is stale.
            &stat_line(30, 1, b"node", b'Z', 1),
            || match variant {
                "undisturbed" => {}
                "renamed over" => {
                    let tmp = env.project.join(".orchestrator-state/.tmp");
                    std::fs::write(&tmp, b"new session\n").unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                }
                "rewritten in place" => {
                    std::thread::sleep(Duration::from_millis(20));
                    std::fs::write(&path, b"new session\n").unwrap();
                }
                "symlink" => {
                    std::fs::remove_file(&path).unwrap();
                    std::os::unix::fs::symlink(&outside, &path).unwrap();
                }
                "directory" => {
                    std::fs::remove_file(&path).unwrap();
                    std::fs::create_dir(&path).unwrap();
                }
                _ => {
                    std::fs::remove_file(&path).unwrap();
                    mkfifo(&path);
                }
            },
        );
        if variant == "undisturbed" {
            // The control: the stale file as judged is removed.
            assert_eq!(report.reaped.len(), 1, "{variant}: {report:?}");
            assert!(std::fs::symlink_metadata(&path).is_err());
            continue;
        }
        assert!(report.reaped.is_empty(), "{variant}: {report:?}");
        assert!(
            std::fs::symlink_metadata(&path).is_ok(),
            "{variant}: the new entry was removed"
        );
        assert_eq!(std::fs::read(&outside).unwrap(), outside_text, "{variant}");
    }
}

/// 100,000 stale files and two live ones: a dry run's block stays under the cap; the real
/// run removes each stale file once and reports it once, and keeps the live ones.
#[test]
fn a_state_folder_of_100_000_files() {
    const N: i32 = 100_000;
    let env = TestEnv::new();
    let state = env.state_dir();
    let pids = dead_pids(N as usize);
    for pid in &pids {
        std::fs::write(state.join(format!("active-session-{pid}")), b"s\n").unwrap();
    }
    let me = std::process::id() as i32;
    for live in [1, me] {
        std::fs::write(state.join(format!("active-session-{live}")), b"s\n").unwrap();
    }
    let dry = env
        .hook()
        .args(["--dry-run", "--deadline-ms", "600000", "--project"])
        .arg(&env.project)
        .run();
    assert_eq!(dry.code(), 0, "{}", dry.stderr());
    let text = dry.stdout();
    assert!(
        text.len() <= startup_hygiene::defaults::BLOCK_CAP,
        "{}",
        text.len()
    );
    assert!(text.contains("Would remove"), "{text}");
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), N as usize + 2);

    let run = env
        .hook()
        .args(["--format", "json", "--deadline-ms", "600000", "--project"])
        .arg(&env.project)
        .run();
    let report = run.json();
    assert_eq!(report["cut_short"], false);
    let reaped = pids_of(&report, "reaped");
    let kept = pids_of(&report, "kept");
    let mut all: Vec<i64> = reaped.iter().chain(&kept).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        reaped.len() + kept.len(),
        "a file reported twice"
    );
    assert_eq!(all.len(), N as usize + 2);
    assert!(kept.contains(&1) && kept.contains(&(me as i64)), "{kept:?}");
    assert_eq!(reaped.len(), N as usize);
    let left: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), kept.len(), "{left:?}");
    eprintln!(
        "fault 100,000 files: {} removed, {} kept",
        reaped.len(),
        kept.len()
    );
}

fn pids_of(report: &Value, key: &str) -> Vec<i64> {
    pids(report, key)
}

/// As root: the state folder on a tmpfs remounted read-only, in a private mount namespace.
#[test]
fn a_read_only_state_folder_fails_nothing() {
    if unsafe { libc::geteuid() } != 0 {
        skip("mounting a read-only tmpfs needs root");
        return;
    }
    let env = TestEnv::new();
    let mnt = env.root.join("ro-project");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = env.root.join("report.json");
    let dead = dead_pid();
    let script = r#"
        mount -t tmpfs tmpfs "$D" || exit 90
        mkdir "$D/.orchestrator-state"
        : > "$D/.orchestrator-state/active-session-$DEAD"
        if [ "$RO" = 1 ]; then mount -o remount,ro "$D" || exit 91; fi
        "$BIN" --project "$D" --format json --owner "$OWNER" --deadline-ms 60000 </dev/null >"$OUT"
        echo "exit=$?"
        test -f "$D/.orchestrator-state/active-session-$DEAD" && echo kept
    "#;
    let run = |ro: &str| {
        let mut cmd = Command::new("unshare");
        clean_env(&mut cmd, &env.home);
        let output = cmd
            .args(["--mount", "sh", "-c", script])
            .env("D", &mnt)
            .env("RO", ro)
            .env("DEAD", dead.to_string())
            .env("BIN", bin())
            .env("OWNER", &env.owner)
            .env("OUT", &out)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        if matches!(output.status.code(), Some(90 | 91)) || !said.contains("exit=") {
            skip(&format!(
                "cannot mount a read-only tmpfs here: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
            return None;
        }
        assert!(said.contains("exit=0"), "{said}");
        let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        Some((said, report))
    };
    // The control: on the same tmpfs left writable, the file is removed.
    let Some((said, report)) = run("0") else {
        return;
    };
    assert!(!said.contains("kept"), "{said}");
    assert_eq!(pids(&report, "reaped"), vec![dead as i64], "{report}");
    let Some((said, report)) = run("1") else {
        return;
    };
    assert!(said.contains("kept"), "{said}");
    assert_eq!(report["reaped"], serde_json::json!([]), "{report}");
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("Read-only file system"), "{warnings}");
}

/// A state folder the hook may not open. As root, permission bits do not stop the hook,
/// so it runs as `nobody` (setpriv); as another user, the folder is chmod 000.
#[test]
fn an_unreadable_state_folder_is_a_warning() {
    let env = TestEnv::new();
    let state = env.state_dir();
    let dead = dead_pid();
    let file = env.pid_file(dead, Duration::from_secs(60));
    let root = unsafe { libc::geteuid() } == 0;
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if root {
        let setpriv = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "true",
            ])
            .status();
        if !matches!(setpriv, Ok(s) if s.success()) {
            std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            skip("setpriv cannot drop to nobody here");
            return;
        }
    }
    let hook = |extra: &[&str]| {
        let hook = env
            .hook()
            .args(["--format", "json", "--project"])
            .arg(&env.project)
            .args(extra);
        if !root {
            return hook;
        }
        let mut setpriv = Command::new("setpriv");
        setpriv.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
        hook.under(setpriv)
    };
    let run = hook(&[]).run();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The control: the same hook, the folder readable, judges the file (a dry run).
    let control = hook(&["--dry-run"]).run().json();
    assert_eq!(pids(&control, "reaped"), vec![dead as i64], "{control}");
    let report = run.json();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("cannot be opened") && warnings.contains("Permission denied"),
        "{warnings}"
    );
    assert!(file.exists());
}

#[test]
fn a_state_folder_that_is_not_a_folder_is_a_warning() {
    for kind in ["file", "fifo", "socket"] {
        let env = TestEnv::new();
        let path = env.project.join(".orchestrator-state");
        let _listener;
        match kind {
            "file" => std::fs::write(&path, b"x").unwrap(),
            "fifo" => mkfifo(&path),
            _ => _listener = std::os::unix::net::UnixListener::bind(&path).unwrap(),
        }
        let report = env.report(&[]);
        assert_eq!(report["cut_short"], false, "{kind}");
        assert!(
            report["warnings"].to_string().contains("Not a directory"),
            "{kind}: {report}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Output nobody reads

/// A pipe whose read end is already closed.
fn broken_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are fresh fds owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// A project with something to say on both stdout and stderr: a stale file and a warning.
fn noisy_env() -> TestEnv {
    let env = TestEnv::new();
    env.pid_file(dead_pid(), Duration::from_secs(60));
    std::fs::create_dir_all(env.project.join(".claude")).unwrap();
    std::fs::write(
        env.project.join(".claude/startup-hygiene.json"),
        b"{not json",
    )
    .unwrap();
    env
}

#[test]
fn closed_or_broken_stdout_and_stderr_exit_0_quietly() {
    // The control: with both readable, each format has something to write on both.
    for format in ["text", "json", "hook-json"] {
        let run = noisy_env()
            .hook()
            .args(["--format", format, "--dry-run"])
            .run();
        assert!(
            !run.stdout().is_empty() && !run.stderr().is_empty(),
            "{format}"
        );
    }
    for (name, redirect) in [
        ("stdout closed", ">&-"),
        ("stderr closed", "2>&-"),
        ("both closed", ">&- 2>&-"),
    ] {
        for format in ["text", "json", "hook-json"] {
            let env = noisy_env();
            let mut cmd = Command::new("sh");
            clean_env(&mut cmd, &env.home);
            let status = cmd
                .arg("-c")
                .arg(format!("exec \"$0\" \"$@\" {redirect}"))
                .arg(bin())
                .args(["--owner", &env.owner, "--format", format, "--dry-run"])
                .current_dir(&env.project)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert_eq!(status.code(), Some(0), "{name}, {format}");
        }
    }
    for (name, out_broken, err_broken) in [
        ("stdout broken", true, false),
        ("stderr broken", false, true),
        ("both broken", true, true),
    ] {
        for format in ["text", "json", "hook-json"] {
            let env = noisy_env();
            let mut hook = env.hook().args(["--format", format, "--dry-run"]);
            let pick = |broken| if broken { broken_pipe() } else { Stdio::null() };
            let status = hook
                .cmd
                .stdin(Stdio::null())
                .stdout(pick(out_broken))
                .stderr(pick(err_broken))
                .status()
                .unwrap();
            assert_eq!(status.code(), Some(0), "{name}, {format}: {status:?}");
        }
    }
}

/// Regression: with warnings to print and stderr a broken pipe, `eprintln!` panicked before
/// the report was written, so the session got no block at all.
#[test]
fn a_broken_stderr_does_not_cost_the_report() {
    for format in ["text", "json", "hook-json"] {
        let env = noisy_env();
        let mut hook = env.hook().args(["--format", format, "--dry-run"]);
        let out = hook
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(broken_pipe())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(".orchestrator-state"),
            "{format}: {stdout:?}"
        );
        assert!(
            stdout.contains("its rules are not used"),
            "{format}: {stdout:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Cost that grows faster than the input

/// A chain of 4,000 matching processes, each the child of the previous (the review took
/// 1.7 s on it: every orphan walked its whole chain, and the loop check scanned a list per
/// step). The walks follow each parent link once, and the grouping too: the chain is one
/// group. Counted in parent links, not timed.
#[test]
fn a_chain_of_matches_is_walked_once() {
    use startup_hygiene::os::ProcFs;
    use startup_hygiene::process_table::{OwnerSet, ProcessTable};

    const N: i32 = 4000;
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    for i in 0..N {
        let pid = 100 + i;
        tree.process(pid, if i == 0 { 1 } else { pid - 1 }, "node", MATCH);
    }
    let mut table = ProcessTable::new(
        Box::new(ProcFs::open(&tree.utf8()).unwrap()),
        OwnerSet::new(vec![env.owner.clone()]),
    );
    let (found, _) = scan_by_rule(&mut table, "fault", "*fault-marker*", 0);
    assert_eq!(found.len(), N as usize);
    // Each of the N links (the last one to PID 1) followed once, none twice.
    assert_eq!(
        table.hops(),
        N as u64,
        "{} parent links followed for a chain of {N}",
        table.hops()
    );
    let groups = startup_hygiene::report::group(&found);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].top.pid, 100);
    assert_eq!(groups[0].descendants.len(), N as usize - 1);
    eprintln!("chain of {N}: {} parent links followed", table.hops());
}

/// The review's slow rules: command lines of 7 × 128 KiB against `*` + 10,000 × `x` + `y?`
/// took 12 s for one, and a slow rule cut a run short before a real orphan was found. Here,
/// at the default 2 s deadline: 40 command lines of 128 KiB; that rule (refused: too
/// long to match in linear time), a literal one of 2,003 characters, and 8 of the slowest
/// kind accepted (256 characters, `*` + `x?` × 127 + a letter); and an orphan that only
/// Claude Code's markers find. It is reported, the run is not cut short, and the user's
/// rules stop at half the deadline with a warning.
#[test]
fn slow_rules_do_not_hide_the_marker_results() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    let arg = "x".repeat(128 << 10);
    let long = format!("{arg}\0");
    for pid in 100..140 {
        tree.process(pid, 1, "node", &long);
    }
    tree.process(130_000, 1, "node", "node\0server.js\0");
    tree.raw(
        130_000,
        "environ",
        b"CLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=gone\0",
    );
    let mut opts = in_process_options(&env, &tree);
    opts.deadline = startup_hygiene::defaults::DEADLINE;
    opts.matches = [
        format!("*{}y?", "x".repeat(10_000)),
        format!("*{}y*", "x".repeat(2_000)),
    ]
    .into_iter()
    .chain(('a'..='h').map(|c| format!("*{}{c}", "x?".repeat(127))))
    .collect();
    let report = run_in_process(&opts);
    assert!(!report.cut_short, "{:?}", report.warnings);
    assert_eq!(orphan_pids(&report), vec![130_000]);
    let warned = |what: &str| report.warnings.iter().any(|w| w.contains(what));
    let times = |what: &str| report.warnings.iter().filter(|w| w.contains(what)).count();
    assert_eq!(
        times("stopped at half the deadline"),
        1,
        "said once: {:?}",
        report.warnings
    );
    assert!(
        warned("ignored: a pattern with '?' may have at most 256 characters; this one has 10003"),
        "{:?}",
        report.warnings
    );
    assert!(
        warned("stopped at half the deadline"),
        "{:?}",
        report.warnings
    );
}

/// Claude Code's installer runs a binary named by its version
/// (`…/claude/versions/2.1.197`): its name says nothing, its path says "owner", and its
/// server is not an orphan. The control: the same server under a process of that name
/// elsewhere is one.
#[test]
fn an_owner_known_only_by_its_versioned_path_owns_its_servers() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    let versioned = format!("/home/u/.local/share/{}/versions/2.1.197\0", env.owner);
    tree.process(5, 1, "2.1.197", &versioned);
    tree.process(6, 1, "2.1.197", "/opt/other/versions/2.1.197\0");
    tree.process(10, 5, "node", MATCH);
    tree.process(11, 6, "node", MATCH);
    let report = run_in_process(&matching(&env, &tree));
    assert_eq!(orphan_pids(&report), vec![11]);
}

/// The age in the report is the time since the process started, by the boot clock.
#[test]
fn an_orphans_age_is_the_time_since_it_started() {
    use startup_hygiene::os::sys;
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    let ticks = sys::clock_ticks();
    let started = ((sys::boottime_secs() - 100.0) * ticks as f64) as u64;
    tree.stat(10, 1, b"node", b'S', started);
    tree.raw(10, "cmdline", MATCH.as_bytes());
    let report = run_in_process(&matching(&env, &tree));
    let age = report
        .orphans
        .iter()
        .find(|o| o.pid == 10)
        .map(|o| o.age_secs);
    assert!(matches!(age, Some(100..=102)), "{age:?}");
}

/// As root, the children of kthreadd are kernel threads and are not read one by one. A
/// PID 2 that is not the kernel's (parent 0), as in a PID namespace where a user's process
/// is named so, is not trusted: its children are read and judged like any others. The
/// control: under the kernel's kthreadd, the same child is passed over.
#[test]
fn only_the_kernels_kthreadd_has_its_children_passed_over() {
    if unsafe { libc::geteuid() } != 0 {
        skip("only a root scan passes over kernel threads");
        return;
    }
    for (kthreadd_parent, reported) in [(0, false), (1, true)] {
        let env = TestEnv::new();
        let tree = ProcTree::new(&env);
        tree.process(1, 0, "init", "/sbin/init\0");
        tree.process(2, kthreadd_parent, "kthreadd", "kthreadd\0");
        tree.raw(2, "task/2/children", b"10 11\n");
        tree.process(10, 2, "node", MATCH);
        let report = run_in_process(&matching(&env, &tree));
        let pids = orphan_pids(&report);
        assert_eq!(
            pids.contains(&10),
            reported,
            "kthreadd's parent {kthreadd_parent}: {pids:?}"
        );
    }
}

/// A process that a built-in rule and one of the user's both match is labelled by the
/// built-in rule: those are tried first, and the first match names it.
#[test]
fn a_built_in_rule_names_what_it_matches_before_the_users() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(10, 1, "node", "node\0/x/orchestrator/dist/server.js\0");
    tree.process(11, 1, "node", "node\0/x/other/dist/server.js\0");
    let mut opts = in_process_options(&env, &tree);
    opts.matches = vec!["*dist/server.js*".into()];
    let report = run_in_process(&opts);
    let mut labels: Vec<(i32, &str)> = report
        .orphans
        .iter()
        .map(|o| (o.pid, o.matched_by.as_str()))
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [(10, "orchestrator"), (11, "*dist/server.js*")],
        "{labels:?}"
    );
}

/// A process without a command line (a kernel thread where PID 2 is not kthreadd, as in a
/// PID namespace; a zombie) is never matched, not even by a rule that matches anything; the
/// control beside it, the same process with a command line, is.
#[test]
fn a_process_without_a_command_line_is_never_matched() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(10, 1, "kworker/0:1", "");
    tree.process(11, 1, "kworker/0:2", "kworker\0");
    let mut opts = in_process_options(&env, &tree);
    opts.matches = vec!["*".into()];
    let report = run_in_process(&opts);
    // init is matched too: `*` asks for everything with a command line.
    assert_eq!(orphan_pids(&report), vec![1, 11]);
}

/// A zombie's command line is empty in the kernel, so the scan skips most zombies before
/// it reads their stat. One that exits between its command line and its stat is still seen
/// as a zombie there, and a zombie is never an orphan: the exited process is waiting for
/// its parent, there is nothing left to stop. The fixture shows that moment (a command
/// line, and state Z); the control beside it is the same process running.
#[test]
fn a_process_that_became_a_zombie_after_its_command_line_is_not_an_orphan() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    tree.process(1, 0, "init", "/sbin/init\0");
    tree.process(10, 1, "node", MATCH);
    tree.process(11, 1, "node", MATCH);
    tree.stat(11, 1, b"node", b'Z', 100);
    let report = run_in_process(&matching(&env, &tree));
    assert_eq!(orphan_pids(&report), vec![10]);
}

/// Without a process table (here: a root that cannot be opened) the reaper still runs on
/// `kill(pid, 0)`, as the seed's did: a dead PID's file goes, a live one's stays, and the
/// scan says why it found nothing.
#[test]
fn the_reaper_runs_when_the_process_table_cannot_be_opened() {
    let env = TestEnv::new();
    let tree = ProcTree::new(&env);
    let dead = env.pid_file(crate::support::dead_pid(), Duration::from_secs(60));
    let live = env.pid_file(std::process::id() as i32, Duration::from_secs(60));
    let mut opts = in_process_options(&env, &tree);
    opts.proc_root = Utf8PathBuf::from_path_buf(env.root.join("no-such-table")).unwrap();
    let report = run_in_process(&opts);
    assert!(!dead.exists(), "{report:?}");
    assert!(live.exists());
    assert_eq!(report.reaped.len(), 1, "{report:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("cannot open the process table")),
        "{:?}",
        report.warnings
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("cannot list processes")),
        "{:?}",
        report.warnings
    );
}
