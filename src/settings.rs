//! Registering the hook in a Claude Code settings file (`startup-hygiene settings add|remove`):
//! pure edits of the settings JSON (`add`, `remove`, `is_ours`) and the file handling around
//! them. The file handling never loses the user's settings: a file that is not JSON is left
//! alone, a whole copy of the original is put next to it before the first change, and the
//! new version, with the file's mode and owner, replaces the old one by a rename, so a reader
//! sees one or the other, never half of one. What a rename cannot replace without changing
//! what the file is (a FIFO, a hard-linked or read-only file, another user's file) is
//! refused. Runs take turns through a lock on the folder, and a version another program
//! wrote meanwhile is edited again rather than overwritten (`edit_file`). A watchdog ends a
//! run that a file system that stopped answering holds up (`main`).
//!
//! "Ours" is any command hook whose program is `startup-hygiene` or ends in
//! `/startup-hygiene`, whatever its arguments: a reinstall from another prefix or with other
//! flags replaces the entry instead of adding a second one.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt as _, PermissionsExt};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Map, Value, json};

use crate::cli::{self, Command, ExitCode};
use crate::os::sys::{self, Rename};

/// The event the hook is registered for.
pub const EVENT: &str = "SessionStart";
/// The file name of the program the entries of ours run.
pub const PROGRAM_NAME: &str = "startup-hygiene";
/// Seconds Claude Code gives the hook: the run itself stops at its 2 s deadline.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;
pub const MAX_TIMEOUT_SECS: u64 = 600;
/// Appended to the settings file's name for the copy of the original.
pub const BACKUP_SUFFIX: &str = ".startup-hygiene.bak";

pub const USAGE: &str = "\
startup-hygiene settings: registers startup-hygiene as a SessionStart hook in a Claude Code
settings file, or removes it. Other keys, hooks and entries are kept, in their order.

Usage: startup-hygiene settings add --file FILE [--program PATH] [--timeout SECS] [-- ARGS...]
       startup-hygiene settings remove --file FILE

  --file FILE      the settings file, e.g. ~/.claude/settings.json (created when missing)
  --program PATH   absolute path of the binary the hook runs (default: this binary)
  --timeout SECS   the hook's timeout in seconds, 1 to 600 (default 5)
  -- ARGS...       flags the hook runs with, e.g. -- --format hook-json

An entry of ours is a command hook whose program is named startup-hygiene. add leaves
exactly one, with this command; remove takes out all of them. Before the first change the
original is copied to FILE.startup-hygiene.bak, whole or not at all; a copy there that is
not valid JSON (cut short by a full disk) is replaced by a fresh one. The new version
replaces FILE by a rename and keeps its mode, owner and group. A symlink is followed to the
file it points to. An empty (or whitespace-only) file counts as {}.

Left unchanged, with the reason: a file that is not valid JSON or nests lists and objects
more than 127 levels deep; one that is not a regular file (a FIFO, socket, folder or
device), has other hard links, is read-only (no write permission for its owner), or belongs
to another user (unless run as root).

Runs of this command take turns (a lock on FILE's folder). If another program, such as
Claude Code, rewrites FILE during the edit, the edit is made again on its version. A run
that has not finished in 10 s (a file system that stopped answering) stops with a message.

Exit status: 0 when the file holds what was asked; 1 when it cannot be read, parsed or
written, is left unchanged for a reason above, or the 10 s ran out; 2 for a usage error.
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Help,
    Add {
        file: Utf8PathBuf,
        /// `None`: the running binary.
        program: Option<Utf8PathBuf>,
        timeout: u64,
        hook_args: Vec<String>,
    },
    Remove {
        file: Utf8PathBuf,
    },
}

/// Parses the arguments after `settings`.
pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<Request, String> {
    let mut args = args.into_iter().map(|a| {
        a.into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))
    });
    let action = match args.next().transpose()?.as_deref() {
        None => return Err("settings needs an action: add or remove".into()),
        Some("-h" | "--help") => return Ok(Request::Help),
        Some(a @ ("add" | "remove")) => a.to_string(),
        Some(other) => return Err(format!("settings {other:?}: the action is add or remove")),
    };
    let (mut file, mut program, mut timeout, mut hook_args) =
        (None, None, DEFAULT_TIMEOUT_SECS, None);
    while let Some(arg) = args.next().transpose()? {
        if arg == "--" {
            hook_args = Some(args.by_ref().collect::<Result<Vec<_>, _>>()?);
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            let v = match inline.clone() {
                Some(v) => v,
                None => args
                    .next()
                    .transpose()?
                    .ok_or_else(|| format!("{name} needs a value"))?,
            };
            if v.is_empty() {
                return Err(format!("{name} needs a non-empty value"));
            }
            Ok(v)
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Request::Help),
            "--file" => file = Some(Utf8PathBuf::from(value("--file")?)),
            "--program" if action == "add" => {
                let p = Utf8PathBuf::from(value("--program")?);
                if !p.is_absolute() {
                    return Err(format!("--program {p:?} is not an absolute path"));
                }
                program = Some(p);
            }
            "--timeout" if action == "add" => {
                let v = value("--timeout")?;
                timeout = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_TIMEOUT_SECS).contains(s))
                    .ok_or_else(|| {
                        format!(
                            "--timeout {v:?} is not a whole number from 1 to {MAX_TIMEOUT_SECS}"
                        )
                    })?;
            }
            _ if arg.starts_with('-') => {
                return Err(format!("settings {action}: unknown option {arg:?}"));
            }
            _ => return Err(format!("settings {action}: unexpected argument {arg:?}")),
        }
    }
    let file = file.ok_or_else(|| format!("settings {action} needs --file FILE"))?;
    if action == "remove" {
        if hook_args.is_some() {
            return Err("settings remove takes no hook arguments".into());
        }
        return Ok(Request::Remove { file });
    }
    let hook_args = hook_args.unwrap_or_default();
    // A hook that exits 2 on every session start would show the user an error each time.
    match cli::parse(hook_args.iter().map(Into::into)) {
        Ok(Command::Run(_)) => {}
        Ok(_) => {
            return Err(format!(
                "the hook arguments {hook_args:?} do not run the hook"
            ));
        }
        Err(e) => return Err(format!("the hook arguments are not valid: {e}")),
    }
    Ok(Request::Add {
        file,
        program,
        timeout,
        hook_args,
    })
}

/// Runs the subcommand: prints what it did, or why it did nothing, within `EDIT_DEADLINE`.
pub fn main(req: &Request) -> ExitCode {
    match req {
        Request::Help => {
            let _ = std::io::stdout().write_all(USAGE.as_bytes());
            return ExitCode::Success;
        }
        Request::Add { file, .. } | Request::Remove { file } => start_watchdog(file),
    }
    let result = match req {
        Request::Help => return ExitCode::Success,
        Request::Add {
            file,
            program,
            timeout,
            hook_args,
        } => this_program(program.as_deref()).and_then(|program| {
            let entry = Entry {
                command: command_line(&program, hook_args),
                timeout: *timeout,
            };
            edit_file(file, |v| add(v, &entry)).map(|change| match change {
                Change::Unchanged => format!("{file} already runs `{}`; unchanged", entry.command),
                written => format!(
                    "registered `{}` as a {EVENT} hook in {file}{}",
                    entry.command,
                    written.note(file)
                ),
            })
        }),
        Request::Remove { file } => edit_file(file, remove).map(|change| match change {
            Change::Unchanged => {
                format!("{file} has no {EVENT} hook of startup-hygiene; unchanged")
            }
            written => format!(
                "removed the {EVENT} hook of startup-hygiene from {file}{}",
                written.note(file)
            ),
        }),
    };
    if REPORTED.swap(true, Ordering::SeqCst) {
        // The watchdog is reporting and will end the process; it must not be cut off.
        loop {
            std::thread::park();
        }
    }
    match result {
        // A closed stdout or stderr is no reason to panic: the file holds what it should.
        Ok(msg) => {
            let _ = writeln!(std::io::stdout(), "startup-hygiene: {msg}");
            ExitCode::Success
        }
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "startup-hygiene: {msg}");
            ExitCode::Failure
        }
    }
}

fn this_program(program: Option<&Utf8Path>) -> Result<Utf8PathBuf, String> {
    match program {
        Some(p) => Ok(p.to_path_buf()),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot tell where this binary is ({e}); pass --program"))
            .and_then(|p| {
                Utf8PathBuf::try_from(p)
                    .map_err(|e| format!("this binary's path is not UTF-8 ({e}); pass --program"))
            }),
    }
}

/// The hook entry to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// A shell command line: Claude Code runs it with `/bin/sh -c`.
    pub command: String,
    pub timeout: u64,
}

/// The command line that runs `program` with `args`, each quoted for `/bin/sh` if it needs it.
pub fn command_line(program: &Utf8Path, args: &[String]) -> String {
    std::iter::once(program.as_str())
        .chain(args.iter().map(String::as_str))
        .map(shell_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(s: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b);
    if !s.is_empty() && s.bytes().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The first word of a shell command line, with quotes and backslashes resolved (enough for
/// the paths people write; no expansion).
fn program_of(command: &str) -> String {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = command.trim_start().chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() || ";&|<>()".contains(c) => break,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None | Some('"'), '\\') => word.extend(chars.next()),
            (_, c) => word.push(c),
        }
    }
    word
}

/// Whether a hook entry is one of ours: a command hook running `startup-hygiene`.
pub fn is_ours(hook: &Value) -> bool {
    if hook.get("type").and_then(Value::as_str) != Some("command") {
        return false;
    }
    let Some(command) = hook.get("command").and_then(Value::as_str) else {
        return false;
    };
    let program = program_of(command);
    program == PROGRAM_NAME || program.ends_with(&format!("/{PROGRAM_NAME}"))
}

/// Makes `settings` hold exactly one entry of ours, running `entry`. An existing entry of
/// ours is updated where it stands (keeping any other keys it has); further ones are
/// removed; with none, a new matcher group for all session sources is appended.
pub fn add(settings: &mut Value, entry: &Entry) -> Result<(), String> {
    let groups = event_groups(settings)?;
    let mut placed = false;
    groups.retain_mut(|group| {
        let Some(hooks) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
            return true;
        };
        let before = hooks.len();
        hooks.retain_mut(|hook| {
            if !is_ours(hook) {
                return true;
            }
            if placed {
                return false;
            }
            placed = true;
            if let Some(h) = hook.as_object_mut() {
                h.insert("command".into(), json!(entry.command));
                h.insert("timeout".into(), json!(entry.timeout));
            }
            true
        });
        // A group emptied here held only duplicates of ours.
        !(hooks.is_empty() && before > 0)
    });
    if !placed {
        groups.push(json!({
            "matcher": "",
            "hooks": [{"type": "command", "command": entry.command, "timeout": entry.timeout}],
        }));
    }
    Ok(())
}

/// Removes every entry of ours, then the matcher groups, the event list and the `hooks`
/// object that this left empty (so that an install followed by an uninstall gives back the
/// settings as they were). Returns how many entries were removed.
pub fn remove(settings: &mut Value) -> Result<usize, String> {
    let root = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?;
    let Some(hooks) = root.get_mut("hooks").and_then(Value::as_object_mut) else {
        return Ok(0);
    };
    let Some(groups) = hooks.get_mut(EVENT).and_then(Value::as_array_mut) else {
        return Ok(0);
    };
    let mut removed = 0;
    groups.retain_mut(|group| {
        let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
            return true;
        };
        let before = list.len();
        list.retain(|h| !is_ours(h));
        removed += before - list.len();
        !(list.is_empty() && before > 0)
    });
    if removed > 0 && groups.is_empty() {
        hooks.shift_remove(EVENT);
        if hooks.is_empty() {
            root.shift_remove("hooks");
        }
    }
    Ok(removed)
}

/// `settings.hooks.SessionStart`, created when missing.
fn event_groups(settings: &mut Value) -> Result<&mut Vec<Value>, String> {
    let root = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?;
    root.entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("\"hooks\" is not a JSON object")?
        .entry(EVENT)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| format!("\"hooks\".\"{EVENT}\" is not a JSON list"))
}

/// What `edit_file` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The edit changed nothing: the file was not written.
    Unchanged,
    /// The file was written.
    Written {
        /// There was no file, or an empty one: nothing to back up.
        was: Was,
        backup: Backup,
        /// How many times another program changed the file while it was being edited, each
        /// time making this program edit the new version again.
        redone: u32,
    },
}

/// The file before the edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Was {
    Missing,
    /// Empty or only whitespace: read as `{}`.
    Blank,
    Settings,
}

/// The copy of the original next to the settings file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backup {
    /// Nothing to copy (`Was::Missing` or `Was::Blank`).
    None,
    /// Made now.
    Made(Utf8PathBuf),
    /// A whole copy (valid JSON) was already there: the original from before the first change.
    Kept(Utf8PathBuf),
    /// The copy there was not valid JSON (cut short, say by a full disk): replaced by a copy of
    /// the file as it was before this edit.
    Replaced(Utf8PathBuf),
}

impl Change {
    fn note(&self, file: &Utf8Path) -> String {
        let Change::Written {
            was,
            backup,
            redone,
        } = self
        else {
            return String::new();
        };
        let mut note = match (backup, was) {
            (Backup::Made(b), _) => format!(" (the original is saved as {b})"),
            (Backup::Kept(b), _) => {
                format!(" (the original from before the first change is in {b})")
            }
            (Backup::Replaced(b), _) => format!(
                " ({b} was not valid JSON, a copy cut short, so it now holds {file} as it was \
                 before this change)"
            ),
            (Backup::None, Was::Missing) => " (new file)".into(),
            (Backup::None, Was::Blank) => " (it was empty)".into(),
            (Backup::None, Was::Settings) => String::new(),
        };
        if *redone > 0 {
            note.push_str(&format!(
                "; another program changed it meanwhile, so it was edited again on top of that \
                 change ({redone} time{})",
                if *redone == 1 { "" } else { "s" }
            ));
        }
        note
    }
}

/// How long a `settings` run may take before its watchdog gives up (see `main`).
pub const EDIT_DEADLINE: Duration = Duration::from_secs(10);
/// A settings file or backup larger than this is not one Claude Code writes; it is not read.
pub const MAX_FILE_SIZE: u64 = 16 << 20;
/// The deepest nesting of lists and objects serde_json reads (its recursion limit).
pub const MAX_DEPTH: usize = 127;
/// How long read → edit → replace is tried again while another program keeps rewriting the
/// file: well inside `EDIT_DEADLINE`, so that giving up is this run's message, not the
/// watchdog's.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// What a run is doing, for the watchdog's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Opening,
    Locking,
    Editing,
    Replacing,
    Syncing,
}

static STEP: AtomicU8 = AtomicU8::new(0);

fn at(step: Step) {
    STEP.store(step as u8, Ordering::SeqCst);
}

fn current_step() -> Step {
    match STEP.load(Ordering::SeqCst) {
        1 => Step::Locking,
        2 => Step::Editing,
        3 => Step::Replacing,
        4 => Step::Syncing,
        _ => Step::Opening,
    }
}

/// Set by whichever of the run and its watchdog reports first; the other stays silent.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Starts the thread that ends the process with a message if the run is not done within
/// `EDIT_DEADLINE`. A settings file on a network or FUSE mount that stopped answering blocks
/// a `stat` or `open` in the kernel where only a fatal signal reaches it; exiting the
/// process is that signal for the blocked thread.
fn start_watchdog(file: &Utf8Path) {
    let file = file.to_path_buf();
    // Without a watchdog the edit still runs, unbounded as it was before; nothing to add.
    let _ = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            std::thread::sleep(EDIT_DEADLINE);
            if !REPORTED.swap(true, Ordering::SeqCst) {
                let _ = writeln!(
                    std::io::stderr(),
                    "startup-hygiene: {}",
                    gave_up(&file, current_step())
                );
                std::process::exit(ExitCode::Failure.into());
            }
        });
}

fn gave_up(file: &Utf8Path, step: Step) -> String {
    let (doing, state) = match step {
        Step::Opening => ("opening it", "It was left as it was."),
        Step::Locking => (
            "waiting for another `startup-hygiene settings` run in its folder to finish",
            "It was left as it was.",
        ),
        Step::Editing => (
            "reading it or writing its new version",
            "It was left as it was (a temporary copy may be left beside it; the next run \
             removes it).",
        ),
        Step::Replacing => (
            "putting its new version in place",
            "It holds either the old or the new settings, whole.",
        ),
        Step::Syncing => (
            "flushing its new version to disk",
            "It holds the new settings, which may not have reached the disk yet.",
        ),
    };
    format!(
        "gave up on {file} after {} s while {doing}: is it on a network or FUSE file system \
         that stopped answering? {state}",
        EDIT_DEADLINE.as_secs()
    )
}

/// The settings file's folder and the names used in it.
struct Names {
    file: CString,
    /// The new version, written here and then renamed over `file`.
    tmp: CString,
    backup: CString,
    /// The backup, written here and then given the name `backup`.
    backup_tmp: CString,
}

impl Names {
    fn new(name: &str) -> Result<Names, String> {
        let pid = std::process::id();
        let c = |s: String| CString::new(s).map_err(|_| format!("{name:?} holds a NUL byte"));
        Ok(Names {
            file: c(name.to_string())?,
            tmp: c(format!(".{name}{TMP_INFIX}{pid}.tmp"))?,
            backup: c(format!("{name}{BACKUP_SUFFIX}"))?,
            backup_tmp: c(format!(".{name}{TMP_INFIX}{pid}.bak.tmp"))?,
        })
    }
}

/// Temporary copies are named `.<file>.startup-hygiene-<pid>[.bak].tmp`.
const TMP_INFIX: &str = ".startup-hygiene-";

/// The settings file as read: the open file (so that its inode cannot be reused while the
/// run compares against it), its status, and its bytes.
struct Current {
    file: File,
    st: libc::stat,
    bytes: Vec<u8>,
}

/// Applies `edit` to the JSON in `file` (an empty object when the file is missing, empty or
/// only whitespace) and writes the result back if it differs. Invalid JSON, settings of a
/// shape the edit cannot work on, and files that cannot be replaced without changing what
/// they are (not a regular file, hard-linked, read-only, another user's) are left untouched.
///
/// Runs of this program take turns through a lock on the folder. Other programs (Claude
/// Code) do not take it, so the file is compared with what was read just before the rename,
/// and swapped in atomically so that a version another program renamed in at that moment is
/// seen and put back; then the edit is made again on that version.
pub fn edit_file<T>(
    file: &Utf8Path,
    mut edit: impl FnMut(&mut Value) -> Result<T, String>,
) -> Result<Change, String> {
    at(Step::Opening);
    let target = resolve(file)?;
    let dir_path = match target.parent() {
        Some(d) if !d.as_str().is_empty() => d.to_path_buf(),
        _ => Utf8PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| format!("{file} does not name a file"))?;
    let names = Names::new(name)?;
    std::fs::create_dir_all(&dir_path).map_err(|e| format!("cannot create {dir_path}: {e}"))?;
    let dir = sys::cstring(dir_path.as_str().as_bytes())
        .and_then(|d| sys::open_dir_at(None, &d, false))
        .map(File::from)
        .map_err(|e| format!("cannot open the folder {dir_path}: {e}"))?;
    at(Step::Locking);
    // A file system without flock (some network ones) leaves runs of this program to the
    // same checks as other writers.
    let locked = sys::flock(dir.as_fd(), libc::LOCK_EX).is_ok();
    at(Step::Editing);
    if locked {
        sweep(dir.as_fd(), name);
    }
    let backup_path = Utf8PathBuf::from(format!("{target}{BACKUP_SUFFIX}"));
    let mut backup = None;
    let (mut redone, mut unreadable) = (0, 0);
    let started = Instant::now();
    while redone == 0 || started.elapsed() < RETRY_FOR {
        if redone > 1 {
            // Out of step with a writer that keeps rewriting the file.
            std::thread::sleep(Duration::from_millis(u64::from(redone.min(10))));
        }
        let current = read_current(dir.as_fd(), &names.file, file)?;
        let (mut value, was) = match &current {
            None => (Value::Object(Map::new()), Was::Missing),
            Some(c) if is_blank(&c.bytes) => (Value::Object(Map::new()), Was::Blank),
            Some(c) => match parse_json(&c.bytes, file) {
                Ok(v) => (v, Was::Settings),
                // Changed since a first read that parsed: another program may be halfway
                // through writing it in place. It gets a few chances to finish.
                Err(_) if redone > 0 && unreadable < 5 => {
                    unreadable += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        let before = text_of(&value);
        edit(&mut value).map_err(|e| format!("{file}: {e}; it was left unchanged"))?;
        if was != Was::Missing && text_of(&value) == before {
            return Ok(Change::Unchanged);
        }
        let mut text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        text.push('\n');

        if let (Some(c), None, Was::Settings) = (&current, &backup, was) {
            backup = Some(save_backup(dir.as_fd(), &names, c, &backup_path, file)?);
        }
        // Under contention the file is written again right away: the shorter the time from
        // reading to the rename, the likelier no one writes in between. Those versions reach
        // the disk after the rename.
        let durable = redone == 0;
        let new = write_copy(
            dir.as_fd(),
            &names.tmp,
            text.as_bytes(),
            current.as_ref().map(|c| &c.st),
            durable,
        )
        .map_err(|e| format!("cannot write {file}: {e}; it was left unchanged"))?;
        let outcome = match &current {
            Some(c) => replace_checked(dir.as_fd(), &names, c, file),
            None => create(dir.as_fd(), &names, file),
        }?;
        match outcome {
            Outcome::Conflict => {
                at(Step::Editing);
                redone += 1;
            }
            Outcome::Done => {
                at(Step::Syncing);
                if !durable {
                    let _ = new.sync_all();
                }
                // The rename itself reaches the disk with the folder.
                let _ = dir.sync_all();
                return Ok(Change::Written {
                    was,
                    backup: backup.unwrap_or(Backup::None),
                    redone,
                });
            }
        }
    }
    Err(format!(
        "{file} kept changing while startup-hygiene edited it ({redone} tries in {} s): \
         another program keeps rewriting it; it was left as that program wrote it. Try again.",
        RETRY_FOR.as_secs()
    ))
}

/// Settings files are often symlinks into a dotfiles repository: the file edited is where
/// the link points.
fn resolve(file: &Utf8Path) -> Result<Utf8PathBuf, String> {
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(file) {
            Ok(p) => Utf8PathBuf::try_from(p).map_err(|e| format!("{file}: {e}")),
            Err(e) => Err(format!("{file} is a symlink that cannot be followed: {e}")),
        },
        _ => Ok(file.to_path_buf()),
    }
}

/// Opens and reads the settings file, `None` when there is none. A FIFO or device is never
/// read (the open does not wait for a writer, and `fstat` says what it is first).
fn read_current(dir: BorrowedFd, name: &CStr, shown: &Utf8Path) -> Result<Option<Current>, String> {
    let not_found = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    // A socket cannot be opened at all: say what it is rather than "No such device".
    match sys::lstat_at(dir, name) {
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
        Ok(st) => refuse_non_file(&st, shown)?,
    }
    let fd = match sys::open_read_at(Some(dir), name, true) {
        Err(e) if not_found(&e) => return Ok(None),
        r => r.map_err(|e| format!("cannot read {shown}: {e}"))?,
    };
    let st = sys::fstat(fd.as_fd()).map_err(|e| format!("cannot read {shown}: {e}"))?;
    refuse_non_file(&st, shown)?;
    refuse_unsafe_edit(&st, shown)?;
    let file = File::from(fd);
    let bytes = read_capped(&file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "{shown} is larger than {} MiB, more than a settings file holds; it was left \
             unchanged",
            MAX_FILE_SIZE >> 20
        ));
    }
    Ok(Some(Current { file, st, bytes }))
}

/// Up to `MAX_FILE_SIZE` + 1 bytes of `file`, from its start.
fn read_capped(file: &File) -> std::io::Result<Vec<u8>> {
    // Room for the whole file and the read that finds its end: one `read` for most files.
    let size = file.metadata().map_or(0, |m| m.len()).min(MAX_FILE_SIZE);
    let mut bytes = Vec::with_capacity(size as usize + 1);
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn refuse_non_file(st: &libc::stat, shown: &Utf8Path) -> Result<(), String> {
    match kind_of(st) {
        None => Ok(()),
        Some(kind) => Err(format!(
            "{shown} is {kind}, not a regular file; it was left unchanged"
        )),
    }
}

/// What a non-regular file is, in words; `None` for a regular file.
fn kind_of(st: &libc::stat) -> Option<&'static str> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFDIR => Some("a folder"),
        libc::S_IFIFO => Some("a FIFO (named pipe)"),
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        libc::S_IFLNK => Some("a symlink"),
        _ => Some("not a file"),
    }
}

/// Replacing the file by a rename gives it a new inode. That is invisible for a plain file
/// whose new inode gets the old one's mode and owner, and not otherwise.
fn refuse_unsafe_edit(st: &libc::stat, shown: &Utf8Path) -> Result<(), String> {
    if st.st_nlink > 1 {
        return Err(format!(
            "{shown} has {} hard links (other names for the same file); a new version would \
             reach only this name while the others kept the old settings, so it was left \
             unchanged. Make the other names symlinks to it, then run this again.",
            st.st_nlink
        ));
    }
    if st.st_mode & 0o200 == 0 {
        return Err(format!(
            "{shown} is read-only (mode {:04o}: not even its owner may write it), so it was \
             left unchanged. To allow the edit: chmod u+w {shown}",
            st.st_mode & 0o7777
        ));
    }
    let me = sys::euid();
    if me != 0 && st.st_uid != me {
        return Err(format!(
            "{shown} belongs to user {}, and this runs as user {me}: the new version could not \
             keep its owner, so it was left unchanged. Run this as that user or as root.",
            st.st_uid
        ));
    }
    Ok(())
}

/// Empty or only JSON whitespace.
fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn parse_json(bytes: &[u8], shown: &Utf8Path) -> Result<Value, String> {
    serde_json::from_slice::<Value>(bytes).map_err(|e| {
        // serde_json stops at 128 levels, everything before that point being valid JSON. Its
        // message is the only sign of it (no error category says so); a unit test pins it.
        if e.to_string().starts_with("recursion limit exceeded") {
            format!(
                "{shown} nests lists and objects {} levels deep (at line {}, column {}), \
                 more than the {MAX_DEPTH} that startup-hygiene reads; it was left unchanged",
                nesting(bytes).max(MAX_DEPTH + 1),
                e.line(),
                e.column()
            )
        } else {
            format!("{shown} is not valid JSON ({e}); it was left unchanged")
        }
    })
}

/// How deeply lists and objects nest in `bytes` (brackets inside strings do not count).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Copies the original to `FILE.startup-hygiene.bak` unless a whole copy is there already.
/// The copy is written under a temporary name, flushed, and only then given its name, so a
/// full disk or a crash never leaves a partial one; a concurrent run that gave it the name
/// first made a whole one too.
fn save_backup(
    dir: BorrowedFd,
    names: &Names,
    current: &Current,
    path: &Utf8Path,
    shown: &Utf8Path,
) -> Result<Backup, String> {
    let fail =
        |e: String| format!("cannot save the original as {path}: {e}; {shown} was left unchanged");
    let existing = match sys::lstat_at(dir, &names.backup) {
        Ok(st) => Some(st),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e.to_string())),
    };
    if let Some(st) = &existing {
        if let Some(kind) = kind_of(st) {
            return Err(fail(format!(
                "it is {kind}, not a copy of the settings; move it away"
            )));
        }
        if is_whole_copy(dir, &names.backup).map_err(|e| fail(e.to_string()))? {
            return Ok(Backup::Kept(path.to_path_buf()));
        }
    }
    write_copy(
        dir,
        &names.backup_tmp,
        &current.bytes,
        Some(&current.st),
        true,
    )
    .map_err(fail)?;
    let placed = if existing.is_some() {
        sys::rename_in(dir, &names.backup_tmp, &names.backup, Rename::Replace)
    } else {
        put_new(dir, &names.backup_tmp, &names.backup)
    };
    match placed {
        Ok(()) => Ok(if existing.is_some() {
            Backup::Replaced(path.to_path_buf())
        } else {
            Backup::Made(path.to_path_buf())
        }),
        Err(e) => {
            let _ = sys::unlink_at(dir, &names.backup_tmp);
            if e.raw_os_error() == Some(libc::EEXIST) {
                // Another run (one without the lock) made it meanwhile, the same way.
                Ok(Backup::Kept(path.to_path_buf()))
            } else {
                Err(fail(e.to_string()))
            }
        }
    }
}

/// A backup is trusted only when it is JSON this program reads (a copy it made always is): a
/// copy cut short is not.
fn is_whole_copy(dir: BorrowedFd, name: &CStr) -> std::io::Result<bool> {
    let fd = sys::open_read_at(Some(dir), name, true)?;
    if kind_of(&sys::fstat(fd.as_fd())?).is_some() {
        return Ok(false);
    }
    let bytes = read_capped(&File::from(fd))?;
    Ok(bytes.len() as u64 <= MAX_FILE_SIZE && parse_json(&bytes, Utf8Path::new("")).is_ok())
}

/// Writes `bytes` to a new file `name` in `dir`, with the mode, owner and group of `like`
/// (set exactly: the umask does not narrow it), flushed to disk if `durable`. Removed again
/// on any failure, so a full disk leaves nothing behind.
fn write_copy(
    dir: BorrowedFd,
    name: &CStr,
    bytes: &[u8],
    like: Option<&libc::stat>,
    durable: bool,
) -> Result<File, String> {
    // Until its mode is set, only its owner may read it: settings can hold tokens in "env".
    // A new settings file gets the usual mode of a new file.
    let mode = if like.is_some() { 0o600 } else { 0o666 };
    let fd = match sys::create_new_at(dir, name, mode) {
        // Left by a run with the same PID that was killed (without the lock, not swept).
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let _ = sys::unlink_at(dir, name);
            sys::create_new_at(dir, name, mode)
        }
        r => r,
    }
    .map_err(|e| e.to_string())?;
    let file = File::from(fd);
    let written = (|| {
        (&file).write_all(bytes).map_err(|e| e.to_string())?;
        if let Some(st) = like {
            keep_identity(&file, st)?;
        }
        if durable {
            file.sync_all().map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(file),
        Err(e) => {
            let _ = sys::unlink_at(dir, name);
            Err(e)
        }
    }
}

/// Gives `file` the owner, group and mode of `st`. The owner first: a change of owner
/// clears set-user-ID bits, which the mode then restores.
fn keep_identity(file: &File, st: &libc::stat) -> Result<(), String> {
    let mine = sys::fstat(file.as_fd()).map_err(|e| e.to_string())?;
    let uid = (mine.st_uid != st.st_uid).then_some(st.st_uid);
    let gid = (mine.st_gid != st.st_gid).then_some(st.st_gid);
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(file, uid, gid).map_err(|e| {
            format!(
                "cannot give the new version the original's owner {} and group {} ({e})",
                st.st_uid, st.st_gid
            )
        })?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(sys::permission_bits(st)))
        .map_err(|e| format!("cannot give the new version the original's mode ({e})"))
}

enum Outcome {
    Done,
    /// Another program changed the file since it was read: read it again.
    Conflict,
}

/// Puts the new version (`names.tmp`) in place of the file read as `current`, unless the file
/// has changed since.
fn replace_checked(
    dir: BorrowedFd,
    names: &Names,
    current: &Current,
    shown: &Utf8Path,
) -> Result<Outcome, String> {
    let discard = || {
        let _ = sys::unlink_at(dir, &names.tmp);
    };
    // The last look, as close to the rename as it can be: the content first (the slower
    // part), then whether the name still leads to that inode.
    if !has_bytes(&current.file, &current.bytes) || !is_same_file(dir, &names.file, current) {
        discard();
        return Ok(Outcome::Conflict);
    }
    at(Step::Replacing);
    match sys::rename_in(dir, &names.tmp, &names.file, Rename::Exchange) {
        // The temporary name now holds what was replaced: the file that was read, unless
        // another program renamed its version in (or wrote the file in place) since the last
        // look. Then that version goes back at once, to be edited again.
        Ok(()) => {
            let replaced_what_was_read =
                is_same_file(dir, &names.tmp, current) && has_bytes(&current.file, &current.bytes);
            if replaced_what_was_read {
                discard();
                return Ok(Outcome::Done);
            }
            let back = sys::rename_in(dir, &names.tmp, &names.file, Rename::Exchange);
            discard();
            back.map_err(|e| format!("cannot write {shown}: {e}"))?;
            Ok(Outcome::Conflict)
        }
        Err(e) if unsupported(&e) => {
            match sys::rename_in(dir, &names.tmp, &names.file, Rename::Replace) {
                Ok(()) => Ok(Outcome::Done),
                Err(e) => {
                    discard();
                    Err(format!("cannot write {shown}: {e}; it was left unchanged"))
                }
            }
        }
        Err(e) => {
            discard();
            Err(format!("cannot write {shown}: {e}; it was left unchanged"))
        }
    }
}

/// Puts the new version in place where there was no file, unless one has appeared since.
fn create(dir: BorrowedFd, names: &Names, shown: &Utf8Path) -> Result<Outcome, String> {
    at(Step::Replacing);
    match put_new(dir, &names.tmp, &names.file) {
        Ok(()) => Ok(Outcome::Done),
        Err(e) => {
            let _ = sys::unlink_at(dir, &names.tmp);
            if e.raw_os_error() == Some(libc::EEXIST) {
                Ok(Outcome::Conflict)
            } else {
                Err(format!("cannot write {shown}: {e}"))
            }
        }
    }
}

/// Whether `name` in `dir` is the inode read as `current`, of the same size and modification
/// time. A writer that renames its version in makes a new inode; one that writes in place
/// may leave the time as it was, which `has_bytes` catches.
fn is_same_file(dir: BorrowedFd, name: &CStr, current: &Current) -> bool {
    sys::lstat_at(dir, name).is_ok_and(|st| {
        st.st_dev == current.st.st_dev
            && st.st_ino == current.st.st_ino
            && st.st_size == current.st.st_size
            && st.st_mtime == current.st.st_mtime
            && st.st_mtime_nsec == current.st.st_mtime_nsec
    })
}

/// Whether `file` (read from its start) holds exactly `expected`.
fn has_bytes(file: &File, expected: &[u8]) -> bool {
    let mut buf = vec![0u8; expected.len() + 1];
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    &buf[..len] == expected
}

/// Gives the file `from` the name `to` only if nothing has that name, atomically.
fn put_new(dir: BorrowedFd, from: &CStr, to: &CStr) -> std::io::Result<()> {
    match sys::rename_in(dir, from, to, Rename::NoReplace) {
        Err(e) if unsupported(&e) => {
            sys::link_in(dir, from, to)?;
            sys::unlink_at(dir, from)
        }
        r => r,
    }
}

/// A file system that does not offer a `renameat2` flag (or a kernel without it).
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

/// Removes the temporary copies that runs stopped on the way (killed, or ended by their
/// deadline) left beside `name`. Called only while holding the folder's lock, when no run of
/// this program is writing one.
fn sweep(dir: BorrowedFd, name: &str) {
    let prefix = format!(".{name}{TMP_INFIX}");
    let mut stale = Vec::new();
    let _ = sys::for_each_name(dir, |n| {
        if n.starts_with(prefix.as_bytes()) && n.ends_with(b".tmp") {
            stale.push(n.to_vec());
        }
    });
    for n in stale {
        if let Ok(n) = sys::cstring(&n) {
            let _ = sys::unlink_at(dir, &n);
        }
    }
}

/// The compact text of `v`, for comparisons in which key order counts (`Value`'s `==` does
/// not look at it).
fn text_of(v: &Value) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(command: &str) -> Entry {
        Entry {
            command: command.into(),
            timeout: 5,
        }
    }

    fn same(a: &Value, b: &Value) -> bool {
        text_of(a) == text_of(b)
    }

    fn ours(command: &str) -> Value {
        json!({"type": "command", "command": command, "timeout": 5})
    }

    #[test]
    fn what_is_ours() {
        for cmd in [
            "startup-hygiene",
            "/home/u/.local/bin/startup-hygiene",
            "/opt/x/startup-hygiene --format hook-json",
            "'/home/a b/bin/startup-hygiene' --owner x",
            "\"/home/a b/bin/startup-hygiene\"",
            "/home/a\\ b/bin/startup-hygiene;true",
            "${CLAUDE_PLUGIN_ROOT}/target/release/startup-hygiene",
        ] {
            assert!(is_ours(&ours(cmd)), "{cmd}");
        }
        for cmd in [
            "/usr/bin/startup-hygiene-old",
            "/usr/bin/startup-hygiene.sh",
            "mystartup-hygiene",
            "echo /bin/startup-hygiene",
            "",
        ] {
            assert!(!is_ours(&ours(cmd)), "{cmd}");
        }
        assert!(!is_ours(
            &json!({"type": "prompt", "command": "startup-hygiene"})
        ));
        assert!(!is_ours(&json!({"type": "command"})));
        assert!(!is_ours(&json!("startup-hygiene")));
    }

    #[test]
    fn command_lines_quote_what_the_shell_would_split() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line("/u/.local/bin/startup-hygiene".into(), &[]),
            "/u/.local/bin/startup-hygiene"
        );
        assert_eq!(
            command_line(
                "/home/a b/it's/startup-hygiene".into(),
                &args(&["--format", "hook-json", "--match", "*x*"])
            ),
            r"'/home/a b/it'\''s/startup-hygiene' --format hook-json --match '*x*'"
        );
        assert_eq!(
            program_of(&command_line("/home/a b/it's/startup-hygiene".into(), &[])),
            "/home/a b/it's/startup-hygiene"
        );
    }

    #[test]
    fn add_to_empty_settings() {
        let mut v = json!({});
        add(&mut v, &entry("/b/startup-hygiene")).unwrap();
        assert!(same(
            &v,
            &json!({"hooks": {"SessionStart": [{"matcher": "", "hooks": [
                {"type": "command", "command": "/b/startup-hygiene", "timeout": 5}]}]}})
        ));
    }

    #[test]
    fn add_twice_is_add_once() {
        let mut once = json!({"model": "x"});
        add(&mut once, &entry("/b/startup-hygiene")).unwrap();
        let mut twice = once.clone();
        add(&mut twice, &entry("/b/startup-hygiene")).unwrap();
        assert!(same(&once, &twice));
    }

    #[test]
    fn add_keeps_everything_else_in_order() {
        let original = json!({
            "zeta": 1,
            "hooks": {
                "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard"}]}],
                "SessionStart": [
                    {"matcher": "startup", "hooks": [{"type": "command", "command": "other-hook"}]}
                ],
                "Stop": []
            },
            "alpha": {"b": 2, "a": 1}
        });
        let mut v = original.clone();
        add(&mut v, &entry("/b/startup-hygiene")).unwrap();
        let mut expected = original.clone();
        expected["hooks"]["SessionStart"]
            .as_array_mut()
            .unwrap()
            .push(json!({"matcher": "", "hooks": [ours("/b/startup-hygiene")]}));
        assert!(same(&v, &expected), "{v:#}");
    }

    #[test]
    fn add_updates_ours_in_place_and_drops_duplicates() {
        let mut v = json!({"hooks": {"SessionStart": [
            {"matcher": "", "hooks": [
                {"type": "command", "command": "before"},
                {"type": "command", "command": "/old/startup-hygiene --dry-run", "timeout": 30, "statusMessage": "s"},
                {"type": "command", "command": "after"}
            ]},
            {"matcher": "resume", "hooks": [{"type": "command", "command": "/older/startup-hygiene"}]},
            {"matcher": "clear", "hooks": [
                {"type": "command", "command": "startup-hygiene"},
                {"type": "command", "command": "keep-me"}
            ]}
        ]}});
        add(&mut v, &entry("/new/startup-hygiene")).unwrap();
        let expected = json!({"hooks": {"SessionStart": [
            {"matcher": "", "hooks": [
                {"type": "command", "command": "before"},
                {"type": "command", "command": "/new/startup-hygiene", "timeout": 5, "statusMessage": "s"},
                {"type": "command", "command": "after"}
            ]},
            {"matcher": "clear", "hooks": [{"type": "command", "command": "keep-me"}]}
        ]}});
        assert!(same(&v, &expected), "{v:#}");
    }

    #[test]
    fn remove_takes_only_ours_and_what_it_emptied() {
        let original = json!({
            "a": 1,
            "hooks": {"SessionStart": [
                {"matcher": "startup", "hooks": [{"type": "command", "command": "other-hook"}]},
                {"matcher": "", "hooks": []}
            ]},
            "z": 2
        });
        let mut v = original.clone();
        add(&mut v, &entry("/b/startup-hygiene --format hook-json")).unwrap();
        assert_eq!(remove(&mut v).unwrap(), 1);
        // The group that was empty before stays: only what the removal emptied goes.
        assert!(same(&v, &original), "{v:#}");

        let original = json!({"a": 1, "hooks": {"Stop": []}, "z": 2});
        let mut v = original.clone();
        add(&mut v, &entry("/b/startup-hygiene")).unwrap();
        assert_eq!(remove(&mut v).unwrap(), 1);
        assert!(same(&v, &original), "{v:#}");

        let mut v = json!({"a": 1});
        add(&mut v, &entry("/b/startup-hygiene")).unwrap();
        assert_eq!(remove(&mut v).unwrap(), 1);
        assert!(same(&v, &json!({"a": 1})), "{v:#}");

        let mut mixed = json!({"hooks": {"SessionStart": [{"hooks": [
            {"type": "command", "command": "/x/startup-hygiene"},
            {"type": "command", "command": "other"},
            {"type": "command", "command": "startup-hygiene --kill"}
        ]}]}});
        assert_eq!(remove(&mut mixed).unwrap(), 2);
        assert!(same(
            &mixed,
            &json!({"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "other"}]}]}})
        ));
        assert_eq!(remove(&mut mixed).unwrap(), 0);
    }

    #[test]
    fn shapes_it_cannot_edit_are_errors() {
        for bad in [
            json!([]),
            json!("x"),
            json!({"hooks": []}),
            json!({"hooks": {"SessionStart": {}}}),
        ] {
            let mut v = bad.clone();
            assert!(add(&mut v, &entry("/b/startup-hygiene")).is_err(), "{bad}");
        }
        assert!(remove(&mut json!([])).is_err());
        // Nothing of ours can be in a malformed hooks section: nothing to remove.
        assert_eq!(remove(&mut json!({"hooks": []})).unwrap(), 0);
        // Groups it does not understand are left alone.
        let mut v = json!({"hooks": {"SessionStart": ["?", {"hooks": 3}]}});
        add(&mut v, &entry("/b/startup-hygiene")).unwrap();
        assert_eq!(v["hooks"]["SessionStart"][0], json!("?"));
        assert_eq!(v["hooks"]["SessionStart"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn nesting_counts_lists_and_objects_outside_strings() {
        assert_eq!(nesting(b"{}"), 1);
        assert_eq!(nesting(br#"{"a": [1, {"b": []}], "c": {}}"#), 4);
        assert_eq!(nesting(br#"{"a": "[[[{{{", "b": "\"[["}"#), 1);
        assert_eq!(nesting(b"1"), 0);
        assert_eq!(nesting(b"]]]}"), 0);
    }

    #[test]
    fn blank_is_json_whitespace_only() {
        for blank in [&b""[..], b" ", b"\n\r\t  \n"] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for not in [&b"{}"[..], b"\x0c", b" x", b"\xc2\xa0"] {
            assert!(!is_blank(not), "{not:?}");
        }
    }

    /// serde_json says "recursion limit exceeded" at 128 levels and no error category tells
    /// that case apart: if a new version words it otherwise, this fails, not the message.
    #[test]
    fn too_deep_is_told_apart_from_invalid() {
        let doc = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(parse_json(doc(MAX_DEPTH).as_bytes(), "f".into()).is_ok());
        let err = parse_json(doc(MAX_DEPTH + 1).as_bytes(), "f".into()).unwrap_err();
        assert!(err.contains("128 levels deep"), "{err}");
        assert!(err.contains("more than the 127"), "{err}");
        let err = parse_json(doc(5000).as_bytes(), "f".into()).unwrap_err();
        assert!(err.contains("5000 levels deep"), "{err}");
        let err = parse_json(b"{\"a\": [}", "f".into()).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn usage_states_the_limits() {
        assert!(USAGE.contains(&format!("{} s", EDIT_DEADLINE.as_secs())));
        assert!(USAGE.contains(&format!("more than {MAX_DEPTH} levels")));
    }

    #[test]
    fn watchdog_messages_name_the_file_and_what_is_left() {
        for (step, state) in [
            (Step::Opening, "left as it was"),
            (Step::Locking, "left as it was"),
            (Step::Editing, "left as it was"),
            (Step::Replacing, "either the old or the new"),
            (Step::Syncing, "holds the new settings"),
        ] {
            at(step);
            assert_eq!(current_step(), step);
            let msg = gave_up("/m/settings.json".into(), step);
            assert!(
                msg.contains("/m/settings.json") && msg.contains("10 s"),
                "{msg}"
            );
            assert!(msg.contains(state), "{step:?}: {msg}");
        }
    }

    #[test]
    fn flags() {
        let p = |a: &[&str]| parse(a.iter().map(Into::into));
        assert_eq!(
            p(&["add", "--file", "s.json"]).unwrap(),
            Request::Add {
                file: "s.json".into(),
                program: None,
                timeout: DEFAULT_TIMEOUT_SECS,
                hook_args: vec![],
            }
        );
        assert_eq!(
            p(&[
                "add",
                "--file=s.json",
                "--program",
                "/p/startup-hygiene",
                "--timeout",
                "9",
                "--",
                "--format",
                "hook-json"
            ])
            .unwrap(),
            Request::Add {
                file: "s.json".into(),
                program: Some("/p/startup-hygiene".into()),
                timeout: 9,
                hook_args: vec!["--format".into(), "hook-json".into()],
            }
        );
        assert_eq!(
            p(&["remove", "--file", "s.json"]).unwrap(),
            Request::Remove {
                file: "s.json".into()
            }
        );
        assert_eq!(p(&["--help"]).unwrap(), Request::Help);
        for (args, needle) in [
            (&[][..], "add or remove"),
            (&["frob"], "frob"),
            (&["add"], "--file"),
            (&["add", "--file"], "--file needs a value"),
            (&["add", "--file", "f", "--program", "rel/x"], "absolute"),
            (&["add", "--file", "f", "--timeout", "0"], "--timeout"),
            (&["add", "--file", "f", "--", "--bogus"], "--bogus"),
            (
                &["add", "--file", "f", "--", "--help"],
                "do not run the hook",
            ),
            (&["remove", "--file", "f", "--timeout", "3"], "--timeout"),
            (
                &["remove", "--file", "f", "--", "--kill"],
                "no hook arguments",
            ),
        ] {
            let err = p(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
