//! startup-hygiene: a Claude Code SessionStart hook that removes stale per-PID state files
//! and reports MCP server processes that dead sessions left running. See ARCHITECTURE.md.

pub mod arena;
pub mod argv;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod defaults;
pub mod glob;
pub mod input;
pub mod kill;
pub mod orphans;
pub mod os;
pub mod process_table;
pub mod reaper;
pub mod registry;
pub mod report;
pub mod run;
pub mod sanitize;
pub mod settings;
