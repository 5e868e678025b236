//! Shared integration-test support: a private "node" (temp root with the plugin's state, shared
//! and log dirs) and a runner that executes the plugin binary exactly as a runtime does.
#![allow(dead_code)]

pub mod dra_plugin;
pub mod envtest;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The test binary with the recording fake backend (feature `testkit`).
pub const TESTKIT_BIN: &str = env!("CARGO_BIN_EXE_userspace-testkit");
/// The shipped binary (built with failpoints in test builds).
pub const PLUGIN_BIN: &str = env!("CARGO_BIN_EXE_userspace");

/// A node: every host path the plugin may touch lives under `root`.
pub struct Node {
    pub root: tempfile::TempDir,
    /// Settings that override the defaults below (e.g. a lab's OVSDB socket).
    pub overrides: Vec<(String, String)>,
    /// The binary `cni()` runs.
    pub bin: &'static str,
}

/// What one plugin run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}\nstderr: {}", self.stdout, self.stderr))
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Assert success and return the parsed stdout (or Null when empty).
    pub fn expect_ok(&self) -> Value {
        assert!(self.ok(), "expected success, got {:?}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr);
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Assert a CNI error with `code` and return its message.
    pub fn expect_err(&self, code: u64) -> String {
        assert_ne!(self.code, Some(0), "expected error {code}, got success: {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "wrong error code: {v}\nstderr: {}", self.stderr);
        v["msg"].as_str().unwrap_or_default().to_owned()
    }
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    pub fn new() -> Node {
        let root = tempfile::Builder::new().prefix("uscni-test-").tempdir().expect("temp dir");
        std::fs::write(root.path().join("userspace.toml"), "").expect("settings file");
        Node { root, overrides: Vec::new(), bin: TESTKIT_BIN }
    }

    /// A node whose plugin is the shipped binary talking to a private OVS (`db_socket`, with
    /// server-mode sockets in `sock_dir`).
    pub fn for_ovs(db_socket: &Path, sock_dir: &Path) -> Node {
        let mut n = Node::new();
        n.bin = PLUGIN_BIN;
        n.overrides = vec![
            ("USERSPACE_CNI_OVSDB".into(), format!("unix:{}", db_socket.display())),
            ("USERSPACE_CNI_OVS_SOCK_DIR".into(), sock_dir.display().to_string()),
        ];
        n
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn shared_base(&self) -> PathBuf {
        self.path("shared")
    }

    /// The node settings as environment variables (tests' stand-in for the settings file).
    pub fn settings_env(&self) -> Vec<(String, String)> {
        let p = |rel: &str| self.path(rel).display().to_string();
        vec![
            ("USERSPACE_CNI_CONFIG".into(), p("userspace.toml")),
            ("USERSPACE_CNI_STATE_DIR".into(), p("state")),
            ("USERSPACE_CNI_SHARED_DIR".into(), p("shared")),
            ("USERSPACE_CNI_SHORT_SOCKET_DIR".into(), p("short")),
            ("USERSPACE_CNI_KUBELET_ROOT".into(), p("kubelet")),
            ("USERSPACE_CNI_OVS_SOCK_DIR".into(), p("ovs")),
            ("USERSPACE_CNI_OVSDB".into(), format!("unix:{}", p("ovs/db.sock"))),
            ("USERSPACE_CNI_VPP_API_SOCKET".into(), p("vpp/api.sock")),
            ("USERSPACE_CNI_SHARED_ROOTS".into(), format!("{}:{}", p("shared"), p("short"))),
            ("USERSPACE_CNI_LOG_ROOTS".into(), p("log")),
            ("USERSPACE_CNI_DEVICE_INFO_ROOTS".into(), p("devinfo")),
            ("USERSPACE_CNI_KUBECONFIG_FILES".into(), p("net.d/multus.kubeconfig")),
            ("USERSPACE_CNI_TIMEOUT_MS".into(), "5000".into()),
            ("USERSPACE_CNI_CNI_CACHE_DIRS".into(), p("cnicache")),
        ]
        .into_iter()
        .filter(|(k, _)| !self.overrides.iter().any(|(o, _)| o == k))
        .chain(self.overrides.iter().cloned())
        .collect()
    }

    /// Run `bin` with the CNI environment and `stdin`, as a runtime does.
    pub fn exec(&self, bin: &str, env: &[(String, String)], stdin: &[u8]) -> Run {
        self.exec_os(bin, env, &[], stdin)
    }

    /// `exec` plus variables with raw (possibly non-UTF-8) values.
    pub fn exec_os(&self, bin: &str, env: &[(String, String)], raw: &[(String, Vec<u8>)], stdin: &[u8]) -> Run {
        use std::os::unix::ffi::OsStrExt;
        let mut cmd = Command::new(bin);
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.settings_env().iter().chain(env.iter()) {
            cmd.env(k, v);
        }
        for (k, v) in raw {
            cmd.env(k, std::ffi::OsStr::from_bytes(v));
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn plugin");
        if let Some(mut si) = child.stdin.take() {
            let _ = si.write_all(stdin);
        }
        let out = child.wait_with_output().expect("wait plugin");
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run `bin` as `exec` does, but kill it when it is still running after `limit` (a plugin
    /// blocked on a FIFO): `Err` says so, with what it printed until then.
    pub fn exec_bounded(
        &self,
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
        stdin: &[u8],
        limit: std::time::Duration,
    ) -> Result<Run, String> {
        use std::io::Read;
        use std::os::unix::process::ExitStatusExt;
        let mut cmd = Command::new(bin);
        cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.settings_env().iter().chain(env.iter()) {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn plugin");
        if let Some(mut si) = child.stdin.take() {
            let _ = si.write_all(stdin);
        }
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = drain(child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>));
        let err = drain(child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>));
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait plugin") {
                break Some(st);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
        match status {
            Some(st) => Ok(Run { code: st.code(), signal: st.signal(), stdout, stderr }),
            None => Err(format!("still running after {limit:?}, killed\nstdout: {stdout}\nstderr: {stderr}")),
        }
    }

    /// `cni`, bounded by `limit` (see `exec_bounded`); panics when the plugin had to be killed.
    pub fn cni_within(
        &self,
        limit: std::time::Duration,
        verb: &str,
        cid: &str,
        ifname: &str,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> Run {
        let env = self.cni_vars(verb, cid, ifname, extra);
        self.exec_bounded(self.bin, &[], &env, conf.to_string().as_bytes(), limit)
            .unwrap_or_else(|e| panic!("{verb} did not return: {e}"))
    }

    /// A CNI call with the standard variables.
    pub fn cni(&self, verb: &str, cid: &str, ifname: &str, conf: &Value, extra: &[(&str, &str)]) -> Run {
        let env = self.cni_vars(verb, cid, ifname, extra);
        self.exec(self.bin, &env, conf.to_string().as_bytes())
    }

    /// The standard CNI variables of a call, with `extra` overriding them.
    fn cni_vars(&self, verb: &str, cid: &str, ifname: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("CNI_COMMAND".into(), verb.into()),
            ("CNI_CONTAINERID".into(), cid.into()),
            ("CNI_IFNAME".into(), ifname.into()),
            ("CNI_NETNS".into(), this_netns()),
            ("CNI_PATH".into(), "/usr/lib/cni".into()),
        ];
        self.cni_env(&mut env, extra);
        env
    }

    fn cni_env(&self, env: &mut Vec<(String, String)>, extra: &[(&str, &str)]) {
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push(((*k).into(), (*v).into()));
        }
        // An empty value stands for "not set" (GC and STATUS take no container id).
        env.retain(|(_, v)| !v.is_empty());
    }

    /// Every file and directory under the root (relative), for "nothing changed" assertions.
    pub fn snapshot(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }

    /// Files the plugin leaves behind that belong to no attachment: anything but the state
    /// dir's node lock and the fake dataplane's own bookkeeping.
    pub fn leftovers(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter(|p| {
                !(p == "userspace.toml"
                    || p == "state"
                    || p == "state/node.lock"
                    || p.starts_with("state/testkit")
                    || p == "shared"
                    || p == "log"
                    || p.starts_with("log/"))
            })
            .collect()
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if let Ok(rel) = p.strip_prefix(base) {
            out.insert(rel.display().to_string());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(base, &p, out);
        }
    }
}

/// A network namespace standing in for a pod (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("uscni-{tag}-{}-{n}", std::process::id());
        let st = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(st.success(), "ip netns add {name} failed");
        Netns { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Re-run the ignored test `inner` of this test binary in a mount namespace of its own, so bind
/// mounts never reach the host (DESIGN.md §3.7), and return its output (asserting it passed).
/// Private towards the host but shared inside: ovs-vswitchd runs under `ip netns exec`, which
/// makes its own (slave) mount namespace, and must see the bind mounts the plugin makes later,
/// as it would on a real node where both live in the host's mount namespace.
pub fn run_in_private_mount_ns(inner: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c", "mount --make-rshared / && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(["--exact", inner, "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .expect("run unshare");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "inner test {inner} failed:\n{text}");
    text
}

/// Names of the entries of `dir` that start with `prefix` (e.g. sockets OVS left in its dir).
pub fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// RFC 7386 JSON merge patch (`null` deletes a key): the data-driven tables' config patches.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A real network namespace path that always exists: the test process's own.
pub fn this_netns() -> String {
    format!("/proc/{}/ns/net", std::process::id())
}

/// A config for the recording backend, upstream-shaped.
pub fn recording_conf(version: &str, name: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "type": "userspace",
        "host": {"engine": "recording", "iftype": "vhostuser", "netType": "bridge",
                 "vhost": {"mode": "server"}, "bridge": {"bridgeName": "br-test"}},
        "container": {"engine": "recording", "iftype": "vhostuser", "netType": "interface",
                      "vhost": {"mode": "client"}}
    })
}

/// A node whose VPP is the wire-faithful simulator (`tests/vppsim`), listening in a temp dir that
/// lives as long as this value.
pub struct VppEnv {
    pub sim: vppsim::Sim,
    pub node: Node,
    pub _dir: tempfile::TempDir,
}

pub fn vpp_env() -> VppEnv {
    let dir = tempfile::Builder::new().prefix("uscni-vppsim-").tempdir().expect("sim dir");
    let sim = vppsim::Sim::start(dir.path());
    let mut node = Node::new();
    node.bin = PLUGIN_BIN;
    node.overrides.push(("USERSPACE_CNI_VPP_API_SOCKET".into(), sim.socket().display().to_string()));
    VppEnv { sim, node, _dir: dir }
}

/// A memif network on VPP bridge domain `bd`, the workload's side an interface.
pub fn vpp_memif_conf(name: &str, role: &str, bd: u32) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "userspace",
        "host": {"engine": "vpp", "iftype": "memif", "netType": "bridge",
                 "memif": {"role": role, "mode": "ethernet"}, "bridge": {"bridgeId": bd}},
        "container": {"engine": "vpp", "iftype": "memif", "netType": "interface"}
    })
}

/// The libcni result cache file a runtime writes after ADD of (`cid`, net1) with `conf`, under
/// the node's `cnicache` dir (the `cni_cache_dirs` setting points there).
pub fn write_libcni_cache(node: &Node, conf: &Value, cid: &str) {
    let dir = node.path("cnicache/results");
    std::fs::create_dir_all(&dir).expect("cache dir");
    let mut b64 =
        Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("base64");
    b64.stdin.take().expect("stdin").write_all(conf.to_string().as_bytes()).expect("write");
    let encoded = String::from_utf8(b64.wait_with_output().expect("base64").stdout).expect("utf-8");
    let network = conf["name"].as_str().expect("name");
    let doc = json!({
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": encoded.trim(),
        "ifName": "net1",
        "networkName": network,
        "netns": this_netns(),
        "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "vm-1"],
                    ["K8S_POD_INFRA_CONTAINER_ID", cid]],
        "result": {"cniVersion": "1.1.0", "interfaces": []}
    });
    std::fs::write(dir.join(format!("{network}-{cid}-net1")), doc.to_string()).expect("cache file");
}

/// An OVS-DPDK config (`mode` is the host side's vhost mode) on `bridge`.
pub fn ovs_conf(name: &str, bridge: &str, mode: &str) -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": name,
        "type": "userspace",
        "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
                 "vhost": {"mode": mode}, "bridge": {"bridgeName": bridge}},
        "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface"}
    })
}

/// The sandbox interface of a result.
pub fn sandbox(res: &Value) -> Value {
    res["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["sandbox"].is_string()).cloned())
        .unwrap_or_else(|| panic!("no sandbox interface in {res}"))
}

/// The socket path of a result's sandbox interface.
pub fn socket_path(res: &Value) -> PathBuf {
    PathBuf::from(sandbox(res)["socketPath"].as_str().unwrap_or_else(|| panic!("no socketPath in {res}")))
}

/// The names in `dir`, sorted; none when it does not exist (nothing was ever made there).
pub fn entries(dir: &Path) -> Vec<String> {
    let Ok(list) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = list.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Every file the DRA side may leave on `node` (the DRA tests' settings put the socket dirs in
/// `dra/`, metadata in `meta/`, CDI specs in `cdi/`): their entries and the records.
pub fn dra_files(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["dra", "meta", "cdi"] {
        out.extend(entries(&node.path(dir)).into_iter().map(|e| format!("{dir}/{e}")));
    }
    out.extend(entries(&node.state_dir()).into_iter().filter(|e| e.ends_with(".json")).map(|e| format!("state/{e}")));
    out
}

/// The ports on `bridge` whose `external_ids` name `id` (a claim uid, a container id).
pub fn ports_tagged_with(lab: &testlab::Lab, bridge: &str, id: &str) -> Vec<String> {
    lab.ports(bridge)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| lab.vsctl(&["get", "Port", p, "external_ids"]).is_ok_and(|ids| ids.contains(id)))
        .collect()
}
