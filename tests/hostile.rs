//! The hostile-input suite (docs/security.md, DESIGN.md §3.5 and §3.7): a data table
//! (`tests/hostile/cases.json`, described in its README) of valid-looking inputs with a symlink in
//! their middle, a FIFO, a device or a sparse file where a file should be, and entries a pod swaps
//! between two of our syscalls (pause failpoints), run through the real binaries as a runtime and
//! an operator run them: CNI ADD/DEL/CHECK/GC, the reconciler (`userspace gc`), `adopt` and
//! `forget`. Every case runs twice, under the openat2 resolver and under the userspace walk
//! (`USERSPACE_CNI_RESOLVER=walk`), each on a fresh node inside a private mount namespace.
//!
//! For every case the runner plants root-owned decoys with unique content outside every allowed
//! root and proves they were not read (their content appears in no output or log), written,
//! chowned, chmod-ed or deleted (a snapshot of path, type, mode, owner, content hash, mtime and
//! ctime before and after), that each child ended within its time bound and without a memory
//! blow-up, and that stdout in CNI mode is exactly one JSON document with the expected code.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{merge_patch, recording_conf, run_in_private_mount_ns, this_netns, Node, PLUGIN_BIN, TESTKIT_BIN};
use testlab::Lab;

/// The container id most cases use (64 characters, as runtimes make them).
const CID: &str = "h0511e0cafe0123456789abcdef0123456789abcdef0123456789abcdef01234";
/// The pod uid of the KubeVirt (emptyDir, short dir) cases.
const POD_UID: &str = "d1e2f3a4-0000-4abc-8def-0123456789ab";
/// Every child must end within this (a FIFO or a device must never make it wait).
const CHILD_LIMIT: Duration = Duration::from_secs(20);
/// A child whose peak RSS exceeds this read something it must not (a sparse file, /dev/zero).
const RSS_LIMIT_KIB: i64 = 256 * 1024;
/// The top-level entries of the node root the plugin may change (its roots and its own state);
/// everything else under the root (decoys, net.d, the settings file) must stay as it was.
const ALLOWED_TOP: &[&str] = &["state", "shared", "short", "log", "devinfo", "kubelet", "ovs", "cnicache", "sync"];
/// Files outside the node root that a followed symlink could reach; read only to prove them unchanged.
const HOST_FILES: &[&str] = &["/etc/passwd", "/etc/group", "/etc/hostname"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Resolver {
    Openat2,
    Walk,
}

impl Resolver {
    fn name(self) -> &'static str {
        match self {
            Resolver::Openat2 => "openat2",
            Resolver::Walk => "walk",
        }
    }
}

/// One case's node with its decoys.
struct World {
    node: Node,
    token: String,
    resolver: Resolver,
    /// The last successful ADD's result: CHECK's prevResult.
    last_result: std::cell::RefCell<Option<Value>>,
    /// The private OVS-DPDK of the `lab` rows.
    lab: Option<Arc<Lab>>,
}

impl World {
    fn new(resolver: Resolver, lab: Option<Arc<Lab>>) -> World {
        let node = match &lab {
            Some(l) => Node::for_ovs(&l.db_socket(), l.sock_dir()),
            None => Node::new(),
        };
        let mut bytes = [0u8; 12];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("random token");
        let token = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let w = World { node, token, resolver, last_result: Default::default(), lab };
        w.plant_decoys();
        w
    }

    fn root(&self) -> &Path {
        self.node.root.path()
    }

    fn decoy_text(&self, what: &str) -> String {
        format!("DECOY-{}-{what}\n", self.token)
    }

    /// Root-owned decoys outside every allowed root: a secret, a directory holding every name the
    /// plugin creates or removes (so a followed link finds something to clobber), other files in
    /// net.d, and an empty dir for netns paths that are gone.
    fn plant_decoys(&self) {
        let cid12 = &CID[..12];
        let d = self.path("decoy/dir");
        mkdir(&self.path("decoy"), 0o755);
        mkdir(&d, 0o755);
        self.write("decoy/secret", &self.decoy_text("secret"), 0o600);
        for name in [
            format!("configData-{cid12}-net1.json"),
            format!(".configData-{cid12}-net1.json.tmp"),
            "dev.json".into(),
            ".dev.json.userspace-cni.tmp".into(),
            "hostile.log".into(),
            format!("{CID}_net1.json"),
            "multus.kubeconfig".into(),
        ] {
            self.write(&format!("decoy/dir/{name}"), &self.decoy_text(&name), 0o644);
        }
        // JSON of no upstream shape: a reader that follows a link to it quotes it in its error.
        let legacy = format!("{{\"decoy\": \"DECOY-{}-legacy\"}}", self.token);
        self.write(&format!("decoy/dir/local-{cid12}-net1.json"), &legacy, 0o644);
        socket_file(&d.join(format!("{cid12}-net1")));
        let vol = d.join("volumes/kubernetes.io~empty-dir/shared-dir");
        for p in [d.join("volumes"), d.join("volumes/kubernetes.io~empty-dir"), vol.clone()] {
            mkdir(&p, 0o755);
        }
        socket_file(&vol.join(format!("{cid12}-net1")));
        mkdir(&d.join(cid12), 0o755);
        socket_file(&d.join(cid12).join(format!("{cid12}-net1")));
        mkdir(&self.path("net.d"), 0o755);
        self.write("net.d/00-other.conflist", &self.decoy_text("conflist"), 0o644);
        self.write("net.d/other.kubeconfig", &self.kubeconfig("token: DECOY-token"), 0o600);
        mkdir(&self.path("netns"), 0o755);
        mkdir(&self.path("sync"), 0o700);
    }

    /// A kubeconfig whose server refuses connections, `user` being the user entry's body.
    fn kubeconfig(&self, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    \
             insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    {}\ncontexts:\n- name: x\n  context:\n    \
             cluster: c\n    user: u\ncurrent-context: x\n# {}",
            user.replace('\n', "\n    "),
            self.decoy_text("kubeconfig").trim()
        )
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn write(&self, rel: &str, text: &str, mode: u32) {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// `{root}`, `{cid}`, `{cid12}`, `{uid}`, `{decoy}`, `{token}`, `{netns}` in table strings.
    fn fill(&self, s: &str) -> String {
        s.replace("{root}", &self.root().display().to_string())
            .replace("{decoy}", &self.path("decoy/dir").display().to_string())
            .replace("{cid12}", &CID[..12])
            .replace("{cid}", CID)
            .replace("{uid}", POD_UID)
            .replace("{token}", &self.token)
            .replace("{netns}", &this_netns())
            .replace("{ovsdir}", &self.lab.as_ref().map(|l| l.sock_dir().display().to_string()).unwrap_or_default())
    }

    fn fill_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.fill(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.fill_value(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.fill_value(x)),
            _ => {}
        }
    }

    /// Every entry outside the allowed roots, strictly (times included), plus the host files.
    fn outside(&self) -> BTreeMap<String, Meta> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(self.root()).expect("read root").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !ALLOWED_TOP.contains(&name.as_str()) {
                scan(self.root(), &e.path(), true, &mut out);
            }
        }
        for f in HOST_FILES {
            if let Ok(m) = std::fs::symlink_metadata(f) {
                out.insert((*f).to_owned(), Meta::of(Path::new(f), &m, true));
            }
        }
        out
    }

    /// Everything under the root but the plugin's own bookkeeping (the state dir itself, its
    /// lock files, the fake dataplane, logs, the failpoint sync dir), without times: what a
    /// refused input must leave exactly as it was.
    fn everything(&self) -> BTreeMap<String, Meta> {
        let mut out = BTreeMap::new();
        scan(self.root(), self.root(), false, &mut out);
        out.retain(|k, _| {
            !(k.is_empty()
                || k == "state"
                || k == "state/node.lock"
                // Per-attachment lock files: every verb takes one before it reads the record.
                || (k.starts_with("state/") && k.ends_with(".lock"))
                || k.starts_with("state/testkit")
                || k == "log"
                || k.starts_with("log/")
                || k == "sync"
                || k.starts_with("sync/"))
        });
        out
    }

    /// The text of every regular file under the log root and the state dir (where a leaked
    /// decoy could be written), for the "never echoed" check.
    fn logs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for top in ["log", "state"] {
            let mut m = BTreeMap::new();
            scan(self.root(), &self.path(top), false, &mut m);
            for (rel, meta) in m {
                if meta.kind == 'f' && meta.size < (4 << 20) {
                    if let Ok(b) = std::fs::read(self.path(&rel)) {
                        out.push((rel, String::from_utf8_lossy(&b).into_owned()));
                    }
                }
            }
        }
        out
    }
}

fn mkdir(p: &Path, mode: u32) {
    match std::fs::create_dir(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("mkdir {}: {e}", p.display()),
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod dir");
}

fn mkdirs(p: &Path) {
    let mut missing = Vec::new();
    let mut cur = p;
    while std::fs::symlink_metadata(cur).is_err() {
        missing.push(cur.to_path_buf());
        cur = cur.parent().expect("parent");
    }
    for d in missing.iter().rev() {
        mkdir(d, 0o755);
    }
}

/// A unix socket file nobody serves (what a dataplane or a workload leaves in a dir).
fn socket_file(p: &Path) {
    drop(std::os::unix::net::UnixListener::bind(p).unwrap_or_else(|e| panic!("bind {}: {e}", p.display())));
}

/// What the snapshot keeps of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    nlink: u64,
    /// Content hash of a regular file up to 4 MiB (never of a FIFO, device or a huge sparse file).
    hash: u64,
    link: Option<PathBuf>,
    /// (mtime, ctime) in ns; only in strict snapshots.
    times: Option<(i128, i128)>,
}

impl Meta {
    fn of(path: &Path, m: &std::fs::Metadata, strict: bool) -> Meta {
        use std::hash::{Hash, Hasher};
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_symlink() {
            'l'
        } else if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_socket() {
            's'
        } else if ft.is_char_device() {
            'c'
        } else {
            '?'
        };
        let mut hash = 0;
        if kind == 'f' && m.size() <= (4 << 20) {
            if let Ok(b) = std::fs::read(path) {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                b.hash(&mut h);
                hash = h.finish();
            }
        }
        Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: if kind == 'd' { 0 } else { m.size() },
            nlink: if kind == 'd' { 0 } else { m.nlink() },
            hash,
            link: if kind == 'l' { std::fs::read_link(path).ok() } else { None },
            times: strict.then(|| {
                (
                    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                    m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
                )
            }),
        }
    }
}

/// `p` and everything below it (never following a symlink), keyed by the path relative to `base`.
fn scan(base: &Path, p: &Path, strict: bool, out: &mut BTreeMap<String, Meta>) {
    let Ok(m) = std::fs::symlink_metadata(p) else { return };
    let rel = p.strip_prefix(base).unwrap_or(p).display().to_string();
    out.insert(rel, Meta::of(p, &m, strict));
    if m.file_type().is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                scan(base, &e.path(), strict, out);
            }
        }
    }
}

fn diff(before: &BTreeMap<String, Meta>, after: &BTreeMap<String, Meta>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("{k} removed (was {v:?})")),
            Some(a) if a != v => d.push(format!("{k} changed: {v:?} -> {a:?}")),
            _ => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            d.push(format!("{k} created: {v:?}"));
        }
    }
    d
}

/// What one child printed and how it ended.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    max_rss_kib: i64,
    timed_out: bool,
}

/// Spawn `cmd`, optionally act at a pause point, and wait at most `limit`, killing the child
/// (and failing) after that. The peak RSS comes from wait4's rusage.
// The child is reaped by wait4 (for its rusage), which std's `Child` cannot see.
#[allow(clippy::zombie_processes)]
fn run_bounded(mut cmd: Command, stdin: &[u8], limit: Duration, pause: Option<(&Path, &dyn Fn())>) -> Outcome {
    use std::io::Write;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(stdin);
    }
    let (mut so, mut se) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data written by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    let mut paused_handled = pause.is_none();
    loop {
        // SAFETY: waiting for our own child with valid out-pointers.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if rc == pid {
            break;
        }
        if !paused_handled {
            if let Some((marker, act)) = pause {
                if marker.exists() {
                    act();
                    let go = marker.with_extension("go");
                    std::fs::write(&go, b"").expect("write the go file");
                    paused_handled = true;
                }
            }
        }
        if started.elapsed() > limit {
            timed_out = true;
            // SAFETY: killing our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    let mut o = Outcome { code, signal, stdout, stderr, elapsed, max_rss_kib: ru.ru_maxrss, timed_out };
    if !paused_handled {
        o.stderr.push_str("\n[hostile runner: the pause point was never reached]");
        o.timed_out = o.timed_out || o.code.is_some();
    }
    o
}

/// One case's verdict.
struct Verdict {
    failures: Vec<String>,
}

impl Verdict {
    fn fail(&mut self, s: String) {
        self.failures.push(s);
    }
}

/// Apply one set-up or swap action of the table.
fn act(w: &World, a: &Value) -> Result<(), String> {
    let rel = |k: &str| a[k].as_str().map(|s| w.fill(s));
    let mode = |def: u32| a["mode"].as_str().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(def);
    let parent = |p: &Path| mkdirs(p.parent().expect("parent"));
    if let Some(p) = rel("mkdir") {
        let p = w.path(&p);
        parent(&p);
        mkdir(&p, mode(0o755));
    } else if let Some(p) = rel("file") {
        let p = w.path(&p);
        parent(&p);
        let text = match a["text"].as_str() {
            Some(t) => w.fill(t),
            None => match a["kubeconfig_user"].as_str() {
                Some(u) => w.kubeconfig(&w.fill(u)),
                None => w.decoy_text("planted"),
            },
        };
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode(0o644))).map_err(|e| e.to_string())?;
    } else if let Some(p) = rel("symlink") {
        let p = w.path(&p);
        parent(&p);
        let to = w.fill(a["to"].as_str().unwrap_or("/nonexistent"));
        std::os::unix::fs::symlink(&to, &p).map_err(|e| format!("symlink {}: {e}", p.display()))?;
    } else if let Some(p) = rel("fifo") {
        let p = w.path(&p);
        parent(&p);
        mknod(&p, libc::S_IFIFO | 0o644, 0)?;
    } else if let Some(p) = rel("chardev") {
        let p = w.path(&p);
        parent(&p);
        // /dev/zero's numbers: endless bytes for whoever reads it.
        mknod(&p, libc::S_IFCHR | 0o644, libc::makedev(1, 5))?;
    } else if let Some(p) = rel("sparse") {
        let p = w.path(&p);
        parent(&p);
        let f = std::fs::File::create(&p).map_err(|e| e.to_string())?;
        f.set_len(a["size"].as_u64().unwrap_or(1 << 40)).map_err(|e| format!("truncate {}: {e}", p.display()))?;
    } else if let Some(p) = rel("socket") {
        let p = w.path(&p);
        parent(&p);
        socket_file(&p);
    } else if let Some(p) = rel("rm") {
        let p = w.path(&p);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).map_err(|e| e.to_string())?,
            Ok(_) => std::fs::remove_file(&p).map_err(|e| e.to_string())?,
            Err(_) => {}
        }
    } else if let Some(p) = rel("mv") {
        let (from, to) = (w.path(&p), w.path(&w.fill(a["to"].as_str().unwrap_or_default())));
        parent(&to);
        std::fs::rename(&from, &to).map_err(|e| format!("rename {}: {e}", from.display()))?;
    } else if let Some(p) = rel("chmod") {
        let p = w.path(&p);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode(0o755))).map_err(|e| e.to_string())?;
    } else if let Some(p) = rel("chown") {
        let p = w.path(&p);
        let uid = a["uid"].as_u64().unwrap_or(1000) as u32;
        std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).map_err(|e| format!("chown {}: {e}", p.display()))?;
    } else if let Some(stem) = rel("record_netns") {
        let p = w.path(&format!("state/{stem}.json"));
        let mut rec: Value = serde_json::from_slice(&std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| e.to_string())?;
        rec["attachment"]["netns"] = Value::String(w.fill(a["netns"].as_str().unwrap_or_default()));
        std::fs::write(&p, serde_json::to_vec_pretty(&rec).expect("encode")).map_err(|e| e.to_string())?;
    } else if let Some(cid) = rel("libcni_cache") {
        let mut conf = config(w, &a["patch"]);
        conf["name"] = Value::String("hostile-net".into());
        support::write_libcni_cache(&w.node, &conf, &cid);
    } else {
        return Err(format!("unknown action {a}"));
    }
    Ok(())
}

fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), String> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
        return Err(format!("mknod {}: {}", p.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The case's network config: the recording backend's, with the step's merge patch.
fn config(w: &World, patch: &Value) -> Value {
    let mut conf = recording_conf("1.1.0", "hostile-net");
    let mut patch = patch.clone();
    w.fill_value(&mut patch);
    if !patch.is_null() {
        merge_patch(&mut conf, &patch);
    }
    conf
}

/// A server-mode OVS-DPDK config for the shipped binary, with the step's merge patch.
fn ovs_config(w: &World, patch: &Value) -> Value {
    let mut conf = support::ovs_conf("hostile-net", "br0", "server");
    let mut patch = patch.clone();
    w.fill_value(&mut patch);
    if !patch.is_null() {
        merge_patch(&mut conf, &patch);
    }
    conf
}

fn json_docs(s: &str) -> Result<Vec<Value>, String> {
    serde_json::Deserializer::from_str(s).into_iter::<Value>().collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// Run one `cni` or `cli` step of a case and check what it printed.
fn run_step(w: &World, case: &str, i: usize, step: &Value, v: &mut Verdict) {
    let at = format!("{case} [{}] step {i}", w.resolver.name());
    if let Some(actions) = step["do"].as_array() {
        for a in actions {
            if let Err(e) = act(w, a) {
                v.fail(format!("{at}: set-up action failed: {e}"));
            }
        }
        return;
    }
    let ovs = step["engine"].as_str() == Some("ovs") || step["bin"].as_str() == Some("plugin");
    let mut cmd = Command::new(if ovs { PLUGIN_BIN } else { TESTKIT_BIN });
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(w.node.settings_env());
    cmd.env("USERSPACE_CNI_FAILPOINT_SYNC", w.path("sync"));
    if w.resolver == Resolver::Walk {
        cmd.env("USERSPACE_CNI_RESOLVER", "walk");
    }
    if let Some(mask) = step["umask"].as_str().and_then(|m| u32::from_str_radix(m, 8).ok()) {
        // SAFETY: umask(2) is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
    }
    let cni = step["cni"].as_str();
    let mut stdin = Vec::new();
    if let Some(verb) = cni {
        let mut conf = if ovs { ovs_config(w, &step["patch"]) } else { config(w, &step["patch"]) };
        if verb == "CHECK" && conf.get("prevResult").is_none() {
            if let Some(prev) = w.last_result.borrow().clone() {
                conf["prevResult"] = prev;
            }
        }
        stdin = conf.to_string().into_bytes();
        cmd.env("CNI_COMMAND", verb).env("CNI_PATH", "/usr/lib/cni");
        if verb != "GC" {
            cmd.env("CNI_CONTAINERID", w.fill(step["cid"].as_str().unwrap_or("{cid}")))
                .env("CNI_IFNAME", step["ifname"].as_str().unwrap_or("net1"))
                .env("CNI_NETNS", this_netns());
        }
        if let Some(args) = step["args"].as_str() {
            cmd.env("CNI_ARGS", w.fill(args));
        }
    } else if let Some(args) = step["cli"].as_array() {
        cmd.args(args.iter().map(|a| w.fill(a.as_str().unwrap_or_default())));
        if let Some(p) = step["cni_path"].as_str() {
            cmd.env("CNI_PATH", p);
        }
    } else {
        v.fail(format!("{at}: a step needs \"cni\", \"cli\" or \"do\": {step}"));
        return;
    }
    if let Some(fp) = step["failpoint"].as_str() {
        cmd.env("USERSPACE_CNI_FAILPOINT", fp);
    }
    let before_all = step["unchanged"].as_bool().unwrap_or(false).then(|| w.everything());
    let during: Vec<Value> = step["during"].as_array().cloned().unwrap_or_default();
    let marker = step["pause"].as_str().map(|p| w.path("sync").join(format!("{p}.paused")));
    let mut during_errors = Vec::new();
    let swap = || {
        for a in &during {
            if let Err(e) = act(w, a) {
                eprintln!("{at}: swap action failed: {e}");
            }
        }
    };
    let out = run_bounded(cmd, &stdin, CHILD_LIMIT, marker.as_deref().map(|m| (m, &swap as &dyn Fn())));
    if marker.is_some() && out.stderr.contains("pause point was never reached") {
        during_errors.push("the pause point was never reached".to_string());
    }
    for e in during_errors {
        v.fail(format!("{at}: {e}"));
    }
    let shown =
        || format!("exit {:?} signal {:?}\nstdout: {}\nstderr: {}", out.code, out.signal, out.stdout, out.stderr);
    if std::env::var_os("HOSTILE_VERBOSE").is_some() {
        println!("--- {at}: {}", shown());
    }
    if out.timed_out {
        v.fail(format!("{at}: did not end within {CHILD_LIMIT:?} (killed): {}", shown()));
        return;
    }
    if out.max_rss_kib > RSS_LIMIT_KIB {
        v.fail(format!("{at}: peak RSS {} KiB (limit {RSS_LIMIT_KIB}): {}", out.max_rss_kib, shown()));
    }
    if let Some(ms) = step["within_ms"].as_u64() {
        if out.elapsed > Duration::from_millis(ms) {
            v.fail(format!("{at}: took {:?}, more than {ms} ms: {}", out.elapsed, shown()));
        }
    }
    for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if text.contains(&w.token) {
            v.fail(format!("{at}: decoy content appears in {what}: {text}"));
        }
    }
    let want_code = step["code"].as_u64();
    if cni == Some("ADD") && out.code == Some(0) {
        *w.last_result.borrow_mut() = serde_json::from_str(&out.stdout).ok();
    }
    if cni.is_some() {
        check_cni_output(&at, cni.unwrap_or_default(), want_code.unwrap_or(0), step, &out, v);
    } else {
        let want_exit = step["exit"].as_i64().unwrap_or(0) as i32;
        if out.code != Some(want_exit) {
            v.fail(format!("{at}: expected exit {want_exit}: {}", shown()));
        }
        let all = format!("{}\n{}", out.stdout, out.stderr).to_lowercase();
        for needle in step["out"].as_array().into_iter().flatten() {
            let n = w.fill(needle.as_str().unwrap_or_default()).to_lowercase();
            if !all.contains(&n) {
                v.fail(format!("{at}: output does not mention {n:?}: {}", shown()));
            }
        }
    }
    for needle in step["stderr"].as_array().into_iter().flatten() {
        let n = w.fill(needle.as_str().unwrap_or_default()).to_lowercase();
        if !out.stderr.to_lowercase().contains(&n) {
            v.fail(format!("{at}: stderr does not mention {n:?}: {}", shown()));
        }
    }
    if let Some(before) = before_all {
        let d = diff(&before, &w.everything());
        if !d.is_empty() {
            v.fail(format!("{at}: a refused input changed the node:\n  {}", d.join("\n  ")));
        }
    }
}

fn check_cni_output(at: &str, verb: &str, want: u64, step: &Value, out: &Outcome, v: &mut Verdict) {
    let shown = || format!("exit {:?}\nstdout: {}\nstderr: {}", out.code, out.stdout, out.stderr);
    let docs = match json_docs(&out.stdout) {
        Ok(d) => d,
        Err(e) => {
            v.fail(format!("{at}: stdout is not JSON ({e}): {}", shown()));
            return;
        }
    };
    let quiet_ok = want == 0 && verb != "ADD" && docs.is_empty();
    if docs.len() != 1 && !quiet_ok {
        v.fail(format!("{at}: stdout holds {} JSON documents, not one: {}", docs.len(), shown()));
        return;
    }
    let doc = docs.into_iter().next().unwrap_or(Value::Null);
    if want == 0 {
        if out.code != Some(0) {
            v.fail(format!("{at}: expected success: {}", shown()));
        }
        return;
    }
    if out.code == Some(0) {
        v.fail(format!("{at}: exit 0 for an expected error {want}: {}", shown()));
    }
    if doc["code"].as_u64() != Some(want) {
        v.fail(format!("{at}: expected code {want}, got {}: {}", doc["code"], shown()));
        return;
    }
    let msg = doc["msg"].as_str().unwrap_or_default().to_lowercase();
    for needle in step["msg"].as_array().into_iter().flatten() {
        let n = needle.as_str().unwrap_or_default().to_lowercase();
        if !msg.contains(&n) {
            v.fail(format!("{at}: the error does not name {n:?}: {msg}"));
        }
    }
}

/// The table's checks on the node after the steps.
fn check_after(w: &World, at: &str, c: &Value, v: &mut Verdict) {
    let p = |k: &str| c[k].as_str().map(|s| w.path(&w.fill(s)));
    if let Some(path) = p("kind") {
        let want = c["is"].as_str().unwrap_or("absent");
        let m = std::fs::symlink_metadata(&path).ok();
        let found = m.as_ref().map(|m| Meta::of(&path, m, false).kind).map(|k| match k {
            'd' => "dir",
            'f' => "file",
            'l' => "symlink",
            's' => "socket",
            'p' => "fifo",
            'c' => "chardev",
            _ => "other",
        });
        if found.unwrap_or("absent") != want {
            v.fail(format!("{at}: {} should be {want}, is {}", path.display(), found.unwrap_or("absent")));
        }
    }
    if let Some(path) = p("mode") {
        let want = u32::from_str_radix(c["is"].as_str().unwrap_or("0"), 8).unwrap_or(0);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.mode() & 0o7777 == want => {}
            Ok(m) => {
                v.fail(format!("{at}: {} has mode {:04o}, docs say {want:04o}", path.display(), m.mode() & 0o7777))
            }
            Err(e) => v.fail(format!("{at}: {}: {e}", path.display())),
        }
    }
    if let Some(port) = c["port"].as_str() {
        let dp: Value = std::fs::read(w.path("state/testkit/dataplane.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let port = w.fill(port);
        let found = &dp["ports"][&port];
        let want = c["is"].as_str().unwrap_or("absent");
        let ok = match want {
            "absent" => found.is_null(),
            _ => found["container_id"].as_str() == Some(&w.fill(want)),
        };
        if !ok {
            v.fail(format!("{at}: fake port {port} should be {want}, is {found}"));
        }
    }
    if let (Some(port), Some(lab)) = (c["ovs_port"].as_str(), &w.lab) {
        let port = w.fill(port);
        let bridge = c["bridge"].as_str().unwrap_or("br0");
        let ports = lab.ports(bridge).unwrap_or_default();
        let want = c["is"].as_str() == Some("present");
        if ports.contains(&port) != want {
            v.fail(format!("{at}: OVS port {port} on {bridge} should be {}, bridge has {ports:?}", c["is"]));
        }
    }
    if let Some(under) = p("no_mount_under") {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let hits: Vec<&str> =
            info.lines().filter(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(m).starts_with(&under))).collect();
        if !hits.is_empty() {
            v.fail(format!("{at}: mounts under {}: {hits:?}", under.display()));
        }
    }
}

/// Undo what a case may have left mounted under its root (a KubeVirt short dir), deepest first.
fn unmount_under(root: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> =
        info.lines().filter_map(|l| l.split(' ').nth(4)).map(PathBuf::from).filter(|m| m.starts_with(root)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in points {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Run one case on a fresh node under `resolver`; the failures found.
fn run_case(case: &Value, resolver: Resolver, lab: Option<Arc<Lab>>) -> Vec<String> {
    let name = case["name"].as_str().unwrap_or("?");
    if let Some(lab) = &lab {
        // Every lab row uses the same container id, so the same port and socket names: wait until
        // ovs-vswitchd has applied the previous row's deletions (DEL does not wait for it), or its
        // late unlink of the previous port's socket removes this row's decoy of the same name.
        // ovs-vsctl without --no-wait returns once vswitchd has applied this change, and
        // vswitchd applies the database in order.
        let mark = format!(
            "external_ids:uscni-test-sync={}",
            std::time::UNIX_EPOCH.elapsed().map(|d| d.as_nanos()).unwrap_or(0)
        );
        if let Err(e) = lab.vsctl(&["set", "Open_vSwitch", ".", &mark]) {
            return vec![format!("{name}: waiting for ovs-vswitchd failed: {e}")];
        }
    }
    let w = World::new(resolver, lab);
    let mut v = Verdict { failures: Vec::new() };
    for a in case["setup"].as_array().into_iter().flatten() {
        if let Err(e) = act(&w, a) {
            v.fail(format!("{name}: set-up failed: {e}"));
            return v.failures;
        }
    }
    let before = w.outside();
    for (i, step) in case["steps"].as_array().into_iter().flatten().enumerate() {
        run_step(&w, name, i, step, &mut v);
    }
    let at = format!("{name} [{}]", resolver.name());
    for c in case["after"].as_array().into_iter().flatten() {
        check_after(&w, &at, c, &mut v);
    }
    let d = diff(&before, &w.outside());
    if !d.is_empty() {
        v.fail(format!("{at}: something outside the allowed roots changed:\n  {}", d.join("\n  ")));
    }
    for (file, text) in w.logs() {
        if text.contains(&w.token) {
            v.fail(format!("{at}: decoy content appears in {file}"));
        }
    }
    unmount_under(w.root());
    for a in case["cleanup"].as_array().into_iter().flatten() {
        if let Err(e) = act(&w, a) {
            v.fail(format!("{at}: clean-up failed: {e}"));
        }
    }
    if let (Some(lab), Some(bridge)) = (&w.lab, case["bridge"].as_str()) {
        let _ = lab.vsctl(&["--if-exists", "del-br", bridge]);
    }
    v.failures
}

/// Run the whole table under one resolver; pass/fail per case is printed, expected failures
/// (`known_hole`, `needs`) are reported without failing the suite, and an expected failure that
/// passes is reported so its mark can go.
fn run_table(resolver: Resolver, lab: Option<Arc<Lab>>) {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("hostile/cases.json")).expect("tests/hostile/cases.json is valid JSON");
    assert!(cases.len() >= 50, "the hostile table must hold at least 50 cases, has {}", cases.len());
    // The `lab` rows need the private OVS-DPDK; the others run against the recording backend.
    let cases: Vec<&Value> = cases.iter().filter(|c| c["lab"].as_bool().unwrap_or(false) == lab.is_some()).collect();
    let only = std::env::var("HOSTILE_ONLY").ok();
    let mut failed = Vec::new();
    let (mut passed, mut expected) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mark = case["known_hole"].as_str().or(case["needs"].as_str());
        let failures = run_case(case, resolver, lab.clone());
        match (failures.is_empty(), mark) {
            (true, None) => {
                passed += 1;
                println!("ok       [{}] {name}", resolver.name());
            }
            (true, Some(m)) => {
                passed += 1;
                println!("FIXED?   [{}] {name}: passes although marked ({m}); remove the mark", resolver.name());
            }
            (false, Some(m)) => {
                expected += 1;
                println!(
                    "EXPECTED [{}] {name}: fails as marked ({m}):\n    {}",
                    resolver.name(),
                    failures.join("\n    ")
                );
            }
            (false, None) => {
                println!("FAIL     [{}] {name}:\n    {}", resolver.name(), failures.join("\n    "));
                failed.push(failures.join("\n"));
            }
        }
    }
    println!(
        "hostile table [{}]: {passed} passed, {expected} expected failures (marked), {} failed",
        resolver.name(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} hostile case(s) failed under {}:\n{}",
        failed.len(),
        resolver.name(),
        failed.join("\n")
    );
}

#[test]
fn hostile_table_under_openat2() {
    print!("{}", run_in_private_mount_ns("inner_hostile_table_openat2"));
}

#[test]
fn hostile_table_under_the_userspace_walk() {
    print!("{}", run_in_private_mount_ns("inner_hostile_table_walk"));
}

#[test]
#[ignore = "run by hostile_table_under_openat2 in a private mount namespace"]
fn inner_hostile_table_openat2() {
    run_table(Resolver::Openat2, None);
}

#[test]
#[ignore = "run by hostile_table_under_the_userspace_walk in a private mount namespace"]
fn inner_hostile_table_walk() {
    run_table(Resolver::Walk, None);
}

#[test]
fn hostile_ovs_rows_under_both_resolvers() {
    print!("{}", run_in_private_mount_ns("inner_hostile_ovs_rows"));
}

/// The rows marked `lab`, against a private OVS-DPDK, one resolver after the other (they share
/// the lab's socket dir, where some rows plant a decoy).
#[test]
#[ignore = "run by hostile_ovs_rows_under_both_resolvers in a private mount namespace"]
fn inner_hostile_ovs_rows() {
    let lab = Lab::shared("hostile").expect("start the private OVS-DPDK lab");
    run_table(Resolver::Openat2, Some(lab.clone()));
    run_table(Resolver::Walk, Some(lab));
}
