//! The behaviour of every verb in every supported CNI version, through the real binary as a
//! runtime runs it (containernetworking/plugins wraps its behavioural tests in AllSpecVersions
//! the same way): once with the recording backend, and ADD/CHECK/DEL once per version against a
//! real OVS-DPDK. A new version is one new entry in `VERSIONS`.

mod reliability;
mod support;

use reliability::{assert_no_leak, with_host_local};
use serde_json::{json, Value};
use support::{ovs_conf, recording_conf, sandbox, Node};
use testlab::Lab;

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// CHECK exists from 0.4.0, GC and STATUS from 1.1.0 (the spec's verb table).
fn has_check(v: &str) -> bool {
    !v.starts_with("0.3.")
}

fn has_gc_and_status(v: &str) -> bool {
    v == "1.1.0"
}

fn cid(prefix: &str, v: &str) -> String {
    format!("{prefix}{:0<8}000000000000000000001", v.replace('.', ""))
}

/// What every ADD result must hold in version `v`: that version, the host interface and the
/// sandbox entry (Multus needs it); `socketPath` only where the version has the field (libcni's
/// 1.0.0 result type carries it; its 0.4.0 and 0.3.x conversion drops it).
fn assert_add_result(res: &Value, v: &str, what: &str) {
    assert_eq!(res["cniVersion"], v, "{what}: the result is in the config's version: {res}");
    let sb = sandbox(res);
    assert_eq!(sb["name"], "net1", "{what}: sandbox entry named CNI_IFNAME: {res}");
    let has_field = v == "1.0.0" || v == "1.1.0";
    assert_eq!(sb.get("socketPath").is_some(), has_field, "{what}: socketPath only in 1.x results: {res}");
}

#[test]
fn every_verb_in_every_version_with_the_recording_backend() {
    for v in VERSIONS {
        let node = Node::new();
        let id = cid("a11", v);
        let mut conf = recording_conf(v, &format!("all-{}", v.replace('.', "")));
        let res = node.cni("ADD", &id, "net1", &conf, &[]).expect_ok();
        assert_add_result(&res, v, &format!("recording {v}"));

        let mut check = conf.clone();
        check["prevResult"] = res.clone();
        let run = node.cni("CHECK", &id, "net1", &check, &[]);
        if has_check(v) {
            run.expect_ok();
        } else {
            let msg = run.expect_err(1);
            assert!(msg.contains("CHECK") && msg.contains(v), "{v}: CHECK refused, naming it: {msg}");
        }

        let gc = json!({"cniVersion": v, "name": conf["name"], "type": "userspace", "host": conf["host"],
                        "container": conf["container"],
                        "cni.dev/valid-attachments": [{"containerID": id, "ifname": "net1"}]});
        for verb in ["GC", "STATUS"] {
            let run = node.cni(verb, "", "", &gc, &[]);
            if has_gc_and_status(v) {
                run.expect_ok();
            } else {
                run.expect_err(1);
            }
        }
        // GC with this attachment in the valid list kept it.
        assert_eq!(userspace_cni_testkit::load(&node.state_dir()).ports.len(), 1, "{v}: GC kept the valid attachment");

        conf["prevResult"] = res;
        node.cni("DEL", &id, "net1", &conf, &[]).expect_ok();
        node.cni("DEL", &id, "net1", &conf, &[]).expect_ok();
        let dp = userspace_cni_testkit::load(&node.state_dir());
        assert!(dp.ports.is_empty(), "{v}: DEL left ports {:?}", dp.ports);
        assert!(!node.state_dir().join(format!("{id}_net1.json")).exists(), "{v}: DEL left the record");
    }
}

#[test]
fn add_check_del_in_every_version_against_a_real_ovs() {
    let lab = Lab::shared("all-versions").expect("start the private OVS-DPDK lab");
    for v in VERSIONS {
        let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
        let tag = v.replace('.', "");
        let network = format!("net-all-{tag}");
        let mut conf = with_host_local(&node, ovs_conf(&network, &format!("br-all-{tag}"), "client"), "10.77.0.0/24");
        conf["cniVersion"] = json!(v);
        let id = cid("a22", v);
        let res = node.cni("ADD", &id, "net1", &conf, &[]).expect_ok();
        assert_add_result(&res, v, &format!("OVS {v}"));
        assert!(res["ips"].as_array().is_some_and(|a| !a.is_empty()), "OVS {v}: host-local's address: {res}");
        if has_check(v) {
            let mut check = conf.clone();
            check["prevResult"] = res.clone();
            node.cni("CHECK", &id, "net1", &check, &[]).expect_ok();
        }
        node.cni("DEL", &id, "net1", &conf, &[]).expect_ok();
        assert_no_leak(&lab, &node, &network, &id[..12], &format!("OVS {v} after DEL"));
    }
}
