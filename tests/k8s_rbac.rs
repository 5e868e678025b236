//! The shipped ServiceAccounts, ClusterRoles and admission policy (config/kubernetes/) against a
//! real kube-apiserver (envtest, `tests/support/envtest.rs`). With tokens of our accounts bound to
//! node-a, the calls our code makes pass, driven through the project's own code (the plugin's
//! annotation write and `userspace gc`'s node marking, the binary), and each attack a stolen node
//! credential could try is refused: another pod's podIPs or phase, its labels, Multus's
//! network-status, a pod on node-b, a taint, a cordon, a foreign label, node-b. The audit log
//! shows the plugin's credential made no call outside its role. Skipped, with a message saying
//! so, where envtest is absent.

mod support;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::params::{GetParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::envtest::{run_bounded, Envtest, SHIPPED_CONFIG, SHIPPED_RBAC};
use userspace_cni::k8s::{self, ApiAccess, Budget, K8sError, PodName};
use userspace_cni::rbac::{self, Identity, NAMESPACE};
use userspace_cni::reconcile::node_mark::{self, NodeMarker};
use userspace_cni::steps::annotations;

const POLICY: &str = "userspace-cni-own-node";
const TENANT: &str = "tenant";
const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
const OVS_LABEL: &str = "userspace-cni.io/ovs-dpdk-unavailable";
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const POLICY_WAIT: Duration = Duration::from_secs(30);

/// Two nodes, a workload pod on each (with Multus's network-status and a running status), and
/// the node agent's pod on node-a (the reconciler's tokens are bound to it, as its projected
/// token is).
const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: tenant}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: tenant}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}, annotations: {owner: ops}}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {kubernetes.io/hostname: node-b}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-a
  namespace: tenant
  labels: {app: web}
  annotations: {k8s.v1.cni.cncf.io/network-status: '[{"name":"default","ips":["10.1.0.5"]}]'}
spec: {nodeName: node-a, containers: [{name: c, image: web}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-b
  namespace: tenant
  labels: {app: web}
  annotations: {k8s.v1.cni.cncf.io/network-status: '[{"name":"default","ips":["10.1.0.6"]}]'}
spec: {nodeName: node-b, containers: [{name: c, image: web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: agent-a, namespace: userspace-cni}
spec: {nodeName: node-a, serviceAccountName: userspace-cni, containers: [{name: c, image: agent}]}
"#;

/// What a refused call looks like: (HTTP status, the server's message).
type Refusal = (u16, String);

struct Cluster {
    env: Envtest,
    rt: tokio::runtime::Runtime,
}

fn pods(namespace: &str) -> Request {
    Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
}

fn nodes() -> Request {
    Request::new("/api/v1/nodes")
}

fn budget() -> Budget {
    Budget { deadline: Instant::now() + CALL_TIMEOUT, timeout: CALL_TIMEOUT }
}

/// The token's `jti`: the audit log names the credential by it (`credential-id`).
fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

impl Cluster {
    /// envtest with the shipped RBAC and policy applied and the objects above; `None`: skipped.
    fn start(test: &str) -> Option<Cluster> {
        let env = Envtest::start(test)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        env.apply_shipped_rbac();
        env.apply(OBJECTS);
        for pod in ["web-a", "web-b"] {
            let ip = if pod == "web-a" { "10.1.0.5" } else { "10.1.0.6" };
            let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True"}]}});
            env.kubectl_ok(
                &["patch", "pod", pod, "-n", TENANT, "--subresource=status", "--type=merge", "-p", &status.to_string()],
                None,
            );
        }
        let c = Cluster { env, rt };
        c.wait_for_policy();
        Some(c)
    }

    /// A policy takes effect a moment after it is created: until a dry run of a forbidden node
    /// update by our account is refused by it, nothing below would prove anything.
    fn wait_for_policy(&self) {
        let token = self.env.token(NAMESPACE, Identity::Reconciler.service_account(), Some(("Pod", "agent-a")));
        let who = self.client(&self.env.kubeconfig_for("policy-probe", &token));
        let deadline = Instant::now() + POLICY_WAIT;
        loop {
            let mut node = self.admin_get(&["node", "node-a"]);
            node["metadata"]["labels"]["probe"] = json!("x");
            let pp = PostParams { dry_run: true, ..Default::default() };
            let req = nodes().replace("node-a", &pp, serde_json::to_vec(&node).unwrap()).unwrap();
            match self.call(who.request::<Value>(req)) {
                Err((_, m)) if m.contains(POLICY) => return,
                other => {
                    assert!(Instant::now() < deadline, "the policy is not in force after {POLICY_WAIT:?}: {other:?}")
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn admin_get(&self, what: &[&str]) -> Value {
        self.env.get(what)
    }

    fn pod(&self, name: &str) -> Value {
        self.admin_get(&["pod", "-n", TENANT, name])
    }

    fn node(&self, name: &str) -> Value {
        self.admin_get(&["node", name])
    }

    /// A kube client speaking with the credentials of `kubeconfig`.
    fn client(&self, kubeconfig: &Path) -> kube::Client {
        self.rt.block_on(async {
            let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
            kube::Client::try_from(config).expect("client")
        })
    }

    /// One request, bounded.
    fn call<F: Future<Output = Result<Value, kube::Error>>>(&self, fut: F) -> Result<Value, Refusal> {
        match self.rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, fut).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) => Err((s.code, s.message)),
            Ok(Err(e)) => panic!("not an API answer: {e}"),
            Err(_) => panic!("no answer within {CALL_TIMEOUT:?}"),
        }
    }

    /// PUT pods/status of `name` as `who`: the pod as admin reads it, changed by `edit`.
    fn put_pod_status(&self, who: &kube::Client, name: &str, edit: impl FnOnce(&mut Value)) -> Result<Value, Refusal> {
        let mut pod = self.pod(name);
        edit(&mut pod);
        let body = serde_json::to_vec(&pod).unwrap();
        self.call(
            who.request::<Value>(
                pods(TENANT).replace_subresource("status", name, &PostParams::default(), body).unwrap(),
            ),
        )
    }

    /// PUT node `name` as `who`: the Node as admin reads it, changed by `edit`.
    fn put_node(&self, who: &kube::Client, name: &str, edit: impl FnOnce(&mut Value)) -> Result<Value, Refusal> {
        let mut node = self.node(name);
        edit(&mut node);
        let body = serde_json::to_vec(&node).unwrap();
        self.call(who.request::<Value>(nodes().replace(name, &PostParams::default(), body).unwrap()))
    }
}

/// The call was refused with 403 or 422 by `by` (the policy's name, or RBAC's "cannot"), and the
/// object is exactly as before.
fn refused(what: &str, result: Result<Value, Refusal>, by: &str, before: &Value, after: Value) {
    match result {
        Err((code, message)) => {
            assert!(code == 403 || code == 422, "{what}: refused with HTTP {code}, not 403/422: {message}");
            assert!(message.contains(by), "{what}: refused, but not by {by:?}: {message}");
            eprintln!("refused as expected: {what}: HTTP {code}: {message}");
        }
        Ok(v) => panic!("{what}: the server accepted it; it now holds {v}"),
    }
    assert_eq!(before, &after, "{what}: refused, yet the object changed");
}

fn annotations_of(object: &Value) -> serde_json::Map<String, Value> {
    object["metadata"]["annotations"].as_object().cloned().unwrap_or_default()
}

fn userspace_keys(object: &Value) -> BTreeSet<String> {
    annotations_of(object).keys().filter(|k| k.starts_with("userspace/")).cloned().collect()
}

/// The attachment entry the plugin's ADD writes (the shape `annotations::upsert` expects).
fn entry(cid: &str) -> Value {
    json!({"containerId": cid, "ifName": "net1", "name": "ovs-net",
           "config": {"engine": "ovs-dpdk", "iftype": "vhostuser"}, "ipResult": {}})
}

const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const MAPPED_DIR: &str = "/var/lib/cni/usrspcni/0123456789ab/";

#[test]
fn the_plugins_credential_writes_only_userspace_annotations_of_pods_on_its_own_node() {
    let Some(c) = Cluster::start("the_plugins_credential_writes_only_userspace_annotations_of_pods_on_its_own_node")
    else {
        return;
    };
    let sa = Identity::Plugin.service_account();
    // As docs/install.md says to provision /etc/userspace-cni/kubeconfig: a token bound to the Node.
    let token = c.env.token(NAMESPACE, sa, Some(("Node", "node-a")));
    let plugin_kc = c.env.kubeconfig_for("plugin", &token);
    let access = ApiAccess::Kubeconfig { path: plugin_kc.clone() };
    let web_a = PodName { namespace: TENANT.into(), name: "web-a".into() };
    let before = c.pod("web-a");

    // ADD, through the plugin's own code: GET pod, then GET + PUT pods/status.
    let view = c.rt.block_on(k8s::read_pod(&access, &web_a, budget())).expect("GET pod as the plugin");
    assert_eq!(view.uid.as_deref(), before["metadata"]["uid"].as_str());
    let written =
        c.rt.block_on(k8s::update_annotations(&access, &web_a, view.uid.as_deref(), budget(), &mut |a| {
            annotations::upsert(a, &entry(CID), MAPPED_DIR)
        }))
        .expect("the plugin's annotation write on a pod of its node");
    assert!(written);
    let after_add = c.pod("web-a");
    assert_eq!(
        userspace_keys(&after_add),
        BTreeSet::from([annotations::CONFIG_DATA.to_owned(), annotations::MAPPED_DIR.to_owned()])
    );
    assert_eq!(after_add["metadata"]["annotations"][annotations::MAPPED_DIR], MAPPED_DIR);
    for kept in [&["metadata", "labels"][..], &["spec"], &["status"]] {
        let get = |v: &Value| kept.iter().fold(v.clone(), |v, k| v[k].clone());
        assert_eq!(get(&before), get(&after_add), "{kept:?} changed by the annotation write");
    }
    assert_eq!(annotations_of(&after_add)[NETWORK_STATUS], annotations_of(&before)[NETWORK_STATUS]);
    // CHECK reads the annotations back; the re-read after a 409 goes through pods/status.
    let read = c.rt.block_on(k8s::read_annotations(&access, &web_a, budget())).expect("CHECK's read");
    assert!(read.contains_key(annotations::CONFIG_DATA));
    let who = c.client(&plugin_kc);
    c.call(who.request::<Value>(pods(TENANT).get_subresource("status", "web-a").unwrap())).expect("GET pods/status");

    // DEL, through the same code: this interface's entry and mapped-dir go.
    let removed =
        c.rt.block_on(k8s::update_annotations(&access, &web_a, view.uid.as_deref(), budget(), &mut |a| {
            annotations::remove(a, CID, "net1")
        }))
        .expect("DEL's annotation write");
    assert!(removed);
    assert!(userspace_keys(&c.pod("web-a")).is_empty(), "{}", c.pod("web-a"));

    // Every call of that credential is one of the plugin's rows in src/rbac.rs, and succeeded.
    let credential = format!("JTI={}", jti(&token));
    let calls: Vec<(String, String, i64)> = c
        .env
        .audit_events()
        .iter()
        .filter(|e| e["user"]["extra"]["authentication.kubernetes.io/credential-id"][0] == credential.as_str())
        .map(|e| {
            let r = &e["objectRef"];
            let resource = match r["subresource"].as_str() {
                Some(s) => format!("{}/{s}", r["resource"].as_str().unwrap_or("")),
                None => r["resource"].as_str().unwrap_or("").to_owned(),
            };
            (e["verb"].as_str().unwrap_or("").to_owned(), resource, e["responseStatus"]["code"].as_i64().unwrap_or(0))
        })
        .collect();
    assert!(calls.len() >= 6, "the audit log has too few calls of the plugin's credential: {calls:?}");
    for (verb, resource, code) in &calls {
        assert!(
            rbac::used_by(Identity::Plugin, "", resource, verb),
            "the plugin's credential made {verb} {resource}, which is not in its role: {calls:?}"
        );
        assert!((200..300).contains(code), "{verb} {resource} answered {code}: {calls:?}");
    }
    for needed in [("get", "pods"), ("get", "pods/status"), ("update", "pods/status")] {
        let seen = calls.iter().any(|(v, r, _)| (v.as_str(), r.as_str()) == needed);
        assert!(seen, "the audit log lacks {needed:?} by the plugin's credential: {calls:?}");
    }

    // The attacks, with another token of the same account bound to node-a.
    let attacker_token = c.env.token(NAMESPACE, sa, Some(("Node", "node-a")));
    let attacker_kc = c.env.kubeconfig_for("plugin-attacker", &attacker_token);
    let who = c.client(&attacker_kc);
    type Edit = fn(&mut Value);
    // podIP and podIPs together: with podIPs alone, the server's v1 conversion takes podIP as
    // authoritative and quietly drops the change before admission (a 200 that changes nothing).
    let pod_attacks: [(&str, &str, Edit); 7] = [
        ("set status.podIP(s) of a pod on its node", "web-a", |p| {
            p["status"]["podIP"] = json!("10.66.6.6");
            p["status"]["podIPs"] = json!([{"ip": "10.66.6.6"}]);
        }),
        ("add an address to status.podIPs", "web-a", |p| {
            p["status"]["podIPs"] = json!([{"ip": "10.1.0.5"}, {"ip": "fd00::66"}])
        }),
        ("mark a pod on its node Failed", "web-a", |p| p["status"]["phase"] = json!("Failed")),
        ("set a pod's Ready condition False", "web-a", |p| {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}])
        }),
        ("relabel a pod on its node", "web-a", |p| p["metadata"]["labels"]["app"] = json!("db")),
        ("forge Multus's network-status", "web-a", |p| {
            p["metadata"]["annotations"][NETWORK_STATUS] = json!(r#"[{"name":"default","ips":["10.66.6.6"]}]"#)
        }),
        ("write a userspace/ annotation on a pod of node-b", "web-b", |p| {
            p["metadata"]["annotations"]["userspace/mapped-dir"] = json!("/x/")
        }),
    ];
    for (what, pod, edit) in pod_attacks {
        let before = c.pod(pod);
        let result = c.put_pod_status(&who, pod, edit);
        refused(what, result, POLICY, &before, c.pod(pod));
    }
    for (what, pod, edit) in [
        ("add a finalizer to a pod", "web-a", (|p| p["metadata"]["finalizers"] = json!(["evil.io/hold"])) as Edit),
        ("add an annotation to a pod of node-b through pods/status", "web-b", |p| {
            p["metadata"]["annotations"]["other"] = json!("x")
        }),
    ] {
        let before = c.pod(pod);
        let result = c.put_pod_status(&who, pod, edit);
        refused(what, result, POLICY, &before, c.pod(pod));
    }

    // Through the plugin's own code too: a refusal is a 403 the CNI error names.
    let web_b = PodName { namespace: TENANT.into(), name: "web-b".into() };
    let attacker = ApiAccess::Kubeconfig { path: attacker_kc.clone() };
    let err =
        c.rt.block_on(k8s::update_annotations(&attacker, &web_b, None, budget(), &mut |a| {
            annotations::upsert(a, &entry(CID), MAPPED_DIR)
        }))
        .expect_err("the plugin's code annotating a pod of node-b");
    assert!(matches!(&err, K8sError::Forbidden { message, .. } if message.contains(POLICY)), "{err}");

    // Nodes are the reconciler's: RBAC refuses them to the plugin's account outright.
    let before = c.node("node-a");
    let result = c.put_node(&who, "node-a", |n| n["metadata"]["labels"][OVS_LABEL] = json!("true"));
    refused(
        "the plugin's account labels a node",
        result,
        "cannot update resource \"nodes\"",
        &before,
        c.node("node-a"),
    );
    let got = c.call(who.request::<Value>(nodes().get("node-a", &GetParams::default()).unwrap()));
    assert!(matches!(&got, Err((403, _))), "the plugin's account reads nodes: {got:?}");

    // What reaches admission on pods/status: the server drops spec and ownerReferences changes
    // before the policy sees the object (spec = old spec), so such a PUT "succeeds" as a no-op.
    let before = c.pod("web-a");
    c.put_pod_status(&who, "web-a", |p| {
        p["spec"]["nodeName"] = json!("node-b");
        p["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "00000000-0000-0000-0000-000000000001"}]);
    })
    .expect("a spec change through pods/status is ignored by the server, not refused");
    let after = c.pod("web-a");
    assert_eq!(after["spec"], before["spec"], "the server kept the spec");
    assert_eq!(after["metadata"]["ownerReferences"], before["metadata"]["ownerReferences"]);
}

#[test]
fn the_reconcilers_credential_marks_only_its_own_node_with_only_its_own_labels() {
    let Some(c) = Cluster::start("the_reconcilers_credential_marks_only_its_own_node_with_only_its_own_labels") else {
        return;
    };
    // The DaemonSet pod's projected token is bound to that pod, which runs on node-a.
    let token = c.env.token(NAMESPACE, Identity::Reconciler.service_account(), Some(("Pod", "agent-a")));
    let kc = c.env.kubeconfig_for("reconciler", &token);
    let access = ApiAccess::Kubeconfig { path: kc.clone() };

    // The reconciler's own code labels node-a while OVS-DPDK is down ...
    let marker = NodeMarker { access, node: "node-a".into(), timeout: CALL_TIMEOUT };
    let down = BTreeSet::from(["ovs-dpdk".to_owned()]);
    let before = c.node("node-a");
    let report = c.rt.block_on(node_mark::mark(&marker, &down, false));
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(report.set, [OVS_LABEL], "{report:?}");
    let labelled = c.node("node-a");
    assert_eq!(labelled["metadata"]["labels"][OVS_LABEL], "true");
    // Our field manager owns the label (once it is gone, so is the manager's entry).
    let out = c.env.kubectl_ok(&["get", "node", "node-a", "-o", "json", "--show-managed-fields"], None);
    assert!(out.contains(&format!("\"manager\": \"{}\"", k8s::FIELD_MANAGER)), "node-a's managedFields: {out}");
    assert_eq!(labelled["spec"], before["spec"]);
    assert_eq!(labelled["metadata"]["annotations"], before["metadata"]["annotations"]);

    // ... and `userspace gc` (the binary, as in the DaemonSet) removes the label: no engine has
    // attachments on this (empty) node, so none is down.
    let node = support::Node::new();
    let run = run_bounded(
        std::process::Command::new(support::PLUGIN_BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(node.settings_env())
            .env("NODE_NAME", "node-a")
            .args(["gc", "--json", "--kubeconfig"])
            .arg(&kc),
        None,
        Duration::from_secs(60),
    )
    .expect("userspace gc");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "userspace gc: {}\n{stdout}\n{stderr}", run.status);
    let doc: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("gc --json ({e}): {stdout}"));
    assert_eq!(doc["nodeMark"]["removed"], json!([OVS_LABEL]), "{doc}");
    assert!(doc["nodeMark"]["error"].is_null(), "{doc}");
    let unlabelled = c.node("node-a");
    assert!(unlabelled["metadata"]["labels"].get(OVS_LABEL).is_none(), "{unlabelled}");
    assert_eq!(unlabelled["metadata"]["labels"], before["metadata"]["labels"], "only our label came and went");
    // Every call of that credential so far was the reconciler's own code (library and binary):
    // each in its role, each with our User-Agent; its writes name our field manager.
    let credential = format!("JTI={}", jti(&token));
    let calls: Vec<(String, String, String)> = c
        .env
        .audit_events()
        .iter()
        .filter(|e| e["user"]["extra"]["authentication.kubernetes.io/credential-id"][0] == credential.as_str())
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (s(&e["verb"]), s(&e["objectRef"]["resource"]), s(&e["userAgent"]))
        })
        .collect();
    assert!(calls.len() >= 4, "too few calls of the reconciler's credential: {calls:?}");
    for (verb, resource, agent) in &calls {
        assert!(
            rbac::used_by(Identity::Reconciler, "", resource, verb),
            "{verb} {resource} is not in the role: {calls:?}"
        );
        assert_eq!(agent, k8s::USER_AGENT, "{verb} {resource} carried another User-Agent: {calls:?}");
    }

    // The attacks with that credential.
    let who = c.client(&kc);
    type Edit = fn(&mut Value);
    let node_attacks: [(&str, &str, Edit); 6] = [
        ("taint its node", "node-a", |n| n["spec"]["taints"] = json!([{"key": "evil", "effect": "NoExecute"}])),
        ("cordon its node", "node-a", |n| n["spec"]["unschedulable"] = json!(true)),
        ("relabel its node with a foreign label", "node-a", |n| n["metadata"]["labels"]["tier"] = json!("gold")),
        ("remove a foreign label of its node", "node-a", |n| {
            n["metadata"]["labels"].as_object_mut().unwrap().remove("kubernetes.io/hostname");
        }),
        ("change an annotation of its node", "node-a", |n| n["metadata"]["annotations"]["owner"] = json!("me")),
        ("set our own label on node-b", "node-b", |n| n["metadata"]["labels"][OVS_LABEL] = json!("true")),
    ];
    for (what, node, edit) in node_attacks {
        let before = c.node(node);
        let result = c.put_node(&who, node, edit);
        refused(what, result, POLICY, &before, c.node(node));
    }
    let before = c.node("node-b");
    let result = c.put_node(&who, "node-b", |n| n["spec"]["unschedulable"] = json!(true));
    refused("cordon node-b", result, POLICY, &before, c.node("node-b"));

    // Pods are the plugin's: RBAC refuses their status to the reconciler's account outright.
    let before = c.pod("web-a");
    let result =
        c.put_pod_status(&who, "web-a", |p| p["metadata"]["annotations"]["userspace/mapped-dir"] = json!("/x/"));
    refused(
        "the reconciler writes a pod's status",
        result,
        "cannot update resource \"pods/status\"",
        &before,
        c.pod("web-a"),
    );
    let before = c.node("node-a");
    let result = c.call(who.request::<Value>(nodes().delete("node-a", &Default::default()).unwrap()));
    refused("delete its node", result, "cannot delete resource \"nodes\"", &before, c.node("node-a"));
    // Reading pods by name is the reconciler's (whether a record's pod still exists).
    c.call(who.request::<Value>(pods(TENANT).get("web-b", &GetParams::default()).unwrap())).expect("GET pod");
}

#[test]
fn a_token_bound_to_no_node_is_refused_others_are_unaffected_and_a_wider_role_still_meets_the_policy() {
    let test = "a_token_bound_to_no_node_is_refused_others_are_unaffected_and_a_wider_role_still_meets_the_policy";
    let Some(c) = Cluster::start(test) else { return };
    let plugin = Identity::Plugin.service_account();

    // A token bound to nothing has no node name: every write is refused, reads are RBAC's.
    let token = c.env.token(NAMESPACE, plugin, None);
    let who = c.client(&c.env.kubeconfig_for("unbound", &token));
    c.call(who.request::<Value>(pods(TENANT).get("web-a", &GetParams::default()).unwrap())).expect("GET pod");
    let before = c.pod("web-a");
    let result =
        c.put_pod_status(&who, "web-a", |p| p["metadata"]["annotations"]["userspace/mapped-dir"] = json!("/x/"));
    refused(
        "a userspace/ annotation with a token bound to no node",
        result,
        "bound to no node",
        &before,
        c.pod("web-a"),
    );

    // Other users (here the admin; equally the kubelet, Multus) keep every right they had.
    c.env.kubectl_ok(&["label", "node", "node-a", "tier=gold"], None);
    c.env.kubectl_ok(
        &[
            "patch",
            "pod",
            "web-a",
            "-n",
            TENANT,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"podIPs":[{"ip":"10.1.0.5"},{"ip":"fd00::5"}]}}"#,
        ],
        None,
    );
    assert_eq!(c.node("node-a")["metadata"]["labels"]["tier"], "gold");
    assert_eq!(c.pod("web-a")["status"]["podIPs"][1]["ip"], "fd00::5");

    // A role widened by mistake (patch on pods and nodes and their subresources): the policy
    // still refuses everything but our two writes.
    c.env.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: too-wide}}\nrules:\n\
         - apiGroups: ['']\n  resources: [pods, pods/status, nodes, nodes/status]\n  verbs: [get, update, patch, delete]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: too-wide}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: too-wide}}\nsubjects:\n\
         - {{kind: ServiceAccount, name: {plugin}, namespace: {NAMESPACE}}}\n\
         - {{kind: ServiceAccount, name: {}, namespace: {NAMESPACE}}}\n",
        Identity::Reconciler.service_account()
    ));
    let token = c.env.token(NAMESPACE, plugin, Some(("Node", "node-a")));
    let who = c.client(&c.env.kubeconfig_for("widened", &token));
    type Attempt<'a> = Box<dyn Fn() -> Result<Value, Refusal> + 'a>;
    let merge = |v: Value| Patch::Merge(v);
    let pp = PatchParams::default();
    let attempts: Vec<(&str, Attempt, &str)> = vec![
        (
            "patch a pod's labels (main resource)",
            Box::new(|| {
                let req =
                    pods(TENANT).patch("web-a", &pp, &merge(json!({"metadata": {"labels": {"app": "db"}}}))).unwrap();
                c.call(who.request::<Value>(req))
            }),
            "pod",
        ),
        (
            "patch a pod's podIPs through pods/status",
            Box::new(|| {
                let p = merge(json!({"status": {"podIPs": [{"ip": "10.66.6.6"}]}}));
                c.call(who.request::<Value>(pods(TENANT).patch_subresource("status", "web-a", &pp, &p).unwrap()))
            }),
            "pod",
        ),
        (
            "patch node-a's conditions through nodes/status",
            Box::new(|| {
                let p = merge(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
                c.call(who.request::<Value>(nodes().patch_subresource("status", "node-a", &pp, &p).unwrap()))
            }),
            "node",
        ),
        (
            "taint node-a with a patch",
            Box::new(|| {
                let p = merge(json!({"spec": {"taints": [{"key": "evil", "effect": "NoSchedule"}]}}));
                c.call(who.request::<Value>(nodes().patch("node-a", &pp, &p).unwrap()))
            }),
            "node",
        ),
        (
            "delete a pod on its node",
            Box::new(|| c.call(who.request::<Value>(pods(TENANT).delete("web-a", &Default::default()).unwrap()))),
            "pod",
        ),
    ];
    for (what, attempt, kind) in attempts {
        let object = || if kind == "pod" { c.pod("web-a") } else { c.node("node-a") };
        let before = object();
        refused(what, attempt(), POLICY, &before, object());
    }
}

/// The test's own prerequisites: the files it applies exist (so a rename fails here, not in a
/// skipped run), and the accounts it uses are the ones src/rbac.rs names.
#[test]
fn the_shipped_files_this_test_applies_exist() {
    for file in SHIPPED_RBAC {
        assert!(PathBuf::from(SHIPPED_CONFIG).join(file).is_file(), "config/kubernetes/{file} is gone");
    }
    let yaml = std::fs::read_to_string(PathBuf::from(SHIPPED_CONFIG).join("serviceaccount.yaml")).unwrap();
    for who in Identity::ALL {
        assert!(yaml.contains(&format!("name: {}\n", who.service_account())), "{who:?}");
    }
}
