//! A real kube-apiserver and etcd for one test (the team's envtest: `../shared/envtest` beside the
//! repository, binaries from `$ENVTEST_DIR/bin`, default `/opt/envtest/bin`), on free ports with
//! its state in a private temp dir. Dropping the handle stops both servers and removes the dir,
//! also when the test panics. Where envtest is absent, `start` prints why and returns `None`: the
//! caller skips (passes), never fails for that reason alone.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// start.sh waits up to 60 s for /readyz itself; this bounds the whole script.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// stop.sh waits up to 10 s per server before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// One kubectl run (its requests are bounded by --request-timeout as well).
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The scripts folder: `../shared/envtest` relative to the repository.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/envtest")
}

/// Where install.sh put the binaries: `$ENVTEST_DIR`, else `/opt/envtest`.
pub fn install_dir() -> PathBuf {
    std::env::var_os("ENVTEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/envtest"))
}

/// Why envtest cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    let scripts = scripts_dir();
    for s in ["start.sh", "stop.sh"] {
        if !scripts.join(s).is_file() {
            return Some(format!("{} not found", scripts.join(s).display()));
        }
    }
    let bin = install_dir().join("bin");
    for b in ["kube-apiserver", "etcd", "kubectl"] {
        if !bin.join(b).is_file() {
            return Some(format!(
                "{} not found (run {}/install.sh {})",
                bin.join(b).display(),
                scripts.display(),
                install_dir().display()
            ));
        }
    }
    None
}

/// One line `ran TEST` or `skipped TEST` appended to `$USCNI_ENVTEST_TALLY` when it is set:
/// scripts/test.sh counts the tests that ran against a real kube-apiserver from it (cargo test
/// shows no output of passing tests).
fn tally(outcome: &str, test: &str) {
    let Some(path) = std::env::var_os("USCNI_ENVTEST_TALLY") else { return };
    let line = format!("{outcome} {test}\n");
    // One write of a short line in append mode: lines of parallel tests do not interleave.
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("envtest: cannot record {outcome} {test} in {}: {e}", Path::new(&path).display());
    }
}

/// A running API server. Stopped and its dir removed on drop.
pub struct Envtest {
    run: Option<tempfile::TempDir>,
    /// `https://127.0.0.1:<port>`.
    pub api_url: String,
    /// The CA certificate the server's certificate chains to.
    pub ca: PathBuf,
}

/// A process's output, or a timeout, within `limit`; the process is killed at the limit.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Result<Output, String> {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).map_err(|e| format!("{cmd:?}: stdin: {e}"))?;
    }
    // Drain both pipes on threads, so a chatty child never blocks on a full pipe.
    let drain = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(|e| format!("{cmd:?}: {e}"))? {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} did not finish within {limit:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// Three distinct ports nobody listens on now (held until all three are chosen).
fn free_ports() -> [u16; 3] {
    let l: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
    let p: Vec<u16> = l.iter().map(|l| l.local_addr().expect("port").port()).collect();
    [p[0], p[1], p[2]]
}

/// The shipped manifests a test applies to get the RBAC and admission policy as installed (the
/// DaemonSet is not needed: nothing runs pods).
pub const SHIPPED_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/kubernetes");
pub const SHIPPED_RBAC: &[&str] =
    &["namespace.yaml", "serviceaccount.yaml", "clusterrole.yaml", "clusterrolebinding.yaml", "admission-policy.yaml"];

impl Envtest {
    /// Start a server, or say why not and return `None` (the test then passes as skipped).
    /// Panics when envtest is there but does not start: that is a failure, not an absence.
    pub fn start(test: &str) -> Option<Envtest> {
        Self::start_with(test, "")
    }

    /// `start` with extra kube-apiserver flags (start.sh's `APISERVER_EXTRA_ARGS`), e.g.
    /// `--feature-gates=DRAConsumableCapacity=false`.
    pub fn start_with(test: &str, apiserver_args: &str) -> Option<Envtest> {
        if let Some(why) = missing() {
            eprintln!("skipped: no envtest ({why}); {test} needs a real kube-apiserver");
            tally("skipped", test);
            return None;
        }
        let mut last = String::new();
        // A port taken between our probe and the server's bind fails the start: retry with others.
        for _ in 0..3 {
            let run = tempfile::Builder::new().prefix("uscni-envtest-").tempdir().expect("run dir");
            let [etcd, peer, api] = free_ports();
            let out = run_bounded(
                Command::new(scripts_dir().join("start.sh"))
                    .arg(run.path().join("run"))
                    .arg(install_dir())
                    .env("ETCD_PORT", etcd.to_string())
                    .env("ETCD_PEER", peer.to_string())
                    .env("API_PORT", api.to_string())
                    .env("APISERVER_EXTRA_ARGS", apiserver_args),
                None,
                START_TIMEOUT,
            );
            let mut env = Envtest { run: Some(run), api_url: format!("https://127.0.0.1:{api}"), ca: PathBuf::new() };
            match out {
                Ok(o) if o.status.success() => {
                    env.ca = env.env_value("CA").map(PathBuf::from).expect("RUN/env has CA");
                    tally("ran", test);
                    return Some(env);
                }
                Ok(o) => {
                    last = format!(
                        "start.sh: {}\n{}{}",
                        o.status,
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                }
                Err(e) => last = e,
            }
            // `env` drops here: stop.sh for whatever did start, then the dir goes.
        }
        panic!("envtest did not start three times; last attempt: {last}");
    }

    /// RUN: env, admin.kubeconfig, audit.log, the servers' logs.
    pub fn run_dir(&self) -> PathBuf {
        self.run.as_ref().map(|r| r.path().join("run")).unwrap_or_default()
    }

    /// A `KEY=value` line of RUN/env.
    fn env_value(&self, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.run_dir().join("env")).ok()?;
        text.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }

    /// The kubeconfig of `admin` (system:masters).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.run_dir().join("admin.kubeconfig")
    }

    /// kubectl as admin, bounded; (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let kubectl = install_dir().join("bin/kubectl");
        let out = run_bounded(
            Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(self.admin_kubeconfig())
                .arg("--request-timeout=30s")
                .args(args),
            stdin.map(str::as_bytes),
            KUBECTL_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// kubectl as admin that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl(args, stdin);
        assert!(ok, "kubectl {args:?} failed: {err}{out}");
        out
    }

    /// Server-side apply of YAML documents as admin.
    /// Apply the shipped RBAC and admission policy (`SHIPPED_RBAC`).
    pub fn apply_shipped_rbac(&self) {
        for file in SHIPPED_RBAC {
            let path = std::path::Path::new(SHIPPED_CONFIG).join(file);
            self.apply(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
    }

    pub fn apply(&self, yaml: &str) {
        self.kubectl_ok(&["apply", "--server-side", "--field-manager=uscni-test", "-f", "-"], Some(yaml));
    }

    /// An object as JSON, e.g. `get(&["pod", "-n", "ns", "name"])`.
    pub fn get(&self, what: &[&str]) -> Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl_ok(&args, None);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {what:?}: {e}: {out}"))
    }

    /// A token of ServiceAccount `namespace/account` (TokenRequest), bound to the object
    /// `bound` = (kind, name) when given (Pod: in the account's namespace; Node).
    pub fn token(&self, namespace: &str, account: &str, bound: Option<(&str, &str)>) -> String {
        let mut args = vec!["create", "token", account, "-n", namespace, "--duration=1h"];
        let (kind, name);
        if let Some((k, n)) = bound {
            kind = format!("--bound-object-kind={k}");
            name = format!("--bound-object-name={n}");
            args.extend_from_slice(&[&kind, &name]);
        }
        self.kubectl_ok(&args, None).trim().to_owned()
    }

    /// A kubeconfig file (mode 0600, in RUN) for `token`.
    pub fn kubeconfig_for(&self, name: &str, token: &str) -> PathBuf {
        self.kubeconfig_at(name, token, &self.api_url)
    }

    /// The same for an API server at `server` (a test's unreachable or impostor address).
    pub fn kubeconfig_at(&self, name: &str, token: &str, server: &str) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.run_dir().join(format!("{name}.kubeconfig"));
        // Inline credentials only, as Multus generates them: the plugin refuses file references
        // in a kubeconfig (docs/security.md).
        use base64::Engine;
        let ca = std::fs::read(&self.ca).unwrap_or_else(|e| panic!("{}: {e}", self.ca.display()));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster: {{server: \"{}\", \
             certificate-authority-data: \"{}\"}}\nusers:\n- name: {name}\n  user: {{token: \"{token}\"}}\ncontexts:\n- \
             name: {name}\n  context: {{cluster: envtest, user: {name}}}\ncurrent-context: {name}\n",
            server,
            base64::engine::general_purpose::STANDARD.encode(ca)
        );
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(text.as_bytes()).expect("kubeconfig");
        path
    }

    /// Every audit event so far (one JSON object a line, written when the response is complete).
    pub fn audit_events(&self) -> Vec<Value> {
        let path = self.run_dir().join("audit.log");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Drop for Envtest {
    fn drop(&mut self) {
        let Some(run) = self.run.take() else { return };
        let stopped =
            run_bounded(Command::new(scripts_dir().join("stop.sh")).arg(run.path().join("run")), None, STOP_TIMEOUT);
        if let Err(e) = stopped {
            eprintln!("envtest: {e}; scripts/leftovers.sh --clean stops what is left");
        }
        // The TempDir removes RUN (etcd's data, keys, tokens, the audit log) as it drops.
    }
}
