//! Logging: tracing to stderr and, when the config names one under the setting `log_roots`, to
//! `logFile`, at `logLevel`. Never to stdout (stdout carries only the CNI result), and never fails
//! the plugin: a log file that is outside the roots or cannot be opened safely is skipped with
//! one warning line on stderr (upstream NADs log to `/var/log/<name>.log`).
//!
//! The path is a namespace-scoped user's (docs/security.md, "logFile"): it is resolved from the
//! log root's descriptor without following any symlink (`confine`), missing directories are made
//! 0750 and a new file 0640 whatever the umask, only a regular file with one link is appended to
//! (`O_NONBLOCK`, so a FIFO never blocks), and every record has its control characters escaped,
//! so no value from a config can start a line of its own. These errors are warnings, never a CNI
//! error, so this module maps none to a code.

use crate::netconf::LogLevel;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use userspace_cni_support::confine::{self, ConfineError, Dir, Kind};

/// Directories the plugin creates below a log root (and the root itself when absent).
const DIR_MODE: u32 = 0o750;
/// A log file the plugin creates.
const FILE_MODE: u32 = 0o640;

/// Why `logFile` is not used (each becomes one warning line).
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    #[error("{0} (the setting log_roots lists where a logFile may be)")]
    Path(#[from] ConfineError),
    #[error("names a log root itself, not a file below it")]
    NoFileName,
    #[error("does not end in \".log\" (a log root may be a directory other programs read, such as a CNI config dir)")]
    NotLogName,
    #[error("cannot open the log root {}: {reason}", root.display())]
    Root { root: PathBuf, reason: String },
    #[error("cannot open it below {}: {reason}", root.display())]
    Open { root: PathBuf, reason: String },
    #[error("is a {} (a regular file is required)", .0.as_str())]
    NotRegular(Kind),
    #[error("has {0} hard links (a log file the plugin appends to must have one)")]
    Linked(u64),
}

pub fn init(level: Option<LogLevel>, file: Option<&Path>, log_roots: &[PathBuf]) {
    // Upstream's default level is warning-ish; keep stderr quiet unless asked.
    let level = level.map(|l| l.as_tracing()).unwrap_or(tracing::Level::WARN);
    let builder = tracing_subscriber::fmt().with_ansi(false).with_target(false).with_max_level(level);
    let file = file.and_then(|p| {
        open(p, log_roots)
            .map_err(|e| eprintln!("userspace-cni: warning: logFile {:?} ignored: {e}; logging to stderr only", p))
            .ok()
    });
    let stderr = || Escaped(io::stderr());
    let _ = match file {
        Some(f) => builder.with_writer(stderr.and(Mutex::new(Escaped(f)))).try_init(),
        None => builder.with_writer(stderr).try_init(),
    };
}

/// Open `path` for appending, confined to `roots` (see the module header).
pub fn open(path: &Path, roots: &[PathBuf]) -> Result<File, LogFileError> {
    let c = confine::confine(path, roots)?;
    let name = c.rel.file_name().ok_or(LogFileError::NoFileName)?;
    // Only `*.log`: a node that kept /etc/cni/net.d among its (deprecated) allowed_roots must not
    // let a network config create `99-x.conflist` there, which the runtime would then load.
    if !name.as_encoded_bytes().ends_with(b".log") {
        return Err(LogFileError::NotLogName);
    }
    let root = Dir::root_or_create(&c.root, DIR_MODE)
        .map_err(|e| LogFileError::Root { root: c.root.clone(), reason: confine::explain(&e) })?;
    let failed = |e: io::Error| LogFileError::Open { root: c.root.clone(), reason: confine::explain(&e) };
    let dir = root.create_dirs(c.rel.parent().unwrap_or(Path::new("")), DIR_MODE).map_err(failed)?;
    let append = libc::O_WRONLY | libc::O_APPEND;
    // O_EXCL first: only a file this call created gets its mode set (an admin's stays as it is).
    let (f, created) = match dir.open_file(Path::new(name), append | libc::O_CREAT | libc::O_EXCL, FILE_MODE) {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            (dir.open_file(Path::new(name), append, 0).map_err(failed)?, false)
        }
        Err(e) => return Err(failed(e)),
    };
    let st = fstat(&f).map_err(failed)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(LogFileError::NotRegular(kind_of(st.st_mode)));
    }
    // A hard link planted to a root-owned file would have us append to that file.
    if st.st_nlink != 1 {
        return Err(LogFileError::Linked(st.st_nlink as u64));
    }
    if created {
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE)).map_err(failed)?;
    }
    Ok(f)
}

fn fstat(f: &File) -> io::Result<libc::stat> {
    // SAFETY: plain data written by the kernel for a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(f.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn kind_of(mode: libc::mode_t) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFSOCK => Kind::Socket,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFIFO => Kind::Fifo,
        _ => Kind::Other,
    }
}

/// A writer that escapes control characters in each record. tracing-subscriber's fmt layer
/// formats one event into a buffer and writes it with one `write_all`, ending in '\n': every
/// byte below 0x20 but that final newline, and 0x7f, becomes `\xNN`, so a config value holding
/// "\n" plus a forged line stays inside its own record.
pub struct Escaped<W>(pub W);

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_record(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `record` with its control characters escaped (see `Escaped`).
pub fn escape_record(record: &[u8]) -> Vec<u8> {
    let (body, newline) = match record.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (record, false),
    };
    let mut out = Vec::with_capacity(record.len() + 8);
    for &b in body {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_the_record_end_is_kept() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain\n", b"plain\n"),
            (b"a\nfake line\n", b"a\\x0afake line\n"),
            (b"cr\r\x1b[31mred\x7f\n", b"cr\\x0d\\x1b[31mred\\x7f\n"),
            (b"tab\there", b"tab\\x09here"),
            (b"\n\n", b"\\x0a\n"),
            ("utf-8 é stays\n".as_bytes(), "utf-8 é stays\n".as_bytes()),
            (b"", b""),
        ];
        for (input, want) in cases {
            assert_eq!(
                escape_record(input),
                *want,
                "{:?} -> {:?}",
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&escape_record(input))
            );
        }
    }

    #[test]
    fn the_writer_reports_the_callers_length() {
        let mut w = Escaped(Vec::new());
        assert_eq!(w.write(b"x\ny\n").unwrap(), 4, "write_all would loop on a shorter count");
        assert_eq!(w.0, b"x\\x0ay\n");
    }

    #[test]
    fn a_path_outside_the_roots_is_refused_before_any_file_operation() {
        let roots = [PathBuf::from("/nonexistent-log-root")];
        for p in ["/var/log/net1.log", "relative.log", "/nonexistent-log-root/../etc/passwd"] {
            assert!(matches!(open(Path::new(p), &roots), Err(LogFileError::Path(_))), "{p}");
        }
        assert!(matches!(open(Path::new("/nonexistent-log-root"), &roots), Err(LogFileError::NoFileName)));
    }
}
