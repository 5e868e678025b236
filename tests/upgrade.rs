//! Replacing the upstream plugin in place, against the real lab with Debian's host-local: state
//! made exactly as the upstream plugin's ADD made it (an untagged port, its state file, the
//! shared dir and socket, a lease) is removed by our DEL, leaving neighbours and the bridge;
//! objects that are not the attachment's are never touched; `userspace adopt` turns the state
//! into our record (from a libcni cache file), after which CNI GC removes everything. The
//! KubeVirt short-dir bind mount is made (and must be gone) only in a private mount namespace.

mod reliability;
mod support;

use reliability::{cli, host_local_add, inspect, leaks, leases, ovs_conf, with_host_local};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Node;
use testlab::Lab;

fn lab() -> Arc<Lab> {
    Lab::shared("upgrade").expect("start the private OVS-DPDK lab")
}

fn port_of(cid: &str) -> String {
    format!("{}-net1", &cid[..12])
}

fn legacy_path(node: &Node, cid: &str) -> PathBuf {
    node.shared_base().join("data").join(format!("local-{}-net1.json", &cid[..12]))
}

fn wait_for(path: &Path) {
    let end = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < end, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the upstream plugin's ADD left for (`cid`, net1) with `conf`, made the way it made it:
/// the bridge (untagged, netdev), an untagged port, the socket in `<shared>/<cid12>` (server
/// mode: OVS's socket renamed there; client mode: the workload's listening socket), its state
/// file and a host-local lease.
fn upstream_add(lab: &Lab, node: &Node, conf: &Value, cid: &str) {
    let bridge = conf["host"]["bridge"]["bridgeName"].as_str().expect("bridge");
    let mode = conf["host"]["vhost"]["mode"].as_str().expect("mode");
    let port = port_of(cid);
    let shared = node.shared_base().join(&cid[..12]);
    std::fs::create_dir_all(&shared).expect("shared dir");
    lab.vsctl(&["--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev"])
        .expect("upstream bridge");
    let sock = shared.join(&port);
    if mode == "server" {
        lab.vsctl(&["add-port", bridge, &port, "--", "set", "Interface", &port, "type=dpdkvhostuser"])
            .expect("upstream server-mode port");
        let ovs_sock = lab.sock_dir().join(&port);
        wait_for(&ovs_sock);
        std::fs::rename(&ovs_sock, &sock).expect("move the socket into the shared dir as upstream did");
    } else {
        let opt = format!("options:vhost-server-path={}", sock.display());
        lab.vsctl(&["add-port", bridge, &port, "--", "set", "Interface", &port, "type=dpdkvhostuserclient", &opt])
            .expect("upstream client-mode port");
        // The workload's listening socket (the file stays after the listener is gone).
        drop(std::os::unix::net::UnixListener::bind(&sock).expect("workload socket"));
    }
    let data = node.shared_base().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let state = json!({"vhostname": port, "vhostmac": "", "ifmac": ""});
    std::fs::write(legacy_path(node, cid), state.to_string()).expect("state file");
    host_local_add(node, conf, cid, "net1");
}

fn external_ids(lab: &Lab, table: &str, name: &str) -> String {
    lab.vsctl(&["get", table, name, "external_ids"]).unwrap_or_else(|e| panic!("{table} {name}: {e}"))
}

/// What is left of `network`/`cid12`, apart from the upstream `data` dir (the upstream plugin's,
/// never removed by us) and the test's own libcni cache (the runtime's).
fn left(lab: &Lab, node: &Node, network: &str, cid12: &str) -> Vec<String> {
    leaks(lab, node, network, cid12)
        .into_iter()
        .filter(|l| l != "file shared/data" && !l.starts_with("file cnicache"))
        .collect()
}

fn cleanup_bridge(lab: &Lab, bridge: &str) {
    let _ = lab.vsctl(&["--if-exists", "del-br", bridge]);
}

#[test]
fn del_removes_everything_an_upstream_add_left_and_leaves_neighbours_and_the_bridge() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let bridge = "br-up-del";
    let neighbour = "neighbour-p0";
    for (mode, cid, subnet) in
        [("server", "u0server000000000001", "10.91.0.0/24"), ("client", "u0client000000000002", "10.92.0.0/24")]
    {
        let network = format!("net-up-{mode}");
        let conf = with_host_local(&node, ovs_conf(&network, bridge, mode), subnet);
        upstream_add(&lab, &node, &conf, cid);
        if mode == "server" {
            // An unrelated, untagged port on the same bridge (another upstream pod, an admin's).
            let path = format!("options:vhost-server-path={}", node.path("neighbour.sock").display());
            lab.vsctl(&[
                "add-port",
                bridge,
                neighbour,
                "--",
                "set",
                "Interface",
                neighbour,
                "type=dpdkvhostuserclient",
                &path,
            ])
            .expect("neighbour port");
        }
        let port = port_of(cid);
        assert!(lab.ports(bridge).expect("ports").contains(&port), "{mode}: the upstream port exists");
        assert_eq!(leases(&node, &network).len(), 1, "{mode}: one lease");

        node.cni("DEL", cid, "net1", &conf, &[]).expect_ok();
        assert_eq!(lab.ports(bridge).expect("ports"), vec![neighbour.to_string()], "{mode}: only the neighbour stays");
        assert_eq!(external_ids(&lab, "Port", neighbour), "{}", "{mode}: the neighbour is untouched");
        assert!(!legacy_path(&node, cid).exists(), "{mode}: the upstream state file is removed");
        assert!(!node.shared_base().join(&cid[..12]).exists(), "{mode}: the shared dir is removed");
        let l = left(&lab, &node, &network, &cid[..12]);
        assert!(l.is_empty(), "{mode}: left behind: {l:#?}");

        node.cni("DEL", cid, "net1", &conf, &[]).expect_ok();
        assert_eq!(
            lab.ports(bridge).expect("ports"),
            vec![neighbour.to_string()],
            "{mode}: second DEL changes nothing"
        );
    }
    assert!(lab.bridges().expect("bridges").contains(&bridge.to_string()), "the upstream bridge is never deleted");
    cleanup_bridge(&lab, bridge);
}

#[test]
fn del_never_touches_a_port_on_another_bridge_or_tagged_for_another_attachment() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let network = "net-up-foreign";
    let conf = with_host_local(&node, ovs_conf(network, "br-up-mine", "client"), "10.93.0.0/24");

    // 1. The port the state file names is on another bridge (not this network's).
    let elsewhere = "f0elsewhere000000001";
    let mut other_bridge = conf.clone();
    other_bridge["host"]["bridge"]["bridgeName"] = json!("br-up-other");
    upstream_add(&lab, &node, &other_bridge, elsewhere);
    lab.vsctl(&["--may-exist", "add-br", "br-up-mine", "--", "set", "Bridge", "br-up-mine", "datapath_type=netdev"])
        .expect("the config's bridge");
    node.cni("DEL", elsewhere, "net1", &conf, &[]).expect_ok();
    assert_eq!(lab.ports("br-up-other").expect("ports"), vec![port_of(elsewhere)], "the other bridge's port stays");
    assert_eq!(external_ids(&lab, "Port", &port_of(elsewhere)), "{}", "and is not tagged");
    assert!(legacy_path(&node, elsewhere).exists(), "the state file is kept for the operator");
    assert!(leases(&node, network).is_empty(), "the lease (keyed by the full container id) is released");

    // 2. The name is held by a port of ours, tagged for another attachment.
    let ours = "f0ours00000000000002";
    let mut named = conf.clone();
    named["host"]["vhost"]["socketfile"] = json!("shared-name");
    named["container"]["vhost"] = json!({"socketfile": "shared-name"});
    node.cni("ADD", ours, "net1", &named, &[]).expect_ok();
    let stranger = "f0stranger0000000003";
    std::fs::write(legacy_path(&node, stranger), json!({"vhostname": "shared-name"}).to_string()).expect("state file");
    node.cni("DEL", stranger, "net1", &conf, &[]).expect_ok();
    assert!(lab.ports("br-up-mine").expect("ports").contains(&"shared-name".to_string()), "our other port stays");
    assert!(external_ids(&lab, "Port", "shared-name").contains(ours), "still tagged for its own attachment");
    assert!(node.state_dir().join(format!("{ours}_net1.json")).exists(), "its record stays");
    assert!(legacy_path(&node, stranger).exists(), "the state file is kept");

    node.cni("DEL", ours, "net1", &named, &[]).expect_ok();
    assert!(!lab.ports("br-up-mine").expect("ports").contains(&"shared-name".to_string()), "our DEL still works");
    assert!(!node.state_dir().join(format!("{ours}_net1.json")).exists());
    for b in ["br-up-mine", "br-up-other"] {
        cleanup_bridge(&lab, b);
    }
}

#[test]
fn adopt_turns_upstream_state_into_a_record_that_gc_then_removes() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let (network, bridge) = ("net-up-adopt", "br-up-adopt");
    let cid = "a0adopt0000000000001";
    let conf = with_host_local(&node, ovs_conf(network, bridge, "server"), "10.94.0.0/24");
    upstream_add(&lab, &node, &conf, cid);
    support::write_libcni_cache(&node, &conf, cid);
    let cni_path = [("CNI_PATH", "/usr/lib/cni")];

    let before = node.snapshot();
    let dry = cli(&node, &["adopt", "--dry-run"], &cni_path);
    assert_eq!(dry.code, Some(0), "dry run: {dry:?}");
    assert!(dry.stdout.contains("would-adopt"), "{}", dry.stdout);
    assert_eq!(node.snapshot(), before, "--dry-run changes no file");
    assert_eq!(external_ids(&lab, "Port", &port_of(cid)), "{}", "--dry-run tags nothing");

    let run = cli(&node, &["adopt", "--json"], &cni_path);
    assert_eq!(run.code, Some(0), "adopt: {run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(report["files"][0]["outcome"], "adopted", "{report}");
    assert!(!legacy_path(&node, cid).exists(), "the state file is removed once adopted");
    let listed = inspect(&node);
    assert!(
        listed.iter().any(|a| a.to_string().contains(cid) && a.to_string().contains(network)),
        "inspect lists the adopted attachment: {listed:#?}"
    );
    let tags = external_ids(&lab, "Port", &port_of(cid));
    assert!(tags.contains(cid) && tags.contains(network), "the port is tagged as ours: {tags}");
    assert!(external_ids(&lab, "Interface", &port_of(cid)).contains(cid), "and its interface");
    let again = cli(&node, &["adopt"], &cni_path);
    assert_eq!(again.code, Some(0), "nothing left to adopt: {again:?}");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", "", "", &gc, &[]).expect_ok();
    assert!(!lab.ports(bridge).expect("ports").contains(&port_of(cid)), "GC removed the adopted port");
    let l = left(&lab, &node, network, &cid[..12]);
    assert!(l.is_empty(), "GC left behind: {l:#?}");
    assert!(lab.bridges().expect("bridges").contains(&bridge.to_string()), "the upstream bridge stays");
    cleanup_bridge(&lab, bridge);
}

#[test]
fn adopt_reports_and_skips_a_state_file_without_a_cache_entry() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let (network, bridge) = ("net-up-nocache", "br-up-nocache");
    let conf = with_host_local(&node, ovs_conf(network, bridge, "client"), "10.95.0.0/24");
    let (cached, uncached) = ("n0cached000000000001", "n0uncached0000000002");
    upstream_add(&lab, &node, &conf, cached);
    upstream_add(&lab, &node, &conf, uncached);
    support::write_libcni_cache(&node, &conf, cached);

    let run = cli(&node, &["adopt"], &[("CNI_PATH", "/usr/lib/cni")]);
    assert_eq!(run.code, Some(1), "one file could not be adopted: {run:?}");
    assert!(run.stdout.contains("no libcni cache entry"), "{}", run.stdout);
    assert!(run.stdout.contains("1 adopted, 1 not adopted"), "{}", run.stdout);
    assert!(legacy_path(&node, uncached).exists(), "the unadoptable file stays");
    assert_eq!(external_ids(&lab, "Port", &port_of(uncached)), "{}", "its port is not tagged");
    assert!(!legacy_path(&node, cached).exists(), "the other one was adopted");

    // The runtime's DEL still cleans both: one through our record, one through the state file.
    for cid in [cached, uncached] {
        node.cni("DEL", cid, "net1", &conf, &[]).expect_ok();
    }
    for cid in [cached, uncached] {
        let l = left(&lab, &node, network, &cid[..12]);
        assert!(l.is_empty(), "{cid}: left behind: {l:#?}");
    }
    cleanup_bridge(&lab, bridge);
}

/// Unmounts a bind mount the test made if the test fails before the plugin removed it, so the
/// node's temp root can be removed (declared after the `Node`, so it drops first).
struct UnmountOnDrop(PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        if userspace_cni::steps::short_dir::is_mount_point(&self.0) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn del_removes_an_upstream_kubevirt_short_dir_mount_with_the_pods_last_interface() {
    support::run_in_private_mount_ns("upstream_kubevirt_inner");
}

/// The upstream plugin's KubeVirt case, made by hand as its ADD made it: the pod's `shared-dir`
/// emptyDir is too deep for a socket path, so `<short_socket_dir>/<pod uid>` was bind-mounted onto
/// it and each client-mode port's `vhost-server-path` addresses its socket through the short dir.
/// Our DEL, with the same CNI_ARGS, plans the same short dir: DEL of one interface keeps the
/// mount the other still uses, DEL of the last removes the mount with everything else.
#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn upstream_kubevirt_inner() {
    // A lab of its own: ovs-vswitchd must live in this mount namespace to see the bind mount.
    let lab = Lab::start("upg-kv").expect("start the private OVS-DPDK lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let (network, bridge) = ("net-up-kv", "br-up-kv");
    let cid = "k0kubevirt0000000000000000000001";
    let uid = "3f6c2a1e-8d4b-4e7a-9c0f-fedcba987654";
    let conf = with_host_local(&node, ovs_conf(network, bridge, "client"), "10.96.0.0/24");
    let long = node.path("kubelet/pods").join(uid).join("volumes/kubernetes.io~empty-dir/shared-dir");
    std::fs::create_dir_all(&long).expect("the pod's emptyDir, as kubelet makes it");
    assert!(long.as_os_str().len() >= 89, "upstream's threshold for the short dir: {}", long.display());
    let state_file = |ifname: &str| node.shared_base().join("data").join(format!("local-{}-{ifname}.json", &cid[..12]));

    // Upstream's ADD: mkdir the short dir, bind-mount the pod's volume onto it (once per pod),
    // and create each port with its socket addressed through the short dir.
    let short = node.path("short").join(uid);
    std::fs::create_dir_all(&short).expect("short dir");
    let mounted = std::process::Command::new("mount").arg("--bind").arg(&long).arg(&short).status().expect("mount");
    assert!(mounted.success(), "bind-mount {} onto {}", long.display(), short.display());
    let unmount = UnmountOnDrop(short.clone());
    lab.vsctl(&["--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev"])
        .expect("upstream bridge");
    std::fs::create_dir_all(node.shared_base().join("data")).expect("data dir");
    let ports: Vec<String> = ["net1", "net2"].iter().map(|i| format!("{}-{i}", &cid[..12])).collect();
    for (ifname, port) in ["net1", "net2"].into_iter().zip(&ports) {
        let opt = format!("options:vhost-server-path={}", short.join(port).display());
        lab.vsctl(&["add-port", bridge, port, "--", "set", "Interface", port, "type=dpdkvhostuserclient", &opt])
            .expect("upstream client-mode port");
        // The VM's listening socket (the file stays after the listener is gone), bound through
        // the short path: the long one is too long for sun_path.
        drop(std::os::unix::net::UnixListener::bind(short.join(port)).expect("workload socket"));
        assert!(long.join(port).exists(), "the short dir aliases the pod's volume");
        let state = json!({"vhostname": port, "vhostmac": "", "ifmac": ""});
        std::fs::write(state_file(ifname), state.to_string()).expect("state file");
        host_local_add(&node, &conf, cid, ifname);
    }

    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm-a;K8S_POD_UID={uid}");
    let env = [("CNI_ARGS", args.as_str())];
    node.cni("DEL", cid, "net1", &conf, &env).expect_ok();
    assert_eq!(lab.ports(bridge).expect("ports"), vec![ports[1].clone()], "net1's port goes, net2's stays");
    assert!(!state_file("net1").exists() && state_file("net2").exists(), "only net1's state file goes");
    assert!(
        userspace_cni::steps::short_dir::is_mount_point(&short),
        "net2 (upstream's, no record of ours) still addresses its socket through the short dir"
    );
    assert!(short.join(&ports[1]).exists() && !long.join(&ports[0]).exists(), "only net1's socket goes");
    assert_eq!(leases(&node, network).len(), 1, "net1's lease is released");

    node.cni("DEL", cid, "net2", &conf, &env).expect_ok();
    assert!(!userspace_cni::steps::short_dir::is_mount_point(&short), "the short dir is unmounted");
    assert!(!short.exists(), "the short dir is removed");
    assert!(lab.ports(bridge).expect("ports").is_empty(), "both upstream ports are removed");
    assert!(!state_file("net2").exists(), "the upstream state files are removed");
    assert!(long.is_dir(), "kubelet's emptyDir is never removed by us");
    let in_volume: Vec<_> = std::fs::read_dir(&long).expect("read").flatten().map(|e| e.file_name()).collect();
    assert!(in_volume.is_empty(), "no socket left in the pod's volume: {in_volume:?}");
    let l = left(&lab, &node, network, &cid[..12]);
    assert!(l.is_empty(), "left behind: {l:#?}");

    for ifname in ["net1", "net2"] {
        node.cni("DEL", cid, ifname, &conf, &env).expect_ok();
    }
    assert!(!short.exists(), "a second DEL changes nothing");
    drop(unmount);
    lab.stop().expect("stop lab");
}
