//! The plugin's Kubernetes paths against a real kube-apiserver (envtest, tests/support/envtest.rs)
//! with the shipped RBAC and admission policy applied and the plugin's own identity (a token of
//! its ServiceAccount bound to the node, as docs/install.md provisions it): the testkit binary's
//! ADD and DEL in annotation mode, and the library's calls where a test must act between the
//! plugin's read and its write. Real 409s from a concurrent writer, 403 for a credential without
//! the role, 404, a pod replaced under the same name, annotations over the server's 256 KiB limit;
//! every request carries our User-Agent, every write names our field manager, and the audit log
//! shows no call outside the role. Skipped, with a message, where envtest is absent.
#![cfg(all(feature = "testkit", feature = "kubernetes"))]

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::envtest::Envtest;
use support::{recording_conf, Node, Run};
use userspace_cni::k8s::{self, ApiAccess, Budget, K8sError, PodName};
use userspace_cni::rbac::{self, Identity, NAMESPACE};
use userspace_cni::steps::annotations;
use userspace_cni_testkit as testkit;

const NS: &str = "tenant";
const POD: &str = "pod-a";
const CID: &str = "ab0000000000000000000000000000cd";
const MOUNT: &str = "/var/run/vhost";
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// envtest with the shipped files, node-a, and a plugin credential bound to node-a.
struct Cluster {
    env: Envtest,
    rt: tokio::runtime::Runtime,
    node: Node,
    /// The plugin's kubeconfig, where the node settings allow it (`net.d/multus.kubeconfig`).
    kubeconfig: PathBuf,
    /// The credential's `jti` as the audit log names it.
    credential: String,
}

fn budget() -> Budget {
    Budget { deadline: Instant::now() + CALL_TIMEOUT, timeout: CALL_TIMEOUT }
}

fn pod_name() -> PodName {
    PodName { namespace: NS.into(), name: POD.into() }
}

fn entry(ifname: &str) -> Value {
    json!({"containerId": CID, "ifName": ifname, "name": "ovs-net",
           "config": {"engine": "ovs-dpdk", "iftype": "vhostuser"}, "ipResult": {}})
}

fn jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    format!("JTI={}", claims["jti"].as_str().expect("jti"))
}

impl Cluster {
    fn start(test: &str) -> Option<Cluster> {
        let env = Envtest::start(test)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        env.apply_shipped_rbac();
        env.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n---\napiVersion: v1\nkind: ServiceAccount\n\
             metadata: {{name: default, namespace: {NS}}}\n---\napiVersion: v1\nkind: Node\n\
             metadata: {{name: node-a, labels: {{kubernetes.io/hostname: node-a}}}}\n"
        ));
        let node = Node::new();
        let c = {
            let token = env.token(NAMESPACE, Identity::Plugin.service_account(), Some(("Node", "node-a")));
            let scratch = env.kubeconfig_for("plugin", &token);
            let kubeconfig = node.path("net.d/multus.kubeconfig");
            let text = std::fs::read(&scratch).expect("plugin kubeconfig");
            fakeapi::write_private(&kubeconfig, &text);
            Cluster { env, rt, node, kubeconfig, credential: jti(&token) }
        };
        c.create_pod();
        Some(c)
    }

    /// The workload pod on node-a, its `shared-dir` a hostPath under the node's shared base.
    fn create_pod(&self) {
        let host = self.node.shared_base().join(POD);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": POD, "namespace": NS, "annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"}},
            "spec": {"nodeName": "node-a",
                     "containers": [{"name": "dpdk", "image": "dpdk-app",
                                     "volumeMounts": [{"name": "shared-dir", "mountPath": MOUNT}]}],
                     "volumes": [{"name": "shared-dir", "hostPath": {"path": host.display().to_string()}}]}});
        self.env.kubectl_ok(&["create", "-f", "-"], Some(&pod.to_string()));
    }

    fn access(&self) -> ApiAccess {
        ApiAccess::Kubeconfig { path: self.kubeconfig.clone() }
    }

    fn pod(&self) -> Value {
        self.env.get(&["pod", "-n", NS, POD])
    }

    fn annotations(&self) -> serde_json::Map<String, Value> {
        self.pod()["metadata"]["annotations"].as_object().cloned().unwrap_or_default()
    }

    fn conf(&self) -> Value {
        let mut c = recording_conf("1.1.0", "real-api-net");
        c["kubeconfig"] = json!(self.kubeconfig.display().to_string());
        c
    }

    fn cni(&self, verb: &str, ifname: &str) -> Run {
        let pod = self.pod();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={POD};K8S_POD_UID={uid}");
        self.node.cni(verb, CID, ifname, &self.conf(), &[("CNI_ARGS", args.as_str())])
    }

    /// The plugin credential's calls: (verb, resource[/subresource], HTTP code, userAgent).
    fn plugin_calls(&self) -> Vec<(String, String, i64, String)> {
        self.env
            .audit_events()
            .iter()
            .filter(|e| e["user"]["extra"]["authentication.kubernetes.io/credential-id"][0] == self.credential.as_str())
            .map(|e| {
                let r = &e["objectRef"];
                let resource = match r["subresource"].as_str() {
                    Some(s) => format!("{}/{s}", r["resource"].as_str().unwrap_or("")),
                    None => r["resource"].as_str().unwrap_or("").to_owned(),
                };
                (
                    e["verb"].as_str().unwrap_or("").to_owned(),
                    resource,
                    e["responseStatus"]["code"].as_i64().unwrap_or(0),
                    e["userAgent"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Every call of the plugin's credential is in its role and carries our User-Agent.
    fn assert_calls_in_role(&self, at_least: usize) -> Vec<(String, String, i64, String)> {
        let calls = self.plugin_calls();
        assert!(
            calls.len() >= at_least,
            "the audit log has {} calls of the plugin's credential: {calls:?}",
            calls.len()
        );
        for (verb, resource, _, agent) in &calls {
            assert!(
                rbac::used_by(Identity::Plugin, "", resource, verb),
                "the plugin's credential made {verb} {resource}, which is not in its role: {calls:?}"
            );
            assert_eq!(agent, k8s::USER_AGENT, "{verb} {resource} carried another User-Agent");
        }
        eprintln!("the plugin's credential made {} calls, all in its role, all as {}", calls.len(), k8s::USER_AGENT);
        calls
    }

    /// Nothing of the attachment is left on the node (dataplane, records, sockets).
    fn assert_clean(&self, why: &str) {
        let dp = testkit::load(&self.node.state_dir());
        assert!(dp.ports.is_empty() && dp.bridges.is_empty(), "{why}: dataplane left: {dp:?}");
        let left: Vec<String> = self
            .node
            .leftovers()
            .into_iter()
            .filter(|p| !(p.starts_with("net.d") || p == "kubelet" || p.starts_with("kubelet/") || p == "shared/pod-a"))
            .collect();
        assert!(left.is_empty(), "{why}: files left: {left:?}");
    }
}

#[test]
fn add_and_del_through_the_binary_name_the_plugin_in_managed_fields_and_the_audit_log() {
    let Some(c) = Cluster::start("add_and_del_through_the_binary_name_the_plugin_in_managed_fields_and_the_audit_log")
    else {
        return;
    };
    c.cni("ADD", "net1").expect_ok();
    // kubectl hides managedFields unless asked.
    let out = c.env.kubectl_ok(&["get", "pod", "-n", NS, POD, "-o", "json", "--show-managed-fields"], None);
    let pod: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get pod: {e}: {out}"));
    let ann = &pod["metadata"]["annotations"];
    assert!(ann.get(annotations::CONFIG_DATA).is_some(), "ADD wrote no entry: {ann}");
    assert_eq!(ann[annotations::MAPPED_DIR], format!("{MOUNT}/"));
    let managers: Vec<(String, String, String)> = pod["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
            (s("manager"), s("operation"), s("subresource"))
        })
        .collect();
    let ours = managers.iter().find(|(m, _, _)| m == k8s::FIELD_MANAGER);
    assert_eq!(
        ours.map(|(_, o, s)| (o.as_str(), s.as_str())),
        Some(("Update", "status")),
        "managedFields name no {} update of pods/status: {managers:?}",
        k8s::FIELD_MANAGER
    );
    let fields = pod["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["manager"] == k8s::FIELD_MANAGER))
        .map(|m| m["fieldsV1"].to_string())
        .unwrap_or_default();
    assert!(fields.contains(annotations::CONFIG_DATA), "our manager does not own the entry: {fields}");
    assert!(!managers.iter().any(|(m, _, _)| m == "unknown"), "a write as 'unknown': {managers:?}");

    c.cni("DEL", "net1").expect_ok();
    let left: Vec<String> = c.annotations().keys().filter(|k| k.starts_with("userspace/")).cloned().collect();
    assert!(left.is_empty(), "DEL left {left:?}");
    c.assert_clean("after DEL");
    let calls = c.assert_calls_in_role(4);
    for needed in [("get", "pods"), ("update", "pods/status")] {
        assert!(calls.iter().any(|(v, r, _, _)| (v.as_str(), r.as_str()) == needed), "no {needed:?}: {calls:?}");
    }
}

#[test]
fn a_concurrent_writer_causes_real_409s_and_both_writers_changes_survive() {
    let Some(c) = Cluster::start("a_concurrent_writer_causes_real_409s_and_both_writers_changes_survive") else {
        return;
    };
    let uid = c.pod()["metadata"]["uid"].as_str().map(str::to_owned);
    // Between each of the plugin's reads and its write, another client (the admin, as Multus or
    // the kubelet would) annotates the pod: three real 409s, then the plugin's fourth try lands.
    let mut writes = 0u32;
    let env = &c.env;
    let mut edit = |a: &mut serde_json::Map<String, Value>| {
        if writes < 3 {
            env.kubectl_ok(&["annotate", "pod", "-n", NS, POD, &format!("other.example/writer-{writes}=x")], None);
            writes += 1;
        }
        annotations::upsert(a, &entry("net1"), &format!("{MOUNT}/"))
    };
    let written = c.rt.block_on(k8s::update_annotations(&c.access(), &pod_name(), uid.as_deref(), budget(), &mut edit));
    assert_eq!(written, Ok(true), "the plugin's write after three real 409s");
    let ann = c.annotations();
    for n in 0..3 {
        assert_eq!(ann.get(&format!("other.example/writer-{n}")), Some(&json!("x")), "writer {n}'s change: {ann:?}");
    }
    assert!(ann.contains_key(annotations::CONFIG_DATA), "the plugin's change: {ann:?}");
    let calls = c.assert_calls_in_role(5);
    let conflicts = calls.iter().filter(|(v, r, code, _)| v == "update" && r == "pods/status" && *code == 409).count();
    assert_eq!(conflicts, 3, "the server answered 409 {conflicts} times: {calls:?}");
}

#[test]
fn a_credential_without_the_role_gets_a_403_naming_the_call_and_the_user() {
    let Some(c) = Cluster::start("a_credential_without_the_role_gets_a_403_naming_the_call_and_the_user") else {
        return;
    };
    // `nobody`: authenticated, bound to no role.
    let env_text = std::fs::read_to_string(c.env.run_dir().join("env")).expect("RUN/env");
    let token = env_text.lines().find_map(|l| l.strip_prefix("NOBODY_TOKEN=")).expect("NOBODY_TOKEN").to_owned();
    let scratch = c.env.kubeconfig_for("nobody-inline", &token);
    fakeapi::write_private(&c.kubeconfig, &std::fs::read(&scratch).expect("kubeconfig"));
    let before = c.node.snapshot();
    let msg = c.cni("ADD", "net1").expect_err(7);
    eprintln!("ADD as nobody: {msg}");
    assert!(msg.contains("403") && msg.contains(&format!("GET pod {NS}/{POD}")), "{msg}");
    assert!(msg.contains("User \"nobody\" cannot get resource \"pods\""), "the server's words: {msg}");
    assert!(msg.contains(&c.kubeconfig.display().to_string()), "names the credentials: {msg}");
    assert_eq!(c.node.snapshot(), before, "a refused GET changes nothing");
    let err =
        c.rt.block_on(k8s::update_annotations(&c.access(), &pod_name(), None, budget(), &mut |a| {
            annotations::upsert(a, &entry("net1"), "/x/")
        }))
        .expect_err("nobody's write");
    assert!(matches!(&err, K8sError::Forbidden { what, .. } if what == &format!("GET pod {NS}/{POD}")), "{err}");
}

#[test]
fn a_missing_pod_is_code_3_and_a_replaced_pod_is_never_annotated() {
    let Some(c) = Cluster::start("a_missing_pod_is_code_3_and_a_replaced_pod_is_never_annotated") else { return };
    // 404: no such pod.
    let ghost = PodName { namespace: NS.into(), name: "ghost".into() };
    let err = c.rt.block_on(k8s::read_pod(&c.access(), &ghost, budget())).expect_err("GET of a missing pod");
    assert_eq!(err, K8sError::PodNotFound { pod: format!("{NS}/ghost") });
    let err =
        c.rt.block_on(k8s::update_annotations(&c.access(), &ghost, None, budget(), &mut |a| {
            annotations::upsert(a, &entry("net1"), "/x/")
        }))
        .expect_err("a write to a missing pod");
    assert_eq!(err, K8sError::PodNotFound { pod: format!("{NS}/ghost") });

    // A record's uid that is not the pod's: refused before any write.
    let err =
        c.rt.block_on(k8s::update_annotations(&c.access(), &pod_name(), Some("not-this-pod"), budget(), &mut |a| {
            annotations::upsert(a, &entry("net1"), "/x/")
        }))
        .expect_err("another pod's uid");
    assert!(matches!(&err, K8sError::PodReplaced { args_uid, .. } if args_uid == "not-this-pod"), "{err}");

    // The pod deleted and re-created under the same name between the plugin's read and write:
    // the PUT carries the old uid, the server's precondition refuses it (409), the re-read sees
    // the new uid, and the plugin gives up without annotating the new pod.
    let old_uid = c.pod()["metadata"]["uid"].as_str().expect("uid").to_owned();
    let mut replaced = false;
    let mut edit = |a: &mut serde_json::Map<String, Value>| {
        if !replaced {
            c.env.kubectl_ok(&["delete", "pod", "-n", NS, POD, "--grace-period=0", "--force", "--wait=false"], None);
            c.create_pod();
            replaced = true;
        }
        annotations::upsert(a, &entry("net1"), "/x/")
    };
    let err =
        c.rt.block_on(k8s::update_annotations(&c.access(), &pod_name(), Some(&old_uid), budget(), &mut edit))
            .expect_err("a write to the pod's successor");
    assert!(matches!(&err, K8sError::PodReplaced { args_uid, .. } if args_uid == &old_uid), "{err}");
    assert_eq!(userspace_cni_api::CniError::from(err).code, userspace_cni_api::codes::UNKNOWN_CONTAINER);
    let new = c.pod();
    assert_ne!(new["metadata"]["uid"], json!(old_uid), "the pod was re-created");
    let ann = c.annotations();
    assert!(!ann.keys().any(|k| k.starts_with("userspace/")), "the new pod was annotated: {ann:?}");
    let calls = c.assert_calls_in_role(4);
    let precondition = calls.iter().any(|(v, r, code, _)| v == "update" && r == "pods/status" && *code == 409);
    assert!(precondition, "the server never refused the old uid: {calls:?}");
}

#[test]
fn annotations_over_256_kib_fail_add_clearly_add_rolls_back_and_del_completes() {
    let Some(c) = Cluster::start("annotations_over_256_kib_fail_add_clearly_add_rolls_back_and_del_completes") else {
        return;
    };
    // net1 attaches while there is room.
    c.cni("ADD", "net1").expect_ok();
    // Then someone else's annotation fills the pod to a few bytes under the limit, so net2's
    // entry cannot fit.
    let used: usize = c.annotations().iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    let filler = "x".repeat(256 * 1024 - used - "bulk".len() - 16);
    let mut pod = c.pod();
    pod["metadata"]["annotations"]["bulk"] = json!(filler);
    c.env.kubectl_ok(&["replace", "-f", "-"], Some(&pod.to_string()));
    let entries_before = c.annotations()[annotations::CONFIG_DATA].clone();
    let msg = c.cni("ADD", "net2").expect_err(userspace_cni_api::codes::IO_FAILURE as u64);
    eprintln!("ADD net2: {msg}");
    assert!(
        msg.contains("256 KiB") && msg.contains("422") && msg.contains(&format!("PUT pod {NS}/{POD}/status")),
        "{msg}"
    );
    assert_eq!(c.annotations()[annotations::CONFIG_DATA], entries_before, "net2 left a trace in the entries");
    let dp = testkit::load(&c.node.state_dir());
    assert_eq!(dp.ports.len(), 1, "net2's port was not rolled back (or net1's went): {dp:?}");
    // DEL of the rolled-back net2 and of net1 complete; net1's entry goes, the filler stays.
    c.cni("DEL", "net2").expect_ok();
    c.cni("DEL", "net1").expect_ok();
    let ann = c.annotations();
    assert!(!ann.keys().any(|k| k.starts_with("userspace/")), "DEL left {:?}", ann.keys().collect::<Vec<_>>());
    assert!(ann.contains_key("bulk"), "another writer's annotation went");
    c.assert_clean("after both DELs");
    c.assert_calls_in_role(6);
}
