//! The lab fixture's error type: what failed, with the command, its stderr or a log tail.
//! Never loses the daemon's own words: startup failures carry the end of its log.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// A command exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command { cmd: String, status: String, stderr: String },

    /// A command or wait exceeded its bound.
    #[error("{what} did not finish within {waited_ms} ms")]
    Timeout { what: String, waited_ms: u64 },

    /// A daemon or testpmd did not become ready; `detail` holds the end of its log.
    #[error("{what} not ready after {waited_ms} ms (log {log}):\n{detail}")]
    NotReady { what: String, waited_ms: u64, log: PathBuf, detail: String },

    /// Anything else, e.g. a request the fixture refuses (burst too large, comma in a path).
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io { what: what.into(), source }
    }

    pub(crate) fn failed(what: impl Into<String>, detail: impl Into<String>) -> LabError {
        LabError::Failed { what: what.into(), detail: detail.into() }
    }
}
