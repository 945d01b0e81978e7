//! `startup-hygiene settings add|remove` against settings files in hostile states: a full
//! disk, a backup cut short, other writers at the same time, files whose owner, mode or
//! links an edit must keep or refuse to break, FIFOs and other non-files, JSON nested too
//! deep, empty files, and a mount that never answers. Every test runs the built binary on
//! real files in a temporary folder.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const PROGRAM: &str = "/opt/sh/bin/startup-hygiene";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `startup-hygiene settings ARGS…` with a clean environment and HOME in `env`.
fn settings(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    clean_env(&mut cmd, &env.home);
    cmd.arg("settings").args(args);
    cmd
}

/// `settings add --file FILE --program PROGRAM`.
fn add(env: &TestEnv, file: &Path) -> Command {
    let mut cmd = settings(env, &["add", "--program", PROGRAM, "--file"]);
    cmd.arg(file);
    cmd
}

/// Runs `cmd` and waits at most `limit`: `None` when it was still running then (it is
/// killed by its PID and reaped), with the time it took either way. The limit is a guard
/// against a hang, not a claim about speed.
fn run_within(mut cmd: Command, limit: Duration) -> (Option<Run>, Duration) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start startup-hygiene");
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (Some(Run(out)), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Our own unreaped child: its PID cannot have been reused.
    let _ = child.kill();
    let _ = child.wait();
    (None, started.elapsed())
}

fn run(cmd: Command) -> Run {
    let (run, took) = run_within(cmd, Duration::from_secs(60));
    run.unwrap_or_else(|| panic!("still running after {took:?}"))
}

fn backup_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.startup-hygiene.bak", file.display()))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn read_json(file: &Path) -> Value {
    let bytes = std::fs::read(file).unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{file:?} is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

fn ours(settings: &Value) -> Vec<Value> {
    settings["hooks"]["SessionStart"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter(|h| {
            h["command"]
                .as_str()
                .is_some_and(|c| c.starts_with(PROGRAM))
        })
        .collect()
}

fn assert_ok(run: &Run) {
    assert_eq!(
        run.code(),
        0,
        "stdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
}

/// A folder for the settings file, inside the test's temporary root.
fn settings_dir(env: &TestEnv) -> PathBuf {
    let d = env.root.join("cfg");
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------
// 11. The file's identity

/// Under umask 077 a 0644 file stays 0644, and so is its backup.
#[test]
fn a_strict_umask_does_not_narrow_the_mode() {
    let env = TestEnv::new();
    let dir = settings_dir(&env);
    let file = dir.join("settings.json");
    for mode in [0o644, 0o640, 0o664] {
        std::fs::write(&file, "{\"model\": \"opus\"}\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let _ = std::fs::remove_file(backup_of(&file));
        let mut cmd = Command::new("sh");
        clean_env(&mut cmd, &env.home);
        cmd.args([
            "-c",
            "umask 077 && exec \"$1\" settings add --file \"$2\" --program /opt/sh/bin/startup-hygiene",
            "sh",
        ])
        .arg(bin())
        .arg(&file);
        assert_ok(&run(cmd));
        for f in [&file, &backup_of(&file)] {
            assert_eq!(
                f.metadata().unwrap().mode() & 0o7777,
                mode,
                "{f:?} under umask 077"
            );
        }
        assert_eq!(ours(&read_json(&file)).len(), 1);
    }
}

/// Root editing `nobody`'s file leaves it `nobody`'s (the backup too); `nobody` may not edit
/// root's file in a folder it can write, since it could not keep the file root's.
#[test]
fn the_owner_is_kept() {
    if !is_root() {
        skip("changing a file's owner needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let env = TestEnv::new();
    let dir = settings_dir(&env);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.join("settings.json");
    std::fs::write(&file, "{\"model\": \"opus\"}\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
    assert_ok(&run(add(&env, &file)));
    for f in [&file, &backup_of(&file)] {
        let m = f.metadata().unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (NOBODY, NOBODY, 0o600),
            "{f:?}"
        );
    }
    assert_eq!(ours(&read_json(&file)).len(), 1);

    // nobody, on root's file.
    let setpriv = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status();
    if !matches!(setpriv, Ok(s) if s.success()) {
        skip("setpriv cannot drop to nobody here");
        return;
    }
    let roots = dir.join("roots.json");
    std::fs::write(&roots, "{\"model\": \"opus\"}\n").unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new("setpriv");
    clean_env(&mut cmd, &env.home);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["settings", "add", "--program", PROGRAM, "--file"])
        .arg(&roots);
    let out = run(cmd);
    assert_eq!(out.code(), 1, "{}", out.stdout());
    assert!(
        out.stderr().contains("belongs to user 0"),
        "{}",
        out.stderr()
    );
    let m = roots.metadata().unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(
        std::fs::read_to_string(&roots).unwrap(),
        "{\"model\": \"opus\"}\n"
    );
}

/// A file with a second hard link is refused: replacing it would leave the other name with
/// the old settings, silently.
#[test]
fn a_hard_linked_file_is_refused() {
    let env = TestEnv::new();
    let dir = settings_dir(&env);
    let file = dir.join("settings.json");
    let other = env.root.join("dotfiles-settings.json");
    std::fs::write(&file, "{\"model\": \"opus\"}\n").unwrap();
    std::fs::hard_link(&file, &other).unwrap();
    for cmd in [
        add(&env, &file),
        settings(&env, &["remove", "--file", file.to_str().unwrap()]),
    ] {
        let out = run(cmd);
        assert_eq!(out.code(), 1, "{}", out.stdout());
        assert!(
            out.stderr().contains("hard links") && out.stderr().contains("left unchanged"),
            "{}",
            out.stderr()
        );
    }
    assert_eq!(file.metadata().unwrap().nlink(), 2);
    assert_eq!(
        file.metadata().unwrap().ino(),
        other.metadata().unwrap().ino()
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"model\": \"opus\"}\n"
    );
    assert_eq!(names_in(&dir), ["settings.json"]);
}

/// A file its owner may not write (0444) is refused, even by root.
#[test]
fn a_read_only_file_is_refused() {
    let env = TestEnv::new();
    let dir = settings_dir(&env);
    let file = dir.join("settings.json");
    std::fs::write(&file, "{\"model\": \"opus\"}\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = run(add(&env, &file));
    assert_eq!(out.code(), 1, "{}", out.stdout());
    assert!(
        out.stderr().contains("read-only") && out.stderr().contains("left unchanged"),
        "{}",
        out.stderr()
    );
    assert_eq!(file.metadata().unwrap().mode() & 0o7777, 0o444);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"model\": \"opus\"}\n"
    );
    assert_eq!(names_in(&dir), ["settings.json"]);
}

/// A FIFO, a socket, a folder, and a symlink to a FIFO as the settings file: refused at once,
/// never read (a FIFO with no writer would block the read for ever), never replaced.
#[test]
fn a_fifo_or_other_non_file_is_refused_without_blocking() {
    let env = TestEnv::new();
    let dir = settings_dir(&env);
    let fifo = dir.join("fifo.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let socket = dir.join("socket.json");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let folder = dir.join("folder.json");
    std::fs::create_dir(&folder).unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for (file, kind) in [
        (&fifo, "FIFO"),
        (&socket, "socket"),
        (&folder, "folder"),
        (&link, "FIFO"),
    ] {
        let (out, took) = run_within(add(&env, file), Duration::from_secs(20));
        let out = out.unwrap_or_else(|| panic!("{file:?}: still running after {took:?}"));
        assert_eq!(out.code(), 1, "{file:?}: {}", out.stdout());
        assert!(
            out.stderr().contains(kind) && out.stderr().contains("not a regular file"),
            "{file:?}: {}",
            out.stderr()
        );
    }
    let kind = |p: &Path| p.symlink_metadata().unwrap().file_type();
    use std::os::unix::fs::FileTypeExt;
    assert!(kind(&fifo).is_fifo() && kind(&socket).is_socket() && kind(&folder).is_dir());
    assert!(kind(&link).is_symlink());
    assert_eq!(
        names_in(&dir),
        ["fifo.json", "folder.json", "link.json", "socket.json"]
    );
}
