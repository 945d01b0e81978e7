//! install.sh and `startup-hygiene settings`, run for real against a temporary HOME, PREFIX
//! and settings files: one entry of ours, everything else kept byte for byte, a backup of
//! the original, and a file that is not JSON left alone.
//!
//! install.sh and the plugin's hooks/run.sh are POSIX sh, for Linux and macOS alike: each
//! test that runs one runs under bash (`install::bash::`) and under dash (`install::dash::`),
//! the strictest POSIX sh at hand (Debian's /bin/sh), which stands in for macOS's /bin/sh
//! (bash 3.2) here, where no Mac runs: a bash-only construct fails there. Where dash is
//! missing, the dash runs are skipped (`support::skip`). A last test looks through both
//! scripts for bash-isms and GNU-only flags that run here but not on a Mac.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// `bash install.sh` with `env`'s HOME (and `CLAUDE_CONFIG_DIR=<home>/.claude`), PREFIX under
/// `env.root`, in `env`'s project.
pub fn install_sh(env: &TestEnv) -> Command {
    Shell::Bash.install_sh(env)
}

/// A shell the scripts run under.
#[derive(Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Dash,
}

impl Shell {
    fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Dash => "dash",
        }
    }

    /// The shell's path. By its path, not its name: a test may give the script a PATH
    /// without the shell.
    fn path(self) -> PathBuf {
        which(self.name())
    }

    /// `<shell> install.sh` with `env`'s HOME (and `CLAUDE_CONFIG_DIR=<home>/.claude`),
    /// PREFIX under `env.root`, in `env`'s project.
    pub fn install_sh(self, env: &TestEnv) -> Command {
        let mut cmd = Command::new(self.path());
        cmd.arg(repo().join("install.sh"));
        clean_env(&mut cmd, &env.home);
        cmd.env("PREFIX", env.root.join("prefix"))
            .current_dir(&env.project);
        cmd
    }
}

/// Each named test function (`fn name(sh: Shell)`) as two tests, `bash::name` and
/// `dash::name`; the second is skipped where dash is not installed.
macro_rules! under_bash_and_dash {
    ($($name:ident),* $(,)?) => {
        mod bash {
            $(#[test]
            fn $name() {
                super::$name(super::Shell::Bash);
            })*
        }
        mod dash {
            $(#[test]
            fn $name() {
                if super::find_on_path("dash").is_none() {
                    crate::support::skip(
                        "dash is not installed (apt-get install dash): the POSIX sh run of the \
                         scripts, which stands in for macOS's sh",
                    );
                    return;
                }
                super::$name(super::Shell::Dash);
            })*
        }
    };
}

under_bash_and_dash!(
    fresh_install_registers_the_hook_and_shows_its_first_report,
    second_install_changes_nothing,
    install_keeps_the_rest_and_uninstall_gives_it_back_exactly,
    uninstall_after_install_into_no_file_leaves_an_empty_object,
    settings_that_are_not_json_are_left_alone,
    options_choose_the_settings_file,
    hook_args_are_registered_and_checked,
    help_and_usage_errors,
    missing_cargo_is_explained,
    without_binary_it_builds_with_cargo_from_its_own_checkout,
    the_plugin_hook_runs_the_built_binary_or_says_how_to_build_it,
);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// install.sh with the test's binary (no cargo build).
fn install(sh: Shell, env: &TestEnv, args: &[&str]) -> Run {
    Run(sh
        .install_sh(env)
        .args(["--binary", bin()])
        .args(args)
        .output()
        .unwrap())
}

fn installed(env: &TestEnv) -> PathBuf {
    env.root.join("prefix/bin/startup-hygiene")
}

fn user_settings(env: &TestEnv) -> PathBuf {
    env.home.join(".claude/settings.json")
}

fn backup_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.startup-hygiene.bak", file.display()))
}

fn read_json(file: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

/// The SessionStart entries of ours in `settings`.
fn our_entries(settings: &Value) -> Vec<Value> {
    settings["hooks"]["SessionStart"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter(|h| {
            h["command"]
                .as_str()
                .is_some_and(|c| c.contains("startup-hygiene"))
        })
        .collect()
}

/// Settings as Claude Code writes them (two-space indentation), with a bit of everything.
const EXISTING: &str = r#"{
  "model": "opus",
  "permissions": {
    "allow": [
      "Bash(ls:*)"
    ]
  },
  "hooks": {
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [
          {
            "type": "command",
            "command": "guard.sh"
          }
        ]
      }
    ],
    "SessionStart": [
      {
        "matcher": "startup",
        "hooks": [
          {
            "type": "command",
            "command": "echo welcome",
            "timeout": 3
          }
        ]
      }
    ]
  },
  "env": {
    "ZED": "1",
    "ALPHA": "2"
  }
}
"#;

fn fresh_install_registers_the_hook_and_shows_its_first_report(sh: Shell) {
    let env = TestEnv::new();
    let stale = env.pid_file(dead_pid(), std::time::Duration::from_secs(3600));
    let run = install(sh, &env, &[]);
    run.assert_ok();

    let bin = installed(&env);
    assert!(bin.metadata().unwrap().permissions().mode() & 0o111 != 0);
    let settings = read_json(&user_settings(&env));
    assert_eq!(
        settings,
        json!({"hooks": {"SessionStart": [{"matcher": "", "hooks": [
            {"type": "command", "command": bin.to_str().unwrap(), "timeout": 5}]}]}})
    );
    assert!(
        Path::new(
            settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
                .as_str()
                .unwrap()
        )
        .is_absolute()
    );

    // The first report is a dry run on the current directory.
    let out = run.stdout();
    assert!(
        out.contains(&format!("First run on {}", env.project.display())),
        "{out}"
    );
    assert!(
        out.contains("Would remove 1 stale per-PID state file"),
        "{out}"
    );
    assert!(stale.exists());
    // No original, so no backup.
    assert!(!backup_of(&user_settings(&env)).exists());
}

fn second_install_changes_nothing(sh: Shell) {
    let env = TestEnv::new();
    let file = user_settings(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, EXISTING).unwrap();
    (install(sh, &env, &[])).assert_ok();
    let first = std::fs::read(&file).unwrap();
    let backup = std::fs::read(backup_of(&file)).unwrap();

    let again = install(sh, &env, &[]);
    again.assert_ok();
    assert!(again.stdout().contains("unchanged"), "{}", again.stdout());
    assert_eq!(std::fs::read(&file).unwrap(), first);
    assert_eq!(std::fs::read(backup_of(&file)).unwrap(), backup);
    assert_eq!(our_entries(&read_json(&file)).len(), 1);
}

fn install_keeps_the_rest_and_uninstall_gives_it_back_exactly(sh: Shell) {
    let env = TestEnv::new();
    let file = user_settings(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, EXISTING).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    (install(sh, &env, &["--format", "hook-json", "--timeout", "7"])).assert_ok();
    let backup = backup_of(&file);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), EXISTING);
    for f in [&file, &backup] {
        assert_eq!(
            f.metadata().unwrap().permissions().mode() & 0o777,
            0o600,
            "{f:?}"
        );
    }
    // The original with one group appended, in the original's order.
    let mut expected: Value = serde_json::from_str(EXISTING).unwrap();
    expected["hooks"]["SessionStart"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "matcher": "",
            "hooks": [{"type": "command",
                       "command": format!("{} --format hook-json", installed(&env).display()),
                       "timeout": 7}]
        }));
    let got = read_json(&file);
    assert_eq!(got.to_string(), expected.to_string());

    // A reinstall with other options updates the entry in place; the backup stays the original.
    (install(sh, &env, &[])).assert_ok();
    let entries = our_entries(&read_json(&file));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0]["command"],
        json!(installed(&env).to_str().unwrap())
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), EXISTING);

    let run = Run(sh.install_sh(&env).arg("--uninstall").output().unwrap());
    run.assert_ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), EXISTING);
    assert!(installed(&env).exists(), "the binary stays");
    // Nothing of ours left: a second uninstall changes nothing.
    let again = Run(sh.install_sh(&env).arg("--uninstall").output().unwrap());
    again.assert_ok();
    assert!(again.stdout().contains("unchanged"), "{}", again.stdout());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), EXISTING);
}

fn uninstall_after_install_into_no_file_leaves_an_empty_object(sh: Shell) {
    let env = TestEnv::new();
    (install(sh, &env, &[])).assert_ok();
    (Run(sh.install_sh(&env).arg("--uninstall").output().unwrap())).assert_ok();
    assert_eq!(
        std::fs::read_to_string(user_settings(&env)).unwrap(),
        "{}\n"
    );
}

fn settings_that_are_not_json_are_left_alone(sh: Shell) {
    let env = TestEnv::new();
    let file = user_settings(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let uninstall = || Run(sh.install_sh(&env).arg("--uninstall").output().unwrap());
    for (bad, why, uninstall_fails) in [
        ("{\"model\": \"opus\",}\n", "not valid JSON", true),
        ("[1, 2]\n", "not a JSON object", true),
        // Nothing of ours can be in it, so there is nothing to uninstall.
        ("{\"hooks\": []}\n", "\"hooks\" is not a JSON object", false),
    ] {
        std::fs::write(&file, bad).unwrap();
        let mut runs = vec![install(sh, &env, &[])];
        if uninstall_fails {
            runs.push(uninstall());
        } else {
            (uninstall()).assert_ok();
        }
        for run in runs {
            assert_eq!(run.code(), 1, "{bad:?}: {}", run.stdout());
            let err = run.stderr();
            assert!(err.contains(file.to_str().unwrap()), "{err}");
            assert!(err.contains(why) && err.contains("left unchanged"), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), bad);
        assert!(!backup_of(&file).exists());
    }
}

fn options_choose_the_settings_file(sh: Shell) {
    // --project DIR: DIR/.claude/settings.json, and the first report is on DIR.
    let env = TestEnv::new();
    let other = env.root.join("other-project");
    std::fs::create_dir_all(&other).unwrap();
    let run = install(sh, &env, &["--project", other.to_str().unwrap()]);
    run.assert_ok();
    assert_eq!(
        our_entries(&read_json(&other.join(".claude/settings.json"))).len(),
        1
    );
    assert!(!user_settings(&env).exists());
    assert!(
        run.stdout()
            .contains(&format!("First run on {}", other.display()))
    );

    // --settings FILE.
    let file = env.root.join("somewhere/settings.local.json");
    (install(sh, &env, &["--settings", file.to_str().unwrap()])).assert_ok();
    assert_eq!(our_entries(&read_json(&file)).len(), 1);
    assert!(!user_settings(&env).exists());

    // CLAUDE_CONFIG_DIR.
    let config = env.root.join("config");
    let run = Run(sh
        .install_sh(&env)
        .env("CLAUDE_CONFIG_DIR", &config)
        .args(["--binary", bin()])
        .output()
        .unwrap());
    run.assert_ok();
    assert_eq!(
        our_entries(&read_json(&config.join("settings.json"))).len(),
        1
    );
    assert!(!user_settings(&env).exists());

    // --no-register: installed, nothing registered.
    let env = TestEnv::new();
    (install(sh, &env, &["--no-register"])).assert_ok();
    assert!(installed(&env).exists());
    assert!(!user_settings(&env).exists());
}

fn hook_args_are_registered_and_checked(sh: Shell) {
    let env = TestEnv::new();
    (install(
        sh,
        &env,
        &["--", "--match", "*my server*", "--deadline-ms", "900"],
    ))
    .assert_ok();
    let entries = our_entries(&read_json(&user_settings(&env)));
    assert_eq!(
        entries[0]["command"],
        json!(format!(
            "{} --match '*my server*' --deadline-ms 900",
            installed(&env).display()
        ))
    );
    let run = install(sh, &env, &["--", "--frobnicate"]);
    assert_ne!(run.code(), 0);
    assert!(run.stderr().contains("--frobnicate"), "{}", run.stderr());
    assert_eq!(our_entries(&read_json(&user_settings(&env))), entries);

    // `--option=value`, and hook arguments the first report leaves out: it is a dry run as
    // text, whatever the hook is registered with.
    let stale = env.pid_file(dead_pid(), std::time::Duration::from_secs(3600));
    let run = install(
        sh,
        &env,
        &[
            "--format=hook-json",
            "--timeout=9",
            "--",
            "--kill",
            "--format",
            "hook-json",
            "--match=*a b*",
        ],
    );
    run.assert_ok();
    let entries = our_entries(&read_json(&user_settings(&env)));
    assert_eq!(
        entries,
        [json!({"type": "command", "timeout": 9, "command": format!(
            "{} --format hook-json --kill --format hook-json '--match=*a b*'",
            installed(&env).display()
        )})]
    );
    let out = run.stdout();
    assert!(
        out.contains("Would remove 1 stale per-PID state file"),
        "{out}"
    );
    assert!(!out.contains("systemMessage"), "{out}");
    assert!(stale.exists());
}

fn help_and_usage_errors(sh: Shell) {
    let env = TestEnv::new();
    let help = Run(sh.install_sh(&env).arg("--help").output().unwrap());
    help.assert_ok();
    for opt in [
        "--project",
        "--settings",
        "--format",
        "--uninstall",
        "--no-register",
        "--binary",
        "PREFIX",
        "CLAUDE_CONFIG_DIR",
    ] {
        assert!(help.stdout().contains(opt), "{opt}");
    }
    for (args, needle) in [
        (&["--bogus"][..], "--bogus"),
        (&["--format", "yaml"], "yaml"),
        (&["--project"], "--project needs a value"),
        (&["--project", "a", "--settings", "b"], "--settings"),
        (&["--uninstall", "--no-register"], "--no-register"),
    ] {
        let run = Run(sh.install_sh(&env).args(args).output().unwrap());
        assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
        assert!(run.stderr().contains(needle), "{args:?}: {}", run.stderr());
    }
    assert!(!user_settings(&env).exists());
}

fn missing_cargo_is_explained(sh: Shell) {
    let env = TestEnv::new();
    let empty = env.root.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let run = Run(sh.install_sh(&env).env("PATH", &empty).output().unwrap());
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("cargo"), "{}", run.stderr());
    assert!(
        run.stderr().contains("https://rustup.rs"),
        "{}",
        run.stderr()
    );
    assert!(!installed(&env).exists());
    assert!(!user_settings(&env).exists());
}

#[test]
fn settings_subcommand_follows_symlinks_and_leaves_no_temporary_files() {
    let env = TestEnv::new();
    let dotfiles = env.root.join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::write(dotfiles.join("settings.json"), "{\"a\": 1}\n").unwrap();
    let claude_dir = env.home.join(".claude");
    std::os::unix::fs::symlink(
        dotfiles.join("settings.json"),
        claude_dir.join("settings.json"),
    )
    .unwrap();
    let settings = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        clean_env(&mut cmd, &env.home);
        Run(cmd.arg("settings").args(args).output().unwrap())
    };
    let file = claude_dir.join("settings.json");
    let run = settings(&[
        "add",
        "--file",
        file.to_str().unwrap(),
        "--program",
        "/opt/b/startup-hygiene",
    ]);
    run.assert_ok();
    assert!(file.symlink_metadata().unwrap().file_type().is_symlink());
    let v = read_json(&dotfiles.join("settings.json"));
    assert_eq!(v["a"], json!(1));
    assert_eq!(
        our_entries(&v)[0]["command"],
        json!("/opt/b/startup-hygiene")
    );
    let mut names: Vec<String> = std::fs::read_dir(&dotfiles)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["settings.json", "settings.json.startup-hygiene.bak"]
    );

    // Usage errors exit 2; a file it cannot parse exits 1.
    let run = settings(&["add"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    std::fs::write(dotfiles.join("settings.json"), "nope").unwrap();
    let run = settings(&["remove", "--file", file.to_str().unwrap()]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("not valid JSON"), "{}", run.stderr());
}

/// Without --binary, install.sh builds with cargo from the checkout it is in, wherever it is
/// run from, into CARGO_TARGET_DIR or the checkout's target/. Here `cargo` is a stand-in that
/// notes its arguments and "builds" by copying the test's binary; install.sh is a copy in a
/// checkout of its own, run by a relative path.
fn without_binary_it_builds_with_cargo_from_its_own_checkout(sh: Shell) {
    let env = TestEnv::new();
    let checkout = env.root.join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::copy(repo().join("install.sh"), checkout.join("install.sh")).unwrap();
    std::fs::write(checkout.join("Cargo.toml"), "").unwrap();
    let tools = env.root.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let log = env.root.join("cargo-args");
    std::fs::write(
        tools.join("cargo"),
        r#"#!/bin/sh
printf '%s\n' "$@" >"$FAKE_CARGO_LOG"
manifest=
for a do [ "$prev" = --manifest-path ] && manifest=$a; prev=$a; done
out=${CARGO_TARGET_DIR:-${manifest%/*}/target}/release
mkdir -p "$out" && cp "$FAKE_CARGO_BUILDS" "$out/startup-hygiene"
"#,
    )
    .unwrap();
    std::fs::set_permissions(tools.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = std::ffi::OsString::from(&tools);
    path.push(":");
    path.push(path_without_an_installed_hook());

    for target_dir in [None, Some(env.root.join("elsewhere"))] {
        let mut cmd = Command::new(sh.path());
        clean_env(&mut cmd, &env.home);
        cmd.arg("../checkout/install.sh")
            .arg("--no-register")
            .current_dir(&env.project)
            .env("PATH", &path)
            .env("PREFIX", env.root.join("prefix"))
            .env("FAKE_CARGO_LOG", &log)
            .env("FAKE_CARGO_BUILDS", bin())
            .env_remove("CARGO_TARGET_DIR");
        if let Some(dir) = &target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        let run = Run(cmd.output().unwrap());
        run.assert_ok();
        let manifest = checkout.canonicalize().unwrap().join("Cargo.toml");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!(
                "build\n--release\n--locked\n--manifest-path\n{}\n",
                manifest.display()
            )
        );
        let built = target_dir
            .unwrap_or(checkout.join("target"))
            .join("release/startup-hygiene");
        assert!(built.exists(), "{built:?}");
        assert_eq!(
            std::fs::read(installed(&env)).unwrap(),
            std::fs::read(built).unwrap()
        );
        assert!(
            run.stdout().contains("Not registered (--no-register)"),
            "{}",
            run.stdout()
        );
    }
}

/// The plugin's hook (hooks/hooks.json runs `sh hooks/run.sh`): the binary built in the
/// plugin's folder, with the hook's arguments; else one on PATH; else a JSON message for the
/// user saying how to build it, exit 0. The folder's name has a quote and a backslash, which
/// the message escapes.
fn the_plugin_hook_runs_the_built_binary_or_says_how_to_build_it(sh: Shell) {
    let env = TestEnv::new();
    let root = env.root.join("plugin \"x\\y\"");
    std::fs::create_dir_all(root.join("hooks")).unwrap();
    std::fs::copy(repo().join("hooks/run.sh"), root.join("hooks/run.sh")).unwrap();
    let hook = |plugin_root: Option<&Path>, path: &std::ffi::OsStr| {
        let mut cmd = Command::new(sh.path());
        clean_env(&mut cmd, &env.home);
        cmd.arg(root.join("hooks/run.sh"))
            .arg("--version")
            .current_dir(&env.project)
            .env("PATH", path)
            .stdin(std::process::Stdio::null());
        if let Some(r) = plugin_root {
            cmd.env("CLAUDE_PLUGIN_ROOT", r);
        }
        Run(cmd.output().unwrap())
    };
    let path = path_without_an_installed_hook();
    // Not built, nothing on PATH: with CLAUDE_PLUGIN_ROOT, and without it (found from $0).
    for plugin_root in [Some(root.as_path()), None] {
        let run = hook(plugin_root, &path);
        run.assert_ok();
        let v: Value = serde_json::from_str(&run.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()));
        let msg = v["systemMessage"].as_str().unwrap();
        assert!(msg.contains("not built yet"), "{msg}");
        // Found from $0, it is the physical path (pwd after cd, with PWD not inherited).
        let shown = plugin_root.map_or_else(|| root.canonicalize().unwrap(), Path::to_path_buf);
        assert!(
            msg.contains(&format!(
                "--manifest-path \"{}/Cargo.toml\"",
                shown.display()
            )),
            "{msg}"
        );
    }
    let version = Run(Command::new(bin()).arg("--version").output().unwrap());
    version.assert_ok();
    // On PATH.
    let on_path = env.root.join("on-path");
    std::fs::create_dir_all(&on_path).unwrap();
    std::fs::copy(bin(), on_path.join("startup-hygiene")).unwrap();
    let mut with_it = std::ffi::OsString::from(&on_path);
    with_it.push(":");
    with_it.push(&path);
    let run = hook(Some(&root), &with_it);
    run.assert_ok();
    assert_eq!(run.stdout(), version.stdout());
    // Built in the plugin's folder.
    let built = root.join("target/release");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::copy(bin(), built.join("startup-hygiene")).unwrap();
    for plugin_root in [Some(root.as_path()), None] {
        let run = hook(plugin_root, &path);
        run.assert_ok();
        assert_eq!(run.stdout(), version.stdout());
    }
    // hooks.json runs it with `sh`, not bash: a POSIX sh is what a Mac and Linux both have.
    let hooks: Value =
        serde_json::from_slice(&std::fs::read(repo().join("hooks/hooks.json")).unwrap()).unwrap();
    assert_eq!(
        hooks["hooks"]["SessionStart"][0]["hooks"][0]["command"],
        json!("sh \"${CLAUDE_PLUGIN_ROOT}/hooks/run.sh\"")
    );
}

/// What runs on Linux but not on a Mac (bash 3.2 as /bin/sh; BSD tools), or not under a
/// POSIX sh: no line of install.sh or hooks/run.sh but comments may have any of these. The
/// dash runs above catch most bash-isms; this catches them where dash is missing, and the
/// GNU-only flags that run here all the same.
#[test]
fn the_scripts_use_no_bash_or_gnu_only_features() {
    const FORBIDDEN: &[(&str, &str)] = &[
        // bash (and bash 4+) only.
        ("[[", "[[ ]]: use [ ] or case"),
        ("declare ", "declare"),
        ("typeset ", "typeset"),
        ("local ", "local: not POSIX"),
        ("mapfile", "mapfile (bash 4)"),
        ("readarray", "readarray (bash 4)"),
        ("|&", "|& (bash 4)"),
        ("&>", "&>: use >file 2>&1"),
        (",,}", "${var,,} (bash 4)"),
        ("^^}", "${var^^} (bash 4)"),
        ("=(", "an array"),
        ("+=", "+= (bash)"),
        ("${@:", "${@:n} (bash)"),
        ("${!", "${!var} (bash)"),
        ("BASH_", "a BASH_ variable"),
        (
            "pipefail",
            "set -o pipefail: not in dash before 0.5.13, nor in older POSIX",
        ),
        ("<<<", "a here-string"),
        ("<(", "process substitution"),
        (">(", "process substitution"),
        ("$'", "$'...' quoting"),
        ("function ", "function NAME: use NAME()"),
        ("source ", "source: use ."),
        ("shopt", "shopt"),
        ("echo -", "echo with options: use printf"),
        // GNU-only (or BSD-only) flags of tools.
        (
            "readlink -f",
            "readlink -f (GNU; macOS 12 and earlier lack it)",
        ),
        ("realpath", "realpath (missing before macOS 13)"),
        ("sed -i", "sed -i (GNU and BSD differ)"),
        ("sed -r", "sed -r (GNU): use sed -E"),
        ("stat -c", "stat -c (GNU)"),
        ("stat -f", "stat -f (BSD)"),
        ("cp --", "cp with long options (GNU)"),
        ("install -D", "install -D (GNU)"),
        ("--tmpdir", "mktemp --tmpdir (GNU)"),
        ("mktemp -t", "mktemp -t (GNU and BSD differ)"),
        ("grep -P", "grep -P (GNU)"),
        ("date -d", "date -d (GNU)"),
        ("sort -V", "sort -V (GNU)"),
        ("xargs -r", "xargs -r (GNU)"),
        ("-printf", "find -printf (GNU)"),
    ];
    for script in ["install.sh", "hooks/run.sh"] {
        let text = std::fs::read_to_string(repo().join(script)).unwrap();
        assert_eq!(text.lines().next(), Some("#!/bin/sh"), "{script}");
        let mut found = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for (needle, why) in FORBIDDEN {
                if line.contains(needle) {
                    found.push(format!("{script}:{}: {why}: {line}", n + 1));
                }
            }
        }
        assert!(found.is_empty(), "not portable:\n{}", found.join("\n"));
    }
}

fn which(tool: &str) -> PathBuf {
    find_on_path(tool).unwrap_or_else(|| panic!("{tool} is not on PATH"))
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
