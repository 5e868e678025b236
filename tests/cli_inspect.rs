//! `userspace inspect` against the real lab: every attachment with its container, ifname, network,
//! bridge, port, socket, state (complete, in-progress, orphaned), netns and age, as a table and as
//! JSON; unreadable records are listed, not hidden; an empty node says so.

mod reliability;
mod support;

use reliability::{cli, inspect, ovs_conf};
use serde_json::Value;
use support::{Netns, Node};
use testlab::Lab;

fn find<'a>(list: &'a [Value], cid: &str) -> &'a Value {
    list.iter().find(|a| a["containerId"] == cid).unwrap_or_else(|| panic!("{cid} not in {list:?}"))
}

#[test]
fn inspect_shows_complete_in_progress_and_orphaned_attachments() {
    let lab = Lab::shared("cli-inspect").expect("lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = ovs_conf("net-insp", "br-insp", "client");
    let pod = Netns::new("insp");
    let (done, orphan, busy) = ("i0done000000001", "i0orphan0000002", "i0busy000000003");
    node.cni(
        "ADD",
        done,
        "net1",
        &conf,
        &[("CNI_NETNS", &pod.path()), ("CNI_ARGS", "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1;IgnoreUnknown=1")],
    )
    .expect_ok();
    for cid in [orphan, busy] {
        let run = node.cni("ADD", cid, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", "add:vhost-port:after:kill")]);
        assert_eq!(run.signal, Some(9), "{run:?}");
    }
    let lock = std::fs::File::open(node.state_dir().join(format!("{busy}_net1.lock"))).expect("lock file");
    lock.lock().expect("hold the lock, as a running DEL would");

    let list = inspect(&node);
    assert_eq!(list.len(), 3, "{list:?}");
    let d = find(&list, done);
    assert_eq!(d["state"], "complete");
    assert_eq!(d["ifname"], "net1");
    assert_eq!(d["network"], "net-insp");
    assert_eq!(d["engine"], "ovs-dpdk");
    assert_eq!(d["bridge"], "br-insp");
    assert_eq!(d["port"], "i0done000000-net1");
    let sock = node.shared_base().join("i0done000000").join("i0done000000-net1");
    assert_eq!(d["socket"], sock.display().to_string());
    assert_eq!(d["netns"], pod.path());
    assert_eq!(d["netnsState"], "alive");
    assert_eq!(d["pod"]["name"], "p1");
    assert!(d["ageSeconds"].as_u64().is_some_and(|a| a < 120), "{d}");
    assert_eq!(find(&list, orphan)["state"], "orphaned");
    assert_eq!(find(&list, busy)["state"], "in-progress");

    let table = cli(&node, &["inspect"], &[]);
    assert_eq!(table.code, Some(0), "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["CONTAINER", "IFNAME", "NETWORK", "BRIDGE", "PORT", "SOCKET", "STATE", "NETNS", "AGE"]);
    let row = lines.iter().find(|l| l.starts_with("i0done000000 ")).unwrap_or_else(|| panic!("{}", table.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..8],
        [
            "i0done000000",
            "net1",
            "net-insp",
            "br-insp",
            "i0done000000-net1",
            &sock.display().to_string(),
            "complete",
            "alive"
        ]
    );
    assert!(table.stdout.contains("orphaned") && table.stdout.contains("in-progress"), "{}", table.stdout);

    // The pod's netns goes: inspect says so (the reconciler's business, see cli_gc.rs).
    drop(pod);
    assert_eq!(find(&inspect(&node), done)["netnsState"], "gone");

    drop(lock);
    for cid in [done, orphan, busy] {
        node.cni("DEL", cid, "net1", &conf, &[]).expect_ok();
    }
    assert!(inspect(&node).is_empty());
}

#[test]
fn inspect_of_an_empty_node_and_of_unreadable_records() {
    let node = Node::new();
    let run = cli(&node, &["inspect"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("(no attachments on this node)"), "{}", run.stdout);
    assert!(inspect(&node).is_empty());
    assert!(!node.state_dir().exists(), "inspect creates nothing");

    std::fs::create_dir_all(node.state_dir()).expect("state dir");
    std::fs::write(node.state_dir().join("x0bad_net1.json"), b"{ not json").expect("bad record");
    let run = cli(&node, &["inspect", "--json"], &[]);
    let doc: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(doc["unreadable"][0]["record"], node.state_dir().join("x0bad_net1.json").display().to_string(), "{doc}");
    let run = cli(&node, &["inspect"], &[]);
    // Not JSON at all: what a power loss leaves of an unsynced write; gc removes it.
    assert!(run.stdout.contains("torn record") && run.stdout.contains("x0bad_net1.json"), "{}", run.stdout);
    // JSON, but not a record this binary reads (a newer format): left alone, for the operator.
    std::fs::remove_file(node.state_dir().join("x0bad_net1.json")).expect("remove");
    std::fs::write(node.state_dir().join("x0new_net1.json"), br#"{"format": 99}"#).expect("new record");
    let run = cli(&node, &["inspect"], &[]);
    assert!(run.stdout.contains("unreadable record") && run.stdout.contains("x0new_net1.json"), "{}", run.stdout);
    assert_eq!(cli(&node, &["inspect", "--bogus"], &[]).code, Some(2));
}

/// `userspace backends | grep -q ovs` (what CI ran): a reader that goes away must end the CLI
/// quietly, as Unix tools end, not with a panic about a broken pipe.
#[test]
fn a_cli_whose_reader_is_gone_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(support::PLUGIN_BIN)
        .arg("backends")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run userspace backends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?} {stderr}", out.status);
}
