//! A run: read the input, then gather → decide → act, and report what was found when the
//! work is done or the deadline passes, whichever comes first.
//!
//! A `/proc` read can block in the kernel (a process holding its memory lock) where no
//! signal but a fatal one reaches it, so the deadline cannot rely on reads returning. The
//! work runs on the calling thread while a watchdog thread sleeps until the deadline; if the
//! work is not done by then, the watchdog reports what the `Sink` holds. Exactly one of the
//! two reports (an atomic flag decides), and in the binary reporting ends the process, which
//! also ends a thread stuck in the kernel. The watchdog only sleeps: in the usual run it
//! never runs again, so the work stays on one CPU with its caches.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use crate::cli::{self, Command, ExitCode, Options};
use crate::config::{self, Config, IgnoreRule, MatchRule};
use crate::defaults;
use crate::input::{self, HookInput};
use crate::kill;
use crate::orphans;
use crate::os;
use crate::os::sys;
use crate::process_table::{OwnerSet, ProcessTable};
use crate::reaper;
use crate::registry::Registry;
use crate::report::{Report, Sink, group};
use crate::sanitize::sanitize;

/// The program: parse the flags, run, print. Returns the exit status.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| a == "settings") {
        return match crate::settings::parse(args.skip(1)) {
            Ok(req) => {
                sys::ignore_sigpipe();
                crate::settings::main(&req)
            }
            Err(msg) => usage_error(&msg),
        };
    }
    let opts = match cli::parse(args) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            print_quietly(cli::USAGE);
            return ExitCode::Success;
        }
        Ok(Command::Version) => {
            print_quietly(&format!("startup-hygiene {}\n", env!("CARGO_PKG_VERSION")));
            return ExitCode::Success;
        }
        Err(msg) => return usage_error(&msg),
    };
    let format = opts.format;
    let reported_here = execute(
        &opts,
        move |report| {
            let mut warnings = String::new();
            for w in &report.warnings {
                warnings.push_str("startup-hygiene: warning: ");
                warnings.push_str(&sanitize(w, defaults::JSON_FIELD_CAP));
                warnings.push('\n');
            }
            eprint_quietly(&warnings);
            print_quietly(&report.render(format));
            // Ends every thread, including one stuck in a kernel wait. Also called from
            // the deadline's signal handler, so nothing here may need more than that.
            sys::exit_now(ExitCode::Success.into());
        },
        Fallback::Timers,
    );
    if !reported_here {
        // The watchdog is reporting and will end the process; it must not be cut off.
        loop {
            std::thread::park();
        }
    }
    ExitCode::Success
}

fn usage_error(msg: &str) -> ExitCode {
    eprint_quietly(&format!(
        "startup-hygiene: {msg}\nTry 'startup-hygiene --help'.\n"
    ));
    ExitCode::Usage
}

/// Writes to stdout; a closed stdout or a broken pipe is not an error for a hook.
fn print_quietly(text: &str) {
    if !text.is_empty() {
        sys::ignore_sigpipe();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// Writes to stderr, like `print_quietly`. (`eprintln!` panics when stderr is a broken
/// pipe, and the report on stdout would be lost with it.)
fn eprint_quietly(text: &str) {
    if !text.is_empty() {
        sys::ignore_sigpipe();
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// One run, bounded by `opts.deadline`, returning its report: for tests and library use.
/// The work runs on a thread of its own here, so that the caller gets the report at the
/// deadline even if a read blocks that thread for ever.
pub fn run(opts: &Options) -> Report {
    let (tx, rx) = mpsc::sync_channel(1);
    let opts = opts.clone();
    let spawned = std::thread::Builder::new()
        // JSON readers recurse once per nesting level, up to serde_json's limit of 128: a
        // release build needs under 64 KiB for that, a debug build about 300 KiB.
        .stack_size(1024 * 1024)
        .spawn(move || {
            execute(
                &opts,
                move |report| {
                    let _ = tx.send(report);
                },
                Fallback::None,
            );
        });
    match spawned {
        Ok(_) => rx.recv().unwrap_or_default(),
        Err(e) => Report {
            warnings: vec![format!("cannot start the run's thread: {e}")],
            ..Report::default()
        },
    }
}

/// What keeps the deadline when the watchdog thread cannot start (a user at the process
/// limit, say, with hundreds of orphans).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Kernel timers, for the binary (`deadline`): after the deadline the work reports what
    /// is known at its next checkpoint and ends the process; should it be stuck in a kernel
    /// wait that only a fatal signal ends (a hung mount), a second timer sends SIGKILL
    /// `defaults::DEADLINE_BACKSTOP` later. The process is then ended without a report,
    /// but on time.
    Timers,
    /// Nothing: a library caller (a test) must not have its process signalled.
    None,
}

/// Runs once and hands the report to `finish` exactly once: from this thread when the work
/// is done, or at the deadline (then with `cut_short` set). The deadline is armed before
/// anything else, so it covers every path the run touches: stdin, the project, configs,
/// state folders, the registry. Returns whether `finish` was called from this thread.
pub fn execute<F>(opts: &Options, finish: F, fallback: Fallback) -> bool
where
    F: Fn(Report) + Send + Sync + 'static,
{
    let deadline_at = Instant::now() + opts.deadline;
    let sink = Arc::new(Sink::new(Report {
        dry_run: opts.dry_run,
        kill_requested: opts.kill,
        deadline_ms: opts.deadline.as_millis() as u64,
        ..Report::default()
    }));
    let finish = Arc::new(finish);
    let reported = Arc::new(AtomicBool::new(false));
    let at_deadline = {
        let (sink, finish, reported) = (
            Arc::clone(&sink),
            Arc::clone(&finish),
            Arc::clone(&reported),
        );
        // Reports what the sink holds, unless the work already did.
        move || {
            if reported.load(Ordering::SeqCst) {
                return;
            }
            let mut report = sink.snapshot();
            if !reported.swap(true, Ordering::SeqCst) {
                report.cut_short = true;
                finish(report);
            }
        }
    };
    let watchdog = {
        let at_deadline = at_deadline.clone();
        std::thread::Builder::new()
            // It renders a flat report; the default 2 MiB would be mapped for nothing.
            .stack_size(256 * 1024)
            .spawn(move || {
                sleep_until(deadline_at);
                at_deadline();
            })
    };
    if let Err(e) = watchdog {
        let kept = match fallback {
            Fallback::Timers => crate::deadline::arm(opts.deadline, at_deadline),
            Fallback::None => Err(std::io::Error::from(std::io::ErrorKind::Unsupported)),
        };
        sink.warn(match kept {
            Ok(()) => format!("cannot start the deadline's watchdog thread ({e}); a timer keeps the deadline"),
            Err(t) => format!("cannot start the deadline's watchdog thread ({e}) nor a timer ({t}); the run has no deadline"),
        });
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (input, input_warning) = input::read_stdin(
            defaults::STDIN_LIMIT,
            // Never the whole deadline: a pipe nobody closes must leave time for the work.
            defaults::STDIN_WAIT.min(opts.deadline / 2),
        );
        if let Some(w) = input_warning {
            sink.warn(w);
        }
        crate::deadline::checkpoint();
        let project = resolve_project(opts, &input, &sink);
        crate::deadline::checkpoint();
        work(opts, project.as_deref(), &sink, deadline_at)
    }));
    if outcome.is_err() {
        sink.warn("internal error: the run stopped unexpectedly".into());
    }
    if reported.swap(true, Ordering::SeqCst) {
        return false;
    }
    finish(sink.snapshot());
    true
}

/// Sleeps until `at`, whatever wakes the thread early.
fn sleep_until(at: Instant) {
    loop {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left);
    }
}

/// `--project`, else the input's `cwd` (an absolute path of a directory), else
/// `CLAUDE_PROJECT_DIR`, else the current directory. The project goes into the report as
/// soon as it is known, before the first look at it, which may hang (a dead mount).
fn resolve_project(opts: &Options, input: &HookInput, sink: &Sink) -> Option<Utf8PathBuf> {
    let announce = |p: &Utf8Path| {
        let p = p.to_string();
        sink.push(|r| r.project = Some(p));
    };
    if let Some(p) = &opts.project {
        let abs = absolute(p);
        announce(&abs);
        if !abs.is_dir() {
            sink.warn(format!("project {abs} is not a directory"));
        }
        return Some(abs);
    }
    if let Some(cwd) = input.cwd.as_deref() {
        let p = Utf8Path::new(cwd);
        if p.is_absolute() && p.is_dir() {
            announce(p);
            return Some(p.to_path_buf());
        }
    }
    let found = match std::env::var("CLAUDE_PROJECT_DIR")
        .ok()
        .filter(|d| !d.is_empty())
    {
        Some(dir) => absolute(Utf8Path::new(&dir)),
        None => match std::env::current_dir().map(Utf8PathBuf::try_from) {
            Ok(Ok(dir)) => dir,
            _ => {
                sink.warn(
                    "the current directory cannot be read as UTF-8; no project to clean".into(),
                );
                return None;
            }
        },
    };
    announce(&found);
    Some(found)
}

fn absolute(p: &Utf8Path) -> Utf8PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::current_dir().map(Utf8PathBuf::try_from) {
        Ok(Ok(cwd)) => cwd.join(p),
        _ => p.to_path_buf(),
    }
}

/// Gather → decide → act.
fn work(opts: &Options, project: Option<&Utf8Path>, sink: &Sink, deadline_at: Instant) {
    let mut warnings = Vec::new();
    let mut config = config::load(
        opts.config.as_deref(),
        project,
        &config::Env::from_process(),
        &mut warnings,
    );
    warnings.into_iter().for_each(|w| sink.warn(w));
    config
        .match_rules
        .extend(opts.matches.iter().map(|g| MatchRule {
            label: g.clone(),
            glob: g.clone(),
        }));
    config
        .ignore_rules
        .extend(opts.ignores.iter().map(|g| IgnoreRule {
            label: g.clone(),
            glob: g.clone(),
            project: None,
        }));
    // Without the process table the reaper still runs on `kill(pid, 0)`, as the seed's did.
    let source = os::open(&opts.proc_root).unwrap_or_else(|e| {
        sink.warn(format!(
            "cannot open the process table {}: {e}",
            opts.proc_root
        ));
        Box::new(os::ProbeOnly {
            platform: os::PLATFORM,
        })
    });
    let owners = opts.owners.clone().map(OwnerSet::new).unwrap_or_default();
    let mut table = ProcessTable::new(source, owners);
    crate::deadline::checkpoint();
    reaper::reap(&config.state_rules, project, &mut table, opts.dry_run, sink);

    let me = sys::pid();
    let uid = sys::uid();
    let mut registry = Registry::from_env();
    // Each pin is an open file: leave room for the scan's own reads.
    let pin_limit = if opts.kill {
        (sys::raise_open_file_limit() as usize).saturating_sub(64)
    } else {
        0
    };
    let pins = orphans::scan(
        &mut table,
        orphans::Scan {
            rules: &config.match_rules,
            ignore: &config.ignore_rules,
            builtin_rules: Config::builtin().match_rules.len(),
            pins: pin_limit,
            // Half of what is left: the other half is for the rest of the scan.
            user_rules_until: {
                let now = Instant::now();
                Some(now + deadline_at.saturating_duration_since(now) / 2)
            },
            uid,
            me,
            registry: &mut registry,
        },
        sink,
    );
    if opts.kill {
        let groups = group(&sink.snapshot().orphans);
        if !groups.is_empty() {
            let exclude: BTreeSet<i32> = table.self_and_ancestors(me).into_iter().collect();
            let left = deadline_at.saturating_duration_since(Instant::now());
            let grace = defaults::KILL_GRACE
                .min(left / 2)
                .max(Duration::from_millis(1));
            kill::stop(
                &groups,
                &pins,
                table.source.as_mut(),
                uid,
                &exclude,
                grace,
                sink,
            );
        }
    }
}
