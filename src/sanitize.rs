//! Text from other processes and files (command lines, paths, labels) is data: before it is
//! shown to the model or a terminal it is escaped so that it holds no control character, no
//! escape sequence, no line break and no bidirectional override, and it is truncated.

/// Escapes `input` and cuts it to at most `max_chars` characters (an ellipsis marks a cut;
/// an escape is never split).
pub fn sanitize(input: &str, max_chars: usize) -> String {
    escape_capped(input, max_chars, true)
}

/// For a JSON string: like `sanitize` (the decoded string, printed by `jq -r`, must not
/// steer a terminal either), but quotes and backslashes are left to JSON's own escaping
/// instead of being escaped twice.
pub fn sanitize_json(input: &str, max_chars: usize) -> String {
    escape_capped(input, max_chars, false)
}

fn escape_capped(input: &str, max_chars: usize, escape_quotes: bool) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars.saturating_mul(4)));
    let mut used = 0;
    let mut piece = String::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        piece.clear();
        match c {
            '\\' | '"' if !escape_quotes => piece.push(c),
            c => escape_into(c, &mut piece),
        }
        let len = piece.chars().count();
        // Leave room for the ellipsis unless this is the last piece and it fits exactly.
        let room = if chars.peek().is_some() {
            max_chars.saturating_sub(1)
        } else {
            max_chars
        };
        if used + len > room {
            if max_chars > 0 {
                out.push('…');
            }
            return out;
        }
        out.push_str(&piece);
        used += len;
    }
    out
}

/// `sanitize`, inside double quotes (which are escaped within): unmistakably data.
pub fn quote(input: &str, max_chars: usize) -> String {
    format!("\"{}\"", sanitize(input, max_chars.saturating_sub(2)))
}

fn escape_into(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Control characters (C0, DEL, C1), line and paragraph separators, and the invisible
/// formatting characters that can reorder or hide text (bidi overrides, isolates, marks,
/// zero-width characters, tags).
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{61c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_steer() {
        assert_eq!(sanitize("a\nb", 50), "a\\nb");
        assert_eq!(sanitize("\x1b[31mred", 50), "\\u{1b}[31mred");
        assert_eq!(sanitize("x\u{202e}y", 50), "x\\u{202e}y");
        assert_eq!(sanitize("\u{85}", 50), "\\u{85}");
        assert_eq!(quote("say \"hi\"", 50), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn json_variant_leaves_quoting_to_json() {
        assert_eq!(
            sanitize_json("say \"hi\" \\ a\nb", 50),
            "say \"hi\" \\ a\\nb"
        );
        assert_eq!(sanitize_json("x\u{202e}y\u{85}", 50), "x\\u{202e}y\\u{85}");
        assert_eq!(sanitize_json("abcdef", 4), "abc…");
        let v = serde_json::Value::String(sanitize_json("\x1b[2J\u{2066}", 50)).to_string();
        assert!(!v.contains('\x1b') && !v.contains('\u{2066}'), "{v}");
    }

    #[test]
    fn truncates_without_splitting_escapes() {
        assert_eq!(sanitize("abcdef", 4), "abc…");
        assert_eq!(sanitize("abcd", 4), "abcd");
        assert_eq!(sanitize("ab\ncd", 4), "ab…");
        assert_eq!(sanitize("abc", 0), "");
        let long = "é".repeat(5000);
        assert_eq!(sanitize(&long, 100).chars().count(), 100);
        assert_eq!(quote(&long, 100).chars().count(), 100);
    }
}
