//! Pod annotations (`userspace/configuration-data`, `userspace/mapped-dir`) through the testkit
//! binary and its real kube client, against the fake API server (real HTTPS, tests/fakeapi): the
//! entry and mapped-dir, the pod volume deciding the shared dir, concurrent interfaces, 409
//! retries, 403/404, an API server that is down or slow on ADD and on DEL, credentials that are
//! missing for a config that did not ask, and the no-Kubernetes config file.
#![cfg(all(feature = "testkit", feature = "kubernetes"))]

mod support;

use support::sandbox;

use fakeapi::{FakeApi, Method, Reply};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{recording_conf, Node, Run};
use userspace_cni_testkit as testkit;

const NS: &str = "ns1";
const POD: &str = "pod-a";
const UID: &str = "u";
const CID: &str = "ab0000000000000000000000000000cd";
const CID12: &str = "ab0000000000";
const MOUNT: &str = "/var/run/vhost";

struct Env {
    api: FakeApi,
    node: Node,
    kubeconfig: PathBuf,
}

impl Env {
    /// A node whose allowed roots include its CNI config dir (for the kubeconfig) and a fake API
    /// server with the kubeconfig written.
    fn new() -> Env {
        let api = FakeApi::start();
        let node = Node::new();
        let kubeconfig = node.path("net.d/multus.kubeconfig");
        api.write_kubeconfig(&kubeconfig);
        Env { api, node, kubeconfig }
    }

    /// The pod with a `shared-dir` hostPath volume under the node's shared base, mounted at MOUNT.
    fn host_path_pod(&self) -> PathBuf {
        let host = self.node.shared_base().join("pod-a");
        self.api.add_pod(NS, POD, UID, pod_spec(json!({"hostPath": {"path": host.display().to_string()}})));
        host
    }

    fn conf(&self, name: &str) -> Value {
        let mut c = recording_conf("1.1.0", name);
        c["kubeconfig"] = json!(self.kubeconfig.display().to_string());
        c
    }

    fn cni(&self, verb: &str, ifname: &str, conf: &Value, extra: &[(&str, &str)]) -> Run {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={POD};K8S_POD_UID={UID}");
        let mut env = vec![("CNI_ARGS", args.as_str())];
        env.extend_from_slice(extra);
        self.node.cni(verb, CID, ifname, conf, &env)
    }

    fn entries(&self) -> Vec<Value> {
        self.api
            .annotations(NS, POD)
            .get("userspace/configuration-data")
            .and_then(Value::as_str)
            .map(|s| serde_json::from_str::<Vec<Value>>(s).expect("configuration-data is a JSON array"))
            .unwrap_or_default()
    }

    /// Nothing of any attachment is left: fake dataplane, records, sockets, config files.
    fn assert_clean(&self, why: &str) {
        let dp = testkit::load(&self.node.state_dir());
        assert!(dp.ports.is_empty() && dp.bridges.is_empty(), "{why}: dataplane left: {dp:?}");
        let left: Vec<String> = self
            .node
            .leftovers()
            .into_iter()
            .filter(|p| {
                let fixture = p.starts_with("net.d") || p == "kubelet" || p.starts_with("kubelet/");
                // The pod's own hostPath dir is never removed by us (but must be empty).
                let pod_volume = p == "shared/pod-a";
                // host-local's own bookkeeping (its lock and last_reserved_ip.*) may stay.
                let ipam = p == "ipam"
                    || (p.starts_with("ipam/")
                        && (p.matches('/').count() == 1 || p.ends_with("/lock") || p.contains("/last_reserved_ip.")));
                !(fixture || pod_volume || ipam)
            })
            .collect();
        assert!(left.is_empty(), "{why}: files left: {left:?}");
    }
}

fn pod_spec(volume: Value) -> Value {
    let mut vol = json!({"name": "shared-dir"});
    if let (Some(v), Some(src)) = (vol.as_object_mut(), volume.as_object()) {
        v.extend(src.clone());
    }
    json!({
        "containers": [{"name": "dpdk", "image": "dpdk-app",
                        "volumeMounts": [{"name": "shared-dir", "mountPath": MOUNT}]}],
        "volumes": [vol]
    })
}

fn with_ipam(node: &Node, mut c: Value) -> Value {
    c["ipam"] = json!({
        "type": "host-local",
        "dataDir": node.path("ipam").display().to_string(),
        "ranges": [[{"subnet": "10.30.0.0/24", "gateway": "10.30.0.1"}]]
    });
    c
}

fn leases(node: &Node, network: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(node.path("ipam").join(network)) else { return Vec::new() };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip."))
        .collect()
}

#[test]
fn add_writes_this_interfaces_entry_and_mapped_dir_and_del_removes_them() {
    let env = Env::new();
    let host_dir = env.host_path_pod();
    env.api.set_annotation(NS, POD, "k8s.v1.cni.cncf.io/network-status", "[]");
    let mut c = env.conf("ann-net");
    // Host side client: the workload serves the socket (and CHECK does not look for one).
    c["host"]["vhost"]["mode"] = json!("client");
    c["container"]["vhost"]["mode"] = json!("server");
    let res = env.cni("ADD", "net1", &c, &[]).expect_ok();
    let sock = format!("{MOUNT}/{CID12}-net1");
    assert_eq!(sandbox(&res)["socketPath"], sock, "the pod-side path comes from the volumeMount: {res}");
    assert!(host_dir.is_dir(), "the hostPath volume's dir on the host holds the socket");

    let a = env.api.annotations(NS, POD);
    assert_eq!(a["userspace/mapped-dir"], "/var/run/vhost/", "mapped-dir ends in '/': {a:?}");
    assert_eq!(a["k8s.v1.cni.cncf.io/network-status"], "[]", "other annotations kept");
    let entries = env.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        (e["containerId"].as_str(), e["ifName"].as_str(), e["name"].as_str()),
        (Some(CID), Some("net1"), Some("ann-net"))
    );
    assert_eq!(e["config"]["iftype"], "vhostuser");
    assert_eq!(e["config"]["vhost"]["mode"], "server", "the workload's mode (host is client): {e}");
    assert_eq!(e["config"]["vhost"]["socketfile"], format!("{CID12}-net1"));
    assert_eq!(sandbox(&e["ipResult"])["socketPath"], sock, "ipResult is the CNI result: {e}");
    assert!(!env.node.shared_base().join(CID12).exists(), "no upstream-layout dir when the pod has a volume");
    let cfg_file = host_dir.join(format!("configData-{CID12}-net1.json"));
    assert!(!cfg_file.exists(), "annotations replace the config file");

    let pod = env.api.pod(NS, POD).expect("pod");
    assert_eq!(pod["status"]["futureField"], json!({"kept": true}), "a PUT keeps status fields our types do not know");
    for s in env.api.seen() {
        assert!(matches!(s.method.as_str(), "GET" | "PUT"), "only GET and PUT (no patch): {s:?}");
        if s.method == "PUT" {
            assert!(s.path.ends_with("/pods/pod-a/status"), "writes go to pods/status: {s:?}");
            assert!(
                s.resource_version.as_deref().is_some_and(|rv| !rv.is_empty()),
                "PUT carries the resourceVersion: {s:?}"
            );
        }
    }

    env.cni(
        "CHECK",
        "net1",
        &{
            let mut c = c.clone();
            c["prevResult"] = res.clone();
            c
        },
        &[("CNI_COMMAND", "CHECK")],
    )
    .expect_ok();

    env.cni("DEL", "net1", &c, &[]).expect_ok();
    let a = env.api.annotations(NS, POD);
    assert!(!a.contains_key("userspace/configuration-data") && !a.contains_key("userspace/mapped-dir"), "{a:?}");
    assert_eq!(a["k8s.v1.cni.cncf.io/network-status"], "[]");
    assert!(host_dir.is_dir(), "the pod's hostPath dir is not ours to remove");
    env.assert_clean("after DEL");
    env.cni("DEL", "net1", &c, &[]).expect_ok();
}

#[test]
fn empty_dir_volume_is_found_under_the_kubelet_root() {
    let env = Env::new();
    env.api.add_pod(NS, POD, UID, pod_spec(json!({"emptyDir": {}})));
    let empty = env.node.path("kubelet/pods").join(UID).join("volumes/kubernetes.io~empty-dir/shared-dir");
    let c = env.conf("ann-ed");
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(7);
    assert!(msg.contains("kubelet_root") && msg.contains(&empty.display().to_string()), "{msg}");
    std::fs::create_dir_all(&empty).expect("kubelet's emptyDir");
    let res = env.cni("ADD", "net1", &c, &[]).expect_ok();
    assert_eq!(sandbox(&res)["socketPath"], format!("{MOUNT}/{CID12}-net1"));
    assert!(empty.join(format!("{CID12}-net1")).exists(), "socket in the emptyDir on the host");
    env.cni("DEL", "net1", &c, &[]).expect_ok();
    assert!(empty.is_dir() && std::fs::read_dir(&empty).expect("read").next().is_none(), "emptyDir kept, empty");
    env.assert_clean("after DEL");
}

#[test]
fn two_interfaces_added_concurrently_are_both_present_and_del_of_one_keeps_the_other() {
    let env = Env::new();
    env.host_path_pod();
    let c = env.conf("ann-two");
    for round in 0..3 {
        if round > 0 {
            // Slow answers to reads: both ADDs read the pod at the same resourceVersion, so one
            // PUT must meet a 409 and re-apply on top of the other's entry.
            env.api.fault(Some(Method::GET), Reply::SlowAnswer(Duration::from_millis(300)), None);
        }
        let (r1, r2) = std::thread::scope(|s| {
            let a = s.spawn(|| env.cni("ADD", "net1", &c, &[]));
            let b = s.spawn(|| env.cni("ADD", "net2", &c, &[]));
            (a.join().expect("thread"), b.join().expect("thread"))
        });
        r1.expect_ok();
        r2.expect_ok();
        let mut names: Vec<String> =
            env.entries().iter().filter_map(|e| e["ifName"].as_str().map(str::to_owned)).collect();
        names.sort();
        assert_eq!(names, vec!["net1", "net2"], "round {round}: both entries present");
        env.cni("DEL", "net1", &c, &[]).expect_ok();
        let names: Vec<String> = env.entries().iter().filter_map(|e| e["ifName"].as_str().map(str::to_owned)).collect();
        assert_eq!(names, vec!["net2"], "round {round}: DEL of net1 leaves net2");
        assert_eq!(env.api.annotations(NS, POD)["userspace/mapped-dir"], "/var/run/vhost/");
        env.cni("DEL", "net2", &c, &[]).expect_ok();
        assert!(env.entries().is_empty());
    }
    let conflicts = env.api.seen().iter().filter(|s| s.status == 409).count();
    eprintln!("409 conflicts seen over 3 concurrent rounds: {conflicts}");
    assert!(conflicts >= 1, "the overlapping rounds must have raced on the resourceVersion");
    env.assert_clean("after all DELs");
}

#[test]
fn conflict_409_is_re_read_and_re_applied() {
    let env = Env::new();
    env.host_path_pod();
    env.api.concurrent_writes(3);
    let c = env.conf("ann-409");
    env.cni("ADD", "net1", &c, &[]).expect_ok();
    let seen = env.api.seen();
    let puts: Vec<u16> = seen.iter().filter(|s| s.method == "PUT").map(|s| s.status).collect();
    assert_eq!(puts, vec![409, 409, 409, 200], "three stale writes, then success: {seen:?}");
    let rereads = seen.iter().filter(|s| s.method == "GET" && s.path.ends_with("/status")).count();
    assert_eq!(rereads, 3, "each 409 re-reads the pod: {seen:?}");
    let a = env.api.annotations(NS, POD);
    assert_eq!(
        a.keys().filter(|k| k.starts_with("other.example/")).count(),
        3,
        "the other writer's changes survive: {a:?}"
    );
    assert_eq!(env.entries().len(), 1);
    env.cni("DEL", "net1", &c, &[]).expect_ok();
    env.assert_clean("after DEL");
}

#[test]
fn endless_conflicts_give_up_with_code_11_and_roll_back() {
    let env = Env::new();
    env.host_path_pod();
    env.api.concurrent_writes(1000);
    let c = with_ipam(&env.node, env.conf("ann-busy"));
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(11);
    assert!(msg.contains("409") && msg.contains("ns1/pod-a"), "{msg}");
    let puts = env.api.seen().iter().filter(|s| s.method == "PUT" && s.status == 409).count();
    // ADD's bounded retries (9 PUTs), then the rollback's own bounded attempt (9 more).
    assert!((9..=18).contains(&puts), "bounded retries: {puts} PUTs");
    assert!(leases(&env.node, "ann-busy").is_empty(), "no lease left");
    env.assert_clean("after the failed ADD");
}

#[test]
fn forbidden_is_reported_with_what_to_grant_and_rolls_back() {
    let env = Env::new();
    env.host_path_pod();
    let c = env.conf("ann-403");
    env.api.fault(Some(Method::PUT), Reply::Status(403), None);
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(7);
    assert!(msg.contains("403") && msg.contains("pods/status") && msg.contains("update"), "{msg}");
    assert!(msg.contains(&env.kubeconfig.display().to_string()), "names the credentials: {msg}");
    env.assert_clean("after a refused PUT");

    // Refused already at the read: nothing at all happens on the node.
    env.api.clear_faults();
    env.api.fault(Some(Method::GET), Reply::Status(403), None);
    let before = env.node.snapshot();
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(7);
    assert!(msg.contains("403") && msg.contains("GET pod ns1/pod-a"), "{msg}");
    assert_eq!(env.node.snapshot(), before, "a refused GET changes nothing");
}

#[test]
fn unknown_pod_is_code_3_and_changes_nothing() {
    let env = Env::new();
    let c = env.conf("ann-404");
    let before = env.node.snapshot();
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(3);
    assert!(msg.contains("ns1/pod-a") && msg.contains("404"), "{msg}");
    assert_eq!(env.node.snapshot(), before);
}

#[test]
fn api_down_on_add_rolls_back_port_dir_lease_and_record() {
    let mut env = Env::new();
    env.host_path_pod();
    let c = with_ipam(&env.node, env.conf("ann-down"));
    // Up for the read, gone for the write: everything before the annotation step is undone.
    env.api.fault(Some(Method::PUT), Reply::Drop, None);
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(11);
    assert!(msg.contains("unreachable") && msg.contains("PUT pod ns1/pod-a/status"), "{msg}");
    assert!(leases(&env.node, "ann-down").is_empty(), "lease released");
    env.assert_clean("after the API went away mid-ADD");
    let calls = testkit::calls(&env.node.state_dir());
    assert!(calls.iter().any(|l| l.starts_with("ADD undo port")), "the port was made and undone: {calls:?}");

    // Down from the start: the read fails before any side effect.
    env.api.stop();
    let before = env.node.snapshot();
    let msg = env.cni("ADD", "net1", &c, &[]).expect_err(11);
    assert!(msg.contains("unreachable"), "{msg}");
    assert_eq!(env.node.snapshot(), before, "nothing happened on the node");
}

#[test]
fn api_down_on_del_still_cleans_up_and_succeeds() {
    let mut env = Env::new();
    let host_dir = env.host_path_pod();
    let c = with_ipam(&env.node, env.conf("ann-deldown"));
    env.cni("ADD", "net1", &c, &[]).expect_ok();
    assert_eq!(leases(&env.node, "ann-deldown").len(), 1);
    env.api.stop();
    let run = env.cni("DEL", "net1", &c, &[]);
    run.expect_ok();
    assert!(run.stderr.contains("could not remove this interface"), "a warning is logged: {}", run.stderr);
    assert!(leases(&env.node, "ann-deldown").is_empty(), "lease released");
    assert!(!host_dir.join(format!("{CID12}-net1")).exists(), "socket removed");
    env.assert_clean("after DEL with the API down");
}

#[test]
fn slow_api_times_out_within_the_setting() {
    let env = Env::new();
    env.host_path_pod();
    env.api.fault(Some(Method::GET), Reply::Delay(Duration::from_secs(5)), None);
    let c = env.conf("ann-slow");
    let before = env.node.snapshot();
    let started = Instant::now();
    let msg = env.cni("ADD", "net1", &c, &[("USERSPACE_CNI_TIMEOUT_MS", "400")]).expect_err(11);
    let took = started.elapsed();
    assert!(msg.contains("400 ms") || msg.contains("within"), "{msg}");
    assert!(took < Duration::from_millis(2500), "bounded by timeout_ms: took {took:?}");
    assert_eq!(env.node.snapshot(), before);

    // A slow write: the ADD still rolls back within its bounds.
    env.api.clear_faults();
    env.api.fault(Some(Method::PUT), Reply::Delay(Duration::from_secs(5)), None);
    let started = Instant::now();
    env.cni("ADD", "net1", &c, &[("USERSPACE_CNI_TIMEOUT_MS", "400")]).expect_err(11);
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    env.assert_clean("after a timed-out write");
}

#[test]
fn del_of_a_deleted_pod_succeeds() {
    let env = Env::new();
    env.host_path_pod();
    let c = env.conf("ann-gone");
    env.cni("ADD", "net1", &c, &[]).expect_ok();
    // The pod object is gone (404) by the time the runtime tears the sandbox down.
    env.api.fault(None, Reply::Status(404), None);
    let run = env.cni("DEL", "net1", &c, &[]);
    run.expect_ok();
    assert!(!run.stderr.contains("WARN"), "a gone pod is not worth a warning: {}", run.stderr);
    env.assert_clean("after DEL");
}

#[test]
fn host_path_outside_the_allowed_roots_is_refused() {
    let env = Env::new();
    env.api.add_pod(NS, POD, UID, pod_spec(json!({"hostPath": {"path": "/etc"}})));
    let before = env.node.snapshot();
    let msg = env.cni("ADD", "net1", &env.conf("ann-root"), &[]).expect_err(7);
    assert!(msg.contains("hostPath") && msg.contains("/etc"), "{msg}");
    assert_eq!(env.node.snapshot(), before);
}

#[test]
fn a_replaced_pod_is_not_annotated() {
    let env = Env::new();
    env.api.add_pod(NS, POD, "other-uid", pod_spec(json!({"emptyDir": {}})));
    let before = env.node.snapshot();
    let msg = env.cni("ADD", "net1", &env.conf("ann-uid"), &[]).expect_err(3);
    assert!(msg.contains("other-uid") && msg.contains("replaced"), "{msg}");
    assert_eq!(env.node.snapshot(), before);
}

#[test]
fn missing_credentials_never_fail_a_config_that_did_not_ask() {
    let env = Env::new();
    // The setting asks for the in-cluster account, which this process does not have; the config
    // itself has no kubeconfig: ADD works, without annotations (the config file instead).
    let c = recording_conf("1.1.0", "ann-none");
    let run = env.cni("ADD", "net1", &c, &[("USERSPACE_CNI_ANNOTATIONS", "in-cluster")]);
    run.expect_ok();
    assert!(run.stderr.contains("in-cluster"), "the skip is logged: {}", run.stderr);
    assert!(env.node.shared_base().join(CID12).join(format!("configData-{CID12}-net1.json")).exists());
    env.cni("DEL", "net1", &c, &[("USERSPACE_CNI_ANNOTATIONS", "in-cluster")]).expect_ok();
    // A kubeconfig but no pod in CNI_ARGS (not Kubernetes): no API call at all.
    let kc = env.conf("ann-nopod");
    env.node.cni("ADD", CID, "net1", &kc, &[]).expect_ok();
    env.node.cni("DEL", CID, "net1", &kc, &[]).expect_ok();
    assert!(env.api.seen().is_empty(), "nobody asked the API: {:?}", env.api.seen());
    env.assert_clean("after DEL");
}

#[test]
fn without_kubernetes_the_configuration_data_is_a_file_in_the_shared_dir() {
    let node = Node::new();
    let c = with_ipam(&node, recording_conf("1.0.0", "file-net"));
    let res = node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    let dir = node.shared_base().join(CID12);
    let file = dir.join(format!("configData-{CID12}-net1.json"));
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).expect("config file")).expect("JSON");
    assert_eq!(doc["containerId"], CID);
    assert_eq!(doc["ifName"], "net1");
    assert_eq!(doc["name"], "file-net");
    assert_eq!(doc["config"]["vhost"]["socketfile"], format!("{CID12}-net1"));
    assert_eq!(doc["config"]["vhost"]["mode"], "client");
    assert_eq!(doc["ipResult"], res, "ipResult is exactly the CNI result the runtime got");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o444, "read-only for everyone");
    // A second interface of the pod gets its own file; DEL removes only its own.
    node.cni("ADD", CID, "net2", &c, &[]).expect_ok();
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
    assert!(!file.exists());
    assert!(dir.join(format!("configData-{CID12}-net2.json")).exists(), "net2's file stays");
    node.cni("DEL", CID, "net2", &c, &[]).expect_ok();
    assert!(!dir.exists(), "the shared dir goes with its last file");
    assert!(leases(&node, "file-net").is_empty());
}

#[test]
fn config_file_never_follows_a_link_planted_by_the_pod() {
    let node = Node::new();
    let c = recording_conf("1.1.0", "file-link");
    let dir = node.shared_base().join(CID12);
    std::fs::create_dir_all(&dir).expect("dir");
    let victim = node.path("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    let name = format!("configData-{CID12}-net1.json");
    std::os::unix::fs::symlink(&victim, dir.join(&name)).expect("plant link");
    std::os::unix::fs::symlink(&victim, dir.join(format!(".{name}.tmp"))).expect("plant temp link");
    node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious", "the link target is untouched");
    assert!(!std::fs::symlink_metadata(dir.join(&name)).expect("file").file_type().is_symlink());
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
}

/// Not a test of behaviour: ADD and DEL latency with annotations against the fake API server
/// (`cargo test --release --features testkit --test k8s_annotations -- --ignored --nocapture`).
/// Wall time includes process start; "in-process" is the plugin's own `done elapsed_us` (less
/// sensitive to a loaded machine), and the per-step times are the medians of the debug log.
#[test]
#[ignore = "measurement; run by hand"]
fn measure_add_latency_with_annotations() {
    let env = Env::new();
    env.host_path_pod();
    let mut c = env.conf("ann-bench");
    c["logLevel"] = json!("debug");
    let mut plain = recording_conf("1.1.0", "ann-bench");
    plain["logLevel"] = json!("debug");
    let median = |v: &mut Vec<u64>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    // `... step="<name>" ... op="apply"}: elapsed_us=N` and `done elapsed_us=N`.
    let micros = |line: &str| line.rsplit("elapsed_us=").next().and_then(|r| r.split(' ').next()?.parse::<u64>().ok());
    for (label, conf) in [("with annotations", &c), ("without (config file)", &plain)] {
        let (mut add, mut del, mut inproc) = (Vec::new(), Vec::new(), Vec::new());
        let mut steps: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for _ in 0..50 {
            let t = Instant::now();
            let run = env.cni("ADD", "net1", conf, &[]);
            add.push(t.elapsed().as_micros() as u64);
            run.expect_ok();
            for line in run.stderr.lines() {
                if line.contains(" done ") {
                    inproc.extend(micros(line));
                } else if let Some(step) = line.split("step=\"").nth(1).and_then(|r| r.split('"').next()) {
                    if line.contains("op=\"apply\"") {
                        steps.entry(step.to_owned()).or_default().extend(micros(line));
                    }
                }
            }
            let t = Instant::now();
            env.cni("DEL", "net1", conf, &[]).expect_ok();
            del.push(t.elapsed().as_micros() as u64);
        }
        let per_step: Vec<String> = steps.iter_mut().map(|(k, v)| format!("{k} {} us", median(v))).collect();
        eprintln!(
            "{label}: ADD median {} us wall, {} us in-process; DEL median {} us wall (50 runs); steps: {}",
            median(&mut add),
            median(&mut inproc),
            median(&mut del),
            per_step.join(", ")
        );
    }
}
