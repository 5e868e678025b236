//! Replacing the upstream plugin in place, in annotation mode: the pod's annotations hold the
//! entries the upstream plugin appended (`userspace/configuration-data`, as its
//! `pkg/annotations` wrote them: Go's `json.MarshalIndent` per entry, joined into one array) and
//! its `userspace/mapped-dir`; our DEL of one upstream attachment removes that attachment's
//! entry, port, socket, lease and state file, and keeps the other attachment's entry and every
//! other annotation. Against the real lab, Debian's host-local and the fake API server.
#![cfg(all(feature = "testkit", feature = "kubernetes"))]

mod reliability;
mod support;

use fakeapi::FakeApi;
use reliability::{host_local_add, leaks, leases, ovs_conf, with_host_local};
use serde_json::{json, Map, Value};
use std::path::Path;
use support::Node;
use testlab::Lab;

const NS: &str = "ns1";
const POD: &str = "vm-up";
const UID: &str = "0d5e7c4a-2b1f-4a3e-8c6d-5f4e3d2c1b0a";
/// Where the pod's container mounts its `shared-dir` volume.
const MOUNT: &str = "/var/run/vhost";
const CONFIG_DATA: &str = "userspace/configuration-data";
const MAPPED_DIR: &str = "userspace/mapped-dir";

/// One entry as the upstream plugin's ADD appended it: its `ConfigurationData` (containerId,
/// ifName, name, config = the container side `UserSpaceConf`, ipResult = the IPAM result) through
/// Go's `json.MarshalIndent(.., "", "    ")`. Go prints struct fields in declaration order and
/// `omitempty` does not drop struct values, hence the empty `memif` and `bridge`.
fn upstream_entry(cid: &str, ifname: &str, network: &str, address: &str) -> String {
    format!(
        r#"{{
    "containerId": "{cid}",
    "ifName": "{ifname}",
    "name": "{network}",
    "config": {{
        "engine": "ovs-dpdk",
        "iftype": "vhostuser",
        "netType": "interface",
        "memif": {{}},
        "vhost": {{
            "mode": "server",
            "socketfile": "{cid12}-{ifname}"
        }},
        "bridge": {{}}
    }},
    "ipResult": {{
        "cniVersion": "0.4.0",
        "ips": [
            {{
                "version": "4",
                "address": "{address}"
            }}
        ],
        "dns": {{}}
    }}
}}"#,
        cid12 = &cid[..12]
    )
}

fn config_data(annotations: &Map<String, Value>) -> Vec<Value> {
    let text = annotations.get(CONFIG_DATA).and_then(Value::as_str).unwrap_or("[]");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{CONFIG_DATA} is not a JSON array ({e}): {text}"))
}

/// What the upstream ADD of (`cid`, `ifname`) left besides the annotation entry: an untagged
/// client-mode port whose socket is in the pod's hostPath volume `dir`, the workload's socket
/// file, the state file and a host-local lease.
fn upstream_port(lab: &Lab, node: &Node, conf: &Value, cid: &str, ifname: &str, dir: &Path) {
    let bridge = conf["host"]["bridge"]["bridgeName"].as_str().expect("bridge");
    let port = format!("{}-{ifname}", &cid[..12]);
    lab.vsctl(&["--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev"])
        .expect("upstream bridge");
    let opt = format!("options:vhost-server-path={}", dir.join(&port).display());
    lab.vsctl(&["add-port", bridge, &port, "--", "set", "Interface", &port, "type=dpdkvhostuserclient", &opt])
        .expect("upstream client-mode port");
    drop(std::os::unix::net::UnixListener::bind(dir.join(&port)).expect("workload socket"));
    let data = node.shared_base().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let state = json!({"vhostname": port, "vhostmac": "", "ifmac": ""});
    std::fs::write(data.join(format!("local-{}-{ifname}.json", &cid[..12])), state.to_string()).expect("state file");
    host_local_add(node, conf, cid, ifname);
}

#[test]
fn del_of_an_upstream_attachment_removes_only_its_annotation_entry() {
    let lab = Lab::shared("upgrade-k8s").expect("start the private OVS-DPDK lab");
    let api = FakeApi::start();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let kubeconfig = node.path("net.d/multus.kubeconfig");
    api.write_kubeconfig(&kubeconfig);

    let (network, bridge) = ("net-up-ann", "br-up-ann");
    let cid = "a0annotated00000000000000000001";
    let mut conf = with_host_local(&node, ovs_conf(network, bridge, "client"), "10.97.0.0/24");
    conf["kubeconfig"] = json!(kubeconfig.display().to_string());
    // The pod's shared-dir is a hostPath volume: upstream put the sockets straight into it.
    let host_dir = node.shared_base().join("vm-up");
    std::fs::create_dir_all(&host_dir).expect("the hostPath dir");
    api.add_pod(
        NS,
        POD,
        UID,
        json!({
            "containers": [{"name": "vm", "image": "vm",
                            "volumeMounts": [{"name": "shared-dir", "mountPath": MOUNT}]}],
            "volumes": [{"name": "shared-dir", "hostPath": {"path": host_dir.display().to_string()}}]
        }),
    );
    for ifname in ["net1", "net2"] {
        upstream_port(&lab, &node, &conf, cid, ifname, &host_dir);
    }
    // The annotations as upstream left them after its two ADDs (its mapped-dir is the mountPath,
    // without a trailing slash), next to other writers' annotations.
    let (net1, net2) =
        (upstream_entry(cid, "net1", network, "10.97.0.2/24"), upstream_entry(cid, "net2", network, "10.97.0.3/24"));
    api.set_annotation(NS, POD, CONFIG_DATA, &format!("[{net1},{net2}]"));
    api.set_annotation(NS, POD, MAPPED_DIR, MOUNT);
    let status = r#"[{"name": "default/net-up-ann", "interface": "net1"}]"#;
    api.set_annotation(NS, POD, "k8s.v1.cni.cncf.io/network-status", status);
    api.set_annotation(NS, POD, "kubevirt.io/domain", "vm-up");
    let net2_entry: Value = serde_json::from_str(&net2).expect("upstream entry is JSON");
    assert_eq!(config_data(&api.annotations(NS, POD)).len(), 2, "the upstream value parses as two entries");
    assert_eq!(leases(&node, network).len(), 2, "two upstream leases");

    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={POD};K8S_POD_UID={UID}");
    let env = [("CNI_ARGS", args.as_str())];
    node.cni("DEL", cid, "net1", &conf, &env).expect_ok();
    let a = api.annotations(NS, POD);
    assert_eq!(config_data(&a), vec![net2_entry.clone()], "only net1's entry is removed: {a:?}");
    assert_eq!(a[MAPPED_DIR], MOUNT, "mapped-dir stays while an entry does: {a:?}");
    assert_eq!(a["k8s.v1.cni.cncf.io/network-status"], status, "other annotations are kept: {a:?}");
    assert_eq!(a["kubevirt.io/domain"], "vm-up", "{a:?}");
    let port1 = format!("{}-net1", &cid[..12]);
    let port2 = format!("{}-net2", &cid[..12]);
    assert_eq!(lab.ports(bridge).expect("ports"), vec![port2.clone()], "net1's port goes, net2's stays");
    assert_eq!(lab.vsctl(&["get", "Port", &port2, "external_ids"]).expect("net2 port"), "{}", "net2 is untouched");
    assert!(!host_dir.join(&port1).exists() && host_dir.join(&port2).exists(), "only net1's socket goes");
    let data = node.shared_base().join("data");
    assert!(!data.join(format!("local-{}-net1.json", &cid[..12])).exists(), "net1's state file is removed");
    assert!(data.join(format!("local-{}-net2.json", &cid[..12])).exists(), "net2's state file stays");
    assert_eq!(leases(&node, network).len(), 1, "net1's lease is released, net2's kept");

    // A second DEL of net1 changes nothing; DEL of net2 takes the last entry and mapped-dir.
    node.cni("DEL", cid, "net1", &conf, &env).expect_ok();
    assert_eq!(config_data(&api.annotations(NS, POD)), vec![net2_entry], "a second DEL changes nothing");
    node.cni("DEL", cid, "net2", &conf, &env).expect_ok();
    let a = api.annotations(NS, POD);
    assert!(!a.contains_key(CONFIG_DATA) && !a.contains_key(MAPPED_DIR), "the last DEL removes both: {a:?}");
    assert_eq!(a["k8s.v1.cni.cncf.io/network-status"], status, "{a:?}");
    assert_eq!(a["kubevirt.io/domain"], "vm-up", "{a:?}");
    assert!(lab.ports(bridge).expect("ports").is_empty(), "both upstream ports are removed");
    assert!(host_dir.is_dir(), "the pod's hostPath dir is not ours to remove");
    // What may stay: the upstream `data` dir, the kubeconfig, the pod's (now empty) hostPath dir.
    let left: Vec<String> = leaks(&lab, &node, network, &cid[..12])
        .into_iter()
        .filter(|l| {
            !matches!(l.as_str(), "file shared/data" | "file shared/vm-up" | "file net.d")
                && !l.starts_with("file net.d/")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:#?}");
    let _ = lab.vsctl(&["--if-exists", "del-br", bridge]);
}
