//! A power loss, simulated on a private OVS-DPDK with host-local and a DRA attachment: records
//! are not fsynced on the hot path (issue 15), so after the "reboot" one record is gone, one is
//! torn, one is back at its in-progress version, OVSDB is back at an older copy (it syncs no
//! commit of ours either), every pod netns is gone, and the boot id changed. One reconciler pass
//! (`userspace gc`) must then leave nothing of ours (ports, our bridge, records, the host-local
//! lease), everything of the administrator's, and the DRA attachment, which kubelet prepares
//! again after a reboot.
//!
//! Known limit, asserted as such: the per-pod shared dir of an attachment whose record was lost
//! stays, with its `configData-*.json` publication file (nothing in the dataplane names it).
#![cfg(feature = "kubernetes")]

mod reliability;
mod support;

use reliability::{cli, leases, ovs_objects, with_host_local};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{ovs_conf, Netns, Node};
use testlab::Lab;
use userspace_cni::dra::prepare::{ClaimSource, PipelineDriver};
use userspace_cni::dra::{ClaimDriver, ClaimRef};
use userspace_cni::pipeline::Registry;

const NETWORK: &str = "pl-net";
const BRIDGE: &str = "br-pl";
const DRA_BRIDGE: &str = "br-pl-dra";
const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";

struct OneClaim(k8s_openapi::api::resource::v1::ResourceClaim);

#[userspace_cni_api::async_trait]
impl ClaimSource for OneClaim {
    async fn get(&self, _c: &ClaimRef, _d: Instant) -> Result<k8s_openapi::api::resource::v1::ResourceClaim, String> {
        Ok(self.0.clone())
    }
}

fn record_path(node: &Node, cid: &str) -> std::path::PathBuf {
    node.state_dir().join(format!("{cid}_net1.json"))
}

fn gc(node: &Node, boot: &str) -> Value {
    let run = cli(node, &["gc", "--json", "--grace=0s"], &[("USERSPACE_CNI_BOOT_ID", boot)]);
    assert_eq!(run.code, Some(0), "gc: {run:?}");
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("gc --json ({e}): {}", run.stdout))
}

#[test]
fn after_a_power_loss_one_reconciler_pass_leaves_nothing_of_ours_and_everything_else() {
    let mut lab = Lab::start("power-loss").expect("own lab: this test rolls OVSDB back");
    let mut node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    node.overrides.push(("USERSPACE_CNI_BOOT_ID".into(), "boot-before".into()));

    // The administrator's: a bridge with a port, never ours to touch.
    lab.add_netdev_bridge("br-admin").expect("admin bridge");
    lab.add_vhostuserclient_port("br-admin", "admin-p", &node.path("admin.sock")).expect("admin port");

    // Five pods on our network, the first with host-local IPAM (its lease survives a reboot).
    let conf = ovs_conf(NETWORK, BRIDGE, "client");
    let ipam_conf = with_host_local(&node, conf.clone(), "10.77.0.0/24");
    let pods: Vec<Netns> = (0..5).map(|i| Netns::new(&format!("pl{i}"))).collect();
    let cids: Vec<String> = (0..5).map(|i| format!("{i:x}{}", "c".repeat(63))).collect();
    let add = |i: usize, c: &Value| {
        let run = node.cni("ADD", &cids[i], "net1", c, &[("CNI_NETNS", pods[i].path().as_str())]);
        assert!(run.ok(), "ADD {i}: {run:?}");
    };
    add(0, &ipam_conf);
    for i in 1..4 {
        add(i, &conf);
    }
    // A DRA attachment on the same node (kubelet prepares it again after a reboot).
    let mut env: HashMap<String, String> = node.settings_env().into_iter().collect();
    env.insert("USERSPACE_CNI_DRA_SOCKET_ROOT".into(), node.path("dra").display().to_string());
    env.insert("USERSPACE_CNI_DRA_METADATA_DIR".into(), node.path("meta").display().to_string());
    env.insert("USERSPACE_CNI_CDI_DIR".into(), node.path("cdi").display().to_string());
    env.insert("USERSPACE_CNI_DRA_BRIDGES".into(), DRA_BRIDGE.into());
    let settings =
        userspace_cni::settings::load_from(userspace_cni::pipeline::Registry::linked().registrations(), |k| {
            env.get(k).cloned()
        })
        .expect("settings");
    let uid = "5d0c2a4e-1f7b-4c59-9a83-0e6f3c2d1b7a";
    let claim = serde_json::from_value(json!({
        "metadata": {"namespace": "vms", "name": "vm-pl", "uid": uid,
                     "annotations": {"resource.kubernetes.io/pod-claim-name": "nic"}},
        "spec": {"devices": {}},
        "status": {"allocation": {"devices": {"results": [
                       {"request": "vhost", "driver": DRIVER, "pool": "node-a", "device": DRA_BRIDGE}]}},
                   "reservedFor": [{"resource": "pods", "name": "virt-launcher-vm-pl",
                                    "uid": "9b1e7c3a-2d4f-4e6a-8c0b-1a2b3c4d5e6f"}]}
    }))
    .expect("claim");
    let driver = PipelineDriver { settings, registry: Arc::new(Registry::linked()), claims: Arc::new(OneClaim(claim)) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let claim_ref = ClaimRef { namespace: "vms".into(), name: "vm-pl".into(), uid: uid.into() };
    rt.block_on(driver.prepare(&claim_ref, Instant::now() + Duration::from_secs(20))).expect("prepare");
    let dra_ports = lab.ports(DRA_BRIDGE).expect("dra ports");
    assert_eq!(dra_ports.len(), 1);

    // OVSDB as it was before the last ADD: a copy of its file, restored after the "reboot".
    let snapshot = node.path("conf.db.before");
    std::fs::copy(lab.dir().join("conf.db"), &snapshot).expect("snapshot OVSDB");
    add(4, &conf);
    assert_eq!(leases(&node, NETWORK).len(), 1, "host-local leased an address");

    // The power loss.
    // Pod 1's record never reached the disk; pod 2's is torn; pod 3's is its in-progress version.
    std::fs::remove_file(record_path(&node, &cids[1])).expect("lose a record");
    let torn = std::fs::read(record_path(&node, &cids[2])).expect("record");
    std::fs::write(record_path(&node, &cids[2]), &torn[..torn.len() / 2]).expect("tear a record");
    let mut rec: Value =
        serde_json::from_slice(&std::fs::read(record_path(&node, &cids[3])).expect("record")).expect("record JSON");
    rec["complete"] = json!(false);
    rec.as_object_mut().expect("object").remove("outputs");
    std::fs::write(record_path(&node, &cids[3]), serde_json::to_vec(&rec).expect("json")).expect("roll back");
    // OVSDB comes back without pod 4's port (its record is complete).
    lab.stop_ovsdb().expect("stop ovsdb");
    std::fs::copy(&snapshot, lab.dir().join("conf.db")).expect("roll OVSDB back");
    lab.start_ovsdb().expect("start ovsdb");
    // Every pod sandbox went with the old boot.
    drop(pods);

    let report = gc(&node, "boot-after");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(ovs_objects(&lab, NETWORK), Vec::<String>::new(), "ports and bridge of ours: {report}");
    assert_eq!(leases(&node, NETWORK), Vec::<String>::new(), "the lease of pod 0 was released: {report}");
    for cid in &cids {
        assert!(!record_path(&node, cid).exists(), "record of {cid} left");
    }
    // The administrator's objects and the DRA attachment stay.
    assert!(lab.bridges().expect("bridges").contains(&"br-admin".to_string()));
    assert_eq!(lab.ports("br-admin").expect("admin ports"), vec!["admin-p".to_string()]);
    assert_eq!(lab.ports(DRA_BRIDGE).expect("dra ports"), dra_ports, "the DRA attachment is kept: {report}");
    assert!(node.state_dir().join(format!("{uid}_vhost.json")).exists(), "the DRA record is kept");
    // A second pass finds nothing more to do.
    let again = gc(&node, "boot-after");
    assert_eq!(
        again["untracked"].as_array().map(|a| a.iter().filter(|u| u["action"] == "removed").count()).unwrap_or(0),
        0
    );

    // The known limit: the shared dirs of the two attachments whose record was lost stay, with
    // their config-data file.
    let shared: Vec<String> = std::fs::read_dir(node.shared_base())
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    for dir in &shared {
        assert!(
            [&cids[1], &cids[2]].iter().any(|c| dir.contains(&c[..12])),
            "only a lost record's shared dir may stay, found {dir}"
        );
        let inside: Vec<String> = std::fs::read_dir(node.shared_base().join(dir))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        assert!(
            inside.iter().all(|f| f.starts_with("configData-") && f.ends_with("-net1.json")),
            "{dir} holds only the config-data file: {inside:?}"
        );
    }

    rt.block_on(driver.unprepare(&claim_ref, Instant::now() + Duration::from_secs(20))).expect("unprepare");
    assert!(lab.ports(DRA_BRIDGE).unwrap_or_default().is_empty());
}
