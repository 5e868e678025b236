//! Every attachment-record format that exists on nodes (`tests/fixtures/records/`, one file per
//! format and shape, written by the binary of its day) is torn down completely by today's DEL and
//! by today's reconciler. ADD creates the objects; the record is then replaced by the fixture, as
//! if an older binary had written it; DEL (or `userspace gc`) must leave nothing behind.
//!
//! A change to the record's types that renames, drops or re-shapes a field fails here before it
//! can strand attachments on upgraded nodes. A format bump adds a fixture; none is ever removed.

mod reliability;
mod support;

use reliability::{assert_no_leak, leases, leftover_files, mounts_under};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{this_netns, Node, Run, PLUGIN_BIN};
use testlab::Lab;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with its placeholders filled for `node`: `{root}` the node's root, `{netns}` the
/// netns the record names, `{ovs}` the lab's socket dir.
fn fill(text: &str, node: &Node, netns: &str, ovs: Option<&Path>) -> Value {
    let mut t = text.replace("{root}", &node.root.path().display().to_string()).replace("{netns}", netns);
    if let Some(o) = ovs {
        t = t.replace("{ovs}", &o.display().to_string());
    }
    assert!(!t.contains("{root}") && !t.contains("{ovs}"), "unfilled placeholder in {t}");
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("fixture is not JSON ({e})"))
}

/// The record's attachment id.
fn id_of(record: &Value) -> (String, String) {
    let id = &record["attachment"]["id"];
    (id["container_id"].as_str().expect("container_id").into(), id["ifname"].as_str().expect("ifname").into())
}

fn record_path(node: &Node, cid: &str, ifname: &str) -> PathBuf {
    node.state_dir().join(format!("{cid}_{ifname}.json"))
}

/// CNI_ARGS as the ADD of the fixture's pod had them.
fn args_of(record: &Value) -> String {
    let pod = &record["attachment"]["pod"];
    match (pod["namespace"].as_str(), pod["name"].as_str(), pod["uid"].as_str()) {
        (Some(ns), Some(name), Some(uid)) => format!("K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={uid}"),
        _ => String::new(),
    }
}

/// ADD with the fixture's config and ids, then the fixture in place of today's record.
fn add_then_plant(node: &Node, text: &str, netns_in_record: &str, ovs: Option<&Path>) -> Value {
    let record = fill(text, node, &this_netns(), ovs);
    let (cid, ifname) = id_of(&record);
    let args = args_of(&record);
    let extra: Vec<(&str, &str)> = if args.is_empty() { vec![] } else { vec![("CNI_ARGS", args.as_str())] };
    node.cni("ADD", &cid, &ifname, &record["config"], &extra).expect_ok();
    let planted = fill(text, node, netns_in_record, ovs);
    let bytes = serde_json::to_vec_pretty(&planted).expect("serialise");
    std::fs::write(record_path(node, &cid, &ifname), bytes).expect("plant the old record");
    planted
}

/// The binary `node` runs, as an operator does (no CNI_COMMAND).
fn operator(node: &Node, args: &[&str]) -> Run {
    let out = Command::new(node.bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(node.settings_env())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the operator CLI");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A netns path that no longer exists: the reconciler's sign of a dead pod.
const DEAD_NETNS: &str = "/run/netns/uscni-record-formats-gone";

/// What the recording backend and the generic steps could leave of `record`.
fn recording_leaks(node: &Node, record: &Value) -> Vec<String> {
    // The fake dataplane's own files, and the device-info dirs (Multus's), may stay.
    let bookkeeping = |f: &str| f.starts_with("state/testkit") || f == "devinfo" || f == "devinfo/cni";
    let mut out: Vec<String> =
        leftover_files(node).into_iter().filter(|f| !bookkeeping(f)).map(|f| format!("file {f}")).collect();
    let dp = userspace_cni_testkit::load(&node.state_dir());
    out.extend(dp.ports.keys().map(|p| format!("port {p}")));
    out.extend(dp.bridges.iter().filter(|(_, b)| b.owner_network.is_some()).map(|(n, _)| format!("bridge {n}")));
    out.extend(mounts_under(node.root.path()).into_iter().map(|m| format!("mount {m}")));
    let network = record["attachment"]["network"].as_str().unwrap_or_default();
    out.extend(leases(node, network).into_iter().map(|l| format!("lease {l}")));
    out
}

/// `format1-recording-devinfo-host.json`: a device-info file written with `deviceInfoVhostMode:
/// "host"`, which DEL must still recognise as ours (the plan's `device_info_vhost_mode`).
const RECORDING: &[&str] =
    &["format1-recording-plain.json", "format1-recording-ipam-devinfo.json", "format1-recording-devinfo-host.json"];

#[test]
fn recording_fixtures_are_torn_down_by_del() {
    for name in RECORDING {
        let node = Node::new();
        let record = add_then_plant(&node, &fixture(name), &this_netns(), None);
        let (cid, ifname) = id_of(&record);
        node.cni("DEL", &cid, &ifname, &record["config"], &[]).expect_ok();
        let left = recording_leaks(&node, &record);
        assert!(left.is_empty(), "{name}: DEL left {left:#?}");
    }
}

#[test]
fn recording_fixtures_are_reaped_by_the_reconciler() {
    for name in RECORDING {
        let node = Node::new();
        let record = add_then_plant(&node, &fixture(name), DEAD_NETNS, None);
        let run = operator(&node, &["gc", "--grace", "0s"]);
        assert_eq!(run.code, Some(0), "{name}: gc failed: {run:?}");
        let left = recording_leaks(&node, &record);
        assert!(left.is_empty(), "{name}: the reconciler left {left:#?}\n{}", run.stdout);
    }
}

/// The KubeVirt shape (short dir bind-mounted onto the pod's emptyDir) needs mounts: run in a
/// private mount namespace.
#[test]
fn recording_kubevirt_fixture_is_torn_down_by_del_and_the_reconciler() {
    support::run_in_private_mount_ns("inner_kubevirt_fixture");
}

#[test]
#[ignore = "run by recording_kubevirt_fixture_is_torn_down_by_del_and_the_reconciler in a private mount namespace"]
fn inner_kubevirt_fixture() {
    let text = fixture("format1-recording-kubevirt.json");
    for reaper in ["DEL", "gc"] {
        let node = Node::new();
        let probe = fill(&text, &node, DEAD_NETNS, None);
        let long = PathBuf::from(probe["plan"]["short_dir"]["long"].as_str().expect("short_dir.long"));
        std::fs::create_dir_all(&long).expect("the pod's emptyDir, as kubelet makes it");
        let netns = if reaper == "DEL" { this_netns() } else { DEAD_NETNS.to_string() };
        let record = add_then_plant(&node, &text, &netns, None);
        assert!(!mounts_under(node.root.path()).is_empty(), "ADD mounted the short dir");
        let (cid, ifname) = id_of(&record);
        if reaper == "DEL" {
            node.cni("DEL", &cid, &ifname, &record["config"], &[]).expect_ok();
        } else {
            let run = operator(&node, &["gc", "--grace", "0s"]);
            assert_eq!(run.code, Some(0), "gc failed: {run:?}");
        }
        let left = recording_leaks(&node, &record);
        assert!(left.is_empty(), "{reaper}: left {left:#?}");
        assert!(!record_path(&node, &cid, &ifname).exists());
    }
}

/// The real OVS backend's plan data (client and server mode), against a private OVS-DPDK.
#[test]
fn ovs_fixtures_are_torn_down_by_del_and_the_reconciler() {
    let lab = Lab::shared("record-formats").expect("start the private OVS-DPDK lab");
    for name in ["format1-ovs-client.json", "format1-ovs-server.json"] {
        for reaper in ["DEL", "gc"] {
            let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
            assert_eq!(node.bin, PLUGIN_BIN);
            let netns = if reaper == "DEL" { this_netns() } else { DEAD_NETNS.to_string() };
            let record = add_then_plant(&node, &fixture(name), &netns, Some(lab.sock_dir()));
            let (cid, ifname) = id_of(&record);
            if reaper == "DEL" {
                node.cni("DEL", &cid, &ifname, &record["config"], &[]).expect_ok();
            } else {
                let run = operator(&node, &["gc", "--grace", "0s"]);
                assert_eq!(run.code, Some(0), "{name}: gc failed: {run:?}");
            }
            let network = record["attachment"]["network"].as_str().expect("network");
            assert_no_leak(&lab, &node, network, &cid[..12], &format!("{name} after {reaper}"));
        }
    }
}

#[test]
fn every_fixture_is_exercised() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // format2-dra-ovs.json is torn down by Unprepare in tests/dra_prepare.rs
    // (a_format_2_record_is_torn_down_by_todays_unprepare).
    let covered = [
        RECORDING,
        &["format1-recording-kubevirt.json", "format1-ovs-client.json", "format1-ovs-server.json"],
        &["format2-dra-ovs.json"],
    ]
    .concat();
    for n in &names {
        assert!(covered.contains(&n.as_str()), "fixture {n} is not torn down by any test here");
    }
}
