//! Crash safety against the real lab (private OVS-DPDK, Debian's host-local with its dataDir under
//! the test root): ADD is SIGKILLed before, during and after each of its steps, and DEL before the
//! undo of each step, in client mode, server mode and KubeVirt (short-dir bind mount) client mode.
//! After each kill the next DEL, or a GC of the network, must leave nothing: no OVS bridge, port
//! or interface of the network, no record, lock or temp file, no shared or short dir, no socket in
//! OVS's dir, no mount under the test root (/proc/self/mountinfo), no host-local lease.
//! Mounts happen only inside a private mount namespace: each test re-runs its inner half there.

mod reliability;
mod support;

use reliability::{assert_no_leak, inspect, leaks, ovs_conf, with_host_local};
use serde_json::{json, Value};
use support::{Node, Run};
use testlab::Lab;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Client,
    Server,
    /// Client mode, the pod's `shared-dir` emptyDir too deep for sun_path: the short-dir step.
    KubeVirt,
}

impl Mode {
    fn vhost(self) -> &'static str {
        match self {
            Mode::Server => "server",
            _ => "client",
        }
    }

    fn steps(self) -> Vec<&'static str> {
        let mut s = vec!["shared-dir", "ipam", "bridge", "vhost-port", "save-state"];
        match self {
            Mode::Server => s.insert(4, "deliver-socket"),
            Mode::KubeVirt => s.insert(0, "short-dir"),
            Mode::Client => {}
        }
        s
    }

    fn tag(self) -> &'static str {
        match self {
            Mode::Client => "cli",
            Mode::Server => "srv",
            Mode::KubeVirt => "kv",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cleaner {
    Del,
    Gc,
}

const POD_UID: &str = "c7a5b0d1-1111-4c5d-a6f7-0123456789ab";
const CID: &str = "c7a5000000000000000000000000000000000000000000000000000000000001";

/// One scenario's node, config and environment.
struct Scene {
    node: Node,
    conf: Value,
    network: String,
    env: Vec<(String, String)>,
}

fn scene(lab: &Lab, mode: Mode) -> Scene {
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let network = format!("crash-{}", mode.tag());
    let conf =
        with_host_local(&node, ovs_conf(&network, &format!("br-crash-{}", mode.tag()), mode.vhost()), "10.77.0.0/24");
    let mut env = Vec::new();
    if mode == Mode::KubeVirt {
        let vol = node.path("kubelet").join("pods").join(POD_UID).join("volumes/kubernetes.io~empty-dir/shared-dir");
        std::fs::create_dir_all(&vol).expect("the pod's emptyDir, as kubelet makes it");
        env.push((
            "CNI_ARGS".into(),
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm;K8S_POD_UID={POD_UID}"),
        ));
    }
    Scene { node, conf, network, env }
}

impl Scene {
    fn run(&self, verb: &str, failpoint: Option<&str>) -> Run {
        let mut extra: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some(fp) = failpoint {
            extra.push(("USERSPACE_CNI_FAILPOINT", fp));
        }
        if verb == "GC" {
            let mut gc = self.conf.clone();
            gc["cni.dev/valid-attachments"] = json!([]);
            return self.node.cni("GC", "", "", &gc, &extra);
        }
        self.node.cni(verb, CID, "net1", &self.conf, &extra)
    }

    fn clean(&self, cleaner: Cleaner) {
        let run = match cleaner {
            Cleaner::Del => self.run("DEL", None),
            Cleaner::Gc => self.run("GC", None),
        };
        run.expect_ok();
    }

    fn record_exists(&self) -> bool {
        self.node.state_dir().join(format!("{CID}_net1.json")).exists()
    }
}

fn assert_killed(run: &Run, what: &str) {
    assert_eq!(run.signal, Some(9), "{what}: expected SIGKILL by the failpoint, got {run:?}");
}

/// Every ADD kill point of `mode`: before and after each step, during the steps that have a
/// mid-step failpoint (the bridge insert and the port insert, between commit and the checks).
fn add_kill_points(mode: Mode) -> Vec<String> {
    let mut out = Vec::new();
    for step in mode.steps() {
        for phase in ["before", "during", "after"] {
            if phase == "during" && !matches!(step, "bridge" | "vhost-port") {
                continue;
            }
            out.push(format!("add:{step}:{phase}:kill"));
        }
    }
    out
}

/// Before cleaning, the leak detector must see what the killed ADD made (else "no leak" after
/// cleaning would prove nothing): the record always, the lease once host-local ran, the OVS
/// port once it was committed, the bind mount once the short dir was mounted.
fn assert_detector_sees(lab: &Lab, s: &Scene, mode: Mode, fp: &str, why: &str) {
    let steps = mode.steps();
    let mut parts = fp.split(':').skip(1);
    let (step, phase) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let pos = steps.iter().position(|x| *x == step).unwrap_or(0);
    // Whether `other` had completed (or committed, for `during`) when the kill hit.
    let done = |other: &str, committed_during: bool| {
        let i = steps.iter().position(|x| *x == other).unwrap_or(usize::MAX);
        i < pos || (i == pos && (phase == "after" || (committed_during && phase == "during")))
    };
    let found = leaks(lab, &s.node, &s.network, &CID[..12]);
    let has = |prefix: &str| found.iter().any(|l| l.starts_with(prefix));
    assert!(found.iter().any(|l| l.ends_with("_net1.json")), "{why}: the record is seen: {found:?}");
    if done("ipam", false) {
        assert!(has("lease "), "{why}: the lease is seen: {found:?}");
    }
    if done("vhost-port", true) {
        assert!(has("OVS Interface "), "{why}: the port is seen: {found:?}");
    }
    if mode == Mode::KubeVirt && done("short-dir", false) {
        assert!(has("mount "), "{why}: the mount is seen: {found:?}");
    }
}

struct Tally {
    kill_points: usize,
    runs: usize,
    leaks: Vec<String>,
}

fn add_killed_then_cleaned(lab: &Lab, modes: &[Mode]) -> Tally {
    let mut t = Tally { kill_points: 0, runs: 0, leaks: Vec::new() };
    for &mode in modes {
        for fp in add_kill_points(mode) {
            t.kill_points += 1;
            for cleaner in [Cleaner::Del, Cleaner::Gc] {
                let why = format!("{mode:?} {fp}, cleaned by {cleaner:?}");
                let s = scene(lab, mode);
                assert_killed(&s.run("ADD", Some(&fp)), &why);
                assert!(s.record_exists(), "{why}: the intent record exists before the first step");
                let listed = inspect(&s.node);
                assert_eq!(listed.len(), 1, "{why}: inspect lists the attachment: {listed:?}");
                // Killed after the record's completion, ADD had finished all but printing.
                let want = if fp == "add:save-state:after:kill" { "complete" } else { "orphaned" };
                assert_eq!(listed[0]["state"], want, "{why}: {}", listed[0]);
                assert_detector_sees(lab, &s, mode, &fp, &why);
                s.clean(cleaner);
                t.runs += 4;
                let l = leaks(lab, &s.node, &s.network, &CID[..12]);
                if !l.is_empty() {
                    t.leaks.push(format!("{why}: {l:?}"));
                }
                // The runtime may repeat DEL: still fine, still nothing.
                s.run("DEL", None).expect_ok();
                assert_no_leak(lab, &s.node, &s.network, &CID[..12], &format!("{why}, after a repeated DEL"));
            }
        }
    }
    t
}

fn del_killed_then_cleaned(lab: &Lab, modes: &[Mode]) -> Tally {
    let mut t = Tally { kill_points: 0, runs: 0, leaks: Vec::new() };
    for &mode in modes {
        for step in mode.steps() {
            let fp = format!("del:{step}:undo:kill");
            t.kill_points += 1;
            for cleaner in [Cleaner::Del, Cleaner::Gc] {
                let why = format!("{mode:?} {fp}, cleaned by {cleaner:?}");
                let s = scene(lab, mode);
                let res = s.run("ADD", None).expect_ok();
                assert_eq!(res["ips"][0]["address"], "10.77.0.2/24", "{why}: host-local gave an address: {res}");
                assert_killed(&s.run("DEL", Some(&fp)), &why);
                assert!(s.record_exists(), "{why}: the record stays until every undo succeeded");
                s.clean(cleaner);
                t.runs += 3;
                let l = leaks(lab, &s.node, &s.network, &CID[..12]);
                if !l.is_empty() {
                    t.leaks.push(format!("{why}: {l:?}"));
                }
            }
        }
    }
    t
}

fn report(name: &str, t: &Tally) {
    eprintln!(
        "crash summary {name}: {} kill points, {} cleaners each, {} plugin runs, {} leaks",
        t.kill_points,
        2,
        t.runs,
        t.leaks.len()
    );
    assert!(t.leaks.is_empty(), "{name}: {} leaks:\n{}", t.leaks.len(), t.leaks.join("\n"));
}

#[test]
fn add_killed_at_every_step_is_cleaned_by_del_or_gc() {
    let out = support::run_in_private_mount_ns("inner_add_killed_at_every_step");
    for l in out.lines().filter(|l| l.starts_with("crash summary")) {
        eprintln!("{l}");
    }
}

#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn inner_add_killed_at_every_step() {
    let lab = Lab::start("crash-add").expect("lab");
    let t = add_killed_then_cleaned(&lab, &[Mode::Client, Mode::Server, Mode::KubeVirt]);
    assert_eq!(t.kill_points, 12 + 14 + 14, "kill points covered");
    report("ADD", &t);
    lab.stop().expect("stop lab");
}

#[test]
fn del_killed_before_every_undo_is_cleaned_by_del_or_gc() {
    let out = support::run_in_private_mount_ns("inner_del_killed_before_every_undo");
    for l in out.lines().filter(|l| l.starts_with("crash summary")) {
        eprintln!("{l}");
    }
}

#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn inner_del_killed_before_every_undo() {
    let lab = Lab::start("crash-del").expect("lab");
    let t = del_killed_then_cleaned(&lab, &[Mode::Client, Mode::Server, Mode::KubeVirt]);
    assert_eq!(t.kill_points, 5 + 6 + 6, "kill points covered");
    report("DEL", &t);
    lab.stop().expect("stop lab");
}

impl Scene {
    /// Start `verb` as a runtime would, without waiting for it.
    fn spawn(&self, verb: &str) -> std::process::Child {
        let mut cmd = std::process::Command::new(support::PLUGIN_BIN);
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.envs(self.node.settings_env());
        cmd.envs([
            ("CNI_COMMAND", verb),
            ("CNI_CONTAINERID", CID),
            ("CNI_IFNAME", "net1"),
            ("CNI_NETNS", support::this_netns().as_str()),
            ("CNI_PATH", "/usr/lib/cni"),
        ]);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawn the plugin");
        if let Some(mut si) = child.stdin.take() {
            use std::io::Write;
            si.write_all(self.conf.to_string().as_bytes()).expect("config");
        }
        child
    }
}

/// SIGKILL `child` after `delay` (if it is still running); whether the kill landed.
fn kill_after(mut child: std::process::Child, delay: std::time::Duration) -> bool {
    std::thread::sleep(delay);
    let landed = child.try_wait().ok().flatten().is_none() && child.kill().is_ok();
    let status = child.wait().expect("reap");
    use std::os::unix::process::ExitStatusExt;
    landed && status.signal() == Some(9)
}

/// Kills at arbitrary moments, not only at failpoints: inside a delegate, inside the record's
/// rewrite, between the last undo and the record's removal. The delays sweep the whole run of an
/// uninterrupted ADD (or DEL) in even steps.
fn timed_kills(lab: &Lab, mode: Mode, points: u32) -> Tally {
    let mut t = Tally { kill_points: 0, runs: 0, leaks: Vec::new() };
    let measure = |verb: &str, s: &Scene| {
        let started = std::time::Instant::now();
        s.run(verb, None).expect_ok();
        started.elapsed()
    };
    // The median of three uninterrupted runs: the first one of a lab is slower (cold caches).
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let probe = scene(lab, mode);
        adds.push(measure("ADD", &probe));
        dels.push(measure("DEL", &probe));
    }
    adds.sort();
    dels.sort();
    let (add_time, del_time) = (adds[1], dels[1]);
    for (verb, span) in [("ADD", add_time), ("DEL", del_time)] {
        for i in 0..points {
            let delay = span * i / points;
            let why = format!("{mode:?} {verb} killed after {delay:?} of {span:?}");
            let s = scene(lab, mode);
            if verb == "DEL" {
                s.run("ADD", None).expect_ok();
                t.runs += 1;
            }
            if kill_after(s.spawn(verb), delay) {
                t.kill_points += 1;
            }
            s.run("DEL", None).expect_ok();
            t.runs += 2;
            let l = leaks(lab, &s.node, &s.network, &CID[..12]);
            if !l.is_empty() {
                t.leaks.push(format!("{why}: {l:?}"));
            }
        }
    }
    t
}

#[test]
fn kills_at_arbitrary_moments_of_add_and_del_are_cleaned_by_del() {
    let out = support::run_in_private_mount_ns("inner_timed_kills");
    for l in out.lines().filter(|l| l.starts_with("crash summary")) {
        eprintln!("{l}");
    }
}

#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn inner_timed_kills() {
    let lab = Lab::start("crash-time").expect("lab");
    // A longer campaign: USERSPACE_CNI_TEST_TIMED_KILLS=500 (kills per verb and mode).
    let points = std::env::var("USERSPACE_CNI_TEST_TIMED_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    for mode in [Mode::Server, Mode::KubeVirt] {
        let t = timed_kills(&lab, mode, points);
        eprintln!(
            "crash summary timed {mode:?}: {} kills landed mid-run, {} plugin runs, {} leaks",
            t.kill_points,
            t.runs,
            t.leaks.len()
        );
        assert!(t.leaks.is_empty(), "{mode:?}: {} leaks:\n{}", t.leaks.len(), t.leaks.join("\n"));
        // Of 2 × points attempts, the latest may come after a run finished: at least half land.
        assert!(t.kill_points >= points as usize, "{mode:?}: only {} kills landed mid-run", t.kill_points);
    }
    lab.stop().expect("stop lab");
}

/// What a host-local killed between creating its lease file and writing the owner into it
/// leaves (tests/crash.rs's timed kills hit it): an empty lease that host-local's DEL, which
/// matches owners, never frees. The next DEL (and so GC and the reconciler) removes it.
#[test]
fn a_torn_host_local_lease_is_released_by_the_next_del() {
    let lab = Lab::shared("crash-torn").expect("lab");
    for cleaner in [Cleaner::Del, Cleaner::Gc] {
        let s = scene(&lab, Mode::Client);
        assert_killed(&s.run("ADD", Some("add:ipam:after:kill")), "torn lease");
        let lease = s.node.path("ipam").join(&s.network).join("10.77.0.2");
        std::fs::write(&lease, b"").expect("tear the lease as a killed host-local does");
        s.clean(cleaner);
        assert_no_leak(&lab, &s.node, &s.network, &CID[..12], &format!("torn lease, cleaned by {cleaner:?}"));
    }
}

/// The children of `pid` named `comm`, from /proc.
fn children_named(pid: u32, comm: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else { return false };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or("");
            let ppid = rest.split_whitespace().nth(1).and_then(|x| x.parse::<u32>().ok());
            name == comm && ppid == Some(pid)
        })
        .collect()
}

/// A kill while the IPAM delegate itself runs: host-local is blocked on its own dataDir lock
/// (held by the test) when the plugin is SIGKILLed. PDEATHSIG takes host-local down with us, no
/// lease is half-made, and the next DEL (IPAM DEL included) leaves nothing.
#[test]
fn add_killed_while_host_local_runs_is_cleaned_by_del() {
    let lab = Lab::start("crash-ipam").expect("lab");
    let s = scene(&lab, Mode::Client);
    let dir = s.node.path("ipam").join(&s.network);
    std::fs::create_dir_all(&dir).expect("host-local's network dir");
    let lock = std::fs::File::create(dir.join("lock")).expect("host-local's lock file");
    lock.lock().expect("hold host-local's lock");

    let mut cmd = std::process::Command::new(support::PLUGIN_BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(s.node.settings_env());
    cmd.envs([
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", CID),
        ("CNI_IFNAME", "net1"),
        ("CNI_NETNS", support::this_netns().as_str()),
        ("CNI_PATH", "/usr/lib/cni"),
    ]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(s.conf.to_string().as_bytes()).expect("config");
    }
    let started = std::time::Instant::now();
    let delegate = loop {
        // VERSION is answered without the lock; ADD blocks on it.
        if let Some(p) = children_named(child.id(), "host-local").first() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if testlab::pid_alive(*p) {
                break *p;
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "host-local never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    child.kill().expect("SIGKILL the plugin");
    let _ = child.wait();
    let gone = std::time::Instant::now();
    while testlab::pid_alive(delegate) {
        assert!(gone.elapsed() < std::time::Duration::from_secs(5), "host-local {delegate} outlived the plugin");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(s.record_exists(), "killed after the intent record was made");
    lock.unlock().expect("release host-local's lock");
    drop(lock);
    s.run("DEL", None).expect_ok();
    assert_no_leak(&lab, &s.node, &s.network, &CID[..12], "ADD killed during host-local");
    lab.stop().expect("stop lab");
}
