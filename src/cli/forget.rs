//! `userspace forget <container-id> [ifname]`: the escape hatch for attachments whose dataplane is
//! gone for good. Undoes every generic step of the record and removes it; never touches the dataplane.
//!
//! A pod whose OVS or VPP will never come back is stuck Terminating: every DEL answers code 11
//! (retry) and keeps the record, as it must while the dataplane may return. `forget` is the
//! operator saying it will not: under the attachment lock, it undoes the record's steps that need
//! no dataplane (IPAM lease, device-info, config file, annotation entry, shared dir, short-dir
//! mount) and removes the record even when one of them failed (reporting it), so the runtime's next
//! DEL finds no record and succeeds. The bridge, port or memif the plan names are printed for the
//! operator, who removes them (if the dataplane ever returns, `userspace gc` does not know them).

use crate::pipeline::build_steps;
use crate::plan::Record;
use crate::reconcile::survey::{bridge_of, port_of};
use crate::state::{StateDir, StateError};
use userspace_cni_api::{
    async_trait, AttachmentId, Backend, BackendPlan, CniError, ErrorList, NodeSettings, OwnedObject, PlanRequest, Step,
    StepContext, Verb,
};

const USAGE: &str = "usage: userspace forget CONTAINER_ID [IFNAME]
  For an attachment whose dataplane (OVS, VPP) is gone for good, so that DEL keeps answering code 11
  and the pod is stuck Terminating: removes what needs no dataplane (IPAM lease, device-info and
  config files, the pod annotation entry, the shared dir, the KubeVirt short-dir mount) and the
  attachment's record, so the runtime's next DEL succeeds. Prints the dataplane objects (bridge,
  port, memif) it left, for the operator to remove. Without IFNAME: every attachment of the
  container. Exit 0: all removed; 1: no such record, or a step failed (the record is removed anyway).
";

#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("no attachment record for container {cid}{} in {}: nothing to forget", ifname.as_ref().map(|i| format!(" ifname {i}")).unwrap_or_default(), dir.display())]
    NotFound { cid: String, ifname: Option<String>, dir: std::path::PathBuf },

    #[error("{0}")]
    BadArgument(String),

    #[error(transparent)]
    State(#[from] StateError),
}

impl From<ForgetError> for CniError {
    fn from(e: ForgetError) -> Self {
        match e {
            ForgetError::State(s) => s.into(),
            ForgetError::NotFound { .. } => CniError::new(userspace_cni_api::codes::UNKNOWN_CONTAINER, e.to_string()),
            ForgetError::BadArgument(m) => CniError::new(userspace_cni_api::codes::INVALID_ENV, m),
        }
    }
}

/// A backend with no steps: `build_steps` over it gives exactly a record's generic steps (the
/// one list DEL undoes, minus the dataplane's), without needing the engine built into this binary.
struct NoDataplane;

#[async_trait]
impl Backend for NoDataplane {
    fn engine(&self) -> &'static str {
        "none"
    }
    fn plan(&self, _req: &PlanRequest<'_>) -> Result<BackendPlan, CniError> {
        Err(CniError::io("forget plans nothing"))
    }
    fn steps(&self, _plan: &BackendPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        Ok(Vec::new())
    }
    async fn check(&self, _ctx: &StepContext, _plan: &BackendPlan) -> Result<(), CniError> {
        Ok(())
    }
    async fn list_owned(&self, _s: &NodeSettings, _network: &str) -> Result<Vec<OwnedObject>, CniError> {
        Ok(Vec::new())
    }
    async fn remove_owned(&self, _s: &NodeSettings, _obj: &OwnedObject) -> Result<(), CniError> {
        Ok(())
    }
    async fn status(&self, _s: &NodeSettings) -> Result<(), CniError> {
        Ok(())
    }
}

/// What forgetting one attachment did.
#[derive(Debug)]
pub struct Forgotten {
    pub id: AttachmentId,
    pub network: String,
    pub engine: String,
    /// Generic steps undone (names, in undo order).
    pub undone: Vec<String>,
    /// Dataplane objects the plan names, left in place.
    pub left: Vec<String>,
    pub errors: ErrorList,
}

/// The ids to forget: one, or every record of the container.
fn ids_of(state: &StateDir, cid: &str, ifname: Option<&str>) -> Result<Vec<AttachmentId>, ForgetError> {
    let not_found = || ForgetError::NotFound {
        cid: cid.into(),
        ifname: ifname.map(str::to_owned),
        dir: state.root().to_path_buf(),
    };
    if let Some(ifname) = ifname {
        let id = AttachmentId::new(cid, ifname);
        return if state.record_path(&id).exists() { Ok(vec![id]) } else { Err(not_found()) };
    }
    let mut ids: Vec<AttachmentId> = state
        .list_records()?
        .into_iter()
        .flatten()
        .map(|r| r.attachment.id)
        .filter(|id| id.container_id == cid)
        .collect();
    ids.sort();
    if ids.is_empty() {
        return Err(not_found());
    }
    Ok(ids)
}

/// Forget one attachment under its lock (bounded wait). `Ok(None)`: its record went meanwhile.
pub async fn forget_one(
    settings: &NodeSettings,
    state: &StateDir,
    id: &AttachmentId,
) -> Result<Option<Forgotten>, ForgetError> {
    let lock = state.lock_attachment(id, settings.timeout()).await?;
    let Some(record) = state.read_record(id)? else {
        lock.release_and_remove();
        return Ok(None);
    };
    let mut errors = ErrorList::default();
    let steps = match build_steps(&NoDataplane, state, &record) {
        Ok(s) => s,
        Err(e) => {
            errors.push(e.context("building the record's generic steps"));
            Vec::new()
        }
    };
    let mut ctx = record.step_context(Verb::Del, settings);
    let undo_errors = crate::pipeline::undo_all(&steps, &mut ctx, state).await;
    errors.0.extend(undo_errors.0);
    // Removed whatever failed above: keeping it would keep DEL answering 11 forever.
    if let Err(e) = state.remove_record(id) {
        errors.push(CniError::from(e));
    }
    lock.release_and_remove();
    Ok(Some(Forgotten {
        id: id.clone(),
        network: record.attachment.network.clone(),
        engine: record.plan.engine.clone(),
        undone: steps.iter().rev().map(|s| s.name().to_owned()).filter(|n| n != "save-state").collect(),
        left: left_behind(&record),
        errors,
    }))
}

/// The dataplane objects a record's plan names (what the operator may have to remove by hand).
fn left_behind(record: &Record) -> Vec<String> {
    let data = &record.plan.backend.data;
    let mut left = Vec::new();
    if let Some(b) = bridge_of(record) {
        left.push(format!("bridge {b} (deleted only if it is ours and unused)"));
    }
    if let Some(p) = port_of(record) {
        // The engine's own word for what it creates; a record of an engine this binary was
        // built without still gets a readable line.
        let noun = crate::pipeline::Registry::linked()
            .get(&record.plan.engine)
            .map(|b| b.object_noun())
            .unwrap_or("interface");
        left.push(format!("{noun} {p}"));
    }
    if let Some(s) = data.get("ovs_socket").and_then(|v| v.as_str()) {
        left.push(format!("socket {s} (OVS's copy, if it re-created it)"));
    }
    left
}

pub fn main(registry: &crate::pipeline::Registry, args: &[String]) -> i32 {
    let mut positional = Vec::new();
    for a in args {
        match a.as_str() {
            "-h" | "--help" => {
                crate::stdout::out!("{USAGE}");
                return 0;
            }
            s if s.starts_with('-') => {
                eprintln!("userspace forget: unknown argument {s:?}\n{USAGE}");
                return 2;
            }
            s => positional.push(s.to_owned()),
        }
    }
    let (cid, ifname) = match positional.as_slice() {
        [cid] => (cid.clone(), None),
        [cid, ifname] => (cid.clone(), Some(ifname.clone())),
        _ => {
            eprintln!("userspace forget: expected CONTAINER_ID [IFNAME]\n{USAGE}");
            return 2;
        }
    };
    // The same rules as CNI_CONTAINERID and CNI_IFNAME: they become file names in the state dir.
    let valid = crate::cni::env::validate_container_id(&cid)
        .and_then(|()| ifname.as_deref().map(crate::cni::env::validate_ifname).transpose().map(drop));
    if let Err(e) = valid {
        eprintln!("userspace forget: {}", CniError::from(ForgetError::BadArgument(e.to_string())).msg);
        return 2;
    }
    let settings = match super::settings_or_exit("forget", registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::logging::init(None, None, &[]);
    let state = StateDir::at(&settings.state_dir);
    let ids = match ids_of(&state, &cid, ifname.as_deref()) {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("userspace forget: {e}");
            return 1;
        }
    };
    let runtime = match super::runtime_or_exit("forget") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut failed = false;
    for id in ids {
        match runtime.block_on(forget_one(&settings, &state, &id)) {
            Ok(Some(f)) => {
                crate::stdout::outln!(
                    "forgot {}/{} (network {}, engine {}): removed its record and {}",
                    f.id.container_id,
                    f.id.ifname,
                    f.network,
                    f.engine,
                    if f.undone.is_empty() { "nothing else".to_owned() } else { f.undone.join(", ") }
                );
                if !f.left.is_empty() {
                    crate::stdout::outln!("  left in the dataplane for you to remove: {}", f.left.join("; "));
                }
                for e in &f.errors.0 {
                    failed = true;
                    crate::stdout::outln!("  FAILED: {e}");
                }
            }
            Ok(None) => crate::stdout::outln!(
                "{}/{}: its record went meanwhile (a DEL finished it)",
                id.container_id,
                id.ifname
            ),
            Err(e) => {
                failed = true;
                eprintln!("userspace forget: {}/{}: {e}", id.container_id, id.ifname);
            }
        }
    }
    i32::from(failed)
}
