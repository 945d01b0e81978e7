//! One integration-test crate (one link of the binary's library, one test binary): each
//! module runs the built `startup-hygiene` against real files and real processes.

mod support;

mod cli;
mod deadline;
mod e2e;
mod faults;
mod install;
mod orphans;
mod properties;
mod reaper;
mod security;
mod settings;
mod unicode;
