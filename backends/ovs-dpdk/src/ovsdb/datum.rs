//! OVSDB's value encodings (RFC 7047 §5.1): atoms, `["set",..]`, `["map",..]`, `["uuid",..]`,
//! `["named-uuid",..]`, built and read back. Never panics on a shape: that is `OvsdbError::Decode`.

use super::error::OvsdbError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A row as OVSDB sends and accepts it: column name to datum.
pub type Row = Map<String, Value>;

/// Build a row from `(column, datum)` pairs.
pub fn row<K: Into<String>>(columns: impl IntoIterator<Item = (K, Value)>) -> Row {
    columns.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// A row UUID, checked to be the 8-4-4-4-12 hex form OVSDB uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(String);

impl Uuid {
    pub fn parse(s: &str) -> Option<Uuid> {
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        let ok = groups.len() == lens.len()
            && groups.iter().zip(lens).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
        ok.then(|| Uuid(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `["uuid", "<uuid>"]`: a reference to an existing row.
    pub fn to_json(&self) -> Value {
        json!(["uuid", self.0])
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `["named-uuid", name]`: a reference to a row inserted earlier in the same transaction with
/// that `uuid-name` (RFC 7047 §5.2.1). Names must be ids: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// `["set", [..]]`. Always the explicit form: a bare atom is also a valid one-element set, but
/// the explicit form is never ambiguous.
pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// The empty set, which is also how an optional column (`min: 0, max: 1`) says "no value".
pub fn empty_set() -> Value {
    set([])
}

/// `["map", [[k, v], ..]]`.
pub fn map<K: Into<Value>, V: Into<Value>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| Value::Array(vec![k.into(), v.into()])).collect();
    json!(["map", pairs])
}

/// A string-to-string map (`external_ids`, `options`, `other_config`).
pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    map(pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// A column of a row, or a `Decode` error naming it.
pub fn column<'a>(row: &'a Row, name: &str) -> Result<&'a Value, OvsdbError> {
    row.get(name).ok_or_else(|| OvsdbError::decode(format!("column {name:?}"), &Value::Object(row.clone())))
}

/// A tagged pair `[tag, payload]`, e.g. `["set", [..]]`.
fn tagged<'a>(v: &'a Value, tag: &str) -> Option<&'a Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(t), payload]) if t == tag => Some(payload),
        _ => None,
    }
}

/// `["uuid", ".."]` to a `Uuid`.
pub fn as_uuid(v: &Value) -> Result<Uuid, OvsdbError> {
    tagged(v, "uuid").and_then(Value::as_str).and_then(Uuid::parse).ok_or_else(|| OvsdbError::decode("a uuid", v))
}

/// The elements of a set. RFC 7047 lets a one-element set arrive as the bare atom, so an atom
/// (string, number, bool, `["uuid",..]`, `["named-uuid",..]`) is a set of one.
pub fn as_set(v: &Value) -> Result<Vec<&Value>, OvsdbError> {
    if let Some(payload) = tagged(v, "set") {
        return payload.as_array().map(|items| items.iter().collect()).ok_or_else(|| OvsdbError::decode("a set", v));
    }
    if is_atom(v) {
        return Ok(vec![v]);
    }
    Err(OvsdbError::decode("a set or an atom", v))
}

fn is_atom(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        _ => tagged(v, "uuid").is_some() || tagged(v, "named-uuid").is_some(),
    }
}

/// A set of row references (`Bridge.ports`, `Open_vSwitch.bridges`).
pub fn as_uuid_set(v: &Value) -> Result<Vec<Uuid>, OvsdbError> {
    as_set(v)?.into_iter().map(as_uuid).collect()
}

/// The pairs of a `["map", [[k, v], ..]]`.
pub fn as_map(v: &Value) -> Result<Vec<(&Value, &Value)>, OvsdbError> {
    let pairs = tagged(v, "map").and_then(Value::as_array).ok_or_else(|| OvsdbError::decode("a map", v))?;
    pairs
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((k, v)),
            _ => Err(OvsdbError::decode("a [key, value] pair", p)),
        })
        .collect()
}

/// A string-to-string map such as `external_ids`.
pub fn as_string_map(v: &Value) -> Result<BTreeMap<String, String>, OvsdbError> {
    as_map(v)?
        .into_iter()
        .map(|(k, val)| match (k.as_str(), val.as_str()) {
            (Some(k), Some(val)) => Ok((k.to_string(), val.to_string())),
            _ => Err(OvsdbError::decode("a string:string pair", &json!([k, val]))),
        })
        .collect()
}

pub fn as_string(v: &Value) -> Result<String, OvsdbError> {
    v.as_str().map(str::to_string).ok_or_else(|| OvsdbError::decode("a string", v))
}

pub fn as_integer(v: &Value) -> Result<i64, OvsdbError> {
    v.as_i64().ok_or_else(|| OvsdbError::decode("an integer", v))
}

/// An optional column (`min: 0, max: 1`): the empty set is `None`, the value arrives either bare
/// or as a one-element set.
fn as_optional<'a, T>(
    v: &'a Value,
    what: &str,
    f: impl Fn(&'a Value) -> Result<T, OvsdbError>,
) -> Result<Option<T>, OvsdbError> {
    match as_set(v)?.as_slice() {
        [] => Ok(None),
        [one] => f(one).map(Some),
        _ => Err(OvsdbError::decode(format!("at most one {what}"), v)),
    }
}

/// e.g. `Interface.ofport`: `["set",[]]` until vswitchd assigns one.
pub fn as_optional_integer(v: &Value) -> Result<Option<i64>, OvsdbError> {
    as_optional(v, "integer", as_integer)
}

/// e.g. `Interface.error`: `["set",[]]` when the interface is fine.
pub fn as_optional_string(v: &Value) -> Result<Option<String>, OvsdbError> {
    as_optional(v, "string", as_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "36b1a2c4-90b7-4d3f-a0b4-0123456789ab";

    #[test]
    fn encodings_match_rfc_7047() {
        assert_eq!(set([json!(1), json!(2)]), json!(["set", [1, 2]]));
        assert_eq!(empty_set(), json!(["set", []]));
        assert_eq!(string_map([("owner", "uscni")]), json!(["map", [["owner", "uscni"]]]));
        assert_eq!(named_uuid("port"), json!(["named-uuid", "port"]));
        assert_eq!(Uuid::parse(U).unwrap().to_json(), json!(["uuid", U]));
        assert_eq!(row([("name", json!("br0"))]).get("name"), Some(&json!("br0")));
    }

    #[test]
    fn one_element_set_may_be_a_bare_atom() {
        let u = Uuid::parse(U).unwrap();
        assert_eq!(as_uuid_set(&json!(["uuid", U])).unwrap(), vec![u.clone()]);
        assert_eq!(as_uuid_set(&json!(["set", [["uuid", U]]])).unwrap(), vec![u]);
        assert_eq!(as_uuid_set(&json!(["set", []])).unwrap(), vec![]);
        assert_eq!(as_optional_integer(&json!(3)).unwrap(), Some(3));
        assert_eq!(as_optional_integer(&json!(["set", [3]])).unwrap(), Some(3));
        assert_eq!(as_optional_integer(&json!(["set", []])).unwrap(), None);
        assert_eq!(as_optional_string(&json!("could not open")).unwrap().as_deref(), Some("could not open"));
        assert_eq!(as_optional_string(&json!(["set", []])).unwrap(), None);
    }

    #[test]
    fn maps_decode_and_bad_shapes_are_errors() {
        let m = as_string_map(&json!(["map", [["a", "1"], ["b", "2"]]])).unwrap();
        assert_eq!(m.get("b").map(String::as_str), Some("2"));
        assert!(as_string_map(&json!(null)).is_err());
        assert!(as_string_map(&json!(["map", [["a"]]])).is_err());
        assert!(as_string_map(&json!(["map", [[1, "x"]]])).is_err());
        assert!(as_set(&json!(["set", "x"])).is_err());
        assert!(as_set(&json!({"a": 1})).is_err());
        assert!(as_set(&json!(null)).is_err());
        assert!(as_uuid(&json!(["uuid", "not-a-uuid"])).is_err());
        assert!(as_optional_integer(&json!(["set", [1, 2]])).is_err());
        assert!(as_uuid(&json!(["uuid", "zzzzzzzz-0000-0000-0000-000000000000"])).is_err());
        assert!(column(&Row::new(), "ofport").is_err());
    }
}
