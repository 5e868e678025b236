//! End-to-end tests of `parse` + `validate`: upstream configs, Go-style keys, the bad-input rules,
//! and properties that must hold for any input (never a panic).

use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::path::PathBuf;
use userspace_cni_api::codes;
use userspace_cni_api::spec::{IfType, MemifMode, MemifRole, NetType, VhostMode};

const UPSTREAM_OVS: &str = r#"{"cniVersion":"0.3.1","type":"userspace","name":"userspace-ovs-net-1","kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","logFile":"/var/log/userspace-ovs-net-1-cni.log","logLevel":"debug","host":{"engine":"ovs-dpdk","iftype":"vhostuser","netType":"bridge","vhost":{"mode":"client"},"bridge":{"bridgeName":"br-4"}},"container":{"engine":"ovs-dpdk","iftype":"vhostuser","netType":"interface","vhost":{"mode":"server"}},"ipam":{"type":"host-local","subnet":"10.56.217.0/24","rangeStart":"10.56.217.131","rangeEnd":"10.56.217.190","routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.56.217.1"}}"#;

const UPSTREAM_VPP: &str = r#"{
    "cniVersion": "0.3.1",
    "type": "userspace",
    "name": "userspace-vpp-net-1",
    "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
    "logFile": "/var/log/userspace-vpp-net-1-cni.log",
    "logLevel": "debug",
    "host": {
        "engine": "vpp",
        "iftype": "memif",
        "netType": "bridge",
        "memif": { "role": "master", "mode": "ethernet" },
        "bridge": { "bridgeId": 4 }
    },
    "container": {
        "engine": "vpp",
        "iftype": "memif",
        "netType": "interface",
        "memif": { "role": "slave", "mode": "ethernet" }
    },
    "ipam": { "type": "host-local", "subnet": "10.56.217.0/24", "routes": [ { "dst": "0.0.0.0/0" } ] }
}"#;

/// Upstream's "sharedDir" flavour (no kubeconfig), with the upstream default base dir.
const UPSTREAM_SHARED_DIR: &str = r#"{
    "cniVersion": "0.3.1", "type": "userspace", "name": "userspace-ovs-net-2",
    "sharedDir": "/var/lib/cni/usrspcni/",
    "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
             "vhost": {"mode": "client", "socketfile": "vhost0"}, "bridge": {"bridgeName": "br0"}},
    "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}}
}"#;

/// The default settings (the upstream examples' paths validate with them).
fn settings() -> NodeSettings {
    NodeSettings::default()
}

fn code_of(e: NetConfError) -> u32 {
    CniError::from(e).code
}

fn err_of(doc: &str) -> CniError {
    match parse(doc.as_bytes()).and_then(|nc| nc.validate(&settings())) {
        Ok(()) => panic!("expected an error for {doc}"),
        Err(e) => e.into(),
    }
}

fn minimal() -> serde_json::Value {
    json!({"cniVersion": "1.0.0", "name": "net1", "type": "userspace",
           "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"}})
}

#[test]
fn upstream_ovs_readme_example_parses_and_validates() {
    let nc = parse(UPSTREAM_OVS.as_bytes()).unwrap();
    nc.validate(&settings()).unwrap();
    assert_eq!(nc.cni_version.as_deref(), Some("0.3.1"));
    assert_eq!(nc.name, "userspace-ovs-net-1");
    assert_eq!(nc.plugin_type, "userspace");
    assert_eq!(nc.kubeconfig, Some(PathBuf::from("/etc/cni/net.d/multus.d/multus.kubeconfig")));
    assert_eq!(nc.log_level, Some(LogLevel::Debug));
    assert_eq!(nc.host.engine.as_deref(), Some("ovs-dpdk"));
    assert_eq!(nc.host.iftype, Some(IfType::VhostUser));
    assert_eq!(nc.host.net_type, Some(NetType::Bridge));
    assert_eq!(nc.host.vhost.as_ref().and_then(|v| v.mode), Some(VhostMode::Client));
    assert_eq!(nc.host.bridge.as_ref().and_then(|b| b.bridge_name.as_deref()), Some("br-4"));
    assert_eq!(nc.container.net_type, Some(NetType::Interface));
    assert_eq!(nc.container.vhost.as_ref().and_then(|v| v.mode), Some(VhostMode::Server));
    let ipam = nc.ipam.as_ref().unwrap();
    assert_eq!(ipam["type"], "host-local");
    assert_eq!(ipam["routes"][0]["dst"], "0.0.0.0/0");
    // raw is the whole document (already canonical here), for delegation and the record.
    assert_eq!(nc.raw, serde_json::from_str::<serde_json::Value>(UPSTREAM_OVS).unwrap());
    assert_eq!(nc.host.raw, nc.raw["host"]);
}

#[test]
fn upstream_vpp_and_shared_dir_examples_parse_and_validate() {
    let nc = parse(UPSTREAM_VPP.as_bytes()).unwrap();
    nc.validate(&settings()).unwrap();
    let m = nc.host.memif.as_ref().unwrap();
    assert_eq!((m.role, m.mode), (Some(MemifRole::Master), Some(MemifMode::Ethernet)));
    assert_eq!(nc.host.bridge.as_ref().and_then(|b| b.bridge_id), Some(4));
    assert_eq!(nc.container.memif.as_ref().and_then(|m| m.role), Some(MemifRole::Slave));

    let nc = parse(UPSTREAM_SHARED_DIR.as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).unwrap();
    assert_eq!(nc.shared_dir, Some(PathBuf::from("/var/lib/cni/usrspcni/")));
    assert_eq!(nc.container.vhost.as_ref().and_then(|v| v.socketfile.as_deref()), Some("vhost0"));
}

#[test]
fn go_style_capitalised_keys_parse_to_the_same_config() {
    let go = r#"{"CNIVersion":"0.3.1","Type":"userspace","Name":"userspace-ovs-net-1",
        "KubeConfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","LogFile":"/var/log/userspace-ovs-net-1-cni.log",
        "LogLevel":"DEBUG",
        "Host":{"Engine":"ovs-dpdk","IfType":"vhostuser","NetType":"bridge","Vhost":{"Mode":"client"},"Bridge":{"BridgeName":"br-4"}},
        "Container":{"ENGINE":"ovs-dpdk","IFTYPE":"vhostuser","nettype":"interface","VHOST":{"MODE":"server"}},
        "IPAM":{"type":"host-local","subnet":"10.56.217.0/24","rangeStart":"10.56.217.131","rangeEnd":"10.56.217.190","routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.56.217.1"}}"#;
    let a = parse(go.as_bytes()).unwrap();
    let b = parse(UPSTREAM_OVS.as_bytes()).unwrap();
    a.validate(&settings()).unwrap();
    let mut expected_raw = b.raw.clone();
    expected_raw["logLevel"] = json!("DEBUG");
    assert_eq!(a.raw, expected_raw, "keys are renamed to their canonical spelling, values untouched");
    assert_eq!((&a.host, &a.container, a.log_level), (&b.host, &b.container, b.log_level));
}

#[test]
fn the_minimal_config_gets_upstream_defaults() {
    let nc = parse(minimal().to_string().as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).unwrap();
    assert_eq!(nc.host.vhost.as_ref().and_then(|v| v.mode), Some(VhostMode::Server));
    assert_eq!(nc.container.engine.as_deref(), Some("ovs-dpdk"));
    assert_eq!(nc.container.iftype, Some(IfType::VhostUser));
    assert_eq!(nc.container.vhost.as_ref().and_then(|v| v.mode), Some(VhostMode::Client));
    // The defaults are not written back into the documents: raw stays what was given.
    assert_eq!(nc.container.raw, serde_json::Value::Null);
    assert!(nc.raw.get("container").is_none());
}

#[test]
fn duplicate_keys_at_depth_and_two_spellings_are_code_7() {
    for doc in [
        r#"{"name":"a","name":"a"}"#,
        r#"{"name":"a","host":{"engine":"ovs-dpdk","engine":"vpp"}}"#,
        r#"{"name":"a","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24","subnet":"10.0.1.0/24"}]]}}"#,
        r#"{"name":"a","LogLevel":"debug","logLevel":"info"}"#,
        r#"{"name":"a","host":{"Vhost":{"mode":"client"},"vhost":{"mode":"server"}}}"#,
    ] {
        let err = err_of(doc);
        assert_eq!(err.code, codes::INVALID_NETCONF, "{doc}: {err}");
    }
    let err = err_of(r#"{"name":"a","ipam":{"ranges":[[{"subnet":"x","subnet":"y"}]]}}"#);
    assert!(err.msg.contains("ipam.ranges[0][0].subnet"), "the message names the key path: {err}");
    let err = err_of(r#"{"name":"a","LogLevel":"debug","logLevel":"info"}"#);
    assert!(err.msg.contains("\"LogLevel\"") && err.msg.contains("\"logLevel\""), "{err}");
}

#[test]
fn broken_json_is_code_6_and_non_utf8_too() {
    for bytes in [&b"{\"name\":"[..], b"not json", b"", b"{\"name\":\"\xc3\x28\"}", b"\xff"] {
        let err: CniError = parse(bytes).unwrap_err().into();
        assert_eq!(err.code, codes::DECODE_FAILURE, "{:?}: {err}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn huge_and_deep_inputs_are_code_7() {
    let mut doc = minimal();
    doc["ipam"] = json!({"type": "host-local", "pad": "x".repeat(MAX_INPUT_BYTES)});
    assert_eq!(code_of(parse(doc.to_string().as_bytes()).unwrap_err()), codes::INVALID_NETCONF);

    let deep = format!(r#"{{"name":"a","args":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    let err: CniError = parse(deep.as_bytes()).unwrap_err().into();
    assert_eq!(err.code, codes::INVALID_NETCONF, "{err}");
    assert!(err.msg.contains("args[0][0]"), "{err}");
}

#[test]
fn a_non_object_document_is_code_7() {
    for doc in ["[]", "\"userspace\"", "null", "5"] {
        assert_eq!(code_of(parse(doc.as_bytes()).unwrap_err()), codes::INVALID_NETCONF, "{doc}");
    }
}

#[test]
fn unknown_keys_are_kept_and_ignored() {
    let mut doc = minimal();
    doc["dns"] = json!({"nameservers": ["10.0.0.1"]});
    doc["host"]["vendorExtension"] = json!({"x": 1});
    let nc = parse(doc.to_string().as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).unwrap();
    assert_eq!(nc.raw["dns"], doc["dns"]);
    assert_eq!(nc.host.raw["vendorExtension"], json!({"x": 1}));
}

#[test]
fn runtime_config_is_read_and_the_mac_checked() {
    let mut doc = minimal();
    let devinfo = "/var/run/k8s.cni.cncf.io/devinfo/x.json";
    doc["runtimeConfig"] =
        json!({"mac": "02:00:00:AA:BB:01", "deviceID": "0000:03:00.1", "CNIDeviceInfoFile": devinfo});
    doc["deviceID"] = json!("vhost-dp_dev-1");
    let nc = parse(doc.to_string().as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).unwrap();
    assert_eq!(nc.runtime_config.mac.as_deref(), Some("02:00:00:AA:BB:01"));
    assert_eq!(nc.runtime_config.device_id.as_deref(), Some("0000:03:00.1"));
    assert_eq!(nc.device_id.as_deref(), Some("vhost-dp_dev-1"));
    let mut doc = minimal();
    doc["deviceID"] = json!("a/b");
    assert!(err_of(&doc.to_string()).msg.contains("deviceID \"a/b\" is not a device id"));

    for (rc, needle) in [
        (json!({"mac": "02:00:00:00:01"}), "runtimeConfig.mac"),
        (json!({"mac": "01:00:5e:00:00:01"}), "multicast"),
        (json!({"CNIDeviceInfoFile": "devinfo.json"}), "not absolute"),
        (json!({"CNIDeviceInfoFile": "/run/../etc/x.json"}), "'..'"),
        (json!({"CNIDeviceInfoFile": "/run/devinfo/"}), "directory"),
        (json!({"deviceID": "../../etc"}), "runtimeConfig.deviceID"),
        (json!({"deviceID": ".."}), "runtimeConfig.deviceID"),
    ] {
        let mut doc = minimal();
        doc["runtimeConfig"] = rc.clone();
        let err = err_of(&doc.to_string());
        assert_eq!(err.code, codes::INVALID_NETCONF, "{rc}: {err}");
        assert!(err.msg.contains(needle), "{rc}: {err}");
    }
}

#[test]
fn validation_rules_are_code_7_and_name_key_and_value() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"name": "bad name", "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"}}), "name \"bad name\""),
        (json!({"name": "-net", "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"}}), "start with a letter"),
        (json!({"name": "n".repeat(254), "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"}}), "254 bytes"),
        (json!({"name": "n", "host": {"iftype": "vhostuser"}}), "host.engine is required"),
        (json!({"name": "n", "host": {"engine": "ovs-dpdk"}}), "host.iftype is required"),
        (json!({"name": "n"}), "host.engine is required"),
    ];
    for (doc, needle) in cases {
        let err = err_of(&doc.to_string());
        assert_eq!(err.code, codes::INVALID_NETCONF, "{doc}: {err}");
        assert!(err.msg.contains(needle), "{doc}: {err}");
    }

    for (key, value, needle) in [
        ("sharedDir", "/etc", "sharedDir \"/etc\" is not under an allowed root"),
        ("sharedDir", "relative/dir", "not an absolute path"),
        ("sharedDir", "/var/lib/cni/usrspcni/../../../etc", "'..'"),
        ("kubeconfig", "/home/u/.kube/config", "kubeconfig_files"),
        ("kubeconfig", "/etc/cni/net.d.evil/kubeconfig", "/etc/cni/net.d/multus.d/multus.kubeconfig"),
        ("kubeconfig", "/var/lib/cni/usrspcni/pod/kubeconfig", "kubeconfig_files"),
    ] {
        let mut doc = minimal();
        doc[key] = json!(value);
        let err = err_of(&doc.to_string());
        assert_eq!(err.code, codes::INVALID_NETCONF, "{key}={value}: {err}");
        assert!(err.msg.contains(needle), "{key}={value}: {err}");
        let lists = if key == "sharedDir" { "/var/lib/cni/usrspcni" } else { "/etc/userspace-cni/kubeconfig" };
        assert!(err.msg.contains(lists), "the message lists what is allowed: {err}");
    }

    for (side, needle) in [
        (json!({"vhost": {"socketfile": "../../etc/passwd"}}), "host.vhost.socketfile"),
        (json!({"vhost": {"socketfile": ".."}}), "host.vhost.socketfile"),
        (json!({"vhost": {"group": "qemu;rm"}}), "host.vhost.group"),
        (json!({"bridge": {"bridgeName": "br 0"}}), "host.bridge.bridgeName"),
        (json!({"bridge": {"bridgeName": "br/0"}}), "host.bridge.bridgeName"),
    ] {
        let mut doc = minimal();
        for (k, v) in side.as_object().unwrap() {
            doc["host"][k] = v.clone();
        }
        let err = err_of(&doc.to_string());
        assert_eq!(err.code, codes::INVALID_NETCONF, "{side}: {err}");
        assert!(err.msg.contains(needle), "{side}: {err}");
    }

    let mut doc = minimal();
    doc["host"]["iftype"] = json!("memif");
    doc["host"]["memif"] = json!({"socketfile": "a/b"});
    let err = err_of(&doc.to_string());
    assert!(err.msg.contains("host.memif.socketfile"), "{err}");
}

#[test]
fn paths_under_a_configured_root_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = NodeSettings { shared_roots: vec![dir.path().to_path_buf()], ..NodeSettings::default() };
    let mut doc = minimal();
    doc["sharedDir"] = json!(format!("{}/./pods//x", dir.path().display()));
    // A logFile anywhere validates: one outside log_roots is ignored where the log opens.
    doc["logFile"] = json!("/var/log/net1.log");
    parse(doc.to_string().as_bytes()).unwrap().validate(&s).unwrap();
    doc["sharedDir"] = json!("/var/lib/kubelet/pods");
    let err: CniError = parse(doc.to_string().as_bytes()).unwrap().validate(&s).unwrap_err().into();
    assert!(err.msg.contains("sharedDir") && err.msg.contains("shared_roots"), "{err}");
}

#[test]
fn two_sides_that_cannot_meet_are_code_2() {
    for (host, container, needle) in [
        (json!({"iftype": "vhostuser"}), json!({"iftype": "memif"}), "container.iftype"),
        (json!({"iftype": "vhostuser", "vhost": {"mode": "client"}}), json!({"vhost": {"mode": "client"}}), "server"),
        (json!({"iftype": "vhostuser"}), json!({"vhost": {"mode": "server"}}), "container.vhost.mode"),
        (json!({"iftype": "memif"}), json!({"memif": {"role": "master"}}), "container.memif.role"),
        (
            json!({"iftype": "memif", "memif": {"mode": "ip"}}),
            json!({"memif": {"mode": "ethernet"}}),
            "container.memif.mode",
        ),
    ] {
        let mut doc = minimal();
        doc["host"] = host.clone();
        doc["host"]["engine"] = json!("ovs-dpdk");
        doc["container"] = container.clone();
        let err = err_of(&doc.to_string());
        assert_eq!(err.code, codes::UNSUPPORTED_FIELD, "{host} / {container}: {err}");
        assert!(err.msg.contains(needle), "{host} / {container}: {err}");
    }
}

#[test]
fn from_value_matches_parse() {
    let v: serde_json::Value = serde_json::from_str(UPSTREAM_OVS).unwrap();
    assert_eq!(from_value(v).unwrap(), parse(UPSTREAM_OVS.as_bytes()).unwrap());
}

/// Any JSON value, nested a few levels, with keys drawn partly from our own key names in odd
/// spellings, so the normaliser and the typed reader see plausible shapes.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("name".to_string()),
        Just("Host".to_string()),
        Just("container".to_string()),
        Just("vhost".to_string()),
        Just("MEMIF".to_string()),
        Just("bridge".to_string()),
        Just("vlanId".to_string()),
        Just("socketfile".to_string()),
        Just("iftype".to_string()),
        Just("runtimeConfig".to_string()),
        Just("mac".to_string()),
        Just("cni.dev/valid-attachments".to_string()),
        Just("sharedDir".to_string()),
        "[a-zA-Z./]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("vhostuser".to_string()),
            Just("memif".to_string()),
            Just("client".to_string()),
            Just("/var/lib/cni/usrspcni/x".to_string()),
            ".{0,12}"
        ]
        .prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(nc) = parse(&bytes) {
            let _ = nc.validate(&NodeSettings::default());
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_json(v in arb_json()) {
        let text = v.to_string();
        match parse(text.as_bytes()) {
            Ok(nc) => {
                let _ = nc.validate(&NodeSettings::default());
                // Normalisation is idempotent: the canonical document parses to the same config.
                prop_assert_eq!(from_value(nc.raw.clone()).map_err(|e| e.to_string()), Ok(nc));
            }
            Err(e) => {
                let code = CniError::from(e).code;
                prop_assert!(code == codes::INVALID_NETCONF || code == codes::UNSUPPORTED_FIELD, "code {}", code);
            }
        }
    }

    #[test]
    fn errors_from_arbitrary_configs_have_spec_codes(v in arb_json()) {
        let mut doc = minimal();
        doc["host"]["vhost"] = v.clone();
        doc["container"] = v;
        if let Err(e) = parse(doc.to_string().as_bytes()).and_then(|nc| nc.validate(&NodeSettings::default())) {
            let code = CniError::from(e).code;
            prop_assert!([codes::INVALID_NETCONF, codes::UNSUPPORTED_FIELD].contains(&code), "code {}", code);
        }
    }
}
