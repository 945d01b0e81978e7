//! The rules a run applies: the built-in ones, the user's config and the project's.
//!
//! The user's config is `--config FILE`, else `${XDG_CONFIG_HOME:-~/.config}/startup-hygiene/config.json`.
//! The project's, `<project>/.claude/startup-hygiene.json`, comes with the repository, so it
//! is not trusted: its state-file folders must lie inside the project, and its
//! `orphans.match` rules are not applied at all — a repository the user merely opened must
//! never make the hook report or stop a process that the user's own config and flags would
//! not. A config that is not valid leaves the other rules in force and becomes a warning.

use std::os::fd::AsFd;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

use crate::defaults;
use crate::os::sys;

/// Where a per-PID state file lives and how it is named (`<prefix><pid><suffix>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRule {
    pub dir: RuleDir,
    pub prefix: String,
    pub suffix: String,
    pub kind: RuleKind,
}

/// How a rule's files are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// By the PID in the name and the file's last write (`reaper::judge`).
    PidNamed,
    /// Claude Code's own registry (`sessions/<pid>.json` and its `<pid>.<hex>.key`): by
    /// the `procStart` the file holds (`reaper::judge_session`), no guess from times.
    ClaudeSessions,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleDir {
    /// Folders below the project, each opened without following a symlink.
    InProject(Vec<String>),
    /// A folder the user named in their own config; only its last component must not be a
    /// symlink.
    Anywhere(Utf8PathBuf),
}

impl StateRule {
    /// The PID a file name carries under this rule, if it is one of this rule's names.
    pub fn pid_of(&self, name: &[u8]) -> Option<i32> {
        let digits = name
            .strip_prefix(self.prefix.as_bytes())?
            .strip_suffix(self.suffix.as_bytes())?;
        crate::os::procfs::parse_pid(digits)
    }

    pub fn dir_path(&self, project: &Utf8Path) -> Utf8PathBuf {
        match &self.dir {
            RuleDir::InProject(parts) => {
                let mut p = project.to_path_buf();
                p.extend(parts);
                p
            }
            RuleDir::Anywhere(p) => p.clone(),
        }
    }
}

/// A command-line rule for orphan detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchRule {
    pub label: String,
    pub glob: String,
}

/// Processes the user never wants reported or stopped (a sidecar several live sessions
/// share on purpose), by command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoreRule {
    pub label: String,
    pub glob: String,
    /// From a project's config: only processes of that project (their `CLAUDE_PROJECT_DIR`),
    /// so a repository cannot hide another project's orphans. `None`: the user's own rule.
    pub project: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub state_rules: Vec<StateRule>,
    pub match_rules: Vec<MatchRule>,
    pub ignore_rules: Vec<IgnoreRule>,
    /// What a valid config asked for and did not get (a project's match rules).
    pub notes: Vec<String>,
}

/// Whose config it is: a project's config is confined to the project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Project,
    User,
}

impl Config {
    pub fn builtin() -> Config {
        let (prefix, suffix) = split_name(defaults::STATE_NAME).unwrap_or_default();
        Config {
            state_rules: vec![StateRule {
                dir: RuleDir::InProject(vec![defaults::STATE_DIR.to_string()]),
                prefix,
                suffix,
                kind: RuleKind::PidNamed,
            }],
            match_rules: vec![MatchRule {
                label: defaults::ORCHESTRATOR_LABEL.to_string(),
                glob: defaults::ORCHESTRATOR_GLOB.to_string(),
            }],
            ignore_rules: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// What the environment tells config lookup.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub home: Option<String>,
    /// `CLAUDE_CONFIG_DIR`: Claude Code's folder, else `~/.claude`.
    pub claude_config_dir: Option<String>,
    pub xdg_config_home: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let get = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Env {
            home: get("HOME"),
            claude_config_dir: get("CLAUDE_CONFIG_DIR"),
            xdg_config_home: get("XDG_CONFIG_HOME"),
        }
    }

    /// Claude Code's session registry, `${CLAUDE_CONFIG_DIR:-~/.claude}/sessions`.
    pub fn sessions_dir(&self) -> Option<Utf8PathBuf> {
        let base = match (&self.claude_config_dir, &self.home) {
            (Some(c), _) => Utf8PathBuf::from(c),
            (None, Some(h)) => Utf8Path::new(h).join(".claude"),
            (None, None) => return None,
        };
        Some(base.join("sessions"))
    }
}

/// The built-in rules, the user's (`explicit`, else the user's config file) and the
/// project's. Problems become warnings.
pub fn load(
    explicit: Option<&Utf8Path>,
    project: Option<&Utf8Path>,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Config {
    let mut config = Config::builtin();
    // Claude Code's own per-PID files: the registry, judged by the start time it records.
    if let Some(dir) = env.sessions_dir().filter(|d| d.is_absolute()) {
        config.state_rules.push(StateRule {
            dir: RuleDir::Anywhere(dir),
            prefix: String::new(),
            suffix: ".json".into(),
            kind: RuleKind::ClaudeSessions,
        });
    }
    let user = match explicit {
        Some(path) => Some((path.to_path_buf(), true)),
        None => env
            .xdg_config_home
            .clone()
            .map(Utf8PathBuf::from)
            .or_else(|| env.home.as_ref().map(|h| Utf8Path::new(h).join(".config")))
            .map(|base| (base.join(defaults::USER_CONFIG), false)),
    };
    let project_file = project.map(|p| (p.join(defaults::PROJECT_CONFIG), false));
    for (path, must_exist, origin) in user
        .map(|(p, m)| (p, m, Origin::User))
        .into_iter()
        .chain(project_file.map(|(p, m)| (p, m, Origin::Project)))
    {
        let rules = match read_config_file(&path) {
            Ok(None) if !must_exist => continue,
            Ok(None) => Err("was not found".to_string()),
            Ok(Some(bytes)) => parse(&bytes, origin, env),
            Err(why) => Err(why),
        };
        match rules {
            Ok(extra) => {
                config.state_rules.extend(extra.state_rules);
                config.match_rules.extend(extra.match_rules);
                let own = project.filter(|_| origin == Origin::Project);
                config
                    .ignore_rules
                    .extend(extra.ignore_rules.into_iter().map(|mut r| {
                        if r.project.is_some() {
                            r.project = own.map(|p| p.to_string());
                        }
                        r
                    }));
                warnings.extend(extra.notes.iter().map(|n| format!("config {path}: {n}")));
            }
            Err(why) => warnings.push(format!("config {path}: {why}; its rules are not used")),
        }
    }
    config
}

/// `Ok(None)` when there is no such file. Never blocks on a FIFO and never reads more
/// than the limit.
fn read_config_file(path: &Utf8Path) -> Result<Option<Vec<u8>>, String> {
    let c = sys::cstring(path.as_str().as_bytes()).map_err(|e| e.to_string())?;
    let fd = match sys::open_read_at(None, &c, true) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let st = sys::fstat(fd.as_fd()).map_err(|e| e.to_string())?;
    if !sys::is_regular(&st) {
        return Err("not a regular file".to_string());
    }
    let mut buf = Vec::new();
    sys::read_all(fd.as_fd(), &mut buf, defaults::CONFIG_LIMIT + 1)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() > defaults::CONFIG_LIMIT {
        return Err("larger than 1 MiB".to_string());
    }
    Ok(Some(buf))
}

/// Parses one config file's rules (without the built-in ones).
pub fn parse(bytes: &[u8], origin: Origin, env: &Env) -> Result<Config, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON ({e})"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let mut config = Config {
        state_rules: Vec::new(),
        match_rules: Vec::new(),
        ignore_rules: Vec::new(),
        notes: Vec::new(),
    };
    if let Some(rules) = obj.get("state_files") {
        let rules = rules.as_array().ok_or("state_files is not a list")?;
        for (i, rule) in rules.iter().enumerate() {
            let at = |what: &str| format!("state_files[{i}]: {what}");
            let dir = rule
                .get("dir")
                .and_then(Value::as_str)
                .ok_or_else(|| at("dir is missing or not a string"))?;
            let name = rule
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| at("name is missing or not a string"))?;
            let (prefix, suffix) = split_name(name).ok_or_else(|| {
                at("name must hold {pid} exactly once and no '/' (like \"active-session-{pid}\")")
            })?;
            let dir = rule_dir(dir, origin, env).map_err(|w| at(&w))?;
            config.state_rules.push(StateRule {
                dir,
                prefix,
                suffix,
                kind: RuleKind::PidNamed,
            });
        }
    }
    if let Some(orphans) = obj.get("orphans") {
        let orphans = orphans.as_object().ok_or("orphans is not an object")?;
        for (glob, label) in cmdline_rules(orphans, "match")? {
            config.match_rules.push(MatchRule { label, glob });
        }
        for (glob, label) in cmdline_rules(orphans, "ignore")? {
            config.ignore_rules.push(IgnoreRule {
                label,
                glob,
                // Made the project's own by `load`; an empty one matches no process.
                project: (origin == Origin::Project).then(String::new),
            });
        }
    }
    if origin == Origin::Project && !config.match_rules.is_empty() {
        config.notes.push(format!(
            "orphans.match is not applied from a project's config ({} ignored): a repository \
             cannot choose which processes are reported or stopped; put the rules in your \
             own config ({}) or pass --match",
            match config.match_rules.len() {
                1 => "1 rule".to_string(),
                n => format!("{n} rules"),
            },
            defaults::USER_CONFIG_SHOWN
        ));
        config.match_rules.clear();
    }
    Ok(config)
}

/// The `{"label", "cmdline"}` rules of `orphans.<key>`: (glob, label).
fn cmdline_rules(
    orphans: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Vec<(String, String)>, String> {
    let Some(rules) = orphans.get(key) else {
        return Ok(Vec::new());
    };
    let rules = rules
        .as_array()
        .ok_or_else(|| format!("orphans.{key} is not a list"))?;
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let glob = rule
            .get("cmdline")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
            .ok_or_else(|| format!("orphans.{key}[{i}]: cmdline is missing or empty"))?;
        let label = match rule.get("label") {
            None => glob,
            Some(l) => l
                .as_str()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| format!("orphans.{key}[{i}]: label is not a string"))?,
        };
        out.push((glob.to_string(), label.to_string()));
    }
    Ok(out)
}

fn split_name(name: &str) -> Option<(String, String)> {
    let (prefix, suffix) = name.split_once(defaults::PID_PLACEHOLDER)?;
    if suffix.contains(defaults::PID_PLACEHOLDER) || name.contains('/') || name.contains('\0') {
        return None;
    }
    Some((prefix.to_string(), suffix.to_string()))
}

fn rule_dir(dir: &str, origin: Origin, env: &Env) -> Result<RuleDir, String> {
    if dir.contains('\0') {
        return Err("dir holds a NUL byte".into());
    }
    let home_relative = dir == "~" || dir.starts_with("~/");
    match origin {
        Origin::User if home_relative => {
            let home = env
                .home
                .as_deref()
                .ok_or("dir starts with ~ but HOME is not set")?;
            Ok(RuleDir::Anywhere(
                Utf8Path::new(home).join(dir.trim_start_matches('~').trim_start_matches('/')),
            ))
        }
        Origin::User if dir.starts_with('/') => Ok(RuleDir::Anywhere(Utf8PathBuf::from(dir))),
        _ => {
            if dir.starts_with('/') || dir.starts_with('~') {
                return Err(format!("dir {dir:?} is not inside the project"));
            }
            let mut parts = Vec::new();
            for part in dir.split('/') {
                match part {
                    "" | "." => {}
                    ".." => return Err(format!("dir {dir:?} is not inside the project")),
                    p => parts.push(p.to_string()),
                }
            }
            if parts.is_empty() {
                return Err("dir names no folder below the project".into());
            }
            Ok(RuleDir::InProject(parts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: Some("/home/u".into()),
            claude_config_dir: None,
            xdg_config_home: None,
        }
    }

    #[test]
    fn reads_rules() {
        let c = parse(
            br#"{"state_files":[{"dir":"run/state","name":"lock-{pid}.json"}],
                 "orphans":{"match":[{"label":"chroma","cmdline":"*chroma-mcp*"},{"cmdline":"*x*"}]},
                 "unknown": 1}"#,
            Origin::Project,
            &env(),
        )
        .unwrap();
        assert_eq!(
            c.state_rules,
            vec![StateRule {
                dir: RuleDir::InProject(vec!["run".into(), "state".into()]),
                prefix: "lock-".into(),
                suffix: ".json".into(),
                kind: RuleKind::PidNamed,
            }]
        );
        // A project's match rules are not applied; the user's are.
        assert!(c.match_rules.is_empty());
        assert!(c.notes[0].contains("2 rules ignored"), "{:?}", c.notes);
        let ignore =
            br#"{"orphans":{"ignore":[{"label":"sidecar","cmdline":"*side*"},{"cmdline":"*y*"}]}}"#;
        let user = parse(ignore, Origin::User, &env()).unwrap();
        assert_eq!(
            user.ignore_rules,
            vec![
                IgnoreRule {
                    label: "sidecar".into(),
                    glob: "*side*".into(),
                    project: None
                },
                IgnoreRule {
                    label: "*y*".into(),
                    glob: "*y*".into(),
                    project: None
                }
            ]
        );
        // A project's ignore rules are kept, confined to its own processes by `load`.
        let project = parse(ignore, Origin::Project, &env()).unwrap();
        assert!(
            project
                .ignore_rules
                .iter()
                .all(|r| r.project.as_deref() == Some(""))
        );
        assert!(project.notes.is_empty());
        assert!(parse(br#"{"orphans":{"ignore":{}}}"#, Origin::User, &env()).is_err());
        assert!(
            parse(
                br#"{"orphans":{"ignore":[{"cmdline":""}]}}"#,
                Origin::User,
                &env()
            )
            .is_err()
        );
        let text = br#"{"orphans":{"match":[{"label":"chroma","cmdline":"*chroma-mcp*"},{"cmdline":"*x*"}]}}"#;
        let c = parse(text, Origin::User, &env()).unwrap();
        assert_eq!(c.match_rules[0].label, "chroma");
        assert_eq!(c.match_rules[1].label, "*x*");
        assert!(c.notes.is_empty());
    }

    #[test]
    fn project_rules_stay_in_the_project() {
        for dir in ["/etc", "~/x", "~", "../x", "a/../../b", "", ".", "~user/x"] {
            let text = format!(r#"{{"state_files":[{{"dir":{dir:?},"name":"p-{{pid}}"}}]}}"#);
            assert!(
                parse(text.as_bytes(), Origin::Project, &env()).is_err(),
                "{dir}"
            );
        }
    }

    #[test]
    fn user_rules_may_name_any_folder() {
        let c = parse(
            br#"{"state_files":[{"dir":"~/.cache/x","name":"{pid}.pid"},{"dir":"/var/run/x","name":"{pid}"}]}"#,
            Origin::User,
            &env(),
        )
        .unwrap();
        assert_eq!(
            c.state_rules[0].dir,
            RuleDir::Anywhere("/home/u/.cache/x".into())
        );
        assert_eq!(c.state_rules[1].dir, RuleDir::Anywhere("/var/run/x".into()));
    }

    #[test]
    fn rejects_bad_shapes() {
        for text in [
            &b"[]"[..],
            b"{",
            b"{\"state_files\": {}}",
            b"{\"state_files\": [{\"dir\": 1, \"name\": \"a-{pid}\"}]}",
            b"{\"state_files\": [{\"dir\": \"d\", \"name\": \"a\"}]}",
            b"{\"state_files\": [{\"dir\": \"d\", \"name\": \"{pid}-{pid}\"}]}",
            b"{\"state_files\": [{\"dir\": \"d\", \"name\": \"x/{pid}\"}]}",
            b"{\"orphans\": {\"match\": [{\"cmdline\": \"\"}]}}",
            b"{\"orphans\": []}",
        ] {
            assert!(
                parse(text, Origin::User, &env()).is_err(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn pid_of_name() {
        let rule = &Config::builtin().state_rules[0];
        assert_eq!(rule.pid_of(b"active-session-123"), Some(123));
        for bad in [
            &b"active-session"[..],
            b"active-session-",
            b"active-session-0",
            b"active-session-01",
            b"xactive-session-1",
            b"active-session-1.bak",
        ] {
            assert_eq!(rule.pid_of(bad), None);
        }
    }
}
