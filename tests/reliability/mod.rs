//! Helpers shared by the lifecycle, crash and operator-CLI tests: configs for the real lab with
//! host-local (leases under the node's root), the operator CLI runner, and one "nothing is left"
//! assertion that lists OVS, the state dir (temp files included), shared and short dirs, mounts,
//! server-mode sockets and host-local's lease files.
#![allow(dead_code)]

// Re-exported beside the other lab helpers; not every test binary that has this module uses them.
#[allow(unused_imports)]
pub use crate::support::{ovs_conf, sandbox};
use crate::support::{this_netns, Node, Run, PLUGIN_BIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use testlab::Lab;

/// `conf` with Debian's host-local as IPAM, its dataDir under the node's root.
pub fn with_host_local(node: &Node, mut conf: Value, subnet: &str) -> Value {
    conf["ipam"] = json!({
        "type": "host-local",
        "dataDir": node.path("ipam").display().to_string(),
        "ranges": [[{"subnet": subnet}]]
    });
    conf
}

/// host-local's lease files of `network` (its `lock` and `last_reserved_ip.*` are bookkeeping).
pub fn leases(node: &Node, network: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(node.path("ipam").join(network)) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip."))
        .collect();
    out.sort();
    out
}

/// Debian's host-local ADD of (`cid`, `ifname`) with `conf`'s IPAM, run directly with the full
/// container id as the upstream plugin's delegation did (a lease our DEL must release).
pub fn host_local_add(node: &Node, conf: &Value, cid: &str, ifname: &str) {
    let stdin = json!({"cniVersion": "1.0.0", "name": conf["name"], "ipam": conf["ipam"]});
    let mut child = Command::new("/usr/lib/cni/host-local")
        .env_clear()
        .envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", &this_netns()),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", "/usr/lib/cni"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run host-local");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(stdin.to_string().as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("host-local");
    assert!(out.status.success(), "host-local ADD: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!leases(node, conf["name"].as_str().unwrap_or_default()).is_empty(), "a lease was made");
}

/// Run the shipped binary as an operator does (no CNI_COMMAND), with the node's settings.
pub fn cli(node: &Node, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(PLUGIN_BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(node.settings_env());
    cmd.envs(env.iter().copied());
    cmd.args(args).stdin(Stdio::null());
    let out = cmd.output().expect("run userspace");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `userspace inspect --json`'s attachments.
pub fn inspect(node: &Node) -> Vec<Value> {
    let run = cli(node, &["inspect", "--json"], &[]);
    assert_eq!(run.code, Some(0), "inspect failed: {run:?}");
    let doc: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("inspect --json ({e}): {}", run.stdout));
    doc["attachments"].as_array().cloned().unwrap_or_default()
}

/// OVS rows tagged with `network`: `(table, name)`.
pub fn ovs_objects(lab: &Lab, network: &str) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["Bridge", "Port", "Interface"] {
        let names = lab
            .vsctl(&[
                "--bare",
                "--columns=name",
                "find",
                table,
                &format!("external_ids:\"userspace-cni/network\"=\"{network}\""),
            ])
            .unwrap_or_else(|e| panic!("ovs-vsctl find {table}: {e}"));
        out.extend(names.lines().map(str::trim).filter(|l| !l.is_empty()).map(|n| format!("{table} {n}")));
    }
    out
}

/// Mount points at or under `root`, from /proc/self/mountinfo (field 5, octal-escaped).
pub fn mounts_under(root: &Path) -> Vec<String> {
    let want = root.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&want))
        .map(str::to_owned)
        .collect()
}

/// Files left by the plugin under the node's root, apart from what may stay: the node lock, the
/// reconciler's heartbeat, the (empty) base dirs, host-local's lock and last-reserved files, and a
/// pod volume the test itself made (`kubelet/`, which kubelet owns).
pub fn leftover_files(node: &Node) -> Vec<String> {
    node.snapshot()
        .into_iter()
        .filter(|p| {
            let allowed = matches!(
                p.as_str(),
                "userspace.toml"
                    | "state"
                    | "state/node.lock"
                    | "state/reconciler.heartbeat"
                    | "shared"
                    | "short"
                    | "ipam"
            ) || p.starts_with("kubelet")
                || p.starts_with("log")
                || p.starts_with("bin")
                || (p.starts_with("ipam/")
                    && (p.matches('/').count() == 1 || p.ends_with("/lock") || p.contains("/last_reserved_ip.")));
            !allowed
        })
        .collect()
}

/// Everything an attachment of `network` could leave, listed: empty means nothing is left.
pub fn leaks(lab: &Lab, node: &Node, network: &str, cid12: &str) -> Vec<String> {
    // DEL does not wait for ovs-vswitchd (OVSDB is the truth); the server-mode socket vswitchd
    // made for a port goes when vswitchd applies the deletion, a few ms later. Judge the state
    // vswitchd converges to: ovs-vsctl (without --no-wait) returns once vswitchd has applied
    // its change, and vswitchd applies the database in order.
    let mark =
        format!("external_ids:uscni-test-sync={}", std::time::UNIX_EPOCH.elapsed().map(|d| d.as_nanos()).unwrap_or(0));
    lab.vsctl(&["set", "Open_vSwitch", ".", &mark]).unwrap_or_else(|e| panic!("wait for ovs-vswitchd: {e}"));
    let mut out: Vec<String> = ovs_objects(lab, network).into_iter().map(|o| format!("OVS {o}")).collect();
    out.extend(leftover_files(node).into_iter().map(|f| format!("file {f}")));
    out.extend(mounts_under(node.root.path()).into_iter().map(|m| format!("mount {m}")));
    for l in leases(node, network) {
        let owner = std::fs::read_to_string(node.path("ipam").join(network).join(&l)).unwrap_or_default();
        out.push(format!("lease {l} (holder {owner:?})"));
    }
    if let Ok(entries) = std::fs::read_dir(lab.sock_dir()) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(cid12) {
                out.push(format!("OVS sock dir {}", e.path().display()));
            }
        }
    }
    out
}

pub fn assert_no_leak(lab: &Lab, node: &Node, network: &str, cid12: &str, why: &str) {
    let l = leaks(lab, node, network, cid12);
    assert!(l.is_empty(), "{why}: left behind: {l:#?}");
}
