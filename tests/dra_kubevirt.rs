//! KubeVirt with DRA end to end on one machine: the shipped binary as `userspace dra-plugin`
//! (its own process, with the DRA account's token bound to its pod on node-a) against a real
//! kube-apiserver (envtest, with the shipped RBAC and admission policies and DeviceClass; each VM's
//! ResourceClaimTemplate and the claim made from it live there), a private OVS-DPDK, a
//! fake kubelet written from the protos (registration, batched Prepare/Unprepare with kubelet's
//! checks, and the runtime's half: CDI ids resolved from the spec dir, mounts applied in a private
//! mount namespace), and testpmd as the VM's QEMU on the socket path the metadata gives, as the
//! container sees it.
//!
//! What the proof of concept got wrong, each shown fixed here: its state lived in memory, so after
//! a restart Unprepare was a silent no-op (ports, dirs and CDI specs leaked); the first failure
//! aborted a whole batch; nothing cleaned up at start. Also: a SIGKILL between Prepare's steps, a
//! simulated reboot, the start-up sweep and `userspace gc` removing only claims that are gone.
//! Skipped, with a message, where envtest is absent.
#![cfg(feature = "kubernetes")]

#[path = "support/fake_kubelet.rs"]
mod fake_kubelet;
mod support;

use fake_kubelet::{container_command, resolve_cdi, FakeKubelet, Mount};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::dra_plugin::{self, Plugin};
use support::envtest::Envtest;
use support::{Node, PLUGIN_BIN};
use testlab::{Lab, Testpmd, VhostPort};
use userspace_cni::dra::proto::dra_v1::Device;
use userspace_cni::dra::ClaimRef;
use userspace_cni::plan::dra_metadata::{Attribute, DeviceMetadata};
use userspace_cni::rbac::{Identity, NAMESPACE};

const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
const NODE: &str = "node-a";
const NS: &str = "vms";
const REGISTER_WAIT: Duration = Duration::from_secs(30);

/// kubelet's view of a batch's answer: each claim's result by UID.
type Answers<T> = std::collections::BTreeMap<String, Result<T, String>>;

/// The node, the DRA plugin's pod (its token is bound to it), the reconciler's pod, the VMs'
/// namespace. The VMs' launcher pods and claims are made per test.
const OBJECTS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: vms}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: vms}
---
apiVersion: v1
kind: Pod
metadata: {name: dra-a, namespace: userspace-cni}
spec: {nodeName: node-a, serviceAccountName: userspace-cni-dra, containers: [{name: c, image: dra}]}
---
apiVersion: v1
kind: Pod
metadata: {name: agent-a, namespace: userspace-cni}
spec: {nodeName: node-a, serviceAccountName: userspace-cni, containers: [{name: c, image: agent}]}
"#;

struct World {
    /// This test's bridge: the lab is shared by the tests of this file, which run in parallel.
    bridge: &'static str,
    env: Envtest,
    lab: std::sync::Arc<Lab>,
    node: Node,
    plugin_env: Vec<(String, String)>,
    rt: tokio::runtime::Runtime,
}

impl World {
    fn start(test: &str, bridge: &'static str) -> Option<World> {
        let env = Envtest::start(test)?;
        env.apply_shipped_rbac();
        env.apply(OBJECTS);
        // The shipped DeviceClass, as an administrator installs it.
        let class =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kubernetes/examples/kubevirt-dra/deviceclass.yaml");
        env.apply(&std::fs::read_to_string(&class).expect("the shipped DeviceClass"));
        let lab = Lab::shared("dra-kubevirt").expect("lab");
        let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
        let token = env.token(NAMESPACE, Identity::DraPlugin.service_account(), Some(("Pod", "dra-a")));
        let kubeconfig = env.kubeconfig_for("dra", &token);
        let plugin_env = dra_plugin::settings_env(&node, &format!("{bridge}=1500"), &kubeconfig, NODE);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Some(World { bridge, env, lab, node, plugin_env, rt })
    }

    fn plugin(&self, failpoint: Option<&str>, log: &str) -> Plugin {
        let mut env = self.plugin_env.clone();
        if let Some(f) = failpoint {
            env.push(("USERSPACE_CNI_FAILPOINT".into(), f.into()));
        }
        Plugin::start(&self.node, &env, log)
    }

    fn kubelet(&self, plugin: &Plugin) -> FakeKubelet {
        self.rt
            .block_on(FakeKubelet::register(&self.node.path("kubelet/plugins_registry"), REGISTER_WAIT))
            .unwrap_or_else(|e| panic!("registration: {e}\nplugin log:\n{}", plugin.log()))
    }

    /// NodePrepareResources, which must not fail as a whole; if it does, the plugin's state and log.
    fn prepare(&self, kubelet: &mut FakeKubelet, plugin: &Plugin, claims: &[ClaimRef]) -> Answers<Vec<Device>> {
        self.rt
            .block_on(kubelet.try_prepare(claims))
            .unwrap_or_else(|status| panic!("NodePrepareResources failed as a whole: {status}\n{}", plugin.report()))
    }

    /// `claim` prepared by a plugin that is then SIGKILLed (dropped); the claim must prepare.
    fn prepare_then_kill(&self, claim: &ClaimRef, log: &str) {
        let plugin = self.plugin(None, log);
        let mut kubelet = self.kubelet(&plugin);
        let answers = self.prepare(&mut kubelet, &plugin, std::slice::from_ref(claim));
        answers[&claim.uid].as_ref().unwrap_or_else(|e| panic!("prepare {}: {e}\n{}", claim.name, plugin.log()));
    }

    /// NodeUnprepareResources, which must not fail as a whole.
    fn unprepare(&self, kubelet: &mut FakeKubelet, plugin: &Plugin, claims: &[ClaimRef]) -> Answers<()> {
        self.rt
            .block_on(kubelet.try_unprepare(claims))
            .unwrap_or_else(|status| panic!("NodeUnprepareResources failed as a whole: {status}\n{}", plugin.report()))
    }

    /// A VM: its ResourceClaimTemplate (as the VMI's `spec.resourceClaims` names it), its
    /// launcher pod on node-a, and the claim the resourceclaim controller makes from the template
    /// (its spec, owned by the pod, annotated with the pod's claim name), allocated on our bridge
    /// by the scheduler and reserved for the pod (both status writes as the control plane makes
    /// them). Everything lives in the API server; only the controllers' writes are ours.
    fn vm(&self, name: &str, vlan: Option<u16>) -> ClaimRef {
        self.vm_on(name, vlan, self.bridge)
    }

    /// [`World::vm`] allocated on `device` of this node's pool.
    fn vm_on(&self, name: &str, vlan: Option<u16>, device: &str) -> ClaimRef {
        self.env.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: virt-launcher-{name}, namespace: {NS}}}\n\
             spec: {{nodeName: {NODE}, containers: [{{name: compute, image: virt-launcher}}]}}\n"
        ));
        let pod_uid = self.env.get(&["pod", "-n", NS, &format!("virt-launcher-{name}")])["metadata"]["uid"]
            .as_str()
            .expect("pod uid")
            .to_owned();
        let template = json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": format!("{name}-vhostuser"), "namespace": NS},
            "spec": {"spec": {"devices": {
                "requests": [{"name": "vhost", "exactly": {"deviceClassName": "ovsdpdk", "selectors": [{"cel": {
                    "expression": format!("device.attributes[\"{DRIVER}\"].bridgeName == \"{device}\"")}}]}}],
                "config": vlan.map(|v| json!([{"requests": ["vhost"], "opaque": {"driver": DRIVER, "parameters":
                    {"apiVersion": "ovsdpdk.k8snetworkplumbingwg.io/v1alpha1", "kind": "OvsPortConfig", "vlan": v}}}]))
                    .unwrap_or(json!([]))
            }}}
        });
        self.env.apply(&template.to_string());
        // The resourceclaim controller's claim: the template's spec as the server stored it.
        let stored = self.env.get(&["resourceclaimtemplate", "-n", NS, &format!("{name}-vhostuser")]);
        let claim = json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": format!("{name}-nic-x7k2p"), "namespace": NS,
                         "annotations": {"resource.kubernetes.io/pod-claim-name": "nic"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": format!("virt-launcher-{name}"),
                                              "uid": pod_uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": stored["spec"]["spec"].clone(),
        });
        self.env.apply(&claim.to_string());
        let got = self.env.get(&["resourceclaim", "-n", NS, &format!("{name}-nic-x7k2p")]);
        let uid = got["metadata"]["uid"].as_str().expect("claim uid").to_owned();
        let config: Vec<Value> = got["spec"]["devices"]["config"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                c["source"] = json!("FromClaim");
                c
            })
            .collect();
        let status = json!({"status": {
            "allocation": {"devices": {
                "results": [{"request": "vhost", "driver": DRIVER, "pool": NODE, "device": device}],
                "config": config}},
            "reservedFor": [{"resource": "pods", "name": format!("virt-launcher-{name}"), "uid": pod_uid}]
        }});
        self.env.kubectl_ok(
            &[
                "patch",
                "resourceclaim",
                "-n",
                NS,
                &format!("{name}-nic-x7k2p"),
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        );
        ClaimRef { namespace: NS.into(), name: format!("{name}-nic-x7k2p"), uid }
    }

    /// One pass of the node reconciler (`userspace gc`) with the node agent's identity.
    fn gc(&self) -> support::Run {
        let token = self.env.token(NAMESPACE, Identity::Reconciler.service_account(), Some(("Pod", "agent-a")));
        static PASSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kubeconfig = self.env.kubeconfig_for(&format!("reconciler-{n}"), &token);
        self.gc_as(&kubeconfig)
    }

    /// One pass of `userspace gc` with the API access of `kubeconfig`; it must end with 0.
    fn gc_as(&self, kubeconfig: &Path) -> support::Run {
        let gc = self
            .node
            .exec_bounded(
                PLUGIN_BIN,
                &["gc", "--json", "--grace=0s", "--kubeconfig", &kubeconfig.display().to_string()],
                &self.plugin_env,
                b"",
                Duration::from_secs(60),
            )
            .expect("gc ends");
        assert_eq!(gc.code, Some(0), "gc: {gc:?}");
        gc
    }

    fn delete_claim(&self, c: &ClaimRef) {
        self.env.kubectl_ok(&["delete", "resourceclaim", "-n", NS, &c.name, "--wait=false"], None);
    }

    fn socket_dir(&self, pod: &str) -> PathBuf {
        let pod_uid = self.env.get(&["pod", "-n", NS, pod])["metadata"]["uid"].as_str().expect("uid").to_owned();
        self.node.path("dra").join(format!("{pod_uid}_nic_vhost"))
    }

    fn ports_of(&self, uid: &str) -> Vec<String> {
        support::ports_tagged_with(&self.lab, self.bridge, uid)
    }

    /// Everything of a claim on the node: its ports, records, CDI specs, metadata, socket dir.
    fn traces_of(&self, c: &ClaimRef) -> Vec<String> {
        let mut out: Vec<String> = self.ports_of(&c.uid).into_iter().map(|p| format!("port {p}")).collect();
        for dir in ["state", "cdi", "meta"] {
            for e in support::entries(&self.node.path(dir)) {
                if e.contains(&c.uid) {
                    out.push(format!("{dir}/{e}"));
                }
            }
        }
        out
    }

    /// The node holds nothing of ours: no port on the bridge, no socket dir, spec, metadata or record.
    fn nothing_left(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.lab.ports(self.bridge).unwrap_or_default().into_iter().map(|p| format!("port {p}")).collect();
        out.extend(support::dra_files(&self.node));
        out
    }
}

/// The socket path the metadata gives the VM (the container's view) and the mounts of the
/// claim's CDI devices, as the runtime and KubeVirt's binding see them.
fn as_the_runtime_sees_it(cdi_dir: &Path, ids: &[String]) -> (String, Vec<Mount>) {
    let mounts = resolve_cdi(cdi_dir, ids).expect("resolve CDI ids");
    let meta = mounts
        .iter()
        .find(|m| m.container_path.ends_with(format!("{DRIVER}-metadata.json")))
        .unwrap_or_else(|| panic!("no metadata mount in {mounts:?}"));
    assert_eq!(
        meta.container_path,
        Path::new(&format!(
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/nic/vhost/{DRIVER}-metadata.json"
        ))
    );
    let doc =
        DeviceMetadata::from_stream(&std::fs::read(&meta.host_path).expect("metadata")).expect("metadata decodes");
    let attrs = &doc.requests[0].devices[0].attributes;
    assert_eq!(attrs["mtu"], Attribute::Int(1500), "the binding refuses a device without an int mtu");
    let Attribute::String(path) = &attrs["vhost-user-path"] else {
        panic!("vhost-user-path is not a string: {attrs:?}")
    };
    (path.clone(), mounts)
}

#[test]
fn a_vmi_shaped_flow_runs_end_to_end_and_one_bad_claim_never_fails_the_batch() {
    let test = "a_vmi_shaped_flow_runs_end_to_end_and_one_bad_claim_never_fails_the_batch";
    let Some(w) = World::start(test, "br-kv1") else { return };
    let plugin = w.plugin(None, "plugin-1.log");
    let mut kubelet = w.kubelet(&plugin);
    assert_eq!(kubelet.driver, DRIVER);

    // The node's slice: one device per bridge, owned by the Node.
    let slices = w.env.get(&["resourceslices", "--field-selector", &format!("spec.nodeName={NODE}")]);
    let slice = slices["items"].as_array().and_then(|a| a.first()).cloned().expect("the node's slice");
    assert_eq!(slice["spec"]["driver"], DRIVER);
    assert_eq!(slice["spec"]["devices"][0]["name"], w.bridge);
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Node");

    let a = w.vm("vm1", Some(100));
    let b = w.vm("vm2", Some(100));
    // Allocated on a bridge this node does not offer: its own error, the others prepared.
    let bad = w.vm_on("vm3", None, "br-elsewhere");
    let answers = w.prepare(&mut kubelet, &plugin, &[a.clone(), bad.clone(), b.clone()]);
    let err = answers[&bad.uid].as_ref().expect_err("the bad claim fails");
    assert!(err.contains("br-elsewhere"), "{err}");
    let da = answers[&a.uid].as_ref().unwrap_or_else(|e| panic!("claim a: {e}\n{}", plugin.log()));
    let db = answers[&b.uid].as_ref().unwrap_or_else(|e| panic!("claim b: {e}"));
    assert_eq!((da[0].pool_name.as_str(), da[0].device_name.as_str()), (NODE, w.bridge));
    assert_eq!(da[0].request_names, vec!["vhost".to_string()]);
    assert!(w.traces_of(&bad).is_empty(), "the bad claim left {:?}", w.traces_of(&bad));

    // The VM's QEMU: testpmd in vm1's container, on the path the metadata names; vm2's sends.
    let cdi = w.node.path("cdi");
    let (path_a, mounts_a) = as_the_runtime_sees_it(&cdi, &da[0].cdi_device_ids);
    let (_, _) = as_the_runtime_sees_it(&cdi, &db[0].cdi_device_ids);
    assert_eq!(path_a, "/var/run/ovsdpdk/nic/vhost/vhost.sock");
    let in_vm1 = |argv: &[String]| {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        container_command(&mounts_a, &argv[0], &args).expect("container command")
    };
    let (sent, received) = Testpmd::send_packets_wrapped(
        &VhostPort::Client(w.socket_dir("virt-launcher-vm2").join("vhost.sock")),
        &VhostPort::Client(PathBuf::from(&path_a)),
        32,
        Duration::from_secs(60),
        &in_vm1,
    )
    .expect("testpmd");
    assert_eq!((sent, received), (32, 32), "packets between the two VMs' ports");

    let answers = w.unprepare(&mut kubelet, &plugin, &[a.clone(), b.clone(), bad.clone()]);
    for (uid, r) in &answers {
        r.as_ref().unwrap_or_else(|e| panic!("unprepare {uid}: {e}"));
    }
    assert_eq!(w.nothing_left(), Vec::<String>::new(), "plugin log:\n{}", plugin.log());
}

#[test]
fn kills_restarts_a_reboot_and_the_clean_up_passes_leave_nothing_and_never_touch_a_live_claim() {
    let test = "kills_restarts_a_reboot_and_the_clean_up_passes_leave_nothing_and_never_touch_a_live_claim";
    let Some(w) = World::start(test, "br-kv2") else { return };
    let a = w.vm("vm1", None);
    let b = w.vm("vm2", None);

    // SIGKILL between Prepare's steps (the port exists, the CDI specs do not).
    let mut plugin = w.plugin(Some("add:cdi-spec:before:kill"), "plugin-1.log");
    let mut kubelet = w.kubelet(&plugin);
    assert!(w.rt.block_on(kubelet.try_prepare(std::slice::from_ref(&a))).is_err(), "the plugin died under the call");
    plugin.wait_exit(Duration::from_secs(10));
    assert_eq!(w.ports_of(&a.uid).len(), 1, "killed after the port was made");

    // Restarted: kubelet prepares again; the interrupted attempt is undone and done again.
    let plugin = w.plugin(None, "plugin-2.log");
    let mut kubelet = w.kubelet(&plugin);
    let first = w.prepare(&mut kubelet, &plugin, &[a.clone(), b.clone()]);
    let first_a = first[&a.uid].clone().unwrap_or_else(|e| panic!("{e}\n{}", plugin.log()));
    assert!(first[&b.uid].is_ok());
    assert_eq!(w.ports_of(&a.uid).len(), 1, "one port, not two");

    // SIGKILL between Prepare and Unprepare, restart, Unprepare: the PoC forgot; we do not.
    drop(plugin);
    let mut plugin = w.plugin(None, "plugin-3.log");
    let mut kubelet = w.kubelet(&plugin);
    let un = w.unprepare(&mut kubelet, &plugin, std::slice::from_ref(&a));
    un[&a.uid].as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert!(w.traces_of(&a).is_empty(), "after a restart Unprepare left {:?}", w.traces_of(&a));
    assert_eq!(w.ports_of(&b.uid).len(), 1, "the live claim b is untouched");

    // A reboot: /var/run is gone (CDI specs, socket dirs, metadata), the records stay; kubelet
    // prepares again after the plugin registers, and gets the same devices.
    let again = w.prepare(&mut kubelet, &plugin, std::slice::from_ref(&a));
    assert_eq!(again[&a.uid].as_ref().expect("prepare a again"), &first_a);
    assert_eq!(plugin.stop().code(), Some(0), "SIGTERM ends the plugin cleanly:\n{}", plugin.log());
    for dir in ["cdi", "dra", "meta"] {
        std::fs::remove_dir_all(w.node.path(dir)).expect("wipe");
    }
    let plugin = w.plugin(None, "plugin-4.log");
    let mut kubelet = w.kubelet(&plugin);
    let after = w.prepare(&mut kubelet, &plugin, &[a.clone(), b.clone()]);
    assert_eq!(after[&a.uid].as_ref().unwrap_or_else(|e| panic!("{e}\n{}", plugin.log())), &first_a);
    let (path, _) = as_the_runtime_sees_it(&w.node.path("cdi"), &first_a[0].cdi_device_ids);
    assert_eq!(path, "/var/run/ovsdpdk/nic/vhost/vhost.sock");
    assert!(w.socket_dir("virt-launcher-vm1").is_dir(), "the socket dir is back");

    // The port of a live claim lost (OVSDB restored from an older copy): the node reconciler
    // re-creates it; nothing else changes.
    let lost = w.ports_of(&a.uid);
    assert_eq!(lost.len(), 1);
    w.lab.vsctl(&["del-port", w.bridge, &lost[0]]).expect("del-port");
    let gc = w.gc();
    assert_eq!(w.ports_of(&a.uid), lost, "gc re-created the live claim's port: {}", gc.stdout);

    // Claim b deleted while the plugin was down: the start-up sweep removes it, a stays.
    drop(plugin);
    w.delete_claim(&b);
    let plugin = w.plugin(None, "plugin-5.log");
    let _kubelet = w.kubelet(&plugin);
    assert!(w.traces_of(&b).is_empty(), "start-up clean-up left {:?}:\n{}", w.traces_of(&b), plugin.log());
    assert_eq!(w.ports_of(&a.uid).len(), 1, "a live claim is never touched");

    // Claim a deleted while kubelet never asked: the node reconciler (`userspace gc`) removes it.
    w.delete_claim(&a);
    let gc = w.gc();
    assert_eq!(w.nothing_left(), Vec::<String>::new(), "gc: {}", gc.stdout);
}

/// A SIGKILL before and after every step of Prepare (the plugin dies, kubelet sees the call
/// fail), then a restarted plugin: half the time kubelet prepares again (the interrupted attempt
/// is undone and redone: one port, the same devices as a clean Prepare) and unprepares, half the
/// time it only unprepares. Either way nothing of the claim is left, and the other, live claim
/// is never touched. The step list is the record's (`tests/fixtures/records/format2-dra-ovs.json`).
#[test]
fn a_kill_at_every_prepare_step_boundary_is_recovered_by_prepare_or_unprepare() {
    let test = "a_kill_at_every_prepare_step_boundary_is_recovered_by_prepare_or_unprepare";
    let Some(w) = World::start(test, "br-kv3") else { return };
    let live = w.vm("vm0", None);
    w.prepare_then_kill(&live, "plugin-live.log");
    let live_before = w.traces_of(&live);

    let steps = ["shared-dir", "bridge", "vhost-port", "dra-metadata", "cdi-spec", "save-state"];
    let mut n = 0;
    for step in steps {
        for phase in ["before", "after"] {
            n += 1;
            let c = w.vm(&format!("vm{n}"), Some(7));
            let mut plugin = w.plugin(Some(&format!("add:{step}:{phase}:kill")), &format!("plugin-kill-{n}.log"));
            let mut kubelet = w.kubelet(&plugin);
            let died = w.rt.block_on(kubelet.try_prepare(std::slice::from_ref(&c)));
            assert!(died.is_err(), "{step}:{phase}: the plugin should have died: {died:?}");
            plugin.wait_exit(Duration::from_secs(10));

            let plugin = w.plugin(None, &format!("plugin-after-{n}.log"));
            let mut kubelet = w.kubelet(&plugin);
            if n % 2 == 0 {
                let again = w.prepare(&mut kubelet, &plugin, std::slice::from_ref(&c));
                let devices =
                    again[&c.uid].as_ref().unwrap_or_else(|e| panic!("{step}:{phase}: {e}\n{}", plugin.log()));
                assert_eq!(devices[0].device_name, w.bridge);
                assert_eq!(w.ports_of(&c.uid).len(), 1, "{step}:{phase}: one port after Prepare again");
            }
            let un = w.unprepare(&mut kubelet, &plugin, std::slice::from_ref(&c));
            un[&c.uid].as_ref().unwrap_or_else(|e| panic!("{step}:{phase}: {e}\n{}", plugin.log()));
            assert!(w.traces_of(&c).is_empty(), "{step}:{phase}: left {:?}\n{}", w.traces_of(&c), plugin.log());
            assert_eq!(w.traces_of(&live), live_before, "{step}:{phase}: the live claim was touched");
        }
    }
    let plugin = w.plugin(None, "plugin-end.log");
    let mut kubelet = w.kubelet(&plugin);
    w.unprepare(&mut kubelet, &plugin, std::slice::from_ref(&live))[&live.uid].as_ref().expect("unprepare live");
    assert_eq!(w.nothing_left(), Vec::<String>::new());
}

/// The API server's silence is never a claim's death: with a claim deleted while nobody asked,
/// neither `userspace gc` nor the plugin's start-up sweep removes its attachment while the API
/// server refuses them (403: an identity without the reconciler's grants) or cannot be reached
/// (nothing listens at its address); `gc` reports it kept, saying why. Once the API server can
/// answer, `gc` removes everything of the claim.
#[test]
fn an_api_that_refuses_or_cannot_be_reached_never_removes_a_dra_attachment() {
    let test = "an_api_that_refuses_or_cannot_be_reached_never_removes_a_dra_attachment";
    let Some(w) = World::start(test, "br-kv4") else { return };
    let a = w.vm("vm1", None);
    w.prepare_then_kill(&a, "plugin-1.log");
    let before = w.traces_of(&a);
    assert!(before.iter().any(|t| t.starts_with("port ")), "prepared: {before:?}");
    assert!(w.socket_dir("virt-launcher-vm1").is_dir());
    w.delete_claim(&a);

    // An identity the shipped RBAC grants nothing: every claim read is a 403.
    let forbidden = w.env.kubeconfig_for("no-grants", &w.env.token(NS, "default", None));
    // The reconciler's own identity at an address where nothing listens (a closed port).
    let token = w.env.token(NAMESPACE, Identity::Reconciler.service_account(), Some(("Pod", "agent-a")));
    let unreachable = w.env.kubeconfig_at("reconciler-elsewhere", &token, "https://127.0.0.1:1");

    for (what, kubeconfig, says) in [("a 403", &forbidden, "403"), ("an unreachable API", &unreachable, "unreachable")]
    {
        let gc = w.gc_as(kubeconfig);
        let report: Value =
            serde_json::from_str(&gc.stdout).unwrap_or_else(|e| panic!("{what}: gc --json: {e}: {gc:?}"));
        let entry = report["attachments"]
            .as_array()
            .and_then(|all| all.iter().find(|o| o["containerId"] == json!(a.uid)))
            .unwrap_or_else(|| panic!("{what}: gc did not report the claim's attachment: {}", gc.stdout));
        assert_eq!(entry["action"], json!("kept"), "{what}: {entry}");
        assert_eq!(entry["why"]["reason"], json!("claim-unknown"), "{what}: {entry}");
        let detail = entry["why"]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{what}: the reason names it: {detail}");
        assert_eq!(w.traces_of(&a), before, "{what}: gc touched a claim it could not ask about");

        // The plugin's start-up sweep with the same API access; registration follows the sweep.
        let mut env = w.plugin_env.clone();
        for (k, v) in env.iter_mut() {
            if k == "USERSPACE_CNI_DRA_KUBECONFIG" {
                *v = kubeconfig.display().to_string();
            }
        }
        let plugin = Plugin::start(&w.node, &env, &format!("plugin-{says}.log"));
        let _kubelet = w.kubelet(&plugin);
        assert_eq!(w.traces_of(&a), before, "{what}: the start-up sweep touched it:\n{}", plugin.log());
        assert!(w.socket_dir("virt-launcher-vm1").is_dir(), "{what}: the socket dir stays");
        drop(plugin);
    }

    // The API server answers again: the claim is provably gone, and gc removes all of it.
    let gc = w.gc();
    assert_eq!(w.nothing_left(), Vec::<String>::new(), "gc: {}", gc.stdout);
}
