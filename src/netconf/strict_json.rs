//! Strict decoding of the config bytes into a `serde_json::Value`: size, UTF-8, syntax, nesting
//! depth and duplicate keys at any depth. It never guesses: serde_json's `Map` would keep the last.

use super::path::{Path, Seg};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;
use userspace_cni_api::{codes, CniError};

/// Larger configs are not plausible (upstream configs are a few hundred bytes; a `prevResult`
/// with many IPs a few KiB) and would only cost memory.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Deepest nesting of arrays/objects accepted; the document itself is level 1. Below serde_json's
/// own recursion limit (128), so our error, with its path, is the one a user sees.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("network config is {len} bytes; at most {max} bytes are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("network config is not valid UTF-8 (invalid byte at offset {offset}); it must be UTF-8 JSON")]
    NotUtf8 { offset: usize },
    #[error("network config is not valid JSON: {reason}")]
    Syntax { reason: String },
    #[error("duplicate key {path} (line {line}, column {column}); each key may appear only once")]
    DuplicateKey { path: String, line: usize, column: usize },
    #[error("network config nests deeper than {max} levels at {path}; flatten it")]
    TooDeep { path: String, max: usize },
}

impl From<JsonError> for CniError {
    fn from(e: JsonError) -> Self {
        let code = match e {
            // The bytes are not a JSON document at all: the spec's "failed to decode".
            JsonError::NotUtf8 { .. } | JsonError::Syntax { .. } => codes::DECODE_FAILURE,
            // Valid JSON, but a document we refuse: an invalid network config.
            JsonError::TooLarge { .. } | JsonError::DuplicateKey { .. } | JsonError::TooDeep { .. } => {
                codes::INVALID_NETCONF
            }
        };
        CniError::new(code, e.to_string())
    }
}

/// Why the visitor stopped; serde's error type cannot carry it, so it waits here.
enum Fault {
    Duplicate(String),
    TooDeep(String),
}

struct Ctx {
    path: Path,
    fault: Option<Fault>,
}

/// Decode `bytes` as one JSON value, refusing duplicate keys (at any depth) and deep nesting.
pub fn decode(bytes: &[u8]) -> Result<Value, JsonError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(JsonError::TooLarge { len: bytes.len(), max: MAX_INPUT_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::NotUtf8 { offset: e.valid_up_to() })?;
    let ctx = RefCell::new(Ctx { path: Path::default(), fault: None });
    let mut de = serde_json::Deserializer::from_str(text);
    let result = ValueSeed { ctx: &ctx, depth: 1 }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(match ctx.into_inner().fault {
            Some(Fault::Duplicate(path)) => JsonError::DuplicateKey { path, line: e.line(), column: e.column() },
            Some(Fault::TooDeep(path)) => JsonError::TooDeep { path, max: MAX_DEPTH },
            None => JsonError::Syntax { reason: e.to_string() },
        }),
    }
}

/// Builds a `Value` at nesting level `depth`, sharing the path and fault slot through `ctx`.
struct ValueSeed<'c> {
    ctx: &'c RefCell<Ctx>,
    depth: usize,
}

impl ValueSeed<'_> {
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            let mut ctx = self.ctx.borrow_mut();
            let path = ctx.path.to_string();
            ctx.fault = Some(Fault::TooDeep(path));
            return Err(E::custom("nesting too deep"));
        }
        Ok(())
    }

    fn child(&self) -> ValueSeed<'_> {
        ValueSeed { ctx: self.ctx, depth: self.depth + 1 }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json rejects overflowing literals itself; this only guards the type's contract.
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Vec::new();
        loop {
            self.ctx.borrow_mut().path.push(Seg::Index(out.len()));
            let Some(v) = seq.next_element_seed(self.child())? else {
                self.ctx.borrow_mut().path.pop();
                break;
            };
            self.ctx.borrow_mut().path.pop();
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let mut ctx = self.ctx.borrow_mut();
                ctx.path.push(Seg::Key(key));
                let path = ctx.path.to_string();
                ctx.fault = Some(Fault::Duplicate(path));
                return Err(de::Error::custom("duplicate key"));
            }
            self.ctx.borrow_mut().path.push(Seg::Key(key.clone()));
            let v = map.next_value_seed(self.child())?;
            self.ctx.borrow_mut().path.pop();
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: JsonError) -> u32 {
        CniError::from(e).code
    }

    #[test]
    fn plain_documents_decode_like_serde_json() {
        let text = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"\u00e9"}"#;
        assert_eq!(decode(text.as_bytes()).unwrap(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn duplicate_keys_are_rejected_with_their_path_at_any_depth() {
        for (doc, path) in [
            (r#"{"name":"a","name":"b"}"#, "name"),
            (r#"{"host":{"vhost":{"mode":"client","mode":"server"}}}"#, "host.vhost.mode"),
            (r#"{"ipam":{"routes":[{"dst":"0.0.0.0/0"},{"dst":"a","dst":"b"}]}}"#, "ipam.routes[1].dst"),
            (r#"{"cni.dev/attachments":[],"cni.dev/attachments":[]}"#, r#"["cni.dev/attachments"]"#),
        ] {
            let err = decode(doc.as_bytes()).unwrap_err();
            match &err {
                JsonError::DuplicateKey { path: p, .. } => assert_eq!(p, path, "{doc}"),
                other => panic!("{doc}: expected a duplicate key error, got {other:?}"),
            }
            assert_eq!(code(err), codes::INVALID_NETCONF);
        }
    }

    #[test]
    fn keys_that_differ_in_case_are_not_duplicates_here() {
        // Case folding is the key normaliser's business, and only for our own objects.
        assert!(decode(br#"{"Type":"a","type":"b"}"#).is_ok());
    }

    #[test]
    fn broken_json_and_non_utf8_are_decode_failures() {
        for bad in [&b""[..], b"{", b"{\"a\":}", b"{} x", b"{\"a\":1,}", b"\xef\xbb\xbf{}", b"{\"a\":\"\\ud800\"}"] {
            let err = decode(bad).unwrap_err();
            assert_eq!(code(err.clone()), codes::DECODE_FAILURE, "{:?}: {err}", String::from_utf8_lossy(bad));
        }
        let err = decode(b"{\"name\":\"\xff\xfe\"}").unwrap_err();
        assert_eq!(err, JsonError::NotUtf8 { offset: 9 });
        assert_eq!(code(err), codes::DECODE_FAILURE);
    }

    #[test]
    fn input_over_one_mib_is_refused_before_parsing() {
        let mut big = br#"{"name":""#.to_vec();
        big.resize(MAX_INPUT_BYTES + 1, b'a');
        let err = decode(&big).unwrap_err();
        assert!(matches!(err, JsonError::TooLarge { .. }), "{err:?}");
        assert_eq!(code(err), codes::INVALID_NETCONF);
    }

    #[test]
    fn nesting_is_limited_to_64_levels() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(decode(nest(MAX_DEPTH).as_bytes()).is_ok());
        let err = decode(nest(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(matches!(err, JsonError::TooDeep { .. }), "{err:?}");
        assert_eq!(code(err), codes::INVALID_NETCONF);
        // Far beyond serde_json's own limit: still our error, never a stack overflow.
        let err = decode(nest(100_000).as_bytes()).unwrap_err();
        assert!(matches!(err, JsonError::TooDeep { .. }), "{err:?}");
        let objects = format!("{}1{}", r#"{"a":"#.repeat(70), "}".repeat(70));
        match decode(objects.as_bytes()).unwrap_err() {
            JsonError::TooDeep { path, .. } => assert!(path.starts_with("a.a.a"), "{path}"),
            other => panic!("expected TooDeep, got {other:?}"),
        }
    }
}
