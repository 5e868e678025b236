//! Node-level settings as plain data (DESIGN.md §6). The plugin loads them (defaults < file <
//! environment); backends only read them. Every host path the plugin touches is here, so tests
//! run under a temporary root. A backend's own settings are in `engines`, read through its
//! declarations (`engine_settings`), so no engine's key is named here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnotationMode {
    /// On when the network config has `kubeconfig`.
    Auto,
    /// Use the in-cluster service account even without `kubeconfig`.
    InCluster,
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSettings {
    pub state_dir: PathBuf,
    pub kubelet_root: PathBuf,
    pub short_socket_dir: PathBuf,
    pub shared_dir: PathBuf,
    pub timeout_ms: u64,
    pub deadline_ms: u64,
    /// Where a config's `sharedDir` and a pod's `shared-dir` hostPath volume may lie
    /// (docs/security.md). Each per-pod dir below them is the pod's: never followed.
    pub shared_roots: Vec<PathBuf>,
    /// Where a config's `logFile` may be; one outside is ignored with a warning.
    pub log_roots: Vec<PathBuf>,
    /// Where `runtimeConfig.CNIDeviceInfoFile` may be read and written (Multus's devinfo dir).
    pub device_info_roots: Vec<PathBuf>,
    /// The only files a config's `kubeconfig` may name (exact paths, the operator's).
    pub kubeconfig_files: Vec<PathBuf>,
    pub annotations: AnnotationMode,
    /// Where a device plugin keeps a device's sockets on the host, `{deviceID}` standing for the
    /// attachment's deviceID. Read only when a device-info file already exists (the device
    /// plugin wrote it): its pod-side path says where the socket goes, this says where that is
    /// on the host. `None`: such a file cannot be honoured and ADD fails naming both paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_host_dir: Option<String>,
    /// libcni's cache dirs (their `results/` subdirs hold what the runtime and Multus passed to
    /// each plugin's ADD). Read only by `userspace adopt`, to complete an upstream plugin's
    /// state file into our record (docs/upgrading.md).
    #[serde(default = "default_cni_cache_dirs")]
    pub cni_cache_dirs: Vec<PathBuf>,
    /// This node's name in Kubernetes (`node_name`; the DaemonSet sets it from `spec.nodeName`).
    /// Used by the DRA plugin (its ResourceSlice, its claims' pods) and node marking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// This boot's identity (`boot_id`); unset: the kernel's `/proc/sys/kernel/random/boot_id`.
    /// Records carry it: a CNI attachment of an earlier boot lost its netns and its pod sandbox
    /// with that boot, so the reconciler removes it. Tests set it to simulate a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The DRA kubelet plugin (`userspace dra-plugin`, docs/kubevirt-dra.md).
    #[serde(default)]
    pub dra: DraSettings,
    /// Each engine's own settings (`[engines.<engine>]`), by engine then key, as the node set
    /// them (validated, normalised); unset keys are absent and read as the backend's declared
    /// default through `NodeSettings::engine`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub engines: BTreeMap<String, BTreeMap<String, String>>,
}

/// Settings of the DRA kubelet plugin (keys `dra_*` and `cdi_dir`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraSettings {
    /// The DRA driver name: KubeVirt's vhost-user binding hard-codes the default, and it is part
    /// of the metadata file's name.
    pub driver_name: String,
    /// Host base of the per-claim socket dirs `<podUID>_<podClaimName>_<request>`.
    pub socket_root: PathBuf,
    /// Where the container sees them: `<container_root>/<podClaimName>/<request>`.
    pub container_root: PathBuf,
    /// Host base of the KEP-5304 metadata files (root's; the container gets them read-only).
    pub metadata_dir: PathBuf,
    /// The container runtime's CDI spec dir.
    pub cdi_dir: PathBuf,
    /// The bridges published as devices, each with its MTU.
    pub bridges: Vec<DraBridge>,
    /// Group of each per-claim socket dir (name or numeric id): QEMU creates the socket there
    /// after Prepare, and OVS connects to it. KubeVirt's qemu is uid and gid 107.
    pub dir_group: Option<String>,
    /// Mode of each per-claim socket dir (setgid keeps the group on the socket QEMU creates).
    pub dir_mode: u32,
    /// Users (numeric uids) given POSIX ACLs on each per-claim socket dir: search on the dir, and
    /// a default ACL entry `rw-` that the socket QEMU binds there inherits, so an unprivileged OVS
    /// running as one of them can connect (within QEMU's umask: docs/kubevirt-dra.md). Empty: no
    /// ACL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dir_acl_users: Vec<u32>,
    /// The plugin's own kubeconfig; unset: the in-cluster service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
}

/// One OVS bridge offered to claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraBridge {
    pub name: String,
    pub mtu: u32,
}

/// The MTU of a bridge given without one (`dra_bridges = ["br0"]`).
pub const DEFAULT_DRA_MTU: u32 = 1500;
/// KubeVirt's default DRA driver name for OVS-DPDK vhost-user (its binding hard-codes it).
pub const DEFAULT_DRA_DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";

impl Default for DraSettings {
    fn default() -> Self {
        DraSettings {
            driver_name: DEFAULT_DRA_DRIVER.into(),
            socket_root: "/var/run/ovsdpdk".into(),
            container_root: "/var/run/ovsdpdk".into(),
            metadata_dir: "/var/run/userspace-cni/dra".into(),
            cdi_dir: "/var/run/cdi".into(),
            bridges: Vec::new(),
            dir_group: Some("107".into()),
            dir_mode: 0o2770,
            dir_acl_users: Vec::new(),
            kubeconfig: None,
        }
    }
}

/// Where `logFile` may point by default.
pub const DEFAULT_LOG_ROOTS: &[&str] = &["/var/log/userspace-cni"];
/// Multus's device-info dir (it passes `/var/run/...`; resolved once, as `/run/...` on most hosts).
pub const DEFAULT_DEVICE_INFO_ROOTS: &[&str] = &["/var/run/k8s.cni.cncf.io/devinfo"];
/// The kubeconfigs a network config may name by default: Multus's (upstream and OpenShift's
/// paths) and one the operator installs for this plugin.
pub const DEFAULT_KUBECONFIG_FILES: &[&str] = &[
    "/etc/cni/net.d/multus.d/multus.kubeconfig",
    "/etc/kubernetes/cni/net.d/multus.d/multus.kubeconfig",
    "/etc/userspace-cni/kubeconfig",
];

/// libcni's default cache dir and the one Multus uses for its delegates.
pub fn default_cni_cache_dirs() -> Vec<PathBuf> {
    vec!["/var/lib/cni".into(), "/var/lib/cni/multus".into()]
}

impl NodeSettings {
    /// Bound on every single wait (dataplane, API server, delegate).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Bound on a whole verb, retries included.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// Every root a pod's shared dir can lie under, whatever decided it: the shared roots,
    /// kubelet's pod volumes, the KubeVirt short dirs, and a device plugin's dirs (the part of
    /// `device_host_dir` before the component holding `{deviceID}`). Steps resolve the shared
    /// dir below one of these without following symlinks.
    pub fn socket_dir_roots(&self) -> Vec<PathBuf> {
        let mut roots = self.shared_roots.clone();
        roots.extend([
            self.kubelet_root.clone(),
            self.short_socket_dir.clone(),
            self.shared_dir.clone(),
            self.dra.socket_root.clone(),
        ]);
        if let Some(t) = &self.device_host_dir {
            let fixed: PathBuf = std::path::Path::new(t)
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains('{'))
                .collect();
            if fixed.components().count() > 1 {
                roots.push(fixed);
            }
        }
        roots
    }

    /// This boot's id: the setting, else the kernel's; `None` when neither can be read (then
    /// no record is ever judged to be of another boot).
    pub fn current_boot_id(&self) -> Option<String> {
        if let Some(b) = &self.boot_id {
            return Some(b.clone());
        }
        // Constant for the life of a boot, so for this process: read once (an ADD asks for it
        // for the record, the bridge and the port).
        static KERNEL_BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        KERNEL_BOOT_ID
            .get_or_init(|| {
                let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
                let id = text.trim();
                (!id.is_empty() && id.len() <= 64).then(|| id.to_owned())
            })
            .clone()
    }
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            state_dir: "/var/lib/cni/userspace".into(),
            kubelet_root: "/var/lib/kubelet".into(),
            short_socket_dir: "/var/lib/vhost_sockets".into(),
            shared_dir: "/var/lib/cni/usrspcni".into(),
            timeout_ms: 10_000,
            deadline_ms: 30_000,
            shared_roots: vec!["/var/lib/cni/usrspcni".into(), "/var/lib/vhost_sockets".into()],
            log_roots: DEFAULT_LOG_ROOTS.iter().map(PathBuf::from).collect(),
            device_info_roots: DEFAULT_DEVICE_INFO_ROOTS.iter().map(PathBuf::from).collect(),
            kubeconfig_files: DEFAULT_KUBECONFIG_FILES.iter().map(PathBuf::from).collect(),
            annotations: AnnotationMode::Auto,
            device_host_dir: None,
            cni_cache_dirs: default_cni_cache_dirs(),
            node_name: None,
            boot_id: None,
            dra: DraSettings::default(),
            engines: BTreeMap::new(),
        }
    }
}
