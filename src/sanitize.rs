//! Text from other processes and files (command lines, paths, labels) is data: before it is
//! shown to the model or a terminal it is escaped so that it holds no control character, no
//! escape sequence, no line break and no bidirectional override, and it is truncated.
//!
//! What is escaped is one table, generated from the Unicode Character Database: every
//! control, format and separator character and every code point that renders as nothing
//! (variation selectors, tags, fillers, unassigned code points), in every output format.

use std::cmp::Ordering;
use std::fmt::Write as _;

mod table;

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
    // The common case: printable ASCII that fits, shown as it is.
    let plain = |b: u8| b < 0x80 && (ASCII_ESCAPED >> b) & 1 == 0;
    let quoting = |b: u8| escape_quotes && (b == b'\\' || b == b'"');
    if input.len() <= max_chars && input.bytes().all(|b| plain(b) && !quoting(b)) {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len().min(max_chars.saturating_mul(4)));
    let mut used = 0;
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        let shown = Shown::of(c, escape_quotes);
        let len = shown.len();
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
        shown.push_to(&mut out);
        used += len;
    }
    out
}

/// `sanitize`, inside double quotes (which are escaped within): unmistakably data.
pub fn quote(input: &str, max_chars: usize) -> String {
    format!("\"{}\"", sanitize(input, max_chars.saturating_sub(2)))
}

/// How one character is shown.
enum Shown {
    Itself(char),
    /// A backslash and this character: `\\`, `\"`, `\n`, `\r`, `\t`.
    Short(char),
    /// `\u{hex}`.
    Hex(u32),
}

impl Shown {
    fn of(c: char, escape_quotes: bool) -> Shown {
        match c {
            '\\' | '"' if escape_quotes => Shown::Short(c),
            '\\' | '"' => Shown::Itself(c),
            '\n' => Shown::Short('n'),
            '\r' => Shown::Short('r'),
            '\t' => Shown::Short('t'),
            c if is_unsafe(c) => Shown::Hex(c as u32),
            c => Shown::Itself(c),
        }
    }

    /// In characters.
    fn len(&self) -> usize {
        match *self {
            Shown::Itself(_) => 1,
            Shown::Short(_) => 2,
            Shown::Hex(n) => 4 + (u32::BITS - (n | 1).leading_zeros()).div_ceil(4) as usize,
        }
    }

    fn push_to(&self, out: &mut String) {
        match *self {
            Shown::Itself(c) => out.push(c),
            Shown::Short(c) => {
                out.push('\\');
                out.push(c);
            }
            Shown::Hex(n) => {
                let _ = write!(out, "\\u{{{n:x}}}");
            }
        }
    }
}

/// Whether `c` is escaped: a control, format or separator character, a space other than
/// U+0020, a default-ignorable or unassigned code point, or a character blank by design
/// (`table.rs` says which, from the Unicode Character Database).
pub fn is_unsafe(c: char) -> bool {
    let c = c as u32;
    if c < 0x80 {
        return (ASCII_ESCAPED >> c) & 1 == 1;
    }
    table::ESCAPED
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

/// The table's ASCII part as a bit per character: the common case needs no search.
const ASCII_ESCAPED: u128 = {
    let mut mask = 0u128;
    let mut i = 0;
    while i < table::ESCAPED.len() && table::ESCAPED[i].0 < 0x80 {
        let (lo, hi) = table::ESCAPED[i];
        let mut c = lo;
        while c <= hi && c < 0x80 {
            mask |= 1 << c;
            c += 1;
        }
        i += 1;
    }
    mask
};

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
    fn escapes_what_hides() {
        // Variation selectors, fillers, format characters outside the bidi and zero-width
        // ones, tags, spaces other than U+0020, unassigned code points.
        for c in [
            '\u{fe0f}',
            '\u{e0100}',
            '\u{180b}',
            '\u{115f}',
            '\u{3164}',
            '\u{ffa0}',
            '\u{34f}',
            '\u{17b4}',
            '\u{2800}',
            '\u{600}',
            '\u{13430}',
            '\u{1d173}',
            '\u{e0041}',
            '\u{200b}',
            '\u{a0}',
            '\u{3000}',
            '\u{378}',
            '\u{fff0}',
            '\u{ffff}',
        ] {
            let escaped = format!("a\\u{{{:x}}}b", c as u32);
            assert_eq!(sanitize(&format!("a{c}b"), 50), escaped);
            assert_eq!(sanitize_json(&format!("a{c}b"), 50), escaped);
        }
        assert_eq!(sanitize("é 中 😀 \u{fffd}", 50), "é 中 😀 \u{fffd}");
    }

    #[test]
    fn the_table_is_sorted_and_its_ascii_part_is_the_controls() {
        for w in table::ESCAPED.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 + 1 < w[1].0, "{w:x?}");
        }
        let last = table::ESCAPED[table::ESCAPED.len() - 1];
        assert!(last.0 <= last.1 && last.1 <= 0x10_ffff);
        assert!(
            table::ESCAPED
                .iter()
                .all(|&(lo, hi)| hi < 0xd800 || lo > 0xdfff)
        );
        assert_eq!(ASCII_ESCAPED, ((1 << 0x20) - 1) | (1 << 0x7f));
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
