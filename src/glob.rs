//! The glob matcher for command-line rules: `*` matches any run of characters (spaces and
//! `/` included), `?` exactly one character, everything else itself. A rule matches the
//! whole command line, so most rules start and end with `*`.
//!
//! Every rule runs on every same-user process's command line (up to
//! `defaults::PROC_READ_CAP` bytes) at every session start, so matching is linear in the
//! command line for any pattern `Glob::new` accepts: one careless or hostile rule must not
//! eat the run's deadline. A pattern of literals and `*` costs O(n + m) whatever its length;
//! a pattern with `?` costs O(n · ⌈m/64⌉), which is why such a pattern is bounded by
//! `MAX_PATTERN_CHARS`.

/// The most characters a pattern with `?` may have. Such a pattern runs as a bit-parallel
/// automaton with one bit per position, so each character of a command line costs one step
/// per 64 positions: at this bound 4, about 10 ms for the largest command line the scan
/// reads (`defaults::PROC_READ_CAP`), where the old backtracking matcher took seconds. No
/// real rule comes near it. Patterns of literals and `*` alone have no bound: they cost
/// the same at any length.
pub const MAX_PATTERN_CHARS: usize = 256;

/// 64-bit words in the automaton's state set at `MAX_PATTERN_CHARS`.
const MAX_WORDS: usize = MAX_PATTERN_CHARS.div_ceil(64);

/// A rule's pattern, prepared once per run.
#[derive(Clone, Debug)]
pub struct Glob(Engine);

#[derive(Clone, Debug)]
enum Engine {
    /// Literals and `*` (every built-in rule, and most users'): the pieces between `*`s,
    /// found in order as byte substrings. `lossy` when a piece holds U+FFFD, the character
    /// an invalid byte of the command line counts as: only then is the line decoded.
    Pieces { pieces: Vec<Piece>, lossy: bool },
    /// Anything with `?`.
    Nfa(Nfa),
}

impl Glob {
    /// Prepares `pattern`, or says why it is refused: a pattern with `?` longer than
    /// `MAX_PATTERN_CHARS` characters (the message names both numbers).
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if !pattern.contains('?') {
            return Ok(Glob(Engine::Pieces {
                pieces: pattern.split('*').map(Piece::new).collect(),
                lossy: pattern.contains(char::REPLACEMENT_CHARACTER),
            }));
        }
        let chars = pattern.chars().count();
        if chars > MAX_PATTERN_CHARS {
            return Err(format!(
                "a pattern with '?' may have at most {MAX_PATTERN_CHARS} characters; this one has {chars}"
            ));
        }
        Ok(Glob(Engine::Nfa(Nfa::new(pattern))))
    }

    /// Matches a command line's bytes (invalid UTF-8 counts as U+FFFD, as in `matches`).
    pub fn matches_bytes(&self, text: &[u8]) -> bool {
        match &self.0 {
            Engine::Pieces { pieces, lossy } if *lossy => {
                let text = String::from_utf8_lossy(text);
                tick(text.len());
                pieces_match(pieces, text.as_bytes())
            }
            // No need to decode: a piece is valid UTF-8 and starts with a character's first
            // byte, which a decoder never takes into an invalid sequence before it, so the
            // pieces sit at the same places among the raw bytes as among the characters.
            Engine::Pieces { pieces, .. } => pieces_match(pieces, text),
            Engine::Nfa(nfa) => nfa.matches(text),
        }
    }
}

/// A literal piece of a pattern and the byte `find` looks for first.
#[derive(Clone, Debug)]
struct Piece {
    bytes: Vec<u8>,
    anchor: usize,
}

impl Piece {
    fn new(piece: &str) -> Piece {
        Piece {
            bytes: piece.as_bytes().to_vec(),
            anchor: rarest(piece.as_bytes()),
        }
    }
}

/// The first piece at the start, the last at the end, the others in order between them,
/// each at its leftmost place: leftmost leaves the most room for the rest, so no other
/// placement needs trying. Each `find` costs O(distance covered + piece), so the whole
/// match is O(n + m).
fn pieces_match(pieces: &[Piece], text: &[u8]) -> bool {
    let (first, rest) = pieces
        .split_first()
        .expect("split yields at least one piece");
    let Some(last) = rest.last() else {
        return text == first.bytes.as_slice();
    };
    let (first, last) = (&first.bytes, &last.bytes);
    tick(first.len() + last.len());
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut hay = &text[first.len()..text.len() - last.len()];
    for piece in &rest[..rest.len() - 1] {
        match find_from(hay, &piece.bytes, piece.anchor) {
            Some(at) => hay = &hay[at + piece.bytes.len()..],
            None => return false,
        }
    }
    true
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

/// `find` with the anchor chosen: where `Glob` has it prepared.
///
/// On adversarial input (needle `q`×10000 in `q`×9999 + `z` repeated) every position is a
/// candidate and each compare costs the needle's length. So the compares are budgeted at
/// twice the distance covered plus four needles; past that, Two-Way takes over from the
/// current candidate, whose work is linear whatever the input. No position before it can
/// match (every candidate there failed its compare), so the answer is still the leftmost.
///
/// Inlined so that `argv::has_entry`'s fixed needle compiles to a fixed-size compare.
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

/// A pattern with `?` as a nondeterministic automaton run bit-parallel (Shift-And): the
/// pattern's characters other than `*` are its positions, and bit `i` of the state set says
/// "the first `i + 1` positions match the text read so far". A character moves every live
/// bit one up where the next position takes it; a `*` after position `i` is a loop that
/// keeps bit `i` on any character. O(⌈m/64⌉) word operations per character of the text, no
/// backtracking, no allocation per match.
#[derive(Clone, Debug)]
struct Nfa {
    /// Words per state set: ⌈positions / 64⌉, at most `MAX_WORDS`.
    words: usize,
    /// The pattern starts with `*`: the state before the first position stays live.
    leading_star: bool,
    /// Bit `i`: a `*` follows position `i`.
    loops: Vec<u64>,
    /// Bit `i`: position `i` takes the character; `words` words for each ASCII character.
    ascii: Vec<u64>,
    /// The pattern's other characters, sorted, and their masks, `words` words each.
    others: Vec<char>,
    other_masks: Vec<u64>,
    /// The mask of a character the pattern does not name: its `?` positions.
    any: Vec<u64>,
    /// The last position's bit (word, mask): set after the whole text, the pattern matches.
    accept: (usize, u64),
}

impl Nfa {
    fn new(pattern: &str) -> Nfa {
        let positions = pattern.chars().filter(|&c| c != '*').count();
        let words = positions.div_ceil(64);
        debug_assert!(words <= MAX_WORDS);
        let bit = |i: usize| (i / 64, 1u64 << (i % 64));
        let mut loops = vec![0; words];
        let mut any = vec![0; words];
        let mut literals = Vec::new();
        let mut leading_star = false;
        let mut at = 0;
        for c in pattern.chars() {
            match c {
                '*' if at == 0 => leading_star = true,
                '*' => {
                    let (w, b) = bit(at - 1);
                    loops[w] |= b;
                }
                '?' => {
                    let (w, b) = bit(at);
                    any[w] |= b;
                    at += 1;
                }
                c => {
                    literals.push((c, at));
                    at += 1;
                }
            }
        }
        let mut others: Vec<char> = literals
            .iter()
            .map(|&(c, _)| c)
            .filter(|c| !c.is_ascii())
            .collect();
        others.sort_unstable();
        others.dedup();
        let mut ascii = any.repeat(128);
        let mut other_masks = any.repeat(others.len());
        for (c, at) in literals {
            let row = match others.binary_search(&c) {
                Ok(i) => &mut other_masks[i * words..],
                Err(_) => &mut ascii[c as usize * words..],
            };
            let (w, b) = bit(at);
            row[w] |= b;
        }
        Nfa {
            words,
            leading_star,
            loops,
            ascii,
            others,
            other_masks,
            any,
            accept: bit(positions.saturating_sub(1)),
        }
    }

    /// The mask of a character outside ASCII.
    fn other_mask(&self, c: char) -> &[u64] {
        match self.others.binary_search(&c) {
            Ok(i) => &self.other_masks[i * self.words..][..self.words],
            Err(_) => &self.any,
        }
    }

    fn matches(&self, text: &[u8]) -> bool {
        match self.words {
            // Only `*`s: not built by `Glob::new`, which sends such patterns to the pieces.
            0 => self.leading_star || text.is_empty(),
            // Most patterns: one word, which the compiler keeps in a register.
            1 => self.run::<1>(text),
            _ => self.run::<0>(text),
        }
    }

    /// The automaton over `text`, with `WORDS` words per state set (0: `self.words`).
    #[inline(always)]
    fn run<const WORDS: usize>(&self, text: &[u8]) -> bool {
        let (word, bit) = self.accept;
        let mut run = Run::<WORDS> {
            nfa: self,
            words: if WORDS > 0 { WORDS } else { self.words },
            live: [0; MAX_WORDS],
            entry: 1,
            accept_loops: self.loops[word] & bit != 0,
        };
        // Checking the whole line at once is much faster than decoding it in chunks.
        tick(text.len());
        let answer = match std::str::from_utf8(text) {
            Ok(valid) => run.valid(valid),
            Err(_) => text.utf8_chunks().find_map(|chunk| {
                run.valid(chunk.valid()).or_else(|| {
                    (!chunk.invalid().is_empty())
                        .then(|| run.step(self.other_mask(char::REPLACEMENT_CHARACTER)))
                        .flatten()
                })
            }),
        };
        answer.unwrap_or(run.live[word] & bit != 0)
    }
}

/// The automaton part way through a text.
struct Run<'a, const WORDS: usize> {
    nfa: &'a Nfa,
    words: usize,
    live: [u64; MAX_WORDS],
    /// What the state before the first position feeds into bit 0: the first character,
    /// and every later one after a leading `*`.
    entry: u64,
    /// The last position has a `*` after it.
    accept_loops: bool,
}

impl<const WORDS: usize> Run<'_, WORDS> {
    /// Valid text, character by character: `Some(answer)` once the rest of the text cannot
    /// change it.
    #[inline(always)]
    fn valid(&mut self, text: &str) -> Option<bool> {
        let mut i = 0;
        while let Some(&b) = text.as_bytes().get(i) {
            let takes = if b.is_ascii() {
                i += 1;
                &self.nfa.ascii[b as usize * self.words..][..self.words]
            } else {
                let c = text[i..].chars().next().expect("i is a character boundary");
                i += c.len_utf8();
                self.nfa.other_mask(c)
            };
            if let Some(answer) = self.step(takes) {
                return Some(answer);
            }
        }
        None
    }

    /// One character, by its mask.
    #[inline(always)]
    fn step(&mut self, takes: &[u64]) -> Option<bool> {
        let mut carry = self.entry;
        let mut alive = 0;
        let states = self.live[..self.words].iter_mut();
        for ((state, &takes), &keeps) in states.zip(takes).zip(&self.nfa.loops) {
            let was = *state;
            *state = ((was << 1) | carry) & takes | was & keeps;
            carry = was >> 63;
            alive |= *state;
        }
        tick(self.words);
        self.entry = u64::from(self.nfa.leading_star);
        if alive == 0 && self.entry == 0 {
            return Some(false);
        }
        // Matched, and a trailing `*` takes whatever follows.
        let (word, bit) = self.nfa.accept;
        (self.accept_loops && self.live[word] & bit != 0).then_some(true)
    }
}

/// The simple reference matcher, on characters: one backtrack point, never exponential,
/// but O(n · m) at worst, so the scan uses `Glob`. Kept as a second opinion for the tests
/// and the fuzz target.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Classic two-pointer matching with one backtrack point, over byte offsets that always
    // sit on character boundaries, no allocation.
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

/// Counts the matcher's steps in unit tests (bytes scanned or compared, automaton words
/// updated), so a test can bound the work without timing it. Nothing in other builds.
#[inline(always)]
fn tick(_steps: usize) {
    #[cfg(test)]
    tests::WORK.with(|w| w.set(w.get() + _steps as u64));
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::{Engine, Glob, MAX_PATTERN_CHARS, MAX_WORDS, Nfa, find, matches, two_way};
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

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))
    }

    /// The automaton whatever the pattern, to check it against the pieces too.
    fn nfa(p: &str) -> Glob {
        Glob(Engine::Nfa(Nfa::new(p)))
    }

    /// Dynamic programming over (pattern prefix, text prefix) on the decoded text: slow and
    /// obviously right, and shares nothing with the code under test.
    fn reference(p: &str, text: &[u8]) -> bool {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = String::from_utf8_lossy(text).chars().collect();
        let mut row = vec![false; t.len() + 1];
        row[0] = true;
        for &pc in &p {
            let mut next = vec![false; t.len() + 1];
            next[0] = pc == '*' && row[0];
            for j in 1..=t.len() {
                next[j] = match pc {
                    '*' => row[j] || next[j - 1],
                    '?' => row[j - 1],
                    c => row[j - 1] && c == t[j - 1],
                };
            }
            row = next;
        }
        row[t.len()]
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
            ("?", "", false),
            ("*?", "", false),
            ("??", "é", false),
            ("*?*", "é", true),
            ("a?*", "ab", true),
        ];
        for (p, t, want) in table {
            assert_eq!(matches(p, t), want, "{p:?} ~ {t:?}");
            assert_eq!(glob(p).matches_bytes(t.as_bytes()), want, "{p:?} ~ {t:?}");
            assert_eq!(nfa(p).matches_bytes(t.as_bytes()), want, "{p:?} ~ {t:?}");
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
            assert!(
                glob(ORCHESTRATOR_GLOB).matches_bytes(hit.as_bytes()),
                "{hit}"
            );
        }
        for miss in [
            "bun /x/other/dist/server.js",
            "bun orchestrator/src/server.ts",
            "vim",
        ] {
            assert!(!matches(ORCHESTRATOR_GLOB, miss), "{miss}");
            assert!(
                !glob(ORCHESTRATOR_GLOB).matches_bytes(miss.as_bytes()),
                "{miss}"
            );
        }
    }

    #[test]
    fn prepared_globs_agree_with_the_reference() {
        let long = format!("*{}?*", "ab".repeat(40));
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
            "?",
            "*?é*",
            "*\u{fffd}*",
            "a\u{fffd}?",
            &long,
        ];
        let long_hit = format!("x{}éy", "ab".repeat(40));
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
            &long_hit,
        ];
        for p in patterns {
            let (g, n) = (glob(p), nfa(p));
            for t in texts {
                let want = matches(p, t);
                assert_eq!(want, reference(p, t.as_bytes()), "{p:?} ~ {t:?}");
                assert_eq!(g.matches_bytes(t.as_bytes()), want, "{p:?} ~ {t:?}");
                assert_eq!(n.matches_bytes(t.as_bytes()), want, "{p:?} ~ {t:?}");
            }
        }
        for g in [glob("*\u{fffd}*"), glob("a?b"), glob("*\u{fffd}?")] {
            assert!(g.matches_bytes(b"a\xffb"));
        }
        assert!(!glob("ab*ab").matches_bytes(b"aba"));
        // One U+FFFD for each invalid sequence, as `String::from_utf8_lossy` reads them.
        assert!(glob("a??b").matches_bytes(b"a\xf0\x9f\xffb"));
        assert!(glob("a?b").matches_bytes(b"a\xf0\x9f\x98b"));
        assert!(!glob("a?b").matches_bytes(b"a\xff\xffb"));
    }

    /// Random patterns (empty, `**`, beyond 64 and 128 positions) against random bytes
    /// (invalid UTF-8, multi-byte characters under `?`), half of them made to match.
    #[test]
    fn random_patterns_agree_with_dynamic_programming() {
        const PATTERN: &[char] = &['a', 'b', '*', '*', '?', '?', 'é', '\u{fffd}', '/', '中'];
        const TEXT: &[&[u8]] = &[
            b"a",
            b"a",
            b"b",
            b"/",
            "é".as_bytes(),
            "中".as_bytes(),
            b"\xff",
            b"\xc3",
            b"\xe4\xb8",
            "\u{fffd}".as_bytes(),
        ];
        let mut rng = Rng(0x610B);
        for case in 0..2000 {
            let len = match rng.below(4) {
                0 => rng.below(8),
                1 => rng.below(40),
                _ => 60 + rng.below(150),
            };
            let p: String = (0..len).map(|_| rng.pick(PATTERN)).collect();
            let mut t: Vec<u8> = Vec::new();
            if rng.below(2) == 0 {
                // Spell the pattern out: `?` and `*` become random text.
                for c in p.chars() {
                    match c {
                        '?' => t.extend_from_slice(rng.pick(TEXT)),
                        '*' => (0..rng.below(4)).for_each(|_| t.extend_from_slice(rng.pick(TEXT))),
                        c => t.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                if rng.below(3) == 0 && !t.is_empty() {
                    let at = rng.below(t.len());
                    t[at] = rng.pick(TEXT)[0];
                }
            } else {
                (0..rng.below(60)).for_each(|_| t.extend_from_slice(rng.pick(TEXT)));
            }
            let want = reference(&p, &t);
            assert_eq!(
                glob(&p).matches_bytes(&t),
                want,
                "case {case}: {p:?} ~ {t:?}"
            );
            assert_eq!(
                nfa(&p).matches_bytes(&t),
                want,
                "case {case}: {p:?} ~ {t:?}"
            );
        }
    }

    #[test]
    fn find_substrings() {
        assert_eq!(find(b"hello", b"ll"), Some(2));
        assert_eq!(find(b"hello", b""), Some(0));
        assert_eq!(find(b"hello", b"xl"), None);
        assert_eq!(find(b"hello", b"o"), Some(4));
        assert_eq!(find(b"hello", b"lo!"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"aab", b"ab"), Some(1));
        assert_eq!(find(b"xjxjs", b"js"), Some(3));
        assert_eq!(find(b"js", b"js"), Some(0));
        assert_eq!(find(b"j", b"js"), None);
        assert_eq!(find(b"s.js.js", b".js"), Some(1));
        // Leftmost, whatever byte anchors the search.
        for (hay, needle) in [
            (&b"abcabcab"[..], &b"cab"[..]),
            (b"zzqzzqzz", b"zq"),
            (b"aaaa", b"aa"),
        ] {
            let naive = hay.windows(needle.len()).position(|w| w == needle);
            assert_eq!(find(hay, needle), naive, "{hay:?} {needle:?}");
        }
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

    const N: usize = 7 * 128 * 1024;

    /// `glob` on `text`: asserts the answer and that the steps stay within `c · (n + m)`.
    fn bounded(p: &str, text: &[u8], want: bool, c: u64) -> u64 {
        let g = glob(p);
        let (got, steps) = counted(|| g.matches_bytes(text));
        assert_eq!(got, want, "{:?}…", &p[..p.len().min(40)]);
        let (n, m) = (text.len() as u64, p.chars().count() as u64);
        assert!(steps <= c * (n + m), "{steps} steps > {c} · ({n} + {m})");
        steps
    }

    /// The issue's rules (`*` + `x`×10000 + `y?`: 9,076,875,009 steps before against
    /// 7 × 128 KiB of `x`, 12 s; and its 2,003-character sibling, 1,832,843,009 steps) are
    /// too long for a pattern with `?`: refused, with a message the config turns into a
    /// warning. At the bound a pattern still runs.
    #[test]
    fn long_patterns_with_question_marks_are_refused() {
        let issue = format!("*{}y?", "x".repeat(10_000));
        assert_eq!(
            Glob::new(&issue).unwrap_err(),
            "a pattern with '?' may have at most 256 characters; this one has 10003"
        );
        assert_eq!(
            Glob::new(&format!("*{}y?", "x".repeat(2000))).unwrap_err(),
            "a pattern with '?' may have at most 256 characters; this one has 2003"
        );
        assert!(Glob::new(&"?".repeat(MAX_PATTERN_CHARS + 1)).is_err());
        assert!(Glob::new(&"?".repeat(MAX_PATTERN_CHARS)).is_ok());
        assert!(Glob::new(&"é?".repeat(MAX_PATTERN_CHARS / 2)).is_ok());
        // Without `?`, any length.
        assert!(Glob::new(&format!("*{}y*", "x".repeat(10_000))).is_ok());
    }

    /// `*` + `x`×253 + `y?`, the longest of its kind, against 7 × 128 KiB of `x`:
    /// 233,899,512 steps before (a backtracking scan at every `x`), now one check of the
    /// line's UTF-8 and 4 word updates per character.
    #[test]
    fn longest_pattern_with_question_marks_is_linear() {
        let p = format!("*{}y?", "x".repeat(MAX_PATTERN_CHARS - 3));
        let c = MAX_WORDS as u64 + 1;
        let steps = bounded(&p, &vec![b'x'; N], false, c);
        let hit = [vec![b'x'; N / 8], b"yz".to_vec()].concat();
        bounded(&p, &hit, true, c);
        eprintln!("{p:.8}… ({} chars) ~ x×{N}: {steps} steps", p.len());
    }

    /// The 2,003-character rule without its `?`, which has no bound: 1,833,756,512 steps
    /// before, as one compare of 2,001 bytes at every `x`. On invalid UTF-8 the old code
    /// decoded the line and ran the backtracking matcher instead: 1,833,758,513.
    #[test]
    fn long_literal_pattern_is_linear() {
        let p = format!("*{}y*", "x".repeat(2000));
        let steps = bounded(&p, &vec![b'x'; N], false, 4);
        let mut invalid = vec![b'x'; N];
        invalid[0] = 0xff;
        let invalid_steps = bounded(&p, &invalid, false, 4);
        invalid.extend(b"y");
        bounded(&p, &invalid, true, 4);
        // U+FFFD in the pattern: the line is decoded once, then searched the same way.
        let p = format!("*\u{fffd}{}y*", "x".repeat(2000));
        let text = [&invalid, &b"\xff"[..], &b"x".repeat(2000), b"y!"].concat();
        let lossy_steps = bounded(&p, &text, true, 8);
        eprintln!(
            "*x×2000y* ~ x×{N}: {steps} steps; invalid UTF-8: {invalid_steps}; U+FFFD: {lossy_steps}"
        );
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

    /// Many `*` and `?`: 140,347,812 steps before for the first (a backtrack over 150
    /// `a`s at every position); the second was linear before too (458,837), and spreads
    /// the automaton over three words.
    #[test]
    fn many_stars_and_question_marks_are_linear() {
        let p = format!("{}*{}?b", "*?".repeat(50), "a".repeat(150));
        let words = 202u64.div_ceil(64);
        let steps = bounded(&p, &vec![b'a'; N], false, words + 1);
        let p2 = format!("{}*b", "*a?".repeat(84));
        let steps2 = bounded(&p2, &"a?".repeat(N / 8).into_bytes(), false, 4);
        eprintln!("(*?)×50*a×150?b: {steps} steps; (*a?)×84*b: {steps2}");
    }

    #[test]
    fn pathological_pattern_is_fast_enough_to_finish() {
        let text = "a".repeat(5000);
        let p = format!("{}b", "*a".repeat(50));
        assert!(!matches(&p, &text));
        bounded(&p, text.as_bytes(), false, 4);
        bounded(&format!("{p}?"), text.as_bytes(), false, 2);
    }
}
