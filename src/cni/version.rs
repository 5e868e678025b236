//! CNI spec versions: which ones we speak, which one a config asks for, what VERSION answers, and
//! which verbs a version defines. Never guesses a version the config did not ask for (except VERSION).

use super::{describe, quoted};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use userspace_cni_api::{codes, CniError, Verb};

/// Every version we accept in a config and can produce a result in, oldest first.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A supported CNI spec version. Ordered oldest to newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V030,
    V031,
    V040,
    V100,
    V110,
}

impl CniVersion {
    pub const ALL: [CniVersion; 5] =
        [CniVersion::V030, CniVersion::V031, CniVersion::V040, CniVersion::V100, CniVersion::V110];
    pub const LATEST: CniVersion = CniVersion::V110;

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V030 => "0.3.0",
            CniVersion::V031 => "0.3.1",
            CniVersion::V040 => "0.4.0",
            CniVersion::V100 => "1.0.0",
            CniVersion::V110 => "1.1.0",
        }
    }

    /// Exact match only: "1.1" or "v1.1.0" are not versions a runtime sends.
    pub fn parse(s: &str) -> Option<CniVersion> {
        CniVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether results in this version have libcni's 0.3/0.4 shape (types040): a `version` per
    /// ip, and interfaces without mtu/socketPath/pciID.
    pub fn uses_040_result(self) -> bool {
        self < CniVersion::V100
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CniVersion::parse(&s).ok_or_else(|| serde::de::Error::custom(VersionError::Unsupported { value: s }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("cniVersion {} is not supported; use one of {}", quoted(.value), SUPPORTED.join(", "))]
    Unsupported { value: String },

    #[error(
        "none of the cniVersions {} is supported; include one of {}",
        .offered.iter().map(|v| quoted(v)).collect::<Vec<_>>().join(", "),
        SUPPORTED.join(", ")
    )]
    NoneSupported { offered: Vec<String> },

    #[error(
        "cniVersion is required in the network config; set it to one of {} (or list several in cniVersions)",
        SUPPORTED.join(", ")
    )]
    Missing,

    #[error("the network config must be a JSON object, found {found}")]
    NotAnObject { found: String },

    #[error("{key} must be {expected}, found {found}")]
    WrongType { key: String, expected: &'static str, found: String },

    #[error(
        "{verb} is not defined for cniVersion {version} (needs {needs} or later); set cniVersion to {needs} or \
         later in the network config"
    )]
    VerbNotAllowed { verb: &'static str, version: CniVersion, needs: CniVersion },
}

impl From<VersionError> for CniError {
    fn from(e: VersionError) -> Self {
        let code = match &e {
            VersionError::Unsupported { .. }
            | VersionError::NoneSupported { .. }
            | VersionError::VerbNotAllowed { .. } => codes::INCOMPATIBLE_VERSION,
            // The config decoded as JSON; what it says is wrong, so this is an invalid config
            // rather than a decoding failure.
            VersionError::Missing | VersionError::NotAnObject { .. } | VersionError::WrongType { .. } => {
                codes::INVALID_NETCONF
            }
        };
        CniError::new(code, e.to_string())
    }
}

/// The version of this call: the config's `cniVersion`; only when that is absent (or empty or
/// null, which Go decodes the same way), the highest supported entry of `cniVersions`.
pub fn negotiate(conf: &Value) -> Result<CniVersion, VersionError> {
    let obj = conf.as_object().ok_or_else(|| VersionError::NotAnObject { found: describe(conf) })?;
    match obj.get("cniVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => {
            return CniVersion::parse(s).ok_or_else(|| VersionError::Unsupported { value: s.clone() })
        }
        Some(other) => {
            return Err(VersionError::WrongType {
                key: "cniVersion".to_string(),
                expected: "a string like \"1.1.0\"",
                found: describe(other),
            })
        }
    }
    match obj.get("cniVersions") {
        None | Some(Value::Null) => Err(VersionError::Missing),
        Some(Value::Array(items)) => highest_supported(items),
        Some(other) => Err(VersionError::WrongType {
            key: "cniVersions".to_string(),
            expected: "an array of version strings",
            found: describe(other),
        }),
    }
}

fn highest_supported(items: &[Value]) -> Result<CniVersion, VersionError> {
    let mut offered = Vec::with_capacity(items.len());
    let mut best: Option<CniVersion> = None;
    for (i, item) in items.iter().enumerate() {
        let Some(s) = item.as_str() else {
            return Err(VersionError::WrongType {
                key: format!("cniVersions[{i}]"),
                expected: "a version string like \"1.1.0\"",
                found: describe(item),
            });
        };
        // Versions we do not know (newer ones included) are skipped, as libcni skips versions
        // greater than its own.
        best = best.max(CniVersion::parse(s));
        offered.push(s.to_string());
    }
    best.ok_or(VersionError::NoneSupported { offered })
}

/// The version stdin asks for, if it is one we support; `None` for anything else, garbage included.
pub fn requested_version(stdin: &[u8]) -> Option<CniVersion> {
    let conf: Value = serde_json::from_slice(stdin).ok()?;
    negotiate(&conf).ok()
}

/// The VERSION answer. Never fails: the runtime may send `{}` or nothing at all. libcni stamps its
/// own latest version here; echoing a supported requested version is equally valid and lets a
/// runtime that asked for 0.4.0 read an answer in 0.4.0.
pub fn version_response(stdin: &[u8]) -> Value {
    let v = requested_version(stdin).unwrap_or(CniVersion::LATEST);
    let mut m = Map::new();
    m.insert("cniVersion".to_string(), Value::String(v.as_str().to_string()));
    m.insert(
        "supportedVersions".to_string(),
        Value::Array(SUPPORTED.iter().map(|s| Value::String(s.to_string())).collect()),
    );
    Value::Object(m)
}

/// CHECK appeared in 0.4.0, GC and STATUS in 1.1.0 (libcni's skel refuses them below that with
/// code 1 too).
pub fn check_verb_allowed(verb: Verb, v: CniVersion) -> Result<(), VersionError> {
    let needs = match verb {
        Verb::Check => CniVersion::V040,
        Verb::Gc | Verb::Status => CniVersion::V110,
        Verb::Add | Verb::Del | Verb::Version => return Ok(()),
    };
    if v >= needs {
        Ok(())
    } else {
        Err(VersionError::VerbNotAllowed { verb: verb.as_str(), version: v, needs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn versions_round_trip_and_order() {
        for (i, v) in CniVersion::ALL.iter().enumerate() {
            assert_eq!(v.as_str(), SUPPORTED[i]);
            assert_eq!(CniVersion::parse(SUPPORTED[i]), Some(*v));
        }
        assert!(CniVersion::V030 < CniVersion::V031 && CniVersion::V031 < CniVersion::V040);
        assert!(CniVersion::V040 < CniVersion::V100 && CniVersion::V100 < CniVersion::V110);
        for bad in ["", "0.2.0", "0.1.0", "1.1", "v1.1.0", "1.2.0", " 1.1.0"] {
            assert_eq!(CniVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn serde_uses_the_version_string() {
        assert_eq!(serde_json::to_value(CniVersion::V031).unwrap(), json!("0.3.1"));
        assert_eq!(serde_json::from_value::<CniVersion>(json!("1.0.0")).unwrap(), CniVersion::V100);
        assert!(serde_json::from_value::<CniVersion>(json!("0.2.0")).is_err());
    }

    #[test]
    fn cni_version_decides() {
        for v in CniVersion::ALL {
            assert_eq!(negotiate(&json!({"cniVersion": v.as_str()})), Ok(v));
            // cniVersions is ignored when cniVersion is present.
            assert_eq!(negotiate(&json!({"cniVersion": v.as_str(), "cniVersions": ["1.1.0", "0.3.0"]})), Ok(v));
        }
    }

    #[test]
    fn unsupported_cni_version_is_code_1_listing_supported() {
        let e = negotiate(&json!({"cniVersion": "0.2.0", "cniVersions": ["1.1.0"]})).unwrap_err();
        assert_eq!(e, VersionError::Unsupported { value: "0.2.0".into() });
        let c = CniError::from(e);
        assert_eq!(c.code, codes::INCOMPATIBLE_VERSION);
        assert!(c.msg.contains("\"0.2.0\"") && c.msg.contains("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{}", c.msg);
    }

    #[test]
    fn cni_versions_used_only_when_cni_version_absent() {
        assert_eq!(negotiate(&json!({"cniVersions": ["0.3.1", "1.0.0", "0.4.0"]})), Ok(CniVersion::V100));
        assert_eq!(negotiate(&json!({"cniVersions": ["1.2.0", "0.4.0", "9.9.9"]})), Ok(CniVersion::V040));
        assert_eq!(negotiate(&json!({"cniVersion": "", "cniVersions": ["0.3.0"]})), Ok(CniVersion::V030));
        assert_eq!(negotiate(&json!({"cniVersion": null, "cniVersions": ["1.1.0"]})), Ok(CniVersion::V110));
    }

    #[test]
    fn no_supported_cni_versions_is_code_1() {
        for list in [json!([]), json!(["0.2.0", "2.0.0"])] {
            let c = CniError::from(negotiate(&json!({"cniVersions": list})).unwrap_err());
            assert_eq!(c.code, codes::INCOMPATIBLE_VERSION, "{}", c.msg);
        }
    }

    #[test]
    fn missing_version_is_code_7() {
        let c = CniError::from(negotiate(&json!({"name": "n"})).unwrap_err());
        assert_eq!(c.code, codes::INVALID_NETCONF);
        assert!(c.msg.contains("cniVersion is required"), "{}", c.msg);
    }

    #[test]
    fn wrong_shapes_are_code_7_naming_the_key() {
        for (conf, key) in [
            (json!({"cniVersion": 1.1}), "cniVersion"),
            (json!({"cniVersions": "1.1.0"}), "cniVersions"),
            (json!({"cniVersions": ["1.1.0", 4]}), "cniVersions[1]"),
        ] {
            let c = CniError::from(negotiate(&conf).unwrap_err());
            assert_eq!(c.code, codes::INVALID_NETCONF, "{conf}");
            assert!(c.msg.starts_with(key), "{conf}: {}", c.msg);
        }
        assert_eq!(CniError::from(negotiate(&json!([1])).unwrap_err()).code, codes::INVALID_NETCONF);
    }

    #[test]
    fn version_response_echoes_a_supported_request() {
        for v in SUPPORTED {
            let got = version_response(format!(r#"{{"cniVersion":"{v}"}}"#).as_bytes());
            assert_eq!(got, json!({"cniVersion": v, "supportedVersions": SUPPORTED}));
        }
        for stdin in [&b""[..], b"{}", b"garbage", br#"{"cniVersion":"0.2.0"}"#, br#"{"cniVersion":7}"#, b"[]"] {
            assert_eq!(
                version_response(stdin),
                json!({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED}),
                "{}",
                String::from_utf8_lossy(stdin)
            );
        }
    }

    #[test]
    fn verb_gating() {
        use Verb::*;
        for v in CniVersion::ALL {
            assert_eq!(check_verb_allowed(Add, v), Ok(()));
            assert_eq!(check_verb_allowed(Del, v), Ok(()));
            assert_eq!(check_verb_allowed(Version, v), Ok(()));
            assert_eq!(check_verb_allowed(Check, v).is_ok(), v >= CniVersion::V040, "CHECK {v}");
            assert_eq!(check_verb_allowed(Gc, v).is_ok(), v == CniVersion::V110, "GC {v}");
            assert_eq!(check_verb_allowed(Status, v).is_ok(), v == CniVersion::V110, "STATUS {v}");
        }
        let c = CniError::from(check_verb_allowed(Check, CniVersion::V031).unwrap_err());
        assert_eq!(c.code, codes::INCOMPATIBLE_VERSION);
        assert!(c.msg.starts_with("CHECK is not defined for cniVersion 0.3.1 (needs 0.4.0 or later)"), "{}", c.msg);
    }

    proptest! {
        #[test]
        fn version_response_never_fails(stdin in proptest::collection::vec(any::<u8>(), 0..256)) {
            let r = version_response(&stdin);
            prop_assert!(r["cniVersion"].as_str().and_then(CniVersion::parse).is_some());
        }

        #[test]
        fn negotiate_never_panics(s in "\\PC{0,64}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = negotiate(&v);
            }
            let _ = negotiate(&json!({"cniVersion": s.clone()}));
            let _ = negotiate(&json!({"cniVersions": [s]}));
        }
    }
}
