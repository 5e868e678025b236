//! Logging: tracing to stderr and, when the config names one, to `logFile`, at `logLevel`.
//! Never to stdout (stdout carries only the CNI result). A log file that cannot be opened is not
//! an error: the plugin's job is the attachment, not its log.

use crate::netconf::LogLevel;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::fmt::writer::MakeWriterExt;

pub fn init(level: Option<LogLevel>, file: Option<&Path>) {
    // Upstream's default level is warning-ish; keep stderr quiet unless asked.
    let level = level.map(|l| l.as_tracing()).unwrap_or(tracing::Level::WARN);
    let builder = tracing_subscriber::fmt().with_ansi(false).with_target(false).with_max_level(level);
    let file = file.and_then(|p| {
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p)
            .map_err(|e| eprintln!("userspace-cni: cannot open log file {}: {e}", p.display()))
            .ok()
    });
    let _ = match file {
        Some(f) => builder.with_writer(std::io::stderr.and(Mutex::new(f))).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}
