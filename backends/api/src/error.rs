//! The one error type that crosses module boundaries: a CNI error code with a message a human
//! can act on. Each module keeps its own `thiserror` enum and maps it here explicitly.

use serde::Serialize;
use std::fmt;

/// CNI error codes: 1-99 from the CNI specification, 100+ our own (DESIGN.md §3.6).
pub mod codes {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_NETCONF: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    pub const ATTACHMENT_EXISTS: u32 = 100;
    pub const NAME_COLLISION: u32 = 101;
    pub const OWNED_BY_OTHER: u32 = 102;
    pub const UNSUPPORTED_ON_ENGINE: u32 = 103;
    pub const CROSS_FILESYSTEM_SOCKET: u32 = 104;
    pub const VPP_CRC_MISMATCH: u32 = 105;
    pub const ENGINE_NOT_BUILT: u32 = 106;
    /// Not a spec code: a failure inside the plugin (a caught panic).
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: `code`, `msg` (what went wrong and what to do) and optional `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_NETCONF, msg)
    }

    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(codes::IO_FAILURE, msg)
    }

    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(codes::TRY_AGAIN_LATER, msg)
    }

    /// Prefix the message with where it happened, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Errors collected by a teardown that keeps going past failures (DEL, GC).
#[derive(Debug, Default, Clone)]
pub struct ErrorList(pub Vec<CniError>);

impl ErrorList {
    pub fn push(&mut self, e: CniError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One error for the runtime: the code of the first (a "try again" wins so the runtime
    /// retries), every message joined.
    pub fn into_result(self) -> Result<(), CniError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let code = if self.0.iter().any(|e| e.code == codes::TRY_AGAIN_LATER) {
            codes::TRY_AGAIN_LATER
        } else {
            self.0[0].code
        };
        let msg = self.0.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; ");
        let details =
            self.0.iter().filter(|e| !e.details.is_empty()).map(|e| e.details.as_str()).collect::<Vec<_>>().join("; ");
        Err(CniError { code, msg, details })
    }
}
