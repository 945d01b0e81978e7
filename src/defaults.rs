//! One place for the built-in rules, names and limits. Everything else refers here.

use std::time::Duration;

/// Process names that own sessions and their MCP servers (`--owner` replaces them).
pub const OWNER_NAMES: &[&str] = &["claude", "claude.exe"];

/// The built-in per-PID state file rule, relative to the project.
pub const STATE_DIR: &str = ".orchestrator-state";
pub const STATE_NAME: &str = "active-session-{pid}";
/// The placeholder a state-file name pattern carries exactly once.
pub const PID_PLACEHOLDER: &str = "{pid}";

/// The seed's orchestrator server, also under installed plugin paths such as
/// `…/cache/<market>/orchestrator/<version>/dist/server.js`.
pub const ORCHESTRATOR_LABEL: &str = "orchestrator";
pub const ORCHESTRATOR_GLOB: &str = "*orchestrator/*dist/server.js*";
/// The label of the rule that recognises servers by Claude Code's environment markers.
pub const ENV_RULE_LABEL: &str = "claude-code-env";
/// What `matched_by` says of a process listed because an orphan is above it.
pub const SUBTREE_LABEL: &str = "below-an-orphan";
/// At most this many processes are added from the orphans' subtrees in one run.
pub const MAX_SUBTREE: usize = 10_000;

/// Where the project's config lives, relative to the project.
pub const PROJECT_CONFIG: &str = ".claude/startup-hygiene.json";
/// Where the user's config lives, relative to `${XDG_CONFIG_HOME:-~/.config}`.
pub const USER_CONFIG: &str = "startup-hygiene/config.json";
/// The same, as the help and warnings spell it.
pub const USER_CONFIG_SHOWN: &str = "~/.config/startup-hygiene/config.json";
pub const CONFIG_LIMIT: usize = 1 << 20;

/// The SessionStart input is read up to this size, waiting at most this long.
pub const STDIN_LIMIT: usize = 1 << 20;
pub const STDIN_WAIT: Duration = Duration::from_secs(1);

/// The whole run, unless `--deadline-ms` says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(2);
pub const DEADLINE_MAX_MS: u64 = 600_000;
/// Without a watchdog thread, a run that has not reported this long after its deadline
/// (stuck in a kernel wait, or still rendering a huge report) is ended by SIGKILL.
pub const DEADLINE_BACKSTOP: Duration = Duration::from_secs(1);

/// A live non-owner process that started this long after a state file was last written
/// holds a reused PID. The slack absorbs clock granularity and slow writers.
pub const REUSE_SLACK_SECS: f64 = 5.0;

/// Largest PID the kernel can hand out (`PID_MAX_LIMIT` on 64-bit).
pub const PID_MAX_LIMIT: u32 = 4_194_304;
/// A `/proc` file is read up to this size; markers beyond it are not seen.
pub const PROC_READ_CAP: usize = 1 << 20;
/// Safety cap on an ancestor walk, against loops in a changing process table.
pub const MAX_ANCESTRY_HOPS: usize = 4096;
/// Claude Code's session registry entries read at most.
pub const MAX_REGISTRY_FILES: usize = 4096;

/// The text block stays under this many characters, whatever it reports.
pub const BLOCK_CAP: usize = 4000;
/// A command line or path quoted in the text block.
pub const TEXT_FIELD_CAP: usize = 160;
/// A command line or path in the JSON report.
pub const JSON_FIELD_CAP: usize = 1024;
/// Warnings shown in the text block; the JSON report has them all.
pub const TEXT_WARNINGS: usize = 3;

/// `--kill`: time between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(500);
