//! Where a pod's shared directory is: the policy of DESIGN.md §3.2 as one function over a
//! filesystem probe, so every route is a table test. Decides only; the pipeline's probe looks at
//! the node (below the trusted roots, never through a symlink) and the steps create.

use super::device_info::{route_from_given, GivenRoute};
use crate::k8s::{PodView, VolumeSource};
use crate::netconf::NetConf;
use backend_api::spec::{IfType, MemifMode, MemifRole, VhostMode};
use backend_api::{Attachment, CniError, InterfaceSpec, NodeSettings, SharedDir, SocketKind};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What the policy needs to know about the node. The pipeline's implementation resolves every
/// path below its root without following symlinks; tests answer from a table.
pub trait FsProbe {
    /// The document of a device-info file that exists before ADD; `None` when there is none.
    fn device_info(&self, file: &Path) -> Result<Option<Value>, CniError>;
    /// Whether `path` is a directory (a symlink is not).
    fn is_dir(&self, path: &Path) -> bool;
    /// What stands at `path` if something does and it is not a directory ("symlink", ...).
    fn non_dir_at(&self, path: &Path) -> Result<Option<&'static str>, CniError>;
    /// Refuse a config's `sharedDir` that is not a directory of the operator's (a pod's dir, a
    /// recorded attachment's shared dir, a symlink below its root).
    fn check_shared_base(&self, base: &Path) -> Result<(), CniError>;
}

/// Where the pod's shared directory is, and who owns it.
pub struct SharedDirRoute {
    pub dir: SharedDir,
    /// The plugin creates `<base>/<cid12>` and removes it when empty.
    pub managed: bool,
    /// The pod's own `shared-dir` emptyDir (kubelet's), which may need the KubeVirt short alias.
    pub pod_volume: bool,
    /// The pod-side path is the pod's real view (a volumeMount's mountPath or a device-info
    /// file), not the host path standing in for it.
    pub pod_view: bool,
    /// A device-info file existed before ADD and decided the place (with its path).
    pub given: Option<(PathBuf, GivenRoute)>,
}

/// The name of the pod volume the upstream plugin and KubeVirt share sockets through.
const POD_VOLUME: &str = crate::k8s::pod::SHARED_DIR_VOLUME;

/// kubelet's directory of a pod's `shared-dir` emptyDir.
fn empty_dir_path(settings: &NodeSettings, uid: &str) -> Result<PathBuf, CniError> {
    backend_api::names::validate_file_name("the pod uid (CNI_ARGS K8S_POD_UID)", uid)?;
    Ok(settings.kubelet_root.join("pods").join(uid).join("volumes/kubernetes.io~empty-dir").join(POD_VOLUME))
}

/// The socket kind a network's host side asks for.
fn socket_kind(conf: &NetConf) -> Option<SocketKind> {
    match conf.host.iftype? {
        IfType::VhostUser => Some(SocketKind::VhostUser),
        IfType::Memif => Some(SocketKind::Memif),
    }
}

/// Resolve the pod's shared directory (DESIGN.md §3.2), first match wins:
/// 1. a device-info file that exists before ADD (a device plugin wrote it): its path, as the pod
///    sees it, with the host dir from the setting `device_host_dir` for the deviceID;
/// 2. the pod's `shared-dir` volume: from the API when annotation mode read the pod (`pod`:
///    hostPath, or the emptyDir under the kubelet root, seen by the pod at its mountPath), else
///    the emptyDir found by CNI_ARGS K8S_POD_UID (kubelet's: never created or removed by us);
/// 3. `<sharedDir or the shared_dir setting>/<cid12>`, the upstream layout, managed by the plugin.
pub fn shared_dir(
    conf: &NetConf,
    settings: &NodeSettings,
    att: &Attachment,
    pod: Option<&PodView>,
    probe: &dyn FsProbe,
) -> Result<SharedDirRoute, CniError> {
    let group = conf.host.vhost.as_ref().and_then(|v| v.group.clone());
    // Names become ids now, before any side effect (a typo is code 7, not a half-done ADD).
    let permissions = backend_api::perms::resolve(conf.host.permissions.as_ref(), group.as_deref())?;
    if let (Some(file), Some(kind)) = (&conf.runtime_config.device_info_file, socket_kind(conf)) {
        if let Some(doc) = probe.device_info(file)? {
            let device_id = conf.runtime_config.device_id.as_deref().or(conf.device_id.as_deref());
            let iftype = conf.host.iftype.map(IfType::as_str).unwrap_or_default();
            let given = route_from_given(file, &doc, kind, iftype, device_id, settings)?;
            let dir = SharedDir { host: given.host_dir.clone(), pod: given.pod_dir.clone(), group, permissions };
            return Ok(SharedDirRoute {
                dir,
                managed: false,
                pod_volume: false,
                pod_view: true,
                given: Some((file.clone(), given)),
            });
        }
    }
    if let Some(volume) = pod.and_then(|p| p.shared_dir.as_ref()) {
        let (host, pod_volume) = match &volume.source {
            VolumeSource::HostPath(path) => {
                // A pod author (namespace-scoped) must not make the plugin (root) put sockets anywhere.
                let key = "the pod's shared-dir hostPath volume";
                backend_api::names::confine_key(key, path, &settings.shared_roots, "shared_roots")?;
                (backend_api::names::lexical_normal(path), false)
            }
            VolumeSource::EmptyDir => {
                let api_uid = pod.and_then(|p| p.uid.as_deref());
                let uid = att.pod.uid.as_deref().or(api_uid).ok_or_else(|| {
                    CniError::invalid_config(
                        "the pod's shared-dir is an emptyDir but neither CNI_ARGS nor the API gives its uid",
                    )
                })?;
                let path = empty_dir_path(settings, uid)?;
                if !probe.is_dir(&path) {
                    return Err(CniError::invalid_config(format!(
                        "the pod's shared-dir emptyDir {} does not exist on this node; check the setting \
                         kubelet_root ({})",
                        path.display(),
                        settings.kubelet_root.display()
                    )));
                }
                (path, true)
            }
            VolumeSource::Other(kind) => {
                return Err(CniError::invalid_config(format!(
                    "the pod's {POD_VOLUME} volume is a {kind}; sockets can be shared through a hostPath or an \
                     emptyDir volume"
                )))
            }
        };
        if !volume.other_mount_paths.is_empty() {
            let others = &volume.other_mount_paths;
            tracing::warn!(?others, "containers mount {POD_VOLUME} at different paths; publishing the first one's");
        }
        let (pod_path, pod_view) = match &volume.mount_path {
            Some(m) => (m.clone(), true),
            None => {
                tracing::warn!("no container mounts the {POD_VOLUME} volume; publishing the host path");
                (host.clone(), false)
            }
        };
        return Ok(SharedDirRoute {
            dir: SharedDir { host, pod: pod_path, group, permissions },
            managed: false,
            pod_volume,
            pod_view,
            given: None,
        });
    }
    if let Some(uid) = &att.pod.uid {
        let volume = empty_dir_path(settings, uid)?;
        if probe.is_dir(&volume) {
            return Ok(SharedDirRoute {
                dir: SharedDir { pod: volume.clone(), host: volume, group, permissions },
                managed: false,
                pod_volume: true,
                pod_view: false,
                given: None,
            });
        }
    }
    let base: PathBuf = conf.shared_dir.clone().unwrap_or_else(|| settings.shared_dir.clone());
    if let Some(given) = &conf.shared_dir {
        probe.check_shared_base(given)?;
    }
    let host = base.join(att.id.cid12());
    // The dir is pod-writable once it exists: a symlink (or file) planted in its place must not
    // redirect where we create or delete sockets (the steps never follow one; say so up front).
    if let Some(kind) = probe.non_dir_at(&host)? {
        return Err(CniError::invalid_config(format!(
            "shared dir {} exists and is a {kind}, not a directory; refusing to use it: remove it",
            host.display()
        )));
    }
    Ok(SharedDirRoute {
        dir: SharedDir { pod: host.clone(), host, group, permissions },
        managed: true,
        pod_volume: false,
        pod_view: false,
        given: None,
    })
}


/// The host and container specs the backend plans with when a device-info file decided the
/// socket: its file name, and its mode (the workload's) unless the config states one. The parsed
/// config itself is not changed; the record keeps the config as given.
pub fn specs_for_given(conf: &NetConf, given: &GivenRoute) -> (InterfaceSpec, InterfaceSpec) {
    let (mut host, mut container) = (conf.host.clone(), conf.container.clone());
    let stated =
        |spec: &InterfaceSpec, ptr: &str| spec.raw.pointer(ptr).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let info = &given.info;
    match info.kind {
        SocketKind::VhostUser => {
            let workload = if info.mode == "client" { VhostMode::Client } else { VhostMode::Server };
            let (h, c) =
                (host.vhost.get_or_insert_with(Default::default), container.vhost.get_or_insert_with(Default::default));
            if h.socketfile.is_none() {
                h.socketfile = Some(given.socket_name.clone());
                c.socketfile = Some(given.socket_name.clone());
            }
            if !stated(&conf.host, "/vhost/mode") {
                h.mode = Some(workload.inverse());
            }
            if !stated(&conf.container, "/vhost/mode") {
                c.mode = Some(workload);
            }
        }
        SocketKind::Memif => {
            let workload = if info.mode == "master" { MemifRole::Master } else { MemifRole::Slave };
            let mode = match info.memif_mode.as_deref() {
                Some("ip") => Some(MemifMode::Ip),
                Some("inject-punt") => Some(MemifMode::InjectPunt),
                Some("ethernet") => Some(MemifMode::Ethernet),
                _ => None,
            };
            let (h, c) =
                (host.memif.get_or_insert_with(Default::default), container.memif.get_or_insert_with(Default::default));
            if h.socketfile.is_none() {
                h.socketfile = Some(given.socket_name.clone());
                c.socketfile = Some(given.socket_name.clone());
            }
            if !stated(&conf.host, "/memif/role") {
                h.role = Some(workload.inverse());
            }
            if !stated(&conf.container, "/memif/role") {
                c.role = Some(workload);
            }
            if let Some(m) = mode {
                if !stated(&conf.host, "/memif/mode") {
                    h.mode = Some(m);
                }
                if !stated(&conf.container, "/memif/mode") {
                    c.mode = Some(m);
                }
            }
        }
    }
    (host, container)
}

