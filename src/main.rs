//! The entry point, and the binary's allocator (`arena`). `no_main` skips std's runtime
//! set-up (a poll of fds 0-2, signal handlers and an alternate signal stack for the main
//! thread and every thread): about ten system calls at every session start that this program
//! has no use for. SIGPIPE is ignored where output is written (`run::main`).

#![no_main]

#[global_allocator]
static ALLOCATOR: startup_hygiene::arena::Arena = startup_hygiene::arena::Arena;

use std::ffi::{CStr, OsString, c_char, c_int};
use std::os::unix::ffi::OsStringExt;

#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args = (1..argc.max(0) as usize).filter_map(|i| {
        // SAFETY: the C runtime passes `argc` valid, NUL-terminated argument strings.
        let arg = unsafe { *argv.add(i) };
        (!arg.is_null())
            .then(|| OsString::from_vec(unsafe { CStr::from_ptr(arg) }.to_bytes().to_vec()))
    });
    // A panic cannot unwind out of an `extern "C"` function (it would abort with a signal):
    // it ends here, as an internal error that still exits 0, the hook's promise.
    let code = std::panic::catch_unwind(|| startup_hygiene::run::main(args))
        .unwrap_or(startup_hygiene::cli::ExitCode::Success);
    std::process::exit(code.into())
}
