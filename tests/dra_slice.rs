//! The DRA plugin's ResourceSlice publisher (`src/dra/slice.rs`) against a real kube-apiserver
//! (envtest, v1.36.2 with its default feature gates) with the shipped RBAC and admission policies,
//! driven with the DRA plugin's own identity: a token of ServiceAccount userspace-cni-dra bound to
//! a pod on node-a, as the DaemonSet's projected token is. First publish, an unchanged republish,
//! a republish with other bridges, an older slice of the pool, zero bridges, withdraw; what the
//! server keeps of `allowMultipleAllocations`; and the admission policy refusing that credential
//! every write of another node's slice. Skipped, with a message, where envtest is absent.
#![cfg(feature = "kubernetes")]

mod support;

use base64::Engine;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::dra_plugin::{self, Plugin};
use support::envtest::Envtest;
use userspace_cni::dra::run;
use userspace_cni::dra::slice::{self, BridgeDevice, SliceError, SliceSpec};
use userspace_cni::rbac::{self, Identity, NAMESPACE};

use k8s_openapi::api::resource::v1::ResourceSlice;

const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
const POLICY: &str = "userspace-cni-dra-own-node";
const TIMEOUT: Duration = Duration::from_secs(20);
const POLICY_WAIT: Duration = Duration::from_secs(30);

/// Two nodes and the DRA plugin's pod on node-a (its token is bound to that pod), plus slices of
/// others: another driver on node-a, our driver on node-b. Neither may ever be touched.
const OBJECTS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-a}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
---
apiVersion: v1
kind: Pod
metadata: {name: dra-a, namespace: userspace-cni}
spec: {nodeName: node-a, serviceAccountName: userspace-cni-dra, containers: [{name: c, image: dra}]}
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: gpu-node-a}
spec:
  driver: gpu.example.com
  nodeName: node-a
  pool: {name: node-a, generation: 3, resourceSliceCount: 1}
  devices: [{name: gpu0}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: ours-on-node-b}
spec:
  driver: ovsdpdk.k8snetworkplumbingwg.io
  nodeName: node-b
  pool: {name: node-b, generation: 2, resourceSliceCount: 1}
  devices: [{name: br-b}]
"#;

/// An older slice of our pool on node-a (a previous plugin or the PoC), at generation 7.
const OLDER: &str = r#"
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: node-a-ovsdpdk-old}
spec:
  driver: ovsdpdk.k8snetworkplumbingwg.io
  nodeName: node-a
  pool: {name: node-a, generation: 7, resourceSliceCount: 1}
  devices: [{name: br-old}]
"#;

struct Cluster {
    env: Envtest,
    rt: tokio::runtime::Runtime,
    /// The DRA plugin's client: a token of userspace-cni-dra bound to pod dra-a on node-a.
    dra: kube::Client,
    /// That token's id, as the audit log names it.
    credential: String,
}

fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    format!("JTI={}", claims["jti"].as_str().expect("jti"))
}

fn bridges(list: &[(&str, u32)]) -> Vec<BridgeDevice> {
    list.iter().map(|(n, m)| BridgeDevice { name: (*n).into(), mtu: *m }).collect()
}

fn spec(node: &str, list: &[(&str, u32)]) -> SliceSpec {
    SliceSpec::new(DRIVER, node, bridges(list))
}

impl Cluster {
    fn start(test: &str) -> Option<Cluster> {
        let env = Envtest::start(test)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        env.apply_shipped_rbac();
        env.apply(OBJECTS);
        let token = env.token(NAMESPACE, Identity::DraPlugin.service_account(), Some(("Pod", "dra-a")));
        let dra = client(&rt, &env.kubeconfig_for("dra", &token));
        let c = Cluster { env, rt, dra, credential: jti(&token) };
        c.wait_for_policy();
        Some(c)
    }

    /// A policy takes effect a moment after it is created: wait until a dry run of a slice for
    /// node-b by our credential is refused by it.
    fn wait_for_policy(&self) {
        let api: Api<ResourceSlice> = Api::all(self.dra.clone());
        let probe: ResourceSlice = serde_json::from_value(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": "policy-probe"},
            "spec": {"driver": DRIVER, "nodeName": "node-b",
                     "pool": {"name": "node-b", "generation": 1, "resourceSliceCount": 1}}
        }))
        .expect("probe slice");
        let deadline = Instant::now() + POLICY_WAIT;
        loop {
            let pp = PostParams { dry_run: true, ..Default::default() };
            match self.bounded(api.create(&pp, &probe)) {
                Ok(Err(kube::Error::Api(s))) if s.message.contains(POLICY) => return,
                other => assert!(
                    Instant::now() < deadline,
                    "the policy {POLICY} is not in force after {POLICY_WAIT:?}: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One raw request, bounded.
    fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, tokio::time::error::Elapsed> {
        self.rt.block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
    }

    fn publish(&self, spec: &SliceSpec) -> Result<slice::Published, SliceError> {
        self.rt.block_on(slice::publish(&self.dra, spec, TIMEOUT))
    }

    /// A slice as admin reads it, or None.
    fn slice(&self, name: &str) -> Option<Value> {
        let (ok, out, err) = self.env.kubectl(&["get", "resourceslice", name, "-o", "json"], None);
        if !ok {
            assert!(err.contains("NotFound"), "kubectl get resourceslice {name}: {err}");
            return None;
        }
        Some(serde_json::from_str(&out).expect("slice JSON"))
    }

    /// Names of every slice in the cluster.
    fn slice_names(&self) -> Vec<String> {
        let list = self.env.get(&["resourceslices"]);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap_or("").to_owned())
            .collect();
        names.sort();
        names
    }
}

fn client(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> kube::Client {
    rt.block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
        kube::Client::try_from(config).expect("client")
    })
}

/// The devices of a slice as JSON, by name.
fn device<'a>(slice: &'a Value, name: &str) -> &'a Value {
    slice["spec"]["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no device {name} in {slice}"))
}

#[test]
fn the_dra_account_publishes_updates_and_withdraws_its_nodes_slice() {
    let Some(c) = Cluster::start("the_dra_account_publishes_updates_and_withdraws_its_nodes_slice") else { return };
    let name = slice::slice_name("node-a", DRIVER);
    let node_uid = c.env.get(&["node", "node-a"])["metadata"]["uid"].as_str().expect("node uid").to_owned();
    let others_before = (c.slice("gpu-node-a"), c.slice("ours-on-node-b"));
    c.env.apply(OLDER);

    // First publish: above the older slice's generation 7, which goes.
    let p = c.publish(&spec("node-a", &[("br-dpdk0", 9000), ("br1", 1500)])).expect("first publish");
    assert_eq!(p.name, name);
    assert!(p.generation > 7, "generation {} is not above the older slice's 7", p.generation);
    assert_eq!(p.devices, 2);
    assert!(c.slice("node-a-ovsdpdk-old").is_none(), "the older slice of the pool is deleted");
    let s = c.slice(&name).expect("our slice");
    assert_eq!(s["spec"]["driver"], DRIVER);
    assert_eq!(s["spec"]["nodeName"], "node-a");
    assert_eq!(s["spec"]["pool"], json!({"name": "node-a", "generation": p.generation, "resourceSliceCount": 1}));
    let owners = &s["metadata"]["ownerReferences"];
    assert_eq!(
        owners,
        &json!([{"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": node_uid, "controller": true}]),
        "owned by the Node, so it goes with it"
    );
    let br = device(&s, "br-dpdk0");
    assert_eq!(br["attributes"][format!("{DRIVER}/bridgeName")], json!({"string": "br-dpdk0"}));
    assert_eq!(br["attributes"][format!("{DRIVER}/mtu")], json!({"int": 9000}));
    assert_eq!(device(&s, "br1")["attributes"][format!("{DRIVER}/mtu")], json!({"int": 1500}));
    let ports = &br["capacity"][format!("{DRIVER}/ports")];
    assert_eq!(ports["value"], "32768");

    // What this API server (v1.36.2, default gates) kept of the consumable-capacity fields, and
    // that `publish` reports exactly that.
    let kept_multi = br.get("allowMultipleAllocations") == Some(&json!(true));
    let kept_policy = ports.get("requestPolicy").is_some();
    eprintln!(
        "envtest kube-apiserver kept allowMultipleAllocations: {kept_multi}, capacity requestPolicy: {kept_policy}; \
         publish reported consumable_capacity = {}",
        p.consumable_capacity
    );
    assert_eq!(p.consumable_capacity, kept_multi, "consumable_capacity reflects the read-back");
    if kept_policy {
        assert_eq!(ports["requestPolicy"], json!({"default": "1", "validRange": {"min": "1", "step": "1"}}));
    }

    // Unchanged: no write, the generation stays (a plugin restart does not churn the pool).
    let rv = s["metadata"]["resourceVersion"].clone();
    let again = c.publish(&spec("node-a", &[("br-dpdk0", 9000), ("br1", 1500)])).expect("unchanged republish");
    assert_eq!(again.generation, p.generation);
    assert_eq!(c.slice(&name).expect("our slice")["metadata"]["resourceVersion"], rv, "no write when unchanged");

    // Other bridges: the same object, updated in place, with a higher generation.
    let uid = s["metadata"]["uid"].clone();
    let changed = c.publish(&spec("node-a", &[("br-dpdk0", 1500)])).expect("republish with changed bridges");
    assert!(changed.generation > p.generation, "{} after {}", changed.generation, p.generation);
    let s = c.slice(&name).expect("our slice");
    assert_eq!(s["metadata"]["uid"], uid, "updated in place, not re-created");
    assert_eq!(s["spec"]["devices"].as_array().map(Vec::len), Some(1), "{s}");
    assert_eq!(device(&s, "br-dpdk0")["attributes"][format!("{DRIVER}/mtu")], json!({"int": 1500}));

    // Zero bridges: no devices for this node, our slice is gone.
    let none = c.publish(&spec("node-a", &[])).expect("publish of no bridges");
    assert_eq!((none.devices, none.generation), (0, 0));
    assert!(c.slice(&name).is_none(), "no slice with no bridges");

    // Withdraw (uninstall) deletes ours and counts them.
    c.publish(&spec("node-a", &[("br-dpdk0", 9000)])).expect("publish again");
    let withdrawn = c.rt.block_on(slice::withdraw(&c.dra, DRIVER, "node-a", TIMEOUT)).expect("withdraw");
    assert_eq!(withdrawn, 1);
    assert!(c.slice(&name).is_none());
    assert_eq!(c.rt.block_on(slice::withdraw(&c.dra, DRIVER, "node-a", TIMEOUT)), Ok(0), "idempotent");

    // Another driver's slice on this node and ours on node-b were never touched.
    assert_eq!((c.slice("gpu-node-a"), c.slice("ours-on-node-b")), others_before);
    assert_eq!(c.slice_names(), ["gpu-node-a", "ours-on-node-b"]);

    // Refused before any write: a bridge name that is no DNS label; a node that does not exist.
    let err = c.publish(&spec("node-a", &[("br_int", 1500)])).expect_err("br_int is no DNS label");
    assert!(matches!(&err, SliceError::Invalid { value, .. } if value == "br_int"), "{err}");
    let err = c.publish(&spec("node-x", &[("br0", 1500)])).expect_err("no such node");
    assert!(matches!(&err, SliceError::NodeNotFound { node } if node == "node-x"), "{err}");
    assert!(err.to_string().contains("node-x"), "{err}");
    assert_eq!(c.slice_names(), ["gpu-node-a", "ours-on-node-b"]);

    // A slice of another driver squatting on our name: the create's 409 is read, not overwritten.
    c.env.apply(&format!(
        "apiVersion: resource.k8s.io/v1\nkind: ResourceSlice\nmetadata: {{name: {name}}}\nspec:\n  driver: other.example.com\n  \
         nodeName: node-a\n  pool: {{name: node-a, generation: 1, resourceSliceCount: 1}}\n  devices: [{{name: x}}]\n"
    ));
    let squatter = c.slice(&name);
    let err = c.publish(&spec("node-a", &[("br-dpdk0", 9000)])).expect_err("our name is taken");
    assert!(matches!(&err, SliceError::NameTaken { driver, .. } if driver == "other.example.com"), "{err}");
    assert_eq!(c.slice(&name), squatter, "the other driver's slice is untouched");
    c.env.kubectl_ok(&["delete", "resourceslice", &name], None);

    // Every call of the credential is one of the DRA plugin's rows in src/rbac.rs.
    let calls: Vec<(String, String, String, i64)> = c
        .env
        .audit_events()
        .iter()
        .filter(|e| e["user"]["extra"]["authentication.kubernetes.io/credential-id"][0] == c.credential.as_str())
        .map(|e| {
            let r = &e["objectRef"];
            (
                e["verb"].as_str().unwrap_or("").to_owned(),
                r["apiGroup"].as_str().unwrap_or("").to_owned(),
                r["resource"].as_str().unwrap_or("").to_owned(),
                e["responseStatus"]["code"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(calls.len() >= 10, "too few calls of the DRA credential in the audit log: {calls:?}");
    for (verb, group, resource, _) in &calls {
        assert!(
            rbac::used_by(Identity::DraPlugin, group, resource, verb),
            "the DRA credential made {verb} {group}/{resource}, which is not in its role: {calls:?}"
        );
    }
    let refused: Vec<_> = calls.iter().filter(|c| !(200..300).contains(&c.3) && c.3 != 404).collect();
    // The only refusals: the policy probe's dry runs for node-b and the create on a taken name.
    assert!(refused.iter().all(|c| c.0 == "create" && (c.3 == 403 || c.3 == 409)), "unexpected refusals: {refused:?}");
}

#[test]
fn the_dra_accounts_credential_writes_no_slice_of_another_node() {
    let Some(c) = Cluster::start("the_dra_accounts_credential_writes_no_slice_of_another_node") else { return };
    let api: Api<ResourceSlice> = Api::all(c.dra.clone());
    let call = |what: &str, r: Result<Result<ResourceSlice, kube::Error>, tokio::time::error::Elapsed>| match r {
        Ok(Err(kube::Error::Api(s))) => {
            assert!(s.code == 403 || s.code == 422, "{what}: HTTP {}: {}", s.code, s.message);
            assert!(s.message.contains(POLICY), "{what}: refused, but not by {POLICY}: {}", s.message);
            eprintln!("refused as expected: {what}: {}", s.message);
        }
        other => panic!("{what}: not refused by the policy: {other:?}"),
    };

    // Through our own code: publishing node-b's pool with node-a's credential.
    let before = c.slice("ours-on-node-b");
    let err = c.publish(&spec("node-b", &[("br-dpdk0", 9000)])).expect_err("node-a's credential publishing node-b");
    assert!(
        matches!(&err, SliceError::Forbidden { message, .. } if message.contains(POLICY))
            || matches!(&err, SliceError::Api { status: 422, message, .. } if message.contains(POLICY)),
        "{err}"
    );
    assert_eq!(c.slice("ours-on-node-b"), before, "node-b's slice is unchanged");
    let err = c.rt.block_on(slice::withdraw(&c.dra, DRIVER, "node-b", TIMEOUT)).expect_err("withdraw node-b's");
    assert!(err.to_string().contains(POLICY), "{err}");
    assert_eq!(c.slice("ours-on-node-b"), before, "node-b's slice is still there");

    // Raw writes: create for node-b, move node-b's slice, move our own slice to node-b, delete.
    let foreign: ResourceSlice = serde_json::from_value(json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "forged-node-b"},
        "spec": {"driver": DRIVER, "nodeName": "node-b",
                 "pool": {"name": "node-b", "generation": 99, "resourceSliceCount": 1}, "devices": [{"name": "evil"}]}
    }))
    .unwrap();
    call("create a slice for node-b", c.bounded(api.create(&PostParams::default(), &foreign)));
    let mut b: ResourceSlice = serde_json::from_value(before.clone().expect("node-b's slice")).unwrap();
    b.spec.pool.generation = 99;
    call("update node-b's slice", c.bounded(api.replace("ours-on-node-b", &PostParams::default(), &b)));
    c.publish(&spec("node-a", &[("br-dpdk0", 9000)])).expect("its own node's slice");
    let name = slice::slice_name("node-a", DRIVER);
    let mut own: ResourceSlice = serde_json::from_value(c.slice(&name).unwrap()).unwrap();
    own.spec.node_name = Some("node-b".into());
    own.spec.pool.name = "node-b".into();
    // The server itself refuses this one before admission: nodeName and pool.name are immutable.
    match c.bounded(api.replace(&name, &PostParams::default(), &own)) {
        Ok(Err(kube::Error::Api(s))) => {
            assert!(s.message.contains(POLICY) || s.message.contains("immutable"), "moving refused how? {s:?}")
        }
        other => panic!("moving its own slice to node-b was not refused: {other:?}"),
    }
    match c.bounded(api.delete("ours-on-node-b", &DeleteParams::default())) {
        Ok(Err(kube::Error::Api(s))) => assert!(s.message.contains(POLICY), "delete refused, not by the policy: {s:?}"),
        other => panic!("delete of node-b's slice not refused: {other:?}"),
    }
    assert_eq!(c.slice("ours-on-node-b"), before, "node-b's slice survived every attempt");
    assert!(c.slice("forged-node-b").is_none());
    assert_eq!(c.slice(&name).unwrap()["spec"]["nodeName"], "node-a");

    // A token of the account bound to nothing carries no node: every write is refused.
    let unbound = c.env.token(NAMESPACE, Identity::DraPlugin.service_account(), None);
    let unbound = client(&c.rt, &c.env.kubeconfig_for("dra-unbound", &unbound));
    let err =
        c.rt.block_on(slice::publish(&unbound, &spec("node-a", &[("br-dpdk0", 1500)]), TIMEOUT))
            .expect_err("an unbound token");
    assert!(err.to_string().contains("bound to no node"), "{err}");
}

#[test]
fn without_consumable_capacity_the_slice_is_published_and_the_loss_reported() {
    let test = "without_consumable_capacity_the_slice_is_published_and_the_loss_reported";
    let Some(env) = Envtest::start_with(test, "--feature-gates=DRAConsumableCapacity=false") else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    env.apply("apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n");
    let admin = client(&rt, &env.admin_kubeconfig());
    let s = spec("node-a", &[("br-dpdk0", 9000)]);
    let p = rt.block_on(slice::publish(&admin, &s, TIMEOUT)).expect("publish");
    assert!(!p.consumable_capacity, "the gate is off, yet publish reports consumable capacity: {p:?}");
    assert_eq!(p.devices, 1);
    let stored = env.get(&["resourceslice", &p.name]);
    let br = device(&stored, "br-dpdk0");
    assert!(br.get("allowMultipleAllocations").is_none(), "the server kept allowMultipleAllocations: {br}");
    eprintln!("with DRAConsumableCapacity=false the server stored: {br}");
    // The dropped fields do not count as a change: a restart does not rewrite the slice.
    let rv = stored["metadata"]["resourceVersion"].clone();
    let again = rt.block_on(slice::publish(&admin, &s, TIMEOUT)).expect("republish");
    assert_eq!(again.generation, p.generation);
    assert_eq!(env.get(&["resourceslice", &p.name])["metadata"]["resourceVersion"], rv, "rewritten though unchanged");
}

/// The test's prerequisites: the account it uses is in the shipped files (a rename fails here,
/// not in a skipped run).
#[test]
fn the_dra_account_and_policy_are_shipped() {
    let dir = Path::new(support::envtest::SHIPPED_CONFIG);
    let sa = std::fs::read_to_string(dir.join("serviceaccount.yaml")).unwrap();
    assert!(sa.contains(&format!("name: {}\n", Identity::DraPlugin.service_account())));
    let policy = std::fs::read_to_string(dir.join("admission-policy.yaml")).unwrap();
    assert!(policy.contains(&format!("name: {POLICY}\n")));
    assert!(support::envtest::SHIPPED_RBAC.contains(&"admission-policy.yaml"));
}

/// The plugin's settings file (`USERSPACE_CNI_CONFIG`), replaced whole (rename) so a pass never
/// reads half of it.
fn write_settings(node: &support::Node, text: &str) {
    let tmp = node.path("userspace.toml.new");
    std::fs::write(&tmp, text).expect("settings file");
    std::fs::rename(&tmp, node.path("userspace.toml")).expect("replace the settings file");
}

/// Our slice once it holds exactly `devices` at a generation above `above`, as admin reads it;
/// bounded, with the plugin's state and log when it never does.
fn wait_for_devices(c: &Cluster, plugin: &Plugin, devices: &[&str], above: i64) -> Value {
    let name = slice::slice_name("node-a", DRIVER);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.slice(&name);
        let found = |s: &Value| -> Vec<String> {
            let mut names: Vec<String> = s["spec"]["devices"]
                .as_array()
                .map(|d| d.iter().filter_map(|d| d["name"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            names.sort();
            names
        };
        if let Some(s) = &s {
            if found(s) == devices && s["spec"]["pool"]["generation"].as_i64().is_some_and(|g| g > above) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no slice with devices {devices:?} above generation {above} within 30 s; last: {s:?}\n{}",
            plugin.report()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A changed settings file reaches the slice by a restart: the plugin re-reads its settings every
/// pass and exits 0 when a `dra_*` key or `node_name` changed, so the DaemonSet restarts it and
/// the new process publishes the new device set at a higher `pool.generation`. A file changed
/// elsewhere, or not at all, keeps it running. The plugin runs as its own process with the DRA
/// account's token; its pass period is shortened through the test builds' knob
/// (`dra::run::PASS_EVERY_ENV`, feature `failpoints`); a build without it skips.
#[test]
fn a_changed_dra_setting_stops_the_plugin_and_the_restarted_one_republishes() {
    let test = "a_changed_dra_setting_stops_the_plugin_and_the_restarted_one_republishes";
    if !run::PASS_EVERY_OVERRIDABLE {
        eprintln!("skipped: {test} needs a build with the failpoints feature (--features testkit)");
        return;
    }
    let Some(c) = Cluster::start(test) else { return };
    let node = support::Node::new();
    let token = c.env.token(NAMESPACE, Identity::DraPlugin.service_account(), Some(("Pod", "dra-a")));
    let kubeconfig = c.env.kubeconfig_for("dra-plugin", &token);
    let every = Duration::from_millis(300);
    // The bridges come from the file only (the environment would win over it).
    let mut env: Vec<(String, String)> = dra_plugin::settings_env(&node, "", &kubeconfig, "node-a")
        .into_iter()
        .filter(|(k, _)| k != "USERSPACE_CNI_DRA_BRIDGES")
        .collect();
    env.push((run::PASS_EVERY_ENV.into(), every.as_millis().to_string()));
    write_settings(&node, "dra_bridges = [\"br-one=1500\"]\n");

    let mut plugin = Plugin::start(&node, &env, "plugin-1.log");
    let first = wait_for_devices(&c, &plugin, &["br-one"], 0);
    let generation = first["spec"]["pool"]["generation"].as_i64().expect("generation");

    // The same DRA settings in a rewritten file with another, non-DRA key: it keeps running
    // through many passes.
    write_settings(&node, "# rewritten\ndra_bridges = [\"br-one=1500\"]\ndeadline_ms = 9000\n");
    std::thread::sleep(every * 10);
    assert!(plugin.is_running(), "a file with the same DRA settings stopped the plugin:\n{}", plugin.report());

    // Another bridge: the next pass stops the plugin, cleanly, saying why.
    write_settings(&node, "dra_bridges = [\"br-one=1500\", \"br-two=9000\"]\ndeadline_ms = 9000\n");
    let status = plugin.wait_exit(every * 10 + Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "the plugin exits 0 for its restart:\n{}", plugin.log());
    assert!(plugin.log().contains("the DRA settings changed"), "the log says why:\n{}", plugin.log());

    // The DaemonSet's restart: the new process publishes both bridges, a newer generation.
    let mut plugin = Plugin::start(&node, &env, "plugin-2.log");
    let second = wait_for_devices(&c, &plugin, &["br-one", "br-two"], generation);
    assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"], "the same slice, updated in place");
    assert_eq!(device(&second, "br-two")["attributes"][format!("{DRIVER}/mtu")], json!({"int": 9000}));
    assert_eq!(plugin.stop().code(), Some(0), "SIGTERM ends it cleanly:\n{}", plugin.log());
}
