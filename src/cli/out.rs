//! THE way the CLI writes its output to stdout ([`outln!`]), instead of `println!`, which
//! panics when stdout cannot be written: `tandem snapshot list | head -1` (the reader went
//! away: EPIPE, as Rust ignores SIGPIPE) or `tandem volume list > /dev/full`.
//!
//! A reader that went away ends the command quietly with status 141 (128 + SIGPIPE), what a
//! shell reports for any other tool that SIGPIPE stopped (`ls | head -1`); any other write
//! error is one line on stderr naming stdout, and status 1. What the command asked of the
//! daemon is done either way: only its report is lost.

use std::io::{self, Write};

/// Status of a command whose reader went away, as a shell reports SIGPIPE.
const BROKEN_PIPE_STATUS: i32 = 128 + 13;

/// `println!`, to stdout, ending the command on a write error (see the module doc).
macro_rules! outln {
    () => {
        $crate::cli::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}

/// Writes `args` and a newline to stdout (see [`outln!`]).
pub fn line(args: std::fmt::Arguments) {
    let mut o = io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.write_all(b"\n")) {
        failed(e);
    }
}

/// Writes `bytes` to stdout as they are and flushes (see [`outln!`]).
pub fn bytes(bytes: &[u8]) {
    let mut o = io::stdout().lock();
    if let Err(e) = o.write_all(bytes).and_then(|()| o.flush()) {
        failed(e);
    }
}

/// Ends the command after a failed write to stdout.
fn failed(e: io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS);
    }
    eprintln!("tandem: cannot write the output to stdout: {e}");
    std::process::exit(1);
}
