//! IPAM delegation through the real testkit binary and Debian's real host-local (its `dataDir` in
//! the test node's temp root): results in every version, dual-stack, leases released on DEL and
//! on every failure path, version negotiation, CHECK/GC/STATUS forwarding, timeouts and PDEATHSIG.
#![cfg(feature = "testkit")]

mod support;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{recording_conf, this_netns, Node, TESTKIT_BIN};
use userspace_cni_testkit as testkit;

const HOST_LOCAL: &str = "/usr/lib/cni/host-local";
const CID: &str = "1pa0000000000000aaaabbbbccccdddd";
const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn v4_range() -> Value {
    json!([[{"subnet": "10.10.0.0/24", "gateway": "10.10.0.1"}]])
}

/// A recording-backend config delegating to host-local with `ranges`, leases under `<root>/ipam`.
fn ipam_conf(node: &Node, version: &str, name: &str, ranges: Value) -> Value {
    let mut c = recording_conf(version, name);
    c["ipam"] = json!({
        "type": "host-local",
        "dataDir": node.path("ipam").display().to_string(),
        "ranges": ranges,
        "routes": [{"dst": "0.0.0.0/0"}]
    });
    c
}

/// host-local's lease files of a network: every file but its `lock` and `last_reserved_ip.*`.
fn leases(node: &Node, network: &str) -> Vec<String> {
    let dir = node.path("ipam").join(network);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip."))
        .collect();
    out.sort();
    out
}

/// Nothing of any attachment is left: no port or bridge, no record, socket or dir, no lease
/// (host-local's own `lock` and `last_reserved_ip.*` bookkeeping may stay).
fn assert_clean(node: &Node, network: &str, why: &str) {
    let dp = testkit::load(&node.state_dir());
    assert!(dp.ports.is_empty(), "{why}: ports left: {:?}", dp.ports);
    assert!(dp.bridges.is_empty(), "{why}: bridges left: {:?}", dp.bridges);
    let l = leases(node, network);
    assert!(l.is_empty(), "{why}: leases left in {}: {l:?}", node.path("ipam").join(network).display());
    let left: Vec<String> = node
        .leftovers()
        .into_iter()
        .filter(|p| {
            // The test's own delegates and their logs.
            let test_files = p.starts_with("bin-") || p == "delegate.pid";
            let ipam_bookkeeping = test_files
                || p == "ipam"
                || p == &format!("ipam/{network}")
                || p == &format!("ipam/{network}/lock")
                || p.starts_with(&format!("ipam/{network}/last_reserved_ip."));
            !ipam_bookkeeping
        })
        .collect();
    assert!(left.is_empty(), "{why}: files left: {left:?}");
}

fn sandbox_index(res: &Value) -> usize {
    let ifaces = res["interfaces"].as_array().unwrap_or_else(|| panic!("no interfaces in {res}"));
    ifaces.iter().position(|i| i["sandbox"].is_string()).unwrap_or_else(|| panic!("no sandbox entry in {res}"))
}

fn lease_owner(node: &Node, network: &str, ip: &str) -> String {
    std::fs::read_to_string(node.path("ipam").join(network).join(ip)).unwrap_or_default()
}

#[test]
fn ipv4_add_in_every_version_puts_the_ip_on_the_sandbox_interface() {
    for v in VERSIONS {
        let node = Node::new();
        let conf = ipam_conf(&node, v, "ipam-v4", v4_range());
        let res = node.cni("ADD", CID, "net1", &conf, &[]).expect_ok();
        assert_eq!(res["cniVersion"], v, "{res}");
        let sandbox = sandbox_index(&res);
        let ips = res["ips"].as_array().unwrap_or_else(|| panic!("{v}: no ips in {res}"));
        assert_eq!(ips.len(), 1, "{v}: {res}");
        assert_eq!(ips[0]["address"], "10.10.0.2/24", "{v}: {res}");
        assert_eq!(ips[0]["gateway"], "10.10.0.1", "{v}: {res}");
        assert_eq!(ips[0]["interface"].as_u64(), Some(sandbox as u64), "{v}: ip must point at the sandbox: {res}");
        if v.starts_with("0.") {
            assert_eq!(ips[0]["version"], "4", "{v}: a 0.x ip carries its family: {res}");
        } else {
            assert!(ips[0].get("version").is_none(), "{v}: no version field after 0.x: {res}");
        }
        assert_eq!(res["routes"], json!([{"dst": "0.0.0.0/0"}]), "{v}: routes copied: {res}");
        assert_eq!(leases(&node, "ipam-v4"), vec!["10.10.0.2"], "{v}");
        assert!(lease_owner(&node, "ipam-v4", "10.10.0.2").contains(CID), "{v}: the lease names the container");

        node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
        assert_clean(&node, "ipam-v4", &format!("{v}: after DEL"));
        node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
        assert_clean(&node, "ipam-v4", &format!("{v}: after a second DEL"));
    }
}

#[test]
fn dual_stack_add_gets_two_ips_and_del_releases_both() {
    let node = Node::new();
    let ranges = json!([
        [{"subnet": "10.11.0.0/24", "gateway": "10.11.0.1"}],
        [{"subnet": "fd00:11::/64", "gateway": "fd00:11::1"}]
    ]);
    let conf = ipam_conf(&node, "1.1.0", "ipam-ds", ranges);
    let res = node.cni("ADD", CID, "net1", &conf, &[]).expect_ok();
    let sandbox = sandbox_index(&res) as u64;
    let ips = res["ips"].as_array().unwrap_or_else(|| panic!("no ips in {res}"));
    let got: Vec<(&str, &str, Option<u64>)> = ips
        .iter()
        .map(|ip| {
            (ip["address"].as_str().unwrap_or(""), ip["gateway"].as_str().unwrap_or(""), ip["interface"].as_u64())
        })
        .collect();
    assert_eq!(
        got,
        vec![("10.11.0.2/24", "10.11.0.1", Some(sandbox)), ("fd00:11::2/64", "fd00:11::1", Some(sandbox))],
        "{res}"
    );
    assert_eq!(leases(&node, "ipam-ds"), vec!["10.11.0.2", "fd00:11::2"]);
    node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
    assert_clean(&node, "ipam-ds", "dual-stack DEL");
}

#[test]
fn exhausted_range_fails_add_with_host_locals_error_and_leaves_nothing_of_the_second_pod() {
    let node = Node::new();
    // A /30 with the gateway on .1 leaves exactly one address for pods.
    let conf = ipam_conf(&node, "1.1.0", "ipam-full", json!([[{"subnet": "10.12.0.0/30", "gateway": "10.12.0.1"}]]));
    node.cni("ADD", "first00000000001", "net1", &conf, &[]).expect_ok();
    let before_dp = testkit::load(&node.state_dir());
    let run = node.cni("ADD", "second0000000002", "net1", &conf, &[]);
    let msg = run.expect_err(999);
    assert!(msg.starts_with("host-local: ") && msg.contains("no IP addresses available"), "{msg}");
    assert_eq!(testkit::load(&node.state_dir()), before_dp, "the failed ADD created no dataplane object");
    assert!(!node.state_dir().join("second0000000002_net1.json").exists(), "no record of the failed ADD");
    assert!(!node.shared_base().join("second000000").exists(), "no shared dir of the failed ADD");
    assert_eq!(leases(&node, "ipam-full"), vec!["10.12.0.2"], "only the first pod's lease");
    assert!(lease_owner(&node, "ipam-full", "10.12.0.2").contains("first00000000001"));
    node.cni("DEL", "first00000000001", "net1", &conf, &[]).expect_ok();
    assert_clean(&node, "ipam-full", "after the first pod's DEL");
}

#[test]
fn bad_subnet_fails_add_with_host_locals_code_and_message_and_leaves_nothing() {
    let node = Node::new();
    let conf = ipam_conf(&node, "1.0.0", "ipam-bad", json!([[{"subnet": "10.13.0.0/33"}]]));
    let run = node.cni("ADD", CID, "net1", &conf, &[]);
    let msg = run.expect_err(999);
    assert!(msg.starts_with("host-local: ") && msg.contains("10.13.0.0/33"), "{msg}");
    assert_clean(&node, "ipam-bad", "bad subnet");
    // The runtime's DEL after the failed ADD still succeeds.
    node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
    assert_clean(&node, "ipam-bad", "DEL after the failed ADD");
}

#[test]
fn failure_at_any_later_step_releases_the_lease() {
    for fp in
        ["add:bridge:before:error", "add:port:during:error", "add:port:after:error", "add:save-state:before:error"]
    {
        let node = Node::new();
        let conf = ipam_conf(&node, "1.1.0", "ipam-roll", v4_range());
        let msg = node.cni("ADD", CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", fp)]).expect_err(5);
        assert!(msg.contains("injected"), "{fp}: {msg}");
        assert_clean(&node, "ipam-roll", fp);
    }
}

#[test]
fn failure_of_the_ipam_step_after_the_delegate_ran_releases_the_lease() {
    let node = Node::new();
    let conf = ipam_conf(&node, "1.1.0", "ipam-after", v4_range());
    node.cni("ADD", CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", "add:ipam:after:error")]).expect_err(5);
    assert_clean(&node, "ipam-after", "ipam:after:error");
}

#[test]
fn kill_during_add_then_del_releases_the_lease() {
    for fp in ["add:ipam:after:kill", "add:port:after:kill", "add:save-state:before:kill"] {
        let node = Node::new();
        let conf = ipam_conf(&node, "1.1.0", "ipam-kill", v4_range());
        let run = node.cni("ADD", CID, "net1", &conf, &[("USERSPACE_CNI_FAILPOINT", fp)]);
        assert_eq!(run.signal, Some(9), "{fp}: expected SIGKILL, got {run:?}");
        assert_eq!(leases(&node, "ipam-kill"), vec!["10.10.0.2"], "{fp}: the lease exists before DEL");
        node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
        assert_clean(&node, "ipam-kill", fp);
    }
}

#[test]
fn del_uses_the_recorded_cni_path() {
    let node = Node::new();
    let conf = ipam_conf(&node, "1.1.0", "ipam-path", v4_range());
    node.cni("ADD", CID, "net1", &conf, &[]).expect_ok();
    let rec: Value =
        serde_json::from_slice(&std::fs::read(node.state_dir().join(format!("{CID}_net1.json"))).expect("record"))
            .expect("record json");
    assert_eq!(rec["plan"]["cni_path"], json!(["/usr/lib/cni"]), "{rec}");
    // The runtime's DEL may come with another CNI_PATH; the record's finds the same plugin.
    node.cni("DEL", CID, "net1", &conf, &[("CNI_PATH", "/nonexistent")]).expect_ok();
    assert_clean(&node, "ipam-path", "DEL with another CNI_PATH");
}

#[test]
fn ipam_type_not_in_cni_path_is_code_7_and_touches_nothing() {
    let node = Node::new();
    let empty = node.path("empty-cni-bin");
    std::fs::create_dir(&empty).expect("dir");
    let conf = ipam_conf(&node, "1.1.0", "ipam-none", v4_range());
    let before = node.snapshot();
    let msg = node.cni("ADD", CID, "net1", &conf, &[("CNI_PATH", &empty.display().to_string())]).expect_err(7);
    assert!(msg.contains("\"host-local\"") && msg.contains(&empty.display().to_string()), "{msg}");
    assert_eq!(node.snapshot(), before, "nothing on disk");

    let mut unknown = conf.clone();
    unknown["ipam"]["type"] = json!("no-such-ipam");
    let msg = node.cni("ADD", CID, "net1", &unknown, &[]).expect_err(7);
    assert!(msg.contains("no-such-ipam") && msg.contains("CNI_PATH"), "{msg}");
    assert_eq!(node.snapshot(), before, "nothing on disk");
}

#[test]
fn del_without_a_record_releases_a_lease_made_by_someone_else() {
    // An attachment made by the upstream plugin (no record of ours) whose lease host-local holds.
    let node = Node::new();
    let conf = ipam_conf(&node, "1.0.0", "ipam-legacy", v4_range());
    let out = Command::new(HOST_LOCAL)
        .env_clear()
        .envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", CID),
            ("CNI_IFNAME", "net1"),
            ("CNI_NETNS", this_netns().as_str()),
            ("CNI_PATH", "/usr/lib/cni"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut si) = c.stdin.take() {
                si.write_all(conf.to_string().as_bytes())?;
            }
            c.wait_with_output()
        })
        .expect("run host-local");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(leases(&node, "ipam-legacy"), vec!["10.10.0.2"]);
    node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
    assert_clean(&node, "ipam-legacy", "DEL without a record");
    assert!(!node.state_dir().exists(), "a DEL without a record creates no state dir");
}

#[test]
fn del_without_a_record_and_a_missing_plugin_succeeds() {
    let node = Node::new();
    let mut conf = ipam_conf(&node, "1.0.0", "ipam-gone", v4_range());
    conf["ipam"]["type"] = json!("no-such-ipam");
    let before = node.snapshot();
    node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
    assert_eq!(node.snapshot(), before);
}

#[test]
fn check_is_delegated_with_prev_result() {
    let node = Node::new();
    let conf = ipam_conf(&node, "1.1.0", "ipam-check", v4_range());
    let res = node.cni("ADD", CID, "net1", &conf, &[]).expect_ok();
    let mut check = conf.clone();
    check["prevResult"] = res;
    node.cni("CHECK", CID, "net1", &check, &[]).expect_ok();
    // Take the lease away behind the plugin's back: host-local's CHECK says so, with its message.
    std::fs::remove_file(node.path("ipam/ipam-check/10.10.0.2")).expect("remove lease");
    let msg = node.cni("CHECK", CID, "net1", &check, &[]).expect_err(999);
    assert!(msg.starts_with("host-local: ") && msg.contains("Failed to find address"), "{msg}");
    node.cni("DEL", CID, "net1", &conf, &[]).expect_ok();
    assert_clean(&node, "ipam-check", "after DEL");
}

#[test]
fn gc_and_status_are_not_forwarded_to_host_local_which_stops_at_1_0_0() {
    let node = Node::new();
    let conf = ipam_conf(&node, "1.1.0", "ipam-gc", v4_range());
    node.cni("ADD", "keep000000000001", "net1", &conf, &[]).expect_ok();
    node.cni("ADD", "stale00000000002", "net1", &conf, &[]).expect_ok();
    assert_eq!(leases(&node, "ipam-gc"), vec!["10.10.0.2", "10.10.0.3"]);
    node.cni("STATUS", "", "", &conf, &[]).expect_ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep000000000001", "ifname": "net1"}]);
    node.cni("GC", "", "", &gc, &[]).expect_ok();
    // Our GC tore down the stale attachment, IPAM DEL included; host-local was not sent GC
    // (it would refuse a 1.1.0 config), so the kept lease is intact.
    assert_eq!(leases(&node, "ipam-gc"), vec!["10.10.0.2"]);
    assert!(lease_owner(&node, "ipam-gc", "10.10.0.2").contains("keep000000000001"));
    node.cni("DEL", "keep000000000001", "net1", &conf, &[]).expect_ok();
    assert_clean(&node, "ipam-gc", "after DEL");
}

#[test]
fn status_is_50_when_the_ipam_plugin_is_missing() {
    let node = Node::new();
    let mut conf = ipam_conf(&node, "1.1.0", "ipam-status", v4_range());
    conf["ipam"]["type"] = json!("no-such-ipam");
    let msg = node.cni("STATUS", "", "", &conf, &[]).expect_err(50);
    assert!(msg.contains("no-such-ipam"), "{msg}");
}

// ---- Delegates written by the test: a logging wrapper around host-local, and fakes ----

/// A directory holding one executable script `name`, to be used as CNI_PATH.
fn script_dir(node: &Node, name: &str, body: &str) -> PathBuf {
    let dir = node.path(&format!("bin-{name}"));
    std::fs::create_dir_all(&dir).expect("bin dir");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// One line per delegate call: `COMMAND|CNI_CONTAINERID|CNI_IFNAME|CNI_NETNS|CNI_ARGS|CNI_PATH|stdin`.
const LOG_CALL: &str = r#"input=$(cat)
printf '%s|%s|%s|%s|%s|%s|%s\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_NETNS" \
    "$CNI_ARGS" "$CNI_PATH" "$input" >> "$0.log"
"#;

struct Call {
    command: String,
    cid: String,
    ifname: String,
    netns: String,
    args: String,
    path: String,
    stdin: Value,
}

fn calls(dir: &Path, name: &str) -> Vec<Call> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(7, '|').collect();
            let at = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            Call {
                command: at(0),
                cid: at(1),
                ifname: at(2),
                netns: at(3),
                args: at(4),
                path: at(5),
                stdin: serde_json::from_str(&at(6)).unwrap_or(Value::Null),
            }
        })
        .collect()
}

#[test]
fn host_local_is_asked_version_once_per_call_and_called_with_1_0_0() {
    let node = Node::new();
    let body = format!("{LOG_CALL}printf '%s' \"$input\" | exec {HOST_LOCAL}\n");
    let dir = script_dir(&node, "host-local", &body);
    let path = dir.display().to_string();
    let mut conf = ipam_conf(&node, "1.1.0", "ipam-neg", v4_range());
    conf["cniVersions"] = json!(["1.0.0", "1.1.0"]);
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod-a";
    let res = node.cni("ADD", CID, "net1", &conf, &[("CNI_PATH", &path), ("CNI_ARGS", args)]).expect_ok();
    assert_eq!(res["cniVersion"], "1.1.0", "the runtime still gets its own version: {res}");
    assert_eq!(res["ips"][0]["address"], "10.10.0.2/24", "{res}");

    let log = calls(&dir, "host-local");
    let commands: Vec<&str> = log.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(commands, ["VERSION", "ADD"], "one VERSION, then ADD");
    assert_eq!(log[0].stdin, json!({"cniVersion": "1.1.0"}), "VERSION names our latest version");
    let add = &log[1];
    assert_eq!(add.stdin["cniVersion"], "1.0.0", "the highest version host-local speaks");
    assert!(add.stdin.get("cniVersions").is_none(), "cniVersions removed: {}", add.stdin);
    assert_eq!(add.stdin["ipam"], conf["ipam"], "the full config is delegated");
    assert_eq!(add.stdin["host"], conf["host"], "the full config is delegated");
    assert_eq!((add.cid.as_str(), add.ifname.as_str()), (CID, "net1"));
    assert_eq!(add.netns, this_netns());
    assert_eq!(add.args, args);
    assert_eq!(add.path, path);

    // DEL runs in another process from the record: again one VERSION, then DEL at 1.0.0.
    node.cni("DEL", CID, "net1", &conf, &[("CNI_PATH", &path), ("CNI_ARGS", args)]).expect_ok();
    let log = calls(&dir, "host-local");
    let commands: Vec<&str> = log.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(commands, ["VERSION", "ADD", "VERSION", "DEL"]);
    assert_eq!(log[3].stdin["cniVersion"], "1.0.0");
    assert_eq!(log[3].args, args, "DEL sees the CNI_ARGS ADD saw");
    assert_clean(&node, "ipam-neg", "after DEL");
}

/// A fake IPAM plugin that speaks 1.1.0: answers ADD with a fixed address, runs `on_status` for
/// STATUS and `on_add` (if given) instead of answering ADD.
fn fake_ipam(node: &Node, on_add: Option<&str>, on_status: &str) -> PathBuf {
    let answer = json!({
        "cniVersion": "1.1.0",
        "ips": [{"address": "192.168.5.9/24", "gateway": "192.168.5.1"}],
        "dns": {"nameservers": ["192.168.5.53"]}
    });
    let echo = format!("echo '{answer}'");
    let add = on_add.unwrap_or(&echo);
    let body = format!(
        "{LOG_CALL}case \"$CNI_COMMAND\" in\n\
         VERSION) echo '{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}}' ;;\n\
         ADD) {add} ;;\n\
         STATUS) {on_status} ;;\n\
         esac\n"
    );
    script_dir(node, "fake-ipam", &body)
}

fn fake_conf(version: &str, name: &str) -> Value {
    let mut c = recording_conf(version, name);
    c["ipam"] = json!({"type": "fake-ipam"});
    c
}

#[test]
fn a_1_1_0_delegate_gets_gc_and_status_and_its_result_is_merged() {
    let node = Node::new();
    let dir = fake_ipam(&node, None, r#"echo '{"code":50,"msg":"pool offline"}'; exit 1"#);
    let path = dir.display().to_string();
    let conf = fake_conf("0.4.0", "fake-net");
    let res = node.cni("ADD", CID, "net1", &conf, &[("CNI_PATH", &path)]).expect_ok();
    assert_eq!(res["ips"][0]["address"], "192.168.5.9/24", "{res}");
    assert_eq!(res["ips"][0]["interface"].as_u64(), Some(sandbox_index(&res) as u64), "{res}");
    assert_eq!(res["dns"]["nameservers"], json!(["192.168.5.53"]), "dns copied: {res}");
    assert_eq!(calls(&dir, "fake-ipam")[1].stdin["cniVersion"], "1.1.0", "the highest shared version");

    let status = fake_conf("1.1.0", "fake-net");
    let msg = node.cni("STATUS", "", "", &status, &[("CNI_PATH", &path)]).expect_err(50);
    assert_eq!(msg, "fake-ipam: pool offline");
    let mut gc = status.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": CID, "ifname": "net1"}]);
    node.cni("GC", "", "", &gc, &[("CNI_PATH", &path)]).expect_ok();
    let log = calls(&dir, "fake-ipam");
    let gc_call = log.iter().find(|c| c.command == "GC").expect("GC forwarded to a 1.1.0 delegate");
    assert_eq!(gc_call.stdin["cni.dev/valid-attachments"], gc["cni.dev/valid-attachments"]);
    assert!(gc_call.cid.is_empty() && gc_call.ifname.is_empty(), "GC carries no attachment");

    let mut check = conf.clone();
    check["prevResult"] = res.clone();
    node.cni("CHECK", CID, "net1", &check, &[("CNI_PATH", &path)]).expect_ok();
    let log = calls(&dir, "fake-ipam");
    let check_call = log.iter().find(|c| c.command == "CHECK").expect("CHECK forwarded");
    assert_eq!(check_call.stdin["prevResult"]["ips"][0]["address"], "192.168.5.9/24", "{}", check_call.stdin);
    assert_eq!(check_call.stdin["prevResult"]["cniVersion"], "1.1.0", "prevResult in the delegate's version");
    node.cni("DEL", CID, "net1", &conf, &[("CNI_PATH", &path)]).expect_ok();
}

fn pid_alive(pid: i32) -> bool {
    // Gone, or a zombie waiting for its reaper, counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn a_delegate_that_hangs_is_killed_at_the_timeout_and_add_is_code_11() {
    let node = Node::new();
    let pidfile = node.path("delegate.pid");
    let on_add = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let dir = fake_ipam(&node, Some(&on_add), "true");
    let path = dir.display().to_string();
    let conf = fake_conf("1.1.0", "hang-net");
    let started = Instant::now();
    let msg =
        node.cni("ADD", CID, "net1", &conf, &[("CNI_PATH", &path), ("USERSPACE_CNI_TIMEOUT_MS", "500")]).expect_err(11);
    assert!(started.elapsed() < Duration::from_secs(10), "bounded: took {:?}", started.elapsed());
    assert!(msg.contains("fake-ipam") && msg.contains("did not finish"), "{msg}");
    let pid = read_pid(&pidfile).expect("the delegate wrote its pid");
    assert!(!pid_alive(pid), "the hung delegate {pid} was killed");
    // A timed-out ADD may have allocated: the rollback sent DEL.
    let commands: Vec<String> = calls(&dir, "fake-ipam").into_iter().map(|c| c.command).collect();
    assert_eq!(commands, ["VERSION", "ADD", "DEL"]);
    assert!(!node.state_dir().join(format!("{CID}_net1.json")).exists(), "rolled back");
}

#[test]
fn a_delegate_dies_with_the_plugin() {
    let node = Node::new();
    let pidfile = node.path("delegate.pid");
    let on_add = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let dir = fake_ipam(&node, Some(&on_add), "true");
    let conf = fake_conf("1.1.0", "orphan-net");
    let mut cmd = Command::new(TESTKIT_BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(node.settings_env());
    cmd.envs([
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", CID),
        ("CNI_IFNAME", "net1"),
        ("CNI_NETNS", this_netns().as_str()),
        ("CNI_PATH", dir.display().to_string().as_str()),
    ]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut plugin = cmd.spawn().expect("spawn plugin");
    {
        use std::io::Write;
        let mut si = plugin.stdin.take().expect("stdin");
        si.write_all(conf.to_string().as_bytes()).expect("write config");
    }
    wait_for("the delegate to start", Duration::from_secs(10), || read_pid(&pidfile).is_some());
    let pid = read_pid(&pidfile).unwrap_or(0);
    assert!(pid_alive(pid));
    plugin.kill().expect("SIGKILL the plugin");
    let _ = plugin.wait();
    wait_for("PDEATHSIG to kill the delegate", Duration::from_secs(5), || !pid_alive(pid));
    // The next DEL finishes what the killed ADD began.
    node.cni("DEL", CID, "net1", &conf, &[("CNI_PATH", &dir.display().to_string())]).expect_ok();
    assert!(!node.state_dir().join(format!("{CID}_net1.json")).exists());
}
