//! GC input: the attachments the runtime still considers valid, from the GC stdin config.
//! Never turns a malformed list into an empty one: GC removes everything not listed.

use super::describe;
use serde_json::Value;
use userspace_cni_api::{codes, AttachmentId, CniError};

/// The key in the CNI 1.1.0 spec.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";
/// The key of an earlier spec draft; libcni sends both with the same value (cni issue #1101).
pub const ATTACHMENTS_KEY: &str = "cni.dev/attachments";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcError {
    #[error("the GC network config must be a JSON object, found {found}")]
    NotAnObject { found: String },

    #[error("{key}: {problem}; expected an array of {{\"containerID\": \"...\", \"ifname\": \"...\"}} objects")]
    WrongShape { key: &'static str, problem: String },
}

impl From<GcError> for CniError {
    fn from(e: GcError) -> Self {
        let code = match &e {
            GcError::NotAnObject { .. } | GcError::WrongShape { .. } => codes::INVALID_NETCONF,
        };
        CniError::new(code, e.to_string())
    }
}

/// The valid attachments, from either key (null counts as absent). When both are present the
/// union is used: GC deletes what is not listed, so a disagreement must keep, not delete.
/// No key means an empty list, which for GC means "nothing of this network is valid".
pub fn valid_attachments(conf: &Value) -> Result<Vec<AttachmentId>, GcError> {
    let obj = conf.as_object().ok_or_else(|| GcError::NotAnObject { found: describe(conf) })?;
    let mut out: Vec<AttachmentId> = Vec::new();
    // Linear de-duplication: a runtime's list can hold every attachment of a big node.
    let mut seen = std::collections::HashSet::new();
    for key in [VALID_ATTACHMENTS_KEY, ATTACHMENTS_KEY] {
        let list = match obj.get(key) {
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        for id in read_list(key, list)? {
            if seen.insert(id.clone()) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

fn read_list(key: &'static str, list: &Value) -> Result<Vec<AttachmentId>, GcError> {
    let wrong = |problem: String| GcError::WrongShape { key, problem };
    let items = list.as_array().ok_or_else(|| wrong(format!("found {}", describe(list))))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let obj = item.as_object().ok_or_else(|| wrong(format!("entry {i} is {}", describe(item))))?;
            // Both fields are required and non-empty: an entry we cannot match would leave its
            // attachment unprotected.
            let field = |name: &str| match obj.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(other) => {
                    Err(wrong(format!("entry {i}: {name} must be a non-empty string, found {}", describe(other))))
                }
                None => Err(wrong(format!("entry {i} has no {name}"))),
            };
            Ok(AttachmentId::new(field("containerID")?, field("ifname")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn id(c: &str, i: &str) -> AttachmentId {
        AttachmentId::new(c, i)
    }

    #[test]
    fn reads_the_spec_key() {
        let conf = json!({"cniVersion": "1.1.0", "name": "n", VALID_ATTACHMENTS_KEY: [
            {"containerID": "3f6940ab5ab4", "ifname": "eth0"},
            {"containerID": "3f6940ab5ab4", "ifname": "net1"}
        ]});
        assert_eq!(valid_attachments(&conf), Ok(vec![id("3f6940ab5ab4", "eth0"), id("3f6940ab5ab4", "net1")]));
    }

    #[test]
    fn reads_the_draft_key() {
        let conf = json!({ATTACHMENTS_KEY: [{"containerID": "abc", "ifname": "net1"}]});
        assert_eq!(valid_attachments(&conf), Ok(vec![id("abc", "net1")]));
    }

    #[test]
    fn libcni_sends_both_keys_and_they_are_merged() {
        let list = json!([{"containerID": "abc", "ifname": "net1"}]);
        let conf = json!({VALID_ATTACHMENTS_KEY: list.clone(), ATTACHMENTS_KEY: list});
        assert_eq!(valid_attachments(&conf), Ok(vec![id("abc", "net1")]));
        let conf = json!({
            VALID_ATTACHMENTS_KEY: [{"containerID": "abc", "ifname": "net1"}],
            ATTACHMENTS_KEY: [{"containerID": "def", "ifname": "net1"}]
        });
        assert_eq!(valid_attachments(&conf), Ok(vec![id("abc", "net1"), id("def", "net1")]));
    }

    #[test]
    fn missing_or_null_key_is_an_empty_list() {
        assert_eq!(valid_attachments(&json!({"name": "n"})), Ok(vec![]));
        assert_eq!(valid_attachments(&json!({VALID_ATTACHMENTS_KEY: null})), Ok(vec![]));
        assert_eq!(valid_attachments(&json!({VALID_ATTACHMENTS_KEY: []})), Ok(vec![]));
    }

    #[test]
    fn wrong_shapes_are_code_7_naming_the_key() {
        let cases = [
            json!({VALID_ATTACHMENTS_KEY: {"containerID": "a", "ifname": "b"}}),
            json!({VALID_ATTACHMENTS_KEY: ["a"]}),
            json!({VALID_ATTACHMENTS_KEY: [{"containerID": "a"}]}),
            json!({VALID_ATTACHMENTS_KEY: [{"ifname": "b"}]}),
            json!({VALID_ATTACHMENTS_KEY: [{"containerID": "", "ifname": "b"}]}),
            json!({VALID_ATTACHMENTS_KEY: [{"containerID": 5, "ifname": "b"}]}),
            json!({VALID_ATTACHMENTS_KEY: [], ATTACHMENTS_KEY: "x"}),
        ];
        for conf in cases {
            let e = valid_attachments(&conf).unwrap_err();
            let c = CniError::from(e);
            assert_eq!(c.code, codes::INVALID_NETCONF, "{conf}");
            assert!(c.msg.starts_with("cni.dev/"), "{conf}: {}", c.msg);
        }
        assert_eq!(CniError::from(valid_attachments(&json!("x")).unwrap_err()).code, codes::INVALID_NETCONF);
    }

    #[test]
    fn problem_names_the_entry() {
        let c = CniError::from(
            valid_attachments(
                &json!({VALID_ATTACHMENTS_KEY: [{"containerID": "a", "ifname": "b"}, {"containerID": "a"}]}),
            )
            .unwrap_err(),
        );
        assert!(c.msg.contains("entry 1 has no ifname"), "{}", c.msg);
    }

    proptest! {
        #[test]
        fn listed_attachments_are_returned_in_order(ids in proptest::collection::vec(("[a-z0-9]{1,64}", "[a-z0-9]{1,15}"), 0..8)) {
            let list: Vec<Value> = ids.iter().map(|(c, i)| json!({"containerID": c, "ifname": i})).collect();
            let got = valid_attachments(&json!({VALID_ATTACHMENTS_KEY: list})).unwrap();
            let mut want: Vec<AttachmentId> = Vec::new();
            for (c, i) in &ids {
                let a = id(c, i);
                if !want.contains(&a) {
                    want.push(a);
                }
            }
            prop_assert_eq!(got, want);
        }
    }
}
