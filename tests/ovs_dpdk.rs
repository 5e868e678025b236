//! The OVS-DPDK backend through the shipped binary, as a runtime calls it, against a private
//! OVS-DPDK (ovsdb-server + ovs-vswitchd-dpdk) started by the test: ports in both modes, packets
//! proven with testpmd, bridge ownership, rollback at every step, OVS down, restarts, races.

mod support;

use support::{ovs_conf as conf, sandbox, socket_path};

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::{Netns, Node};
use testlab::{Lab, Testpmd, VhostPort};

fn lab() -> Arc<Lab> {
    Lab::shared("ovs-it").expect("start the private OVS-DPDK lab")
}

/// The OVS state a test compares before and after: its bridge (present?) and the bridge's ports.
/// Tests share one lab and run concurrently, so each looks only at its own bridge.
fn ovs_state(lab: &Lab, bridge: &str) -> (bool, Vec<String>) {
    let mut p = ports(lab, bridge);
    p.sort();
    (has_bridge(lab, bridge), p)
}

fn has_bridge(lab: &Lab, bridge: &str) -> bool {
    lab.bridges().expect("list bridges").iter().any(|b| b == bridge)
}

fn ports(lab: &Lab, bridge: &str) -> Vec<String> {
    if has_bridge(lab, bridge) {
        lab.ports(bridge).expect("list ports")
    } else {
        Vec::new()
    }
}

fn assert_node_clean(node: &Node, why: &str) {
    let left = node.leftovers();
    assert!(left.is_empty(), "{why}: files left on the node: {left:?}");
}

#[test]
fn client_mode_add_then_del_leaves_nothing() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let pod = Netns::new("cli");
    let c = conf("net-cli", "br-cli", "client");
    let cid = "c11e0000000000000000000000000001";
    let res = node.cni("ADD", cid, "net1", &c, &[("CNI_NETNS", &pod.path())]).expect_ok();
    let port = "c11e00000000-net1";
    let sb = sandbox(&res);
    assert_eq!(sb["sandbox"], pod.path());
    assert!(sb.get("mac").is_none(), "no MAC was requested, none reported: {sb}");
    let sock = socket_path(&res);
    assert_eq!(sock, node.shared_base().join("c11e00000000").join(port));
    assert_eq!(ports(&lab, "br-cli"), vec![port.to_string()]);
    assert_eq!(lab.interface_column(port, "type").expect("type"), "dpdkvhostuserclient");
    let opts = lab.interface_column(port, "options").expect("options");
    assert!(opts.contains(&sock.display().to_string()), "vhost-server-path in {opts}");
    let ids = lab.interface_column(port, "external_ids").expect("external_ids");
    assert!(ids.contains(cid) && ids.contains("net-cli") && ids.contains(&pod.path()), "tags: {ids}");
    assert_eq!(lab.vsctl(&["get", "Bridge", "br-cli", "datapath_type"]).expect("dp").trim(), "netdev");

    node.cni("DEL", cid, "net1", &c, &[("CNI_NETNS", &pod.path())]).expect_ok();
    assert!(!has_bridge(&lab, "br-cli"), "the bridge we created goes with its last port");
    assert_node_clean(&node, "after DEL");
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
}

#[test]
fn server_mode_socket_is_delivered_and_removed() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let pod = Netns::new("srv");
    let c = conf("net-srv", "br-srv", "server");
    let cid = "5e7e0000000000000000000000000002";
    let res = node.cni("ADD", cid, "net1", &c, &[("CNI_NETNS", &pod.path())]).expect_ok();
    let sock = socket_path(&res);
    use std::os::unix::fs::FileTypeExt;
    let ft = std::fs::symlink_metadata(&sock).expect("delivered socket").file_type();
    assert!(ft.is_socket(), "{} is a socket", sock.display());
    assert_eq!(sandbox(&res)["socketPath"], sock.display().to_string());
    let port = "5e7e00000000-net1";
    assert!(!lab.sock_dir().join(port).exists(), "moved out of OVS's dir");
    assert_eq!(lab.interface_column(port, "type").expect("type"), "dpdkvhostuser");
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
    assert!(!sock.exists() && !lab.sock_dir().join(port).exists(), "socket removed in both places");
    assert!(!has_bridge(&lab, "br-srv"));
    assert_node_clean(&node, "after DEL");
}

#[test]
fn two_pods_on_one_bridge_forward_32_of_32_packets() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let (a, b) = (Netns::new("pa"), Netns::new("pb"));
    let server = conf("net-pkt", "br-pkt", "server");
    let client = conf("net-pkt", "br-pkt", "client");
    let ra = node.cni("ADD", "a0000000000000a1", "net1", &server, &[("CNI_NETNS", &a.path())]).expect_ok();
    let rb = node.cni("ADD", "b0000000000000b2", "net1", &client, &[("CNI_NETNS", &b.path())]).expect_ok();
    let (sa, sb) = (socket_path(&ra), socket_path(&rb));
    // Pod A's testpmd connects to the socket OVS serves (delivered into A's shared dir); pod
    // B's testpmd serves the socket OVS's client port connects to.
    let (sent, received) =
        Testpmd::send_packets(&VhostPort::Server(sa), &VhostPort::Client(sb), 32, Duration::from_secs(40))
            .expect("testpmd ran");
    assert_eq!((sent, received), (32, 32), "32 packets sent through our ports, all received");
    node.cni("DEL", "a0000000000000a1", "net1", &server, &[]).expect_ok();
    assert!(has_bridge(&lab, "br-pkt"), "bridge stays while pod B uses it");
    node.cni("DEL", "b0000000000000b2", "net1", &client, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-pkt"));
    assert_node_clean(&node, "after both DELs");
}

#[test]
fn bridge_created_by_admin_is_never_deleted() {
    let lab = lab();
    lab.add_netdev_bridge("br-admin").expect("admin bridge");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-adm", "br-admin", "client");
    node.cni("ADD", "ad00000000000001", "net1", &c, &[]).expect_ok();
    node.cni("DEL", "ad00000000000001", "net1", &c, &[]).expect_ok();
    assert!(has_bridge(&lab, "br-admin"), "an administrator's bridge survives our last DEL");
    assert!(ports(&lab, "br-admin").iter().all(|p| p == "br-admin"), "only its own internal port is left");
    lab.vsctl(&["del-br", "br-admin"]).expect("cleanup");
}

#[test]
fn bridge_name_taken_by_a_non_netdev_bridge_is_a_clear_error() {
    let lab = lab();
    lab.vsctl(&["add-br", "br-sys", "--", "set", "Bridge", "br-sys", "datapath_type=system"]).expect("system bridge");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let before = ovs_state(&lab, "br-sys");
    let c = conf("net-sys", "br-sys", "client");
    let msg = node.cni("ADD", "5y5000000000001", "net1", &c, &[]).expect_err(102);
    assert!(msg.contains("datapath_type=system") && msg.contains("netdev"), "{msg}");
    assert_eq!(ovs_state(&lab, "br-sys"), before, "OVS unchanged");
    assert_node_clean(&node, "after the failed ADD");
    lab.vsctl(&["del-br", "br-sys"]).expect("cleanup");
}

/// A failure injected before, during and after each step leaves OVS and the disk exactly as
/// they were.
#[test]
fn failure_at_each_step_restores_ovs_and_disk() {
    let lab = lab();
    for mode in ["client", "server"] {
        let mut steps = vec!["shared-dir", "bridge", "vhost-port", "save-state"];
        if mode == "server" {
            steps.insert(3, "deliver-socket");
        }
        for step in &steps {
            for phase in ["before", "during", "after"] {
                if phase == "during" && !matches!(*step, "bridge" | "vhost-port") {
                    continue;
                }
                let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
                let c = conf("net-fail", "br-fail", mode);
                let before = ovs_state(&lab, "br-fail");
                let fp = format!("add:{step}:{phase}:error");
                let msg =
                    node.cni("ADD", "fa11000000000001", "net1", &c, &[("USERSPACE_CNI_FAILPOINT", &fp)]).expect_err(5);
                assert!(msg.contains("injected"), "{mode} {fp}: {msg}");
                assert_eq!(ovs_state(&lab, "br-fail"), before, "{mode} {fp}: OVS restored");
                assert_node_clean(&node, &format!("{mode} {fp}"));
                let left = support::entries_with_prefix(lab.sock_dir(), "fa1100000000");
                assert!(left.is_empty(), "{mode} {fp}: OVS-dir socket left: {left:?}");
            }
        }
    }
}

#[test]
fn second_add_is_code_100_and_first_attachment_survives() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-dup", "br-dup", "client");
    node.cni("ADD", "d0b1e00000000001", "net1", &c, &[]).expect_ok();
    let before = ovs_state(&lab, "br-dup");
    node.cni("ADD", "d0b1e00000000001", "net1", &c, &[]).expect_err(100);
    assert_eq!(ovs_state(&lab, "br-dup"), before, "first attachment intact");
    node.cni("DEL", "d0b1e00000000001", "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-dup"));
}

#[test]
fn container_ids_sharing_12_chars_collide_with_101_and_del_matches_full_id() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-col", "br-col", "client");
    node.cni("ADD", "c0111de000001111", "net1", &c, &[]).expect_ok();
    let msg = node.cni("ADD", "c0111de000002222", "net1", &c, &[]).expect_err(101);
    assert!(msg.contains("c0111de000001111"), "names the owner: {msg}");
    node.cni("DEL", "c0111de000002222", "net1", &c, &[]).expect_ok();
    assert_eq!(ports(&lab, "br-col"), vec!["c0111de00000-net1".to_string()], "the first pod's port survives");
    node.cni("DEL", "c0111de000001111", "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-col"));
}

#[test]
fn last_del_racing_next_add_loses_no_port() {
    let lab = lab();
    let node = Arc::new(Node::for_ovs(&lab.db_socket(), lab.sock_dir()));
    let c = conf("net-race", "br-race", "client");
    // Distinct first 12 characters, so the default port names differ.
    let cid = |i: u32| format!("r{i:03}ace00000000");
    node.cni("ADD", &cid(0), "net1", &c, &[]).expect_ok();
    for i in 1..=12 {
        let (prev, next) = (cid(i - 1), cid(i));
        let (n1, n2, c1, c2) = (node.clone(), node.clone(), c.clone(), c.clone());
        let del = std::thread::spawn(move || n1.cni("DEL", &prev, "net1", &c1, &[]));
        let add = std::thread::spawn(move || n2.cni("ADD", &next, "net1", &c2, &[]));
        del.join().expect("DEL thread").expect_ok();
        add.join().expect("ADD thread").expect_ok();
        let port = format!("{}-net1", &cid(i)[..12]);
        assert_eq!(ports(&lab, "br-race"), vec![port.clone()], "round {i}: the new port is on the bridge");
        assert_eq!(lab.interface_column(&port, "error").expect("error").trim(), "[]", "round {i}: port healthy");
    }
    node.cni("DEL", &cid(12), "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-race"));
    assert_node_clean(&node, "after the race");
}

#[test]
fn ovs_down_before_add_is_code_11_and_leaves_nothing() {
    let mut lab = Lab::start("ovs-down").expect("own lab");
    lab.kill_ovsdb().expect("kill ovsdb-server");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-down", "br-down", "client");
    let msg = node.cni("ADD", "d0e5000000000001", "net1", &c, &[]).expect_err(11);
    assert!(msg.to_lowercase().contains("ovsdb") || msg.contains("db.sock"), "{msg}");
    assert_node_clean(&node, "after ADD with OVS down");
    // DEL without a record succeeds even with OVS down.
    node.cni("DEL", "d0e5000000000001", "net1", &c, &[]).expect_ok();
    lab.stop().expect("stop lab");
}

#[test]
fn del_after_ovs_restart_succeeds_and_removes_the_port() {
    let mut lab = Lab::start("ovs-rst").expect("own lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-rst", "br-rst", "client");
    node.cni("ADD", "4e5000000000001", "net1", &c, &[]).expect_ok();
    lab.restart_vswitchd().expect("restart vswitchd");
    // With ovsdb-server down, DEL must ask to be retried and keep the record.
    lab.stop_ovsdb().expect("stop ovsdb");
    node.cni("DEL", "4e5000000000001", "net1", &c, &[]).expect_err(11);
    assert!(node.state_dir().join("4e5000000000001_net1.json").exists(), "record kept for the retry");
    lab.start_ovsdb().expect("start ovsdb");
    node.cni("DEL", "4e5000000000001", "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-rst"));
    assert_node_clean(&node, "after DEL");
    lab.stop().expect("stop lab");
}

#[test]
fn check_and_status_against_real_ovs() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-chk", "br-chk", "client");
    node.cni("STATUS", "", "", &c, &[]).expect_ok();
    let res = node.cni("ADD", "c4ec000000000001", "net1", &c, &[]).expect_ok();
    let mut cc = c.clone();
    cc["prevResult"] = res;
    node.cni("CHECK", "c4ec000000000001", "net1", &cc, &[]).expect_ok();
    lab.vsctl(&["del-port", "br-chk", "c4ec00000000-net1"]).expect("remove port behind our back");
    let msg = node.cni("CHECK", "c4ec000000000001", "net1", &cc, &[]).expect_err(5);
    assert!(msg.contains("c4ec00000000-net1") && msg.contains("missing"), "{msg}");
    node.cni("DEL", "c4ec000000000001", "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-chk"));
}

#[test]
fn server_mode_across_filesystems_is_code_104() {
    let lab = lab();
    let shm = tempfile::Builder::new().prefix("uscni-test-").tempdir_in("/dev/shm").expect("dir on tmpfs");
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).expect("stat").dev();
    assert_ne!(dev(shm.path()), dev(lab.sock_dir()), "/dev/shm must be another filesystem than the lab dir");
    let mut node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    node.overrides.push(("USERSPACE_CNI_SHARED_DIR".into(), shm.path().display().to_string()));
    let roots = format!("{}:{}", shm.path().display(), node.path("short").display());
    node.overrides.push(("USERSPACE_CNI_SHARED_ROOTS".into(), roots));
    let before = ovs_state(&lab, "br-fs");
    let msg = node.cni("ADD", "f5f5000000000001", "net1", &conf("net-fs", "br-fs", "server"), &[]).expect_err(104);
    assert!(msg.contains("client") && msg.contains(&shm.path().display().to_string()), "{msg}");
    assert_eq!(ovs_state(&lab, "br-fs"), before);
    // Client mode works across filesystems (OVS connects to the path).
    let c = conf("net-fs", "br-fs", "client");
    node.cni("ADD", "f5f5000000000001", "net1", &c, &[]).expect_ok();
    node.cni("DEL", "f5f5000000000001", "net1", &c, &[]).expect_ok();
}

#[test]
fn port_options_reach_ovs() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let mut c = conf("net-opt", "br-opt", "client");
    c["host"]["bridge"]["vlanId"] = json!(100);
    c["host"]["bridge"]["trunks"] = json!([10, 20]);
    c["host"]["MTU"] = json!(9000);
    c["host"]["ingressPolicing"] = json!({"rate": 10000, "burst": 1000});
    c["runtimeConfig"] = json!({"mac": "02:00:00:AA:BB:CC"});
    let res = node.cni("ADD", "0b7000000000001", "net1", &c, &[]).expect_ok();
    let port = "0b7000000000-net1";
    assert_eq!(lab.vsctl(&["get", "Port", port, "tag"]).expect("tag").trim(), "100");
    assert_eq!(lab.vsctl(&["get", "Port", port, "trunks"]).expect("trunks").trim(), "[10, 20]");
    assert_eq!(lab.interface_column(port, "mtu_request").expect("mtu").trim(), "9000");
    assert_eq!(lab.interface_column(port, "ingress_policing_rate").expect("rate").trim(), "10000");
    assert_eq!(lab.interface_column(port, "ingress_policing_burst").expect("burst").trim(), "1000");
    let sb = sandbox(&res);
    assert_eq!(sb["mac"], "02:00:00:aa:bb:cc", "the requested MAC is reported: {sb}");
    assert_eq!(sb["mtu"], 9000);
    node.cni("DEL", "0b7000000000001", "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-opt"));
}

#[test]
fn server_mode_socket_gets_the_configured_group() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let mut c = conf("net-grp", "br-grp", "server");
    c["host"]["vhost"]["group"] = json!("4242");
    let res = node.cni("ADD", "9a0000000000001", "net1", &c, &[]).expect_ok();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(socket_path(&res)).expect("socket");
    assert_eq!(meta.gid(), 4242);
    assert_eq!(meta.mode() & 0o777, 0o660);
    node.cni("DEL", "9a0000000000001", "net1", &c, &[]).expect_ok();
    let mut bad = c.clone();
    bad["host"]["vhost"]["group"] = json!("no-such-group-here");
    let msg = node.cni("ADD", "9a0000000000002", "net1", &bad, &[]).expect_err(7);
    assert!(msg.contains("no-such-group-here"), "{msg}");
    assert!(!has_bridge(&lab, "br-grp"), "validation failed before any change");
}

/// DEL removes the port row its ADD recorded, in one transaction whose `wait` proves the row is
/// still that attachment's (uuid, name, tags). A port someone else put under the same name
/// after our ADD is not ours: DEL leaves it, and the bridge with it.
#[test]
fn del_removes_the_recorded_row_and_never_a_replacement_under_its_name() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let c = conf("net-uuid", "br-uuid", "client");
    let (cid, port) = ("ab1d0000000000000000000000000001", "ab1d00000000-net1");
    node.cni("ADD", cid, "net1", &c, &[]).expect_ok();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.state_dir().join(format!("{cid}_net1.json"))).expect("record"))
            .expect("record JSON");
    let uuid = lab.vsctl(&["get", "Port", port, "_uuid"]).expect("uuid");
    assert_eq!(record["outputs"]["values"]["vhost-port"]["uuid"], uuid.trim(), "the record names the row: {record}");
    assert!(record["outputs"]["values"]["vhost-port"]["ofport"].as_i64().is_some_and(|n| n > 0), "{record}");

    // An administrator replaces the port under the same name (a new row, no tags of ours).
    let server = lab.sock_dir().join("admin-uuid.sock");
    let server_opt = format!("options:vhost-server-path={}", server.display());
    lab.vsctl(&["del-port", "br-uuid", port]).expect("del-port");
    lab.vsctl(&["add-port", "br-uuid", port, "--", "set", "Interface", port, "type=dpdkvhostuserclient", &server_opt])
        .expect("add-port");
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
    assert_eq!(ports(&lab, "br-uuid"), vec![port.to_string()], "the administrator's port stays");
    assert!(has_bridge(&lab, "br-uuid"), "a bridge with a port in it stays");
    assert_node_clean(&node, "after DEL");

    // Once the administrator's port is gone, our (empty, tagged) bridge goes with the next DEL
    // of an attachment on it.
    lab.vsctl(&["del-port", "br-uuid", port]).expect("del-port");
    node.cni("ADD", cid, "net1", &c, &[]).expect_ok();
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-uuid"), "our bridge goes with its last port");
}
