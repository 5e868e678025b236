//! The `Backend` trait a dataplane implements, and the registry backends join with `inventory`.

use crate::attachment::{Attachment, AttachmentId, SharedDir, SocketDescriptor};
use crate::error::CniError;
use crate::settings::NodeSettings;
use crate::spec::InterfaceSpec;
use crate::step::{Step, StepContext};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a backend is asked to plan from: the validated generic config and the attachment.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub attachment: &'a Attachment,
    pub host: &'a InterfaceSpec,
    pub container: &'a InterfaceSpec,
    /// The pod's shared directory as resolved by the generic code (created by the generic
    /// shared-dir step if the plan says it is used; backends never create directories).
    pub shared_dir: &'a SharedDir,
    pub settings: &'a NodeSettings,
    /// A device plugin fixed the socket's path before ADD (its device-info file): the socket
    /// must have exactly the file name the spec's `socketfile` carries, but that name need not be
    /// unique on the node (virtio-device-plugin names every device's socket `vhost.sock`, each in
    /// its own directory), so no node-wide name (an OVS port, say) may be derived from it.
    pub socket_name_from_device_plugin: bool,
}

/// A backend's plan: every identifier it will create, computed without side effects and stored
/// in the attachment record so DEL (another process, maybe after a crash) can undo from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendPlan {
    /// Backend-defined, serialisable; only the backend reads it.
    pub data: serde_json::Value,
    /// The socket the workload will open, if any (host and pod paths are known in advance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketDescriptor>,
    /// Whether the generic shared-dir step must create the pod's shared directory.
    pub uses_shared_dir: bool,
}

/// An object in the dataplane that carries our ownership tag (for GC and the reconciler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnedObject {
    pub id: AttachmentId,
    pub network: String,
    /// e.g. `port`, `bridge`, `memif`.
    pub kind: String,
    pub name: String,
}

/// An object tagged as ours, from any network (`Backend::list_all_owned`), with the netns its
/// attachment was made for (none for a DRA attachment) and the boot it was made in, when its
/// tags say.
#[derive(Debug, Clone)]
pub struct TaggedObject {
    pub object: OwnedObject,
    pub netns: Option<String>,
    pub boot_id: Option<String>,
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// The `host.engine` value this backend serves.
    fn engine(&self) -> &'static str;

    /// Validate the engine-specific part of the config and compute every identifier.
    /// No side effects; errors are codes 2/7/10x with a message naming key, value and remedy.
    fn plan(&self, req: &PlanRequest<'_>) -> Result<BackendPlan, CniError>;

    /// The dataplane steps of ADD, in order (bridge/network attach, port/interface create).
    /// DEL runs their `undo` in reverse.
    fn steps(&self, plan: &BackendPlan) -> Result<Vec<Box<dyn Step>>, CniError>;

    /// CHECK: verify the dataplane still holds what the plan and outputs say.
    async fn check(&self, ctx: &StepContext, plan: &BackendPlan) -> Result<(), CniError>;

    /// GC: objects tagged as ours for this network.
    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError>;

    /// GC: whether `obj` (found by `list_owned`) belongs to attachment `id`. The default compares
    /// the ids; a backend whose tags cannot hold a full identity overrides it (VPP's interface
    /// tags hold 63 bytes, so they carry a digest of network, container id and ifname).
    fn owned_by(&self, obj: &OwnedObject, id: &AttachmentId) -> bool {
        obj.id == *id
    }

    /// What this engine calls the per-attachment object it creates, for messages to an operator
    /// ("port br0-x left in place"): OVS says `port`, VPP `interface` (the default).
    fn object_noun(&self) -> &'static str {
        "interface"
    }

    /// The reconciler, after a power loss: every object tagged as ours, any network, so that
    /// objects whose record was lost (records are not fsynced) are found by their tags.
    /// Per-attachment objects carry the attachment id; shared ones (a bridge) an empty id.
    /// `Ok(None)`: this engine's tags cannot be listed that way (the default), and its objects
    /// are found only through records.
    async fn list_all_owned(&self, _settings: &NodeSettings) -> Result<Option<Vec<TaggedObject>>, CniError> {
        Ok(None)
    }

    /// GC: remove one object found by `list_owned`; "not found" is success.
    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError>;

    /// STATUS: can the dataplane serve an ADD now? Code 50 with the reason if not.
    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError>;

    /// Reconciler, after a dataplane restart: make the dataplane hold again what `plan` and
    /// `ctx.outputs` say (re-deliver a server-mode socket, re-create interfaces with the same
    /// names, tags and bridge domains), updating `ctx.outputs` where identifiers changed so the
    /// caller can rewrite the record. Called only for complete records whose pod is alive, with
    /// the attachment lock and the node lock held. Never connects to a workload's socket. A
    /// dataplane that cannot be reached is code 11. The default: nothing can go stale.
    ///
    /// `ctx.verb` is `Verb::Gc` for a real repair and `Verb::Check` for the reconciler's
    /// `--dry-run`: then detect only, change nothing (no lock is held), and return the actions
    /// it would take. CHECK is the verb that never changes anything; `Backend::check` cannot
    /// stand in for this, since a dead delivered socket is invisible to it.
    async fn repair(&self, _ctx: &mut StepContext, _plan: &BackendPlan) -> Result<Repair, CniError> {
        Ok(Repair::Healthy)
    }

    /// `userspace doctor`: can this node's dataplane serve attachments, line by line, with a hint
    /// for each failure. Read only. `required`: the operator named this engine (`--engine`), so
    /// check it even when its endpoint is absent; otherwise check only a present one and say why
    /// not in a skipped line. The default: nothing to check, not present.
    async fn doctor(&self, _settings: &NodeSettings, _required: bool) -> crate::diagnosis::Diagnosis {
        crate::diagnosis::Diagnosis::default()
    }

    /// Upgrade from the upstream plugin (docs/upgrading.md): check that the dataplane object an
    /// upstream state file names (`legacy`, the file's JSON) is what `plan` would have created for
    /// `attachment`, and, unless `dry_run`, tag it as this attachment's so the ordinary undo, GC
    /// and the reconciler treat it as ours. Must never tag an object that fails the check (another
    /// pod's, or one on another bridge). A dataplane that cannot be reached is code 11. The
    /// default: this engine cannot adopt (code 2).
    async fn adopt(
        &self,
        _settings: &NodeSettings,
        _attachment: &Attachment,
        _plan: &BackendPlan,
        _legacy: &serde_json::Value,
        _dry_run: bool,
    ) -> Result<Adoption, CniError> {
        Err(CniError::new(
            crate::error::codes::UNSUPPORTED_FIELD,
            format!("engine {} cannot adopt objects created by the upstream plugin", self.engine()),
        ))
    }
}

/// What `Backend::adopt` found for an upstream object (`object` names it for the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Adoption {
    /// It matches the plan and now carries this attachment's tags (`already`: it did before, as
    /// after an interrupted adoption). With `dry_run`: it matches and would be tagged.
    Adopted { object: String, already: bool },
    /// The dataplane has no object of that name: nothing to tag (and nothing to delete).
    Missing { object: String },
    /// It exists but is not what the plan describes, or belongs to someone else: left alone.
    Mismatch { object: String, reason: String },
}

/// What `Backend::repair` found for one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "actions", rename_all = "kebab-case")]
pub enum Repair {
    /// The dataplane holds everything the record names.
    Healthy,
    /// What was re-done, one line each for the report (e.g. "re-delivered socket /x/y").
    Repaired(Vec<String>),
}

/// A backend's entry in the registry: `inventory::submit!` it from the backend crate.
pub struct BackendRegistration {
    pub engine: &'static str,
    /// One line for `userspace backends` / `doctor`.
    pub description: &'static str,
    pub make: fn() -> Box<dyn Backend>,
    /// The node settings this backend reads, from `[engines.<engine>]` in the settings file
    /// (`engine_settings`); `&[]` for none.
    pub settings: &'static [crate::engine_settings::SettingSpec],
}

inventory::collect!(BackendRegistration);

/// Every backend linked into this binary, sorted by engine name (inventory's order is not stable
/// between builds).
pub fn registered() -> Vec<&'static BackendRegistration> {
    let mut all: Vec<&'static BackendRegistration> = inventory::iter::<BackendRegistration>.into_iter().collect();
    all.sort_by_key(|r| r.engine);
    all
}
