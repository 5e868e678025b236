//! `userspace doctor` against the real lab: every check passes on a healthy node (OVSDB, DPDK,
//! ovs-vswitchd, vhost-sock-dir, hugepages, dirs, records, the plugin and IPAM plugins in
//! CNI_PATH with their versions) and exits 0; each broken thing is a ✘ with a hint and exit 1, in
//! the table and in `--json` (the DaemonSet's readiness probe).

mod reliability;
mod support;

use reliability::{cli, ovs_conf, with_host_local};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::{Node, Run, PLUGIN_BIN};
use testlab::Lab;

/// A CNI bin dir holding this build's `userspace` (as `userspace install` would place it).
fn cni_bin(node: &Node) -> String {
    let dir = node.path("cni-bin");
    std::fs::create_dir_all(&dir).expect("cni bin dir");
    let target = dir.join("userspace");
    if !target.exists() {
        std::os::unix::fs::symlink(PLUGIN_BIN, &target).expect("link the plugin");
    }
    format!("{}:/usr/lib/cni", dir.display())
}

fn checks(run: &Run) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("doctor --json ({e}): {run:?}"));
    doc["checks"].as_array().cloned().unwrap_or_default()
}

fn status_of<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name} in {list:#?}"))
}

#[test]
fn doctor_passes_on_a_healthy_node_and_lists_versions() {
    let lab = Lab::shared("cli-doctor").expect("lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let path = cni_bin(&node);
    let run = cli(&node, &["doctor"], &[("CNI_PATH", &path)]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    for line in [
        "✔ settings:",
        "✔ OVSDB:",
        "✔ DPDK initialised: DPDK",
        "✔ ovs-vswitchd: applies OVSDB changes",
        "✔ vhost-sock-dir:",
        "✔ hugepages: not needed: OVS runs DPDK with --no-huge",
        "✔ state dir:",
        "✔ records: 0 attachments",
        "- VPP API:",
        "userspace doctor: all",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?} in:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("userspace speaks CNI 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{}", run.stdout);
    assert!(run.stdout.contains("host-local (CNI 0.1.0"), "IPAM plugins with their versions: {}", run.stdout);

    let run = cli(&node, &["doctor", "--json"], &[("CNI_PATH", &path)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let doc: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(doc["ok"], true);
    let list = checks(&run);
    assert!(list.iter().all(|c| c["status"] != "fail"), "{list:#?}");
    assert_eq!(status_of(&list, "OVSDB")["status"], "pass");
    assert_eq!(status_of(&list, "VPP API")["status"], "skip");
}

#[test]
fn doctor_names_each_broken_thing_with_a_hint() {
    let lab = Lab::shared("cli-doctor").expect("lab");
    let mut node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let path = cni_bin(&node);
    // A recorded attachment whose IPAM plugin is later removed from its CNI_PATH.
    let ipam_bin = node.path("ipam-bin");
    std::fs::create_dir_all(&ipam_bin).expect("dir");
    std::fs::copy("/usr/lib/cni/host-local", ipam_bin.join("host-local")).expect("copy host-local");
    let conf = with_host_local(&node, ovs_conf("net-doc", "br-doc", "client"), "10.89.0.0/24");
    node.cni("ADD", "d0c000000000001", "net1", &conf, &[("CNI_PATH", &ipam_bin.display().to_string())]).expect_ok();
    std::fs::remove_file(ipam_bin.join("host-local")).expect("remove host-local");
    std::fs::set_permissions(node.state_dir(), std::fs::Permissions::from_mode(0o750)).expect("chmod");
    std::fs::create_dir_all(node.shared_base()).expect("shared");
    std::fs::set_permissions(node.shared_base(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    node.overrides.push(("USERSPACE_CNI_OVS_SOCK_DIR".into(), node.path("not-ovs-dir").display().to_string()));

    let run = cli(&node, &["doctor"], &[("CNI_PATH", "/usr/lib/cni")]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let sock_hint = format!("set ovs_sock_dir = \"{}\"", lab.sock_dir().display());
    let expect: [(&str, &str); 5] = [
        ("✘ state dir:", "chmod 0700"),
        ("✘ shared dir base:", "chmod o-w"),
        ("✘ vhost-sock-dir:", &sock_hint),
        ("✘ plugin: no executable userspace in CNI_PATH (/usr/lib/cni)", "userspace install /opt/cni/bin"),
        ("✘ IPAM host-local:", "reinstall it there"),
    ];
    for (line, hint) in expect {
        let at = run.stdout.find(line).unwrap_or_else(|| panic!("missing {line:?} in:\n{}", run.stdout));
        let next = run.stdout[at..].lines().nth(1).unwrap_or("");
        assert!(next.trim_start().starts_with("hint:") && next.contains(hint), "{line}: hint {hint:?} in {next:?}");
    }
    assert!(run.stdout.contains("✔ OVSDB:"), "the healthy parts still pass: {}", run.stdout);
    let run = cli(&node, &["doctor", "--json"], &[("CNI_PATH", &path)]);
    assert_eq!(run.code, Some(1));
    let doc: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(doc["ok"], false);
    assert_eq!(status_of(&checks(&run), "state dir")["status"], "fail");
    assert!(status_of(&checks(&run), "state dir")["hint"].as_str().is_some_and(|h| h.contains("chmod 0700")));

    std::fs::set_permissions(node.state_dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::copy("/usr/lib/cni/host-local", ipam_bin.join("host-local")).expect("restore host-local");
    node.cni("DEL", "d0c000000000001", "net1", &conf, &[]).expect_ok();
}

#[test]
fn doctor_fails_without_a_dataplane_and_names_an_unreachable_ovsdb() {
    let node = Node::new();
    let run = cli(&node, &["doctor"], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("✘ dataplane: neither the OVSDB socket"), "{}", run.stdout);
    let run = cli(&node, &["doctor", "--engine", "ovs-dpdk"], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("✘ OVSDB: cannot connect to OVSDB"), "{}", run.stdout);
    assert!(run.stdout.contains("hint: start ovsdb-server"), "{}", run.stdout);
    assert!(!Path::new(&node.state_dir()).exists(), "doctor creates nothing");
    assert_eq!(cli(&node, &["doctor", "--engine", "nope"], &[]).code, Some(2));
}
