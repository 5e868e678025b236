//! A minimal backend to copy from (docs/backend-authors.md walks through it): engine `template`,
//! whose "dataplane" is a directory of JSON files, so it really creates and removes things.
//! A bridge is a directory `<root>/bridges/<bridge>/` (ours when it holds `owner.json`), a port
//! a file `<bridge>/<port>.json` naming its attachment. A file `<root>/down` stands for a
//! daemon that is not running. Never writes outside its root.
//!
//! The root is this engine's own node setting, `root` in `[engines.template]` (declared in
//! `SETTINGS`, read with `NodeSettings::engine`): how a backend gets an endpoint or a directory
//! without a change to the plugin.

use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use userspace_cni_api::failpoint::{self, Phase};
use userspace_cni_api::spec::{IfType, NetType, VhostMode};
use userspace_cni_api::{
    async_trait, codes, AttachmentId, Backend, BackendRegistration, CniError, HostInterface, Mount, NodeSettings,
    OwnedObject, PlanRequest, Planned, Propagation, Repair, SettingKind, SettingSpec, SocketDescriptor, SocketKind,
    Step, StepContext, Typed, TypedBackend, Verb,
};

/// The `host.engine` value this backend serves.
pub const ENGINE: &str = "template";
/// Ownership tag: only objects carrying it are ever deleted.
const OWNER: &str = "userspace-cni";

/// Why a template operation failed; mapped to a CNI code in one place (`From` below).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("host.{key}: {why}")]
    Config { key: &'static str, why: String },
    #[error("the template dataplane at {root} is down: start it, then retry")]
    Down { root: PathBuf },
    #[error("port {port} on bridge {bridge} belongs to {owner}: choose another container or remove it")]
    Collision { port: String, bridge: String, owner: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("port {port} is missing from bridge {bridge}")]
    Missing { port: String, bridge: String },
}

impl From<TemplateError> for CniError {
    fn from(e: TemplateError) -> Self {
        let code = match &e {
            TemplateError::Config { .. } => codes::UNSUPPORTED_FIELD,
            // 11: the runtime retries; the plugin stops trying this engine for a while.
            TemplateError::Down { .. } => codes::TRY_AGAIN_LATER,
            TemplateError::Collision { .. } => codes::NAME_COLLISION,
            TemplateError::Io { .. } | TemplateError::Missing { .. } => codes::IO_FAILURE,
        };
        CniError::new(code, e.to_string())
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TemplateError + 'a {
    move |source| TemplateError::Io { what, path: path.to_path_buf(), source }
}

/// Everything the steps need, computed without side effects and stored in the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplatePlan {
    pub bridge: String,
    pub port: String,
}

/// What a port file holds: its attachment, so undo never removes another's port by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortFile {
    pub owner: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

/// The dataplane root, `root = "/var/lib/userspace-cni-template"` in `[engines.template]` (or
/// `USERSPACE_CNI_TEMPLATE_ROOT`). The loader checks it is an absolute path without `..`
/// (`SettingKind::Dir`) before this backend sees it.
pub const ROOT: SettingSpec = SettingSpec {
    key: "root",
    kind: SettingKind::Dir,
    default: "/var/lib/userspace-cni-template",
    doc: "the template dataplane's directory (bridges and ports as files)",
    // A new setting has no older flat spelling.
    legacy_key: None,
    // The reconciler removes ports here, so a DaemonSet running this engine mounts it.
    mount: Some(Mount {
        volume: "template-root",
        dir: "/var/lib/userspace-cni-template",
        propagation: Propagation::None,
        read_only: false,
        must_exist: false,
        why: "the template dataplane: bridges and ports the reconciler removes for orphans",
    }),
};

/// Every setting this backend reads, listed on its registration (below).
pub const SETTINGS: &[SettingSpec] = &[ROOT];

/// The dataplane root of a node.
pub fn root(settings: &NodeSettings) -> PathBuf {
    settings.engine(ENGINE).path(&ROOT)
}

fn bridge_dir(settings: &NodeSettings, bridge: &str) -> PathBuf {
    root(settings).join("bridges").join(bridge)
}

fn port_path(settings: &NodeSettings, plan: &TemplatePlan) -> PathBuf {
    bridge_dir(settings, &plan.bridge).join(format!("{}.json", plan.port))
}

fn ensure_up(settings: &NodeSettings) -> Result<(), TemplateError> {
    let root = root(settings);
    if root.join("down").exists() {
        return Err(TemplateError::Down { root });
    }
    Ok(())
}

fn read_port(path: &Path) -> Result<Option<PortFile>, TemplateError> {
    match std::fs::read(path) {
        Ok(b) => Ok(serde_json::from_slice(&b).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read port", path)(e)),
    }
}

fn is_ours(p: &PortFile, id: &AttachmentId) -> bool {
    p.owner == OWNER && p.container_id == id.container_id && p.ifname == id.ifname
}

/// Remove `path`; "not found" is success (every undo's rule).
fn remove_if_present(path: &Path, what: &'static str) -> Result<(), TemplateError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(what, path)(e)),
        _ => Ok(()),
    }
}

pub struct TemplateBackend;

/// Written against its own plan type; `Typed` (at registration, below) stores it in the record
/// and decodes it back, so no method here sees JSON.
#[async_trait]
impl TypedBackend for TemplateBackend {
    type Plan = TemplatePlan;

    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn object_noun(&self) -> &'static str {
        "port"
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<Planned<TemplatePlan>, CniError> {
        let host = req.host;
        if host.iftype != Some(IfType::VhostUser) {
            return Err(TemplateError::Config {
                key: "iftype",
                why: "engine template supports only \"vhostuser\"".into(),
            }
            .into());
        }
        if host.net_type == Some(NetType::Interface) {
            return Err(
                TemplateError::Config { key: "netType", why: "engine template joins bridges only".into() }.into()
            );
        }
        // The workload serves the socket (host side client): the backend never creates a socket.
        if host.vhost.as_ref().and_then(|v| v.mode) == Some(VhostMode::Server) {
            return Err(TemplateError::Config {
                key: "vhost.mode",
                why: "engine template supports \"client\" only".into(),
            }
            .into());
        }
        let bridge = host.bridge.as_ref().and_then(|b| b.bridge_name.clone()).unwrap_or_else(|| "br0".into());
        userspace_cni_support::names::validate_object_name("host.bridge.bridgeName", &bridge, 64)?;
        let port = format!("{}-{}", req.attachment.id.cid12(), req.attachment.id.ifname);
        userspace_cni_support::names::validate_object_name("the port name", &port, 64)?;
        let socket = SocketDescriptor {
            kind: SocketKind::VhostUser,
            workload_mode: "server".into(),
            memif_mode: None,
            host_path: req.shared_dir.host.join(&port),
            pod_path: req.shared_dir.pod.join(&port),
            mac: req.attachment.mac.clone(),
            mtu: None,
        };
        Ok(Planned { plan: TemplatePlan { bridge, port }, socket: Some(socket), uses_shared_dir: true })
    }

    fn steps(&self, plan: &TemplatePlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        Ok(vec![Box::new(BridgeStep { plan: plan.clone() }), Box::new(PortStep { plan: plan.clone() })])
    }

    async fn check(&self, ctx: &StepContext, plan: &TemplatePlan) -> Result<(), CniError> {
        ensure_up(&ctx.settings)?;
        match read_port(&port_path(&ctx.settings, plan))? {
            Some(p) if is_ours(&p, &ctx.attachment.id) => Ok(()),
            _ => Err(TemplateError::Missing { port: plan.port.clone(), bridge: plan.bridge.clone() }.into()),
        }
    }

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
        ensure_up(settings)?;
        let bridges = root(settings).join("bridges");
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(&bridges) else { return Ok(out) };
        for bridge in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(bridge.path()) else { continue };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(port) = name.strip_suffix(".json").filter(|n| *n != "owner") else { continue };
                if let Some(p) = read_port(&f.path())?.filter(|p| p.owner == OWNER && p.network == network) {
                    out.push(OwnedObject {
                        id: AttachmentId::new(p.container_id, p.ifname),
                        network: p.network,
                        kind: format!("port@{}", bridge.file_name().to_string_lossy()),
                        name: port.to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
        ensure_up(settings)?;
        let bridge = obj.kind.strip_prefix("port@").unwrap_or_default();
        let plan = TemplatePlan { bridge: bridge.into(), port: obj.name.clone() };
        let path = port_path(settings, &plan);
        if read_port(&path)?.is_some_and(|p| is_ours(&p, &obj.id)) {
            remove_if_present(&path, "remove port")?;
        }
        Ok(())
    }

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError> {
        ensure_up(settings).map_err(|e| CniError::new(codes::NOT_AVAILABLE, e.to_string()))
    }

    /// A restarted template dataplane has lost its bridges: re-create what the record names.
    async fn repair(&self, ctx: &mut StepContext, p: &TemplatePlan) -> Result<Repair, CniError> {
        ensure_up(&ctx.settings)?;
        if read_port(&port_path(&ctx.settings, p))?.is_some_and(|f| is_ours(&f, &ctx.attachment.id)) {
            return Ok(Repair::Healthy);
        }
        let actions = vec![format!("re-created port {} on bridge {}", p.port, p.bridge)];
        // The dry run (`Verb::Check`) reports and changes nothing.
        if ctx.verb != Verb::Check {
            for step in self.steps(p)? {
                step.apply(ctx).await?;
            }
        }
        Ok(Repair::Repaired(actions))
    }
}

/// The bridge: created if missing (then ours), an administrator's is used as it is.
struct BridgeStep {
    plan: TemplatePlan,
}

#[async_trait]
impl Step for BridgeStep {
    fn name(&self) -> &'static str {
        "template-bridge"
    }

    /// Bridges are shared by every attachment on them: create and delete under the node lock.
    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        if let Err(e) = ensure_up(&ctx.settings) {
            return Err(ctx.fail_unchanged(e.into()));
        }
        let dir = bridge_dir(&ctx.settings, &self.plan.bridge);
        if dir.exists() {
            return Ok(());
        }
        // Built aside and renamed into place: a bridge appears tagged or not at all, so undo
        // never has to guess whether an untagged bridge is an administrator's.
        let tmp = staging_dir(&ctx.settings, &self.plan.bridge);
        remove_staging(&tmp)?;
        std::fs::create_dir_all(&tmp).map_err(io_err("create bridge", &tmp))?;
        let owner = serde_json::json!({"owner": OWNER, "network": ctx.attachment.network});
        let file = tmp.join("owner.json");
        std::fs::write(&file, owner.to_string()).map_err(io_err("tag bridge", &file))?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            remove_staging(&tmp)?;
            // Another attachment created it meanwhile: it is there, which is all we need.
            if !dir.exists() {
                return Err(io_err("create bridge", &dir)(e).into());
            }
            return Ok(());
        }
        // A test can fail the step right after its side effect (the kit's no-effect rules).
        failpoint::hit(self.name(), Phase::During)
    }

    /// Delete the bridge only if ours (tagged) and no port is left on it.
    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        ensure_up(&ctx.settings)?;
        remove_staging(&staging_dir(&ctx.settings, &self.plan.bridge))?;
        let dir = bridge_dir(&ctx.settings, &self.plan.bridge);
        let owner = dir.join("owner.json");
        if !owner.exists() {
            // Absent, or an administrator's bridge (no tag): nothing of ours to remove.
            return Ok(());
        }
        let in_use = std::fs::read_dir(&dir)
            .map_err(io_err("list bridge", &dir))?
            .flatten()
            .any(|e| e.file_name() != "owner.json");
        if in_use {
            return Ok(());
        }
        remove_if_present(&owner, "untag bridge")?;
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove bridge", &dir)(e).into()),
            _ => Ok(()),
        }
    }
}

/// Where a bridge is assembled before it is renamed into place (a dot name: never a bridge).
fn staging_dir(settings: &NodeSettings, bridge: &str) -> PathBuf {
    root(settings).join("bridges").join(format!(".{bridge}.new"))
}

/// Remove a staging dir a killed apply left; absent is fine.
fn remove_staging(tmp: &Path) -> Result<(), TemplateError> {
    remove_if_present(&tmp.join("owner.json"), "remove half-made bridge")?;
    match std::fs::remove_dir(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove half-made bridge", tmp)(e)),
        _ => Ok(()),
    }
}

/// The port: a file naming its attachment, written atomically.
struct PortStep {
    plan: TemplatePlan,
}

#[async_trait]
impl Step for PortStep {
    fn name(&self) -> &'static str {
        "template-port"
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        if let Err(e) = ensure_up(&ctx.settings) {
            return Err(ctx.fail_unchanged(e.into()));
        }
        let path = port_path(&ctx.settings, &self.plan);
        let id = ctx.attachment.id.clone();
        match read_port(&path)? {
            Some(p) if is_ours(&p, &id) => {}
            Some(p) => {
                let owner = format!("container {} ({})", p.container_id, p.ifname);
                let e =
                    TemplateError::Collision { port: self.plan.port.clone(), bridge: self.plan.bridge.clone(), owner };
                return Err(ctx.fail_unchanged(e.into()));
            }
            None => {
                let file = PortFile {
                    owner: OWNER.into(),
                    network: ctx.attachment.network.clone(),
                    container_id: id.container_id,
                    ifname: id.ifname,
                };
                let tmp = path.with_extension("json.tmp");
                let bytes = serde_json::to_vec(&file).map_err(|e| io_err("encode port", &tmp)(e.into()))?;
                std::fs::write(&tmp, bytes).map_err(io_err("write port", &tmp))?;
                // rename(2) makes the port appear whole or not at all, even after a SIGKILL.
                if let Err(e) = std::fs::rename(&tmp, &path) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io_err("create port", &path)(e).into());
                }
                failpoint::hit(self.name(), Phase::During)?;
            }
        }
        ctx.outputs.host_interfaces.push(HostInterface { name: self.plan.port.clone(), mac: None });
        Ok(())
    }

    /// Remove the port file if it names this attachment (and a temp file a killed apply left).
    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        ensure_up(&ctx.settings)?;
        let path = port_path(&ctx.settings, &self.plan);
        remove_if_present(&path.with_extension("json.tmp"), "remove half-written port")?;
        if read_port(&path)?.is_some_and(|p| is_ours(&p, &ctx.attachment.id)) {
            remove_if_present(&path, "remove port")?;
        }
        Ok(())
    }

    async fn check(&self, ctx: &StepContext) -> Result<(), CniError> {
        match read_port(&port_path(&ctx.settings, &self.plan))? {
            Some(p) if is_ours(&p, &ctx.attachment.id) => Ok(()),
            _ => Err(TemplateError::Missing { port: self.plan.port.clone(), bridge: self.plan.bridge.clone() }.into()),
        }
    }
}

fn make() -> Box<dyn Backend> {
    Box::new(Typed(TemplateBackend))
}

// Registration: linked into a binary, this crate makes `host.engine: "template"` selectable.
userspace_cni_api::inventory::submit! {
    BackendRegistration {
        engine: ENGINE,
        description: "template: an example dataplane of JSON files under its root setting (docs/backend-authors.md)",
        make,
        settings: SETTINGS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A declaration the loader would refuse (bad key, a default not of its kind, a mount dir
    /// that is not the default's) fails here rather than on a node.
    #[test]
    fn the_settings_declarations_are_sound() {
        assert_eq!(userspace_cni_api::engine_settings::check_declarations(ENGINE, SETTINGS), Ok(()));
    }

    #[test]
    fn the_root_is_the_setting_or_its_default() {
        let mut s = NodeSettings::default();
        assert_eq!(root(&s), PathBuf::from("/var/lib/userspace-cni-template"));
        s.set_engine(ENGINE, &ROOT, "/srv/tpl");
        assert_eq!(root(&s), PathBuf::from("/srv/tpl"));
    }
}
