//! One integration-test crate (one link of the binary's library, one test binary). The
//! modules gated to Linux run the built `startup-hygiene` against real files and real
//! processes (`/proc`, pidfds, PID namespaces); `platforms` runs the decisions against the
//! in-memory table with Linux's and macOS's facts, on any target.

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
mod cli;
#[cfg(target_os = "linux")]
mod deadline;
#[cfg(target_os = "linux")]
mod e2e;
#[cfg(target_os = "linux")]
mod faults;
#[cfg(target_os = "linux")]
mod install;
#[cfg(target_os = "linux")]
mod orphans;
mod platforms;
#[cfg(target_os = "linux")]
mod properties;
#[cfg(target_os = "linux")]
mod reaper;
#[cfg(target_os = "linux")]
mod security;
#[cfg(target_os = "linux")]
mod settings;
#[cfg(target_os = "linux")]
mod unicode;
