//! Sockets and directories a workload that is not root can open (`host.permissions`,
//! `host.vhost.group`, docs/permissions.md), through the shipped binary against a private OVS-DPDK
//! and the VPP simulator: testpmd run as another user (setpriv) connects, sends and creates its
//! socket only with the settings, and is refused (EACCES) without them; owner, group, mode and
//! SELinux label read back from the files; a filesystem without labels; rollback.

mod support;

use support::ovs_conf as conf;

use serde_json::{json, Value};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Node, PLUGIN_BIN};
use testlab::testpmd::parse_final_counters;
use testlab::{Counters, Lab, Role, Testpmd, VhostPort};
use userspace_cni_support::perms;

/// The workload's user, as KubeVirt runs QEMU (uid 107), with a group of its own: the client
/// reaches a file only through the owner or group bits these tests set (never through "other").
const UID: u32 = 107;
const GID: u32 = 4107;
const CONTEXT: &str = "system_u:object_r:container_file_t:s0:c1,c2";
/// testpmd's line once its one port is up (for `server=1`: once OVS connected to it).
const FORWARDING: &str = "rxonly packet forwarding - ports=1 ";
const NO_PORT: &str = "No probed ethernet devices";
/// The lab crate's lock: packet tests busy-poll CPU 0, one at a time on the machine.
const SERIAL_LOCK: &str = "/tmp/uscni-testpmd.lock";

fn lab() -> Arc<Lab> {
    Lab::shared("perm-it").expect("start the private OVS-DPDK lab")
}

/// A node whose root the workload's user can traverse (a temp dir is 0700 by default; the
/// shared-dir base the plugin creates is 0755).
fn node(lab: &Lab) -> Node {
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    std::fs::set_permissions(node.root.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod node root");
    node
}

fn socket_path(res: &Value) -> PathBuf {
    res["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find_map(|i| i["socketPath"].as_str()))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no socketPath in {res}"))
}

fn has_bridge(lab: &Lab, bridge: &str) -> bool {
    lab.bridges().expect("list bridges").iter().any(|b| b == bridge)
}

/// `(uid, gid, mode)` of `path` itself.
fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn assert_node_clean(node: &Node, why: &str) {
    let left = node.leftovers();
    assert!(left.is_empty(), "{why}: files left on the node: {left:?}");
}

/// The machine-wide testpmd lock, held (open) while this test's testpmds run.
fn serial() -> File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(SERIAL_LOCK)
        .expect("open the testpmd lock");
    // SAFETY: flock(2) on a descriptor we own; blocks until the other packet test is done.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {SERIAL_LOCK}");
    f
}

/// `dpdk-testpmd` run as uid 107 / gid 4107 with no supplementary groups, through
/// `setpriv --reuid --regid --clear-groups`, as a non-root QEMU or DPDK app would run. Without
/// hugepages (`--no-huge`, memfd-backed memory, which vhost-user can share), its DPDK runtime dir
/// in a private `XDG_RUNTIME_DIR`. Killed and cleaned up on drop.
struct Workload {
    child: Option<Child>,
    log: PathBuf,
    _work: tempfile::TempDir,
}

impl Workload {
    /// `server`: testpmd creates and serves the socket (OVS client mode); otherwise it connects.
    fn spawn(sock: &Path, server: bool, role: Role) -> Workload {
        let work = tempfile::Builder::new().prefix("uscni-tp-nonroot-").tempdir().expect("workload dir");
        let run = work.path().join("run");
        std::fs::create_dir(&run).expect("runtime dir");
        std::os::unix::fs::chown(&run, Some(UID), Some(GID)).expect("chown runtime dir");
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod workload dir");
        let log = work.path().join("testpmd.log");
        let out = File::create(&log).expect("testpmd log");
        let err = out.try_clone().expect("dup log");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("uscni-tp-nr-{}-{n}", std::process::id());
        let mut cmd = Command::new("setpriv");
        cmd.args([&format!("--reuid={UID}"), &format!("--regid={GID}"), "--clear-groups", "--pdeathsig=SIGKILL"])
            .args(["--", "dpdk-testpmd", "--no-huge", "-m", "64", "--no-pci", "--no-telemetry", "--lcores=0@0,1@0"])
            .arg(format!("--file-prefix={prefix}"))
            .arg(format!("--vdev=net_virtio_user0,path={}{}", sock.display(), if server { ",server=1" } else { "" }))
            .args(["--", "--forward-mode=rxonly", "--auto-start", "--stats-period=1", "--total-num-mbufs=2048"]);
        if let Role::Send { burst } = role {
            cmd.arg("--tx-first").arg(format!("--burst={burst}"));
        }
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("XDG_RUNTIME_DIR", &run)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().expect("spawn setpriv dpdk-testpmd");
        Workload { child: Some(child), log, _work: work }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ok once the port is up; Err(log) when testpmd has no port (it keeps running on zero
    /// ports, so the log says it) or exited, or after `timeout`.
    fn wait_forwarding(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(FORWARDING) {
                return Ok(());
            }
            let exited = self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited || log.contains(NO_PORT) || started.elapsed() >= timeout {
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, then the final counters (testpmd prints them on exit).
    fn stop(mut self) -> Counters {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = self.log();
        parse_final_counters(&log).unwrap_or_else(|| panic!("no final statistics from testpmd:\n{log}"))
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The upstream failure, predicted by docs/permissions.md: OVS's server-mode socket is root's and
/// not writable by others, so a workload running as another user cannot connect(2) to it.
#[test]
fn without_settings_a_non_root_client_is_refused_and_doctor_says_why() {
    let lab = lab();
    let node = node(&lab);
    let c = conf("net-pno", "br-pno", "server");
    let cid = "90e0000000000000000000000000001";
    let sock = socket_path(&node.cni("ADD", cid, "net1", &c, &[]).expect_ok());
    let (uid, gid, mode) = owner_mode(&sock);
    assert!(uid == 0 && gid == 0 && mode & 0o002 == 0, "OVS's socket is root's and not world-writable: {mode:o}");
    let dir = sock.parent().expect("shared dir");
    assert_eq!(owner_mode(dir), (0, 0, 0o755), "the dir the plugin makes by default");
    // What `userspace doctor` reports for this attachment.
    let findings = perms::diagnose(dir, Some(&sock), false);
    assert!(
        findings.iter().any(|f| f.path == sock && f.msg.contains("EACCES") && f.msg.contains("docs/permissions.md")),
        "{findings:?}"
    );
    let _serial_guard = serial();
    let mut w = Workload::spawn(&sock, false, Role::Receive);
    let log = w.wait_forwarding(Duration::from_secs(30)).expect_err("a non-root client must not connect");
    assert!(log.contains("Permission denied"), "the refusal is EACCES on connect:\n{log}");
    drop(w);
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
    assert_node_clean(&node, "after DEL");
}

/// With the workload's group on the socket (`host.permissions.group`; mode 0660 by default), the
/// same non-root testpmd connects and its packets cross OVS to another pod.
#[test]
fn with_its_group_on_the_socket_a_non_root_testpmd_connects_and_sends() {
    let lab = lab();
    let node = node(&lab);
    let mut server = conf("net-pgr", "br-pgr", "server");
    server["host"]["permissions"] = json!({"group": GID});
    let client = conf("net-pgr", "br-pgr", "client");
    let (a, b) = ("9a0000000000000000000000000000a1", "9b0000000000000000000000000000b2");
    let sa = socket_path(&node.cni("ADD", a, "net1", &server, &[]).expect_ok());
    let sb = socket_path(&node.cni("ADD", b, "net1", &client, &[]).expect_ok());
    assert_eq!(owner_mode(&sa), (0, GID, 0o660), "the delivered socket: the workload's group, g+rw");
    assert_eq!(
        owner_mode(sa.parent().expect("dir")),
        (0, GID, 0o755),
        "the group applies to the dir too, mode as made"
    );
    assert!(perms::diagnose(sa.parent().expect("dir"), Some(&sa), false).is_empty(), "doctor is content");

    let serial_guard = serial();
    let mut rx = Testpmd::spawn(&VhostPort::Client(sb), Role::Receive).expect("root receiver");
    rx.wait_forwarding(Duration::from_secs(60)).expect("receiver up");
    let mut tx = Workload::spawn(&sa, false, Role::Send { burst: 32 });
    if let Err(log) = tx.wait_forwarding(Duration::from_secs(60)) {
        panic!("the non-root testpmd could not use {}:\n{log}", sa.display());
    }
    let all = rx.wait_rx(32, Duration::from_secs(30));
    let sent = tx.stop().tx_packets;
    let received = rx.stop().expect("receiver counters").rx_packets;
    assert!(all, "receiver saw {received} packets");
    assert_eq!((sent, received), (32, 32), "a non-root workload's 32 packets crossed OVS");
    drop(serial_guard);

    node.cni("DEL", a, "net1", &server, &[]).expect_ok();
    node.cni("DEL", b, "net1", &client, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-pgr"));
    assert_node_clean(&node, "after both DELs");
}

/// Client mode: the workload creates the socket, so only the dir matters. Root's 0755 dir refuses
/// it (EACCES on bind); owner, group and a setgid mode on the dir let it create the socket, which
/// OVS then connects to.
#[test]
fn client_mode_dir_settings_let_a_non_root_workload_create_its_socket() {
    let lab = lab();
    let node = node(&lab);
    let plain = conf("net-pcl", "br-pcl", "client");
    let mut granted = plain.clone();
    granted["host"]["permissions"] = json!({"owner": UID, "group": GID.to_string(), "dirMode": "2770"});
    let (a, b) = ("c1a0000000000000000000000000001", "c1b0000000000000000000000000002");
    let sa = socket_path(&node.cni("ADD", a, "net1", &plain, &[]).expect_ok());
    let sb = socket_path(&node.cni("ADD", b, "net1", &granted, &[]).expect_ok());
    let (da, db) = (sa.parent().expect("dir"), sb.parent().expect("dir"));
    assert_eq!(owner_mode(da), (0, 0, 0o755));
    assert_eq!(owner_mode(db), (UID, GID, 0o2770), "owner, group and setgid mode on the shared dir");
    let findings = perms::diagnose(da, None, true);
    assert!(findings.iter().any(|f| f.path == da && f.msg.contains("client mode")), "{findings:?}");
    assert!(perms::diagnose(db, None, true).is_empty());

    let serial_guard = serial();
    let mut refused = Workload::spawn(&sa, true, Role::Receive);
    let log = refused.wait_forwarding(Duration::from_secs(30)).expect_err("root's 0755 dir refuses the workload");
    assert!(log.contains("Permission denied"), "the refusal is EACCES on bind:\n{log}");
    drop(refused);
    assert!(std::fs::symlink_metadata(&sa).is_err(), "no socket was created in root's dir");

    let mut w = Workload::spawn(&sb, true, Role::Receive);
    if let Err(log) = w.wait_forwarding(Duration::from_secs(60)) {
        panic!("the non-root testpmd could not serve {} (OVS connects to it):\n{log}", sb.display());
    }
    let (uid, gid, _) = owner_mode(&sb);
    assert_eq!((uid, gid), (UID, GID), "the workload's socket, in the dir's group (setgid)");
    drop(w);
    drop(serial_guard);

    node.cni("DEL", a, "net1", &plain, &[]).expect_ok();
    node.cni("DEL", b, "net1", &granted, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-pcl"));
    assert_node_clean(&node, "after both DELs");
}

/// KubeVirt: QEMU (uid 107) serves its socket in the pod's emptyDir, which OVS reaches through the
/// short dir bind-mounted onto it. The settings land on the pod's dir (one inode, two paths), and
/// the non-root workload creates its socket through the short path. Runs in a private mount
/// namespace, as tests/kubevirt.rs does.
#[test]
fn kubevirt_short_dir_carries_the_settings_to_the_pods_volume() {
    support::run_in_private_mount_ns("kubevirt_inner");
}

#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn kubevirt_inner() {
    let lab = Lab::start("perm-kv").expect("lab");
    let node = node(&lab);
    let uid = "8e4d2a1b-0c9f-4d6e-b7a8-123456789abc";
    let long = node.path("kubelet").join("pods").join(uid).join("volumes/kubernetes.io~empty-dir/shared-dir");
    std::fs::create_dir_all(&long).expect("the pod's emptyDir");
    // Stricter than kubelet's own 0777: a volume only root can write, as a hostPath often is.
    std::fs::set_permissions(&long, std::fs::Permissions::from_mode(0o755)).expect("chmod emptyDir");
    let short = node.path("short").join(uid);
    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm-a;K8S_POD_UID={uid}");
    let c = json!({
        "cniVersion": "1.1.0", "name": "kv-perm", "type": "userspace",
        "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "vhost": {"mode": "client"},
                 "bridge": {"bridgeName": "br-kvp"},
                 "permissions": {"owner": "107", "group": GID, "dirMode": "0770"}}
    });
    let cid = "0c0ffee0000000000000000000000002";
    let res = node.cni("ADD", cid, "net1", &c, &[("CNI_ARGS", &args)]).expect_ok();
    let sock = socket_path(&res);
    assert!(sock.starts_with(&short), "{} is addressed through the short dir", sock.display());
    assert!(userspace_cni::steps::short_dir::is_mount_point(&short), "short dir mounted");
    assert_eq!(owner_mode(&long), (UID, GID, 0o770), "the pod's volume got the settings");
    assert_eq!(owner_mode(&short), (UID, GID, 0o770), "seen the same through the mount");

    let serial_guard = serial();
    let mut w = Workload::spawn(&sock, true, Role::Receive);
    if let Err(log) = w.wait_forwarding(Duration::from_secs(60)) {
        panic!("QEMU's stand-in (uid {UID}) could not serve {} for OVS:\n{log}", sock.display());
    }
    assert_eq!(owner_mode(&long.join(sock.file_name().expect("name"))).0, UID, "the workload's socket");
    drop(w);
    drop(serial_guard);

    node.cni("DEL", cid, "net1", &c, &[("CNI_ARGS", &args)]).expect_ok();
    assert!(!userspace_cni::steps::short_dir::is_mount_point(&short), "unmounted with the last interface");
    assert!(long.is_dir(), "kubelet's emptyDir is never removed by us");
    lab.stop().expect("stop lab");
}

/// A user and a group of this node (not root), by name: the first entries with a plain name.
fn account(file: &str) -> (String, u32) {
    std::fs::read_to_string(file)
        .expect("account db")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let id = f.get(2)?.parse::<u32>().ok()?;
            let plain = f[0].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            (id != 0 && id != u32::MAX && plain && !f[0].is_empty()).then(|| (f[0].to_owned(), id))
        })
        .next()
        .unwrap_or_else(|| panic!("{file} has no non-root entry"))
}

#[test]
fn owner_and_group_names_are_resolved_and_unknown_ones_fail_validation() {
    let lab = lab();
    let node = node(&lab);
    let ((user, uid), (group, gid)) = (account("/etc/passwd"), account("/etc/group"));
    let mut c = conf("net-pnm", "br-pnm", "server");
    c["host"]["permissions"] = json!({"owner": user, "group": group, "dirMode": "0750", "socketMode": "0600"});
    let cid = "4a3e000000000000000000000000001";
    let sock = socket_path(&node.cni("ADD", cid, "net1", &c, &[]).expect_ok());
    assert_eq!(owner_mode(sock.parent().expect("dir")), (uid, gid, 0o750), "{user}:{group} on the dir");
    assert_eq!(owner_mode(&sock), (uid, gid, 0o600), "{user}:{group} on the socket, socketMode as given");
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();

    // vhost.group keeps its meaning: the socket's group, 0660, and the dir untouched. Another
    // sandbox (a new container id, as a runtime gives a re-created pod): DEL does not wait for
    // ovs-vswitchd, and a server-mode port re-added under the very same name before vswitchd
    // applied its deletion can be kept as it was, its socket already gone with the DEL.
    let cid2 = "4a3f000000000000000000000000002";
    let mut v = conf("net-pnm", "br-pnm", "server");
    v["host"]["vhost"]["group"] = json!(group);
    let sock = socket_path(&node.cni("ADD", cid2, "net1", &v, &[]).expect_ok());
    assert_eq!(owner_mode(&sock), (0, gid, 0o660));
    assert_eq!(owner_mode(sock.parent().expect("dir")), (0, 0, 0o755));
    node.cni("DEL", cid2, "net1", &v, &[]).expect_ok();

    for (key, value) in [("owner", "no-such-user-here"), ("group", "no-such-group-here")] {
        let mut bad = conf("net-pnm", "br-pnm", "server");
        bad["host"]["permissions"] = json!({ key: value });
        let msg = node.cni("ADD", cid, "net1", &bad, &[]).expect_err(7);
        assert!(msg.contains(&format!("host.permissions.{key}")) && msg.contains(value), "{msg}");
    }
    assert!(!has_bridge(&lab, "br-pnm"), "validation failed before any change");
    assert_node_clean(&node, "after DEL and the refused ADDs");
}

/// The label is written as `security.selinux` on the dir and on the delivered socket. Without an
/// SELinux policy loaded (this machine), the kernel stores any well-formed value; with one, it
/// also checks the context exists (not verified here).
#[test]
fn selinux_context_is_written_to_the_dir_and_the_socket_and_read_back() {
    let lab = lab();
    let node = node(&lab);
    let mut c = conf("net-pse", "br-pse", "server");
    c["host"]["permissions"] = json!({"selinuxContext": CONTEXT, "group": GID});
    let cid = "5e1e000000000000000000000000001";
    let sock = socket_path(&node.cni("ADD", cid, "net1", &c, &[]).expect_ok());
    let dir = sock.parent().expect("dir");
    assert_eq!(perms::read_label(dir).expect("read the dir's label").as_deref(), Some(CONTEXT));
    assert_eq!(perms::read_label(&sock).expect("read the socket's label").as_deref(), Some(CONTEXT));
    assert_eq!(owner_mode(&sock), (0, GID, 0o660));
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
    assert_node_clean(&node, "after DEL");
}

/// A shared dir on ramfs, which keeps no `security.*` attributes: asking for a label is code 2
/// before anything is made; the same config without it works there. The ramfs is mounted in a
/// private mount namespace around each plugin run, so it never reaches the host.
#[test]
fn a_label_on_a_filesystem_without_labels_is_code_2_and_changes_nothing() {
    let lab = lab();
    let mut node = node(&lab);
    let ramfs = node.path("ramfs");
    std::fs::create_dir(&ramfs).expect("ramfs mount point");
    let wrapper = node.path("in-ramfs.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh -c \
             'mount -t ramfs uscni-ramfs \"$0\" && exec \"$1\"' '{}' '{PLUGIN_BIN}'\n",
            ramfs.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    node.bin = Box::leak(wrapper.display().to_string().into_boxed_str());
    node.overrides.push(("USERSPACE_CNI_SHARED_DIR".into(), ramfs.display().to_string()));
    let roots = format!("{}:{}", ramfs.display(), node.path("short").display());
    node.overrides.push(("USERSPACE_CNI_SHARED_ROOTS".into(), roots));

    let mut c = conf("net-prf", "br-prf", "client");
    c["host"]["permissions"] = json!({"selinuxContext": CONTEXT, "dirMode": "0770"});
    let before = node.snapshot();
    let msg = node.cni("ADD", "4af5000000000000000000000000001", "net1", &c, &[]).expect_err(2);
    assert!(
        msg.contains("host.permissions.selinuxContext") && msg.contains("does not support SELinux labels"),
        "{msg}"
    );
    assert!(msg.contains(&ramfs.display().to_string()), "names the place: {msg}");
    assert_eq!(node.snapshot(), before, "nothing was created");
    assert!(!has_bridge(&lab, "br-prf"), "OVS unchanged");

    c["host"]["permissions"] = json!({"dirMode": "0770"});
    node.cni("ADD", "4af5000000000000000000000000001", "net1", &c, &[]).expect_ok();
    node.cni("DEL", "4af5000000000000000000000000001", "net1", &c, &[]).expect_ok();
    assert!(!has_bridge(&lab, "br-prf"));
}

/// A failure right after the settings were applied (dir, then socket) rolls everything back.
#[test]
fn a_failure_after_the_settings_were_applied_leaves_nothing() {
    let lab = lab();
    for (mode, step) in [("client", "shared-dir"), ("server", "shared-dir"), ("server", "deliver-socket")] {
        let node = node(&lab);
        let mut c = conf("net-pfl", "br-pfl", mode);
        c["host"]["permissions"] = json!({
            "owner": UID, "group": GID, "dirMode": "2770", "socketMode": "0660", "selinuxContext": CONTEXT
        });
        let fp = format!("add:{step}:after:error");
        let msg = node.cni("ADD", "f1a0000000000001", "net1", &c, &[("USERSPACE_CNI_FAILPOINT", &fp)]).expect_err(5);
        assert!(msg.contains("injected"), "{mode} {fp}: {msg}");
        assert!(!has_bridge(&lab, "br-pfl"), "{mode} {fp}: OVS restored");
        assert_node_clean(&node, &format!("{mode} {fp}"));
        let left = support::entries_with_prefix(lab.sock_dir(), "f1a000000000");
        assert!(left.is_empty(), "{mode} {fp}: OVS-dir socket left: {left:?}");
    }
}

/// VPP: a memif master's and a vhost-user server's socket (VPP creates them in the shared dir)
/// get the socket settings; a memif slave's socket is the workload's, only its dir gets them.
#[test]
fn vpp_server_sockets_get_the_socket_settings() {
    let sim_dir = tempfile::Builder::new().prefix("uscni-vppsim-").tempdir().expect("sim dir");
    let sim = vppsim::Sim::start(sim_dir.path());
    let mut node = Node::new();
    node.bin = PLUGIN_BIN;
    node.overrides.push(("USERSPACE_CNI_VPP_API_SOCKET".into(), sim.socket().display().to_string()));
    let memif = |role: &str| {
        json!({
            "cniVersion": "1.1.0", "name": "net-pvpp", "type": "userspace",
            "host": {"engine": "vpp", "iftype": "memif", "netType": "interface", "memif": {"role": role},
                     "permissions": {"group": GID, "dirMode": "0750", "selinuxContext": CONTEXT}},
            "container": {"engine": "vpp", "iftype": "memif", "netType": "interface"}
        })
    };
    let master = memif("master");
    let sock = socket_path(&node.cni("ADD", "3e30000000000001", "net1", &master, &[]).expect_ok());
    assert_eq!(owner_mode(&sock), (0, GID, 0o660), "VPP's memif listener");
    assert_eq!(perms::read_label(&sock).expect("label").as_deref(), Some(CONTEXT));
    assert_eq!(owner_mode(sock.parent().expect("dir")), (0, GID, 0o750));
    node.cni("DEL", "3e30000000000001", "net1", &master, &[]).expect_ok();

    let slave = memif("slave");
    let sock = socket_path(&node.cni("ADD", "3e30000000000002", "net1", &slave, &[]).expect_ok());
    assert!(std::fs::symlink_metadata(&sock).is_err(), "VPP as slave creates no socket file");
    assert_eq!(owner_mode(sock.parent().expect("dir")), (0, GID, 0o750), "the dir still gets its settings");
    node.cni("DEL", "3e30000000000002", "net1", &slave, &[]).expect_ok();

    let vhost = json!({
        "cniVersion": "1.1.0", "name": "net-pvpp", "type": "userspace",
        "host": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface",
                 "vhost": {"mode": "server", "group": GID.to_string()}},
        "container": {"engine": "vpp", "iftype": "vhostuser", "netType": "interface"}
    });
    let sock = socket_path(&node.cni("ADD", "3e30000000000003", "net1", &vhost, &[]).expect_ok());
    assert_eq!(owner_mode(&sock), (0, GID, 0o660), "vhost.group as before");
    node.cni("DEL", "3e30000000000003", "net1", &vhost, &[]).expect_ok();
    assert_node_clean(&node, "after the DELs");
}
