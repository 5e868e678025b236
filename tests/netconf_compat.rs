//! Upstream (Intel userspace-cni-network-plugin) network configs, as its README and CI ship them,
//! through the public `netconf` API: they must parse, and validate where their paths are allowed.

use std::path::PathBuf;
use userspace_cni::netconf::{self, LogLevel};
use userspace_cni_api::spec::{IfType, MemifRole, NetType, VhostMode};
use userspace_cni_api::{codes, CniError, NodeSettings};

/// The upstream README's standalone example (VPP memif), tabs and all.
const README_STANDALONE: &str =
    "{\n\t\"cniVersion\": \"0.3.1\",\n        \"type\": \"userspace\",\n        \"name\": \"memif-network\",
        \"host\": {\"engine\": \"vpp\", \"iftype\": \"memif\", \"netType\": \"bridge\",
                 \"memif\": {\"role\": \"master\", \"mode\": \"ethernet\"}, \"bridge\": {\"bridgeName\": \"4\"}},
        \"container\": {\"engine\": \"vpp\", \"iftype\": \"memif\", \"netType\": \"interface\",
                      \"memif\": {\"role\": \"slave\", \"mode\": \"ethernet\"}},
\t\"ipam\": {\"type\": \"host-local\", \"subnet\": \"10.56.217.0/24\", \"rangeStart\": \"10.56.217.131\",
\t\t\"rangeEnd\": \"10.56.217.190\", \"routes\": [{\"dst\": \"0.0.0.0/0\"}], \"gateway\": \"10.56.217.1\"}\n}";

/// The README's logging section spells the keys `LogFile` / `LogLevel`.
const README_LOGGING: &str = r#"{
    "cniVersion": "0.3.1", "type": "userspace", "name": "userspace-ovs-net-1",
    "LogFile": "/var/log/userspace-cni.log",
    "LogLevel": "debug",
    "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
             "vhost": {"mode": "client"}, "bridge": {"bridgeName": "br-4"}},
    "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}}
}"#;

/// Upstream's vhost-user on VPP, server on the container side, with a socket group (KubeVirt).
const VPP_VHOST_GROUP: &str = r#"{
    "cniVersion": "0.4.0", "type": "userspace", "name": "userspace-vpp-vhost",
    "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
    "host": {"engine": "vpp", "iftype": "vhostuser", "netType": "bridge",
             "vhost": {"mode": "client", "group": "hugetlbfs"}, "bridge": {"bridgeId": 4}},
    "container": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}}
}"#;

fn allow_var_log() -> NodeSettings {
    let mut s = NodeSettings::default();
    s.log_roots.push("/var/log".into());
    s
}

#[test]
fn readme_standalone_memif_example_is_accepted() {
    let nc = netconf::parse(README_STANDALONE.as_bytes()).expect("the README example must parse");
    nc.validate(&NodeSettings::default()).expect("and validate with the default settings");
    assert_eq!(nc.host.iftype, Some(IfType::Memif));
    assert_eq!(nc.host.bridge.as_ref().and_then(|b| b.bridge_name.as_deref()), Some("4"));
    assert_eq!(nc.container.net_type, Some(NetType::Interface));
    assert_eq!(nc.container.memif.as_ref().and_then(|m| m.role), Some(MemifRole::Slave));
}

#[test]
fn readme_logging_keys_in_go_spelling_are_understood() {
    let nc = netconf::parse(README_LOGGING.as_bytes()).unwrap();
    assert_eq!(nc.log_file, Some(PathBuf::from("/var/log/userspace-cni.log")));
    assert_eq!(nc.log_level, Some(LogLevel::Debug));
    assert!(nc.raw.get("logFile").is_some() && nc.raw.get("LogFile").is_none(), "raw has canonical keys");
    nc.validate(&allow_var_log()).unwrap();
}

#[test]
fn an_upstream_log_file_outside_the_log_roots_still_validates() {
    // Upstream examples log to /var/log/<name>.log; the default log_roots allow
    // /var/log/userspace-cni only. Such a config keeps working: the log file is ignored with a
    // warning on stderr where the log opens (tests/hostile.rs), never an error.
    let nc = netconf::parse(README_LOGGING.as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).expect("a logFile outside log_roots is not an error");
}

#[test]
fn vpp_vhost_user_with_a_group_is_accepted() {
    let nc = netconf::parse(VPP_VHOST_GROUP.as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).unwrap();
    let v = nc.host.vhost.as_ref().unwrap();
    assert_eq!((v.mode, v.group.as_deref()), (Some(VhostMode::Client), Some("hugetlbfs")));
    assert_eq!(nc.container.vhost.as_ref().and_then(|v| v.mode), Some(VhostMode::Server));
}

#[test]
fn a_multus_delegated_config_with_runtime_keys_is_accepted() {
    // What Multus passes on: the NAD's config plus runtimeConfig, args and the CNI 1.x fields.
    let doc = r#"{
        "cniVersion": "1.0.0", "name": "userspace-ovs-net-1", "type": "userspace",
        "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "vhost": {"mode": "client"}},
        "runtimeConfig": {"mac": "02:00:00:00:00:2a", "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/dp/x.json"},
        "args": {"cni": {"ips": ["10.0.0.5/24"]}},
        "capabilities": {"mac": true, "deviceID": true},
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [], "ips": []}
    }"#;
    let nc = netconf::parse(doc.as_bytes()).unwrap();
    nc.validate(&NodeSettings::default()).unwrap();
    assert_eq!(nc.runtime_config.mac.as_deref(), Some("02:00:00:00:00:2a"));
    assert!(nc.args.is_some() && nc.prev_result.is_some());
    assert_eq!(nc.capabilities.as_ref().map(|c| c.len()), Some(2));
}

#[test]
fn every_stage_maps_to_its_cni_code() {
    for (doc, code) in [
        (&b"{\"name\": \"x\""[..], codes::DECODE_FAILURE),
        (b"{\"name\": \"\xff\"}", codes::DECODE_FAILURE),
        (b"{\"name\": \"a\", \"Name\": \"b\"}", codes::INVALID_NETCONF),
        (b"{\"name\": \"a\", \"name\": \"a\"}", codes::INVALID_NETCONF),
        (b"{\"name\": \"a\", \"host\": {\"iftype\": \"foo\"}}", codes::INVALID_NETCONF),
        (b"{\"name\": \"a\", \"host\": {\"netType\": \"none\"}}", codes::UNSUPPORTED_FIELD),
    ] {
        let err: CniError = netconf::parse(doc).unwrap_err().into();
        assert_eq!(err.code, code, "{}: {err}", String::from_utf8_lossy(doc));
    }
}
