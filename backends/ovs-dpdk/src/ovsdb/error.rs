//! The OVSDB client's one error enum, with the context a human needs, and its explicit mapping
//! into `CniError`. Never hides OVSDB's own `error`/`details` text behind a generic message.

use userspace_cni_api::{codes, CniError};

#[derive(Debug, thiserror::Error)]
pub enum OvsdbError {
    /// The socket is missing, refuses connections or is not a socket: OVS is down or starting.
    #[error("cannot connect to OVSDB at {endpoint}: {source}; is ovsdb-server running and is the setting USERSPACE_CNI_OVSDB right?")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "connecting to OVSDB at {endpoint} timed out after {waited_ms} ms; is ovsdb-server overloaded or stopped?"
    )]
    ConnectTimeout { endpoint: String, waited_ms: u64 },

    #[error("OVSDB at {endpoint} did not answer {method} within {waited_ms} ms")]
    Timeout { endpoint: String, method: String, waited_ms: u64 },

    /// The transaction committed but ovs-vswitchd did not report it applied in time.
    #[error(
        "ovs-vswitchd did not apply OVSDB configuration {next_cfg} within {waited_ms} ms (cur_cfg is {}) at {endpoint}; is ovs-vswitchd running?",
        cur_cfg.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into())
    )]
    ApplyTimeout { endpoint: String, next_cfg: i64, cur_cfg: Option<i64>, waited_ms: u64 },

    #[error("OVSDB at {endpoint} closed the connection ({reason})")]
    Closed { endpoint: String, reason: String },

    #[error("I/O error on the OVSDB connection to {endpoint}: {source}")]
    Io {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },

    /// The database has no `Open_vSwitch` row: `ovs-vsctl init` (or ovs-ctl) has not run yet.
    #[error("OVSDB at {endpoint}: table Open_vSwitch has {rows} rows, expected 1; has OVS finished starting (ovs-vsctl init)?")]
    NotInitialized { endpoint: String, rows: u64 },

    /// Bytes that are not RFC 7047 JSON-RPC.
    #[error("malformed message from OVSDB at {endpoint}: {detail}")]
    Protocol { endpoint: String, detail: String },

    /// A JSON-RPC error reply (unknown database, unknown method, ...).
    #[error("OVSDB at {endpoint} refused {method}: {error}")]
    Rpc { endpoint: String, method: String, error: String, details: String },

    /// One operation of a transaction (or its commit, `op_index == ops.len()`) failed.
    #[error("OVSDB transaction on {db} failed at operation {op_index} ({op}): {error}")]
    /// `op` is the RFC 7047 name of the failed operation, or `"commit"`.
    Transaction { endpoint: String, db: String, op_index: usize, op: &'static str, error: String, details: String },

    /// A mutate/update/delete matched a different number of rows than the caller required
    /// (e.g. `mutate Bridge ports insert` matching no bridge: the commit succeeds and the new
    /// Port/Interface rows are silently garbage-collected).
    #[error(
        "OVSDB transaction on {db}: operation {op_index} on table {table} matched {found} rows, expected {expected}"
    )]
    CountMismatch { db: String, op_index: usize, table: String, expected: u64, found: u64 },

    /// A reply or column that does not have the shape the schema promises.
    #[error("unexpected OVSDB value: expected {expected}, found {found}")]
    Decode { expected: String, found: String },
}

impl OvsdbError {
    /// The CNI code: a dataplane we cannot reach (or that is slow) is "try again later" so the
    /// runtime retries; anything OVSDB itself rejected is an I/O failure carrying its text.
    pub fn code(&self) -> u32 {
        match self {
            OvsdbError::Connect { .. }
            | OvsdbError::ConnectTimeout { .. }
            | OvsdbError::Timeout { .. }
            | OvsdbError::ApplyTimeout { .. }
            | OvsdbError::Closed { .. }
            | OvsdbError::Io { .. }
            | OvsdbError::NotInitialized { .. } => codes::TRY_AGAIN_LATER,
            OvsdbError::Protocol { .. }
            | OvsdbError::Rpc { .. }
            | OvsdbError::Transaction { .. }
            | OvsdbError::CountMismatch { .. }
            | OvsdbError::Decode { .. } => codes::IO_FAILURE,
        }
    }

    /// Whether this is a timeout of any kind (connect, request or vswitchd apply).
    pub fn is_timeout(&self) -> bool {
        matches!(self, OvsdbError::ConnectTimeout { .. } | OvsdbError::Timeout { .. } | OvsdbError::ApplyTimeout { .. })
    }

    /// `Decode` for a JSON value, shortened so a huge reply cannot flood a log line.
    pub(crate) fn decode(expected: impl Into<String>, found: &serde_json::Value) -> OvsdbError {
        OvsdbError::Decode { expected: expected.into(), found: truncate(&found.to_string(), 200) }
    }
}

impl From<OvsdbError> for CniError {
    fn from(e: OvsdbError) -> CniError {
        let code = e.code();
        let details = match &e {
            OvsdbError::Rpc { error, details, .. } | OvsdbError::Transaction { error, details, .. } => {
                if details.is_empty() {
                    error.clone()
                } else {
                    format!("{error}: {details}")
                }
            }
            _ => String::new(),
        };
        CniError::new(code, e.to_string()).with_details(details)
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_and_slow_are_try_again_rejections_are_io() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = |x: OvsdbError| CniError::from(x).code;
        assert_eq!(e(OvsdbError::Connect { endpoint: "unix:/x".into(), source: io() }), codes::TRY_AGAIN_LATER);
        assert_eq!(
            e(OvsdbError::Timeout { endpoint: "unix:/x".into(), method: "transact".into(), waited_ms: 5 }),
            codes::TRY_AGAIN_LATER
        );
        assert_eq!(e(OvsdbError::Closed { endpoint: "unix:/x".into(), reason: "eof".into() }), codes::TRY_AGAIN_LATER);
        let t = OvsdbError::Transaction {
            endpoint: "unix:/x".into(),
            db: "Open_vSwitch".into(),
            op_index: 1,
            op: "insert",
            error: "constraint violation".into(),
            details: "name must be unique".into(),
        };
        let c = CniError::from(t);
        assert_eq!(c.code, codes::IO_FAILURE);
        assert_eq!(c.details, "constraint violation: name must be unique");
        assert!(c.msg.contains("operation 1 (insert)"), "{}", c.msg);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é...");
    }
}
