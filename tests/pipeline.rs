//! The reversible-step pipeline through the real binary with the recording fake backend: ADD/DEL,
//! failures and kills injected before, during and after each step, failing undos, double ADD,
//! name collisions, CHECK, GC and STATUS.

mod support;

use serde_json::{json, Value};
use support::{recording_conf, Node};
use userspace_cni_testkit::{self as testkit, FakeBridge, FakeDataplane};

const CID: &str = "0123456789abcdef0123456789abcdef";

fn add(node: &Node, cid: &str, ifname: &str, conf: &Value, extra: &[(&str, &str)]) -> support::Run {
    node.cni("ADD", cid, ifname, conf, extra)
}

fn del(node: &Node, cid: &str, ifname: &str, conf: &Value) -> support::Run {
    node.cni("DEL", cid, ifname, conf, &[])
}

fn assert_clean(node: &Node, why: &str) {
    let dp = testkit::load(&node.state_dir());
    assert!(dp.ports.is_empty(), "{why}: ports left: {:?}", dp.ports);
    assert!(dp.bridges.is_empty(), "{why}: bridges left: {:?}", dp.bridges);
    let left = node.leftovers();
    assert!(left.is_empty(), "{why}: files left: {left:?}");
}

#[test]
fn add_then_del_leaves_nothing() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    let res = add(&node, CID, "net1", &conf, &[]).expect_ok();
    let ifaces = res["interfaces"].as_array().expect("interfaces");
    let sandbox = ifaces.iter().find(|i| i["sandbox"].is_string()).expect("sandbox entry");
    assert_eq!(sandbox["name"], "net1");
    let sock = node.shared_base().join("0123456789ab").join("0123456789ab-net1");
    assert_eq!(sandbox["socketPath"], sock.display().to_string());
    assert!(ifaces.iter().any(|i| i["name"] == "0123456789ab-net1" && i["sandbox"].is_null()), "host entry: {res}");
    assert!(sock.exists(), "server-mode socket delivered");
    let dp = testkit::load(&node.state_dir());
    assert_eq!(dp.ports["0123456789ab-net1"].container_id, CID);
    assert!(dp.bridges["br-test"].owner_network.is_some());
    let record = node.state_dir().join(format!("{CID}_net1.json"));
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("record json");
    assert_eq!(rec["complete"], true);

    del(&node, CID, "net1", &conf).expect_ok();
    assert_clean(&node, "after DEL");
    // DEL is idempotent.
    del(&node, CID, "net1", &conf).expect_ok();
    assert_clean(&node, "after second DEL");
}

#[test]
fn del_without_record_succeeds_and_creates_nothing() {
    let node = Node::new();
    let before = node.snapshot();
    del(&node, CID, "net1", &recording_conf("1.0.0", "net-a")).expect_ok();
    assert_eq!(node.snapshot(), before);
}

/// Every step × every phase × error: ADD fails with the injected error, undo ran in reverse
/// order, and nothing remains.
#[test]
fn injected_error_at_every_step_rolls_back_everything() {
    let steps = ["shared-dir", "bridge", "port", "save-state"];
    for (i, step) in steps.iter().enumerate() {
        for phase in ["before", "during", "after"] {
            if phase == "during" && !matches!(*step, "bridge" | "port") {
                continue;
            }
            let node = Node::new();
            let conf = recording_conf("1.1.0", "net-a");
            let fp = format!("add:{step}:{phase}:error");
            let msg = add(&node, CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", &fp)]).expect_err(5);
            assert!(msg.contains("injected"), "{fp}: {msg}");
            assert_clean(&node, &fp);
            // The fake's undo calls happen in reverse order of the applies.
            let calls = testkit::calls(&node.state_dir());
            let undos: Vec<&str> =
                calls.iter().filter(|c| c.starts_with("ADD undo")).map(|c| c.split(' ').nth(2).unwrap_or("")).collect();
            let expected: Vec<&str> =
                steps[..=i].iter().rev().copied().filter(|s| matches!(*s, "bridge" | "port")).collect();
            assert_eq!(undos, expected, "{fp}: undo order in {calls:?}");
        }
    }
}

/// SIGKILL before, during and after each step: the next DEL removes everything.
#[test]
fn kill_at_every_step_then_del_removes_everything() {
    let steps = ["shared-dir", "bridge", "port", "save-state"];
    for step in steps {
        for phase in ["before", "during", "after"] {
            if phase == "during" && !matches!(step, "bridge" | "port") {
                continue;
            }
            let node = Node::new();
            let conf = recording_conf("1.1.0", "net-a");
            let fp = format!("add:{step}:{phase}:kill");
            let run = add(&node, CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", &fp)]);
            assert_eq!(run.signal, Some(9), "{fp}: expected SIGKILL, got {run:?}");
            assert!(run.stdout.is_empty(), "{fp}: a killed plugin printed {:?}", run.stdout);
            del(&node, CID, "net1", &conf).expect_ok();
            assert_clean(&node, &fp);
        }
    }
}

#[test]
fn kill_during_del_then_del_again_finishes() {
    for step in ["port", "bridge", "shared-dir", "save-state"] {
        let node = Node::new();
        let conf = recording_conf("1.1.0", "net-a");
        add(&node, CID, "net1", &conf, &[]).expect_ok();
        let fp = format!("del:{step}:undo:kill");
        let run = node.cni("DEL", CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", &fp)]);
        assert_eq!(run.signal, Some(9), "{fp}: {run:?}");
        del(&node, CID, "net1", &conf).expect_ok();
        assert_clean(&node, &fp);
    }
}

#[test]
fn failing_undo_keeps_original_error_and_del_finishes_cleanup() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    let fp = "add:save-state:before:error,add:port:undo:error";
    let run = add(&node, CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", fp)]);
    let msg = run.expect_err(5);
    assert!(msg.contains("save-state:before"), "original error reported: {msg}");
    assert!(run.json()["details"].as_str().unwrap_or("").contains("rollback incomplete"), "{}", run.stdout);
    // The port undo failed, so the port and the record are still there for DEL.
    assert!(testkit::load(&node.state_dir()).ports.contains_key("0123456789ab-net1"));
    assert!(node.state_dir().join(format!("{CID}_net1.json")).exists());
    del(&node, CID, "net1", &conf).expect_ok();
    assert_clean(&node, "DEL after failed rollback");
}

#[test]
fn second_add_of_same_attachment_is_code_100_and_first_survives() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    add(&node, CID, "net1", &conf, &[]).expect_ok();
    let before = testkit::load(&node.state_dir());
    let msg = add(&node, CID, "net1", &conf, &[]).expect_err(100);
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(testkit::load(&node.state_dir()), before, "the first attachment is intact");
    assert!(node.shared_base().join("0123456789ab/0123456789ab-net1").exists());
    del(&node, CID, "net1", &conf).expect_ok();
    assert_clean(&node, "after DEL");
}

#[test]
fn colliding_cid12_is_code_101_and_del_removes_only_own_port() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    let other = "0123456789abFFFF";
    add(&node, CID, "net1", &conf, &[]).expect_ok();
    add(&node, other, "net1", &conf, &[]).expect_err(101);
    // The loser's DEL (no record) must not touch the winner's port.
    del(&node, other, "net1", &conf).expect_ok();
    assert_eq!(testkit::load(&node.state_dir()).ports["0123456789ab-net1"].container_id, CID);
    del(&node, CID, "net1", &conf).expect_ok();
    assert_clean(&node, "after DEL");
}

#[test]
fn bridge_created_by_admin_is_never_deleted() {
    let node = Node::new();
    let mut dp = FakeDataplane::default();
    dp.bridges.insert("br-test".into(), FakeBridge { owner_network: None });
    testkit::store(&node.state_dir(), &dp).expect("plant admin bridge");
    let conf = recording_conf("1.1.0", "net-a");
    add(&node, CID, "net1", &conf, &[]).expect_ok();
    del(&node, CID, "net1", &conf).expect_ok();
    let after = testkit::load(&node.state_dir());
    assert_eq!(after.bridges.get("br-test"), Some(&FakeBridge { owner_network: None }));
    assert!(after.ports.is_empty());
}

#[test]
fn last_del_removes_bridge_only_when_no_port_left() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    add(&node, "aaaaaaaaaaaa01", "net1", &conf, &[]).expect_ok();
    add(&node, "bbbbbbbbbbbb02", "net1", &conf, &[]).expect_ok();
    del(&node, "aaaaaaaaaaaa01", "net1", &conf).expect_ok();
    assert!(testkit::load(&node.state_dir()).bridges.contains_key("br-test"), "bridge still used");
    del(&node, "bbbbbbbbbbbb02", "net1", &conf).expect_ok();
    assert_clean(&node, "after last DEL");
}

#[test]
fn check_verifies_the_dataplane() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    let res = add(&node, CID, "net1", &conf, &[]).expect_ok();
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = res;
    node.cni("CHECK", CID, "net1", &check_conf, &[]).expect_ok();
    // Remove the port behind the plugin's back: CHECK must say so.
    let mut dp = testkit::load(&node.state_dir());
    dp.ports.clear();
    testkit::store(&node.state_dir(), &dp).expect("store");
    let msg = node.cni("CHECK", CID, "net1", &check_conf, &[]).expect_err(5);
    assert!(msg.contains("missing"), "{msg}");
}

#[test]
fn gc_removes_only_stale_attachments_of_this_network() {
    let node = Node::new();
    let a = recording_conf("1.1.0", "net-a");
    let b = recording_conf("1.1.0", "net-b");
    add(&node, "keep00000001", "net1", &a, &[]).expect_ok();
    add(&node, "stale0000002", "net1", &a, &[]).expect_ok();
    let mut bconf = b.clone();
    bconf["host"]["bridge"]["bridgeName"] = json!("br-b");
    add(&node, "other0000003", "net1", &bconf, &[]).expect_ok();
    let mut gc = a.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep00000001", "ifname": "net1"}]);
    node.cni("GC", "", "", &gc, &[]).expect_ok();
    let dp = testkit::load(&node.state_dir());
    let owners: Vec<&str> = dp.ports.values().map(|p| p.container_id.as_str()).collect();
    assert!(owners.contains(&"keep00000001") && owners.contains(&"other0000003"), "{owners:?}");
    assert!(!owners.contains(&"stale0000002"), "{owners:?}");
    assert!(!node.state_dir().join("stale0000002_net1.json").exists());
    assert!(node.state_dir().join("other0000003_net1.json").exists(), "other network untouched");
}

#[test]
fn status_reports_dataplane_down_as_50() {
    let node = Node::new();
    let conf = recording_conf("1.1.0", "net-a");
    node.cni("STATUS", "", "", &conf, &[]).expect_ok();
    testkit::set_down(&node.state_dir(), true).expect("down");
    let msg = node.cni("STATUS", "", "", &conf, &[]).expect_err(50);
    assert!(msg.contains("down"), "{msg}");
}

#[test]
fn dataplane_down_on_add_is_code_11_and_leaves_nothing() {
    let node = Node::new();
    testkit::set_down(&node.state_dir(), true).expect("down");
    let conf = recording_conf("1.1.0", "net-a");
    add(&node, CID, "net1", &conf, &[]).expect_err(11);
    let left: Vec<String> = node.leftovers();
    assert!(left.is_empty(), "{left:?}");
}
