//! Planning shared by the verbs: backend selection, the attachment and shared dir from env and
//! config, and the one function that turns a plan into the ordered step list (ADD applies it,
//! DEL undoes it), so ADD and DEL can never disagree about what exists.

use crate::k8s::{K8sError, PodView, VolumeSource};
use crate::netconf::NetConf;
use crate::pipeline::SaveState;
use crate::plan::{Plan, Record};
use crate::state::StateDir;
use crate::steps::annotations::{mapped_dir_of, AnnotationPlan, AnnotationStep};
use crate::steps::config_file::{self, ConfigFileStep};
use crate::steps::device_info::{self, DeviceInfo, DeviceInfoStep, GivenRoute};
use crate::steps::ipam::cni_args_text;
use crate::steps::short_dir::{ShortDir, ShortDirStep};
use crate::steps::{IpamStep, SharedDirStep};
use backend_api::spec::{IfType, MemifMode, MemifRole, VhostMode};
use backend_api::{
    codes, Attachment, AttachmentId, Backend, BackendRegistration, CniError, InterfaceSpec, NodeSettings, PodRef,
    SharedDir, SocketKind, Step,
};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;

use super::Invocation;

/// The backends this binary can select (inventory's plus any a test binary adds).
pub struct Registry {
    regs: Vec<&'static BackendRegistration>,
}

impl Registry {
    /// Every backend linked into the binary. Naming each backend crate here makes the linker keep
    /// it: a dependency nothing refers to can be dropped with its `inventory` registration.
    pub fn linked() -> Registry {
        std::hint::black_box([backend_ovs_dpdk::ENGINE, backend_vpp::ENGINE]);
        Registry { regs: backend_api::registered() }
    }

    /// Add registrations that are not in `inventory` (the test kit's recording backend).
    pub fn with_extra(mut self, extra: &[&'static BackendRegistration]) -> Registry {
        self.regs.extend_from_slice(extra);
        self.regs.sort_by_key(|r| r.engine);
        self
    }

    pub fn engines(&self) -> Vec<&'static str> {
        self.regs.iter().map(|r| r.engine).collect()
    }

    pub fn registrations(&self) -> &[&'static BackendRegistration] {
        &self.regs
    }

    pub fn get(&self, engine: &str) -> Result<Box<dyn Backend>, CniError> {
        self.regs.iter().find(|r| r.engine == engine).map(|r| (r.make)()).ok_or_else(|| {
            CniError::invalid_config(format!(
                "host.engine {engine:?} is not a known engine; this binary supports: {}",
                self.engines().join(", ")
            ))
        })
    }
}

/// The engine named by the config (validated as present by netconf).
pub fn engine_of(conf: &NetConf) -> Result<&str, CniError> {
    conf.host
        .engine
        .as_deref()
        .ok_or_else(|| CniError::invalid_config("host.engine is required (one of: ovs-dpdk, vpp)"))
}

/// (CNI_CONTAINERID, CNI_IFNAME): the env parser already required them for ADD, DEL and CHECK.
pub fn attachment_id(inv: &Invocation<'_>) -> Result<AttachmentId, CniError> {
    let env = inv.env;
    Ok(AttachmentId::new(
        env.container_id.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_CONTAINERID is required"))?,
        env.ifname.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_IFNAME is required"))?,
    ))
}

/// The attachment from the environment, CNI_ARGS and the config.
pub fn attachment(inv: &Invocation<'_>, conf: &NetConf) -> Result<Attachment, CniError> {
    let env = inv.env;
    let id = attachment_id(inv)?;
    let args = &env.args;
    let mac = match &conf.runtime_config.mac {
        Some(m) => Some(backend_api::names::validate_mac("runtimeConfig.mac", m)?),
        None => args.mac.clone(),
    };
    Ok(Attachment {
        id,
        network: conf.name.clone(),
        netns: env.netns.clone(),
        pod: PodRef {
            namespace: args.k8s_pod_namespace.clone(),
            name: args.k8s_pod_name.clone(),
            uid: args.k8s_pod_uid.clone(),
            infra_container_id: args.k8s_pod_infra_container_id.clone(),
        },
        mac,
    })
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
) -> Result<SharedDirRoute, CniError> {
    let group = conf.host.vhost.as_ref().and_then(|v| v.group.clone());
    // Names become ids now, before any side effect (a typo is code 7, not a half-done ADD).
    let permissions = backend_api::perms::resolve(conf.host.permissions.as_ref(), group.as_deref())?;
    if let (Some(file), Some(kind)) = (&conf.runtime_config.device_info_file, socket_kind(conf)) {
        if let Some(doc) = device_info::read_existing(settings, file)? {
            let device_id = conf.runtime_config.device_id.as_deref().or(conf.device_id.as_deref());
            let iftype = conf.host.iftype.map(IfType::as_str).unwrap_or_default();
            let given = device_info::route_from_given(file, &doc, kind, iftype, device_id, settings)?;
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
                if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
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
        if std::fs::symlink_metadata(&volume).is_ok_and(|m| m.is_dir()) {
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
        check_shared_base(given, settings)?;
    }
    let host = base.join(att.id.cid12());
    // The dir is pod-writable once it exists: a symlink (or file) planted in its place must not
    // redirect where we create or delete sockets (the steps never follow one; say so up front).
    if let Some(parent) = crate::steps::shared_dir::open_existing(settings, &base)? {
        match parent.entry(std::ffi::OsStr::new(att.id.cid12())) {
            Ok(Some(e)) if e.kind != backend_api::confine::Kind::Dir => {
                return Err(CniError::invalid_config(format!(
                    "shared dir {} exists and is a {}, not a directory; refusing to use it: remove it",
                    host.display(),
                    e.kind.as_str()
                )))
            }
            _ => {}
        }
    }
    Ok(SharedDirRoute {
        dir: SharedDir { pod: host.clone(), host, group, permissions },
        managed: true,
        pod_volume: false,
        pod_view: false,
        given: None,
    })
}

/// A config's `sharedDir` below a shared root must be the operator's directory, never a pod's: each
/// existing component below the root is a real directory, owned by root and not writable by group
/// or others, and none is (or lies in) the shared dir of a recorded attachment, whose per-pod dir
/// is the pod's to write (docs/security.md).
fn check_shared_base(base: &std::path::Path, settings: &NodeSettings) -> Result<(), CniError> {
    use backend_api::confine::{Dir, Kind};
    let c = backend_api::names::confine_key("sharedDir", base, &settings.shared_roots, "shared_roots")?;
    if c.rel.as_os_str().is_empty() {
        return Ok(());
    }
    let refuse = |at: &std::path::Path, why: String| {
        CniError::invalid_config(format!(
            "sharedDir {} passes through {}, which {why}; sharedDir must name a directory of the operator's \
             below {} (never a pod's own dir)",
            base.display(),
            at.display(),
            c.root.display()
        ))
    };
    if let Ok(mut cur) = Dir::root(&c.root) {
        let mut at = c.root.clone();
        for part in c.rel.iter() {
            at.push(part);
            match cur.entry(part) {
                Ok(None) => break,
                Ok(Some(e)) if e.kind != Kind::Dir => return Err(refuse(&at, format!("is a {}", e.kind.as_str()))),
                Ok(Some(e)) if e.uid != 0 => return Err(refuse(&at, format!("is owned by uid {}", e.uid))),
                Ok(Some(e)) if e.mode & 0o022 != 0 => {
                    return Err(refuse(&at, format!("is writable by group or others (mode {:04o})", e.mode)))
                }
                Ok(Some(_)) => {}
                Err(e) => return Err(refuse(&at, backend_api::confine::explain(&e))),
            }
            cur =
                cur.open_dir(std::path::Path::new(part)).map_err(|e| refuse(&at, backend_api::confine::explain(&e)))?;
        }
    }
    let normal = backend_api::names::lexical_normal(base);
    for record in StateDir::at(&settings.state_dir).list_records()?.into_iter().flatten() {
        let dirs = record.plan.shared_dir.iter().map(|d| &d.host).chain(record.plan.short_dir.iter().map(|d| &d.long));
        for dir in dirs {
            if normal.starts_with(backend_api::names::lexical_normal(dir)) {
                return Err(refuse(
                    dir,
                    format!(
                        "is the shared dir of attachment {}/{}",
                        record.attachment.id.container_id, record.attachment.id.ifname
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The host and container specs the backend plans with when a device-info file decided the
/// socket: its file name, and its mode (the workload's) unless the config states one. The parsed
/// config itself is not changed; the record keeps the config as given.
fn specs_for_given(conf: &NetConf, given: &GivenRoute) -> (InterfaceSpec, InterfaceSpec) {
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

/// Compute the whole plan without side effects: backend validation, identifiers, path limits.
/// In annotation mode this reads the pod from the API (read-only, bounded by the settings).
pub async fn make_plan(
    inv: &Invocation<'_>,
    conf: &NetConf,
    backend: &dyn Backend,
    att: &Attachment,
) -> Result<Plan, CniError> {
    let settings = inv.settings;
    let mut api = crate::steps::annotations::wanted(conf.kubeconfig.as_deref(), settings, &att.pod)?;
    let mut pod_view = None;
    if let Some((access, pod)) = &api {
        let budget = crate::k8s::Budget { deadline: Instant::now() + settings.deadline(), timeout: settings.timeout() };
        pod_view = crate::steps::annotations::read_pod(access, pod, budget).await?;
        if pod_view.is_none() {
            api = None;
        }
    }
    if let (Some(view), Some(args_uid)) = (&pod_view, &att.pod.uid) {
        if let Some(api_uid) = view.uid.as_ref().filter(|u| *u != args_uid) {
            let pod = api.as_ref().map(|(_, p)| p.to_string()).unwrap_or_default();
            return Err(K8sError::PodReplaced { pod, api_uid: api_uid.clone(), args_uid: args_uid.clone() }.into());
        }
    }
    let SharedDirRoute { mut dir, managed, pod_volume, pod_view: pod_side_known, given } =
        shared_dir(conf, settings, att, pod_view.as_ref())?;
    let (host_spec, container_spec) = match &given {
        Some((_, g)) => specs_for_given(conf, g),
        None => (conf.host.clone(), conf.container.clone()),
    };
    let plan_with = |dir: &SharedDir| {
        backend.plan(&backend_api::PlanRequest {
            attachment: att,
            host: &host_spec,
            container: &container_spec,
            shared_dir: dir,
            settings,
        })
    };
    let mut backend_plan = plan_with(&dir)?;
    let mut short_dir = None;
    // KubeVirt: kubelet's emptyDir path is too deep for sun_path; address the sockets through
    // `<short_socket_dir>/<pod uid>`, bind-mounted onto it (the pod still sees its own volume).
    let too_long = backend_plan
        .socket
        .as_ref()
        .is_some_and(|s| backend_api::names::check_sun_path("socket path", &s.host_path).is_err());
    if pod_volume && too_long {
        let uid = att.pod.uid.clone().or_else(|| pod_view.as_ref().and_then(|v| v.uid.clone()));
        if let Some(uid) = uid {
            backend_api::names::validate_file_name("the pod uid", &uid)?;
            let short = settings.short_socket_dir.join(&uid);
            short_dir = Some(ShortDir { short: short.clone(), long: dir.host.clone() });
            // Without the pod's own view (no API), the short path stands in for it as before.
            let pod = if pod_side_known { dir.pod.clone() } else { short.clone() };
            dir = SharedDir { host: short, pod, group: dir.group.clone(), permissions: dir.permissions.clone() };
            backend_plan = plan_with(&dir)?;
        }
    }
    if let Some(sock) = &backend_plan.socket {
        backend_api::names::check_sun_path("socket path", &sock.host_path)?;
        backend_api::names::check_sun_path("socket path (as the pod sees it)", &sock.pod_path)?;
    }
    if let Some((file, g)) = &given {
        let sock = backend_plan.socket.as_ref().ok_or_else(|| {
            CniError::invalid_config(format!(
                "device-info file {} describes a socket, but this network's backend plans none",
                file.display()
            ))
        })?;
        device_info::check_honoured(file, &g.info, sock)?;
    }
    // The IPAM plugin must exist before the first side effect (code 7 otherwise).
    let ipam = IpamStep::new(&conf.raw, conf.ipam.as_ref(), &inv.env.path, cni_args_text(&inv.env.args))?;
    if let Some(step) = &ipam {
        step.locate()?;
    }
    let uses = backend_plan.uses_shared_dir;
    if uses {
        check_permissions(&dir, short_dir.as_ref(), settings)?;
    }
    let socket_pod_path = backend_plan.socket.as_ref().map(|s| s.pod_path.clone());
    let annotations = match (api, &socket_pod_path) {
        (Some((access, pod)), Some(p)) => Some(AnnotationPlan {
            access,
            pod,
            uid: att.pod.uid.clone().or_else(|| pod_view.as_ref().and_then(|v| v.uid.clone())),
            mapped_dir: mapped_dir_of(p),
        }),
        _ => None,
    };
    // Without annotations, the pod reads the same data from a file in its shared dir.
    let config_file = match (&annotations, uses, &backend_plan.socket) {
        (None, true, Some(_)) => Some(dir.host.join(config_file::file_name(att))),
        _ => None,
    };
    let mut plan = Plan {
        engine: backend.engine().to_owned(),
        shared_dir: uses.then_some(dir),
        creates_shared_dir: uses && managed,
        short_dir: if uses { short_dir } else { None },
        backend: backend_plan,
        device_info_file: conf.runtime_config.device_info_file.clone(),
        device_info_given: given.is_some(),
        annotations,
        config_file,
        ipam: conf.ipam.clone(),
        cni_path: ipam.as_ref().map(|s| s.cni_path.clone()).unwrap_or_default(),
        cni_args: ipam.and_then(|s| s.cni_args),
        steps: Vec::new(),
    };
    plan.steps = step_names(backend, &plan)?;
    Ok(plan)
}

/// `host.permissions` on the dir that will get them (docs/permissions.md): never a base every pod
/// shares, and an SELinux label only on a filesystem that keeps labels (a read-only probe). With a
/// short dir, the settings reach the pod's own dir through the bind mount.
fn check_permissions(dir: &SharedDir, short: Option<&ShortDir>, settings: &NodeSettings) -> Result<(), CniError> {
    let access = &dir.permissions.dir;
    if access.is_empty() {
        return Ok(());
    }
    let real = short.map(|s| &s.long).unwrap_or(&dir.host);
    let bases = settings.socket_dir_roots();
    backend_api::perms::check_dir_target(real, &bases)?;
    if let Some(ctx) = &access.selinux_context {
        backend_api::perms::check_labels_supported(real, ctx)?;
    }
    Ok(())
}

fn step_names(backend: &dyn Backend, plan: &Plan) -> Result<Vec<String>, CniError> {
    let mut names = Vec::new();
    if plan.short_dir.is_some() {
        names.push("short-dir".into());
    }
    if plan.shared_dir.is_some() {
        names.push("shared-dir".into());
    }
    if crate::steps::ipam::plugin_type(plan.ipam.as_ref())?.is_some() {
        names.push("ipam".into());
    }
    names.extend(backend.steps(&plan.backend)?.iter().map(|s| s.name().to_owned()));
    names.extend(publication(plan).into_iter().map(str::to_owned));
    names.push("save-state".into());
    Ok(names)
}

/// The ordered ADD steps for a plan; DEL undoes the same list in reverse.
pub fn build_steps(backend: &dyn Backend, state: &StateDir, record: &Record) -> Result<Vec<Box<dyn Step>>, CniError> {
    let plan = &record.plan;
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    if let Some(short) = &plan.short_dir {
        steps.push(Box::new(ShortDirStep { dir: short.clone(), state: state.clone() }));
    }
    if let Some(dir) = &plan.shared_dir {
        let files = plan.backend.socket.iter().map(|s| s.host_path.clone()).collect();
        steps.push(Box::new(SharedDirStep { dir: dir.clone(), managed: plan.creates_shared_dir, files }));
    }
    // Before the dataplane steps: a backend may need the addresses (DESIGN.md §3.2).
    if let Some(ipam) = IpamStep::from_record(record)? {
        steps.push(Box::new(ipam));
    }
    steps.extend(backend.steps(&plan.backend)?);
    // Publication last (DESIGN.md §3.2): it describes what the steps above made.
    for name in publication(plan) {
        let step: Box<dyn Step> = match (name, &plan.backend.socket) {
            ("device-info", Some(socket)) => Box::new(DeviceInfoStep {
                file: plan.device_info_file.clone().unwrap_or_default(),
                info: DeviceInfo::of_socket(socket),
                given: plan.device_info_given,
            }),
            ("config-file", _) => Box::new(ConfigFileStep {
                path: plan.config_file.clone().unwrap_or_default(),
                config: record.config.clone(),
                cni_version: record.cni_version.clone(),
            }),
            ("annotations", _) => match &plan.annotations {
                Some(a) => Box::new(AnnotationStep {
                    plan: a.clone(),
                    config: record.config.clone(),
                    cni_version: record.cni_version.clone(),
                }),
                None => continue,
            },
            _ => continue,
        };
        steps.push(step);
    }
    steps.push(Box::new(SaveState { state: state.clone(), record: record.clone() }));
    Ok(steps)
}

/// The publication steps of a plan, in order: device-info (when the runtime asked and there is
/// a socket), the config file (no annotations), the annotations (compatibility mode).
fn publication(plan: &Plan) -> Vec<&'static str> {
    let mut names = Vec::new();
    if plan.device_info_file.is_some() && plan.backend.socket.is_some() {
        names.push("device-info");
    }
    if plan.config_file.is_some() {
        names.push("config-file");
    }
    if plan.annotations.is_some() {
        names.push("annotations");
    }
    names
}
