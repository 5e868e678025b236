//! The error document a failed verb prints: `{cniVersion, code, msg, details}`.
//! Never fails, whatever stdin held: an error about garbage input must still be printable.

use super::version::{requested_version, CniVersion};
use serde_json::{Map, Number, Value};
use userspace_cni_api::CniError;

/// The CNI error JSON (the same shape in 0.3.0 through 1.1.0); `details` only when non-empty.
pub fn error_json(err: &CniError, version: &str) -> Value {
    let mut m = Map::new();
    m.insert("cniVersion".into(), Value::String(version.to_string()));
    m.insert("code".into(), Value::Number(Number::from(err.code)));
    m.insert("msg".into(), Value::String(err.msg.clone()));
    if !err.details.is_empty() {
        m.insert("details".into(), Value::String(err.details.clone()));
    }
    Value::Object(m)
}

/// The version to stamp on an error: the one the call negotiated from stdin (its `cniVersion`,
/// or the best of `cniVersions`) when supported, else the latest. A runtime that sent an
/// unsupported version still gets a document it can parse, and the message says which to use.
pub fn error_version(stdin: &[u8]) -> String {
    requested_version(stdin).unwrap_or(CniVersion::LATEST).as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use userspace_cni_api::codes;

    #[test]
    fn error_json_with_and_without_details() {
        let e = CniError::new(codes::INVALID_NETCONF, "bridgeName \"br 0\" is not a valid name")
            .with_details("near host.bridge");
        assert_eq!(
            error_json(&e, "0.4.0"),
            json!({"cniVersion": "0.4.0", "code": 7, "msg": "bridgeName \"br 0\" is not a valid name", "details": "near host.bridge"})
        );
        assert_eq!(
            error_json(&CniError::try_again("ovsdb busy"), "1.1.0"),
            json!({"cniVersion": "1.1.0", "code": 11, "msg": "ovsdb busy"})
        );
    }

    #[test]
    fn error_version_prefers_the_requested_supported_version() {
        assert_eq!(error_version(br#"{"cniVersion":"0.3.1","name":"n"}"#), "0.3.1");
        assert_eq!(error_version(br#"{"cniVersions":["0.4.0","1.0.0"]}"#), "1.0.0");
        for garbage in [&b""[..], b"\xff\xfe", b"{", br#"{"cniVersion":"0.2.0"}"#, br#"{"cniVersion":{}}"#, b"null"] {
            assert_eq!(error_version(garbage), "1.1.0", "{}", String::from_utf8_lossy(garbage));
        }
    }

    proptest! {
        #[test]
        fn error_version_never_fails(stdin in proptest::collection::vec(any::<u8>(), 0..512)) {
            let v = error_version(&stdin);
            prop_assert!(CniVersion::parse(&v).is_some());
        }

        #[test]
        fn error_json_keeps_any_message(msg in any::<String>(), details in any::<String>(), code in any::<u32>()) {
            let j = error_json(&CniError::new(code, msg.clone()).with_details(details.clone()), "1.1.0");
            prop_assert_eq!(j["msg"].as_str(), Some(msg.as_str()));
            prop_assert_eq!(j["code"].as_u64(), Some(u64::from(code)));
            prop_assert_eq!(j.get("details").and_then(Value::as_str), (!details.is_empty()).then_some(details.as_str()));
        }
    }
}
