//! install.sh and `startup-hygiene settings`, run for real against a temporary HOME, PREFIX
//! and settings files: one entry of ours, everything else kept byte for byte, a backup of
//! the original, and a file that is not JSON left alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// `bash install.sh` with `env`'s HOME (and `CLAUDE_CONFIG_DIR=<home>/.claude`), PREFIX under
/// `env.root`, in `env`'s project.
pub fn install_sh(env: &TestEnv) -> Command {
    // By its path: a test may give install.sh a PATH without bash.
    let mut cmd = Command::new(which("bash"));
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"));
    clean_env(&mut cmd, &env.home);
    cmd.env("PREFIX", env.root.join("prefix"))
        .current_dir(&env.project);
    cmd
}

/// install.sh with the test's binary (no cargo build).
fn install(env: &TestEnv, args: &[&str]) -> Run {
    Run(install_sh(env)
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

#[test]
fn fresh_install_registers_the_hook_and_shows_its_first_report() {
    let env = TestEnv::new();
    let stale = env.pid_file(dead_pid(), std::time::Duration::from_secs(3600));
    let run = install(&env, &[]);
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

#[test]
fn second_install_changes_nothing() {
    let env = TestEnv::new();
    let file = user_settings(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, EXISTING).unwrap();
    (install(&env, &[])).assert_ok();
    let first = std::fs::read(&file).unwrap();
    let backup = std::fs::read(backup_of(&file)).unwrap();

    let again = install(&env, &[]);
    again.assert_ok();
    assert!(again.stdout().contains("unchanged"), "{}", again.stdout());
    assert_eq!(std::fs::read(&file).unwrap(), first);
    assert_eq!(std::fs::read(backup_of(&file)).unwrap(), backup);
    assert_eq!(our_entries(&read_json(&file)).len(), 1);
}

#[test]
fn install_keeps_the_rest_and_uninstall_gives_it_back_exactly() {
    let env = TestEnv::new();
    let file = user_settings(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, EXISTING).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    (install(&env, &["--format", "hook-json", "--timeout", "7"])).assert_ok();
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
    (install(&env, &[])).assert_ok();
    let entries = our_entries(&read_json(&file));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0]["command"],
        json!(installed(&env).to_str().unwrap())
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), EXISTING);

    let run = Run(install_sh(&env).arg("--uninstall").output().unwrap());
    run.assert_ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), EXISTING);
    assert!(installed(&env).exists(), "the binary stays");
    // Nothing of ours left: a second uninstall changes nothing.
    let again = Run(install_sh(&env).arg("--uninstall").output().unwrap());
    again.assert_ok();
    assert!(again.stdout().contains("unchanged"), "{}", again.stdout());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), EXISTING);
}

#[test]
fn uninstall_after_install_into_no_file_leaves_an_empty_object() {
    let env = TestEnv::new();
    (install(&env, &[])).assert_ok();
    (Run(install_sh(&env).arg("--uninstall").output().unwrap())).assert_ok();
    assert_eq!(
        std::fs::read_to_string(user_settings(&env)).unwrap(),
        "{}\n"
    );
}

#[test]
fn settings_that_are_not_json_are_left_alone() {
    let env = TestEnv::new();
    let file = user_settings(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let uninstall = || Run(install_sh(&env).arg("--uninstall").output().unwrap());
    for (bad, why, uninstall_fails) in [
        ("{\"model\": \"opus\",}\n", "not valid JSON", true),
        ("[1, 2]\n", "not a JSON object", true),
        // Nothing of ours can be in it, so there is nothing to uninstall.
        ("{\"hooks\": []}\n", "\"hooks\" is not a JSON object", false),
    ] {
        std::fs::write(&file, bad).unwrap();
        let mut runs = vec![install(&env, &[])];
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

#[test]
fn options_choose_the_settings_file() {
    // --project DIR: DIR/.claude/settings.json, and the first report is on DIR.
    let env = TestEnv::new();
    let other = env.root.join("other-project");
    std::fs::create_dir_all(&other).unwrap();
    let run = install(&env, &["--project", other.to_str().unwrap()]);
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
    (install(&env, &["--settings", file.to_str().unwrap()])).assert_ok();
    assert_eq!(our_entries(&read_json(&file)).len(), 1);
    assert!(!user_settings(&env).exists());

    // CLAUDE_CONFIG_DIR.
    let config = env.root.join("config");
    let run = Run(install_sh(&env)
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
    (install(&env, &["--no-register"])).assert_ok();
    assert!(installed(&env).exists());
    assert!(!user_settings(&env).exists());
}

#[test]
fn hook_args_are_registered_and_checked() {
    let env = TestEnv::new();
    (install(
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
    let run = install(&env, &["--", "--frobnicate"]);
    assert_ne!(run.code(), 0);
    assert!(run.stderr().contains("--frobnicate"), "{}", run.stderr());
    assert_eq!(our_entries(&read_json(&user_settings(&env))), entries);
}

#[test]
fn help_and_usage_errors() {
    let env = TestEnv::new();
    let help = Run(install_sh(&env).arg("--help").output().unwrap());
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
        let run = Run(install_sh(&env).args(args).output().unwrap());
        assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
        assert!(run.stderr().contains(needle), "{args:?}: {}", run.stderr());
    }
    assert!(!user_settings(&env).exists());
}

#[test]
fn missing_cargo_is_explained() {
    let env = TestEnv::new();
    let empty = env.root.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let run = Run(install_sh(&env).env("PATH", &empty).output().unwrap());
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

fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH"))
}
