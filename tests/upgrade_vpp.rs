//! Replacing the upstream plugin in place on a VPP node, against the VPP simulator (tests/vppsim):
//! state made as the upstream plugin's ADD made it (an untagged memif on a socket filename in the
//! pod's shared dir, in an untagged bridge domain, and `{"swIfIndex","memifSocketId"}`) is removed
//! by our DEL, leaving neighbours; an index that now names another interface is never touched;
//! `userspace adopt` turns the state into our record, after which CNI GC removes everything.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Node, Run, PLUGIN_BIN};
use userspace_cni_vpp::api::messages::{
    BridgeDomainAddDelV2, BridgeDomainAddDelV2Reply, MemifCreateV2, MemifCreateV2Reply, SwInterfaceSetFlags,
    SwInterfaceSetFlagsReply, SwInterfaceSetL2Bridge, SwInterfaceSetL2BridgeReply,
};
use userspace_cni_vpp::api::Client;
use vppsim::Sim;

const BD: u32 = 5;

use support::{vpp_env as env, VppEnv as Env};

fn conf(name: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "userspace",
        "host": {"engine": "vpp", "iftype": "memif", "netType": "bridge",
                 "memif": {"role": "master", "mode": "ethernet"}, "bridge": {"bridgeId": BD}},
        "container": {"engine": "vpp", "iftype": "memif", "netType": "interface"}
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn legacy_path(node: &Node, cid: &str) -> PathBuf {
    node.shared_base().join("data").join(format!("local-{}-net1.json", &cid[..12]))
}

/// The socket path both plugins compute by default for (`cid`, net1).
fn socket_of(node: &Node, cid: &str) -> String {
    let c12 = &cid[..12];
    node.shared_base().join(c12).join(format!("memif-{c12}-net1.sock")).display().to_string()
}

/// What the upstream plugin's ADD left in VPP and on disk for (`cid`, net1): the pod's shared dir,
/// a socket filename registered for the memif socket there, an untagged master memif on it,
/// admin up and in bridge domain `BD` (created untagged if missing), and its state file.
/// Returns the memif's sw_if_index.
fn upstream_add(sim: &Sim, node: &Node, cid: &str) -> u32 {
    std::fs::create_dir_all(node.shared_base().join(&cid[..12])).expect("shared dir");
    let socket = socket_of(node, cid);
    let (idx, socket_id) = rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), Duration::from_secs(3)).await.expect("connect to the sim");
        let socket_id = userspace_cni_vpp::ops::add_socket(&mut c, &socket).await.expect("socket filename");
        let req = MemifCreateV2 { role: 0, mode: 0, socket_id, ..Default::default() };
        let r: MemifCreateV2Reply = c.call(req, "memif_create_v2").await.expect("memif");
        let idx = r.sw_if_index;
        let bd = BridgeDomainAddDelV2 { bd_id: BD, is_add: true, flood: true, forward: true, ..Default::default() };
        // Already there for the second pod: the upstream plugin ignored that answer too.
        let _ = c.call::<_, BridgeDomainAddDelV2Reply>(bd, "bridge_domain_add_del_v2").await;
        let l2 = SwInterfaceSetL2Bridge { rx_sw_if_index: idx, bd_id: BD, enable: true, ..Default::default() };
        c.call::<_, SwInterfaceSetL2BridgeReply>(l2, "sw_interface_set_l2_bridge").await.expect("bridge");
        let up = SwInterfaceSetFlags { sw_if_index: idx, flags: 1, ..Default::default() };
        c.call::<_, SwInterfaceSetFlagsReply>(up, "sw_interface_set_flags").await.expect("admin up");
        c.close().await;
        (idx, socket_id)
    });
    write_legacy(node, cid, idx, socket_id);
    idx
}

fn write_legacy(node: &Node, cid: &str, idx: u32, socket_id: u32) {
    std::fs::create_dir_all(node.shared_base().join("data")).expect("data dir");
    let state = json!({"swIfIndex": idx, "memifSocketId": socket_id});
    std::fs::write(legacy_path(node, cid), state.to_string()).expect("state file");
}

fn tag_of(sim: &Sim, idx: u32) -> Option<String> {
    sim.interfaces().into_iter().find(|i| i.sw_if_index == idx).map(|i| i.tag)
}

/// Files left under the node root that belong to `cid` (the upstream `data` dir and the test's
/// libcni cache excepted: neither is the attachment's).
fn files_of(node: &Node, cid: &str) -> Vec<String> {
    node.leftovers().into_iter().filter(|p| p.contains(&cid[..12]) && !p.starts_with("cnicache")).collect()
}

#[test]
fn del_removes_an_upstream_memif_its_socket_and_files_and_leaves_the_neighbour() {
    let Env { sim, node, _dir } = env();
    let network = "net-up-vpp";
    let c = conf(network);
    let (pod, neighbour) = ("u0vpp0pod00000000001", "u0vpp0nbr00000000002");
    let idx = upstream_add(&sim, &node, pod);
    let nidx = upstream_add(&sim, &node, neighbour);
    assert_eq!(sim.memifs().len(), 2, "two upstream memifs: {:?}", sim.memifs());
    assert!(sim.interfaces().iter().all(|i| i.tag.is_empty()), "upstream tags nothing: {:?}", sim.interfaces());

    node.cni("DEL", pod, "net1", &c, &[]).expect_ok();
    let memifs: Vec<u32> = sim.memifs().iter().map(|m| m.sw_if_index).collect();
    assert_eq!(memifs, vec![nidx], "only the neighbour's memif stays (the pod's was {idx})");
    let sockets: Vec<String> = sim.sockets().into_values().collect();
    assert_eq!(sockets, vec![socket_of(&node, neighbour)], "the pod's socket filename is unregistered");
    assert_eq!(tag_of(&sim, nidx).as_deref(), Some(""), "the neighbour is not tagged");
    let bds = sim.bridge_domains();
    assert_eq!(bds.len(), 1, "the upstream bridge domain stays: {bds:?}");
    assert_eq!(bds[0].members, vec![nidx], "with only the neighbour in it");
    assert!(!legacy_path(&node, pod).exists(), "the upstream state file is removed");
    assert!(!node.shared_base().join(&pod[..12]).exists(), "the shared dir is removed");
    assert!(files_of(&node, pod).is_empty(), "left behind: {:?}", files_of(&node, pod));
    assert!(legacy_path(&node, neighbour).exists(), "the neighbour's state file stays");
    assert!(std::path::Path::new(&socket_of(&node, neighbour)).exists(), "and its socket");

    node.cni("DEL", pod, "net1", &c, &[]).expect_ok();
    assert_eq!(sim.memifs().len(), 1, "a second DEL changes nothing");

    // The neighbour goes the same way, and then VPP holds only the bridge domain nobody tagged.
    node.cni("DEL", neighbour, "net1", &c, &[]).expect_ok();
    assert!(sim.interfaces().is_empty() && sim.sockets().is_empty(), "{:?} {:?}", sim.interfaces(), sim.sockets());
    assert_eq!(sim.bridge_domains().len(), 1, "the upstream bridge domain is never deleted");
}

#[test]
fn del_of_an_upstream_pod_whose_memif_is_gone_removes_its_files() {
    let Env { sim, node, _dir } = env();
    let c = conf("net-up-gone");
    let pod = "g0vpp0gone0000000001";
    let idx = upstream_add(&sim, &node, pod);
    // A VPP restart loses every interface and socket filename; the upstream files stay.
    sim.restart();
    assert!(sim.interfaces().is_empty());
    node.cni("DEL", pod, "net1", &c, &[]).expect_ok();
    assert!(!legacy_path(&node, pod).exists(), "the state file of a vanished memif ({idx}) is removed");
    assert!(files_of(&node, pod).is_empty(), "left behind: {:?}", files_of(&node, pod));
}

#[test]
fn del_never_touches_an_interface_the_index_now_names_for_someone_else() {
    let Env { sim, node, _dir } = env();
    let network = "net-up-reused";
    let c = conf(network);

    // 1. The index now names another pod's untagged memif (another socket path).
    let (other, stale) = ("r0vpp0other000000001", "r0vpp0stale000000002");
    let oidx = upstream_add(&sim, &node, other);
    std::fs::create_dir_all(node.shared_base().join(&stale[..12])).expect("stale pod's shared dir");
    write_legacy(&node, stale, oidx, 1);
    // Debug text: the simulator's types do not implement PartialEq.
    let vpp = || format!("{:?}", (sim.memifs(), sim.sockets(), sim.bridge_domains(), sim.interfaces()));
    let before = vpp();
    node.cni("DEL", stale, "net1", &c, &[]).expect_ok();
    assert_eq!(vpp(), before, "VPP is unchanged: the interface at {oidx} is another pod's");
    assert!(legacy_path(&node, stale).exists(), "the state file is kept for the operator");
    assert!(node.shared_base().join(&stale[..12]).exists(), "and the pod's shared dir");

    // 2. The index names an interface our own ADD made, tagged for another attachment.
    let ours = "r0vpp0ours0000000003";
    node.cni("ADD", ours, "net1", &c, &[]).expect_ok();
    let (oursidx, tag) = sim
        .interfaces()
        .into_iter()
        .find(|i| i.tag.starts_with("uscni:"))
        .map(|i| (i.sw_if_index, i.tag))
        .expect("our memif");
    let stranger = "r0vpp0strange0000004";
    write_legacy(&node, stranger, oursidx, 1);
    node.cni("DEL", stranger, "net1", &c, &[]).expect_ok();
    assert_eq!(tag_of(&sim, oursidx), Some(tag), "our other memif stays, still tagged for its own attachment");
    assert!(node.state_dir().join(format!("{ours}_net1.json")).exists(), "its record stays");
    assert!(legacy_path(&node, stranger).exists(), "the state file is kept");

    node.cni("DEL", ours, "net1", &c, &[]).expect_ok();
    assert_eq!(tag_of(&sim, oursidx), None, "our own DEL still works");
    assert_eq!(tag_of(&sim, oidx).as_deref(), Some(""), "the other pod's memif is still there, untagged");
}

fn cli(node: &Node, args: &[&str]) -> Run {
    let out = Command::new(PLUGIN_BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(node.settings_env())
        .env("CNI_PATH", "/usr/lib/cni")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run userspace");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn adopt_tags_the_upstream_memif_as_ours_and_gc_then_removes_it() {
    let Env { sim, node, _dir } = env();
    let network = "net-up-adopt-vpp";
    let c = conf(network);
    let pod = "a0vpp0adopt000000001";
    let idx = upstream_add(&sim, &node, pod);
    support::write_libcni_cache(&node, &c, pod);

    let before = node.snapshot();
    let dry = cli(&node, &["adopt", "--dry-run"]);
    assert_eq!(dry.code, Some(0), "dry run: {dry:?}");
    assert!(dry.stdout.contains("would-adopt"), "{}", dry.stdout);
    assert_eq!(node.snapshot(), before, "--dry-run changes no file");
    assert_eq!(tag_of(&sim, idx).as_deref(), Some(""), "--dry-run tags nothing");

    let run = cli(&node, &["adopt", "--json"]);
    assert_eq!(run.code, Some(0), "adopt: {run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(report["files"][0]["outcome"], "adopted", "{report}");
    assert!(!legacy_path(&node, pod).exists(), "the state file is removed once adopted");
    let listed = cli(&node, &["inspect", "--json"]);
    assert_eq!(listed.code, Some(0), "inspect: {listed:?}");
    assert!(
        listed.stdout.contains(pod) && listed.stdout.contains(network),
        "inspect lists the adopted attachment: {}",
        listed.stdout
    );
    let tag = tag_of(&sim, idx).unwrap_or_default();
    assert!(tag.starts_with("uscni:") && tag.ends_with(":net1"), "the memif is tagged as ours: {tag:?}");
    let again = cli(&node, &["adopt"]);
    assert_eq!(again.code, Some(0), "nothing left to adopt: {again:?}");

    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", "", "", &gc, &[]).expect_ok();
    assert!(sim.memifs().is_empty(), "GC removed the adopted memif: {:?}", sim.memifs());
    assert!(sim.sockets().is_empty(), "and its socket filename: {:?}", sim.sockets());
    assert!(files_of(&node, pod).is_empty(), "GC left behind: {:?}", files_of(&node, pod));
    let bds = sim.bridge_domains();
    assert!(bds.len() == 1 && bds[0].members.is_empty(), "the upstream bridge domain stays, empty: {bds:?}");
}

/// VPP hands a freed sw_if_index to the very next interface it creates: an upstream pod's memif
/// deleted behind both plugins' backs and another upstream pod's ADD then gets the index the
/// first pod's state file names. `userspace adopt` and our DEL of the first pod read back what
/// the index names now (another pod's socket) and leave it alone, with the state file.
#[test]
fn adopt_and_del_leave_alone_the_pod_that_took_a_freed_index() {
    let Env { sim, node, _dir } = env();
    let c = conf("net-up-freed");
    let (stale, other) = ("f0vpp0stale000000001", "f0vpp0other000000002");
    let sidx = upstream_add(&sim, &node, stale);
    support::write_libcni_cache(&node, &c, stale);
    rt().block_on(async {
        let mut cl = Client::connect(&sim.socket(), Duration::from_secs(3)).await.expect("connect");
        userspace_cni_vpp::ops::delete_memif(&mut cl, sidx).await.expect("the stale pod's memif is deleted");
        cl.close().await;
    });
    let oidx = upstream_add(&sim, &node, other);
    assert_eq!(oidx, sidx, "the other pod's memif took the freed index");
    let other_now = || {
        let st = sim.state();
        let i = st.interfaces.get(&oidx).cloned();
        let m = st.memifs.get(&oidx).cloned();
        let f = m.as_ref().and_then(|m| st.sockets.get(&m.socket_id).cloned());
        let bd = st.bds.get(&BD).map(|b| b.members.contains(&oidx));
        format!("{i:?} {m:?} {f:?} {bd:?}")
    };
    let before = other_now();
    assert!(before.contains(&socket_of(&node, other)), "{before}");

    let run = cli(&node, &["adopt", "--json"]);
    assert_eq!(run.code, Some(1), "state files were left, adopt says so: {run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    let files = report["files"].as_array().cloned().unwrap_or_default();
    let line = files.iter().find(|l| l["containerId"] == stale).unwrap_or_else(|| panic!("{report}"));
    assert_eq!(line["outcome"], "skipped", "{report}");
    assert!(line.to_string().contains(&socket_of(&node, other)), "the reason names the socket found: {line}");
    assert_eq!(other_now(), before, "adopt did not tag or change the other pod's memif");
    assert!(legacy_path(&node, stale).exists(), "the state file is kept");

    node.cni("DEL", stale, "net1", &c, &[]).expect_ok();
    assert_eq!(other_now(), before, "DEL of the stale pod did not touch the other pod's memif");
    assert!(legacy_path(&node, other).exists(), "the other pod's state file stays");
    node.cni("DEL", other, "net1", &c, &[]).expect_ok();
    assert!(sim.memifs().is_empty(), "the other pod's own DEL removes its memif: {:?}", sim.memifs());
}
