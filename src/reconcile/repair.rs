//! The reconciler's repair after a dataplane restart: for each complete attachment whose pod is
//! alive, ask its backend to make the dataplane hold again what the record names (`Backend::repair`)
//! and rewrite the record when identifiers changed. Never repairs an attachment whose lock is held.
//!
//! Kubernetes never sends CHECK for a secondary network, so after an OVS or VPP restart nobody
//! else notices that a pod's socket is dead or its interfaces are gone. Per attachment:
//! - try-lock it (held: an ADD or DEL is running, and it is theirs), re-read the record under the
//!   lock, take the node lock with the bounded `timeout` setting (repair may re-create a bridge);
//! - `repair` with `ctx.verb == Verb::Gc`; with `--dry-run`, `Verb::Check` and no lock: the
//!   backend only detects (see the trait's doc for why not `Backend::check`);
//! - code 11 means the engine is unreachable: the rest of that engine's attachments are skipped
//!   for this pass (each would wait out the same timeout), and the next pass retries.

use super::survey::{AttachmentState, Entry};
use super::NetnsState;
use crate::pipeline::Registry;
use crate::state::{StateDir, StateError};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use userspace_cni_api::{codes, CniError, NodeSettings, Repair, Verb};

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    State(#[from] StateError),

    #[error("the {engine} backend: {source}")]
    Backend { engine: String, source: CniError },
}

impl From<RepairError> for CniError {
    fn from(e: RepairError) -> Self {
        match e {
            RepairError::State(s) => s.into(),
            RepairError::Backend { engine, source } => source.context(format!("repair by the {engine} backend")),
        }
    }
}

/// What the pass did for one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RepairOutcome {
    /// The dataplane holds everything the record names.
    Healthy,
    /// What was re-done (one line per action).
    Repaired { actions: Vec<String> },
    /// `--dry-run`: what would be re-done.
    WouldRepair { actions: Vec<String> },
    /// Not looked at in this pass, and why (its lock is held, its engine is down).
    Skipped { why: String },
    /// The repair failed; the next pass retries. `code` is the CNI code (11: dataplane down).
    Failed { code: u32, error: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairReport {
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    pub engine: String,
    pub elapsed_us: u64,
    #[serde(flatten)]
    pub outcome: RepairOutcome,
}

/// Whether the reconciler looks at `entry` for repair: ADD finished, no DEL started, its pod's
/// netns provably alive (a dead one is for reaping; an unverifiable one is left alone).
pub fn wants_repair(entry: &Entry) -> bool {
    entry.state == AttachmentState::Complete && entry.netns == NetnsState::Alive
}

/// Repair every attachment of `entries` (already filtered by `wants_repair`), in order, until
/// `stop()`. Returns one report per attachment looked at, and whether it was interrupted.
pub async fn repair_all(
    settings: &NodeSettings,
    registry: &Registry,
    state: &StateDir,
    entries: &[Entry],
    dry_run: bool,
    stop: &dyn Fn() -> bool,
) -> (Vec<RepairReport>, bool) {
    let mut out = Vec::new();
    // Engines that answered code 11 in this pass.
    let mut down: BTreeSet<String> = BTreeSet::new();
    for entry in entries {
        if stop() {
            return (out, true);
        }
        let rec = &entry.record;
        let engine = rec.plan.engine.clone();
        let started = Instant::now();
        let outcome = if down.contains(&engine) {
            RepairOutcome::Skipped { why: format!("engine {engine} was unreachable earlier in this pass") }
        } else if !entry.lock_free && dry_run {
            RepairOutcome::Skipped { why: "an ADD/DEL/GC holds its lock".into() }
        } else {
            match repair_one(settings, registry, state, entry, dry_run).await {
                Ok(o) => o,
                Err(e) => {
                    let e = CniError::from(e);
                    if e.code == codes::TRY_AGAIN_LATER {
                        down.insert(engine.clone());
                    }
                    RepairOutcome::Failed { code: e.code, error: e.to_string() }
                }
            }
        };
        let id = &rec.attachment.id;
        match &outcome {
            RepairOutcome::Repaired { actions } => {
                tracing::info!(cid = %id.container_id, ifname = %id.ifname, %engine, actions = %actions.join("; "), "repaired")
            }
            RepairOutcome::Failed { error, .. } => {
                tracing::warn!(cid = %id.container_id, ifname = %id.ifname, %engine, %error, "repair failed")
            }
            _ => {}
        }
        out.push(RepairReport {
            container_id: id.container_id.clone(),
            ifname: id.ifname.clone(),
            network: rec.attachment.network.clone(),
            engine,
            elapsed_us: started.elapsed().as_micros() as u64,
            outcome,
        });
    }
    (out, false)
}

async fn repair_one(
    settings: &NodeSettings,
    registry: &Registry,
    state: &StateDir,
    entry: &Entry,
    dry_run: bool,
) -> Result<RepairOutcome, RepairError> {
    let engine = entry.record.plan.engine.clone();
    let backend_err = |source: CniError| RepairError::Backend { engine: engine.clone(), source };
    let backend = registry.get(&engine).map_err(backend_err)?;
    let id = &entry.record.attachment.id;
    // Locks, in DEL's order (attachment, then node); none for a dry run, which changes nothing.
    let mut locks = None;
    let record = if dry_run {
        entry.record.clone()
    } else {
        let Ok(lock) = state.lock_attachment(id, Duration::ZERO).await else {
            return Ok(RepairOutcome::Skipped { why: "an ADD/DEL/GC holds its lock".into() });
        };
        // The survey is a snapshot: a DEL may have finished or started since.
        let current = match state.read_record(id)? {
            Some(r) if r.complete => r,
            _ => {
                lock.release_and_remove();
                return Ok(RepairOutcome::Skipped { why: "its record changed since the survey".into() });
            }
        };
        let node = state.lock_node(settings.timeout()).await?;
        locks = Some((lock, node));
        current
    };
    let mut ctx = record.step_context(if dry_run { Verb::Check } else { Verb::Gc }, settings);
    let result = backend.repair(&mut ctx, &record.plan.backend).await;
    let outcome = match result {
        Ok(Repair::Healthy) => RepairOutcome::Healthy,
        Ok(Repair::Repaired(actions)) if dry_run => RepairOutcome::WouldRepair { actions },
        Ok(Repair::Repaired(actions)) => {
            // Only a changed identifier is worth a rewrite (an fsync each, measured at 0.7-9 ms):
            // a re-delivered socket has the path the record already names.
            if record.outputs.as_ref() != Some(&ctx.outputs) {
                let mut updated = record.clone();
                updated.outputs = Some(ctx.outputs);
                state.write_record(&updated)?;
            }
            RepairOutcome::Repaired { actions }
        }
        Err(e) => return Err(backend_err(e)),
    };
    if let Some((attachment, node)) = locks {
        drop(node);
        attachment.release_and_remove();
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialise_for_the_json_report() {
        let r = RepairReport {
            container_id: "c".into(),
            ifname: "net1".into(),
            network: "n".into(),
            engine: "ovs-dpdk".into(),
            elapsed_us: 3,
            outcome: RepairOutcome::Repaired { actions: vec!["re-delivered socket a to b".into()] },
        };
        let v = serde_json::to_value(&r).expect("encode");
        assert_eq!(v["outcome"], "repaired");
        assert_eq!(v["actions"][0], "re-delivered socket a to b");
        assert_eq!(v["containerId"], "c");
        let f = serde_json::to_value(RepairOutcome::Failed { code: 11, error: "down".into() }).expect("encode");
        assert_eq!((f["outcome"].as_str(), f["code"].as_u64()), (Some("failed"), Some(11)));
    }

    #[test]
    fn the_backend_error_keeps_its_code() {
        let e = CniError::from(RepairError::Backend { engine: "vpp".into(), source: CniError::try_again("down") });
        assert_eq!(e.code, codes::TRY_AGAIN_LATER);
        assert!(e.msg.contains("vpp"), "{}", e.msg);
    }
}
