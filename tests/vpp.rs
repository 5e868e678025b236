//! The VPP backend through the shipped binary, as a runtime calls it, against the VPP simulator
//! (tests/vppsim: VPP's socket protocol and message table from the same .api.json files, VPP's
//! reply codes): memif in both roles with bridge domains, 50 pods, vhost-user, rollback at every
//! step, VPP restarts and outages, CRC mismatch, concurrent ADDs, GC by tag, abstract sockets.

mod support;

use support::{sandbox, socket_path};

use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Node;
use vppsim::{IfKind, Sim};

use support::{vpp_env as env, VppEnv as Env};

use support::vpp_memif_conf as memif_conf;

fn vhost_conf(name: &str, mode: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "userspace",
        "host": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": mode}},
        "container": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface"}
    })
}

fn with_ipam(node: &Node, mut c: Value) -> Value {
    c["ipam"] = json!({
        "type": "host-local",
        "dataDir": node.path("ipam").display().to_string(),
        "ranges": [[{"subnet": "10.20.0.0/24", "gateway": "10.20.0.1"}]]
    });
    c
}

/// Files the plugin left on the node (the IPAM delegate's own bookkeeping excepted).
fn assert_node_clean(node: &Node, why: &str) {
    let left: Vec<String> = node.leftovers().into_iter().filter(|p| !p.starts_with("ipam")).collect();
    assert!(left.is_empty(), "{why}: files left on the node: {left:?}");
}

/// Nothing of ours in VPP: no memif, vhost-user interface, socket filename or bridge domain.
fn assert_vpp_clean(sim: &Sim, why: &str) {
    assert!(sim.interfaces().is_empty(), "{why}: interfaces left: {:?}", sim.interfaces());
    assert!(sim.sockets().is_empty(), "{why}: memif sockets left: {:?}", sim.sockets());
    assert!(sim.bridge_domains().is_empty(), "{why}: bridge domains left: {:?}", sim.bridge_domains());
}

fn cid(i: usize) -> String {
    format!("{i:04x}aaaa{}", "0".repeat(56))
}

#[test]
fn memif_master_and_slave_join_a_bridge_domain_and_del_removes_everything() {
    let Env { sim, node, _dir } = env();
    let (ca, cb) = (cid(1), cid(2));
    let master = memif_conf("net-m", "master", 5);
    let slave = memif_conf("net-m", "slave", 5);
    let ra = node.cni("ADD", &ca, "net1", &master, &[]).expect_ok();
    node.cni("ADD", &cb, "net1", &slave, &[]).expect_ok();

    let sock_a = socket_path(&ra);
    assert_eq!(sock_a, node.shared_base().join(&ca[..12]).join(format!("memif-{}-net1.sock", &ca[..12])));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&sock_a).expect("VPP listens").file_type().is_socket());
    let memifs = sim.memifs();
    assert_eq!(memifs.len(), 2, "{memifs:?}");
    let roles: Vec<u32> = memifs.iter().map(|m| m.role).collect();
    assert_eq!(roles, vec![0, 1], "VPP master for pod A, slave for pod B");
    let sockets = sim.sockets();
    let paths: Vec<&String> = sockets.values().collect();
    assert!(paths.contains(&&sock_a.display().to_string()), "{sockets:?}");
    for i in sim.interfaces() {
        assert!(i.admin_up && i.tag.starts_with("uscni:") && i.bd == Some(5), "{i:?}");
    }
    let bd = &sim.bridge_domains()[0];
    assert_eq!((bd.bd_id, bd.members.len()), (5, 2));
    assert!(bd.tag.starts_with("uscni:"), "created by us: {bd:?}");
    let host_if = &ra["interfaces"][0]["name"];
    assert!(host_if.as_str().is_some_and(|n| n.starts_with("memif")), "host interface in the result: {ra}");

    let mut check = master.clone();
    check["prevResult"] = ra.clone();
    node.cni("CHECK", &ca, "net1", &check, &[]).expect_ok();

    node.cni("DEL", &ca, "net1", &master, &[]).expect_ok();
    assert_eq!(sim.bridge_domains()[0].members.len(), 1, "the domain stays while pod B uses it");
    node.cni("DEL", &cb, "net1", &slave, &[]).expect_ok();
    assert_vpp_clean(&sim, "after both DELs");
    assert_node_clean(&node, "after both DELs");
    node.cni("DEL", &ca, "net1", &master, &[]).expect_ok();
}

#[test]
fn a_bridge_domain_made_by_an_administrator_is_never_deleted() {
    let Env { sim, node, _dir } = env();
    rt().block_on(async {
        let mut c =
            userspace_cni_vpp::api::Client::connect(&sim.socket(), Duration::from_secs(3)).await.expect("connect");
        let bd =
            userspace_cni_vpp::api::messages::BridgeDomainAddDelV2 { bd_id: 9, is_add: true, ..Default::default() };
        c.call::<_, userspace_cni_vpp::api::messages::BridgeDomainAddDelV2Reply>(bd, "bd").await.expect("admin's bd");
    });
    let c = memif_conf("net-adm", "master", 9);
    node.cni("ADD", &cid(3), "net1", &c, &[]).expect_ok();
    node.cni("DEL", &cid(3), "net1", &c, &[]).expect_ok();
    let bds = sim.bridge_domains();
    assert_eq!(bds.len(), 1, "the administrator's domain survives our last DEL");
    assert!(bds[0].members.is_empty());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn fifty_memif_pods_on_one_node() {
    let Env { sim, node, _dir } = env();
    let c = memif_conf("net-50", "master", 50);
    let t0 = Instant::now();
    for i in 0..50 {
        node.cni("ADD", &cid(100 + i), "net1", &c, &[]).expect_ok();
    }
    let add = t0.elapsed();
    let memifs = sim.memifs();
    assert_eq!(memifs.len(), 50);
    let mut ids: Vec<u32> = memifs.iter().map(|m| m.socket_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50, "one socket id per pod, no limit (upstream panicked at 21)");
    assert_eq!(sim.bridge_domains()[0].members.len(), 50);
    let t1 = Instant::now();
    for i in 0..50 {
        node.cni("DEL", &cid(100 + i), "net1", &c, &[]).expect_ok();
    }
    let del = t1.elapsed();
    eprintln!("50 memif pods: ADD {:?} total ({:?}/pod), DEL {:?} total ({:?}/pod)", add, add / 50, del, del / 50);
    assert_vpp_clean(&sim, "after 50 DELs");
    assert_node_clean(&node, "after 50 DELs");
}

#[test]
fn vhost_user_server_and_client_add_del_with_ipam_addresses() {
    let Env { sim, node, _dir } = env();
    let server = with_ipam(&node, vhost_conf("net-vh", "server"));
    let r = node.cni("ADD", &cid(4), "net1", &server, &[]).expect_ok();
    let sock = socket_path(&r);
    assert_eq!(sock, node.shared_base().join(&cid(4)[..12]).join(format!("{}-net1", &cid(4)[..12])));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&sock).expect("VPP serves").file_type().is_socket());
    let v = sim.vhosts();
    assert_eq!((v.len(), v[0].is_server, v[0].sock_filename.clone()), (1, true, sock.display().to_string()));
    let ifs = sim.interfaces();
    assert_eq!(ifs[0].kind, IfKind::Vhost);
    assert_eq!(ifs[0].addresses.len(), 1, "the IPAM address is set on the interface: {:?}", ifs[0]);
    assert_eq!(&ifs[0].addresses[0].1[..4], &[10, 20, 0, 2]);
    assert_eq!(r["ips"][0]["address"], "10.20.0.2/24");

    let client = vhost_conf("net-vh", "client");
    node.cni("ADD", &cid(5), "net1", &client, &[]).expect_ok();
    assert!(!sim.vhosts()[1].is_server);
    node.cni("DEL", &cid(4), "net1", &server, &[]).expect_ok();
    node.cni("DEL", &cid(5), "net1", &client, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
    assert_node_clean(&node, "after DEL");
}

/// A failure injected before, during and after each step leaves VPP and the disk as they were.
#[test]
fn failure_at_each_step_restores_vpp_and_disk() {
    let Env { sim, node, _dir } = env();
    let memif = memif_conf("net-fail", "master", 6);
    let vhost = with_ipam(&node, vhost_conf("net-fail", "server"));
    let cases = [
        (&memif, vec!["shared-dir", "bridge-domain", "memif-socket", "memif", "bridge-attach", "save-state"]),
        (&vhost, vec!["shared-dir", "ipam", "vhost-user", "ip-address", "save-state"]),
    ];
    let ours = ["bridge-domain", "memif-socket", "memif", "bridge-attach", "vhost-user", "ip-address"];
    for (conf, steps) in cases {
        for step in steps {
            for phase in ["before", "during", "after"] {
                if phase == "during" && !ours.contains(&step) {
                    continue;
                }
                let fp = format!("add:{step}:{phase}:error");
                let msg = node.cni("ADD", &cid(7), "net1", conf, &[("USERSPACE_CNI_FAILPOINT", &fp)]).expect_err(5);
                assert!(msg.contains("injected"), "{fp}: {msg}");
                assert_vpp_clean(&sim, &fp);
                assert_node_clean(&node, &fp);
            }
        }
    }
}

#[test]
fn del_after_a_vpp_restart_succeeds_and_never_deletes_by_a_stale_index() {
    let Env { sim, node, _dir } = env();
    let c = memif_conf("net-rst", "master", 8);
    node.cni("ADD", &cid(10), "net1", &c, &[]).expect_ok();
    let old_index = sim.memifs()[0].sw_if_index;
    sim.restart();
    // Another pod now gets the same sw_if_index the first one had.
    node.cni("ADD", &cid(11), "net1", &c, &[]).expect_ok();
    assert_eq!(sim.memifs()[0].sw_if_index, old_index, "the index was reused");
    node.cni("DEL", &cid(10), "net1", &c, &[]).expect_ok();
    assert_eq!(sim.memifs().len(), 1, "pod 11's memif survives pod 10's DEL");
    node.cni("DEL", &cid(11), "net1", &c, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
    assert_node_clean(&node, "after DEL");
}

#[test]
fn vpp_gone_on_del_is_code_11_and_the_record_is_kept_for_the_retry() {
    let Env { mut sim, node, _dir } = env();
    let c = memif_conf("net-gone", "master", 12);
    node.cni("ADD", &cid(12), "net1", &c, &[]).expect_ok();
    sim.stop();
    let msg = node.cni("DEL", &cid(12), "net1", &c, &[]).expect_err(11);
    assert!(msg.contains("api.sock") || msg.contains("VPP"), "{msg}");
    assert!(node.state_dir().join(format!("{}_net1.json", cid(12))).exists(), "record kept");
    sim.start_again();
    node.cni("DEL", &cid(12), "net1", &c, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
    assert_node_clean(&node, "after DEL");
}

#[test]
fn vpp_down_or_stalled_before_add_is_code_11_and_leaves_nothing() {
    let Env { mut sim, mut node, _dir } = env();
    node.overrides.push(("USERSPACE_CNI_TIMEOUT_MS".into(), "800".into()));
    let c = memif_conf("net-down", "master", 13);
    sim.set_stall(true);
    let t0 = Instant::now();
    node.cni("ADD", &cid(13), "net1", &c, &[]).expect_err(11);
    assert!(t0.elapsed() < Duration::from_secs(5), "bounded by the timeout: {:?}", t0.elapsed());
    assert_node_clean(&node, "after ADD with VPP stalled");
    sim.set_stall(false);
    sim.stop();
    let msg = node.cni("ADD", &cid(13), "net1", &c, &[]).expect_err(11);
    assert!(msg.contains("not reachable"), "{msg}");
    assert_node_clean(&node, "after ADD with VPP down");
    node.cni("DEL", &cid(13), "net1", &c, &[]).expect_ok();
    let msg = node.cni("STATUS", "", "", &c, &[]).expect_err(50);
    assert!(msg.contains("not reachable"), "{msg}");
    sim.start_again();
    node.cni("STATUS", "", "", &c, &[]).expect_ok();
}

#[test]
fn a_vpp_of_another_release_is_code_105_naming_messages_and_version() {
    let Env { sim, node, _dir } = env();
    sim.set_crc("memif_create_v2", "0badc0de");
    sim.set_crc("bridge_domain_add_del_v2", "12345678");
    let c = memif_conf("net-crc", "master", 14);
    let msg = node.cni("ADD", &cid(14), "net1", &c, &[]).expect_err(105);
    for want in ["memif_create_v2", "0badc0de", "8c7de5f7", "bridge_domain_add_del_v2", "v26.06", "26.06-release"] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
    assert_vpp_clean(&sim, "after the refused ADD");
    assert_node_clean(&node, "after the refused ADD");
}

#[test]
fn concurrent_adds_get_distinct_socket_ids() {
    let Env { sim, node, _dir } = env();
    let node = Arc::new(node);
    let c = memif_conf("net-par", "master", 15);
    let n = 16;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (node, c) = (node.clone(), c.clone());
            std::thread::spawn(move || node.cni("ADD", &cid(200 + i), "net1", &c, &[]))
        })
        .collect();
    for h in handles {
        h.join().expect("ADD thread").expect_ok();
    }
    let memifs = sim.memifs();
    let sockets = sim.sockets();
    assert_eq!((memifs.len(), sockets.len()), (n, n), "{sockets:?}");
    for i in 0..n {
        let path =
            node.shared_base().join(&cid(200 + i)[..12]).join(format!("memif-{}-net1.sock", &cid(200 + i)[..12]));
        let id = sockets.iter().find(|(_, f)| Path::new(f) == path).map(|(id, _)| *id).expect("registered");
        assert_eq!(memifs.iter().filter(|m| m.socket_id == id).count(), 1, "one memif on socket {id}");
    }
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (node, c) = (node.clone(), c.clone());
            std::thread::spawn(move || node.cni("DEL", &cid(200 + i), "net1", &c, &[]))
        })
        .collect();
    for h in handles {
        h.join().expect("DEL thread").expect_ok();
    }
    assert_vpp_clean(&sim, "after concurrent DELs");
    assert_node_clean(&node, "after concurrent DELs");
}

#[test]
fn container_ids_sharing_12_chars_collide_with_101_and_del_matches_the_full_id() {
    let Env { sim, node, _dir } = env();
    let c = memif_conf("net-col", "master", 16);
    node.cni("ADD", "c0111de000001111", "net1", &c, &[]).expect_ok();
    let msg = node.cni("ADD", "c0111de000002222", "net1", &c, &[]).expect_err(101);
    assert!(msg.contains("socketfile"), "{msg}");
    node.cni("DEL", "c0111de000002222", "net1", &c, &[]).expect_ok();
    assert_eq!(sim.memifs().len(), 1, "the first pod's memif survives");
    node.cni("DEL", "c0111de000001111", "net1", &c, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
}

#[test]
fn gc_removes_tagged_interfaces_of_lost_attachments_only() {
    let Env { sim, node, _dir } = env();
    let c = memif_conf("net-gc", "master", 17);
    for i in 0..3 {
        node.cni("ADD", &cid(300 + i), "net1", &c, &[]).expect_ok();
    }
    // Records of pods 1 and 2 lost (e.g. a wiped state dir): only VPP's tags know them.
    for i in 1..3 {
        std::fs::remove_file(node.state_dir().join(format!("{}_net1.json", cid(300 + i)))).expect("remove record");
    }
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": cid(300), "ifname": "net1"}, {"containerID": cid(301), "ifname": "net1"}]);
    node.cni("GC", "", "", &gc, &[]).expect_ok();
    assert_eq!(sim.memifs().len(), 2, "pod 302 (not valid, no record) is collected; 301 is valid and kept");
    let other = memif_conf("net-other", "master", 17);
    node.cni("GC", "", "", &other, &[]).expect_ok();
    assert_eq!(sim.memifs().len(), 2, "another network's GC touches nothing of net-gc");
    node.cni("DEL", &cid(300), "net1", &c, &[]).expect_ok();
    gc["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", "", "", &gc, &[]).expect_ok();
    assert!(sim.memifs().is_empty() && sim.sockets().is_empty(), "{:?}", sim.memifs());
}

#[test]
fn an_abstract_memif_socket_lives_in_the_pods_netns_and_needs_no_shared_dir() {
    let Env { sim, node, _dir } = env();
    let mut c = memif_conf("net-abs", "master", 18);
    c["host"]["memif"]["abstract"] = json!(true);
    let r = node.cni("ADD", &cid(18), "net1", &c, &[]).expect_ok();
    let name = format!("memif-{}-net1.sock", &cid(18)[..12]);
    assert_eq!(sandbox(&r)["socketPath"], format!("@{name}"));
    let sockets = sim.sockets();
    let f = sockets.values().next().expect("registered");
    assert_eq!(f, &format!("abstract:{name},netns_name={}", support::this_netns()));
    assert!(!node.shared_base().join(&cid(18)[..12]).exists(), "no shared dir for an abstract socket");
    node.cni("DEL", &cid(18), "net1", &c, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
    assert_node_clean(&node, "after DEL");
}

#[test]
fn an_already_registered_socket_filename_is_reused_not_registered_twice() {
    let Env { sim, node, _dir } = env();
    let c = memif_conf("net-reuse", "master", 19);
    let id = cid(19);
    let dir = node.shared_base().join(&id[..12]);
    std::fs::create_dir_all(&dir).expect("shared dir");
    let path = dir.join(format!("memif-{}-net1.sock", &id[..12])).display().to_string();
    // Left registered by an earlier, interrupted attempt (VPP would accept a second id for it).
    let first = rt().block_on(async {
        let mut c =
            userspace_cni_vpp::api::Client::connect(&sim.socket(), Duration::from_secs(3)).await.expect("connect");
        userspace_cni_vpp::ops::add_socket(&mut c, &path).await.expect("register")
    });
    node.cni("ADD", &id, "net1", &c, &[]).expect_ok();
    assert_eq!(sim.sockets().into_iter().collect::<Vec<_>>(), vec![(first, path)], "the existing id is reused");
    assert_eq!(sim.memifs()[0].socket_id, first);
    node.cni("DEL", &id, "net1", &c, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
    assert_node_clean(&node, "after DEL");
}

/// VPP keeps a socket filename registered after its last memif goes. When ADD replaces a
/// leftover memif of ours that sits on another filename (the record was lost and the attachment
/// is added again with another socketfile), that filename's registration goes too: nothing else
/// would ever remove it (DEL looks only at the plan's filename). Seen on a real VPP v26.06.
#[test]
fn replacing_a_leftover_memif_of_ours_unregisters_the_socket_filename_it_was_on() {
    let Env { sim, node, _dir } = env();
    let id = cid(20);
    let with_file = |f: &str| {
        let mut c = memif_conf("net-leak", "master", 20);
        c["host"]["memif"]["socketfile"] = json!(f);
        c
    };
    let (old, new) = (with_file("old.sock"), with_file("new.sock"));
    node.cni("ADD", &id, "net1", &old, &[]).expect_ok();
    let old_memif = sim.memifs()[0].clone();
    std::fs::remove_file(node.state_dir().join(format!("{id}_net1.json"))).expect("the record is lost");
    node.cni("ADD", &id, "net1", &new, &[]).expect_ok();
    let sockets = sim.sockets();
    let files: Vec<String> = sockets.values().map(|f| f.rsplit('/').next().unwrap_or_default().to_owned()).collect();
    assert_eq!(files, vec!["new.sock".to_string()], "only the new filename stays registered: {sockets:?}");
    let memifs = sim.memifs();
    assert_eq!(memifs.len(), 1, "the leftover was replaced, not duplicated: {memifs:?}");
    assert!(sockets.contains_key(&memifs[0].socket_id), "the new memif is on the new filename: {memifs:?}");
    assert!(!sockets.contains_key(&old_memif.socket_id), "old socket id {} unregistered", old_memif.socket_id);
    node.cni("DEL", &id, "net1", &new, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
}

/// VPP v26.06 refuses an IPv4 address that overlaps one on another interface of the same FIB
/// table with -105 ADDRESS_IN_USE: a second `netType: interface` pod from the same IPAM subnet
/// fails with that name and what to do, and its ADD is rolled back.
#[test]
fn a_second_interface_in_the_same_subnet_is_address_in_use_and_rolled_back() {
    let Env { sim, node, _dir } = env();
    let conf = with_ipam(&node, vhost_conf("net-ovl", "server"));
    node.cni("ADD", &cid(21), "net1", &conf, &[]).expect_ok();
    let before = format!("{:?} {:?}", sim.interfaces(), sim.vhosts());
    let msg = node.cni("ADD", &cid(22), "net1", &conf, &[]).expect_err(5);
    for want in ["-105", "ADDRESS_IN_USE", "10.20.0.3/24", "overlapping subnets", "IPAM range"] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
    assert_eq!(format!("{:?} {:?}", sim.interfaces(), sim.vhosts()), before, "the second pod left nothing in VPP");
    node.cni("DEL", &cid(22), "net1", &conf, &[]).expect_ok();
    node.cni("DEL", &cid(21), "net1", &conf, &[]).expect_ok();
    assert_vpp_clean(&sim, "after DEL");
    assert_node_clean(&node, "after DEL");
}
