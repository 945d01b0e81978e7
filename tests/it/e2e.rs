//! End to end with the real Claude Code CLI: the hook, registered by install.sh or loaded as a
//! plugin, runs at session start, and what it prints is in the request sent to the model.
//!
//! The client is `$STARTUP_HYGIENE_CLAUDE`, else where `.ci/provision-claude.sh` installs it;
//! without it these tests say they are skipped. Claude Code runs with a temporary HOME against
//! a fake API on 127.0.0.1 that answers every request with an error and records the bodies;
//! an HTTP(S) proxy on the same loopback port catches anything addressed elsewhere.
//!
//! The client runs as a child of PID 1 of a new PID namespace (`Stage`), next to an orphaned
//! orchestrator server started there. The hook, registered exactly as users get it, then sees
//! only those processes: not the orphans that other tests or other runs leave on this
//! machine (enough of them crowd the orphan out of the capped block), and not a `claude`
//! that may run the tests themselves. Where no PID namespace can be made, the client runs
//! directly and the orphan part is left out, which the test says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::install::install_sh;
use crate::support::*;

/// The version `.ci/provision-claude.sh` installs.
const CLIENT_VERSION: &str = "2.1.197";
/// Far above the ~1 s a run takes; only a hung client gets near it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn installed_hook_reaches_the_model() {
    let Some(client) = Client::find("installed_hook_reaches_the_model") else {
        return;
    };
    let scene = Scene::new();
    let install = scene.install(&[]);
    // install.sh's first report is a dry run of the same hook.
    assert!(
        install
            .stdout()
            .contains("Would remove 2 stale per-PID state files"),
        "{}",
        install.stdout()
    );
    scene.assert_stale_files_exist();

    let session = client.run(&scene.env, &["-p", "hi"]);
    let context = session.model_context();
    scene.assert_reported(&context, &session, "installed_hook_reaches_the_model");
    scene.assert_stale_files_gone();
}

#[test]
fn plugin_hook_reaches_the_model() {
    let Some(client) = Client::find("plugin_hook_reaches_the_model") else {
        return;
    };
    let scene = Scene::new();
    // The repository's plugin files, with the test's binary where `cargo build --release`
    // puts it.
    let plugin = copy_plugin(&scene.env.root.join("plugin"));
    let built = plugin.join("target/release/startup-hygiene");
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(bin(), &built).unwrap();

    let session = client.run(
        &scene.env,
        &["--plugin-dir", plugin.to_str().unwrap(), "-p", "hi"],
    );
    assert!(
        !scene.env.home.join(".claude/settings.json").exists(),
        "the plugin needs no settings entry"
    );
    let context = session.model_context();
    scene.assert_reported(&context, &session, "plugin_hook_reaches_the_model");
    scene.assert_stale_files_gone();
}

#[test]
fn hook_json_additional_context_reaches_the_model() {
    let test = "hook_json_additional_context_reaches_the_model";
    let Some(client) = Client::find(test) else {
        return;
    };
    let scene = Scene::new();
    scene.install(&["--format", "hook-json"]);
    let settings = std::fs::read_to_string(scene.env.home.join(".claude/settings.json")).unwrap();
    assert!(settings.contains("--format hook-json"), "{settings}");

    let session = client.run(&scene.env, &["-p", "hi"]);
    let context = session.model_context();
    scene.assert_reported(&context, &session, test);
    // Read as JSON, not as text: the summary line for the user stays out of the context.
    assert!(
        !context.contains("systemMessage") && !context.contains("removed 2 stale state files"),
        "{}",
        session.explain(&context)
    );
    scene.assert_stale_files_gone();
}

#[test]
fn unbuilt_plugin_is_quiet() {
    let Some(client) = Client::find("unbuilt_plugin_is_quiet") else {
        return;
    };
    let env = TestEnv::new();
    let plugin = copy_plugin(&env.root.join("plugin"));
    let session = client.run(
        &env,
        &["--plugin-dir", plugin.to_str().unwrap(), "-p", "hi"],
    );
    // The hook ran and succeeded (exit 0), with a message for the user only.
    let context = session.model_context();
    assert!(
        !context.contains("not built yet") && !context.contains("session start check"),
        "{}",
        session.explain(&context)
    );
    let log = session.debug_log();
    assert!(
        log.contains("startup-hygiene plugin: not built yet")
            && log.contains("Hook SessionStart:startup (SessionStart) success"),
        "{}",
        session.explain(&context)
    );
}

/// A project as a new session finds it after earlier ones died: two per-PID state files of
/// exited processes (and, in the namespace, an orphaned orchestrator server: see `INIT`).
struct Scene {
    env: TestEnv,
    stale: Vec<PathBuf>,
}

impl Scene {
    fn new() -> Scene {
        let env = TestEnv::new();
        let hour = Duration::from_secs(3600);
        let stale = vec![
            env.pid_file(dead_pid(), hour),
            env.pid_file(dead_pid(), hour),
        ];
        Scene { env, stale }
    }

    /// install.sh with the test's binary (no cargo build) and `options`.
    fn install(&self, options: &[&str]) -> Run {
        let run = Run(install_sh(&self.env)
            .args(["--binary", bin()])
            .args(options)
            .output()
            .unwrap());
        assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
        run
    }

    fn assert_reported(&self, context: &str, session: &Session, test: &str) {
        let mut needles = vec![
            "startup-hygiene (session start check):".to_string(),
            "Removed 2 stale per-PID state files".to_string(),
            // The project's own path: this run's block, not another's.
            format!("{}/.orchestrator-state", self.env.project.display()),
        ];
        match session.orphan {
            Some(pid) => needles.extend([
                "Still running: 1 orphaned MCP server process group".to_string(),
                format!("pid {pid} (parent 1)"),
                "/x/orchestrator/dist/server.js".to_string(),
                // The group is the server and its whole subtree (its `sleep` child too).
                "(2 processes,".to_string(),
                format!("To stop them: kill {pid} "),
            ]),
            None => skip(test, "the orphan part: no PID namespace can be made here"),
        }
        for needle in needles {
            assert!(
                context.contains(&needle),
                "{needle:?} is not in the request\n{}",
                session.explain(context)
            );
        }
    }

    fn assert_stale_files_exist(&self) {
        for f in &self.stale {
            assert!(f.exists(), "{}", f.display());
        }
    }

    fn assert_stale_files_gone(&self) {
        for f in &self.stale {
            assert!(!f.exists(), "{} is still there", f.display());
        }
    }
}

/// `hooks/` and `.claude-plugin/` of the repository, copied to `dir`.
fn copy_plugin(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for rel in [
        "hooks/hooks.json",
        "hooks/run.sh",
        ".claude-plugin/plugin.json",
    ] {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(rel), &to).unwrap();
    }
    dir.to_path_buf()
}

/// Where the client runs.
enum Stage {
    /// `unshare` with these flags: a new PID namespace with its own /proc, whose PID 1 runs
    /// `INIT`. `--kill-child`: if unshare dies, so does everything in the namespace.
    Namespace(&'static [&'static str]),
    /// Directly: no namespace can be made here.
    Host,
}

/// PID 1 of the namespace: starts an orchestrator server from a subshell that exits at once,
/// so that the server's parent is PID 1 (no owner) and no `claude` is above it; writes its
/// PID; then runs the client as a child, not by `exec`, or the client would be the server's
/// parent. When PID 1 exits, the kernel ends the server with everything else in there.
const INIT: &str = r#"( "$ORPHAN_BIN" -c 'sleep 600; :' bun /x/orchestrator/dist/server.js </dev/null >/dev/null 2>&1 & echo $! >"$ORPHAN_PID_FILE" ); "$@""#;

fn stage() -> &'static Stage {
    static STAGE: OnceLock<Stage> = OnceLock::new();
    STAGE.get_or_init(|| {
        const AS_ROOT: &[&str] = &["--pid", "--fork", "--mount-proc", "--kill-child"];
        const AS_USER: &[&str] = &[
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
        ];
        for flags in [AS_ROOT, AS_USER] {
            let works = Command::new("unshare")
                .args(flags)
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if works {
                return Stage::Namespace(flags);
            }
        }
        Stage::Host
    })
}

/// `support::skip` (which names the test), for the callers that also pass the name.
fn skip(_test: &str, why: &str) {
    crate::support::skip(why);
}

/// The Claude Code CLI.
struct Client {
    path: PathBuf,
}

impl Client {
    fn find(test: &str) -> Option<Client> {
        if let Some(p) = std::env::var_os("STARTUP_HYGIENE_CLAUDE").filter(|p| !p.is_empty()) {
            // Named explicitly (as CI does): a missing client is a failure, not a skip.
            let path = PathBuf::from(p);
            assert!(
                path.is_file(),
                "STARTUP_HYGIENE_CLAUDE={} is not a file",
                path.display()
            );
            return Some(Client { path });
        }
        let platform = match std::env::consts::ARCH {
            "x86_64" => "linux-x64",
            "aarch64" => "linux-arm64",
            other => {
                skip(test, &format!("no Claude Code binary for {other}"));
                return None;
            }
        };
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        let path = cache.map(|c| {
            c.join("startup-hygiene-ci/claude/node_modules/@anthropic-ai")
                .join(format!("claude-code-{platform}/claude"))
        });
        match path {
            Some(path) if path.is_file() => Some(Client { path }),
            Some(path) => {
                skip(
                    test,
                    &format!(
                        "the Claude Code CLI {CLIENT_VERSION} is not at {} and \
                         STARTUP_HYGIENE_CLAUDE is not set; run .ci/provision-claude.sh",
                        path.display()
                    ),
                );
                None
            }
            None => {
                skip(test, "neither STARTUP_HYGIENE_CLAUDE nor HOME is set");
                None
            }
        }
    }

    /// Runs the client in `env`'s project with `env`'s HOME, against a fresh fake API, on the
    /// stage this machine allows.
    fn run(&self, env: &TestEnv, args: &[&str]) -> Session {
        let api = FakeApi::start();
        let debug_file = env.root.join(unique("claude-debug"));
        let orphan_pid_file = env.root.join(unique("orphan-pid"));
        let mut cmd = match stage() {
            Stage::Namespace(flags) => {
                let orphan_bin = env.root.join("bin/bun");
                std::fs::create_dir_all(orphan_bin.parent().unwrap()).unwrap();
                if !orphan_bin.exists() {
                    std::os::unix::fs::symlink("/bin/sh", &orphan_bin).unwrap();
                }
                let mut cmd = Command::new("unshare");
                cmd.args(*flags)
                    .args(["/bin/sh", "-c", INIT, "init"])
                    .arg(&self.path)
                    .env("ORPHAN_BIN", &orphan_bin)
                    .env("ORPHAN_PID_FILE", &orphan_pid_file);
                cmd
            }
            Stage::Host => Command::new(&self.path),
        };
        clean_env(&mut cmd, &env.home);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("ANTHROPIC_") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(&k);
            }
        }
        let url = api.url();
        cmd.env("ANTHROPIC_API_KEY", "dummy")
            .env("ANTHROPIC_BASE_URL", &url)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        // Anything not addressed to 127.0.0.1 goes to the fake API as a proxy, which refuses it.
        for k in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            cmd.env(k, &url);
        }
        cmd.env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1");
        cmd.arg("--debug-file").arg(&debug_file).args(args);
        cmd.current_dir(&env.project)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that whatever it leaves behind can be ended with it.
            .process_group(0);
        let out = run_bounded(cmd.spawn().expect("start claude"), CLIENT_TIMEOUT);
        let orphan = match stage() {
            Stage::Namespace(_) => {
                let text = std::fs::read_to_string(&orphan_pid_file).unwrap_or_default();
                Some(text.trim().parse().unwrap_or_else(|_| {
                    panic!(
                        "the namespace's init wrote no orphan pid ({text:?}); stderr: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                }))
            }
            Stage::Host => None,
        };
        Session {
            out,
            requests: api.stop(),
            debug_file,
            orphan,
        }
    }
}

/// Waits for `child` up to `timeout`, then ends its process group (the child is not reaped
/// until then, so the group's id cannot have been reused) and reaps it.
fn run_bounded(child: Child, timeout: Duration) -> Output {
    struct Group(Option<Child>);
    impl Drop for Group {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                // SAFETY: kill(2) on the process group this child leads and we have not reaped.
                unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
                let _ = c.wait();
            }
        }
    }
    let mut group = Group(Some(child));
    let child = group.0.as_mut().unwrap();
    let pid = child.id() as i32;
    let readers = [
        drain(child.stdout.take().unwrap()),
        drain(child.stderr.take().unwrap()),
    ];
    let started = Instant::now();
    while !exited_unreaped(pid) {
        assert!(
            started.elapsed() < timeout,
            "claude did not finish within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = group.0.take().unwrap();
    // SAFETY: as above; the leader is a zombie, so the group id is still ours.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = child.wait().unwrap();
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Whether `pid` (a child) has exited, without reaping it.
fn exited_unreaped(pid: i32) -> bool {
    // SAFETY: waitid with WNOWAIT only reads the child's state into a zeroed siginfo_t.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// One run of the client, with the requests the fake API received.
struct Session {
    out: Output,
    requests: Vec<Recorded>,
    debug_file: PathBuf,
    /// The orphaned server's PID in the namespace, if the client ran in one.
    orphan: Option<i32>,
}

impl Session {
    /// Every string in the bodies of the requests to the Messages API, one per line: the
    /// system prompt and messages, as the model would read them.
    fn model_context(&self) -> String {
        let mut out = String::new();
        for r in self
            .requests
            .iter()
            .filter(|r| r.target.starts_with("/v1/messages"))
        {
            match serde_json::from_slice::<Value>(&r.body) {
                Ok(v) => strings(&v, &mut out),
                Err(_) => out.push_str(&String::from_utf8_lossy(&r.body)),
            }
        }
        out
    }

    fn debug_log(&self) -> String {
        std::fs::read_to_string(&self.debug_file).unwrap_or_default()
    }

    /// What to show when an assertion fails: the client's output, the requests, the hook lines
    /// of its debug log, and the context.
    fn explain(&self, context: &str) -> String {
        let log = self.debug_log();
        let hook_lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ook"))
            .map(|l| &l[..l.floor_char_boundary(600)])
            .collect();
        let targets: Vec<String> = self
            .requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        format!(
            "claude exit {:?}\nstdout: {}\nstderr: {}\nrequests: {targets:?}\n\
             debug log (hook lines):\n{}\ncontext ({} chars), first 3000:\n{}",
            self.out.status.code(),
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr),
            hook_lines.join("\n"),
            context.len(),
            &context[..context.floor_char_boundary(3000)]
        )
    }
}

fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

struct Recorded {
    method: String,
    target: String,
    body: Vec<u8>,
}

/// The Anthropic API as far as these tests need it: on 127.0.0.1, every request is recorded
/// and answered with HTTP 400 and an API error, which ends `claude -p` at once.
struct FakeApi {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

const ERROR_BODY: &str =
    r#"{"type":"error","error":{"type":"invalid_request_error","message":"x"}}"#;

impl FakeApi {
    fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let requests = Arc::clone(&requests);
                    handlers.push(std::thread::spawn(move || serve(conn, &requests)));
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        FakeApi {
            port,
            requests,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops serving and returns what was received.
    fn stop(mut self) -> Vec<Recorded> {
        self.shutdown();
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves one connection: reads requests (Content-Length or chunked bodies), records each,
/// answers each with the error, and closes after the first answer.
fn serve(conn: TcpStream, requests: &Mutex<Vec<Recorded>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let Some(recorded) = read_request(&mut reader) else {
        return;
    };
    requests.lock().unwrap().push(recorded);
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{ERROR_BODY}",
        ERROR_BODY.len()
    );
    let _ = conn.flush();
}

fn read_request(r: &mut impl BufRead) -> Option<Recorded> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).ok()?;
            let size_field = line.trim().split(';').next()?;
            let size = usize::from_str_radix(size_field, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).ok()?;
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf).ok()?;
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some(Recorded {
        method,
        target,
        body,
    })
}
