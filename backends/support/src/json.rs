//! Lookups in a raw config object. The upstream plugin decodes with Go's `encoding/json`, which
//! matches keys case-insensitively, so a config written for it says `bridgeName` or `BridgeName`
//! alike; an engine's own keys must be read the same way.

use serde_json::Value;

/// `obj[key]`, the exact key first, else the first key equal ignoring ASCII case (Go's rule);
/// `None` when `obj` is not an object or has no such key.
pub fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_exact_key_wins_then_any_case() {
        let v = json!({"mtu": 1, "MTU": 2, "Rate": 3});
        assert_eq!(get_ci(&v, "mtu"), Some(&json!(1)));
        assert_eq!(get_ci(&v, "MTU"), Some(&json!(2)));
        assert_eq!(get_ci(&v, "rate"), Some(&json!(3)));
        assert_eq!(get_ci(&v, "burst"), None);
        assert_eq!(get_ci(&json!([1, 2]), "mtu"), None);
    }
}
