//! Key normalisation: our keys are matched as Go's encoding/json matches struct fields (exact
//! first, else ASCII case-insensitive) and renamed to one spelling. Never touches delegates' objects.

use super::path::Path;
use serde_json::{Map, Value};
use userspace_cni_api::CniError;

/// The keys of one of our objects, and which of them hold objects of ours in turn. Everything
/// else (ipam, args, prevResult, capabilities, unknown keys) belongs to someone else and is left
/// exactly as written.
pub struct Schema {
    pub keys: &'static [&'static str],
    pub children: &'static [(&'static str, &'static Schema)],
}

pub const MEMIF: Schema = Schema { keys: &["role", "mode", "socketfile"], children: &[] };
pub const VHOST: Schema = Schema { keys: &["mode", "group", "socketfile"], children: &[] };
// `trunks` (OVS), and `mtu`/`ingressPolicing` on a side, are this project's additions; they are
// listed so that two spellings of them are caught like any other key.
pub const BRIDGE: Schema = Schema { keys: &["bridgeName", "bridgeId", "vlanId", "trunks"], children: &[] };
// `permissions` (host side): who may open the shared dir and a server-mode socket (docs/permissions.md).
pub const PERMISSIONS: Schema =
    Schema { keys: &["owner", "group", "dirMode", "socketMode", "selinuxContext"], children: &[] };
pub const SIDE: Schema = Schema {
    keys: &["engine", "iftype", "netType", "memif", "vhost", "bridge", "mtu", "ingressPolicing", "permissions"],
    children: &[("memif", &MEMIF), ("vhost", &VHOST), ("bridge", &BRIDGE), ("permissions", &PERMISSIONS)],
};
pub const RUNTIME_CONFIG: Schema = Schema { keys: &["mac", "deviceID", "CNIDeviceInfoFile"], children: &[] };
pub const TOP: Schema = Schema {
    keys: &[
        "cniVersion",
        "cniVersions",
        "name",
        "type",
        "ipam",
        "kubeconfig",
        "sharedDir",
        "deviceInfoVhostMode",
        "logFile",
        "logLevel",
        "host",
        "container",
        "capabilities",
        "runtimeConfig",
        "deviceID",
        "args",
        "prevResult",
        // CNI 1.1 GC: the runtime's list of attachments still in use.
        "cni.dev/valid-attachments",
        "cni.dev/attachments",
    ],
    children: &[("host", &SIDE), ("container", &SIDE), ("runtimeConfig", &RUNTIME_CONFIG)],
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {path} is given twice, as {first:?} and {second:?} (keys are matched case-insensitively); keep one")]
    TwoSpellings { path: String, first: String, second: String },
}

impl From<KeyError> for CniError {
    fn from(e: KeyError) -> Self {
        // The same key twice is a duplicate key: an invalid config (DESIGN.md §3.5).
        CniError::invalid_config(e.to_string())
    }
}

/// The canonical spelling `key` stands for in `schema`, as encoding/json would pick the field:
/// an exact match wins, else the (only) ASCII case-insensitive match. No two keys of one schema
/// differ only in case, so the result is unique (a test checks).
pub fn canonical(schema: &Schema, key: &str) -> Option<&'static str> {
    schema
        .keys
        .iter()
        .find(|k| **k == key)
        .or_else(|| schema.keys.iter().find(|k| k.eq_ignore_ascii_case(key)))
        .copied()
}

/// Rename the keys of the object `value` (and of our objects below it) to their canonical
/// spellings. A non-object is left alone: the typed reader reports the wrong type with its path.
pub fn normalise(value: &mut Value, schema: &Schema, path: &Path) -> Result<(), KeyError> {
    let Value::Object(map) = value else { return Ok(()) };
    let old = std::mem::take(map);
    // (canonical, as written) for every known key seen so far, to name both spellings.
    let mut seen: Vec<(&'static str, String)> = Vec::new();
    let mut out = Map::new();
    for (key, v) in old {
        match canonical(schema, &key) {
            Some(canon) => {
                if let Some((_, first)) = seen.iter().find(|(c, _)| *c == canon) {
                    return Err(KeyError::TwoSpellings {
                        path: path.key(canon).to_string(),
                        first: first.clone(),
                        second: key,
                    });
                }
                if key != canon {
                    tracing::debug!(written = %key, canonical = canon, "config key matched case-insensitively");
                }
                seen.push((canon, key));
                out.insert(canon.to_owned(), v);
            }
            None => {
                // Unknown keys are tolerated (a newer runtime or a chained plugin may add some).
                tracing::debug!(key = %path.key(&key), "unknown config key ignored");
                out.insert(key, v);
            }
        }
    }
    for (name, child) in schema.children {
        if let Some(v) = out.get_mut(*name) {
            normalise(v, child, &path.key(name))?;
        }
    }
    *map = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_schemas() -> Vec<&'static Schema> {
        vec![&TOP, &SIDE, &MEMIF, &VHOST, &BRIDGE, &PERMISSIONS, &RUNTIME_CONFIG]
    }

    #[test]
    fn no_schema_has_two_keys_differing_only_in_case() {
        for s in all_schemas() {
            for (i, a) in s.keys.iter().enumerate() {
                for b in &s.keys[i + 1..] {
                    assert!(!a.eq_ignore_ascii_case(b), "{a} and {b} would be ambiguous");
                }
            }
            for (child, _) in s.children {
                assert!(s.keys.contains(child), "child {child} must be a key of its schema");
            }
        }
    }

    #[test]
    fn go_style_capitalised_keys_are_renamed() {
        let mut v = json!({
            "Name": "n", "CNIVersion": "1.0.0", "LOGLEVEL": "debug",
            "Host": {"Engine": "ovs-dpdk", "IfType": "vhostuser", "NetType": "bridge",
                     "Vhost": {"Mode": "client", "SocketFile": "s"}, "Bridge": {"BridgeName": "br-4", "VlanID": 5}},
            "RuntimeConfig": {"MAC": "02:00:00:00:00:01", "DeviceId": "x", "cnideviceinfofile": "/f"}
        });
        normalise(&mut v, &TOP, &Path::default()).unwrap();
        assert_eq!(
            v,
            json!({
                "name": "n", "cniVersion": "1.0.0", "logLevel": "debug",
                "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
                         "vhost": {"mode": "client", "socketfile": "s"}, "bridge": {"bridgeName": "br-4", "vlanId": 5}},
                "runtimeConfig": {"mac": "02:00:00:00:00:01", "deviceID": "x", "CNIDeviceInfoFile": "/f"}
            })
        );
    }

    #[test]
    fn delegate_objects_and_unknown_keys_are_untouched() {
        let doc = json!({
            "name": "n",
            "IPAM": {"Type": "host-local", "type": "x", "Routes": [{"Dst": "0.0.0.0/0"}]},
            "args": {"cni": {"MAC": 1}}, "prevResult": {"IPs": []}, "capabilities": {"Mac": true},
            "someVendorKey": {"Name": 1},
            "runtimeConfig": {"portMappings": [], "PortMappings": []}
        });
        let mut v = doc.clone();
        normalise(&mut v, &TOP, &Path::default()).unwrap();
        let mut expected = doc;
        let ipam = expected.as_object_mut().unwrap().remove("IPAM").unwrap();
        expected["ipam"] = ipam;
        assert_eq!(v, expected);
    }

    #[test]
    fn the_same_key_in_two_spellings_is_rejected_at_every_level() {
        for (doc, path) in [
            (json!({"LogLevel": "debug", "logLevel": "info"}), "logLevel"),
            (json!({"name": "a", "NAME": "b"}), "name"),
            (json!({"host": {"iftype": "memif", "ifType": "memif"}}), "host.iftype"),
            (json!({"container": {"memif": {"Role": "slave", "role": "master"}}}), "container.memif.role"),
            (json!({"runtimeConfig": {"mac": "a", "Mac": "b"}}), "runtimeConfig.mac"),
            (json!({"host": {"permissions": {}, "Permissions": {}}}), "host.permissions"),
            (json!({"host": {"permissions": {"dirMode": "0770", "DirMode": "0700"}}}), "host.permissions.dirMode"),
        ] {
            let mut v = doc.clone();
            let err = normalise(&mut v, &TOP, &Path::default()).unwrap_err();
            let KeyError::TwoSpellings { path: p, .. } = &err;
            assert_eq!(p, path, "{doc}");
            assert_eq!(CniError::from(err).code, userspace_cni_api::codes::INVALID_NETCONF);
        }
    }

    #[test]
    fn matching_is_ascii_only() {
        // encoding/json also folds a few non-ASCII letters onto ASCII ones (U+017F long s upper-
        // cases to 'S'); the design asks for ASCII folding, so such a key stays unknown, ignored.
        assert_eq!(canonical(&TOP, "\u{17f}haredDir"), None);
        assert_eq!(canonical(&TOP, "SHAREDDIR"), Some("sharedDir"));
        assert_eq!(canonical(&TOP, "cni.dev/Attachments"), Some("cni.dev/attachments"));
    }
}
