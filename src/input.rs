//! The SessionStart hook input on stdin: read bounded in size and time, parsed tolerantly.
//!
//! Every field is optional, unknown fields are ignored, and a field of the wrong type is
//! treated as absent. Nothing here can fail the run: a problem becomes a warning.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::os::sys;

/// The fields of the SessionStart input this program uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookInput {
    pub session_id: Option<String>,
    pub cwd: Option<String>,
    pub source: Option<String>,
}

/// Parses the input. Empty input is no input; anything else that is not a JSON object is
/// an error message.
pub fn parse(bytes: &[u8]) -> Result<HookInput, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(HookInput::default());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("stdin is not valid JSON ({e}); ignored"))?;
    let obj = value
        .as_object()
        .ok_or("stdin JSON is not an object; ignored")?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(HookInput {
        session_id: text("session_id"),
        cwd: text("cwd"),
        source: text("source"),
    })
}

/// Reads stdin: nothing from a terminal or other character device, at most `limit` bytes,
/// and no longer than `wait` (a pipe that nobody closes). No read ever waits: `poll` waits,
/// bounded, and each read takes only what is there, so a second reader that drains the pipe
/// between the two cannot hold the hook. Returns the input and a warning, if any.
pub fn read_stdin(limit: usize, wait: Duration) -> (HookInput, Option<String>) {
    // SAFETY: fd 0 is borrowed for the duration of this call only; if it is closed, the
    // calls below fail with EBADF and we go on without input.
    let fd = unsafe { BorrowedFd::borrow_raw(0) };
    let Some(kind) = sys::fd_kind(fd) else {
        return (HookInput::default(), None);
    };
    let end = Instant::now() + wait;
    let mut data = Vec::new();
    // Where pipes cannot be read with RWF_NOWAIT: a non-blocking description of our own.
    let mut own: Option<std::os::fd::OwnedFd> = None;
    loop {
        crate::deadline::checkpoint();
        let left = end.saturating_duration_since(Instant::now());
        let timed_out = match sys::wait_readable(fd, left) {
            Ok(ready) => !ready,
            Err(_) => return (HookInput::default(), None),
        };
        let read = if timed_out {
            Err(std::io::ErrorKind::TimedOut.into())
        } else {
            match &own {
                Some(own) => {
                    sys::read_nowait(own.as_fd(), sys::FdKind::Other, &mut data, limit + 1)
                }
                None => sys::read_nowait(fd, kind, &mut data, limit + 1),
            }
        };
        let read = match read {
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported && own.is_none() => {
                match sys::reopen_nonblocking(fd) {
                    Ok(fd) => own = Some(fd),
                    Err(e) => {
                        return (
                            HookInput::default(),
                            Some(format!(
                                "stdin cannot be read without waiting ({e}); ignored"
                            )),
                        );
                    }
                }
                continue;
            }
            r => r,
        };
        match read {
            Ok(0) => break,
            Ok(_) if data.len() > limit => {
                return (
                    HookInput::default(),
                    Some(format!("stdin is larger than {limit} bytes; ignored")),
                );
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) && !left.is_zero() => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) =>
            {
                // Out of time: use what came if it is complete, say so if it is not.
                return match parse(&data) {
                    Ok(input) => (input, None),
                    Err(_) => (
                        HookInput::default(),
                        Some(format!(
                            "stdin stayed open after {} bytes without completing its JSON within {} ms; ignored",
                            data.len(),
                            wait.as_millis()
                        )),
                    ),
                };
            }
            Err(_) => break,
        }
    }
    match parse(&data) {
        Ok(input) => (input, None),
        Err(why) => (HookInput::default(), Some(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_fields() {
        let i = parse(br#"{"session_id":"s","cwd":"/p","hook_event_name":"SessionStart","source":"startup","extra":{"x":1}}"#).unwrap();
        assert_eq!(i.cwd.as_deref(), Some("/p"));
        assert_eq!(i.session_id.as_deref(), Some("s"));
        let wrong = parse(br#"{"cwd": 5, "session_id": null}"#).unwrap();
        assert_eq!(wrong, HookInput::default());
        assert_eq!(parse(b"  \n").unwrap(), HookInput::default());
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{\"cwd\":").is_err());
        assert!(parse(b"\xff\xfe").is_err());
    }
}
