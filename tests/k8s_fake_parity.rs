//! The fake API server (tests/fakeapi) against a real kube-apiserver (envtest): the same request
//! to both, the answers compared, on every point where a test of ours could rely on the fake:
//! `PUT pods/status` without a status, `PUT nodes` with a status and without a resourceVersion,
//! annotations over 256 KiB, a uid precondition that does not hold, and the 403's wording. The
//! fake stays for what a real server cannot show on demand (injected 409 storms, 500s, hangs);
//! these tests keep it honest. Skipped, with a message, where envtest is absent.

mod support;

use fakeapi::{FakeApi, Method, Reply};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::params::{GetParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use support::envtest::Envtest;

const NS: &str = "parity";
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const OWNER: &str = "00000000-0000-0000-0000-000000000001";

/// An answer reduced to what the tests compare: (HTTP status, reason, message, object).
#[derive(Debug, Clone)]
struct Answer {
    code: u16,
    reason: String,
    message: String,
    object: Value,
}

/// Both servers, and a client of each with full rights (admin on the real one).
struct Both {
    env: Envtest,
    fake: FakeApi,
    rt: tokio::runtime::Runtime,
    real: kube::Client,
    faked: kube::Client,
    _dir: tempfile::TempDir,
}

fn client(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> kube::Client {
    rt.block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
        kube::Client::try_from(config).expect("client")
    })
}

fn pods() -> Request {
    Request::new(format!("/api/v1/namespaces/{NS}/pods"))
}

fn nodes() -> Request {
    Request::new("/api/v1/nodes")
}

/// The same pod on both servers: a spec, an owner reference, the status a new pod has.
fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "annotations": {"a": "1"},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": OWNER}]},
           "spec": {"containers": [{"name": "c", "image": "i"}]}})
}

impl Both {
    fn start(test: &str) -> Option<Both> {
        let env = Envtest::start(test)?;
        let fake = FakeApi::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let fake_kc = dir.path().join("fake.kubeconfig");
        fake.write_kubeconfig(&fake_kc);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let real = client(&rt, &env.admin_kubeconfig());
        let faked = client(&rt, &fake_kc);
        env.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n---\napiVersion: v1\nkind: ServiceAccount\n\
             metadata: {{name: default, namespace: {NS}}}\n"
        ));
        Some(Both { env, fake, rt, real, faked, _dir: dir })
    }

    /// Create `pod` on both; the fake gets the object the real server made of it (uid, status).
    fn add_pod(&self, pod: &Value) {
        let name = pod["metadata"]["name"].as_str().expect("name");
        let body = serde_json::to_vec(pod).expect("json");
        let created =
            self.call(self.real.request::<Value>(pods().create(&PostParams::default(), body).expect("request")));
        assert_eq!(created.code, 200, "create pod {name} on the real server: {created:?}");
        let mut object = created.object;
        if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        self.fake.add_pod_object(object);
    }

    fn call<F: Future<Output = Result<Value, kube::Error>>>(&self, fut: F) -> Answer {
        answer(self.rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, fut).await }))
    }

    /// `req` built for each server by `build` (from the object that server holds), sent to both.
    fn both(
        &self,
        build: impl Fn(&Value) -> http::Request<Vec<u8>>,
        read: impl Fn() -> http::Request<Vec<u8>>,
    ) -> (Answer, Answer) {
        let real_now = self.call(self.real.request::<Value>(read()));
        let fake_now = self.call(self.faked.request::<Value>(read()));
        assert_eq!(real_now.code, 200, "real GET: {real_now:?}");
        assert_eq!(fake_now.code, 200, "fake GET: {fake_now:?}");
        let real = self.call(self.real.request::<Value>(build(&real_now.object)));
        let fake = self.call(self.faked.request::<Value>(build(&fake_now.object)));
        eprintln!(
            "real: {} {} {}\nfake: {} {} {}",
            real.code, real.reason, real.message, fake.code, fake.reason, fake.message
        );
        (real, fake)
    }
}

fn answer(r: Result<Result<Value, kube::Error>, tokio::time::error::Elapsed>) -> Answer {
    match r {
        Ok(Ok(object)) => {
            // kube hides 200 from 201: any object is a success here.
            Answer {
                code: if object.get("kind").is_some() { 200 } else { 0 },
                reason: String::new(),
                message: String::new(),
                object,
            }
        }
        Ok(Err(kube::Error::Api(s))) => {
            Answer { code: s.code, reason: s.reason, message: s.message, object: Value::Null }
        }
        Ok(Err(e)) => panic!("not an API answer: {e}"),
        Err(_) => panic!("no answer within {CALL_TIMEOUT:?}"),
    }
}

/// A message with the parts that differ between two servers by nature (uids, user names) replaced.
fn shape(message: &str, replace: &[&str]) -> String {
    let mut m = message.to_owned();
    for r in replace {
        if !r.is_empty() {
            m = m.replace(r, "<x>");
        }
    }
    m
}

#[test]
fn pods_status_put_without_status_leaves_only_qos_class_and_keeps_owner_references_on_both() {
    let Some(b) =
        Both::start("pods_status_put_without_status_leaves_only_qos_class_and_keeps_owner_references_on_both")
    else {
        return;
    };
    b.add_pod(&pod("no-status"));
    // A status with more than qosClass on both, as a kubelet would have written it.
    for (who, c) in [("real", &b.real), ("fake", &b.faked)] {
        let now = b.call(c.request::<Value>(pods().get_subresource("status", "no-status").expect("req")));
        let mut body = now.object;
        body["status"]["phase"] = json!("Running");
        body["status"]["podIP"] = json!("10.0.0.5");
        body["status"]["podIPs"] = json!([{"ip": "10.0.0.5"}]);
        let put = pods().replace_subresource(
            "status",
            "no-status",
            &PostParams::default(),
            serde_json::to_vec(&body).unwrap(),
        );
        let a = b.call(c.request::<Value>(put.expect("req")));
        assert_eq!(a.code, 200, "{who}: setting the status: {a:?}");
    }
    let (real, fake) = b.both(
        |p| {
            let mut p = p.clone();
            let m = p.as_object_mut().expect("object");
            m.remove("status");
            // Dropped from the body too: the server keeps the stored ones anyway.
            p["metadata"].as_object_mut().expect("metadata").remove("ownerReferences");
            pods()
                .replace_subresource("status", "no-status", &PostParams::default(), serde_json::to_vec(&p).unwrap())
                .unwrap()
        },
        || pods().get("no-status", &GetParams::default()).unwrap(),
    );
    for (who, a) in [("real", &real), ("fake", &fake)] {
        assert_eq!(a.code, 200, "{who}: {a:?}");
        assert_eq!(
            a.object["status"],
            json!({"qosClass": "BestEffort"}),
            "{who}: the status left by a PUT without one"
        );
        assert_eq!(a.object["metadata"]["ownerReferences"][0]["uid"], OWNER, "{who}: the stored ownerReferences");
        assert_eq!(a.object["spec"]["containers"][0]["name"], "c", "{who}: the spec");
    }
}

#[test]
fn node_put_ignores_the_status_in_the_body_and_without_resource_version_is_unconditional_on_both() {
    let Some(b) =
        Both::start("node_put_ignores_the_status_in_the_body_and_without_resource_version_is_unconditional_on_both")
    else {
        return;
    };
    b.env.apply("apiVersion: v1\nkind: Node\nmetadata: {name: node-p, labels: {kubernetes.io/hostname: node-p}}\n");
    b.fake.add_node("node-p");
    let stored_fake_status = b.fake.node("node-p").expect("fake node")["status"].clone();
    let real_before = b.env.get(&["node", "node-p"]);
    let (real, fake) = b.both(
        |n| {
            let mut n = n.clone();
            n["metadata"].as_object_mut().expect("metadata").remove("resourceVersion");
            n["metadata"]["labels"]["userspace-cni.io/ovs-dpdk-unavailable"] = json!("true");
            n["status"] = json!({"capacity": {"cpu": "64"}, "conditions": [{"type": "Ready", "status": "False"}]});
            nodes().replace("node-p", &PostParams::default(), serde_json::to_vec(&n).unwrap()).unwrap()
        },
        || nodes().get("node-p", &GetParams::default()).unwrap(),
    );
    for (who, a) in [("real", &real), ("fake", &fake)] {
        assert_eq!(a.code, 200, "{who}: a PUT without resourceVersion: {a:?}");
        assert_eq!(a.object["metadata"]["labels"]["userspace-cni.io/ovs-dpdk-unavailable"], "true", "{who}");
        assert!(
            a.object["status"].get("capacity").is_none(),
            "{who}: the body's status was stored: {}",
            a.object["status"]
        );
    }
    assert_eq!(real.object["status"], real_before["status"], "real: the stored status");
    assert_eq!(fake.object["status"], stored_fake_status, "fake: the stored status");
    // With a stale resourceVersion both answer 409.
    let (real, fake) = b.both(
        |n| {
            let mut n = n.clone();
            n["metadata"]["resourceVersion"] = json!("1");
            nodes().replace("node-p", &PostParams::default(), serde_json::to_vec(&n).unwrap()).unwrap()
        },
        || nodes().get("node-p", &GetParams::default()).unwrap(),
    );
    assert_eq!((real.code, real.reason.as_str()), (409, "Conflict"), "{real:?}");
    assert_eq!((fake.code, fake.reason.as_str()), (409, "Conflict"), "{fake:?}");
    assert_eq!(real.message, fake.message);
}

#[test]
fn annotations_over_256_kib_are_refused_with_422_on_both() {
    let Some(b) = Both::start("annotations_over_256_kib_are_refused_with_422_on_both") else { return };
    b.add_pod(&pod("big"));
    let put = |extra: usize| {
        move |p: &Value| {
            let mut p = p.clone();
            // "a": "1" is there already: 2 bytes; "big" is 3 more.
            p["metadata"]["annotations"]["big"] = json!("x".repeat(256 * 1024 - 2 - 3 + extra));
            pods()
                .replace_subresource("status", "big", &PostParams::default(), serde_json::to_vec(&p).unwrap())
                .unwrap()
        }
    };
    let read = || pods().get("big", &GetParams::default()).unwrap();
    let (real, fake) = b.both(put(1), read);
    for (who, a) in [("real", &real), ("fake", &fake)] {
        assert_eq!((a.code, a.reason.as_str()), (422, "Invalid"), "{who}: 256 KiB + 1: {a:?}");
    }
    assert_eq!(real.message, fake.message);
    assert_eq!(
        real.message,
        "Pod \"big\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    let (real, fake) = b.both(put(0), read);
    assert_eq!(real.code, 200, "real: exactly 256 KiB: {real:?}");
    assert_eq!(fake.code, 200, "fake: exactly 256 KiB: {fake:?}");
}

#[test]
fn a_uid_precondition_mismatch_is_a_409_storage_error_on_both() {
    let Some(b) = Both::start("a_uid_precondition_mismatch_is_a_409_storage_error_on_both") else { return };
    b.add_pod(&pod("replaced"));
    const OTHER: &str = "11111111-2222-3333-4444-555555555555";
    let (real, fake) = b.both(
        |p| {
            let mut p = p.clone();
            p["metadata"]["uid"] = json!(OTHER);
            p["metadata"]["annotations"]["userspace/mapped-dir"] = json!("/x/");
            pods()
                .replace_subresource("status", "replaced", &PostParams::default(), serde_json::to_vec(&p).unwrap())
                .unwrap()
        },
        || pods().get("replaced", &GetParams::default()).unwrap(),
    );
    let uid = b.env.get(&["pod", "-n", NS, "replaced"])["metadata"]["uid"].as_str().expect("uid").to_owned();
    for (who, a) in [("real", &real), ("fake", &fake)] {
        assert_eq!((a.code, a.reason.as_str()), (409, "Conflict"), "{who}: {a:?}");
        assert!(a.message.contains("StorageError"), "{who}: {}", a.message);
    }
    assert_eq!(real.message, fake.message, "the fake holds the real pod's uid, so the messages are the same");
    assert!(
        real.message.contains(&format!("UID in precondition: {OTHER}, UID in object meta: {uid}")),
        "{}",
        real.message
    );
}

#[test]
fn a_403_names_the_user_the_verb_and_the_subresource_on_both() {
    let Some(b) = Both::start("a_403_names_the_user_the_verb_and_the_subresource_on_both") else { return };
    b.add_pod(&pod("guarded"));
    b.env.apply("apiVersion: v1\nkind: Node\nmetadata: {name: node-g}\n");
    b.fake.add_node("node-g");
    // `nobody` holds no role on the real server; the fake has no RBAC, so its 403 is injected,
    // and must read as RBAC's does.
    let nobody = client(&b.rt, &b.env.run_dir().join("nobody.kubeconfig"));
    type Build = fn() -> http::Request<Vec<u8>>;
    let cases: [(Method, Build, &str); 4] = [
        (Method::GET, || pods().get("guarded", &GetParams::default()).unwrap(), "cannot get resource \"pods\""),
        (Method::GET, || pods().get_subresource("status", "guarded").unwrap(), "cannot get resource \"pods/status\""),
        (
            Method::PUT,
            || pods().replace_subresource("status", "guarded", &PostParams::default(), b"{}".to_vec()).unwrap(),
            "cannot update resource \"pods/status\"",
        ),
        (
            Method::PUT,
            || nodes().replace("node-g", &PostParams::default(), b"{}".to_vec()).unwrap(),
            "cannot update resource \"nodes\"",
        ),
    ];
    for (method, build, says) in cases {
        let real = b.call(nobody.request::<Value>(build()));
        b.fake.fault(Some(method), Reply::Status(403), Some(1));
        let fake = b.call(b.faked.request::<Value>(build()));
        eprintln!("real: {}\nfake: {}", real.message, fake.message);
        for (who, a) in [("real", &real), ("fake", &fake)] {
            assert_eq!((a.code, a.reason.as_str()), (403, "Forbidden"), "{who}: {a:?}");
            assert!(a.message.contains(says), "{who}: {}", a.message);
        }
        assert_eq!(
            shape(&real.message, &["\"nobody\""]),
            shape(&fake.message, &[&format!("\"{}\"", fakeapi::FORBIDDEN_USER)]),
            "the two 403s differ beyond the user's name"
        );
    }
}
