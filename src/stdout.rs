//! Standard output of the operator CLI and the plugin's usage text. SIGPIPE stays ignored in
//! every mode (a daemon writing to a socket whose peer left — ovsdb-server restarted, kubelet
//! dropped a connection — must get EPIPE, not die), so a reader that goes away is handled here,
//! where it matters: the CLI then ends as a Unix tool piped into `head` ends, by SIGPIPE.

use std::io::Write;

/// Write to stdout; on a closed reader die of SIGPIPE, on any other error say so and exit 74.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        drop(out);
        failed(&e);
    }
}

fn failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // SAFETY: restoring the default disposition and raising a signal have no memory-safety
        // preconditions; the default action of SIGPIPE ends the whole process.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
    }
    eprintln!("userspace: cannot write to standard output: {e}");
    // EX_IOERR (sysexits.h).
    std::process::exit(74)
}

/// `println!` for the CLI: see [`write`].
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI: see [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
