//! Test fixtures: a temporary project (`TestEnv`), a way to run the built hook against it
//! (`Hook`), and real process trees (`Procs`) that are ended by pidfd when dropped, also when
//! a test fails. The test process makes itself a child subreaper, so orphans made by killing
//! an owner are adopted by the test, not by PID 1, and can be reaped here.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_startup-hygiene")
}

/// Says, past the test harness's output capture (which takes only `print!`/`eprint!`), that
/// the calling test did not do its work and why. Callers return right after. Where every
/// test must run (`STARTUP_HYGIENE_NO_SKIPS=1`, as `.ci/run` sets), a skip is a failure.
pub fn skip(why: &str) {
    let name = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var_os("STARTUP_HYGIENE_NO_SKIPS").is_some_and(|v| v == "1") {
        panic!("{name} would be skipped, and STARTUP_HYGIENE_NO_SKIPS=1: {why}");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {name}: {why}");
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test run on this machine uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A temporary project with its own HOME, removed on drop.
pub struct TestEnv {
    pub root: PathBuf,
    pub project: PathBuf,
    pub home: PathBuf,
    /// An owner name unique to this test: real `claude` processes on the machine are not
    /// owners in this test's eyes.
    pub owner: String,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let root = std::env::temp_dir().join(unique("startup-hygiene-test"));
        let project = root.join("project");
        let home = root.join("home");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(home.join(".claude/sessions")).unwrap();
        TestEnv {
            root,
            project,
            home,
            owner: unique("owner"),
        }
    }

    /// `<project>/.orchestrator-state`, created.
    pub fn state_dir(&self) -> PathBuf {
        let d = self.project.join(".orchestrator-state");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Creates `rel` under the project (and its folders), last modified `age` ago.
    pub fn file(&self, rel: &str, age: Duration) -> PathBuf {
        let p = self.project.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"session-id\n").unwrap();
        set_mtime(&p, SystemTime::now() - age);
        p
    }

    /// A state file for `pid`, `age` old.
    pub fn pid_file(&self, pid: i32, age: Duration) -> PathBuf {
        self.state_dir();
        self.file(&format!(".orchestrator-state/active-session-{pid}"), age)
    }

    /// The hook, with this env's HOME and owner name, and no Claude Code variables inherited
    /// from whoever runs the tests. Its deadline is a minute: on a loaded machine (hundreds of
    /// test processes, parallel builds) the default 2 s could cut a scan short, and these
    /// tests are about what is found, not how fast. A test of the deadline passes its own
    /// `--deadline-ms`; the last one given wins.
    pub fn hook(&self) -> Hook {
        let mut cmd = Command::new(bin());
        clean_env(&mut cmd, &self.home);
        cmd.current_dir(&self.project);
        cmd.args(["--owner", &self.owner, "--deadline-ms", "60000"]);
        Hook {
            cmd,
            stdin: Some(Vec::new()),
        }
    }

    /// The `--format json` report of a run on this project, with `extra` flags.
    pub fn report(&self, extra: &[&str]) -> Value {
        self.hook()
            .args(["--format", "json", "--project"])
            .arg(&self.project)
            .args(extra)
            .run()
            .json()
    }

    pub fn names_in_state_dir(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.project.join(".orchestrator-state"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes the variables Claude Code sets, so a test run inside Claude Code behaves like one
/// outside it, and points HOME-based lookups at `home`.
pub fn clean_env(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CLAUDE") || k == "AI_AGENT" || k.starts_with("XDG_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", home);
    cmd.env("CLAUDE_CONFIG_DIR", home.join(".claude"));
    cmd.env("PATH", path_without_an_installed_hook());
}

/// The caller's PATH without the folders that hold a `startup-hygiene`: the plugin's
/// `hooks/run.sh` falls back to one on PATH, and a test must meet the binary it built, or
/// none, wherever the tool is installed.
pub fn path_without_an_installed_hook() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("startup-hygiene").exists())
        .collect();
    std::env::join_paths(kept).unwrap_or_default()
}

pub fn set_mtime(p: &Path, t: SystemTime) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

pub struct Hook {
    pub cmd: Command,
    /// `None`: stdin inherited as a pipe that the test keeps open (see `run_with_open_stdin`).
    stdin: Option<Vec<u8>>,
}

impl Hook {
    pub fn args<I, S>(mut self, args: I) -> Hook
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Hook {
        self.cmd.arg(a);
        self
    }

    /// Runs the hook as PID 1 of a new PID namespace with its own /proc, where the only
    /// processes are its own: a scan that cannot see anything else on the machine. `None`
    /// (with the reason on stderr) where namespaces are not available.
    pub fn in_pid_namespace(self) -> Option<Hook> {
        Some(self.under(pid_namespace()?))
    }

    /// The same hook, started through `wrapper` (a command such as `setpriv …` that ends
    /// by running the program it is given): same arguments, environment and folder.
    pub fn under(self, mut wrapper: Command) -> Hook {
        wrapper
            .arg(self.cmd.get_program())
            .args(self.cmd.get_args());
        for (k, v) in self.cmd.get_envs() {
            match v {
                Some(v) => wrapper.env(k, v),
                None => wrapper.env_remove(k),
            };
        }
        if let Some(dir) = self.cmd.get_current_dir() {
            wrapper.current_dir(dir);
        }
        Hook {
            cmd: wrapper,
            stdin: self.stdin,
        }
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Hook {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Hook {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn run(mut self) -> Run {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("start the hook");
        let input = self.stdin.take().unwrap_or_default();
        let mut stdin = child.stdin.take().unwrap();
        // The hook may stop reading early (a size cap): a write error is expected then.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for the hook");
        let _ = writer.join();
        Run(out)
    }

    /// Runs like `run`, but gives the hook at most `limit`: past it the hook is killed (by
    /// its PID: it is this test's unreaped child) and `Bounded::ended_by_itself` is false.
    pub fn run_within(mut self, limit: Duration) -> Bounded {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = std::time::Instant::now();
        let mut child = self.cmd.spawn().expect("start the hook");
        let input = self.stdin.take().unwrap_or_default();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        Bounded::wait(child, started, limit, Some(writer))
    }

    /// Runs with a stdin pipe that stays open until the hook has exited.
    pub fn run_with_open_stdin(mut self) -> Run {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("start the hook");
        let stdin = child.stdin.take();
        let out = child.wait_with_output().expect("wait for the hook");
        drop(stdin);
        Run(out)
    }
}

/// A run that was given a time limit.
pub struct Bounded {
    pub run: Run,
    pub elapsed: Duration,
    pub ended_by_itself: bool,
}

impl Bounded {
    /// Waits for `child` up to `limit` after `started`, then kills it.
    pub fn wait(
        mut child: Child,
        started: std::time::Instant,
        limit: Duration,
        writer: Option<std::thread::JoinHandle<()>>,
    ) -> Bounded {
        // Drain the pipes meanwhile: a full pipe must not stall the hook.
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let out_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut v);
            }
            v
        });
        let err_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut v);
            }
            v
        });
        let mut ended_by_itself = true;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the hook") {
                break status;
            }
            if started.elapsed() > limit {
                ended_by_itself = false;
                let _ = child.kill();
                break child.wait().expect("reap the hook");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        if let Some(w) = writer {
            let _ = w.join();
        }
        Bounded {
            run: Run(Output {
                status,
                stdout,
                stderr,
            }),
            elapsed,
            ended_by_itself,
        }
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// The `--format json` report; panics with the output when it is not one.
    pub fn json(&self) -> Value {
        assert_eq!(self.code(), 0, "stderr: {}", self.stderr());
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout(), self.stderr()))
    }
}

impl Run {
    /// Exit 0, or a failure showing both outputs.
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code(),
            0,
            "stdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
    }
}

/// PIDs of `report[key]` entries, e.g. `pids(&r, "reaped")`.
pub fn pids(report: &Value, key: &str) -> Vec<i64> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect()
}

/// The entry of `report[key]` for `pid`.
pub fn entry(report: &Value, key: &str, pid: i32) -> Option<Value> {
    report[key]
        .as_array()?
        .iter()
        .find(|e| e["pid"].as_i64() == Some(pid as i64))
        .cloned()
}

/// `unshare --pid --fork --mount-proc`, to which the caller adds the program: a new PID
/// namespace with its own /proc, where a scan sees only the processes started inside it.
/// Without root, the same inside a new user namespace (`--user --map-root-user`), where
/// the test is root of its own namespaces. `None`, and a skip, where neither can be made
/// here (probed once).
pub fn pid_namespace() -> Option<Command> {
    const WAYS: [&[&str]; 2] = [
        &["--pid", "--fork", "--mount-proc"],
        &[
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
        ],
    ];
    static WAY: std::sync::OnceLock<Option<&[&str]>> = std::sync::OnceLock::new();
    let way = *WAY.get_or_init(|| {
        WAYS.into_iter().find(|flags| {
            Command::new("unshare")
                .args(*flags)
                .arg("true")
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    });
    let Some(flags) = way else {
        skip("no PID namespace can be made here (`unshare --pid`, also in a user namespace)");
        return None;
    };
    let mut cmd = Command::new("unshare");
    // If the test process dies (killed by a harness's timeout, say), unshare dies with it,
    // and takes the namespace's PID 1, so the whole namespace ends.
    cmd.args(flags).arg("--kill-child=SIGKILL");
    // SAFETY: one prctl between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Some(cmd)
}

/// Runs the `#[ignore]`d test `name` of this test binary again as PID 1 of a new PID
/// namespace (its own `/proc`), with `STARTUP_HYGIENE_INNER=1`; checks that it ran and
/// passed, and returns what it printed. `None` (a skip) where no namespace can be made.
pub fn rerun_in_a_pid_namespace(name: &str) -> Option<String> {
    let out = pid_namespace()?
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name])
        .args(["--include-ignored", "--nocapture", "--test-threads=1"])
        .env("STARTUP_HYGIENE_INNER", "1")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("1 passed"),
        "the inner test did not run: {said}"
    );
    Some(said)
}

/// Makes the test process a child subreaper, once.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
    });
}

/// Processes a test started. Dropping ends each one by pidfd (never a reused PID) and reaps it.
pub struct Procs {
    dir: PathBuf,
    members: Vec<(i32, Option<OwnedFd>)>,
    children: Vec<Child>,
    /// Write ends that keep `read`-blocked servers alive.
    holds: Vec<ChildStdin>,
}

impl Procs {
    pub fn new() -> Procs {
        become_subreaper();
        let dir = std::env::temp_dir().join(unique("startup-hygiene-procs"));
        std::fs::create_dir_all(&dir).unwrap();
        Procs {
            dir,
            members: Vec::new(),
            children: Vec::new(),
            holds: Vec::new(),
        }
    }

    /// The folder of the `named` links, for scripts that start them as `"$P/<name>"`.
    pub fn dir(&self) -> String {
        self.dir.to_str().expect("a UTF-8 temp dir").to_string()
    }

    /// A path to `/bin/sh` under `name`: a process started through it has comm `name`.
    pub fn named(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        if !p.exists() {
            symlink("/bin/sh", &p).unwrap();
        }
        p
    }

    /// Tracks a PID started indirectly (e.g. printed by a child).
    pub fn adopt(&mut self, pid: i32) {
        let fd = pidfd(pid);
        self.members.push((pid, fd));
    }

    /// Starts `name -c script name args…` with `env` added to a clean environment; stdin is a
    /// pipe the test holds, stdout a pipe for `read_pid`.
    pub fn spawn(&mut self, name: &str, script: &str, args: &[&str], env: &[(&str, &str)]) -> i32 {
        let mut cmd = Command::new(self.named(name));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied());
        cmd.arg("-c").arg(script).arg(name).args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let pid = child.id() as i32;
        self.members.push((pid, pidfd(pid)));
        if let Some(stdin) = child.stdin.take() {
            self.holds.push(stdin);
        }
        self.children.push(child);
        pid
    }

    /// Reads one PID line from the stdout of the child `pid` started.
    pub fn read_pid(&mut self, pid: i32) -> i32 {
        let child = self
            .children
            .iter_mut()
            .find(|c| c.id() as i32 == pid)
            .expect("a child of this test");
        let out = child.stdout.as_mut().unwrap();
        // Byte by byte: a buffered reader would swallow the lines of later calls.
        let mut line = String::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let got: i32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid in {line:?}"));
        self.adopt(got);
        got
    }

    /// An owner process (`name`, e.g. the env's owner) that starts a server `server_name
    /// -c 'read x' server_name server_args…` with `env`, and prints the server's PID.
    pub fn owner_with_server(
        &mut self,
        owner: &str,
        server_name: &str,
        server_args: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, i32) {
        let server = self.named(server_name);
        let quoted: Vec<String> = server_args.iter().map(|a| shell_quote(a)).collect();
        // A background job's stdin is /dev/null unless redirected: hand it ours (fd 3).
        let script = format!(
            "exec 3<&0; {} -c 'read x' {} {} <&3 >/dev/null & echo $!; wait",
            shell_quote(server.to_str().unwrap()),
            shell_quote(server_name),
            quoted.join(" ")
        );
        let owner_pid = self.spawn(owner, &script, &[], env);
        let server_pid = self.read_pid(owner_pid);
        wait_for_comm(server_pid, server_name);
        (owner_pid, server_pid)
    }

    /// A process that blocks in `read` with `env`; its command line is `name -c 'read x' name args…`.
    pub fn server(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) -> i32 {
        self.spawn(name, "read x", args, env)
    }

    /// SIGKILL through the pidfd, then reap it if it is ours to reap. The member is then
    /// forgotten: a later process given the same PID is a member of its own.
    pub fn kill(&mut self, pid: i32) {
        let Some(at) = self.members.iter().position(|(p, _)| *p == pid) else {
            reap(pid);
            return;
        };
        if let (_, Some(fd)) = self.members.remove(at) {
            // SAFETY: pidfd_send_signal on a pidfd we hold.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<u8>(),
                    0,
                )
            };
        }
        reap(pid);
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        while let Some(&(pid, _)) = self.members.first() {
            self.kill(pid);
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall returning a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for `pid` if it is a child of the test (adopted orphans are); otherwise no-op.
pub fn reap(pid: i32) {
    let mut status = 0;
    for _ in 0..200 {
        // SAFETY: waitpid on a specific pid.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != 0 {
            return; // reaped, or not our child (ECHILD)
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `pid` has exec'd into `comm`. A PID printed by `$!` is known right after the
/// fork: until the exec, the child still carries its parent's name and command line (an
/// owner's, say), and a scan at that moment rightly judges it as such.
///
/// An exec names the process before it sets up the new command line and environment (the
/// kernel's `begin_new_exec`, then `create_elf_tables`): both are waited for.
pub fn wait_for_comm(pid: i32, comm: &str) {
    let want: String = comm.chars().take(15).collect();
    for _ in 0..500 {
        let now = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if now.trim_end() == want && !args.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{pid} never became {comm:?}");
}

/// Waits until `pid`'s parent is `parent` (an orphan being adopted), up to 5 s.
pub fn wait_for_parent(pid: i32, parent: i32) {
    for _ in 0..500 {
        if ppid(pid) == Some(parent) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{pid} was not adopted by {parent} (parent {:?})", ppid(pid));
}

pub fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

pub fn is_alive(pid: i32) -> bool {
    matches!(state(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A FUSE mount whose server never answers: the first access below it (a `stat`, an
/// `open`) blocks in the kernel, in a wait that only a fatal signal ends — what a dead
/// network share or a stuck FUSE daemon does to a program. Made without libfuse: open
/// `/dev/fuse`, mount with its fd, and never read the fd. Dropping it aborts the connection
/// (blocked calls then fail with `ENOTCONN`) and unmounts. If the test process dies instead,
/// the kernel closes the fd and the mount stops blocking just the same.
pub struct HungMount {
    pub dir: PathBuf,
    fuse: Option<OwnedFd>,
}

impl HungMount {
    /// Mounts over `dir` (created). `Err` says why not: it needs root (CAP_SYS_ADMIN) and
    /// `/dev/fuse`.
    pub fn new(dir: &Path) -> Result<HungMount, String> {
        use std::ffi::CString;
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| format!("open /dev/fuse: {e}"))?;
        let fuse = OwnedFd::from(fuse);
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        // allow_other: a hook run as another user (`nobody`) must block on it too.
        let data = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            fuse.as_raw_fd()
        ))
        .unwrap();
        // SAFETY: valid C strings; mount(2) copies them.
        let r = unsafe {
            libc::mount(
                c"startup-hygiene-hung".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(format!("mount fuse: {}", std::io::Error::last_os_error()));
        }
        Ok(HungMount {
            dir: dir.to_path_buf(),
            fuse: Some(fuse),
        })
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        // Closing the only fd of the connection aborts it; then the mount can go.
        drop(self.fuse.take());
        let target = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `orphans::scan` with the one rule `glob` (labelled `label`), as `--kill` runs it (every
/// orphan pinned), the hook being `me`: the orphans found, and their pins.
pub fn scan_by_rule(
    table: &mut startup_hygiene::process_table::ProcessTable,
    label: &str,
    glob: &str,
    me: i32,
) -> (
    Vec<startup_hygiene::report::OrphanProc>,
    startup_hygiene::kill::Pins,
) {
    use startup_hygiene::{config::MatchRule, orphans, registry::Registry, report::Report};
    let sink = startup_hygiene::report::Sink::new(Report::default());
    let rules = [MatchRule {
        label: label.into(),
        glob: glob.into(),
    }];
    let pins = orphans::scan(
        table,
        orphans::Scan {
            rules: &rules,
            ignore: &[],
            builtin_rules: 0,
            pins: usize::MAX,
            user_rules_until: None,
            uid: startup_hygiene::os::sys::uid(),
            me,
            registry: &mut Registry::from_env(),
        },
        &sink,
    );
    (sink.snapshot().orphans, pins)
}

/// The hook in a PID namespace of its own, under `sh` as PID 1: `before` runs first, then
/// the hook (`$HOOK`, with `hook_args`), then `after`; `vars` are exported to the script.
/// Returns what the hook printed and what the script printed.
pub fn in_namespace_raw(
    env: &TestEnv,
    before: &str,
    hook_args: &str,
    after: &str,
    vars: &[(&str, &str)],
) -> Option<(Vec<u8>, String)> {
    let mut cmd = pid_namespace()?;
    let out = env.root.join(unique("ns-report"));
    let script = format!(
        "{before}\n\"$HOOK\" --owner \"$OWNER\" --deadline-ms 60000 --project \"$P\" {hook_args} </dev/null >\"$OUT\"; echo \"hook=$?\"\n{after}\n: \"$M\""
    );
    clean_env(&mut cmd, &env.home);
    let output = cmd
        .args(["sh", "-c", &script])
        .env("HOOK", bin())
        .env("OWNER", &env.owner)
        .env("P", &env.project)
        .env("OUT", &out)
        .env("M", "ns-marker")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        said.contains("hook=0"),
        "{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some((std::fs::read(&out).unwrap(), said))
}

/// `in_namespace_raw` with `--format json`, the report parsed.
pub fn in_namespace(
    env: &TestEnv,
    before: &str,
    hook_args: &str,
    after: &str,
) -> Option<(Value, String)> {
    let (out, said) = in_namespace_raw(
        env,
        before,
        &format!("--format json {hook_args}"),
        after,
        &[],
    )?;
    Some((serde_json::from_slice(&out).unwrap(), said))
}

/// This machine's `pid_max`: the PIDs it hands out are below it.
pub fn pid_max() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("/proc/sys/kernel/pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number")
}

/// `n` PIDs that no process has, each a valid PID-file name (at most the kernel's 4,194,304),
/// and distinct from every other this test binary asked for. Taken from 4,194,304 down:
/// where `pid_max` is lower (32,768 by default) they are above it, and no process can ever
/// have them; at systemd's 4,194,304 they are the highest PIDs, found free when asked for
/// (a process would have to be handed out near the very top of the range in the meantime).
pub fn dead_pids(n: usize) -> Vec<i32> {
    static TAKEN: AtomicUsize = AtomicUsize::new(0);
    let max = pid_max();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let pid = startup_hygiene::defaults::PID_MAX_LIMIT as i32
            - TAKEN.fetch_add(1, Ordering::Relaxed) as i32;
        assert!(pid > 300, "out of dead PIDs");
        if pid >= max || !Path::new(&format!("/proc/{pid}")).exists() {
            out.push(pid);
        }
    }
    out
}

/// One PID that no process has (see `dead_pids`).
pub fn dead_pid() -> i32 {
    dead_pids(1)[0]
}

/// Makes `cmd` run as on a file system without `RENAME_NOREPLACE` (NFS, many FUSE mounts):
/// a seccomp filter answers `renameat2` with any flags `EINVAL`, as such a file system does.
/// Plain renames, links and everything else are untouched.
pub fn without_rename_flags(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64: the filter allows calls of any other ABI.
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 i (low word first).
    let filter = vec![
        stmt(load, 4),
        jump(ARCH, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(load, 0),
        jump(libc::SYS_renameat2 as u32, 0, 3),
        stmt(load, 16 + 8 * 4),
        jump(0, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let filter: &'static [libc::sock_filter] = Box::leak(filter.into_boxed_slice());
    let prog: &'static libc::sock_fprog = Box::leak(Box::new(libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    }));
    // An address: the closure must be Send + Sync, a raw pointer is neither.
    let prog = prog as *const libc::sock_fprog as usize;
    // SAFETY: only prctl calls between fork and exec, on data that outlives them.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `pid`'s start time in clock ticks after boot (`/proc/<pid>/stat`), 0 if it is gone.
pub fn starttime(pid: i32) -> u64 {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|b| startup_hygiene::os::procfs::parse_stat(&b))
        .map_or(0, |s| s.starttime)
}
