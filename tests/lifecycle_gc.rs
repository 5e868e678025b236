//! CNI GC against the real lab with host-local: for this network only, every attachment not in the
//! valid list goes with everything it owns (record, OVS port, bridge when emptied, sockets in the
//! shared dir and OVS's dir, shared dir, lease); an absent list means "none valid" for this
//! network only; tagged OVS objects whose records were lost go by their tags; GC keeps going past
//! a failing attachment, leaves locked ones to their owner, sweeps stray lock and temp files.

mod reliability;
mod support;

use reliability::{leases, ovs_conf, ovs_objects, with_host_local};
use serde_json::{json, Value};
use std::sync::Arc;
use support::Node;
use testlab::Lab;

fn lab() -> Arc<Lab> {
    Lab::shared("lc-gc").expect("start the private OVS-DPDK lab")
}

fn gc_conf(conf: &Value, valid: Option<&[&str]>) -> Value {
    let mut gc = conf.clone();
    if let Some(ids) = valid {
        gc["cni.dev/valid-attachments"] =
            Value::Array(ids.iter().map(|c| json!({"containerID": c, "ifname": "net1"})).collect());
    }
    gc
}

fn record(node: &Node, cid: &str) -> std::path::PathBuf {
    node.state_dir().join(format!("{cid}_net1.json"))
}

fn port(cid: &str) -> String {
    format!("{}-net1", &cid[..12])
}

#[test]
fn gc_removes_only_stale_attachments_of_this_network_and_all_they_own() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let a_client = with_host_local(&node, ovs_conf("net-gc-a", "br-gc-a", "client"), "10.79.0.0/24");
    let a_server = with_host_local(&node, ovs_conf("net-gc-a", "br-gc-a", "server"), "10.79.0.0/24");
    let b = with_host_local(&node, ovs_conf("net-gc-b", "br-gc-b", "client"), "10.80.0.0/24");
    let (keep, stale_c, stale_s, other) = ("a0keep000000001", "a0stalec0000002", "a0stales0000003", "b0other00000004");
    let keep_res = node.cni("ADD", keep, "net1", &a_client, &[]).expect_ok();
    node.cni("ADD", stale_c, "net1", &a_client, &[]).expect_ok();
    let srv = node.cni("ADD", stale_s, "net1", &a_server, &[]).expect_ok();
    node.cni("ADD", other, "net1", &b, &[]).expect_ok();
    let srv_sock = std::path::PathBuf::from(reliability::sandbox(&srv)["socketPath"].as_str().expect("socketPath"));
    assert!(srv_sock.exists(), "the server-mode socket was delivered");
    assert_eq!(leases(&node, "net-gc-a").len(), 3);

    node.cni("GC", "", "", &gc_conf(&a_client, Some(&[keep])), &[]).expect_ok();
    for stale in [stale_c, stale_s] {
        assert!(!record(&node, stale).exists(), "{stale}: record removed");
        assert!(!node.shared_base().join(&stale[..12]).exists(), "{stale}: shared dir removed");
        assert!(!lab.sock_dir().join(port(stale)).exists(), "{stale}: nothing in OVS's dir");
    }
    assert!(!srv_sock.exists(), "the delivered socket is removed");
    assert_eq!(lab.ports("br-gc-a").expect("ports"), vec![port(keep)], "only the valid port stays");
    assert_eq!(leases(&node, "net-gc-a"), vec!["10.79.0.2"], "only the valid attachment's lease stays");
    let mut check = a_client.clone();
    check["prevResult"] = keep_res;
    node.cni("CHECK", keep, "net1", &check, &[]).expect_ok();
    assert!(
        record(&node, other).exists() && lab.ports("br-gc-b").expect("ports") == vec![port(other)],
        "network b untouched"
    );
    assert_eq!(leases(&node, "net-gc-b").len(), 1, "network b's lease untouched");

    // No list at all: nothing of this network is valid; still nothing of another network goes.
    node.cni("GC", "", "", &gc_conf(&a_client, None), &[]).expect_ok();
    assert!(!record(&node, keep).exists());
    assert!(!lab.bridges().expect("bridges").contains(&"br-gc-a".to_string()), "the emptied bridge goes");
    assert!(ovs_objects(&lab, "net-gc-a").is_empty(), "{:?}", ovs_objects(&lab, "net-gc-a"));
    assert!(leases(&node, "net-gc-a").is_empty());
    assert!(record(&node, other).exists() && leases(&node, "net-gc-b").len() == 1, "network b untouched");
    node.cni("DEL", other, "net1", &b, &[]).expect_ok();
    reliability::assert_no_leak(&lab, &node, "net-gc-b", "b0other00000", "after DEL of b");
    reliability::assert_no_leak(&lab, &node, "net-gc-a", "a0stale", "network a");
}

#[test]
fn gc_removes_tagged_ports_and_bridges_whose_records_were_lost() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let lost = ovs_conf("net-gc-lost", "br-gc-lost", "client");
    let other = ovs_conf("net-gc-keep", "br-gc-keep", "client");
    let (valid, orphan, theirs) = ("l0valid00000001", "l0orphan0000002", "k0theirs0000003");
    node.cni("ADD", valid, "net1", &lost, &[]).expect_ok();
    node.cni("ADD", orphan, "net1", &lost, &[]).expect_ok();
    node.cni("ADD", theirs, "net1", &other, &[]).expect_ok();
    // An administrator's bridge with a port: never ours to touch.
    lab.add_netdev_bridge("br-gc-admin").expect("admin bridge");
    lab.vsctl(&["add-port", "br-gc-admin", "admin-p0", "--", "set", "Interface", "admin-p0", "type=internal"])
        .expect("admin port");
    // The state dir is lost (a wiped disk, a careless operator): only OVS's tags remain.
    std::fs::remove_dir_all(node.state_dir()).expect("lose the state dir");

    node.cni("GC", "", "", &gc_conf(&lost, Some(&[valid])), &[]).expect_ok();
    assert_eq!(lab.ports("br-gc-lost").expect("ports"), vec![port(valid)], "the valid port stays, the orphan goes");
    node.cni("GC", "", "", &gc_conf(&lost, Some(&[])), &[]).expect_ok();
    assert!(
        ovs_objects(&lab, "net-gc-lost").is_empty(),
        "port and bridge gone: {:?}",
        ovs_objects(&lab, "net-gc-lost")
    );
    assert_eq!(lab.ports("br-gc-keep").expect("ports"), vec![port(theirs)], "another network's port stays");
    assert!(lab.ports("br-gc-admin").expect("ports").contains(&"admin-p0".to_string()), "admin objects stay");
    lab.vsctl(&["del-br", "br-gc-admin"]).expect("cleanup");
    lab.vsctl(&["del-br", "br-gc-keep"]).expect("cleanup");
}

#[test]
fn gc_keeps_going_past_a_failing_attachment_and_reports_it() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = with_host_local(&node, ovs_conf("net-gc-err", "br-gc-err", "client"), "10.81.0.0/24");
    let cids = ["e0first00000001", "e0stuck00000002", "e0third00000003"];
    for c in cids {
        node.cni("ADD", c, "net1", &conf, &[]).expect_ok();
    }
    // A directory where the stuck attachment's socket should be: its shared-dir undo refuses it.
    let planted = node.shared_base().join(&cids[1][..12]).join(port(cids[1]));
    std::fs::create_dir(&planted).expect("plant a directory");
    let msg = node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_err(5);
    assert!(msg.contains(&format!("gc {}/net1", cids[1])) && msg.contains("is a directory"), "{msg}");
    for c in [cids[0], cids[2]] {
        assert!(!record(&node, c).exists(), "{c}: removed despite the other's failure");
    }
    assert!(record(&node, cids[1]).exists(), "the failing attachment's record stays for the retry");
    assert_eq!(leases(&node, "net-gc-err"), Vec::<String>::new(), "every lease released, the stuck one's too");
    assert!(lab.ports("br-gc-err").map(|p| p.is_empty()).unwrap_or(true), "every port removed");
    std::fs::remove_dir(&planted).expect("unplant");
    node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_ok();
    reliability::assert_no_leak(&lab, &node, "net-gc-err", "e0", "after the retry");
}

#[test]
fn gc_leaves_a_locked_attachment_to_its_owner_and_sweeps_stray_state_files() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = ovs_conf("net-gc-lock", "br-gc-lock", "client");
    let cid = "f0locked0000001";
    node.cni("ADD", cid, "net1", &conf, &[]).expect_ok();
    let lock = std::fs::File::open(node.state_dir().join(format!("{cid}_net1.lock"))).expect("lock file");
    lock.lock().expect("hold the attachment lock, as a running DEL would");
    // Stray bookkeeping: a lock and a temp file whose record is gone; and one still held.
    std::fs::write(node.state_dir().join("gone000000001_net1.lock"), b"").expect("stray lock");
    std::fs::write(node.state_dir().join(".gone000000002_net1.json.tmp"), b"{").expect("stray temp");
    let held_stray = std::fs::File::create(node.state_dir().join("busy000000003_net1.lock")).expect("held stray");
    held_stray.lock().expect("an ADD between its lock and its record");

    node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_ok();
    assert!(record(&node, cid).exists(), "locked: left to its owner");
    assert_eq!(lab.ports("br-gc-lock").expect("ports"), vec![port(cid)]);
    assert!(!node.state_dir().join("gone000000001_net1.lock").exists(), "stray lock swept");
    assert!(!node.state_dir().join(".gone000000002_net1.json.tmp").exists(), "stray temp swept");
    assert!(node.state_dir().join("busy000000003_net1.lock").exists(), "a held lock is never swept");

    drop(lock);
    drop(held_stray);
    node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_ok();
    reliability::assert_no_leak(&lab, &node, "net-gc-lock", "f0locked0000", "after the lock was released");
}

#[test]
fn gc_reports_an_unreadable_record_of_its_network_only() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = ovs_conf("net-gc-bad", "br-gc-bad", "client");
    node.cni("ADD", "g0stale00000001", "net1", &conf, &[]).expect_ok();
    std::fs::write(node.state_dir().join("g0bad000000002_net1.json"), br#"{"attachment": {"network": "net-gc-bad"}}"#)
        .expect("a record of this network that does not parse");
    std::fs::write(node.state_dir().join("g0junk00000003_net1.json"), b"\x00\x01 not json").expect("junk");
    let msg = node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_err(6);
    assert!(msg.contains("g0bad000000002_net1.json") && !msg.contains("g0junk"), "{msg}");
    assert!(!record(&node, "g0stale00000001").exists(), "the stale attachment went anyway");
    // Another network's GC is not failed by them.
    node.cni("GC", "", "", &gc_conf(&ovs_conf("net-gc-else", "br-gc-else", "client"), None), &[]).expect_ok();
    assert!(ovs_objects(&lab, "net-gc-bad").is_empty());
}

#[test]
fn gc_with_a_malformed_valid_list_changes_nothing() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = ovs_conf("net-gc-mal", "br-gc-mal", "client");
    node.cni("ADD", "m0kept00000001", "net1", &conf, &[]).expect_ok();
    let before = node.snapshot();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "m0kept00000001"}]);
    node.cni("GC", "", "", &gc, &[]).expect_err(7);
    assert_eq!(node.snapshot(), before, "nothing on disk changed");
    assert_eq!(lab.ports("br-gc-mal").expect("ports"), vec![port("m0kept00000001")]);
    node.cni("DEL", "m0kept00000001", "net1", &conf, &[]).expect_ok();
}

#[test]
fn gc_with_ovsdb_down_is_code_11_keeps_records_and_finishes_when_it_is_back() {
    let mut lab = Lab::start("lc-gc-down").expect("own lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = with_host_local(&node, ovs_conf("net-gc-down", "br-gc-down", "client"), "10.82.0.0/24");
    node.cni("ADD", "d0down00000001", "net1", &conf, &[]).expect_ok();
    lab.stop_ovsdb().expect("stop ovsdb");
    let msg = node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_err(11);
    assert!(msg.contains("gc d0down00000001/net1"), "{msg}");
    assert!(record(&node, "d0down00000001").exists(), "kept for the retry");
    lab.start_ovsdb().expect("start ovsdb");
    node.cni("GC", "", "", &gc_conf(&conf, None), &[]).expect_ok();
    reliability::assert_no_leak(&lab, &node, "net-gc-down", "d0down000000", "after OVS came back");
    lab.stop().expect("stop lab");
}
