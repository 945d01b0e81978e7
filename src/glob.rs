//! The glob matcher for command-line rules: `*` matches any run of characters (spaces and
//! `/` included), `?` exactly one character, everything else itself. A rule matches the
//! whole command line, so most rules start and end with `*`.

pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer matching with one backtrack point: linear in practice and never
    // exponential, whatever the pattern.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;
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
    fn pathological_pattern_is_fast_enough_to_finish() {
        let text = "a".repeat(5000);
        assert!(!matches(&format!("{}b", "*a".repeat(50)), &text));
    }
}
