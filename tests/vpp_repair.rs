//! Repair after a VPP restart (`Backend::repair` of the VPP backend), against the VPP simulator:
//! memifs (master and slave, one bridge domain) and a vhost-user interface with IPAM addresses
//! are re-created with the same socket paths, roles, tags, bridge domain and addresses; a second
//! pass finds them healthy; DEL afterwards leaves nothing in VPP; VPP down is code 11. Through
//! `userspace gc` (the reconciler), as an operator or the DaemonSet runs it.

mod reliability;
mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{Netns, Node};
use userspace_cni::plan::Record;
use vppsim::{IfKind, Sim};

use support::{vpp_env as env, VppEnv as Env};

use support::vpp_memif_conf as memif_conf;

fn vhost_conf(node: &Node, name: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "userspace",
        "host": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}},
        "container": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface"},
        "ipam": {"type": "host-local", "dataDir": node.path("ipam").display().to_string(),
                 "ranges": [[{"subnet": "10.30.0.0/24"}]]}
    })
}

fn cid(i: usize) -> String {
    format!("{i:04x}bbbb{}", "0".repeat(56))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The node's complete records.
fn records(node: &Node) -> Vec<(PathBuf, Record)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(node.state_dir()).expect("state dir").flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        if let Ok(r) = Record::from_bytes(&std::fs::read(&p).expect("read record")) {
            out.push((p, r));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One reconciler pass (`userspace gc --json`): each live attachment's repair outcome by
/// container id (`outcome`, and `actions` or `code`), and the exit code.
fn gc_pass(node: &Node, extra: &[&str]) -> (Option<i32>, BTreeMap<String, Value>) {
    let mut args = vec!["gc", "--json", "--kubernetes", "off"];
    args.extend_from_slice(extra);
    let run = reliability::cli(node, &args, &[]);
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("gc --json ({e}): {run:?}"));
    let repairs = doc["repairs"].as_array().cloned().unwrap_or_default();
    let by_cid = repairs.into_iter().map(|r| (r["containerId"].as_str().unwrap_or_default().to_owned(), r)).collect();
    (run.code, by_cid)
}

fn outcome(r: &Value) -> &str {
    r["outcome"].as_str().unwrap_or_default()
}

fn actions(r: &Value) -> Vec<String> {
    r["actions"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)).collect()
}

/// What a restart must bring back: (tag, kind, role/mode or socket, bridge domain, addresses).
fn vpp_picture(sim: &Sim) -> BTreeSet<String> {
    let st = sim.state();
    let mut out = BTreeSet::new();
    for i in st.interfaces.values().filter(|i| i.kind != IfKind::Local) {
        let what = match i.kind {
            IfKind::Memif => {
                let m = &st.memifs[&i.sw_if_index];
                format!("memif socket={} role={} mode={} id={}", st.sockets[&m.socket_id], m.role, m.mode, m.id)
            }
            IfKind::Vhost => {
                let v = &st.vhosts[&i.sw_if_index];
                format!("vhost socket={} server={}", v.sock_filename, v.is_server)
            }
            IfKind::Local => unreachable!(),
        };
        let mut addrs: Vec<String> = i.addresses.iter().map(|(af, b, l)| format!("{af}:{b:?}/{l}")).collect();
        addrs.sort();
        out.insert(format!("{} {what} up={} bd={:?} addrs={addrs:?}", i.tag, i.admin_up, i.bd));
    }
    for b in st.bds.values() {
        out.insert(format!("bd {} tag={} members={}", b.bd_id, b.tag, b.members.len()));
    }
    out
}

fn assert_vpp_clean(sim: &Sim, why: &str) {
    assert!(sim.interfaces().is_empty(), "{why}: interfaces left: {:?}", sim.interfaces());
    assert!(sim.sockets().is_empty(), "{why}: memif sockets left: {:?}", sim.sockets());
    assert!(sim.bridge_domains().is_empty(), "{why}: bridge domains left: {:?}", sim.bridge_domains());
}

#[test]
fn memifs_and_vhost_user_are_recreated_with_the_same_sockets_after_a_vpp_restart() {
    let Env { sim, node, _dir } = env();
    let (pa, pb, pc) = (Netns::new("vrpa"), Netns::new("vrpb"), Netns::new("vrpc"));
    let master = memif_conf("net-vr", "master", 7);
    let slave = memif_conf("net-vr", "slave", 7);
    let vhost = vhost_conf(&node, "net-vr-vh");
    let (ca, cb, cc) = (cid(1), cid(2), cid(3));
    node.cni("ADD", &ca, "net1", &master, &[("CNI_NETNS", &pa.path())]).expect_ok();
    node.cni("ADD", &cb, "net1", &slave, &[("CNI_NETNS", &pb.path())]).expect_ok();
    let rc = node.cni("ADD", &cc, "net1", &vhost, &[("CNI_NETNS", &pc.path())]).expect_ok();
    let before = vpp_picture(&sim);
    let sockets_before: BTreeSet<String> = sim.sockets().into_values().collect();
    assert_eq!(sockets_before.len(), 2, "{sockets_before:?}");
    assert_eq!(sim.interfaces().len(), 3, "{before:?}");

    let (code, healthy) = gc_pass(&node, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(healthy.len(), 3, "{healthy:?}");
    for (c, r) in &healthy {
        assert_eq!(outcome(r), "healthy", "{c} before any restart: {r}");
    }

    sim.restart();
    assert_vpp_clean(&sim, "VPP restarted");

    // A dry run reports and changes nothing.
    let (code, dry) = gc_pass(&node, &["--dry-run"]);
    assert_eq!(code, Some(0));
    for (c, r) in &dry {
        assert_eq!(outcome(r), "would-repair", "{c}: {r}");
        assert!(actions(r).iter().any(|a| a.starts_with("re-create")), "{c}: {r}");
    }
    assert_vpp_clean(&sim, "after a dry run");

    let t0 = Instant::now();
    let (code, repaired) = gc_pass(&node, &[]);
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "{repaired:?}");
    assert_eq!(repaired.len(), 3, "{repaired:?}");
    for (c, r) in &repaired {
        assert_eq!(outcome(r), "repaired", "{c}: {r}");
        assert!(actions(r).iter().any(|l| l.starts_with("re-created")), "{c}: {r}");
    }
    eprintln!("gc pass repairing 3 attachments took {took:?} (whole process)");
    assert_eq!(vpp_picture(&sim), before, "VPP holds again what it held before the restart");
    let sockets_after: BTreeSet<String> = sim.sockets().into_values().collect();
    assert_eq!(sockets_after, sockets_before, "the same socket filenames");
    // VPP (master) listens again on the master pod's socket path.
    use std::os::unix::fs::FileTypeExt;
    let master_sock = node.shared_base().join(&ca[..12]).join(format!("memif-{}-net1.sock", &ca[..12]));
    assert!(sockets_after.contains(&master_sock.display().to_string()), "{sockets_after:?}");
    assert!(std::fs::symlink_metadata(&master_sock).expect("listener").file_type().is_socket());

    // The records were rewritten with the new interfaces; CHECK agrees with VPP.
    let mut check = vhost.clone();
    check["prevResult"] = rc.clone();
    node.cni("CHECK", &cc, "net1", &check, &[("CNI_NETNS", &pc.path())]).expect_ok();
    for (_, rec) in records(&node) {
        let outputs = rec.outputs.expect("outputs");
        let idx = ["memif", "vhost-user"]
            .iter()
            .find_map(|k| outputs.values.get(*k).and_then(|v| v["sw_if_index"].as_u64()))
            .expect("sw_if_index in the record");
        let name = &outputs.host_interfaces[0].name;
        let live = sim.interfaces().into_iter().find(|i| i.sw_if_index as u64 == idx).expect("recorded index lives");
        assert_eq!(&live.name, name, "record and VPP agree on the interface");
    }

    let (code, again) = gc_pass(&node, &[]);
    assert_eq!(code, Some(0));
    for (c, r) in &again {
        assert_eq!(outcome(r), "healthy", "{c} on the second pass: {r}");
    }

    node.cni("DEL", &ca, "net1", &master, &[("CNI_NETNS", &pa.path())]).expect_ok();
    node.cni("DEL", &cb, "net1", &slave, &[("CNI_NETNS", &pb.path())]).expect_ok();
    node.cni("DEL", &cc, "net1", &vhost, &[("CNI_NETNS", &pc.path())]).expect_ok();
    assert_vpp_clean(&sim, "after DEL of the repaired attachments");
    assert!(records(&node).is_empty(), "records removed");
}

#[test]
fn an_interface_detached_from_its_bridge_domain_is_reattached_in_place() {
    let Env { sim, node, _dir } = env();
    let pod = Netns::new("vrpd");
    let conf = memif_conf("net-vr2", "master", 8);
    node.cni("ADD", &cid(4), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    let idx = sim.memifs()[0].sw_if_index;
    rt().block_on(async {
        use userspace_cni_vpp::api::messages::{SwInterfaceSetL2Bridge, SwInterfaceSetL2BridgeReply};
        let mut c =
            userspace_cni_vpp::api::Client::connect(&sim.socket(), Duration::from_secs(3)).await.expect("connect");
        let req = SwInterfaceSetL2Bridge { rx_sw_if_index: idx, bd_id: 8, enable: false, ..Default::default() };
        c.call::<_, SwInterfaceSetL2BridgeReply>(req, "detach").await.expect("detach");
    });
    assert_eq!(sim.bridge_domains()[0].members.len(), 0);
    let (code, r) = gc_pass(&node, &[]);
    assert_eq!(code, Some(0), "{r:?}");
    let r = &r[&cid(4)];
    assert_eq!(outcome(r), "repaired", "{r}");
    assert!(actions(r).iter().any(|l| l.contains("re-attached")), "{r}");
    assert_eq!(sim.memifs()[0].sw_if_index, idx, "the interface was kept, not re-created");
    assert_eq!(sim.bridge_domains()[0].members, vec![idx]);
    node.cni("DEL", &cid(4), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
}

#[test]
fn repair_with_vpp_down_is_code_11_and_changes_nothing() {
    let Env { mut sim, node, _dir } = env();
    let pod = Netns::new("vrpe");
    let conf = memif_conf("net-vr3", "slave", 9);
    node.cni("ADD", &cid(5), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    let record = node.state_dir().join(format!("{}_net1.json", cid(5)));
    let rec_before = std::fs::read(&record).expect("record");
    sim.stop();
    let (code, r) = gc_pass(&node, &[]);
    assert_eq!(code, Some(1), "a failed repair is an error of the pass: {r:?}");
    let r = &r[&cid(5)];
    assert_eq!((outcome(r), r["code"].as_u64()), ("failed", Some(11)), "{r}");
    assert_eq!(std::fs::read(&record).expect("record"), rec_before, "the record is untouched");
    sim.start_again();
    let (code, r) = gc_pass(&node, &[]);
    assert_eq!(code, Some(0), "{r:?}");
    assert_eq!(outcome(&r[&cid(5)]), "repaired", "repaired once VPP is back: {r:?}");
    node.cni("DEL", &cid(5), "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
}

/// VPP hands a freed sw_if_index to the very next interface it creates. Pod A's memif is deleted
/// behind the plugin's back (an operator's `delete memif`), pod B's ADD then takes A's index,
/// and A's record still names it: CHECK, the reconciler's repair and DEL of A look A's interface
/// up by its tag, so none of them reports, changes or deletes B's interface at that index.
#[test]
fn a_freed_sw_if_index_taken_by_another_pod_is_never_acted_on_through_the_stale_record() {
    let Env { sim, node, _dir } = env();
    let (pa, pb) = (Netns::new("vrpf"), Netns::new("vrpg"));
    let conf = memif_conf("net-vr4", "master", 10);
    let (ca, cb) = (cid(6), cid(7));
    let ra = node.cni("ADD", &ca, "net1", &conf, &[("CNI_NETNS", &pa.path())]).expect_ok();
    let stale = sim.memifs()[0].sw_if_index;
    let a_tag = sim.interfaces()[0].tag.clone();
    rt().block_on(async {
        let mut c =
            userspace_cni_vpp::api::Client::connect(&sim.socket(), Duration::from_secs(3)).await.expect("connect");
        userspace_cni_vpp::ops::delete_memif(&mut c, stale).await.expect("the operator deletes A's memif");
        c.close().await;
    });
    node.cni("ADD", &cb, "net1", &conf, &[("CNI_NETNS", &pb.path())]).expect_ok();
    let b = sim.interfaces().into_iter().next().expect("B's interface");
    assert_eq!(b.sw_if_index, stale, "B's memif took A's freed index: {b:?}");
    assert_ne!(b.tag, a_tag, "and carries B's tag");
    let recorded = |cid: &str| {
        records(&node)
            .into_iter()
            .find(|(p, _)| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(cid)))
            .and_then(|(_, r)| r.outputs)
            .and_then(|o| o.values.get("memif").and_then(|v| v["sw_if_index"].as_u64()))
    };
    assert_eq!(recorded(&ca), Some(u64::from(stale)), "A's record still names the index B now has");
    // B as VPP holds it: interface, memif, socket filename and bridge domain membership.
    let b_picture = || {
        let st = sim.state();
        let i = st.interfaces.get(&stale).cloned();
        let m = st.memifs.get(&stale).cloned();
        let f = m.as_ref().and_then(|m| st.sockets.get(&m.socket_id).cloned());
        let bd = st.bds.get(&10).map(|b| b.members.contains(&stale));
        format!("{i:?} {m:?} {f:?} {bd:?}")
    };
    let before = b_picture();

    let mut check = conf.clone();
    check["prevResult"] = ra;
    let msg = node.cni("CHECK", &ca, "net1", &check, &[("CNI_NETNS", &pa.path())]).expect_err(5);
    assert!(msg.contains("missing"), "CHECK of A finds A's interface missing, not B's at the old index: {msg}");
    assert_eq!(b_picture(), before, "CHECK changed nothing");

    let (code, r) = gc_pass(&node, &[]);
    assert_eq!(code, Some(0), "{r:?}");
    assert_eq!(outcome(&r[&ca]), "repaired", "A is re-created: {r:?}");
    assert_eq!(outcome(&r[&cb]), "healthy", "B is left as it is: {r:?}");
    assert_eq!(b_picture(), before, "the repair of A did not touch B's interface at {stale}");
    let a_now = sim.interfaces().into_iter().find(|i| i.tag == a_tag).expect("A re-created with its tag");
    assert_ne!(a_now.sw_if_index, stale, "{a_now:?}");
    assert_eq!(recorded(&ca), Some(u64::from(a_now.sw_if_index)), "A's record names A's new index");
    assert!(a_now.admin_up && a_now.bd == Some(10), "{a_now:?}");

    node.cni("DEL", &ca, "net1", &conf, &[("CNI_NETNS", &pa.path())]).expect_ok();
    assert_eq!(b_picture(), before, "DEL of A did not touch B's interface at {stale}");
    assert!(sim.interfaces().iter().all(|i| i.tag != a_tag), "A's re-created memif is gone: {:?}", sim.interfaces());
    node.cni("DEL", &cb, "net1", &conf, &[("CNI_NETNS", &pb.path())]).expect_ok();
    assert_vpp_clean(&sim, "after both DELs");
}
