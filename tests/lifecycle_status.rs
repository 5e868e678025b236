//! STATUS against the real lab: success when OVSDB answers, DPDK is initialised, ovs-vswitchd
//! applies changes and the IPAM plugin can be run; code 50 with the reason (and within a bound)
//! when any of them cannot serve ADD, or when the state dir is one ADD would refuse.

mod reliability;
mod support;

use reliability::{ovs_conf, with_host_local};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use support::Node;
use testlab::Lab;

#[test]
fn status_follows_ovsdb_vswitchd_and_the_state_dir() {
    let mut lab = Lab::start("lc-status").expect("own lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = with_host_local(&node, ovs_conf("net-st", "br-st", "client"), "10.83.0.0/24");
    node.cni("STATUS", "", "", &conf, &[]).expect_ok();

    std::fs::create_dir_all(node.state_dir()).expect("state dir");
    std::fs::set_permissions(node.state_dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let msg = node.cni("STATUS", "", "", &conf, &[]).expect_err(50);
    assert!(msg.contains("mode 755") && msg.contains("chmod 0700"), "{msg}");
    std::fs::set_permissions(node.state_dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");

    lab.stop_vswitchd().expect("stop vswitchd");
    let started = Instant::now();
    let msg = node.cni("STATUS", "", "", &conf, &[]).expect_err(50);
    assert!(started.elapsed() < Duration::from_secs(8), "bounded: {:?}", started.elapsed());
    assert!(msg.contains("ovs-vswitchd is not applying changes"), "{msg}");

    lab.kill_ovsdb().expect("kill ovsdb");
    let msg = node.cni("STATUS", "", "", &conf, &[]).expect_err(50);
    assert!(msg.contains(&format!("OVSDB at {} cannot serve ADD", lab.db_endpoint())), "{msg}");

    lab.start_ovsdb().expect("start ovsdb");
    lab.start_vswitchd().expect("start vswitchd");
    node.cni("STATUS", "", "", &conf, &[]).expect_ok();
    lab.stop().expect("stop lab");
}

#[test]
fn status_is_50_when_dpdk_is_not_initialised() {
    let lab = Lab::start_db_only("lc-st-nodpdk").expect("db-only lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let msg = node.cni("STATUS", "", "", &ovs_conf("net-st2", "br-st2", "client"), &[]).expect_err(50);
    assert!(msg.contains("has not initialised DPDK") && msg.contains("dpdk-init=true"), "{msg}");
    lab.stop().expect("stop lab");
}

#[test]
fn status_is_50_when_the_ipam_plugin_cannot_serve() {
    let lab = Lab::shared("lc-st-ipam").expect("lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let mut conf = with_host_local(&node, ovs_conf("net-st3", "br-st3", "client"), "10.84.0.0/24");
    conf["ipam"]["type"] = json!("no-such-ipam");
    let msg = node.cni("STATUS", "", "", &conf, &[]).expect_err(50);
    assert!(msg.contains("no-such-ipam") && msg.contains("cannot serve ADD"), "{msg}");

    // A 1.1.0 delegate whose STATUS crashes without a CNI error: still 50, with its words.
    let bin = node.path("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let script = bin.join("broken-ipam");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$CNI_COMMAND\" in\nVERSION) echo '{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.1.0\"]}' ;;\n\
         STATUS) echo 'pool database corrupt' >&2; exit 3 ;;\nesac\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    conf["ipam"] = json!({"type": "broken-ipam"});
    let msg = node.cni("STATUS", "", "", &conf, &[("CNI_PATH", &bin.display().to_string())]).expect_err(50);
    assert!(msg.contains("the IPAM plugin cannot serve ADD") && msg.contains("pool database corrupt"), "{msg}");
}
