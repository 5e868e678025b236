//! What a backend reports to `userspace doctor` (`Backend::doctor`): check lines, each passed,
//! failed with a hint, or skipped, and whether its dataplane is present on this node at all.
//! Plain data; the backend does the looking.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

/// One line of `doctor`'s report (and one object of its `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoctorCheck {
    pub check: String,
    pub status: CheckStatus,
    pub detail: String,
    /// What to do about a failure, in the operator's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl DoctorCheck {
    pub fn pass(check: &str, detail: impl Into<String>) -> DoctorCheck {
        DoctorCheck { check: check.into(), status: CheckStatus::Pass, detail: detail.into(), hint: None }
    }
    pub fn fail(check: &str, detail: impl Into<String>, hint: impl Into<String>) -> DoctorCheck {
        DoctorCheck { check: check.into(), status: CheckStatus::Fail, detail: detail.into(), hint: Some(hint.into()) }
    }
    pub fn skip(check: &str, detail: impl Into<String>) -> DoctorCheck {
        DoctorCheck { check: check.into(), status: CheckStatus::Skip, detail: detail.into(), hint: None }
    }
}

/// An engine's part of `doctor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The engine's endpoint exists on this node (its socket is there), so it counts as a
    /// dataplane here; `doctor` fails when no engine's does and none was named.
    pub present: bool,
    /// The endpoint, in words, for that failure: "the VPP API socket (/run/vpp/api.sock)".
    pub endpoint: Option<String>,
    pub checks: Vec<DoctorCheck>,
    /// Why this engine's dataplane needs no hugepages here (DPDK run with `--no-huge`), if so.
    pub hugepages_not_needed: Option<String>,
}
