//! The DRA front-end's Prepare and Unprepare (`dra::prepare::PipelineDriver`) against a private
//! OVS-DPDK with testpmd as the VMs' QEMU, claims handed in directly (the API server and kubelet's
//! gRPC are the end-to-end test's, tests/dra_kubevirt.rs): what a prepared claim leaves on the
//! node (a client-mode port owned by the claim, the socket dir with its group, two CDI specs, the
//! metadata KubeVirt's binding accepts), packets between two claims, Prepare again after a reboot
//! wiped the transient files or after the port was lost, an interrupted Prepare's record undone,
//! a bad claim changing nothing, and Unprepare leaving nothing, twice.
#![cfg(feature = "kubernetes")]

mod support;

use k8s_openapi::api::resource::v1::ResourceClaim;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Node;
use testlab::{Lab, Testpmd, VhostPort};
use userspace_cni::dra::prepare::{ClaimSource, PipelineDriver, SOCKET_FILE};
use userspace_cni::dra::{ClaimDriver, ClaimRef, PreparedDevice};
use userspace_cni::pipeline::Registry;
use userspace_cni::plan::cdi::CdiSpec;
use userspace_cni::plan::dra_metadata::{Attribute, DeviceMetadata};

const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
const NODE: &str = "node-a";

/// Claims as the API server would return them, keyed by uid.
#[derive(Default)]
struct Claims(Mutex<HashMap<String, ResourceClaim>>);

#[userspace_cni_api::async_trait]
impl ClaimSource for Claims {
    async fn get(&self, claim: &ClaimRef, _deadline: Instant) -> Result<ResourceClaim, String> {
        let map = self.0.lock().map_err(|_| "poisoned".to_string())?;
        map.get(&claim.uid)
            .cloned()
            .ok_or_else(|| format!("ResourceClaim {}/{} does not exist (404)", claim.namespace, claim.name))
    }
}

fn uid(n: u32, salt: &str) -> String {
    // A uid per test and claim; hex only, like the API server's.
    let h = salt.bytes().fold(n.wrapping_mul(2654435761), |a, b| a.rotate_left(5) ^ u32::from(b));
    format!("{h:08x}-0000-4000-8000-{n:012x}")
}

/// A template-made claim allocated on `bridge` and reserved for pod `pod_uid`.
fn claim(uid: &str, name: &str, pod_claim: &str, pod_uid: &str, bridge: &str, vlan: Option<u16>) -> ResourceClaim {
    let mut config = json!([]);
    if let Some(v) = vlan {
        config = json!([{"source": "FromClaim", "opaque": {"driver": DRIVER, "parameters":
            {"apiVersion": "ovsdpdk.k8snetworkplumbingwg.io/v1alpha1", "kind": "OvsPortConfig", "vlan": v}}}]);
    }
    serde_json::from_value(json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"namespace": "vms", "name": name, "uid": uid, "generation": 1,
                     "annotations": {"resource.kubernetes.io/pod-claim-name": pod_claim}},
        "spec": {"devices": {"requests": [{"name": "vhost", "exactly": {"deviceClassName": "vhost-user"}}]}},
        "status": {
            "allocation": {"devices": {"results": [{"request": "vhost", "driver": DRIVER, "pool": NODE, "device": bridge}],
                                       "config": config}},
            "reservedFor": [{"resource": "pods", "name": format!("virt-launcher-{name}"), "uid": pod_uid}]
        }
    }))
    .expect("claim decodes")
}

/// The plugin's settings on `node`: its roots, the lab's OVS, `bridges`, and `extra`.
fn settings_of(node: &Node, bridges: &str, extra: &[(&str, &str)]) -> userspace_cni_api::NodeSettings {
    let mut env: HashMap<String, String> = node.settings_env().into_iter().collect();
    for (k, v) in [
        ("DRA_SOCKET_ROOT", node.path("dra").display().to_string()),
        ("DRA_METADATA_DIR", node.path("meta").display().to_string()),
        ("CDI_DIR", node.path("cdi").display().to_string()),
        ("DRA_BRIDGES", bridges.to_owned()),
        ("NODE_NAME", NODE.to_owned()),
    ] {
        env.insert(format!("USERSPACE_CNI_{k}"), v);
    }
    for (k, v) in extra {
        env.insert(format!("USERSPACE_CNI_{k}"), (*v).to_owned());
    }
    userspace_cni::settings::load_from(userspace_cni::pipeline::Registry::linked().registrations(), |k| {
        env.get(k).cloned()
    })
    .expect("settings")
}

struct Env {
    node: Node,
    driver: PipelineDriver,
    claims: Arc<Claims>,
    runtime: tokio::runtime::Runtime,
}

impl Env {
    fn new(lab: &Lab, bridges: &str) -> Env {
        let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
        let settings = settings_of(&node, bridges, &[]);
        let claims = Arc::new(Claims::default());
        let driver = PipelineDriver { settings, registry: Arc::new(Registry::linked()), claims: claims.clone() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Env { node, driver, claims, runtime }
    }

    /// The plugin restarted with other settings (`KEY=value` pairs after the prefix), same node.
    fn restart_with(&mut self, bridges: &str, extra: &[(&str, &str)]) {
        self.driver.settings = settings_of(&self.node, bridges, extra);
    }

    fn add(&self, c: ResourceClaim) -> ClaimRef {
        let r = ClaimRef {
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            name: c.metadata.name.clone().unwrap_or_default(),
            uid: c.metadata.uid.clone().unwrap_or_default(),
        };
        self.claims.0.lock().expect("claims").insert(r.uid.clone(), c);
        r
    }

    fn prepare(&self, c: &ClaimRef) -> Result<Vec<PreparedDevice>, String> {
        self.runtime.block_on(self.driver.prepare(c, Instant::now() + Duration::from_secs(20)))
    }

    fn unprepare(&self, c: &ClaimRef) -> Result<(), String> {
        self.runtime.block_on(self.driver.unprepare(c, Instant::now() + Duration::from_secs(20)))
    }

    fn socket_dir(&self, pod_uid: &str, pod_claim: &str) -> PathBuf {
        self.node.path("dra").join(format!("{pod_uid}_{pod_claim}_vhost"))
    }

    /// Every file the DRA side may leave: socket dirs, metadata, CDI specs, records.
    fn leftovers(&self) -> Vec<String> {
        support::dra_files(&self.node)
    }
}

/// Ports on `bridge` owned by claim `uid` (the `external_ids` the backend stamps).
fn ports_of(lab: &Lab, bridge: &str, uid: &str) -> Vec<String> {
    support::ports_tagged_with(lab, bridge, uid)
}

fn read_spec(path: &Path) -> CdiSpec {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec: CdiSpec = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    spec.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    spec
}

/// The CDI mounts of a fully qualified id, from the spec files in `cdi_dir` (as a runtime resolves it).
fn resolve(cdi_dir: &Path, id: &str) -> Vec<(String, String, Vec<String>)> {
    let (kind, name) = id.split_once('=').expect("qualified id");
    let mut found = Vec::new();
    for e in std::fs::read_dir(cdi_dir).expect("cdi dir").flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let spec = read_spec(&p);
        if spec.kind != kind {
            continue;
        }
        for d in spec.devices.iter().filter(|d| d.name == name) {
            found.extend(
                d.container_edits
                    .mounts
                    .iter()
                    .map(|m| (m.host_path.clone(), m.container_path.clone(), m.options.clone())),
            );
        }
    }
    found
}

#[test]
fn a_prepared_claim_has_its_port_files_and_metadata_packets_cross_and_unprepare_leaves_nothing() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-drap=1500");
    let (ua, ub) = (uid(1, "flow"), uid(2, "flow"));
    let (pa, pb) = (uid(11, "flow"), uid(12, "flow"));
    let a = env.add(claim(&ua, "vm-a-nic-x1", "nic", &pa, "br-drap", Some(100)));
    let b = env.add(claim(&ub, "vm-b-nic-x2", "nic", &pb, "br-drap", Some(100)));

    let devices = env.prepare(&a).expect("prepare a");
    assert_eq!(devices.len(), 1, "{devices:?}");
    let d = &devices[0];
    assert_eq!(
        (d.request_names.clone(), d.pool_name.as_str(), d.device_name.as_str()),
        (vec!["vhost".to_string()], NODE, "br-drap")
    );
    let kind = format!("{DRIVER}/vhost-user");
    assert_eq!(d.cdi_device_ids, vec![format!("{kind}={ua}-vhost"), format!("{kind}={ua}-vhost-metadata")]);
    env.prepare(&b).expect("prepare b");

    // The port: client mode, connecting to the claim's dir, owned by the claim, on VLAN 100.
    let ports = ports_of(&lab, "br-drap", &ua);
    assert_eq!(ports.len(), 1, "one port owned by claim a: {ports:?}");
    let host_dir = env.socket_dir(&pa, "nic");
    assert_eq!(lab.interface_column(&ports[0], "type").expect("type").trim(), "dpdkvhostuserclient");
    let options = lab.interface_column(&ports[0], "options").expect("options");
    assert!(options.contains(&host_dir.join(SOCKET_FILE).display().to_string()), "{options}");
    assert_eq!(lab.vsctl(&["get", "Port", &ports[0], "tag"]).expect("tag").trim(), "100");

    // The socket dir: QEMU (group 107) creates the socket there, OVS connects.
    let meta = std::fs::metadata(&host_dir).expect("socket dir");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2770, "setgid, group rwx");
    assert_eq!(meta.gid(), 107);

    // CDI: the socket dir at the container path, the metadata file read-only where the binding looks.
    let cdi_dir = env.node.path("cdi");
    let mounts = resolve(&cdi_dir, &d.cdi_device_ids[0]);
    assert_eq!(
        mounts,
        vec![(host_dir.display().to_string(), "/var/run/ovsdpdk/nic/vhost".into(), vec!["bind".into(), "rw".into()])]
    );
    let meta_mounts = resolve(&cdi_dir, &d.cdi_device_ids[1]);
    assert_eq!(meta_mounts.len(), 1, "{meta_mounts:?}");
    let (meta_host, meta_container, opts) = &meta_mounts[0];
    assert_eq!(
        meta_container,
        &format!(
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/nic/vhost/{DRIVER}-metadata.json"
        )
    );
    assert!(opts.contains(&"ro".to_string()), "{opts:?}");
    let doc = DeviceMetadata::from_stream(&std::fs::read(meta_host).expect("metadata")).expect("metadata decodes");
    assert_eq!((doc.metadata.uid.as_str(), doc.pod_claim_name.as_deref()), (ua.as_str(), Some("nic")));
    let attrs = &doc.requests[0].devices[0].attributes;
    assert_eq!(attrs["vhost-user-path"], Attribute::String(format!("/var/run/ovsdpdk/nic/vhost/{SOCKET_FILE}")));
    assert_eq!(attrs["mtu"], Attribute::Int(1500));
    for f in std::fs::read_dir(&cdi_dir).expect("cdi").flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".json") && !name.starts_with('.'), "only finished specs stay: {name}");
    }

    // Packets: testpmd as each VM's QEMU serves the socket; OVS connects; 32 of 32 cross.
    let (sent, received) = Testpmd::send_packets(
        &VhostPort::Client(host_dir.join(SOCKET_FILE)),
        &VhostPort::Client(env.socket_dir(&pb, "nic").join(SOCKET_FILE)),
        32,
        Duration::from_secs(60),
    )
    .expect("testpmd");
    assert_eq!((sent, received), (32, 32));

    env.unprepare(&a).expect("unprepare a");
    env.unprepare(&b).expect("unprepare b");
    env.unprepare(&a).expect("unprepare a again: nothing to do is success");
    assert!(ports_of(&lab, "br-drap", &ua).is_empty() && ports_of(&lab, "br-drap", &ub).is_empty());
    assert!(
        !lab.bridges().expect("bridges").contains(&"br-drap".to_string()),
        "the bridge we made is gone with its last port"
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn prepare_again_after_a_reboot_or_a_lost_port_restores_everything_and_answers_the_same() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-drar=9000");
    let (u, p) = (uid(3, "reboot"), uid(13, "reboot"));
    let c = env.add(claim(&u, "vm-r-nic-x3", "net1", &p, "br-drar", None));
    let first = env.prepare(&c).expect("prepare");
    let before = env.leftovers();

    // kubelet prepares again after its own restart: same answer, nothing new.
    assert_eq!(env.prepare(&c).expect("prepare again"), first);
    assert_eq!(env.leftovers(), before);

    // A reboot: /var/run is empty (CDI specs, socket dirs, metadata), the records and OVSDB stay.
    for dir in ["cdi", "dra", "meta"] {
        std::fs::remove_dir_all(env.node.path(dir)).expect("wipe");
    }
    assert_eq!(env.prepare(&c).expect("prepare after reboot"), first, "never a cached or different answer");
    assert_eq!(env.leftovers(), before, "every file is back");
    let doc = DeviceMetadata::from_stream(
        &std::fs::read(env.node.path("meta").join(format!("{u}-vhost/{DRIVER}-metadata.json"))).expect("metadata"),
    )
    .expect("decodes");
    assert_eq!(doc.requests[0].devices[0].attributes["mtu"], Attribute::Int(9000));

    // The port lost (an administrator, or OVSDB restored from an older copy): recreated.
    let ports = ports_of(&lab, "br-drar", &u);
    assert_eq!(ports.len(), 1);
    lab.vsctl(&["del-port", "br-drar", &ports[0]]).expect("del-port");
    assert_eq!(env.prepare(&c).expect("prepare after the port was lost"), first);
    assert_eq!(ports_of(&lab, "br-drar", &u), ports);

    env.unprepare(&c).expect("unprepare");
    assert!(ports_of(&lab, "br-drar", &u).is_empty());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// The OVSDB row of the claim's port (a re-created port gets a new uuid).
fn port_uuid(lab: &Lab, bridge: &str, uid: &str) -> String {
    let ports = ports_of(lab, bridge, uid);
    assert_eq!(ports.len(), 1, "one port of claim {uid}: {ports:?}");
    lab.vsctl(&["get", "Port", &ports[0], "_uuid"]).expect("port uuid").trim().to_owned()
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).expect("exists").ino()
}

fn metadata_mtu(env: &Env, u: &str) -> Attribute {
    let path = env.node.path("meta").join(format!("{u}-vhost/{DRIVER}-metadata.json"));
    let doc = DeviceMetadata::from_stream(&std::fs::read(path).expect("metadata")).expect("decodes");
    doc.requests[0].devices[0].attributes["mtu"].clone()
}

#[test]
fn prepare_again_in_the_same_boot_keeps_the_running_attachment_even_after_a_settings_change() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let mut env = Env::new(&lab, "br-dras=1500");
    env.restart_with("br-dras=1500", &[("BOOT_ID", "boot-a")]);
    let (u, p) = (uid(5, "again"), uid(15, "again"));
    let c = env.add(claim(&u, "vm-s-nic-x5", "net1", &p, "br-dras", None));
    let first = env.prepare(&c).expect("prepare");
    let (port, dir) = (port_uuid(&lab, "br-dras", &u), env.socket_dir(&p, "net1"));
    let dir_inode = inode(&dir);
    // QEMU's socket, as a running VM has it.
    let _qemu = std::os::unix::net::UnixListener::bind(dir.join(SOCKET_FILE)).expect("bind as QEMU");

    // kubelet prepares again (its own restart): re-applied in place, not replaced.
    assert_eq!(env.prepare(&c).expect("prepare again"), first);
    assert_eq!(port_uuid(&lab, "br-dras", &u), port, "the same port row");
    assert_eq!(inode(&dir), dir_inode, "the same socket dir");
    assert!(dir.join(SOCKET_FILE).exists(), "QEMU's socket stays");

    // The plugin restarted with another MTU, same boot: the VM may be running, so the claim is
    // kept as prepared (and answered as such); its metadata still says what its port has.
    env.restart_with("br-dras=9000", &[("BOOT_ID", "boot-a")]);
    assert_eq!(env.prepare(&c).expect("prepare again, new settings"), first);
    assert_eq!(port_uuid(&lab, "br-dras", &u), port, "the same port row");
    assert_eq!(inode(&dir), dir_inode, "the same socket dir");
    assert!(dir.join(SOCKET_FILE).exists(), "QEMU's socket stays");
    assert_eq!(metadata_mtu(&env, &u), Attribute::Int(1500));

    // After a reboot (another boot id) nothing can be using it: prepared anew, new settings.
    env.restart_with("br-dras=9000", &[("BOOT_ID", "boot-b")]);
    assert_eq!(env.prepare(&c).expect("prepare in the next boot"), first, "same ids and device");
    assert_ne!(port_uuid(&lab, "br-dras", &u), port, "the port was made again");
    assert_eq!(metadata_mtu(&env, &u), Attribute::Int(9000));
    let records = support::entries_with_prefix(&env.node.state_dir(), &u);
    let record = env.node.state_dir().join(records.iter().find(|r| r.ends_with(".json")).expect("record"));
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("record JSON");
    assert_eq!(rec["boot_id"], json!("boot-b"), "stamped with the boot it holds in");

    env.unprepare(&c).expect("unprepare");
    assert!(ports_of(&lab, "br-dras", &u).is_empty());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// KubeVirt's QEMU: uid and gid 107.
const QEMU: u32 = 107;
/// An unprivileged OVS: a user that is not root and not in group 107.
const OVS_USER: u32 = 4242;

/// `path` as a `sockaddr_un`, built before a fork (the child must not allocate).
fn sockaddr(path: &Path) -> libc::sockaddr_un {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain data; all zeroes is a valid (empty) address.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < a.sun_path.len(), "{} fits sun_path", path.display());
    for (d, s) in a.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    a
}

/// Run `body` in a forked child as `uid`/`gid` with no supplementary groups; its result is the
/// child's exit code (0, or an errno). The test process has threads, so the child makes only
/// async-signal-safe calls and never allocates.
fn as_user(uid: u32, gid: u32, body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: see above; the child leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                200
            } else {
                body()
            }
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child as uid {uid} did not exit: status {status}");
    libc::WEXITSTATUS(status)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(255)
}

/// QEMU's side: a child as uid and gid 107 with `umask` binds `path` and listens on a socket
/// this process keeps (the returned listener), so the file has QEMU's owner and mode.
fn bind_as_qemu(path: &Path, umask: libc::mode_t) -> std::os::unix::net::UnixListener {
    use std::os::fd::FromRawFd;
    let addr = sockaddr(path);
    // SAFETY: a new socket, owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let code = as_user(QEMU, QEMU, || unsafe {
        libc::umask(umask);
        if libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 || libc::listen(fd, 16) != 0 {
            return errno();
        }
        0
    });
    assert_eq!(code, 0, "QEMU (uid 107, umask {umask:03o}) binds {}: errno {code}", path.display());
    listener
}

/// OVS's side: what `connect(2)` to `path` gives a child as `uid`/`gid`: Ok, or the errno.
fn connect_as(uid: u32, gid: u32, path: &Path) -> Result<(), i32> {
    let addr = sockaddr(path);
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let code = as_user(uid, gid, || unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 || libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
            return errno();
        }
        0
    });
    if code == 0 {
        Ok(())
    } else {
        Err(code)
    }
}

/// The ACL xattr `name` of `path` as (tag, perm, id) entries; `None` when it has none.
fn acl_of(path: &Path, name: &str) -> Option<Vec<(u16, u16, u32)>> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?, std::ffi::CString::new(name).ok()?);
    let mut buf = vec![0u8; 1024];
    // SAFETY: NUL-terminated strings; `buf` is writable for its length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 4 {
        return None;
    }
    buf.truncate(len as usize);
    let word = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    Some(
        buf[4..]
            .chunks(8)
            .map(|c| (word(&c[0..2]), word(&c[2..4]), u32::from_le_bytes([c[4], c[5], c[6], c[7]])))
            .collect(),
    )
}

/// QEMU (uid and gid 107) binds the claim's socket after Prepare; OVS running as an unrelated
/// user connects only when `dra_dir_acl_users` lists it. Within a limit of the kernel: bind(2)
/// applies QEMU's umask before the default ACL, so the ACL helps with libvirt's umask 002 and
/// not with 022 (docs/kubevirt-dra.md). Prepare after a reboot writes the ACLs again.
#[test]
fn an_unprivileged_ovs_connects_to_qemus_socket_only_when_dra_dir_acl_users_lists_it() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let mut env = Env::new(&lab, "br-draacl");
    env.restart_with("br-draacl", &[("BOOT_ID", "boot-a")]);
    // QEMU and the OVS user must reach the socket dirs below this test's private temp dir.
    std::fs::set_permissions(env.node.path(""), std::fs::Permissions::from_mode(0o711)).expect("chmod temp dir");
    const NONE: u32 = u32::MAX;

    // Today's settings: group 107 and mode 2770 only.
    let (u1, p1) = (uid(21, "acl"), uid(31, "acl"));
    let c1 = env.add(claim(&u1, "vm-g-nic-x21", "nic", &p1, "br-draacl", None));
    env.prepare(&c1).expect("prepare without ACLs");
    let sock1 = env.socket_dir(&p1, "nic").join(SOCKET_FILE);
    assert_eq!(acl_of(&env.socket_dir(&p1, "nic"), "system.posix_acl_default"), None, "no ACL unless asked for");
    let qemu1 = bind_as_qemu(&sock1, 0o002);
    assert_eq!(connect_as(OVS_USER, OVS_USER, &sock1), Err(libc::EACCES), "not root, not in group 107");
    assert_eq!(connect_as(0, 0, &sock1), Ok(()), "root OVS always connects");
    assert_eq!(connect_as(4243, QEMU, &sock1), Ok(()), "a member of group 107, QEMU's umask 002");
    // The docs' old claim, disproved: with umask 022 a member of group 107 cannot connect.
    let strict1 = env.socket_dir(&p1, "nic").join("umask022.sock");
    let _q = bind_as_qemu(&strict1, 0o022);
    assert_eq!(connect_as(4243, QEMU, &strict1), Err(libc::EACCES), "group r-x on the socket");
    std::fs::remove_file(&strict1).expect("remove the extra socket");

    // The plugin restarted with the OVS user listed.
    env.restart_with("br-draacl", &[("BOOT_ID", "boot-a"), ("DRA_DIR_ACL_USERS", "4242")]);
    let (u2, p2) = (uid(22, "acl"), uid(32, "acl"));
    let c2 = env.add(claim(&u2, "vm-a-nic-x22", "nic", &p2, "br-draacl", None));
    env.prepare(&c2).expect("prepare with ACLs");
    let dir2 = env.socket_dir(&p2, "nic");
    let sock2 = dir2.join(SOCKET_FILE);
    let check_dir = |dir: &Path| {
        let meta = std::fs::metadata(dir).expect("socket dir");
        assert_eq!((meta.permissions().mode() & 0o7777, meta.gid()), (0o2770, QEMU), "group and mode as before");
        assert_eq!(
            acl_of(dir, "system.posix_acl_access").expect("an access ACL"),
            [(0x01, 7, NONE), (0x02, 1, OVS_USER), (0x04, 7, NONE), (0x10, 7, NONE), (0x20, 0, NONE)],
            "user::rwx user:4242:--x group::rwx mask::rwx other::---"
        );
        assert_eq!(
            acl_of(dir, "system.posix_acl_default").expect("a default ACL"),
            [(0x01, 7, NONE), (0x02, 6, OVS_USER), (0x04, 7, NONE), (0x10, 7, NONE), (0x20, 0, NONE)],
            "default: user::rwx user:4242:rw- group::rwx mask::rwx other::---"
        );
    };
    check_dir(&dir2);
    let qemu2 = bind_as_qemu(&sock2, 0o002);
    assert_eq!(connect_as(OVS_USER, OVS_USER, &sock2), Ok(()), "the listed user connects");
    assert_eq!(connect_as(4243, 4243, &sock2), Err(libc::EACCES), "a user not listed still cannot");
    let inherited = acl_of(&sock2, "system.posix_acl_access").expect("the socket inherited an ACL");
    assert!(inherited.contains(&(0x02, 6, OVS_USER)) && inherited.contains(&(0x10, 7, NONE)), "{inherited:?}");
    // umask 022: the kernel cuts the inherited mask to r-x, and write is gone for the ACL user too.
    let strict2 = dir2.join("umask022.sock");
    let _q = bind_as_qemu(&strict2, 0o022);
    assert_eq!(connect_as(OVS_USER, OVS_USER, &strict2), Err(libc::EACCES), "bind(2) applies the umask first");
    let cut = acl_of(&strict2, "system.posix_acl_access").expect("inherited");
    assert!(cut.contains(&(0x10, 5, NONE)), "mask r-x: {cut:?}");
    std::fs::remove_file(&strict2).expect("remove the extra socket");

    // Hostile: the claim's dir name taken by a symlink to a dir outside the roots. Prepare
    // refuses it, and the ACLs never reach the decoy.
    let decoy = env.node.path("decoy");
    std::fs::create_dir(&decoy).expect("decoy");
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o700)).expect("chmod decoy");
    let (u3, p3) = (uid(23, "acl"), uid(33, "acl"));
    let c3 = env.add(claim(&u3, "vm-h-nic-x23", "nic", &p3, "br-draacl", None));
    std::os::unix::fs::symlink(&decoy, env.socket_dir(&p3, "nic")).expect("plant the symlink");
    let e = env.prepare(&c3).expect_err("a symlink is not a socket dir");
    assert!(e.contains(&env.socket_dir(&p3, "nic").display().to_string()), "names the dir: {e}");
    assert_eq!(acl_of(&decoy, "system.posix_acl_access"), None, "no ACL on the decoy");
    assert_eq!(acl_of(&decoy, "system.posix_acl_default"), None, "no default ACL on the decoy");
    assert_eq!(std::fs::metadata(&decoy).expect("decoy").permissions().mode() & 0o7777, 0o700);
    std::fs::remove_file(env.socket_dir(&p3, "nic")).expect("remove the symlink");
    assert!(ports_of(&lab, "br-draacl", &u3).is_empty(), "nothing of the refused claim stays");

    // A reboot empties /var/run: Prepare again makes the dir anew, with its ACLs; the claim
    // prepared before the setting takes it now (nothing can be using it in a new boot).
    drop((qemu1, qemu2));
    for dir in ["cdi", "dra", "meta"] {
        std::fs::remove_dir_all(env.node.path(dir)).expect("wipe");
    }
    env.restart_with("br-draacl", &[("BOOT_ID", "boot-b"), ("DRA_DIR_ACL_USERS", "4242")]);
    env.prepare(&c2).expect("prepare after reboot");
    check_dir(&dir2);
    let _qemu2 = bind_as_qemu(&sock2, 0o002);
    assert_eq!(connect_as(OVS_USER, OVS_USER, &sock2), Ok(()), "after the reboot too");
    env.prepare(&c1).expect("prepare the first claim in the new boot");
    check_dir(&env.socket_dir(&p1, "nic"));
    let _qemu1 = bind_as_qemu(&sock1, 0o002);
    assert_eq!(connect_as(OVS_USER, OVS_USER, &sock1), Ok(()), "the first claim's socket too");

    env.unprepare(&c1).expect("unprepare 1");
    env.unprepare(&c2).expect("unprepare 2");
    assert!(ports_of(&lab, "br-draacl", &u1).is_empty() && ports_of(&lab, "br-draacl", &u2).is_empty());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn an_interrupted_prepare_is_undone_and_prepared_again() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-drai=1500");
    let (u, p) = (uid(4, "crash"), uid(14, "crash"));
    let c = env.add(claim(&u, "vm-i-nic-x4", "nic", &p, "br-drai", None));
    let first = env.prepare(&c).expect("prepare");
    // What a SIGKILL before "save state" leaves: the record exists, not marked complete; one file
    // of the later stages missing.
    let records: Vec<_> = support::entries_with_prefix(&env.node.state_dir(), &u);
    let record = env.node.state_dir().join(records.iter().find(|r| r.ends_with(".json")).expect("record"));
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("record JSON");
    rec["complete"] = json!(false);
    rec["outputs"] = Value::Null;
    std::fs::write(&record, serde_json::to_vec(&rec).expect("json")).expect("rewrite");
    for spec in support::entries(&env.node.path("cdi")) {
        std::fs::remove_file(env.node.path("cdi").join(spec)).expect("remove a spec");
    }
    assert_eq!(env.prepare(&c).expect("prepare after the interruption"), first);
    assert_eq!(ports_of(&lab, "br-drai", &u).len(), 1, "one port, not two");
    assert_eq!(support::entries(&env.node.path("cdi")).len(), 2);
    env.unprepare(&c).expect("unprepare");
    assert!(ports_of(&lab, "br-drai", &u).is_empty());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn a_claim_the_node_cannot_serve_changes_nothing_and_says_why() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-drab=1500");
    let p = uid(15, "bad");
    // Allocated on a bridge this node does not offer (a stale slice).
    let stale = env.add(claim(&uid(5, "bad"), "vm-s-nic", "nic", &p, "br-gone", None));
    let err = env.prepare(&stale).expect_err("unknown bridge");
    assert!(err.contains("br-gone") && err.contains("dra_bridges"), "{err}");
    // Not in the API server any more (deleted between scheduling and Prepare).
    let missing = ClaimRef { namespace: "vms".into(), name: "gone".into(), uid: uid(6, "bad") };
    let err = env.prepare(&missing).expect_err("missing");
    assert!(err.contains("does not exist"), "{err}");
    // A hostile pod claim name never reaches a path.
    let hostile = env.add(claim(&uid(7, "bad"), "vm-h-nic", "../../etc", &p, "br-drab", None));
    let err = env.prepare(&hostile).expect_err("hostile");
    assert!(err.contains("pod claim name"), "{err}");
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert!(!lab.bridges().expect("bridges").contains(&"br-drab".to_string()), "no bridge made for a refused claim");
    // Unprepare of a claim never prepared is success.
    env.unprepare(&missing).expect("unprepare of nothing");
}

/// The first DRA record format (2) as this release writes it stays readable: Unprepare of a claim
/// whose record is the fixture (`{root}` the node's root) removes everything. A format bump adds a
/// fixture; none is ever removed (`{ovs}` is the lab's socket dir). `USCNI_WRITE_FIXTURE=1` writes the fixture from today's record
/// (only when the format is new).
#[test]
fn a_format_2_record_is_torn_down_by_todays_unprepare() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-draf=1500");
    let (u, p) = (uid(8, "fixture"), uid(18, "fixture"));
    let c = env.add(claim(&u, "vm-f-nic-x8", "nic", &p, "br-draf", Some(7)));
    env.prepare(&c).expect("prepare");
    let record = env.node.state_dir().join(format!("{u}_vhost.json"));
    let root = env.node.root.path().display().to_string();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records/format2-dra-ovs.json");
    if std::env::var_os("USCNI_WRITE_FIXTURE").is_some() {
        let today = std::fs::read_to_string(&record).expect("record");
        let ovs = lab.sock_dir().display().to_string();
        std::fs::write(&fixture, today.replace(&root, "{root}").replace(&ovs, "{ovs}")).expect("write fixture");
    }
    let text = std::fs::read_to_string(&fixture)
        .expect("fixture")
        .replace("{root}", &root)
        .replace("{ovs}", &lab.sock_dir().display().to_string());
    let planted: Value = serde_json::from_str(&text).expect("fixture JSON");
    assert_eq!(planted["format"], 2);
    assert_eq!(planted["plan"]["dra"]["claim"]["uid"], json!(u));
    std::fs::write(&record, text).expect("plant");
    env.unprepare(&c).expect("unprepare from the fixture");
    assert!(ports_of(&lab, "br-draf", &u).is_empty());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// A real CDI consumer: podman (runc) runs a container with our two CDI ids, as a container
/// runtime does for kubelet. The container sees the claim's socket dir (read-write: what it
/// creates there is in the host dir OVS connects to) and the metadata file at the paths the
/// binding reads, and the metadata decodes to the port's attributes. Podman 4.3 reads CDI specs
/// only from /etc/cdi and /var/run/cdi: it runs in a private mount namespace whose /run is a
/// tmpfs with our spec dir bound at /run/cdi, and with its storage in the test's temp dir.
#[test]
fn podman_applies_our_cdi_devices_and_the_container_sees_socket_dir_and_metadata() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-drac=1500");
    let (u, p) = (uid(9, "podman"), uid(19, "podman"));
    let c = env.add(claim(&u, "vm-c-nic-x9", "nic", &p, "br-drac", None));
    let devices = env.prepare(&c).expect("prepare");
    let rootfs = env.node.path("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static, installed by scripts/setup.sh)");
    let meta =
        format!("/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/nic/vhost/{DRIVER}-metadata.json");
    let inner = format!("ls -d /var/run/ovsdpdk/nic/vhost && touch /var/run/ovsdpdk/nic/vhost/from-qemu && cat {meta}");
    let storage = env.node.path("podman");
    let mut script = format!(
        "set -e; mount -t tmpfs tmpfs /run; mkdir /run/cdi; mount --bind {cdi} /run/cdi; \
         exec podman --root {storage}/root --runroot /run/podman --tmpdir /run/podman-tmp --cgroup-manager=cgroupfs \
         --events-backend=file --runtime runc run --rm --network=none --ulimit nofile=20000:20000 \
         --ulimit nproc=32768:32768",
        cdi = env.node.path("cdi").display(),
        storage = storage.display(),
    );
    for id in &devices[0].cdi_device_ids {
        script.push_str(&format!(" --device {id}"));
    }
    script.push_str(&format!(" --rootfs {} /bin/busybox sh -c '{inner}'", rootfs.display()));
    let out = std::process::Command::new("timeout")
        .args(["120", "unshare", "--mount", "--propagation", "private", "sh", "-c", &script])
        .env("CONTAINERS_CONF", "/dev/null")
        .output()
        .expect("run podman");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let body = stdout.split_once('\n').map(|(_, rest)| rest).unwrap_or_default();
    let doc = DeviceMetadata::from_stream(body.as_bytes()).expect("the container's metadata decodes");
    let attrs = &doc.requests[0].devices[0].attributes;
    assert_eq!(attrs["vhost-user-path"], Attribute::String(format!("/var/run/ovsdpdk/nic/vhost/{SOCKET_FILE}")));
    assert_eq!(attrs["mtu"], Attribute::Int(1500));
    assert!(env.socket_dir(&p, "nic").join("from-qemu").exists(), "the container wrote into the host's socket dir");
    // Podman's storage is ours to remove (its overlay mounts died with the namespace).
    let _ = std::fs::remove_dir_all(&storage);
    let _ = std::fs::remove_dir_all(&rootfs);
    std::fs::remove_file(env.socket_dir(&p, "nic").join("from-qemu")).expect("remove the container's file");
    env.unprepare(&c).expect("unprepare");
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// `c` with one allocation result per request reference in `requests` (`req` or `req/sub`), all
/// on `bridge`, and the spec's requests to match (a subrequest as one of `firstAvailable`).
fn with_requests(c: ResourceClaim, bridge: &str, requests: &[&str]) -> ResourceClaim {
    let mut v = serde_json::to_value(&c).expect("claim encodes");
    let spec: Vec<Value> = requests
        .iter()
        .map(|r| match r.split_once('/') {
            Some((base, sub)) => {
                json!({"name": base, "firstAvailable": [{"name": sub, "deviceClassName": "vhost-user"}]})
            }
            None => json!({"name": r, "exactly": {"deviceClassName": "vhost-user"}}),
        })
        .collect();
    v["spec"]["devices"]["requests"] = json!(spec);
    v["status"]["allocation"]["devices"]["results"] =
        requests.iter().map(|r| json!({"request": r, "driver": DRIVER, "pool": NODE, "device": bridge})).collect();
    serde_json::from_value(v).expect("claim decodes")
}

/// A DNS label of `len` bytes.
fn label(len: usize) -> String {
    assert!((1..=63).contains(&len), "a DNS label of {len} bytes cannot be made; is TMPDIR very long?");
    "n".repeat(len)
}

/// Both ends of a claim's socket must fit `sun_path` (107 bytes): the host path (OVS connects to
/// it) grows with `dra_socket_root`, the pod claim name and the request name; the container's
/// (QEMU binds it) with `dra_container_root`, the pod claim name and the request. A claim over
/// either limit is refused before anything is made: no port, bridge, dir, CDI spec, metadata or
/// record, not even for its other requests that fit, and the message names what to shorten and
/// both lengths. 107 bytes exactly is prepared.
#[test]
fn a_socket_path_longer_than_sun_path_is_refused_before_anything_is_made() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let p = uid(40, "sunpath");
    // The host path without a pod claim name: `<root>/<pod uid>__vhost/vhost.sock`.
    let probe = Env::new(&lab, "br-drasun=1500");
    let fixed = probe.socket_dir(&p, "").join(SOCKET_FILE).as_os_str().len();
    let fits = label(107 - fixed);
    let over = label(108 - fixed);
    drop(probe);
    fn long_root(env: &Env) -> PathBuf {
        env.node.path(&format!("dra-{}", "r".repeat(64)))
    }

    // `fits` makes the host path 107 bytes, `over` 108. Each refused row: what the message names.
    struct Row {
        what: &'static str,
        pod_claim: String,
        requests: Vec<String>,
        settings: fn(&Env) -> Vec<(&'static str, String)>,
        names: &'static [&'static str],
        not_names: &'static [&'static str],
    }
    let none: fn(&Env) -> Vec<(&'static str, String)> = |_| Vec::new();
    let rows = [
        Row {
            what: "a pod claim name one byte too long",
            pod_claim: over.clone(),
            requests: vec!["vhost".into()],
            settings: none,
            names: &["dra_socket_root"],
            not_names: &["dra_container_root ("],
        },
        Row {
            what: "a long request name after a request that fits",
            pod_claim: "nic".into(),
            requests: vec!["vhost".into(), label(51)],
            settings: none,
            names: &["dra_socket_root"],
            not_names: &["dra_container_root ("],
        },
        Row {
            what: "a long dra_socket_root",
            pod_claim: "nic".into(),
            requests: vec!["vhost".into()],
            settings: |env| vec![("DRA_SOCKET_ROOT", long_root(env).display().to_string())],
            names: &["dra_socket_root"],
            not_names: &["dra_container_root ("],
        },
        Row {
            what: "a long dra_container_root",
            pod_claim: "nic".into(),
            requests: vec!["vhost".into()],
            settings: |_| vec![("DRA_CONTAINER_ROOT", format!("/var/run/{}", "c".repeat(90)))],
            names: &["dra_container_root"],
            not_names: &["dra_socket_root ("],
        },
    ];
    for (n, row) in rows.iter().enumerate() {
        let mut env = Env::new(&lab, "br-drasun=1500");
        let extra = (row.settings)(&env);
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.restart_with("br-drasun=1500", &extra);
        let u = uid(41 + n as u32, "sunpath");
        let refs: Vec<&str> = row.requests.iter().map(String::as_str).collect();
        let c = env.add(with_requests(
            claim(&u, &format!("vm-l-nic-x{n}"), &row.pod_claim, &p, "br-drasun", None),
            "br-drasun",
            &refs,
        ));
        let err = env.prepare(&c).expect_err(row.what);
        for name in row.names {
            assert!(err.contains(name), "{}: the message names {name}: {err}", row.what);
        }
        for name in row.not_names {
            assert!(!err.contains(name), "{}: the message names only what is too long: {err}", row.what);
        }
        assert!(!err.contains("sharedDir") && !err.contains("socketfile"), "{}: CNI wording: {err}", row.what);
        let long = refs.iter().find(|r| r.len() > 5).copied().unwrap_or("vhost");
        let host = env.driver.settings.dra.socket_root.join(format!("{p}_{}_{long}", row.pod_claim)).join(SOCKET_FILE);
        let container = env.driver.settings.dra.container_root.join(&row.pod_claim).join(long).join(SOCKET_FILE);
        for (side, path) in [("host", &host), ("container", &container)] {
            let len = path.as_os_str().len();
            assert!(
                err.contains(&format!("{} is {len} bytes", path.display())),
                "{}: the message gives the {side} path and its length ({len}): {err}",
                row.what
            );
        }
        assert!(err.contains(&format!("{:?}", row.pod_claim)) && err.contains(&format!("{long:?}")), "{err}");
        assert_eq!(env.leftovers(), Vec::<String>::new(), "{}: nothing made", row.what);
        assert!(!long_root(&env).exists(), "{}: the socket root was not made", row.what);
        assert!(ports_of(&lab, "br-drasun", &u).is_empty(), "{}: no port", row.what);
        assert!(!lab.bridges().expect("bridges").contains(&"br-drasun".to_string()), "{}: no bridge", row.what);
    }

    // 107 bytes is a valid unix socket path: prepared, and the socket dir is where OVS connects.
    let env = Env::new(&lab, "br-drasun=1500");
    let u = uid(49, "sunpath");
    let c = env.add(claim(&u, "vm-f-nic-x9", &fits, &p, "br-drasun", None));
    env.prepare(&c).unwrap_or_else(|e| panic!("a 107-byte socket path is prepared: {e}"));
    let socket = env.socket_dir(&p, &fits).join(SOCKET_FILE);
    assert_eq!(socket.as_os_str().len(), 107);
    let ports = ports_of(&lab, "br-drasun", &u);
    assert_eq!(ports.len(), 1, "{ports:?}");
    let options = lab.interface_column(&ports[0], "options").expect("options");
    assert!(options.contains(&socket.display().to_string()), "{options}");
    env.unprepare(&c).expect("unprepare");
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// A request satisfied by one of its subrequests (`vhost/port0`, KEP-4816's `firstAvailable`):
/// on the node everything is named by the base request, `vhost`, as if there were no
/// subrequest: the host and container socket dirs, the OVS port, the metadata file and its
/// container path, the CDI ids, the record. kubelet's `request_names` has the base too
/// (k8s.io/dynamic-resource-allocation's kubelet plugin helper strips subrequests before
/// answering: containers name requests, never subrequests); the KEP-5304 metadata document
/// and the record keep the full reference, which says which alternative was allocated.
#[test]
fn a_subrequest_is_named_by_its_base_request_and_the_metadata_keeps_the_full_reference() {
    let lab = Lab::shared("dra-prepare").expect("lab");
    let env = Env::new(&lab, "br-drasub=1500");
    let (u, p) = (uid(50, "subrequest"), uid(60, "subrequest"));
    let c =
        env.add(with_requests(claim(&u, "vm-q-nic-x5", "nic", &p, "br-drasub", None), "br-drasub", &["vhost/port0"]));

    let devices = env.prepare(&c).expect("prepare");
    assert_eq!(devices.len(), 1, "{devices:?}");
    let d = &devices[0];
    assert_eq!(d.request_names, vec!["vhost".to_string()], "kubelet gets the base request");
    let kind = format!("{DRIVER}/vhost-user");
    assert_eq!(d.cdi_device_ids, vec![format!("{kind}={u}-vhost"), format!("{kind}={u}-vhost-metadata")]);

    // The port: named `<claim uid, 12>-vhost`, connecting to the base request's dir.
    let host_dir = env.socket_dir(&p, "nic");
    assert!(host_dir.is_dir(), "{} is the socket dir", host_dir.display());
    let ports = ports_of(&lab, "br-drasub", &u);
    assert_eq!(ports, vec![format!("{}-vhost", &u[..12])]);
    let options = lab.interface_column(&ports[0], "options").expect("options");
    assert!(options.contains(&host_dir.join(SOCKET_FILE).display().to_string()), "{options}");

    // The container's view: the dir and the metadata at the base request's paths.
    let cdi_dir = env.node.path("cdi");
    assert_eq!(
        resolve(&cdi_dir, &d.cdi_device_ids[0]),
        vec![(host_dir.display().to_string(), "/var/run/ovsdpdk/nic/vhost".into(), vec!["bind".into(), "rw".into()])]
    );
    let meta_host = env.node.path("meta").join(format!("{u}-vhost/{DRIVER}-metadata.json"));
    let meta_mounts = resolve(&cdi_dir, &d.cdi_device_ids[1]);
    assert_eq!(meta_mounts.len(), 1, "{meta_mounts:?}");
    assert_eq!(meta_mounts[0].0, meta_host.display().to_string());
    assert_eq!(
        meta_mounts[0].1,
        format!("/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/nic/vhost/{DRIVER}-metadata.json")
    );
    let doc = DeviceMetadata::from_stream(&std::fs::read(&meta_host).expect("metadata")).expect("metadata decodes");
    assert_eq!(doc.requests.len(), 1);
    assert_eq!(doc.requests[0].name, "vhost/port0", "the document names the allocated subrequest");
    assert_eq!(
        doc.requests[0].devices[0].attributes["vhost-user-path"],
        Attribute::String(format!("/var/run/ovsdpdk/nic/vhost/{SOCKET_FILE}"))
    );

    // The record: one per base request, holding the full reference.
    let record = env.node.state_dir().join(format!("{u}_vhost.json"));
    let rec: Value = serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("record JSON");
    assert_eq!(rec["plan"]["dra"]["request"], json!("vhost/port0"));
    let before = env.leftovers();
    assert!(before.iter().all(|f| !f.contains("port0")), "no name on the node has the subrequest: {before:?}");

    // Prepare again (kubelet's restart): the same attachment, re-applied, the same answer.
    let port = port_uuid(&lab, "br-drasub", &u);
    assert_eq!(env.prepare(&c).expect("prepare again"), devices);
    assert_eq!(port_uuid(&lab, "br-drasub", &u), port, "the same port row");
    assert_eq!(env.leftovers(), before);

    env.unprepare(&c).expect("unprepare");
    assert!(ports_of(&lab, "br-drasub", &u).is_empty());
    assert_eq!(env.leftovers(), Vec::<String>::new());
}
