//! Node-level settings as plain data (DESIGN.md §6). The plugin loads them (defaults < file <
//! environment); backends only read them. Every host path the plugin touches is here, so tests
//! run under a temporary root.

use serde::{Deserialize, Serialize};
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
    /// OVSDB endpoint, `unix:/path`.
    pub ovsdb: String,
    pub ovs_sock_dir: PathBuf,
    pub vpp_api_socket: PathBuf,
    pub kubelet_root: PathBuf,
    pub short_socket_dir: PathBuf,
    pub shared_dir: PathBuf,
    pub timeout_ms: u64,
    pub deadline_ms: u64,
    pub allowed_roots: Vec<PathBuf>,
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
}

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

    /// The OVSDB unix socket path, if the endpoint is `unix:`.
    pub fn ovsdb_socket(&self) -> Option<PathBuf> {
        self.ovsdb.strip_prefix("unix:").map(PathBuf::from)
    }
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            state_dir: "/var/lib/cni/userspace".into(),
            ovsdb: "unix:/var/run/openvswitch/db.sock".into(),
            ovs_sock_dir: "/var/run/openvswitch".into(),
            vpp_api_socket: "/run/vpp/api.sock".into(),
            kubelet_root: "/var/lib/kubelet".into(),
            short_socket_dir: "/var/lib/vhost_sockets".into(),
            shared_dir: "/var/lib/cni/usrspcni".into(),
            timeout_ms: 10_000,
            deadline_ms: 30_000,
            allowed_roots: vec![
                "/var/lib/cni/usrspcni".into(),
                "/var/lib/vhost_sockets".into(),
                "/var/log/userspace-cni".into(),
                "/etc/cni/net.d".into(),
            ],
            annotations: AnnotationMode::Auto,
            device_host_dir: None,
            cni_cache_dirs: default_cni_cache_dirs(),
        }
    }
}
