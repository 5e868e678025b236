//! Planning shared by the verbs: backend selection, the attachment and shared dir from env and
//! config, and the one function that turns a plan into the ordered step list (ADD applies it,
//! DEL undoes it), so ADD and DEL can never disagree about what exists.

use crate::netconf::NetConf;
use crate::pipeline::SaveState;
use crate::state::{Plan, Record, StateDir};
use crate::steps::ipam::cni_args_text;
use crate::steps::short_dir::{ShortDir, ShortDirStep};
use crate::steps::{IpamStep, SharedDirStep};
use backend_api::{
    codes, Attachment, AttachmentId, Backend, BackendRegistration, CniError, NodeSettings, PodRef, SharedDir, Step,
};
use std::path::PathBuf;

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

/// The attachment from the environment, CNI_ARGS and the config.
pub fn attachment(inv: &Invocation<'_>, conf: &NetConf) -> Result<Attachment, CniError> {
    let env = inv.env;
    let container_id =
        env.container_id.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_CONTAINERID is required"))?;
    let ifname = env.ifname.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_IFNAME is required"))?;
    let args = &env.args;
    let mac = match &conf.runtime_config.mac {
        Some(m) => Some(backend_api::names::validate_mac("runtimeConfig.mac", m)?),
        None => args.mac.clone(),
    };
    Ok(Attachment {
        id: AttachmentId::new(container_id, ifname),
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
}

/// The name of the pod volume the upstream plugin and KubeVirt share sockets through.
const POD_VOLUME: &str = "shared-dir";

/// Resolve the pod's shared directory (DESIGN.md §3.2), first match wins:
/// 1. the pod's `shared-dir` emptyDir under the kubelet root, when CNI_ARGS names the pod uid and
///    kubelet has created it (owned by kubelet: never created or removed by us);
/// 2. `<sharedDir or the shared_dir setting>/<cid12>`, the upstream layout, managed by the plugin.
pub fn shared_dir(conf: &NetConf, settings: &NodeSettings, att: &Attachment) -> Result<SharedDirRoute, CniError> {
    let group = conf.host.vhost.as_ref().and_then(|v| v.group.clone());
    if let Some(uid) = &att.pod.uid {
        backend_api::names::validate_file_name("CNI_ARGS K8S_POD_UID", uid)?;
        let volume =
            settings.kubelet_root.join("pods").join(uid).join("volumes/kubernetes.io~empty-dir").join(POD_VOLUME);
        if std::fs::symlink_metadata(&volume).is_ok_and(|m| m.is_dir()) {
            return Ok(SharedDirRoute {
                dir: SharedDir { pod: volume.clone(), host: volume, group },
                managed: false,
                pod_volume: true,
            });
        }
    }
    let base: PathBuf = conf.shared_dir.clone().unwrap_or_else(|| settings.shared_dir.clone());
    let host = base.join(att.id.cid12());
    Ok(SharedDirRoute { dir: SharedDir { pod: host.clone(), host, group }, managed: true, pod_volume: false })
}

/// Compute the whole plan without side effects: backend validation, identifiers, path limits.
pub fn make_plan(
    inv: &Invocation<'_>,
    conf: &NetConf,
    backend: &dyn Backend,
    att: &Attachment,
) -> Result<Plan, CniError> {
    let SharedDirRoute { mut dir, managed, pod_volume } = shared_dir(conf, inv.settings, att)?;
    let plan_with = |dir: &SharedDir| {
        backend.plan(&backend_api::PlanRequest {
            attachment: att,
            host: &conf.host,
            container: &conf.container,
            shared_dir: dir,
            settings: inv.settings,
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
        if let Some(uid) = &att.pod.uid {
            let short = inv.settings.short_socket_dir.join(uid);
            short_dir = Some(ShortDir { short: short.clone(), long: dir.host.clone() });
            dir = SharedDir { host: short.clone(), pod: short, group: dir.group.clone() };
            backend_plan = plan_with(&dir)?;
        }
    }
    if let Some(sock) = &backend_plan.socket {
        backend_api::names::check_sun_path("socket path", &sock.host_path)?;
        backend_api::names::check_sun_path("socket path (as the pod sees it)", &sock.pod_path)?;
    }
    // The IPAM plugin must exist before the first side effect (code 7 otherwise).
    let ipam = IpamStep::new(&conf.raw, conf.ipam.as_ref(), &inv.env.path, cni_args_text(&inv.env.args))?;
    if let Some(step) = &ipam {
        step.locate()?;
    }
    let uses = backend_plan.uses_shared_dir;
    let mut plan = Plan {
        engine: backend.engine().to_owned(),
        shared_dir: uses.then_some(dir),
        creates_shared_dir: uses && managed,
        short_dir: if uses { short_dir } else { None },
        backend: backend_plan,
        device_info_file: conf.runtime_config.device_info_file.clone(),
        ipam: conf.ipam.clone(),
        cni_path: ipam.as_ref().map(|s| s.cni_path.clone()).unwrap_or_default(),
        cni_args: ipam.and_then(|s| s.cni_args),
        steps: Vec::new(),
    };
    plan.steps = step_names(backend, &plan)?;
    Ok(plan)
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
    steps.push(Box::new(SaveState { state: state.clone(), record: record.clone() }));
    Ok(steps)
}
