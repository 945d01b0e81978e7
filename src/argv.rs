//! Command lines and environments as NUL-separated bytes, the form both platforms give
//! (`/proc/<pid>/cmdline` and `environ` on Linux, `KERN_PROCARGS2` split on macOS): what
//! match rules see, and Claude Code's marks.

/// The command line without its trailing NULs: the final argument's, and any padding after
/// it (`npm exec` pads its command line with dozens; a rewritten process title leaves a run
/// of them). Trailing NULs are not arguments.
fn body(cmdline: &[u8]) -> &[u8] {
    let end = cmdline.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &cmdline[..end]
}

/// The arguments of a NUL-separated command line (a missing final NUL is tolerated; empty
/// arguments at the end are padding, not arguments).
pub fn split_args(cmdline: &[u8]) -> Vec<&[u8]> {
    let body = body(cmdline);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).collect()
}

/// Writes the command line into `out` with its arguments joined by spaces (what match rules
/// see), reusing `out`'s allocation.
pub fn join_cmdline_into(cmdline: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(body(cmdline).iter().map(|&b| if b == 0 { b' ' } else { b }));
}

/// The command line as one string, arguments joined by spaces: what match rules see.
pub fn joined_cmdline(cmdline: &[u8]) -> String {
    let args = split_args(cmdline);
    let mut out = Vec::with_capacity(cmdline.len());
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(arg);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Claude Code's marks in a process environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaudeMarkers {
    /// `CLAUDECODE=1`.
    pub claudecode: bool,
    pub session_id: Option<String>,
    /// `CLAUDE_CODE_CHILD_SESSION` is set: a tool or hook child, not an MCP server.
    pub child_session: bool,
    pub project_dir: Option<String>,
}

impl ClaudeMarkers {
    /// Started by Claude Code as a (stdio MCP) server: the env rule.
    pub fn marks_server(&self) -> bool {
        self.claudecode && self.session_id.is_some() && !self.child_session
    }
}

/// Whether the environment holds exactly the entry `entry` (e.g. `CLAUDECODE=1`): one
/// `memmem` over the buffer, so most processes are settled without parsing theirs.
pub fn has_entry(environ: &[u8], entry: &[u8]) -> bool {
    let mut hay = environ;
    while let Some(at) = crate::glob::find(hay, entry) {
        let starts = at == 0 || hay[at - 1] == 0;
        let end = at + entry.len();
        if starts && (end == hay.len() || hay[end] == 0) {
            return true;
        }
        hay = &hay[at + 1..];
    }
    false
}

pub fn parse_environ(environ: &[u8]) -> ClaudeMarkers {
    let mut m = ClaudeMarkers::default();
    for entry in environ.split(|&b| b == 0) {
        if entry == b"CLAUDECODE=1" {
            m.claudecode = true;
        } else if let Some(v) = entry.strip_prefix(b"CLAUDE_CODE_SESSION_ID=")
            && !v.is_empty()
        {
            m.session_id = Some(String::from_utf8_lossy(v).into_owned());
        } else if entry.starts_with(b"CLAUDE_CODE_CHILD_SESSION=") {
            m.child_session = true;
        } else if let Some(v) = entry.strip_prefix(b"CLAUDE_PROJECT_DIR=")
            && !v.is_empty()
        {
            m.project_dir = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_join() {
        assert_eq!(split_args(b"a\0b c\0"), vec![&b"a"[..], b"b c"]);
        assert_eq!(split_args(b"a\0b"), vec![&b"a"[..], b"b"]);
        assert!(split_args(b"").is_empty());
        assert_eq!(
            joined_cmdline(b"bun\0/x/dist/server.js\0"),
            "bun /x/dist/server.js"
        );
        assert_eq!(joined_cmdline(b"\xff\0"), "\u{fffd}");
        // npm exec's padding: 36 NULs after the last argument.
        let mut npm = b"npm exec stubborn-mcp\0globtest\0".to_vec();
        npm.extend([0; 36]);
        assert_eq!(joined_cmdline(&npm), "npm exec stubborn-mcp globtest");
        let mut line = Vec::new();
        join_cmdline_into(&npm, &mut line);
        assert_eq!(line, b"npm exec stubborn-mcp globtest");
        assert_eq!(
            split_args(&npm),
            vec![&b"npm exec stubborn-mcp"[..], b"globtest"]
        );
        assert_eq!(split_args(b"a\0\0b\0\0"), vec![&b"a"[..], b"", b"b"]);
    }

    #[test]
    fn environ_markers() {
        let m = parse_environ(
            b"PATH=/bin\0CLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=abc\0CLAUDE_PROJECT_DIR=/p\0",
        );
        assert!(m.marks_server());
        assert_eq!(m.session_id.as_deref(), Some("abc"));
        assert_eq!(m.project_dir.as_deref(), Some("/p"));
        assert!(has_entry(b"A=1\0CLAUDECODE=1\0B=2", b"CLAUDECODE=1"));
        assert!(has_entry(b"CLAUDECODE=1", b"CLAUDECODE=1"));
        assert!(!has_entry(b"XCLAUDECODE=1\0CLAUDECODE=10", b"CLAUDECODE=1"));
        assert!(has_entry(b"XCLAUDECODE=1\0CLAUDECODE=1\0", b"CLAUDECODE=1"));
        let hook =
            parse_environ(b"CLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=abc\0CLAUDE_CODE_CHILD_SESSION=1");
        assert!(!hook.marks_server());
        assert!(!parse_environ(b"CLAUDECODE=0\0CLAUDE_CODE_SESSION_ID=abc").marks_server());
        assert!(!parse_environ(b"XCLAUDECODE=1\0CLAUDE_CODE_SESSION_ID=abc").marks_server());
    }
}
