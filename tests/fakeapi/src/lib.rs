//! A fake Kubernetes API server for tests: real HTTPS on 127.0.0.1 (its own CA, a bearer token,
//! TCP_NODELAY on every connection), serving the calls the plugin makes: GET
//! `/api/v1/namespaces/{ns}/pods/{name}`, GET and PUT `.../pods/{name}/status` with
//! resourceVersion semantics (409 on a stale one), 404 for unknown pods, GET and PUT
//! `/api/v1/nodes/{name}` (the reconciler's node marking) with the same semantics, and injectable faults:
//! any HTTP status (403, 503, ...), slow answers, dropped connections, concurrent writers.
//! A test writes a kubeconfig for it, so the plugin's real client path (kubeconfig → kube client
//! → TLS → HTTP) is what runs. Never used outside tests.
//!
//! Where it answers at all, it answers as kube-apiserver 1.36 does (checked side by side against a
//! real one in tests/k8s_fake_parity.rs): `PUT pods/status` takes the body's metadata labels and
//! annotations and its whole `status` (a body without one leaves only `qosClass`), and keeps the
//! stored spec and ownerReferences; `PUT nodes` ignores the body's `.status`, and without a
//! resourceVersion is unconditional; annotations over 256 KiB in total are 422; a uid other than
//! the stored one is a 409 precondition failure (`StorageError`); an injected 403 names the user,
//! verb and resource/subresource as RBAC's does. It speaks HTTP/1.1 only (ALPN `http/1.1`): the
//! real server also offers h2, but kube's client, built without hyper's http2, never asks for it.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_rustls::rustls;

pub use hyper::Method;

/// The bearer token the fake accepts (any other is 401).
pub const TOKEN: &str = "fake-api-token-0123456789";

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this HTTP status and a Kubernetes `Status` body.
    Status(u16),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Serve the request now (a GET reads the pod as it is now), answer this much later: two
    /// clients reading during that window get the same resourceVersion.
    SlowAnswer(Duration),
    /// Close the connection without an answer (the server "went away" mid-request).
    Drop,
}

/// A fault for requests with `method` (any when `None`), applied `times` times (forever when
/// `None`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    pub reply: Reply,
    pub times: Option<u32>,
}

/// One request the fake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// PUT: the `metadata.resourceVersion` in the body.
    pub resource_version: Option<String>,
    /// The HTTP status answered (0: dropped).
    pub status: u16,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<(String, String), Value>,
    nodes: BTreeMap<String, Value>,
    next_rv: u64,
    faults: Vec<Fault>,
    seen: Vec<Seen>,
    /// PUTs that will find the pod changed by "someone else" just before they land.
    concurrent_writes: u32,
    authorizations: Vec<String>,
}

impl State {
    fn bump(&mut self, pod: &mut Value) {
        self.next_rv += 1;
        if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(self.next_rv.to_string()));
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running server; stopped on drop.
pub struct FakeApi {
    state: Shared,
    addr: SocketAddr,
    ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    /// Start on an ephemeral port of 127.0.0.1 with a fresh CA.
    pub fn start() -> FakeApi {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "fake-kube-ca");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
        let leaf_key = rcgen::KeyPair::generate().expect("server key");
        let mut leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
        leaf_params.distinguished_name.push(rcgen::DnType::CommonName, "fake-kube-apiserver");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("server cert");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .expect("server TLS config");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state: Shared = Arc::new(Mutex::new(State { next_rv: 100, ..State::default() }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stopped => break,
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                    };
                    // Without it, small answers wait for the client's delayed ACK (~40 ms each).
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, st) = (acceptor.clone(), st.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                        let _ =
                            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                    });
                }
            });
            // Dropping the runtime cancels every connection task: the server is gone.
        });
        FakeApi { state, addr, ca_pem: ca.pem(), stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A kubeconfig for this server (its CA, the token), as Multus's would be: inline data only,
    /// in a file of mode 0600 whose missing directories are made 0755 (whatever the umask), so a
    /// tree owned by root (the tests run as root) passes the plugin's root-owned check.
    pub fn write_kubeconfig(&self, path: &Path) {
        write_private(path, self.kubeconfig_text(&format!("    token: {TOKEN}\n")).as_bytes());
    }

    /// A kubeconfig for this server whose one user's body is `user` (indented lines, e.g.
    /// `"    token: ...\n"`): hostile variants are written from it with `write_private`.
    pub fn kubeconfig_text(&self, user: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: multus\n  user:\n{user}\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: multus\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// The server's CA certificate (PEM), for a kubeconfig that names it as a file.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Add (or replace) a pod; `spec` is the pod's spec. Returns its uid.
    pub fn add_pod(&self, namespace: &str, name: &str, uid: &str, spec: Value) {
        let mut st = lock(&self.state);
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "annotations": {}},
            "spec": spec,
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                       "qosClass": "BestEffort", "futureField": {"kept": true}}
        });
        st.bump(&mut pod);
        st.pods.insert((namespace.into(), name.into()), pod);
    }

    /// Add (or replace) a pod given whole (its resourceVersion is set here), e.g. with
    /// ownerReferences or a status of the test's choosing.
    pub fn add_pod_object(&self, mut pod: Value) {
        let mut st = lock(&self.state);
        let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_owned();
        let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
        st.bump(&mut pod);
        st.pods.insert((ns, name), pod);
    }

    /// Add (or replace) a Node object with no labels.
    pub fn add_node(&self, name: &str) {
        let mut st = lock(&self.state);
        let mut node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": format!("node-uid-{name}"),
                         "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        st.bump(&mut node);
        st.nodes.insert(name.into(), node);
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        lock(&self.state).nodes.get(name).cloned()
    }

    pub fn node_labels(&self, name: &str) -> Map<String, Value> {
        self.node(name)
            .and_then(|n| n.pointer("/metadata/labels").and_then(Value::as_object).cloned())
            .unwrap_or_default()
    }

    /// Set a node label as another client would (bumps the resourceVersion).
    pub fn set_node_label(&self, name: &str, key: &str, value: &str) {
        let mut st = lock(&self.state);
        let Some(mut node) = st.nodes.get(name).cloned() else { return };
        if let Some(m) = node.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(key.into(), Value::String(value.into()));
            }
        }
        st.bump(&mut node);
        st.nodes.insert(name.into(), node);
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.state).pods.get(&(namespace.into(), name.into())).cloned()
    }

    pub fn annotations(&self, namespace: &str, name: &str) -> Map<String, Value> {
        self.pod(namespace, name)
            .and_then(|p| p.pointer("/metadata/annotations").and_then(Value::as_object).cloned())
            .unwrap_or_default()
    }

    /// Set an annotation as another client would (bumps the resourceVersion).
    pub fn set_annotation(&self, namespace: &str, name: &str, key: &str, value: &str) {
        let mut st = lock(&self.state);
        let Some(mut pod) = st.pods.get(&(namespace.into(), name.into())).cloned() else { return };
        if let Some(a) = pod.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
            a.insert(key.into(), Value::String(value.into()));
        }
        st.bump(&mut pod);
        st.pods.insert((namespace.into(), name.into()), pod);
    }

    pub fn fault(&self, method: Option<Method>, reply: Reply, times: Option<u32>) {
        lock(&self.state).faults.push(Fault { method, reply, times });
    }

    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// The next `n` PUTs find the pod changed by another writer just before they land (409).
    pub fn concurrent_writes(&self, n: u32) {
        lock(&self.state).concurrent_writes = n;
    }

    /// Every `Authorization` header value received, in order (also the ones answered 401).
    pub fn authorizations(&self) -> Vec<String> {
        lock(&self.state).authorizations.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    pub fn clear_seen(&self) {
        lock(&self.state).seen.clear();
    }

    /// Stop serving: connections are closed, new ones refused.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Write `bytes` to `path` with mode 0600, its missing directories 0755, modes set explicitly.
pub fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        missing.reverse();
        for d in missing {
            std::fs::create_dir(d).expect("kubeconfig dir");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod kubeconfig dir");
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create kubeconfig");
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).expect("chmod kubeconfig");
    f.write_all(bytes).expect("write kubeconfig");
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn reply(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn reason_of(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Unknown",
    }
}

/// `(namespace, name, subresource)` of `/api/v1/namespaces/{ns}/pods/{name}[/status]`.
fn route(path: &str) -> Option<(String, String, Option<String>)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [ns, "pods", name] => Some(((*ns).into(), (*name).into(), None)),
        [ns, "pods", name, sub] => Some(((*ns).into(), (*name).into(), Some((*sub).into()))),
        _ => None,
    }
}

async fn handle(state: Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let authorization =
        req.headers().get(hyper::header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let authorized = authorization.as_deref() == Some(&format!("Bearer {TOKEN}"));
    if let Some(a) = authorization {
        lock(&state).authorizations.push(a);
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let put_body: Option<Value> = (method == Method::PUT).then(|| serde_json::from_slice(&body).ok()).flatten();
    let put_rv = put_body
        .as_ref()
        .and_then(|b| b.pointer("/metadata/resourceVersion"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let record =
        |status: u16| Seen { method: method.to_string(), path: path.clone(), resource_version: put_rv.clone(), status };

    // Faults first, as a misbehaving server or proxy would answer.
    let fault = {
        let mut st = lock(&state);
        let hit = st.faults.iter().position(|f| f.method.as_ref().is_none_or(|m| *m == method));
        hit.map(|i| {
            let f = st.faults[i].clone();
            if let Some(n) = f.times {
                if n <= 1 {
                    st.faults.remove(i);
                } else {
                    st.faults[i].times = Some(n - 1);
                }
            }
            f.reply
        })
    };
    match fault {
        Some(Reply::Drop) => {
            lock(&state).seen.push(record(0));
            return Err(std::io::Error::other("fake API server: connection dropped"));
        }
        Some(Reply::Status(code)) => {
            lock(&state).seen.push(record(code));
            let msg = match code {
                403 => forbidden_message(&method, &path),
                _ => format!("injected {code}"),
            };
            return Ok(reply(code, &status_body(code, reason_of(code), &msg)));
        }
        Some(Reply::Delay(d)) => tokio::time::sleep(d).await,
        Some(Reply::SlowAnswer(_)) | None => {}
    }

    let (code, answer) = serve(&state, &method, &path, authorized, put_body);
    lock(&state).seen.push(record(code));
    if let Some(Reply::SlowAnswer(d)) = fault {
        tokio::time::sleep(d).await;
    }
    Ok(reply(code, &answer))
}

/// The user an injected 403 names (Multus's account, whose kubeconfig the plugin usually gets).
pub const FORBIDDEN_USER: &str = "system:serviceaccount:kube-system:multus";

/// RBAC's refusal, as kube-apiserver words it: the object, the user, the verb, the resource with
/// its subresource, and the namespace (or the cluster scope).
fn forbidden_message(method: &Method, path: &str) -> String {
    let verb = match method.as_str() {
        "PUT" => "update",
        "POST" => "create",
        "DELETE" => "delete",
        "PATCH" => "patch",
        _ => "get",
    };
    let (resource, name, scope) = if let Some((ns, name, sub)) = route(path) {
        let resource = sub.map_or_else(|| "pods".to_owned(), |s| format!("pods/{s}"));
        (resource, name, format!("in the namespace \"{ns}\""))
    } else if let Some(rest) = path.strip_prefix("/api/v1/nodes/") {
        let mut parts = rest.splitn(2, '/');
        let name = parts.next().unwrap_or("").to_owned();
        let resource = parts.next().map_or_else(|| "nodes".to_owned(), |s| format!("nodes/{s}"));
        (resource, name, "at the cluster scope".to_owned())
    } else {
        ("unknown".to_owned(), String::new(), "at the cluster scope".to_owned())
    };
    let kind = resource.split('/').next().unwrap_or("");
    format!(
        "{kind} \"{name}\" is forbidden: User \"{FORBIDDEN_USER}\" cannot {verb} resource \"{resource}\" in API \
         group \"\" {scope}"
    )
}

/// The API server's limit on an object's annotations: keys and values together.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// 422 when `object`'s annotations exceed the limit, worded as the server's validation does.
fn too_long(kind: &str, name: &str, object: &Value) -> Option<(u16, Value)> {
    let total: usize = object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|a| a.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum())
        .unwrap_or(0);
    if total <= MAX_ANNOTATIONS_BYTES {
        return None;
    }
    let cause = format!("Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes");
    let mut body = status_body(422, "Invalid", &format!("{kind} \"{name}\" is invalid: metadata.annotations: {cause}"));
    body["details"] = json!({"name": name, "kind": kind,
                             "causes": [{"reason": "FieldValueTooLong", "message": cause, "field": "metadata.annotations"}]});
    Some((422, body))
}

/// The 409 of a uid precondition that does not hold (the body's uid is not the stored object's).
fn uid_mismatch(resource: &str, key: &str, name: &str, sent: &str, have: &str) -> (u16, Value) {
    let msg = format!(
        "Operation cannot be fulfilled on {resource} \"{name}\": StorageError: invalid object, Code: 4, Key: \
         /registry/{key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {sent}, \
         UID in object meta: {have}"
    );
    let mut body = status_body(409, "Conflict", &msg);
    body["details"] = json!({"name": name, "kind": resource});
    (409, body)
}

fn serve(state: &Shared, method: &Method, path: &str, authorized: bool, body: Option<Value>) -> (u16, Value) {
    if !authorized {
        return (401, status_body(401, "Unauthorized", "Unauthorized"));
    }
    if let Some(name) = path.strip_prefix("/api/v1/nodes/").filter(|n| !n.contains('/')) {
        return serve_node(state, method, name, body);
    }
    let Some((ns, name, sub)) = route(path) else {
        return (404, status_body(404, "NotFound", "the server could not find the requested resource"));
    };
    let mut st = lock(state);
    let key = (ns.clone(), name.clone());
    let not_found = || (404, status_body(404, "NotFound", &format!("pods \"{name}\" not found")));
    match (method.as_str(), sub.as_deref()) {
        ("GET", None | Some("status")) => match st.pods.get(&key) {
            Some(p) => (200, p.clone()),
            None => not_found(),
        },
        ("PUT", Some("status")) => {
            let Some(body) = body else {
                return (400, status_body(400, "BadRequest", "body is not a JSON object"));
            };
            let Some(mut current) = st.pods.get(&key).cloned() else { return not_found() };
            if st.concurrent_writes > 0 {
                // Another client wrote just before this request arrived.
                st.concurrent_writes -= 1;
                let n = st.next_rv;
                if let Some(a) = current.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                    a.insert(format!("other.example/writer-{n}"), Value::String("x".into()));
                }
                st.bump(&mut current);
                st.pods.insert(key.clone(), current.clone());
            }
            // The uid precondition is checked before the resourceVersion, as the server's storage does.
            let have_uid = current.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_owned();
            if let Some(sent_uid) = body.pointer("/metadata/uid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                if sent_uid != have_uid {
                    return uid_mismatch("pods", &format!("pods/{ns}/{name}"), &name, sent_uid, &have_uid);
                }
            }
            let sent = body.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            let have = current.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            // An empty resourceVersion would be an unconditional update; pods allow it, the plugin must not rely on it.
            if !sent.is_empty() && sent != have {
                let msg = format!(
                    "Operation cannot be fulfilled on pods \"{name}\": the object has been modified; please apply \
                     your changes to the latest version and try again"
                );
                return (409, status_body(409, "Conflict", &msg));
            }
            if let Some(refused) = too_long("Pod", &name, &body) {
                return refused;
            }
            // The pod status strategy: spec and ownerReferences are kept, metadata labels and
            // annotations are taken, and the whole status is the body's: a body without one
            // leaves only qosClass (which the server never lets change).
            for (ptr, field) in [("/metadata", "annotations"), ("/metadata", "labels")] {
                let new = body.pointer(&format!("{ptr}/{field}")).cloned();
                if let Some(m) = current.pointer_mut(ptr).and_then(Value::as_object_mut) {
                    match new {
                        Some(v) => m.insert(field.into(), v),
                        None => m.remove(field),
                    };
                }
            }
            let qos = current.pointer("/status/qosClass").cloned();
            let mut status = match body.get("status") {
                Some(Value::Object(s)) => s.clone(),
                _ => Map::new(),
            };
            if let Some(q) = qos {
                status.insert("qosClass".into(), q);
            }
            if let Some(obj) = current.as_object_mut() {
                obj.insert("status".into(), Value::Object(status));
            }
            st.bump(&mut current);
            st.pods.insert(key, current.clone());
            (200, current)
        }
        _ => (405, status_body(405, "MethodNotAllowed", &format!("{method} is not served by the fake"))),
    }
}

/// GET and PUT of a Node: a PUT with a stale resourceVersion is 409, one without any is
/// unconditional; the object is taken but for its status (metadata labels included), as the API
/// server's node update does.
fn serve_node(state: &Shared, method: &Method, name: &str, body: Option<Value>) -> (u16, Value) {
    let mut st = lock(state);
    let not_found = || (404, status_body(404, "NotFound", &format!("nodes \"{name}\" not found")));
    match method.as_str() {
        "GET" => match st.nodes.get(name) {
            Some(n) => (200, n.clone()),
            None => not_found(),
        },
        "PUT" => {
            let Some(mut body) = body else {
                return (400, status_body(400, "BadRequest", "body is not a JSON object"));
            };
            let Some(mut current) = st.nodes.get(name).cloned() else { return not_found() };
            if st.concurrent_writes > 0 {
                // Another client (the kubelet's heartbeat, say) wrote just before.
                st.concurrent_writes -= 1;
                st.bump(&mut current);
                st.nodes.insert(name.into(), current.clone());
            }
            let have_uid = current.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_owned();
            if let Some(sent_uid) = body.pointer("/metadata/uid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                if sent_uid != have_uid {
                    return uid_mismatch("nodes", &format!("minions/{name}"), name, sent_uid, &have_uid);
                }
            }
            let sent = body.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            let have = current.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            // No resourceVersion: an unconditional update (nodes allow it, as the server does).
            if !sent.is_empty() && sent != have {
                let msg = format!(
                    "Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply \
                     your changes to the latest version and try again"
                );
                return (409, status_body(409, "Conflict", &msg));
            }
            if let Some(refused) = too_long("Node", name, &body) {
                return refused;
            }
            // The main resource's update never writes status (that is nodes/status): the stored one stays.
            if let Some(obj) = body.as_object_mut() {
                match current.get("status") {
                    Some(s) => obj.insert("status".into(), s.clone()),
                    None => obj.remove("status"),
                };
                if let Some(uid) = current.pointer("/metadata/uid").cloned() {
                    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("uid".into(), uid);
                    }
                }
            }
            st.bump(&mut body);
            st.nodes.insert(name.into(), body.clone());
            (200, body)
        }
        _ => (405, status_body(405, "MethodNotAllowed", &format!("{method} is not served by the fake"))),
    }
}
