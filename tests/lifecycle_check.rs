//! CHECK against the real lab with host-local: a healthy attachment passes in every version that
//! has CHECK and both vhost modes; each thing that can go wrong behind the plugin's back (port
//! gone, moved, retyped, failed, retagged, re-VLANed, socket or shared dir gone, lease gone,
//! prevResult or CNI_NETNS not matching the record) gives a precise error naming it.

mod reliability;
mod support;

use reliability::{ovs_conf, sandbox, with_host_local};
use serde_json::{json, Value};
use std::sync::Arc;
use support::{Netns, Node};
use testlab::Lab;

fn lab() -> Arc<Lab> {
    Lab::shared("lc-check").expect("start the private OVS-DPDK lab")
}

/// An attachment made by ADD: its node, config, the config CHECK gets (with prevResult) and port.
struct Added {
    node: Node,
    conf: Value,
    check: Value,
    cid: String,
    port: String,
    bridge: String,
}

fn add(lab: &Lab, tag: &str, mode: &str, version: &str) -> Added {
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let bridge = format!("br-ck-{tag}");
    let mut conf = with_host_local(&node, ovs_conf(&format!("net-ck-{tag}"), &bridge, mode), "10.78.0.0/24");
    conf["cniVersion"] = json!(version);
    let cid = format!("c4{tag:0<10}00000000000000000001");
    let res = node.cni("ADD", &cid, "net1", &conf, &[]).expect_ok();
    let mut check = conf.clone();
    check["prevResult"] = res;
    let port = format!("{}-net1", &cid[..12]);
    Added { node, conf, check, cid, port, bridge }
}

impl Added {
    fn check(&self) -> support::Run {
        self.node.cni("CHECK", &self.cid, "net1", &self.check, &[])
    }

    fn del(&self) {
        self.node.cni("DEL", &self.cid, "net1", &self.conf, &[]).expect_ok();
    }
}

#[test]
fn a_healthy_attachment_passes_check_in_every_version_and_mode() {
    let lab = lab();
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        for mode in ["client", "server"] {
            let a = add(&lab, &format!("ok{}{}", &mode[..1], version.replace('.', "")), mode, version);
            a.check().expect_ok();
            a.del();
        }
    }
}

#[test]
fn check_names_a_port_deleted_behind_our_back() {
    let lab = lab();
    let a = add(&lab, "gone", "client", "1.1.0");
    lab.vsctl(&["del-port", &a.bridge, &a.port]).expect("del-port");
    let msg = a.check().expect_err(5);
    assert!(msg.contains(&format!("OVS port {} is missing (expected on bridge {})", a.port, a.bridge)), "{msg}");
    a.del();
}

#[test]
fn check_names_the_bridge_a_port_was_moved_to() {
    let lab = lab();
    let a = add(&lab, "moved", "client", "1.1.0");
    lab.add_netdev_bridge("br-ck-other").expect("other bridge");
    let uuid = lab.vsctl(&["get", "Port", &a.port, "_uuid"]).expect("uuid");
    lab.vsctl(&["remove", "Bridge", &a.bridge, "ports", &uuid, "--", "add", "Bridge", "br-ck-other", "ports", &uuid])
        .expect("move the port");
    let msg = a.check().expect_err(5);
    assert!(msg.contains(&format!("is on bridge br-ck-other, expected {}", a.bridge)), "{msg}");
    a.del();
    lab.vsctl(&["del-br", "br-ck-other"]).expect("cleanup");
}

#[test]
fn check_names_a_wrong_type_a_failed_interface_and_a_bad_ofport() {
    let lab = lab();
    let a = add(&lab, "type", "client", "1.1.0");
    lab.vsctl(&["set", "Interface", &a.port, "type=dpdkvhostuser"]).expect("retype");
    let msg = a.check().expect_err(5);
    assert!(msg.contains("has type \"dpdkvhostuser\", expected dpdkvhostuserclient"), "{msg}");
    // A type vswitchd cannot open: it reports Interface.error and ofport -1.
    lab.vsctl(&["set", "Interface", &a.port, "type=no-such-type"]).expect("break");
    let msg = a.check().expect_err(5);
    assert!(msg.contains("has type \"no-such-type\""), "{msg}");
    assert!(msg.contains("reports an error"), "every finding is reported: {msg}");
    assert!(msg.contains("has no valid ofport (-1)"), "every finding is reported: {msg}");
    a.del();
    assert!(!lab.bridges().expect("bridges").contains(&a.bridge));
}

#[test]
fn check_names_a_changed_vhost_server_path_and_vlan() {
    let lab = lab();
    let a = add(&lab, "opts", "client", "1.1.0");
    lab.vsctl(&["set", "Interface", &a.port, "options:vhost-server-path=/tmp/elsewhere.sock"]).expect("set");
    lab.vsctl(&["set", "Port", &a.port, "tag=42"]).expect("tag");
    let msg = a.check().expect_err(5);
    assert!(msg.contains("options:vhost-server-path=\"/tmp/elsewhere.sock\""), "{msg}");
    assert!(msg.contains("has tag=42, expected none"), "{msg}");
    a.del();
}

#[test]
fn check_names_a_port_that_now_carries_another_containers_tags() {
    let lab = lab();
    let a = add(&lab, "tags", "client", "1.1.0");
    lab.vsctl(&["set", "Port", &a.port, "external_ids:\"userspace-cni/container-id\"=intruder"]).expect("retag");
    let msg = a.check().expect_err(5);
    assert!(msg.contains("does not carry this attachment's tags") && msg.contains("intruder"), "{msg}");
    // The port is not ours any more: DEL leaves it (and so the bridge) alone.
    a.del();
    assert_eq!(lab.ports(&a.bridge).expect("ports"), vec![a.port.clone()]);
    lab.vsctl(&["del-br", &a.bridge]).expect("cleanup");
}

#[test]
fn check_names_a_missing_or_replaced_server_mode_socket() {
    let lab = lab();
    let a = add(&lab, "sock", "server", "1.1.0");
    let sock = std::path::PathBuf::from(sandbox(&a.check["prevResult"])["socketPath"].as_str().expect("socketPath"));
    std::fs::remove_file(&sock).expect("remove the delivered socket");
    let msg = a.check().expect_err(5);
    assert!(msg.contains(&format!("socket {} is missing", sock.display())), "{msg}");
    std::fs::write(&sock, b"not a socket").expect("plant a file");
    let msg = a.check().expect_err(5);
    assert!(msg.contains(&format!("{} should be the dataplane's socket but is not a socket", sock.display())), "{msg}");
    // DEL removes only what it can prove is ours: the pod's file stays, untouched.
    a.del();
    assert_eq!(std::fs::read(&sock).expect("the planted file is left"), b"not a socket");
    std::fs::remove_file(&sock).expect("cleanup");
}

#[test]
fn check_names_a_missing_shared_dir() {
    let lab = lab();
    let a = add(&lab, "dir", "client", "1.1.0");
    let dir = a.node.shared_base().join(&a.cid[..12]);
    std::fs::remove_dir_all(&dir).expect("remove the shared dir");
    let msg = a.check().expect_err(5);
    assert!(msg.contains(&format!("shared dir {} is missing", dir.display())), "{msg}");
    a.del();
}

#[test]
fn check_delegates_to_host_local_which_names_a_lost_lease() {
    let lab = lab();
    let a = add(&lab, "lease", "client", "1.1.0");
    std::fs::remove_file(a.node.path("ipam/net-ck-lease/10.78.0.2")).expect("remove the lease");
    let msg = a.check().expect_err(999);
    assert!(msg.starts_with("host-local: ") && msg.contains("Failed to find address"), "{msg}");
    a.del();
}

#[test]
fn check_compares_prev_result_with_what_add_returned() {
    let lab = lab();
    let a = add(&lab, "prev", "client", "1.1.0");
    let mut other_if = a.check.clone();
    let i =
        other_if["prevResult"]["interfaces"].as_array().and_then(|v| v.iter().position(|x| x["sandbox"].is_string()));
    other_if["prevResult"]["interfaces"][i.expect("sandbox")]["name"] = json!("net9");
    let msg = a.node.cni("CHECK", &a.cid, "net1", &other_if, &[]).expect_err(5);
    assert!(msg.contains("prevResult has no interface \"net1\" (the sandbox interface returned by ADD)"), "{msg}");

    let mut no_ip = a.check.clone();
    no_ip["prevResult"]["ips"] = json!([]);
    let msg = a.node.cni("CHECK", &a.cid, "net1", &no_ip, &[]).expect_err(5);
    assert!(msg.contains("prevResult lacks the address 10.78.0.2/24"), "{msg}");

    let mut other_sock = a.check.clone();
    other_sock["prevResult"]["interfaces"][i.expect("sandbox")]["socketPath"] = json!("/elsewhere/sock");
    let msg = a.node.cni("CHECK", &a.cid, "net1", &other_sock, &[]).expect_err(5);
    assert!(msg.contains("has socketPath \"/elsewhere/sock\""), "{msg}");
    a.del();
}

#[test]
fn check_refuses_another_netns_another_network_and_unknown_or_unfinished_attachments() {
    let lab = lab();
    let a = add(&lab, "who", "client", "1.1.0");
    let other = Netns::new("ck");
    let msg = a.node.cni("CHECK", &a.cid, "net1", &a.check, &[("CNI_NETNS", &other.path())]).expect_err(5);
    assert!(msg.contains(&format!("CNI_NETNS {} is not the network namespace ADD was given", other.path())), "{msg}");

    let mut renamed = a.check.clone();
    renamed["name"] = json!("net-ck-renamed");
    let msg = a.node.cni("CHECK", &a.cid, "net1", &renamed, &[]).expect_err(7);
    assert!(msg.contains("was added to network \"net-ck-who\", not \"net-ck-renamed\""), "{msg}");

    let msg = a.node.cni("CHECK", "nobody000000001", "net1", &a.check, &[]).expect_err(3);
    assert!(msg.contains("no attachment nobody000000001/net1"), "{msg}");

    let mut no_prev = a.check.clone();
    no_prev.as_object_mut().expect("object").remove("prevResult");
    a.node.cni("CHECK", &a.cid, "net1", &no_prev, &[]).expect_err(7);
    a.del();

    // An ADD killed half-way leaves an incomplete record: CHECK says to run DEL.
    let fp = [("USERSPACE_CNI_FAILPOINT", "add:vhost-port:after:kill")];
    let run = a.node.cni("ADD", &a.cid, "net1", &a.conf, &fp);
    assert_eq!(run.signal, Some(9), "{run:?}");
    let msg = a.check().expect_err(5);
    assert!(msg.contains("is incomplete") && msg.contains("run DEL"), "{msg}");
    a.del();
}
