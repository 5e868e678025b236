//! The CNI protocol: environment, CNI_ARGS, version negotiation, result and error JSON, GC input.
//! Pure functions over strings and JSON values: nothing here reads stdin or writes stdout.

pub mod args;
pub mod env;
pub mod error;
pub mod gc;
pub mod result;
pub mod version;

pub use args::{ArgsError, CniArgs};
pub use env::{CniEnv, EnvError};
pub use error::{error_json, error_version};
pub use gc::{valid_attachments, GcError};
pub use result::{CniResult, Dns, Interface, IpConfig, ResultError, Route};
pub use version::{
    check_verb_allowed, negotiate, requested_version, version_response, CniVersion, VersionError, SUPPORTED,
};

use serde_json::Value;

/// Untrusted text for an error message: quoted and escaped so control characters cannot forge
/// log lines or break the runtime's event text, and cut so a huge input is not echoed whole.
pub(crate) fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 120;
    match s.char_indices().nth(MAX_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
    }
}

/// A JSON value as a human reads it in an error: strings quoted, containers by kind only.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quoted(s)),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_control_characters() {
        assert_eq!(quoted("a\nb\"c"), r#""a\nb\"c""#);
    }

    #[test]
    fn quoted_cuts_long_input_on_a_char_boundary() {
        let long = "é".repeat(500);
        let q = quoted(&long);
        assert!(q.ends_with("..."), "long input must be marked as cut: {q}");
        assert_eq!(q.chars().filter(|c| *c == 'é').count(), 120);
    }

    #[test]
    fn describe_names_the_json_kind() {
        assert_eq!(describe(&serde_json::json!(5)), "number 5");
        assert_eq!(describe(&serde_json::json!("x")), "string \"x\"");
        assert_eq!(describe(&serde_json::json!([1])), "an array");
        assert_eq!(describe(&serde_json::json!({})), "an object");
        assert_eq!(describe(&Value::Null), "null");
        assert_eq!(describe(&serde_json::json!(true)), "boolean true");
    }
}
