//! Command-line flags, parsed by hand in two passes: `parse` records what was given (or a
//! usage error naming the bad flag), and `Options` is what the run uses.

use std::time::Duration;

use camino::Utf8PathBuf;

use crate::defaults;
use crate::report::Format;

/// How the process ends. A hook must not fail the session, so only a usage error is non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    /// `settings` only: the settings file could not be read, parsed or written.
    Failure,
    Usage,
}

impl From<ExitCode> for i32 {
    fn from(code: ExitCode) -> i32 {
        match code {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub project: Option<Utf8PathBuf>,
    pub config: Option<Utf8PathBuf>,
    pub format: Format,
    pub dry_run: bool,
    /// `None`: the default owner names.
    pub owners: Option<Vec<String>>,
    pub matches: Vec<String>,
    /// `--ignore`: never report or stop these command lines.
    pub ignores: Vec<String>,
    pub kill: bool,
    pub deadline: Duration,
    /// The process table to read: `/proc`, or a fixture tree in tests (no flag sets it).
    pub proc_root: Utf8PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            project: None,
            config: None,
            format: Format::Text,
            dry_run: false,
            owners: None,
            matches: Vec::new(),
            ignores: Vec::new(),
            kill: false,
            deadline: defaults::DEADLINE,
            proc_root: Utf8PathBuf::from("/proc"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
    Version,
}

pub const USAGE: &str = "\
startup-hygiene: cleans up after Claude Code sessions that have ended.

Run as a SessionStart hook, it reads the hook's JSON on stdin, removes stale per-PID state
files of the project, reports MCP server processes that no live session owns, and prints a
short report for the session's context (nothing when there is nothing to report).

Usage: startup-hygiene [OPTIONS]
       startup-hygiene settings add|remove --file FILE ...   (see: settings --help)

Options:
  --project DIR      project to clean (default: stdin's \"cwd\", $CLAUDE_PROJECT_DIR, then .)
  --config FILE      your config (default: ${XDG_CONFIG_HOME:-~/.config}/startup-hygiene/
                     config.json); DIR/.claude/startup-hygiene.json is read too, confined
  --format FORMAT    text (default), hook-json (Claude Code's JSON hook output) or json
  --dry-run          report what would be removed; remove nothing
  --owner NAME       process name that owns sessions; repeatable; replaces claude, claude.exe
  --match GLOB       also report orphans whose command line matches GLOB; repeatable
  --ignore GLOB      never report or stop a process whose command line matches GLOB; repeatable
  --kill             stop the orphans found: SIGTERM, then SIGKILL after 500 ms
  --deadline-ms N    finish within N milliseconds (default 2000)
  -h, --help         print this help
  -V, --version      print the version

Exit status: 0, whatever was found; 2 for a usage error.
";

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<Command, String> {
    let mut opts = Options::default();
    let mut owners: Vec<String> = Vec::new();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {:?} is not valid UTF-8", a))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .ok_or_else(|| format!("{name} needs a value"))?
                    .into_string()
                    .map_err(|a| format!("the value of {name}, {a:?}, is not valid UTF-8")),
            }
        };
        let no_value = |name: &str| match inline {
            Some(_) => Err(format!("{name} takes no value")),
            None => Ok(()),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--project" => opts.project = Some(non_empty("--project", value("--project")?)?.into()),
            "--config" => opts.config = Some(non_empty("--config", value("--config")?)?.into()),
            "--format" => {
                opts.format = match value("--format")?.as_str() {
                    "text" => Format::Text,
                    "hook-json" => Format::HookJson,
                    "json" => Format::Json,
                    other => {
                        return Err(format!(
                            "--format {other:?} is not one of text, hook-json, json"
                        ));
                    }
                }
            }
            "--dry-run" => {
                no_value("--dry-run")?;
                opts.dry_run = true
            }
            "--kill" => {
                no_value("--kill")?;
                opts.kill = true
            }
            "--owner" => owners.push(non_empty("--owner", value("--owner")?)?),
            "--match" => opts.matches.push(non_empty("--match", value("--match")?)?),
            "--ignore" => opts
                .ignores
                .push(non_empty("--ignore", value("--ignore")?)?),
            "--deadline-ms" => {
                let v = value("--deadline-ms")?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| (1..=defaults::DEADLINE_MAX_MS).contains(ms))
                    .ok_or_else(|| {
                        format!(
                            "--deadline-ms {v:?} is not a whole number from 1 to {}",
                            defaults::DEADLINE_MAX_MS
                        )
                    })?;
                opts.deadline = Duration::from_millis(ms);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg:?}")),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if !owners.is_empty() {
        opts.owners = Some(owners);
    }
    Ok(Command::Run(opts))
}

fn non_empty(name: &str, v: String) -> Result<String, String> {
    if v.is_empty() {
        Err(format!("{name} needs a non-empty value"))
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|a| a.into()))
    }

    #[test]
    fn flags() {
        let Command::Run(o) = run(&[
            "--project",
            "/p",
            "--format=json",
            "--dry-run",
            "--owner",
            "a",
            "--owner=b",
            "--match",
            "*x*",
            "--ignore=*y*",
            "--deadline-ms",
            "50",
            "--kill",
            "--config",
            "c.json",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.project.as_deref(), Some("/p".into()));
        assert_eq!(o.format, Format::Json);
        assert!(o.dry_run && o.kill);
        assert_eq!(o.owners, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(o.matches, vec!["*x*"]);
        assert_eq!(o.ignores, vec!["*y*"]);
        assert_eq!(o.deadline, Duration::from_millis(50));
        assert_eq!(run(&[]).unwrap(), Command::Run(Options::default()));
        assert_eq!(run(&["--help"]).unwrap(), Command::Help);
        assert_eq!(run(&["-V"]).unwrap(), Command::Version);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        for (args, needle) in [
            (&["--bogus"][..], "--bogus"),
            (&["--format", "xml"], "xml"),
            (&["--format"], "--format needs a value"),
            (&["--deadline-ms", "0"], "--deadline-ms"),
            (&["--deadline-ms", "abc"], "abc"),
            (&["--dry-run=yes"], "--dry-run takes no value"),
            (&["--owner", ""], "--owner"),
            (&["stray"], "stray"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
