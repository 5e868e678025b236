//! Node marking by the reconciler (`userspace gc` with Kubernetes access and NODE_NAME), against
//! the fake API server and the VPP simulator: while VPP (which has an attachment on this node) is
//! down, the node carries `userspace-cni.io/vpp-unavailable: "true"`; once VPP answers again the
//! label goes; other labels are never touched; a 409 from a concurrent writer is retried; API
//! trouble never fails the pass. ADD and DEL answer code 11 meanwhile.

mod reliability;
mod support;

use fakeapi::FakeApi;
use serde_json::{json, Value};
use support::{Netns, Node};
use vppsim::Sim;

const NODE: &str = "worker-7";
const LABEL: &str = "userspace-cni.io/vpp-unavailable";

struct Env {
    sim: Sim,
    node: Node,
    api: FakeApi,
    kubeconfig: String,
    _dir: tempfile::TempDir,
}

fn env() -> Env {
    let support::VppEnv { sim, mut node, _dir: dir } = support::vpp_env();
    // A short per-request bound: the VPP-down pass waits for nothing longer.
    node.overrides.push(("USERSPACE_CNI_TIMEOUT_MS".into(), "2000".into()));
    let api = FakeApi::start();
    api.add_node(NODE);
    let kubeconfig = node.path("kube/config");
    api.write_kubeconfig(&kubeconfig);
    Env { sim, node, api, kubeconfig: kubeconfig.display().to_string(), _dir: dir }
}

fn memif_conf(bd: u32) -> Value {
    support::vpp_memif_conf("net-mark", "master", bd)
}

/// One `userspace gc --json` pass with the fake API's credentials: (exit code, report, stderr).
fn gc(e: &Env, node_name: Option<&str>) -> (Option<i32>, Value, String) {
    let mut env = vec![];
    if let Some(n) = node_name {
        env.push(("NODE_NAME", n));
    }
    let run = reliability::cli(&e.node, &["gc", "--json", "--kubeconfig", &e.kubeconfig], &env);
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|err| panic!("gc --json ({err}): {run:?}"));
    (run.code, doc, run.stderr)
}

fn cid(i: usize) -> String {
    format!("{i:04x}cccc{}", "0".repeat(56))
}

#[test]
fn the_node_is_labelled_while_vpp_is_down_and_unlabelled_when_it_answers() {
    let mut e = env();
    let pod = Netns::new("nmark");
    let conf = memif_conf(3);
    e.node.cni("ADD", &cid(1), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();

    let (code, doc, _) = gc(&e, Some(NODE));
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["nodeMark"]["unavailable"], json!([]), "{doc}");
    assert!(!e.api.node_labels(NODE).contains_key(LABEL), "VPP answers: no label");

    e.sim.stop();
    // The kubelet updated the Node meanwhile: the first PUT meets a 409 and is re-applied.
    e.api.concurrent_writes(1);
    let (code, doc, _) = gc(&e, Some(NODE));
    assert_eq!(code, Some(1), "the failed repair is an error of the pass: {doc}");
    assert_eq!(doc["nodeMark"]["unavailable"], json!(["vpp"]), "{doc}");
    assert_eq!(doc["nodeMark"]["set"], json!([LABEL]), "{doc}");
    let labels = e.api.node_labels(NODE);
    assert_eq!(labels.get(LABEL), Some(&json!("true")), "{labels:?}");
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&json!(NODE)), "other labels kept: {labels:?}");
    let puts: Vec<_> = e.api.seen().into_iter().filter(|s| s.method == "PUT").collect();
    assert!(puts.iter().any(|s| s.status == 409) && puts.last().map(|s| s.status) == Some(200), "{puts:?}");

    // ADD and DEL keep answering 11 (tests/vpp.rs proves "changes nothing" in detail). The DEL
    // marks the record as being torn down: the next pass asks VPP's status instead of repairing.
    e.node.cni("ADD", &cid(2), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_err(11);
    e.node.cni("DEL", &cid(1), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_err(11);

    // A second pass while still down changes nothing on the Node.
    e.api.clear_seen();
    let (_, doc, _) = gc(&e, Some(NODE));
    assert_eq!(doc["nodeMark"]["set"], json!([]), "{doc}");
    assert!(e.api.seen().iter().all(|s| s.method != "PUT"), "no write when nothing changes");

    e.sim.start_again();
    let (code, doc, _) = gc(&e, Some(NODE));
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["nodeMark"]["removed"], json!([LABEL]), "{doc}");
    let labels = e.api.node_labels(NODE);
    assert!(!labels.contains_key(LABEL), "label removed once VPP answers: {labels:?}");
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&json!(NODE)));

    e.node.cni("DEL", &cid(1), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
}

#[test]
fn without_node_name_or_with_api_trouble_the_pass_still_succeeds() {
    let mut e = env();
    let pod = Netns::new("nmark2");
    let conf = memif_conf(4);
    e.node.cni("ADD", &cid(3), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();

    // No NODE_NAME: no marking at all, and not a word in the report.
    let (code, doc, _) = gc(&e, None);
    assert_eq!(code, Some(0), "{doc}");
    assert!(doc.get("nodeMark").is_none(), "{doc}");
    assert!(e.api.seen().is_empty(), "no API call for node marking: {:?}", e.api.seen());

    // The API server refuses (RBAC without nodes update): reported, the pass succeeds.
    e.api.fault(Some(fakeapi::Method::PUT), fakeapi::Reply::Status(403), None);
    e.sim.stop();
    let (code, doc, stderr) = gc(&e, Some(NODE));
    assert_eq!(code, Some(1), "only the repair failure counts: {doc}");
    assert!(doc["errors"].as_array().is_some_and(|a| a.iter().all(|x| !x.as_str().unwrap_or("").contains("node"))));
    let err = doc["nodeMark"]["error"].as_str().unwrap_or_else(|| panic!("node marking error reported: {doc}"));
    assert!(err.contains("403") && err.contains("nodes"), "{err}");
    assert!(stderr.contains("could not update the node's labels"), "logged: {stderr}");
    assert!(!e.api.node_labels(NODE).contains_key(LABEL));
    e.api.clear_faults();

    // A node name the API does not know: reported as such.
    let (_, doc, _) = gc(&e, Some("no-such-node"));
    let err = doc["nodeMark"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("404") && err.contains("NODE_NAME"), "{doc}");

    e.sim.start_again();
    e.node.cni("DEL", &cid(3), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
}

/// ovs-vswitchd stopped and not restarted: the records still look intact in OVSDB (nothing to
/// repair), so only STATUS tells the engine cannot serve ADD; the node must be labelled anyway,
/// and unlabelled once vswitchd is back.
#[test]
fn the_node_is_labelled_while_ovs_vswitchd_is_down_even_with_nothing_to_repair() {
    const OVS_LABEL: &str = "userspace-cni.io/ovs-dpdk-unavailable";
    let mut lab = testlab::Lab::start("node-mark-ovs").expect("own lab: this test stops ovs-vswitchd");
    let mut node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    // A short per-request bound: STATUS waits for vswitchd at most this long.
    node.overrides.push(("USERSPACE_CNI_TIMEOUT_MS".into(), "2000".into()));
    let api = FakeApi::start();
    api.add_node(NODE);
    let kubeconfig = node.path("kube/config");
    api.write_kubeconfig(&kubeconfig);
    let kubeconfig = kubeconfig.display().to_string();
    let pass = |node: &Node| -> Value {
        let run = reliability::cli(node, &["gc", "--json", "--kubeconfig", &kubeconfig], &[("NODE_NAME", NODE)]);
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|err| panic!("gc --json ({err}): {run:?}"))
    };
    let pod = Netns::new("nmovs");
    let conf = reliability::ovs_conf("net-nm", "br-nm", "client");
    node.cni("ADD", &cid(5), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    assert_eq!(pass(&node)["nodeMark"]["unavailable"], json!([]));

    lab.stop_vswitchd().expect("stop ovs-vswitchd");
    let doc = pass(&node);
    let outcome = doc["repairs"].as_array().and_then(|a| a.first()).map(|r| r["outcome"].clone());
    assert_eq!(outcome, Some(json!("healthy")), "OVSDB still holds the port: {doc}");
    assert_eq!(doc["nodeMark"]["unavailable"], json!(["ovs-dpdk"]), "{doc}");
    assert_eq!(api.node_labels(NODE).get(OVS_LABEL), Some(&json!("true")));

    lab.start_vswitchd().expect("start ovs-vswitchd");
    let doc = pass(&node);
    assert_eq!(doc["nodeMark"]["removed"], json!([OVS_LABEL]), "{doc}");
    assert!(!api.node_labels(NODE).contains_key(OVS_LABEL));
    node.cni("DEL", &cid(5), "net1", &conf, &[]).expect_ok();
    lab.stop().expect("stop lab");
}
