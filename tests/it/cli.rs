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
