//! Flags, exit codes and stdin handling of the built binary.

use crate::support::*;

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let env = TestEnv::new();
    for (args, needle) in [
        (&["--frobnicate"][..], "--frobnicate"),
        (&["--format", "yaml"], "yaml"),
        (&["--deadline-ms", "-5"], "--deadline-ms"),
        (&["--project"], "--project needs a value"),
    ] {
        let run = env.hook().args(args).run();
        assert_eq!(run.code(), 2, "{args:?}");
        assert!(run.stderr().contains(needle), "{args:?}: {}", run.stderr());
        assert!(run.stdout().is_empty());
    }
}

#[test]
fn help_and_version() {
    let env = TestEnv::new();
    let help = env.hook().args(["--help"]).run();
    assert_eq!(help.code(), 0);
    for flag in [
        "--project",
        "--config",
        "--format",
        "--dry-run",
        "--owner",
        "--match",
        "--kill",
        "--deadline-ms",
    ] {
        assert!(help.stdout().contains(flag), "{flag}");
    }
    let version = env.hook().args(["--version"]).run();
    assert_eq!(
        version.stdout(),
        format!("startup-hygiene {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn silent_when_nothing_to_report() {
    let env = TestEnv::new();
    env.state_dir();
    for format in ["text", "hook-json"] {
        // In a PID namespace the scan sees only the hook: nothing else on this machine counts.
        let Some(hook) = env
            .hook()
            .args(["--format", format, "--project"])
            .arg(&env.project)
            .in_pid_namespace()
        else {
            return;
        };
        let run = hook.run();
        assert_eq!(
            (run.code(), run.stdout().as_str()),
            (0, ""),
            "{format}: {}",
            run.stderr()
        );
    }
}

/// A terminal on stdin is never read: input waiting on it (JSON naming another project) is
/// left alone, and the project is the current directory.
#[test]
fn a_terminal_on_stdin_is_not_read() {
    let env = TestEnv::new();
    let other = TestEnv::new();
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds into the out-pointers; the rest may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        skip("no pseudo-terminal can be opened here");
        return;
    }
    // SAFETY: fresh fds from openpty, owned here from now on.
    let (master, slave) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let typed = format!("{{\"cwd\":{:?}}}\n", other.project.to_str().unwrap());
    std::io::Write::write_all(&mut &master, typed.as_bytes()).unwrap();
    let mut hook = env.hook().args(["--format", "json"]);
    hook.cmd.stdin(slave).stdout(std::process::Stdio::piped());
    let out = hook.cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["project"], env.project.to_str().unwrap(), "{r}");
    assert_eq!(r["warnings"], serde_json::Value::Array(vec![]));
}

/// The fixture itself: a stat below a `HungMount` blocks until the mount is dropped, then
/// fails. (Every deadline test that uses one depends on this.)
#[test]
fn a_hung_mount_blocks_a_stat_until_dropped() {
    let env = TestEnv::new();
    let mount = match HungMount::new(&env.root.join("hung")) {
        Ok(m) => m,
        Err(why) => return skip(&why),
    };
    let path = mount.dir.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = std::fs::metadata(&path);
        let _ = tx.send(r.is_ok());
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "the stat returned although nobody answers the mount"
    );
    drop(mount);
    let ok = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the stat still blocks after the mount was dropped");
    assert!(!ok, "the stat of an aborted mount succeeded");
    t.join().unwrap();
}
