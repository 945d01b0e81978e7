//! Parsing the bytes of macOS's `sysctl({CTL_KERN, KERN_PROCARGS2, pid})`: the exec path, the
//! command line and the environment of another process.
//!
//! It is pure (bytes in, borrowed slices out; no system calls, no `unsafe`, no `cfg`) so that
//! it is built, tested and fuzzed on every target, while only the macOS backend calls it, on
//! the sysctl's bytes. Its `argv` and `environ` have the shapes of `/proc/<pid>/cmdline` and
//! `/proc/<pid>/environ`, so the backend hands them to the same helpers as the Linux one.
//!
//! The layout, from XNU's `sysctl_procargsx` (psutil reads it the same way):
//!
//! ```text
//! argc           i32, native endian
//! exec path      NUL-terminated
//! padding        NULs, for alignment
//! argv           argc NUL-terminated strings
//! environment    NUL-terminated strings (none when the kernel omits them)
//! padding        NULs
//! apple strings  ptr_munge=, main_stack=, executable_file=, ... then NULs
//! ```
//!
//! Only argc comes from the kernel's own records; every string is read from the target's
//! stack, which the process may have rewritten. So the bytes are untrusted input: any buffer
//! gives `None` or slices of it, never a panic and no allocation.
//!
//! Two kernel behaviours the backend relies on: when it may not show the environment (a
//! restricted target), XNU ends the answer right after argv, so `environ` is empty rather
//! than the apple strings; and a buffer smaller than the data gets its *tail*, not a prefix,
//! so the backend must size it (`KERN_ARGMAX`) for this parse to mean anything.
//!
//! Three things the layout cannot tell apart, resolved as psutil does:
//!
//! - Padding and empty leading arguments. All NULs after the exec path are skipped (the
//!   padding's length is not recorded; XNU itself skips them all when it cuts the environment
//!   off), so an empty `argv[0]` is taken for padding and the arguments are read one string
//!   late: argv gains the string after it, usually the first environment entry. A real
//!   `argv[0]` is never empty in practice; in return, `argv` never starts with a NUL.
//! - The end of the environment and the start of the apple strings: the environment ends at
//!   its first empty string (two NULs in a row). When there is no environment, the strings
//!   after the NUL run that follows argv (the apple strings) are returned as the environment.
//!   Their names (`ptr_munge`, `executable_file`, ...) are not variables the program looks for.
//! - A rewritten process title (libuv's `process.title` overwrites the argv area with the new
//!   title and NULs): argc strings are still taken, the empty ones included, so argv is the
//!   title and empty arguments; the rest of the NUL run is skipped before the environment.

/// The three parts of a `KERN_PROCARGS2` buffer, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcArgs<'a> {
    /// The path given to exec (not NUL-terminated).
    pub exec_path: &'a [u8],
    /// argv as NUL-separated bytes, each argument followed by its NUL, exactly argc of them
    /// (like `/proc/<pid>/cmdline`). Empty when argc is 0.
    pub argv: &'a [u8],
    /// The environment as NUL-separated entries, each followed by its NUL (like
    /// `/proc/<pid>/environ`); empty when absent. Entries are never empty.
    pub environ: &'a [u8],
}

/// Splits a `KERN_PROCARGS2` buffer. `None` when it is too short for argc, has a negative
/// argc, an exec path without its NUL, or fewer than argc complete arguments. A buffer cut
/// inside the environment keeps its complete entries: the sysctl's answer is as long as the
/// kernel chose to make it, and a partial entry would be a wrong value.
pub fn parse(buf: &[u8]) -> Option<ProcArgs<'_>> {
    let (argc, rest) = buf.split_first_chunk::<4>()?;
    let argc = usize::try_from(i32::from_ne_bytes(*argc)).ok()?;
    let path_len = rest.iter().position(|&b| b == 0)?;
    let (exec_path, rest) = rest.split_at(path_len);
    let rest = skip_nuls(&rest[1..]);
    let (argv, rest) = rest.split_at(strings_len(rest, argc)?);
    let rest = skip_nuls(rest);
    let environ = &rest[..environ_len(rest)];
    Some(ProcArgs {
        exec_path,
        argv,
        environ,
    })
}

fn skip_nuls(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != 0).unwrap_or(b.len());
    &b[start..]
}

/// The length of the first `n` NUL-terminated strings of `b`, empty ones counted. Each string
/// takes at least one byte, so the loop ends within `b` however large `n` is.
fn strings_len(b: &[u8], n: usize) -> Option<usize> {
    let mut len = 0;
    for _ in 0..n {
        len += b[len..].iter().position(|&c| c == 0)? + 1;
    }
    Some(len)
}

/// The length of the non-empty NUL-terminated strings at the start of `b`, up to the first
/// empty one; an unterminated tail is left out.
fn environ_len(b: &[u8]) -> usize {
    let mut len = 0;
    while let Some(n) = b[len..].iter().position(|&c| c == 0) {
        if n == 0 {
            break;
        }
        len += n + 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces of a buffer, laid out as XNU does; `gap` is the NUL run between the
    /// environment (or argv when there is none) and the apple strings.
    struct Spec<'a> {
        argc: i32,
        exec_path: &'a [u8],
        pad: usize,
        args: &'a [&'a [u8]],
        env: &'a [&'a [u8]],
        gap: usize,
        apple: &'a [&'a [u8]],
        trailing: usize,
    }

    const APPLE: &[&[u8]] = &[
        b"ptr_munge=",
        b"main_stack=",
        b"executable_file=0x1a01000009,0x2b3c",
        b"th_port=0x103",
    ];

    impl Default for Spec<'_> {
        fn default() -> Self {
            Spec {
                argc: 2,
                exec_path: b"/usr/local/bin/node",
                pad: 4,
                args: &[b"node", b"server.js"],
                env: &[b"HOME=/Users/u", b"CLAUDECODE=1"],
                gap: 1,
                apple: APPLE,
                trailing: 9,
            }
        }
    }

    fn build(s: &Spec) -> Vec<u8> {
        let mut b = s.argc.to_ne_bytes().to_vec();
        b.extend_from_slice(s.exec_path);
        b.push(0);
        b.resize(b.len() + s.pad, 0);
        b.extend_from_slice(&joined(s.args));
        b.extend_from_slice(&joined(s.env));
        b.resize(b.len() + s.gap, 0);
        b.extend_from_slice(&joined(s.apple));
        b.resize(b.len() + s.trailing, 0);
        b
    }

    /// Each string followed by its NUL: the `/proc` shape.
    fn joined(strings: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in strings {
            out.extend_from_slice(s);
            out.push(0);
        }
        out
    }

    /// Where `part` starts in `buf`, checking that it lies inside it.
    fn offset(buf: &[u8], part: &[u8]) -> usize {
        let at = part.as_ptr().addr().wrapping_sub(buf.as_ptr().addr());
        assert!(at <= buf.len() && part.len() <= buf.len() - at);
        at
    }

    /// What every `Some` must satisfy, whatever the input.
    fn check_shape(buf: &[u8], p: &ProcArgs) {
        let argc = i32::from_ne_bytes(buf[..4].try_into().unwrap());
        assert!(argc >= 0);
        assert_eq!(offset(buf, p.exec_path), 4);
        assert!(!p.exec_path.contains(&0));
        assert_eq!(p.argv.iter().filter(|&&c| c == 0).count(), argc as usize);
        assert!(p.argv.is_empty() || p.argv.ends_with(b"\0"));
        // The padding skip leaves argv starting with a byte of argv[0], so splitting at NULs
        // (procfs::split_args) gives exactly argc arguments.
        assert!(!p.argv.starts_with(b"\0"));
        assert!(offset(buf, p.argv) > 4 + p.exec_path.len());
        assert!(p.environ.is_empty() || p.environ.ends_with(b"\0"));
        assert!(!p.environ.starts_with(b"\0"));
        assert!(!p.environ.windows(2).any(|w| w == b"\0\0"));
        assert!(offset(buf, p.environ) >= offset(buf, p.argv) + p.argv.len());
    }

    fn parsed(s: &Spec) -> (Vec<u8>, Vec<u8>) {
        let buf = build(s);
        let p = parse(&buf).unwrap_or_else(|| panic!("None for {buf:?}"));
        check_shape(&buf, &p);
        assert_eq!(p.exec_path, s.exec_path);
        (p.argv.to_vec(), p.environ.to_vec())
    }

    #[test]
    fn every_padding_length_and_exec_path_length() {
        for pad in 0..=7 {
            for path_len in 0..=9 {
                let path = &b"/bin/node"[..path_len];
                let s = Spec {
                    exec_path: path,
                    pad,
                    ..Spec::default()
                };
                assert_eq!(
                    parsed(&s),
                    (
                        b"node\0server.js\0".to_vec(),
                        b"HOME=/Users/u\0CLAUDECODE=1\0".to_vec()
                    ),
                    "pad {pad}, path {path:?}"
                );
            }
        }
    }

    #[test]
    fn argv0_right_after_the_exec_path_nul() {
        let mut buf = 1i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/sh\0sh\0A=1\0\0apple=x\0");
        let p = parse(&buf).unwrap();
        assert_eq!(
            p,
            ProcArgs {
                exec_path: b"/bin/sh",
                argv: b"sh\0",
                environ: b"A=1\0",
            }
        );
    }

    #[test]
    fn empty_arguments_in_the_middle_and_at_the_end_are_kept() {
        let s = Spec {
            argc: 4,
            args: &[b"node", b"", b"x", b""],
            ..Spec::default()
        };
        let (argv, environ) = parsed(&s);
        assert_eq!(argv, b"node\0\0x\0\0");
        assert_eq!(environ, b"HOME=/Users/u\0CLAUDECODE=1\0");

        let s = Spec {
            argc: 3,
            args: &[b"node", b"", b""],
            env: &[],
            apple: &[],
            ..Spec::default()
        };
        assert_eq!(parsed(&s), (b"node\0\0\0".to_vec(), Vec::new()));
    }

    /// Documented: an empty argv[0] is indistinguishable from padding, so it is skipped and
    /// the arguments are read one string late (psutil and XNU do the same).
    #[test]
    fn an_empty_first_argument_is_taken_for_padding() {
        for pad in [0, 3] {
            let s = Spec {
                argc: 3,
                pad,
                args: &[b"", b"b", b"c"],
                env: &[b"E=1", b"F=2"],
                ..Spec::default()
            };
            assert_eq!(parsed(&s), (b"b\0c\0E=1\0".to_vec(), b"F=2\0".to_vec()));
        }
    }

    #[test]
    fn argc_zero() {
        let s = Spec {
            argc: 0,
            args: &[],
            ..Spec::default()
        };
        assert_eq!(
            parsed(&s),
            (Vec::new(), b"HOME=/Users/u\0CLAUDECODE=1\0".to_vec())
        );
        // Nothing at all after the exec path.
        let mut buf = 0i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/x\0");
        let p = parse(&buf).unwrap();
        assert_eq!(
            (p.exec_path, p.argv, p.environ),
            (&b"/bin/x"[..], &b""[..], &b""[..])
        );
    }

    /// What the kernel returns when it omits the environment: the buffer ends with argv.
    #[test]
    fn no_environment_and_nothing_after_argv() {
        for trailing in [0, 1, 8] {
            let s = Spec {
                env: &[],
                gap: 0,
                apple: &[],
                trailing,
                ..Spec::default()
            };
            assert_eq!(parsed(&s), (b"node\0server.js\0".to_vec(), Vec::new()));
        }
    }

    /// Documented: with no environment and no marker, the apple strings after argv's NUL run
    /// are read as the environment, up to their first empty string (psutil's behaviour).
    #[test]
    fn no_environment_then_apple_strings_reads_them_as_the_environment() {
        for gap in [0, 1, 5] {
            let s = Spec {
                env: &[],
                gap,
                ..Spec::default()
            };
            assert_eq!(parsed(&s), (b"node\0server.js\0".to_vec(), joined(APPLE)));
        }
    }

    #[test]
    fn the_environment_stops_at_the_first_empty_string() {
        for gap in 1..=8 {
            let s = Spec {
                gap,
                ..Spec::default()
            };
            assert_eq!(parsed(&s).1, b"HOME=/Users/u\0CLAUDECODE=1\0");
        }
    }

    fn rewritten_title_buffer(env: &[&[u8]]) -> Vec<u8> {
        let original = b"node\0server.js\0--x\0";
        let mut area = vec![0; original.len()];
        area[..7].copy_from_slice(b"mytitle");
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/usr/local/bin/node\0\0\0\0\0");
        buf.extend_from_slice(&area);
        buf.extend_from_slice(&joined(env));
        buf.extend_from_slice(b"\0\0");
        buf.extend_from_slice(&joined(APPLE));
        buf.extend_from_slice(&[0; 6]);
        buf
    }

    #[test]
    fn a_rewritten_title_leaves_empty_arguments_and_a_nul_run_before_the_environment() {
        let buf = rewritten_title_buffer(&[b"A=1", b"B=2"]);
        let p = parse(&buf).unwrap();
        check_shape(&buf, &p);
        assert_eq!(p.argv, b"mytitle\0\0\0");
        assert_eq!(p.environ, b"A=1\0B=2\0");
        // Without an environment the apple strings take its place, as documented above.
        let buf = rewritten_title_buffer(&[]);
        let p = parse(&buf).unwrap();
        assert_eq!(p.argv, b"mytitle\0\0\0");
        assert_eq!(p.environ, joined(APPLE));
    }

    /// Cuts `full` at every length: `None` exactly while argv is incomplete, then the whole
    /// argv and the environment's entries that fit whole.
    fn check_every_cut(full: &[u8]) {
        let whole = parse(full).unwrap();
        // With argc 0 argv is complete once the exec path's NUL is in.
        let argv_end = if whole.argv.is_empty() {
            4 + whole.exec_path.len() + 1
        } else {
            offset(full, whole.argv) + whole.argv.len()
        };
        let env_start = offset(full, whole.environ);
        for cut in 0..=full.len() {
            let b = &full[..cut];
            let Some(p) = parse(b) else {
                assert!(cut < argv_end, "None at {cut} of {full:?}");
                continue;
            };
            assert!(cut >= argv_end, "Some at {cut} of {full:?}");
            check_shape(b, &p);
            assert_eq!(p.exec_path, whole.exec_path);
            assert_eq!(p.argv, whole.argv);
            let fits = cut.saturating_sub(env_start).min(whole.environ.len());
            let want = match whole.environ[..fits].iter().rposition(|&c| c == 0) {
                Some(i) => &whole.environ[..=i],
                None => &b""[..],
            };
            assert_eq!(p.environ, want, "cut {cut}");
        }
    }

    #[test]
    fn truncation_at_every_offset() {
        for pad in 0..=7 {
            check_every_cut(&build(&Spec {
                argc: 4,
                pad,
                args: &[b"node", b"", b"--stdio", b"x"],
                env: &[b"A=1", b"PATH=/usr/bin:/bin", b"B="],
                ..Spec::default()
            }));
        }
        check_every_cut(&build(&Spec {
            argc: 0,
            args: &[],
            ..Spec::default()
        }));
        check_every_cut(&build(&Spec {
            env: &[],
            ..Spec::default()
        }));
        check_every_cut(&rewritten_title_buffer(&[b"A=1", b"B=2"]));
    }

    #[test]
    fn argc_beyond_the_strings_present_is_none() {
        for argc in [3, 100, i32::MAX] {
            let s = Spec {
                argc,
                env: &[],
                gap: 0,
                apple: &[],
                trailing: 0,
                ..Spec::default()
            };
            assert_eq!(parse(&build(&s)), None, "argc {argc}");
        }
        // However many strings the rest of the buffer holds.
        let s = Spec {
            argc: i32::MAX,
            ..Spec::default()
        };
        assert_eq!(parse(&build(&s)), None);
        // Nothing but NULs after the exec path: they are padding, not arguments.
        let mut buf = 1i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(&[b'x', 0, 0, 0, 0]);
        assert_eq!(parse(&buf), None);
    }

    #[test]
    fn negative_argc_is_none() {
        for argc in [-1, i32::MIN] {
            let s = Spec {
                argc,
                ..Spec::default()
            };
            assert_eq!(parse(&build(&s)), None, "argc {argc}");
        }
    }

    #[test]
    fn short_buffers_and_an_unterminated_exec_path_are_none() {
        let full = build(&Spec::default());
        for len in 0..=4 {
            assert_eq!(parse(&full[..len]), None);
        }
        let mut buf = 0i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/no-nul");
        assert_eq!(parse(&buf), None);
    }

    /// xorshift64: deterministic, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn string(&mut self, min: usize, max: usize) -> Vec<u8> {
            let len = min + self.below(max - min + 1);
            (0..len).map(|_| 1 + self.below(255) as u8).collect()
        }
    }

    #[test]
    fn random_buffers_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..2000 {
            let argc = rng.below(6);
            // argv[0] is never empty: an empty one is taken for padding (see above).
            let args: Vec<Vec<u8>> = (0..argc)
                .map(|i| {
                    let min = usize::from(i == 0);
                    if i > 0 && rng.below(4) == 0 {
                        Vec::new()
                    } else {
                        rng.string(min, 12)
                    }
                })
                .collect();
            let env: Vec<Vec<u8>> = (0..rng.below(6)).map(|_| rng.string(1, 16)).collect();
            let apple: Vec<Vec<u8>> = (0..rng.below(4)).map(|_| rng.string(1, 20)).collect();
            let exec_path = rng.string(0, 20);
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let env: Vec<&[u8]> = env.iter().map(Vec::as_slice).collect();
            let apple: Vec<&[u8]> = apple.iter().map(Vec::as_slice).collect();
            let s = Spec {
                argc: argc as i32,
                exec_path: &exec_path,
                pad: rng.below(8),
                args: &args,
                env: &env,
                // After an environment the apple strings need their NUL run to be told apart.
                gap: rng.below(8) + usize::from(!env.is_empty()),
                apple: &apple,
                trailing: rng.below(17),
            };
            let want_env = if env.is_empty() {
                joined(&apple)
            } else {
                joined(&env)
            };
            assert_eq!(parsed(&s), (joined(&args), want_env), "round {round}");
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let len = rng.below(64);
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(3) == 0 {
                        0
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            // Mostly a plausible argc, so the parse gets past it.
            if buf.len() >= 4 && rng.below(4) != 0 {
                let argc = rng.below(10) as i32 - 2;
                buf[..4].copy_from_slice(&argc.to_ne_bytes());
            }
            if let Some(p) = parse(&buf) {
                check_shape(&buf, &p);
            }
        }
    }
}
