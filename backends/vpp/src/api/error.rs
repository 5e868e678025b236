//! Errors of the VPP binary-API client, each mapped to one CNI code: VPP unreachable or silent
//! is "try again later" (11), a message table from another VPP release is 105. Never hides retval.

use super::messages::{VPP_COMMIT, VPP_RELEASE};
use super::wire::WireError;
use std::path::PathBuf;
use thiserror::Error;
use userspace_cni_api::{codes, CniError};

#[derive(Debug, Error)]
pub enum VppError {
    #[error("VPP API socket {path} is not reachable ({source}); is VPP running with `socksvr {{ default }}` in startup.conf?")]
    Unreachable { path: PathBuf, source: std::io::Error },
    #[error("VPP at {path} did not answer {what} within {waited_ms} ms")]
    Timeout { path: PathBuf, what: String, waited_ms: u64 },
    #[error("VPP at {path} closed the connection during {what}")]
    Closed { path: PathBuf, what: String },
    #[error("reading from VPP at {path} during {what}: {source}")]
    Io { path: PathBuf, what: String, source: std::io::Error },
    #[error(
        "VPP at {path}{running} does not speak the binary API this plugin was built for (VPP {built} commit {commit}): \
         {problems}; use the userspace-cni build for your VPP release"
    , built = VPP_RELEASE, commit = &VPP_COMMIT[..12], problems = problems.join("; "))]
    CrcMismatch { path: PathBuf, running: String, problems: Vec<String> },
    #[error("VPP refused the connection handshake (sockclnt_create response {response})")]
    Handshake { response: i32 },
    #[error("VPP sent a malformed {what}: {source}")]
    Malformed { what: String, source: WireError },
    #[error("cannot encode {what}: {source}")]
    Encode { what: String, source: WireError },
    #[error("VPP frame of {len} bytes is larger than any message this client expects")]
    FrameTooLarge { len: usize },
    #[error("{what}: VPP answered {rv} ({name})", name = super::vnet_error_name(*rv))]
    Retval { what: String, rv: i32 },
}

impl VppError {
    /// The retval of a refused request, if that is what this is.
    pub fn retval(&self) -> Option<i32> {
        match self {
            VppError::Retval { rv, .. } => Some(*rv),
            _ => None,
        }
    }

    /// VPP could not be talked to at all (as opposed to refusing a request).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            VppError::Unreachable { .. } | VppError::Timeout { .. } | VppError::Closed { .. } | VppError::Io { .. }
        )
    }
}

impl From<VppError> for CniError {
    fn from(e: VppError) -> CniError {
        let code = match &e {
            VppError::Unreachable { .. }
            | VppError::Timeout { .. }
            | VppError::Closed { .. }
            | VppError::Io { .. }
            | VppError::Handshake { .. } => codes::TRY_AGAIN_LATER,
            VppError::CrcMismatch { .. } => codes::VPP_CRC_MISMATCH,
            VppError::Encode { .. } => codes::INVALID_NETCONF,
            VppError::Malformed { .. } | VppError::FrameTooLarge { .. } | VppError::Retval { .. } => codes::IO_FAILURE,
        };
        CniError::new(code, e.to_string())
    }
}
