//! Every supported version × verb through the library API, expectations written from the CNI spec
//! and libcni (pkg/types/100, pkg/types/040, pkg/skel); never compares against our own output.

use serde_json::{json, Value};
use userspace_cni::cni::{
    check_verb_allowed, error_json, error_version, negotiate, valid_attachments, version_response, CniEnv, CniResult,
    CniVersion, Dns, Interface, IpConfig, Route, SUPPORTED,
};
use userspace_cni_api::{codes, CniError, Verb};

const VERBS: [Verb; 6] = [Verb::Add, Verb::Del, Verb::Check, Verb::Gc, Verb::Status, Verb::Version];

fn stdin_for(v: &str) -> Vec<u8> {
    format!(r#"{{"cniVersion":"{v}","name":"userspace-net","type":"userspace"}}"#).into_bytes()
}

/// What a vhost-user ADD produces: the sandbox interface with every 1.1.0 field, a v4 and a v6
/// address with gateways, a default route and a route using the 1.1.0 route fields.
fn add_result() -> CniResult {
    CniResult {
        interfaces: vec![Interface {
            name: "net1".into(),
            mac: Some("02:00:00:aa:bb:cc".into()),
            mtu: Some(9000),
            sandbox: Some("/var/run/netns/cni-1234".into()),
            socket_path: Some("/var/lib/cni/usrspcni/3f6940ab5ab4/3f6940ab5ab4-net1".into()),
            pci_id: Some("0000:03:00.1".into()),
        }],
        ips: vec![
            IpConfig { interface: Some(0), address: "10.1.1.5/24".into(), gateway: Some("10.1.1.1".into()) },
            IpConfig { interface: Some(0), address: "fd00::5/64".into(), gateway: Some("fd00::1".into()) },
        ],
        routes: vec![
            Route { gw: Some("10.1.1.1".into()), ..Route::new("0.0.0.0/0") },
            Route { gw: Some("fd00::1".into()), mtu: Some(1400), table: Some(100), ..Route::new("fd00:1::/64") },
        ],
        dns: Dns::default(),
    }
}

/// The expected ADD result per version, spelled out. 1.0.0 and 1.1.0 share libcni's types100
/// (convertFrom100 copies interfaces whole, so mtu/socketPath/pciID stay in 1.0.0). 0.3.x/0.4.0
/// are types040: each ip gains `version` from its address, interfaces keep name/mac/sandbox, and
/// routes are copied with `types.Route.Copy`, which keeps mtu and table.
fn expected_add(v: &str) -> Value {
    match v {
        "1.1.0" | "1.0.0" => json!({
            "cniVersion": v,
            "interfaces": [{
                "name": "net1",
                "mac": "02:00:00:aa:bb:cc",
                "mtu": 9000,
                "sandbox": "/var/run/netns/cni-1234",
                "socketPath": "/var/lib/cni/usrspcni/3f6940ab5ab4/3f6940ab5ab4-net1",
                "pciID": "0000:03:00.1"
            }],
            "ips": [
                {"interface": 0, "address": "10.1.1.5/24", "gateway": "10.1.1.1"},
                {"interface": 0, "address": "fd00::5/64", "gateway": "fd00::1"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.1.1"},
                {"dst": "fd00:1::/64", "gw": "fd00::1", "mtu": 1400, "table": 100}
            ]
        }),
        "0.4.0" | "0.3.1" | "0.3.0" => json!({
            "cniVersion": v,
            "interfaces": [{"name": "net1", "mac": "02:00:00:aa:bb:cc", "sandbox": "/var/run/netns/cni-1234"}],
            "ips": [
                {"version": "4", "interface": 0, "address": "10.1.1.5/24", "gateway": "10.1.1.1"},
                {"version": "6", "interface": 0, "address": "fd00::5/64", "gateway": "fd00::1"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.1.1"},
                {"dst": "fd00:1::/64", "gw": "fd00::1", "mtu": 1400, "table": 100}
            ]
        }),
        other => panic!("no expectation for version {other}"),
    }
}

/// Which verbs each version defines (CHECK from 0.4.0, GC and STATUS from 1.1.0).
fn defined(verb: Verb, v: &str) -> bool {
    match verb {
        Verb::Add | Verb::Del | Verb::Version => true,
        Verb::Check => matches!(v, "0.4.0" | "1.0.0" | "1.1.0"),
        Verb::Gc | Verb::Status => v == "1.1.0",
    }
}

#[test]
fn supported_versions_are_exactly_the_five() {
    assert_eq!(SUPPORTED, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    let parsed: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
    assert_eq!(parsed, SUPPORTED);
}

#[test]
fn version_verb_answers_in_the_requested_version() {
    for v in SUPPORTED {
        assert_eq!(
            version_response(&stdin_for(v)),
            json!({"cniVersion": v, "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}),
            "VERSION with cniVersion {v}"
        );
    }
}

#[test]
fn version_verb_never_fails_on_odd_stdin() {
    let latest = json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]});
    for stdin in [&b""[..], b"{}", b"not json", br#"{"cniVersion":"0.2.0"}"#, br#"{"cniVersion":"9.0.0"}"#] {
        assert_eq!(version_response(stdin), latest, "stdin {:?}", String::from_utf8_lossy(stdin));
    }
}

#[test]
fn config_version_is_negotiated_per_version() {
    for v in SUPPORTED {
        let conf: Value = serde_json::from_slice(&stdin_for(v)).expect("test config is JSON");
        let got = negotiate(&conf).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(got.as_str(), v);
    }
}

#[test]
fn add_result_shape_per_version() {
    let r = add_result();
    for v in CniVersion::ALL {
        assert_eq!(r.to_json(v), expected_add(v.as_str()), "ADD result in {v}");
    }
}

#[test]
fn add_result_read_back_per_version() {
    // What a chained plugin or our own IPAM reader sees: 1.x keeps everything, 0.x loses only
    // the interface fields types040 cannot carry.
    for v in CniVersion::ALL {
        let back = CniResult::from_json(&expected_add(v.as_str())).unwrap_or_else(|e| panic!("{v}: {e}"));
        let mut want = add_result();
        if v < CniVersion::V100 {
            want.interfaces[0].mtu = None;
            want.interfaces[0].socket_path = None;
            want.interfaces[0].pci_id = None;
        }
        assert_eq!(back, want, "read back {v}");
    }
}

#[test]
fn verb_gating_per_version() {
    for v in CniVersion::ALL {
        for verb in VERBS {
            let got = check_verb_allowed(verb, v);
            if defined(verb, v.as_str()) {
                assert_eq!(got, Ok(()), "{} in {v}", verb.as_str());
            } else {
                let e = CniError::from(got.expect_err("undefined verb must be refused"));
                assert_eq!(e.code, codes::INCOMPATIBLE_VERSION, "{} in {v}: {}", verb.as_str(), e.msg);
                let needs = if verb == Verb::Check { "0.4.0" } else { "1.1.0" };
                assert_eq!(
                    e.msg,
                    format!(
                        "{} is not defined for cniVersion {v} (needs {needs} or later); set cniVersion to {needs} or \
                         later in the network config",
                        verb.as_str()
                    )
                );
            }
        }
    }
}

#[test]
fn environment_per_verb() {
    // Only what each verb requires, per CNI 1.1 (DEL without CNI_NETNS, GC/STATUS with CNI_PATH only).
    let required: [(Verb, &[&str]); 6] = [
        (Verb::Add, &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        (Verb::Check, &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        (Verb::Del, &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]),
        (Verb::Gc, &["CNI_PATH"]),
        (Verb::Status, &["CNI_PATH"]),
        (Verb::Version, &[]),
    ];
    let value = |k: &str| match k {
        "CNI_CONTAINERID" => "abc",
        "CNI_NETNS" => "/var/run/netns/cni-1234",
        "CNI_IFNAME" => "net1",
        "CNI_PATH" => "/opt/cni/bin",
        _ => "",
    };
    for (verb, vars) in required {
        let env = CniEnv::from_vars(|k| {
            if k == "CNI_COMMAND" {
                Some(verb.as_str().to_string())
            } else {
                vars.contains(&k).then(|| value(k).to_string())
            }
        })
        .unwrap_or_else(|e| panic!("{} with exactly its required variables: {e}", verb.as_str()));
        assert_eq!(env.command, verb);
        for missing in vars {
            let e = CniEnv::from_vars(|k| {
                if k == "CNI_COMMAND" {
                    Some(verb.as_str().to_string())
                } else {
                    (vars.contains(&k) && k != *missing).then(|| value(k).to_string())
                }
            })
            .expect_err("a required variable is missing");
            let e = CniError::from(e);
            assert_eq!(e.code, codes::INVALID_ENV);
            assert!(e.msg.contains(missing), "{} without {missing}: {}", verb.as_str(), e.msg);
        }
    }
}

#[test]
fn gc_reads_valid_attachments() {
    let conf = json!({
        "cniVersion": "1.1.0",
        "name": "userspace-net",
        "type": "userspace",
        "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "net1"}],
        "cni.dev/attachments": [{"containerID": "abc", "ifname": "net1"}]
    });
    let ids = valid_attachments(&conf).expect("valid list");
    assert_eq!(ids.len(), 1);
    assert_eq!((ids[0].container_id.as_str(), ids[0].ifname.as_str()), ("abc", "net1"));
    let bad = json!({"cni.dev/valid-attachments": [{"containerID": "abc"}]});
    assert_eq!(CniError::from(valid_attachments(&bad).expect_err("no ifname")).code, codes::INVALID_NETCONF);
}

#[test]
fn error_document_per_version() {
    let err = CniError::new(codes::INVALID_NETCONF, "host.engine \"dpdk\" is unknown; use ovs-dpdk or vpp")
        .with_details("engines built in: ovs-dpdk, vpp");
    for v in SUPPORTED {
        let stamped = error_version(&stdin_for(v));
        assert_eq!(stamped, v, "an error for a {v} config is stamped {v}");
        assert_eq!(
            error_json(&err, &stamped),
            json!({
                "cniVersion": v,
                "code": 7,
                "msg": "host.engine \"dpdk\" is unknown; use ovs-dpdk or vpp",
                "details": "engines built in: ovs-dpdk, vpp"
            })
        );
        assert_eq!(
            error_json(&CniError::new(codes::INCOMPATIBLE_VERSION, "x"), &stamped),
            json!({"cniVersion": v, "code": 1, "msg": "x"}),
            "details are left out when empty"
        );
    }
    assert_eq!(error_version(br#"{"cniVersion":"0.2.0"}"#), "1.1.0");
    assert_eq!(error_version(b"\x00garbage"), "1.1.0");
}

#[test]
fn unsupported_config_version_is_an_incompatible_version_error() {
    for v in ["0.1.0", "0.2.0", "1.2.0"] {
        let conf: Value = serde_json::from_slice(&stdin_for(v)).expect("test config is JSON");
        let e = CniError::from(negotiate(&conf).expect_err("unsupported"));
        assert_eq!(e.code, codes::INCOMPATIBLE_VERSION, "{v}");
        assert!(e.msg.contains("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{v}: {}", e.msg);
    }
}
