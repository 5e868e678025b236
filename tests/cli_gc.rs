//! The node reconciler, `userspace gc`, against the real lab with host-local and real network
//! namespaces: it removes an attachment (port, bridge, socket, shared dir, short-dir mount, lease,
//! record) only when its netns is gone, its record is older than the grace period and its lock is
//! free; a missing netns directory is never taken for "every pod is gone"; `--dry-run` changes
//! nothing; `--every` keeps reaping and stops promptly on SIGTERM and SIGINT; the heartbeat
//! answers the liveness probe `gc --check-heartbeat`.

mod reliability;
mod support;

use reliability::{assert_no_leak, cli, inspect, leases, ovs_conf, with_host_local};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Netns, Node, PLUGIN_BIN};
use testlab::Lab;

fn lab() -> Arc<Lab> {
    Lab::shared("cli-gc").expect("lab")
}

fn record_path(node: &Node, cid: &str) -> std::path::PathBuf {
    node.state_dir().join(format!("{cid}_net1.json"))
}

/// Point a record at another netns path (as a runtime that pinned it elsewhere would have).
fn set_record_netns(node: &Node, cid: &str, netns: &str) {
    let p = record_path(node, cid);
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&p).expect("record")).expect("json");
    rec["attachment"]["netns"] = Value::String(netns.into());
    std::fs::write(&p, serde_json::to_vec_pretty(&rec).expect("encode")).expect("write record");
}

#[test]
fn gc_removes_only_attachments_whose_netns_is_gone() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let client = with_host_local(&node, ovs_conf("net-rc", "br-rc", "client"), "10.85.0.0/24");
    let server = with_host_local(&node, ovs_conf("net-rc", "br-rc", "server"), "10.85.0.0/24");
    let (gone_pod, live_pod) = (Netns::new("rcgone"), Netns::new("rclive"));
    let (gone, live, dead_add) = ("r0gone000000001", "r0live000000002", "r0deadadd000003");
    node.cni("ADD", gone, "net1", &server, &[("CNI_NETNS", &gone_pod.path())]).expect_ok();
    node.cni("ADD", live, "net1", &client, &[("CNI_NETNS", &live_pod.path())]).expect_ok();
    // An ADD killed half-way whose pod is gone too: orphaned twice over.
    let run = node.cni(
        "ADD",
        dead_add,
        "net1",
        &client,
        &[("CNI_NETNS", &gone_pod.path()), ("USERSPACE_CNI_FAILPOINT", "add:vhost-port:during:kill")],
    );
    assert_eq!(run.signal, Some(9), "{run:?}");
    drop(gone_pod);

    let run = cli(&node, &["gc", "--grace", "0s"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for cid in [gone, dead_add] {
        assert!(run.stdout.contains(&format!("removed {cid}/net1")), "{}", run.stdout);
        assert!(!record_path(&node, cid).exists(), "{cid}: record gone");
        assert!(!node.shared_base().join(&cid[..12]).exists(), "{cid}: shared dir gone");
    }
    assert!(run.stdout.contains("3 attachments, 2 removed, 1 kept"), "{}", run.stdout);
    assert_eq!(lab.ports("br-rc").expect("ports"), vec!["r0live000000-net1".to_string()]);
    assert_eq!(leases(&node, "net-rc"), vec!["10.85.0.3"], "only the live pod's lease stays");
    assert!(record_path(&node, live).exists());
    assert!(node.state_dir().join("reconciler.heartbeat").exists(), "a pass leaves its heartbeat");

    drop(live_pod);
    let run = cli(&node, &["gc", "--grace", "0s"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_no_leak(&lab, &node, "net-rc", "r0", "after every pod went");
}

#[test]
fn a_missing_netns_directory_is_never_taken_for_dead_pods() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = ovs_conf("net-rc-dir", "br-rc-dir", "client");
    let pod = Netns::new("rcdir");
    let cids = ["n0one000000001", "n0two000000002"];
    for cid in cids {
        node.cni("ADD", cid, "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
        // As if the runtime pinned netns under a directory this reconciler does not see (its
        // /run/netns mount is missing): every file in it looks absent.
        set_record_netns(&node, cid, &node.path("netns-mount/pod").display().to_string());
    }
    let run = cli(&node, &["gc", "--grace", "0s"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("2 attachments, 0 removed, 2 kept"), "{}", run.stdout);
    assert!(run.stdout.contains("cannot be verified") && run.stdout.contains("does not exist here"), "{}", run.stdout);
    assert_eq!(lab.ports("br-rc-dir").expect("ports").len(), 2, "nothing reaped");
    // The directory exists (mounted) and holds no such netns: now it is provably gone.
    std::fs::create_dir(node.path("netns-mount")).expect("dir");
    let run = cli(&node, &["gc", "--grace", "0s"], &[]);
    assert!(run.stdout.contains("2 attachments, 2 removed"), "{}", run.stdout);
    std::fs::remove_dir(node.path("netns-mount")).expect("the test's own dir");
    assert_no_leak(&lab, &node, "net-rc-dir", "n0", "after the directory appeared");
}

#[test]
fn grace_locks_and_dry_run_keep_attachments() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = with_host_local(&node, ovs_conf("net-rc-keep", "br-rc-keep", "client"), "10.86.0.0/24");
    let pod = Netns::new("rckeep");
    let cid = "k0young0000001";
    node.cni("ADD", cid, "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    drop(pod);

    let run = cli(&node, &["gc"], &[]);
    assert!(run.stdout.contains("younger than the grace period"), "default grace 5m: {}", run.stdout);
    let lock = std::fs::File::open(node.state_dir().join(format!("{cid}_net1.lock"))).expect("lock");
    lock.lock().expect("hold the lock");
    let run = cli(&node, &["gc", "--grace", "0s"], &[]);
    assert!(run.stdout.contains("an ADD/DEL/GC holds its lock"), "{}", run.stdout);
    drop(lock);

    let before = node.snapshot();
    let heartbeat_before =
        std::fs::metadata(node.state_dir().join("reconciler.heartbeat")).and_then(|m| m.modified()).ok();
    let run = cli(&node, &["gc", "--dry-run", "--grace", "0s", "--json"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON report");
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["attachments"][0]["containerId"], cid);
    assert_eq!(report["attachments"][0]["action"], "would-reap", "{report}");
    assert_eq!(node.snapshot(), before, "a dry run changes no file");
    let heartbeat_after =
        std::fs::metadata(node.state_dir().join("reconciler.heartbeat")).and_then(|m| m.modified()).ok();
    assert_eq!(heartbeat_before, heartbeat_after, "nor the heartbeat");
    assert_eq!(lab.ports("br-rc-keep").expect("ports").len(), 1, "nor OVS");
    assert_eq!(leases(&node, "net-rc-keep").len(), 1, "nor the lease");

    let run = cli(&node, &["gc", "--grace", "0s", "--json"], &[]);
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON report");
    assert_eq!(report["attachments"][0]["action"], "reaped", "{report}");
    assert_no_leak(&lab, &node, "net-rc-keep", "k0young0000", "after the real pass");
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_every(node: &Node) -> std::process::Child {
    Command::new(PLUGIN_BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(node.settings_env())
        .args(["gc", "--every", "1s", "--grace", "0s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gc --every")
}

fn stop_within(mut child: std::process::Child, sig: i32, limit: Duration) -> String {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "exits 0 on signal {sig}");
            break;
        }
        assert!(start.elapsed() < limit, "gc --every did not stop within {limit:?} of signal {sig}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_keeps_reaping_answers_the_liveness_probe_and_stops_on_sigterm_and_sigint() {
    let lab = lab();
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = with_host_local(&node, ovs_conf("net-rc-every", "br-rc-every", "client"), "10.87.0.0/24");

    let probe = cli(&node, &["gc", "--check-heartbeat", "180s"], &[]);
    assert_eq!(probe.code, Some(1), "no pass yet: {probe:?}");
    assert!(probe.stderr.contains("no reconciler heartbeat"), "{}", probe.stderr);

    let child = spawn_every(&node);
    wait_until("the first pass", Duration::from_secs(10), || node.state_dir().join("reconciler.heartbeat").exists());
    // A pod comes and goes while the reconciler runs: a later pass removes what it left.
    let pod = Netns::new("rcevery");
    let cid = "v0every0000001";
    node.cni("ADD", cid, "net1", &conf, &[("CNI_NETNS", &pod.path())]).expect_ok();
    drop(pod);
    wait_until("the orphan to be reaped", Duration::from_secs(15), || !record_path(&node, cid).exists());
    let probe = cli(&node, &["gc", "--check-heartbeat", "180s"], &[]);
    assert_eq!(probe.code, Some(0), "{probe:?}");
    let out = stop_within(child, libc::SIGTERM, Duration::from_secs(2));
    assert!(out.contains(&format!("removed {cid}/net1")), "{out}");
    assert_no_leak(&lab, &node, "net-rc-every", "v0every00000", "after the loop reaped");

    let child = spawn_every(&node);
    std::thread::sleep(Duration::from_millis(300));
    stop_within(child, libc::SIGINT, Duration::from_secs(2));

    // A heartbeat older than the limit fails the probe.
    let old = Command::new("touch")
        .args(["-d", "10 minutes ago"])
        .arg(node.state_dir().join("reconciler.heartbeat"))
        .status()
        .expect("touch");
    assert!(old.success());
    let probe = cli(&node, &["gc", "--check-heartbeat", "180s"], &[]);
    assert_eq!(probe.code, Some(1), "{probe:?}");
    assert!(probe.stderr.contains("more than the allowed 180s"), "{}", probe.stderr);
    assert_eq!(cli(&node, &["gc", "--every", "0s"], &[]).code, Some(2), "a zero period is refused");
}

#[test]
fn gc_unmounts_the_short_dir_of_a_dead_kubevirt_pod() {
    support::run_in_private_mount_ns("inner_kubevirt_orphan");
}

#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn inner_kubevirt_orphan() {
    let lab = Lab::start("cli-gc-kv").expect("lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let conf = with_host_local(&node, ovs_conf("net-rc-kv", "br-rc-kv", "client"), "10.88.0.0/24");
    let uid = "5d0c1f2a-9b8e-4c5d-a6f7-0123456789ab";
    let vol = node.path("kubelet").join("pods").join(uid).join("volumes/kubernetes.io~empty-dir/shared-dir");
    std::fs::create_dir_all(&vol).expect("the pod's emptyDir");
    let pod = Netns::new("rckv");
    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm;K8S_POD_UID={uid}");
    for ifname in ["net1", "net2"] {
        node.cni("ADD", "q0kubevirt0001", ifname, &conf, &[("CNI_NETNS", &pod.path()), ("CNI_ARGS", &args)])
            .expect_ok();
    }
    let short = node.path("short").join(uid);
    assert!(userspace_cni::steps::short_dir::is_mount_point(&short), "mounted");
    assert_eq!(inspect(&node).len(), 2);
    drop(pod);
    let run = cli(&node, &["gc", "--grace", "0s"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("2 attachments, 2 removed"), "{}", run.stdout);
    assert!(!userspace_cni::steps::short_dir::is_mount_point(&short), "unmounted with the last interface");
    assert!(vol.is_dir(), "kubelet's emptyDir is never removed");
    assert_no_leak(&lab, &node, "net-rc-kv", "q0kubevirt00", "after the pod went");
    lab.stop().expect("stop lab");
}
