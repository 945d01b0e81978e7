//! The glob matcher for command-line rules: `*` matches any run of characters (spaces and
//! `/` included), `?` exactly one character, everything else itself. A rule matches the
//! whole command line, so most rules start and end with `*`.

/// A rule's pattern, prepared once per run. A pattern of literals and `*` (every built-in
/// rule, and most users') is matched as byte substrings, in order, with `memmem`: no UTF-8
/// decoding of the command line, which is read for every process. A pattern with `?` falls
/// back to `matches`.
#[derive(Clone, Debug)]
pub struct Glob {
    pattern: String,
    /// The literal pieces between `*`s; `None` when the pattern has a `?`.
    pieces: Option<Vec<Vec<u8>>>,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let pieces = (!pattern.contains('?'))
            .then(|| pattern.split('*').map(|p| p.as_bytes().to_vec()).collect());
        Glob {
            pattern: pattern.to_string(),
            pieces,
        }
    }

    /// Matches a command line's bytes (invalid UTF-8 counts as U+FFFD, as in `matches`).
    pub fn matches_bytes(&self, text: &[u8]) -> bool {
        let Some(pieces) = &self.pieces else {
            return matches(&self.pattern, &String::from_utf8_lossy(text));
        };
        let Ok(text) = std::str::from_utf8(text).map(str::as_bytes) else {
            return matches(&self.pattern, &String::from_utf8_lossy(text));
        };
        let (first, rest) = pieces
            .split_first()
            .expect("split yields at least one piece");
        let Some(last) = rest.last() else {
            return text == first.as_slice();
        };
        if text.len() < first.len() + last.len()
            || !text.starts_with(first)
            || !text.ends_with(last)
        {
            return false;
        }
        let mut hay = &text[first.len()..text.len() - last.len()];
        for piece in &rest[..rest.len() - 1] {
            match find(hay, piece) {
                Some(at) => hay = &hay[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Where `needle` first occurs in `hay`: `memchr` for the needle's rarest byte, then a
/// compare around it. For the short needles and haystacks here this beats a general
/// `memmem`, whose set-up per call costs more than the search; and anchoring on a rare byte
/// (the `1` of `CLAUDECODE=1`, the `j` of `server.js`) instead of a common one (`/`, `C`)
/// keeps the number of candidate positions small. Candidates are tried left to right, so
/// the first match found is the leftmost.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let anchor = (0..needle.len())
        .min_by_key(|&i| commonness(needle[i]))
        .unwrap_or(0);
    let byte = needle[anchor];
    // A match starting at `s` has its anchor at `s + anchor`.
    let mut from = anchor;
    let last = hay.len().checked_sub(needle.len() - anchor)?;
    while from <= last {
        let rest = &hay[from..=last];
        // SAFETY: pointer and length describe a live slice; memchr only reads it.
        let at = unsafe { libc::memchr(rest.as_ptr().cast(), byte as i32, rest.len()) };
        if at.is_null() {
            return None;
        }
        let pos = from + (at as usize - rest.as_ptr() as usize);
        let start = pos - anchor;
        if &hay[start..start + needle.len()] == needle {
            return Some(start);
        }
        from = pos + 1;
    }
    None
}

/// How common a byte is in command lines and environments, roughly: lower is rarer.
fn commonness(b: u8) -> u8 {
    const COMMON: &[u8] = b" /=_-.eatoinsrlcdumphESTAROLNICDHPU0123:";
    match COMMON.iter().position(|&c| c == b) {
        Some(i) => 255 - i as u8,
        None => 0,
    }
}

/// The reference matcher, on characters.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Classic two-pointer matching with one backtrack point, over byte offsets that always
    // sit on character boundaries: linear in practice, never exponential, no allocation.
    let next = |s: &str, i: usize| i + s[i..].chars().next().map_or(1, char::len_utf8);
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len()
            && (p[pi] == b'?' || pattern[pi..].chars().next() == text[ti..].chars().next())
        {
            pi = next(pattern, pi);
            ti = next(text, ti);
        } else if let Some((sp, st)) = star {
            let st = next(text, st);
            pi = sp + 1;
            ti = st;
            star = Some((sp, st));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::{Glob, matches};
    use crate::defaults::ORCHESTRATOR_GLOB;

    #[test]
    fn basics() {
        let table = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*x*y*", "..x..y..", true),
            ("*x*y*", "..y..x..", false),
            ("?", "é", true),
            ("**a**", "bab", true),
        ];
        for (p, t, want) in table {
            assert_eq!(matches(p, t), want, "{p:?} ~ {t:?}");
        }
    }

    #[test]
    fn orchestrator_rule() {
        for hit in [
            "bun /home/u/claude-plugins/plugins/orchestrator/dist/server.js",
            "bun /home/u/.claude/plugins/cache/spawnbox/orchestrator/0.30.53/dist/server.js --stdio",
            "node orchestrator/dist/server.js",
        ] {
            assert!(matches(ORCHESTRATOR_GLOB, hit), "{hit}");
        }
        for miss in [
            "bun /x/other/dist/server.js",
            "bun orchestrator/src/server.ts",
            "vim",
        ] {
            assert!(!matches(ORCHESTRATOR_GLOB, miss), "{miss}");
        }
    }

    #[test]
    fn prepared_globs_agree_with_the_reference() {
        let patterns = [
            "",
            "*",
            "a",
            "*a*",
            "a*",
            "*a",
            "a*b*c",
            "*orchestrator/*dist/server.js*",
            "a?c*",
            "**",
            "*é*",
            "ab*ab",
        ];
        let texts = [
            "",
            "a",
            "ab",
            "abc",
            "abab",
            "aXbYc",
            "ba",
            "é",
            "xéy",
            "bun /x/orchestrator/1/dist/server.js --s",
            "a\u{fffd}c",
        ];
        for p in patterns {
            let g = Glob::new(p);
            for t in texts {
                assert_eq!(
                    g.matches_bytes(t.as_bytes()),
                    matches(p, t),
                    "{p:?} ~ {t:?}"
                );
            }
        }
        assert!(Glob::new("*\u{fffd}*").matches_bytes(b"a\xffb"));
        assert!(!Glob::new("ab*ab").matches_bytes(b"aba"));
    }

    #[test]
    fn find_substrings() {
        assert_eq!(super::find(b"hello", b"ll"), Some(2));
        assert_eq!(super::find(b"hello", b""), Some(0));
        assert_eq!(super::find(b"hello", b"xl"), None);
        assert_eq!(super::find(b"hello", b"o"), Some(4));
        assert_eq!(super::find(b"hello", b"lo!"), None);
        assert_eq!(super::find(b"", b"a"), None);
        assert_eq!(super::find(b"aab", b"ab"), Some(1));
        assert_eq!(super::find(b"xjxjs", b"js"), Some(3));
        assert_eq!(super::find(b"js", b"js"), Some(0));
        assert_eq!(super::find(b"j", b"js"), None);
        assert_eq!(super::find(b"s.js.js", b".js"), Some(1));
        // Leftmost, whatever byte anchors the search.
        for (hay, needle) in [
            (&b"abcabcab"[..], &b"cab"[..]),
            (b"zzqzzqzz", b"zq"),
            (b"aaaa", b"aa"),
        ] {
            let naive = hay.windows(needle.len()).position(|w| w == needle);
            assert_eq!(super::find(hay, needle), naive, "{hay:?} {needle:?}");
        }
    }

    #[test]
    fn pathological_pattern_is_fast_enough_to_finish() {
        let text = "a".repeat(5000);
        assert!(!matches(&format!("{}b", "*a".repeat(50)), &text));
    }
}
