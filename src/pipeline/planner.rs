//! Planning an attachment: from a network config and the attachment's identity to the whole
//! `Plan`, with no side effect (the API server may be read, the node is only looked at). Shared by
//! the CNI verbs (ADD, DEL of an upstream attachment) and the operator's `adopt`; knows nothing of
//! the CNI environment.

use crate::cni::args::CniArgs;
use crate::k8s::K8sError;
use crate::netconf::NetConf;
use crate::plan::device_info;
use crate::plan::{
    mapped_dir_of, shared_dir, specs_for_given, step_names, AnnotationPlan, FsProbe, Plan, SharedDirRoute, ShortDir,
};
use crate::state::StateDir;
use crate::steps::config_file;
use crate::steps::ipam::cni_args_text;
use crate::steps::IpamStep;
use serde_json::Value;
use std::path::{Path, PathBuf};
use userspace_cni_api::{Attachment, AttachmentId, Backend, CniError, NodeSettings, PodRef, SharedDir};
use userspace_cni_support::confine::Kind;

/// What a front-end asks the core to plan: the config, who the attachment is for, and what its
/// ADD ran with (CNI_PATH for the IPAM delegate, CNI_ARGS).
pub struct AttachRequest<'a> {
    pub settings: &'a NodeSettings,
    pub conf: &'a NetConf,
    pub attachment: &'a Attachment,
    pub cni_path: &'a [PathBuf],
    pub cni_args: &'a CniArgs,
}

/// The attachment from its id, netns, CNI_ARGS and the config.
pub fn attachment_of(
    id: AttachmentId,
    netns: Option<String>,
    args: &CniArgs,
    conf: &NetConf,
) -> Result<Attachment, CniError> {
    let mac = match &conf.runtime_config.mac {
        Some(m) => Some(userspace_cni_support::names::validate_mac("runtimeConfig.mac", m)?),
        None => args.mac.clone(),
    };
    Ok(Attachment {
        id,
        network: conf.name.clone(),
        netns,
        pod: PodRef {
            namespace: args.k8s_pod_namespace.clone(),
            name: args.k8s_pod_name.clone(),
            uid: args.k8s_pod_uid.clone(),
            infra_container_id: args.k8s_pod_infra_container_id.clone(),
        },
        mac,
    })
}

/// The node as the shared-dir policy sees it: every path resolved below its trusted root without
/// following a symlink (docs/security.md).
struct NodeProbe<'a> {
    settings: &'a NodeSettings,
}

impl FsProbe for NodeProbe<'_> {
    fn device_info(&self, file: &Path) -> Result<Option<Value>, CniError> {
        Ok(crate::steps::device_info::read_existing(self.settings, file)?)
    }

    fn is_dir(&self, path: &Path) -> bool {
        userspace_cni_support::confine::socket_dir(self.settings, path).is_ok()
    }

    fn non_dir_at(&self, path: &Path) -> Result<Option<&'static str>, CniError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return Ok(None) };
        let Some(dir) = crate::steps::shared_dir::open_existing(self.settings, parent)? else { return Ok(None) };
        Ok(match dir.entry(name) {
            Ok(Some(e)) if e.kind != Kind::Dir => Some(e.kind.as_str()),
            _ => None,
        })
    }

    fn check_shared_base(&self, base: &Path) -> Result<(), CniError> {
        check_shared_base(base, self.settings)
    }
}

/// A config's `sharedDir` below a shared root must be the operator's directory, never a pod's: each
/// existing component below the root is a real directory, owned by root and not writable by group
/// or others, and none is (or lies in) the shared dir of a recorded attachment, whose per-pod dir
/// is the pod's to write (docs/security.md).
fn check_shared_base(base: &Path, settings: &NodeSettings) -> Result<(), CniError> {
    use userspace_cni_support::confine::{Dir, Kind};
    let c = userspace_cni_support::names::confine_key("sharedDir", base, &settings.shared_roots, "shared_roots")?;
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
                Err(e) => return Err(refuse(&at, userspace_cni_support::confine::explain(&e))),
            }
            cur = cur
                .open_dir(std::path::Path::new(part))
                .map_err(|e| refuse(&at, userspace_cni_support::confine::explain(&e)))?;
        }
    }
    let normal = userspace_cni_support::names::lexical_normal(base);
    for record in StateDir::at(&settings.state_dir).list_records()?.into_iter().flatten() {
        let dirs = record.plan.shared_dir.iter().map(|d| &d.host).chain(record.plan.short_dir.iter().map(|d| &d.long));
        for dir in dirs {
            if normal.starts_with(userspace_cni_support::names::lexical_normal(dir)) {
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

/// Compute the whole plan without side effects: backend validation, identifiers, path limits.
/// In annotation mode this reads the pod from the API (read-only, bounded by the settings).
pub async fn make_plan(req: &AttachRequest<'_>, backend: &dyn Backend) -> Result<Plan, CniError> {
    let (settings, conf, att) = (req.settings, req.conf, req.attachment);
    let mut api = crate::steps::annotations::wanted(conf.kubeconfig.as_deref(), settings, &att.pod)?;
    let mut pod_view = None;
    if let Some((access, pod)) = &api {
        let budget = userspace_cni_api::Budget::of_settings(settings);
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
        shared_dir(conf, settings, att, pod_view.as_ref(), &NodeProbe { settings })?;
    let (host_spec, container_spec) = match &given {
        Some((_, g)) => specs_for_given(conf, g),
        None => (conf.host.clone(), conf.container.clone()),
    };
    let plan_with = |dir: &SharedDir| {
        backend.plan(&userspace_cni_api::PlanRequest {
            attachment: att,
            host: &host_spec,
            container: &container_spec,
            shared_dir: dir,
            settings,
            socket_name_from_device_plugin: given.is_some(),
        })
    };
    let mut backend_plan = plan_with(&dir)?;
    let mut short_dir = None;
    // KubeVirt: kubelet's emptyDir path is too deep for sun_path; address the sockets through
    // `<short_socket_dir>/<pod uid>`, bind-mounted onto it (the pod still sees its own volume).
    let too_long = backend_plan
        .socket
        .as_ref()
        .is_some_and(|s| userspace_cni_support::names::check_sun_path("socket path", &s.host_path).is_err());
    if pod_volume && too_long {
        let uid = att.pod.uid.clone().or_else(|| pod_view.as_ref().and_then(|v| v.uid.clone()));
        if let Some(uid) = uid {
            userspace_cni_support::names::validate_file_name("the pod uid", &uid)?;
            let short = settings.short_socket_dir.join(&uid);
            short_dir = Some(ShortDir { short: short.clone(), long: dir.host.clone() });
            // Without the pod's own view (no API), the short path stands in for it as before.
            let pod = if pod_side_known { dir.pod.clone() } else { short.clone() };
            dir = SharedDir { host: short, pod, group: dir.group.clone(), permissions: dir.permissions.clone() };
            backend_plan = plan_with(&dir)?;
        }
    }
    if let Some(sock) = &backend_plan.socket {
        userspace_cni_support::names::check_sun_path("socket path", &sock.host_path)?;
        userspace_cni_support::names::check_sun_path("socket path (as the pod sees it)", &sock.pod_path)?;
    }
    if let Some((file, g)) = &given {
        let sock = backend_plan.socket.as_ref().ok_or_else(|| {
            CniError::invalid_config(format!(
                "device-info file {} describes a socket, but this network's backend plans none",
                file.display()
            ))
        })?;
        device_info::check_honoured(file, &g.info, sock, conf.device_info_vhost_mode)?;
    }
    // The IPAM plugin must exist before the first side effect (code 7 otherwise).
    let ipam = IpamStep::new(&conf.raw, conf.ipam.as_ref(), req.cni_path, cni_args_text(req.cni_args))?;
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
        device_info_vhost_mode: conf.device_info_vhost_mode,
        annotations,
        config_file,
        ipam: conf.ipam.clone(),
        cni_path: ipam.as_ref().map(|s| s.cni_path.clone()).unwrap_or_default(),
        cni_args: ipam.and_then(|s| s.cni_args),
        dra: None,
        steps: Vec::new(),
    };
    plan.steps = step_names(&plan, backend)?;
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
    userspace_cni_support::perms::check_dir_target(real, &bases)?;
    if let Some(ctx) = &access.selinux_context {
        userspace_cni_support::perms::check_labels_supported(real, ctx)?;
    }
    Ok(())
}
