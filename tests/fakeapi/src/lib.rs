//! A fake Kubernetes API server for tests: real HTTPS on 127.0.0.1 (its own CA, a bearer token,
//! TCP_NODELAY on every connection), serving the calls the plugin makes: GET
//! `/api/v1/namespaces/{ns}/pods/{name}`, GET and PUT `.../pods/{name}/status` with
//! resourceVersion semantics (409 on a stale one), 404 for unknown pods, GET and PUT
//! `/api/v1/nodes/{name}` (the reconciler's node marking) with the same semantics, and injectable faults:
//! any HTTP status (403, 503, ...), slow answers, dropped connections, concurrent writers.
//! A test writes a kubeconfig for it, so the plugin's real client path (kubeconfig → kube client
//! → TLS → HTTP) is what runs. Never used outside tests.

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
                       "futureField": {"kept": true}}
        });
        st.bump(&mut pod);
        st.pods.insert((namespace.into(), name.into()), pod);
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
                403 => format!(
                    "pods \"x\" is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot {} \
                     resource \"pods\" in API group \"\"",
                    if method == Method::PUT { "update" } else { "get" }
                ),
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
            if body.pointer("/metadata/uid") != current.pointer("/metadata/uid")
                && body.pointer("/metadata/uid").is_some()
            {
                return (409, status_body(409, "Conflict", "Precondition failed: UID in precondition"));
            }
            // The pod status strategy: spec is kept, metadata labels/annotations and status are taken.
            for (ptr, field) in [("/metadata", "annotations"), ("/metadata", "labels")] {
                let new = body.pointer(&format!("{ptr}/{field}")).cloned();
                if let Some(m) = current.pointer_mut(ptr).and_then(Value::as_object_mut) {
                    match new {
                        Some(v) => m.insert(field.into(), v),
                        None => m.remove(field),
                    };
                }
            }
            if let (Some(s), Some(obj)) = (body.get("status").cloned(), current.as_object_mut()) {
                obj.insert("status".into(), s);
            }
            st.bump(&mut current);
            st.pods.insert(key, current.clone());
            (200, current)
        }
        _ => (405, status_body(405, "MethodNotAllowed", &format!("{method} is not served by the fake"))),
    }
}

/// GET and PUT of a Node: a PUT with a stale resourceVersion is 409; the whole object is taken
/// (metadata labels included), as the API server's node update does.
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
            let sent = body.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            let have = current.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            if sent != have {
                let msg = format!(
                    "Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply \
                     your changes to the latest version and try again"
                );
                return (409, status_body(409, "Conflict", &msg));
            }
            st.bump(&mut body);
            st.nodes.insert(name.into(), body.clone());
            (200, body)
        }
        _ => (405, status_body(405, "MethodNotAllowed", &format!("{method} is not served by the fake"))),
    }
}
