//! Where a pod's shared directory is: the policy of DESIGN.md §3.2 as one function over a
//! filesystem probe, so every route is a table test. Decides only; the pipeline's probe looks at
//! the node (below the trusted roots, never through a symlink) and the steps create.

use super::device_info::{route_from_given, GivenRoute};
use crate::k8s::{PodView, VolumeSource};
use crate::netconf::NetConf;
use serde_json::Value;
use std::path::{Path, PathBuf};
use userspace_cni_api::spec::{IfType, MemifMode, MemifRole, VhostMode};
use userspace_cni_api::{Attachment, CniError, InterfaceSpec, NodeSettings, SharedDir, SocketKind};

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
#[derive(Debug)]
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
    userspace_cni_support::names::validate_file_name("the pod uid (CNI_ARGS K8S_POD_UID)", uid)?;
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
    let permissions = userspace_cni_support::perms::resolve(conf.host.permissions.as_ref(), group.as_deref())?;
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
                userspace_cni_support::names::confine_key(key, path, &settings.shared_roots, "shared_roots")?;
                (userspace_cni_support::names::lexical_normal(path), false)
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
    // `<shared_dir>/data` holds the upstream plugin's state files (docs/upgrading.md): a
    // container id `data` must not make that the pod's writable dir.
    if userspace_cni_support::names::lexical_normal(&host)
        == userspace_cni_support::names::lexical_normal(&settings.shared_dir.join("data"))
    {
        return Err(CniError::new(
            userspace_cni_api::codes::INVALID_ENV,
            format!(
                "container id {:?} would make {} its shared dir, where the upstream plugin keeps its state; \
                 the runtime must use another id, or the network another sharedDir",
                att.id.container_id,
                host.display()
            ),
        ));
    }
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
/// socket: its file name, and its mode (read from the side `deviceInfoVhostMode` names) unless
/// the config states one. The parsed
/// config itself is not changed; the record keeps the config as given.
pub fn specs_for_given(conf: &NetConf, given: &GivenRoute) -> (InterfaceSpec, InterfaceSpec) {
    let (mut host, mut container) = (conf.host.clone(), conf.container.clone());
    let stated =
        |spec: &InterfaceSpec, ptr: &str| spec.raw.pointer(ptr).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let info = &given.info;
    match info.kind {
        SocketKind::VhostUser => {
            let workload = match info.workload_mode(conf.device_info_vhost_mode) {
                "client" => VhostMode::Client,
                _ => VhostMode::Server,
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::PodVolume;
    use serde_json::json;
    use std::collections::BTreeMap;
    use userspace_cni_api::{codes, AttachmentId, PodRef};

    /// The node as a table: existing dirs, non-dirs (what stands there), device-info documents,
    /// and bases the operator did not make.
    #[derive(Default)]
    struct Table {
        dirs: Vec<PathBuf>,
        non_dirs: BTreeMap<PathBuf, &'static str>,
        docs: BTreeMap<PathBuf, Value>,
        foreign_bases: Vec<PathBuf>,
    }

    impl FsProbe for Table {
        fn device_info(&self, file: &Path) -> Result<Option<Value>, CniError> {
            Ok(self.docs.get(file).cloned())
        }
        fn is_dir(&self, path: &Path) -> bool {
            self.dirs.iter().any(|d| d == path)
        }
        fn non_dir_at(&self, path: &Path) -> Result<Option<&'static str>, CniError> {
            Ok(self.non_dirs.get(path).copied())
        }
        fn check_shared_base(&self, base: &Path) -> Result<(), CniError> {
            match self.foreign_bases.iter().any(|b| b == base) {
                true => Err(CniError::invalid_config(format!("sharedDir {} is a pod's", base.display()))),
                false => Ok(()),
            }
        }
    }

    const UID: &str = "5f0e1c2a-0000-4000-8000-000000000001";

    fn conf(extra: Value) -> NetConf {
        let mut doc = json!({"cniVersion": "1.1.0", "name": "n", "type": "userspace",
            "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "vhost": {"mode": "client"}},
            "container": {"engine": "ovs-dpdk", "iftype": "vhostuser"}});
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        crate::netconf::from_value(doc).expect("config")
    }

    fn att(uid: Option<&str>) -> Attachment {
        Attachment {
            id: AttachmentId::new("0123456789abcdef", "net1"),
            network: "n".into(),
            netns: None,
            pod: PodRef { uid: uid.map(Into::into), ..PodRef::default() },
            mac: None,
        }
    }

    fn empty_dir(s: &NodeSettings) -> PathBuf {
        s.kubelet_root.join("pods").join(UID).join("volumes/kubernetes.io~empty-dir/shared-dir")
    }

    fn pod(source: VolumeSource, mount: Option<&str>) -> PodView {
        PodView {
            uid: Some(UID.into()),
            shared_dir: Some(PodVolume { source, mount_path: mount.map(PathBuf::from), other_mount_paths: Vec::new() }),
        }
    }

    /// (host, pod, managed, pod_volume, pod_view, given) of a route, for comparing in one line.
    fn summary(r: &SharedDirRoute) -> (PathBuf, PathBuf, bool, bool, bool, bool) {
        (r.dir.host.clone(), r.dir.pod.clone(), r.managed, r.pod_volume, r.pod_view, r.given.is_some())
    }

    #[test]
    fn each_route_of_the_policy_as_a_table() {
        let s = NodeSettings::default();
        let managed = s.shared_dir.join("0123456789ab");
        let ed = empty_dir(&s);
        let host_path = PathBuf::from("/var/lib/cni/usrspcni/pods/vm-a");
        let given_file = PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo/dp/dev7.json");
        let given_doc = json!({"type": "vhost-user", "version": "1.1.0",
                               "vhost-user": {"mode": "client", "path": "/var/run/vhost/dev7.sock"}});
        let with_devinfo = json!({"runtimeConfig": {"CNIDeviceInfoFile": given_file, "deviceID": "dev7"}});
        let s_dp = NodeSettings { device_host_dir: Some("/var/lib/vhost-dp/{deviceID}".into()), ..s.clone() };
        type Case<'a> = (
            &'a str,
            NetConf,
            &'a NodeSettings,
            Attachment,
            Option<PodView>,
            Table,
            (PathBuf, PathBuf, bool, bool, bool, bool),
        );
        let cases: Vec<Case> = vec![
            (
                "upstream layout under the shared_dir setting",
                conf(json!({})),
                &s,
                att(None),
                None,
                Table::default(),
                (managed.clone(), managed.clone(), true, false, false, false),
            ),
            (
                "a config's sharedDir",
                conf(json!({"sharedDir": "/var/lib/cni/usrspcni/vms"})),
                &s,
                att(None),
                None,
                Table::default(),
                (
                    PathBuf::from("/var/lib/cni/usrspcni/vms/0123456789ab"),
                    PathBuf::from("/var/lib/cni/usrspcni/vms/0123456789ab"),
                    true,
                    false,
                    false,
                    false,
                ),
            ),
            (
                "the pod's emptyDir found by K8S_POD_UID",
                conf(json!({})),
                &s,
                att(Some(UID)),
                None,
                Table { dirs: vec![ed.clone()], ..Table::default() },
                (ed.clone(), ed.clone(), false, true, false, false),
            ),
            (
                "K8S_POD_UID without an emptyDir falls back to the upstream layout",
                conf(json!({})),
                &s,
                att(Some(UID)),
                None,
                Table::default(),
                (managed.clone(), managed.clone(), true, false, false, false),
            ),
            (
                "the API's emptyDir, seen by the pod at its mountPath",
                conf(json!({})),
                &s,
                att(None),
                Some(pod(VolumeSource::EmptyDir, Some("/var/run/vhost"))),
                Table { dirs: vec![ed.clone()], ..Table::default() },
                (ed.clone(), PathBuf::from("/var/run/vhost"), false, true, true, false),
            ),
            (
                "the API's hostPath under the shared roots",
                conf(json!({})),
                &s,
                att(None),
                Some(pod(VolumeSource::HostPath(host_path.clone()), Some("/sock"))),
                Table::default(),
                (host_path.clone(), PathBuf::from("/sock"), false, false, true, false),
            ),
            (
                "a device plugin's device-info file decides",
                conf(with_devinfo.clone()),
                &s_dp,
                att(None),
                None,
                Table { docs: BTreeMap::from([(given_file.clone(), given_doc.clone())]), ..Table::default() },
                (PathBuf::from("/var/lib/vhost-dp/dev7"), PathBuf::from("/var/run/vhost"), false, false, true, true),
            ),
        ];
        for (name, conf, settings, att, pod, table, want) in cases {
            let r = shared_dir(&conf, settings, &att, pod.as_ref(), &table).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary(&r), want, "{name}");
        }
    }

    #[test]
    fn a_container_id_data_never_gets_the_upstream_state_dir() {
        let s = NodeSettings::default();
        let mut a = att(None);
        a.id = AttachmentId::new("data", "net1");
        let err = shared_dir(&conf(json!({})), &s, &a, None, &Table::default()).expect_err("refused");
        assert_eq!(err.code, codes::INVALID_ENV, "{err}");
        assert!(err.msg.contains("/var/lib/cni/usrspcni/data"), "{err}");
        // Under another sharedDir the name is harmless.
        let c = conf(json!({"sharedDir": "/var/lib/cni/usrspcni/vms"}));
        assert!(shared_dir(&c, &s, &a, None, &Table::default()).is_ok());
    }

    #[test]
    fn refusals_are_code_7_and_name_the_path() {
        let s = NodeSettings::default();
        let managed = s.shared_dir.join("0123456789ab");
        let cases: Vec<(&str, NetConf, Option<PodView>, Table, &str)> = vec![
            (
                "hostPath outside the shared roots",
                conf(json!({})),
                Some(pod(VolumeSource::HostPath("/etc".into()), Some("/x"))),
                Table::default(),
                "/etc",
            ),
            (
                "emptyDir the API names but kubelet has not made",
                conf(json!({})),
                Some(pod(VolumeSource::EmptyDir, Some("/x"))),
                Table::default(),
                "kubelet_root",
            ),
            (
                "a volume that cannot carry sockets",
                conf(json!({})),
                Some(pod(VolumeSource::Other("configMap".into()), Some("/x"))),
                Table::default(),
                "configMap",
            ),
            (
                "a symlink where the managed dir goes",
                conf(json!({})),
                None,
                Table { non_dirs: BTreeMap::from([(managed.clone(), "symlink")]), ..Table::default() },
                "symlink",
            ),
            (
                "a sharedDir that is a pod's dir",
                conf(json!({"sharedDir": "/var/lib/cni/usrspcni/abc"})),
                None,
                Table { foreign_bases: vec!["/var/lib/cni/usrspcni/abc".into()], ..Table::default() },
                "a pod's",
            ),
        ];
        for (name, conf, pod, table, needle) in cases {
            let err = match shared_dir(&conf, &s, &att(None), pod.as_ref(), &table) {
                Ok(r) => panic!("{name}: accepted {:?}", summary(&r)),
                Err(e) => e,
            };
            assert_eq!(err.code, codes::INVALID_NETCONF, "{name}: {err}");
            assert!(err.msg.contains(needle), "{name}: {err}");
        }
    }
}
