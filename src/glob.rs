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

/// Where `needle` first occurs in `hay`, in O(n + m) for any input.
///
/// `memchr` for the needle's rarest byte, then a compare around it. For the short needles
/// and haystacks here this beats a general `memmem`, whose set-up per call costs more than
/// the search; and anchoring on a rare byte (the `1` of `CLAUDECODE=1`, the `j` of
/// `server.js`) instead of a common one (`/`, `C`) keeps the number of candidate positions
/// small. Candidates are tried left to right, so the first match found is the leftmost.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    find_from(hay, needle, rarest(needle))
}

/// `find` with the anchor chosen.
///
/// On adversarial input (needle `q`×10000 in `q`×9999 + `z` repeated) every position is a
/// candidate and each compare costs the needle's length. So the compares are budgeted at
/// twice the distance covered plus four needles; past that, Two-Way takes over from the
/// current candidate, whose work is linear whatever the input. No position before it can
/// match (every candidate there failed its compare), so the answer is still the leftmost.
///
/// Inlined so that `procfs::has_entry`'s fixed needle compiles to a fixed-size compare.
#[inline(always)]
fn find_from(hay: &[u8], needle: &[u8], anchor: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let byte = needle[anchor];
    // A match starting at `s` has its anchor at `s + anchor`.
    let mut from = anchor;
    let last = hay.len().checked_sub(needle.len() - anchor)?;
    let mut compared = 0;
    while from <= last {
        let rest = &hay[from..=last];
        // SAFETY: pointer and length describe a live slice; memchr only reads it.
        let at = unsafe { libc::memchr(rest.as_ptr().cast(), byte as i32, rest.len()) };
        if at.is_null() {
            tick(rest.len());
            return None;
        }
        let pos = from + (at as usize - rest.as_ptr() as usize);
        tick(pos - from + 1);
        let start = pos - anchor;
        compared += needle.len();
        if compared > 2 * start + 4 * needle.len() {
            return two_way(&hay[start..], needle).map(|at| start + at);
        }
        tick(needle.len());
        if &hay[start..start + needle.len()] == needle {
            return Some(start);
        }
        from = pos + 1;
    }
    None
}

/// The needle's rarest byte in command lines and environments, by `COMMONNESS`; the first
/// of equals.
fn rarest(needle: &[u8]) -> usize {
    (0..needle.len())
        .min_by_key(|&i| COMMONNESS[needle[i] as usize])
        .unwrap_or(0)
}

/// How common a byte is in command lines and environments, roughly: lower is rarer.
const COMMONNESS: [u8; 256] = {
    const COMMON: &[u8] = b" /=_-.eatoinsrlcdumphESTAROLNICDHPU0123:";
    let mut table = [0; 256];
    let mut i = 0;
    while i < COMMON.len() {
        table[COMMON[i] as usize] = 255 - i as u8;
        i += 1;
    }
    table
};

/// Crochemore and Perrin's Two-Way search (as in std's `str::find`, which needs a `str`):
/// the leftmost `needle` in `hay` with at most about 2·n + 2·m byte compares for any
/// input, and no allocation. `needle` is not empty.
#[cold]
#[inline(never)]
fn two_way(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // The critical factorization: needle = left · right, with `right` the larger of the
    // maximal suffixes under the two byte orders.
    let (crit_less, period_less) = maximal_suffix(needle, false);
    let (crit_more, period_more) = maximal_suffix(needle, true);
    let (crit, period) = if crit_less > crit_more {
        (crit_less, period_less)
    } else {
        (crit_more, period_more)
    };
    // A needle whose left part repeats one period on is periodic: after a shift by the
    // period, its first `len - period` bytes are known to match (`memory`). Otherwise any
    // shift larger than either part is safe, and nothing is remembered.
    tick(crit);
    let periodic = needle[..crit] == needle[period..period + crit];
    let period = if periodic {
        period
    } else {
        crit.max(needle.len() - crit) + 1
    };
    let byteset = needle.iter().fold(0u64, |set, &b| set | 1 << (b & 63));
    let mut pos = 0;
    let mut memory = 0;
    'search: while let Some(&tail) = hay.get(pos + needle.len() - 1) {
        tick(1);
        // A last byte the needle does not hold rules out every start up to it.
        if byteset >> (tail & 63) & 1 == 0 {
            pos += needle.len();
            memory = 0;
            continue;
        }
        for i in crit.max(memory)..needle.len() {
            tick(1);
            if needle[i] != hay[pos + i] {
                pos += i - crit + 1;
                memory = 0;
                continue 'search;
            }
        }
        for i in (memory..crit).rev() {
            tick(1);
            if needle[i] != hay[pos + i] {
                pos += period;
                if periodic {
                    memory = needle.len() - period;
                }
                continue 'search;
            }
        }
        return Some(pos);
    }
    None
}

/// The start of the maximal suffix of `s` (under `<`, or `>` when `greater`) and its
/// period; linear in `s`.
fn maximal_suffix(s: &[u8], greater: bool) -> (usize, usize) {
    let (mut left, mut right, mut offset, mut period) = (0, 1, 0, 1);
    while let Some(&a) = s.get(right + offset) {
        tick(1);
        let b = s[left + offset];
        if (a < b && !greater) || (a > b && greater) {
            // The suffix at `right` is smaller: the period is everything since `left`.
            right += offset + 1;
            offset = 0;
            period = right - left;
        } else if a == b {
            // Still inside a repetition of the period.
            if offset + 1 == period {
                right += offset + 1;
                offset = 0;
            } else {
                offset += 1;
            }
        } else {
            // The suffix at `right` is larger: it is the new candidate.
            left = right;
            right += 1;
            offset = 0;
            period = 1;
        }
    }
    (left, period)
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

/// Counts the matcher's steps in unit tests (bytes scanned or compared), so a test can bound the work without timing it. Nothing in other builds.
#[inline(always)]
fn tick(_steps: usize) {
    #[cfg(test)]
    tests::WORK.with(|w| w.set(w.get() + _steps as u64));
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::{Glob, find, matches, two_way};
    use crate::defaults::ORCHESTRATOR_GLOB;

    thread_local! {
        pub(super) static WORK: Cell<u64> = const { Cell::new(0) };
    }

    /// What `f` returns and the matcher steps it took.
    fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
        WORK.with(|w| w.set(0));
        let r = f();
        (r, WORK.with(Cell::get))
    }

    /// splitmix64, for repeatable random cases.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

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

    /// Two-Way on its own (it rarely runs inside `find`), and `find` where it hands over,
    /// against a naive search, on small alphabets and periodic needles where it is subtle.
    #[test]
    fn two_way_and_find_agree_with_a_naive_search() {
        let mut rng = Rng(0x2A7);
        for case in 0..20000 {
            let alphabet: &[u8] = rng.pick(&[&b"ab"[..], b"abc", b"aab", b"qz"]);
            let word = |rng: &mut Rng, max: usize| -> Vec<u8> {
                let len = rng.below(max);
                (0..len).map(|_| rng.pick(alphabet)).collect()
            };
            let needle = match rng.below(3) {
                0 => [word(&mut rng, 12), vec![rng.pick(alphabet)]].concat(),
                // Periodic: a short word repeated, sometimes with one byte changed.
                _ => {
                    let unit = [word(&mut rng, 4), vec![rng.pick(alphabet)]].concat();
                    let mut n = unit.repeat(1 + rng.below(8));
                    if rng.below(2) == 0 {
                        let at = rng.below(n.len());
                        n[at] = rng.pick(alphabet);
                    }
                    n
                }
            };
            let mut hay = word(&mut rng, 80);
            for _ in 0..rng.below(4) {
                let at = rng.below(hay.len() + 1);
                let cut = rng.below(needle.len() + 1);
                hay.splice(at..at, needle[..cut].iter().copied());
            }
            let naive = hay
                .windows(needle.len())
                .position(|w| w == needle.as_slice());
            assert_eq!(
                two_way(&hay, &needle),
                naive,
                "case {case}: {hay:?} {needle:?}"
            );
            assert_eq!(
                find(&hay, &needle),
                naive,
                "case {case}: {hay:?} {needle:?}"
            );
        }
        // Past the budget, and the match still the leftmost.
        let mut hay = [b"q".repeat(99), b"z".to_vec()].concat().repeat(5);
        hay.extend(b"q".repeat(100));
        hay.extend(b"q".repeat(100));
        assert_eq!(find(&hay, &b"q".repeat(100)), Some(500));
    }

    /// `find`'s worst case: 9,900,010,001 steps before (every `q` a candidate compared over
    /// up to 10,000 bytes).
    #[test]
    fn find_is_linear_on_its_worst_case() {
        let needle = b"q".repeat(10_000);
        let hay = [b"q".repeat(9_999), b"z".to_vec()].concat().repeat(100);
        let (at, steps) = counted(|| find(&hay, &needle));
        assert_eq!(at, None);
        let (n, m) = (hay.len() as u64, needle.len() as u64);
        assert!(steps <= 4 * (n + m), "{steps} steps");
        let hit = [hay.clone(), needle.clone()].concat();
        let (at, hit_steps) = counted(|| find(&hit, &needle));
        assert_eq!(at, Some(hay.len()));
        assert!(hit_steps <= 4 * (n + 2 * m), "{hit_steps} steps");
        eprintln!("q×10000 in (q×9999 z)×100: {steps} steps; found at the end: {hit_steps}");
    }
}
