//! DEL: idempotent, best effort. With a record, undo every planned step in reverse and remove the
//! record only when all undos succeeded; without one, ADD created nothing of ours: only the
//! harmless IPAM DEL (DESIGN.md §3.3), then succeed.

use super::plan::{build_steps, engine_of};
use super::Invocation;
use crate::netconf::NetConf;
use crate::pipeline::undo_all;
use crate::state::StateDir;
use crate::steps::ipam::{cni_args_text, Budget};
use crate::steps::IpamStep;
use backend_api::{AttachmentId, CniError, StepContext};
use std::sync::Arc;
use std::time::Instant;

pub async fn del(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let id = super::plan::attachment_id(inv)?;
    // The engine must still be one we know, even when there is nothing to delete.
    inv.registry.get(engine_of(conf)?)?;
    let state = StateDir::at(&inv.settings.state_dir);
    if !state.root().exists() {
        tracing::debug!("no state dir: nothing was added on this node");
        return ipam_del_without_record(inv, conf, &id).await;
    }
    let lock = state.lock_attachment(&id, inv.settings.timeout()).await?;
    let Some(record) = state.read_record(&id)? else {
        tracing::debug!(cid = %id.container_id, ifname = %id.ifname, "no record: nothing to delete");
        // Under the lock, so a concurrent ADD of the same attachment cannot lose its lease.
        let released = ipam_del_without_record(inv, conf, &id).await;
        lock.release_and_remove();
        return released;
    };
    teardown(inv, &state, &record).await?;
    lock.release_and_remove();
    Ok(())
}

/// Undo every step of a record in reverse and remove the record if all went well. The caller
/// holds the attachment lock. Shared with GC.
pub async fn teardown(inv: &Invocation<'_>, state: &StateDir, record: &crate::state::Record) -> Result<(), CniError> {
    // The record's own engine decides, not today's stdin.
    let backend = inv.registry.get(&record.plan.engine)?;
    let steps = build_steps(backend.as_ref(), state, record)?;
    let mut ctx = StepContext {
        verb: inv.env.command,
        attachment: record.attachment.clone(),
        settings: Arc::new(inv.settings.clone()),
        shared_dir: record.plan.shared_dir.clone(),
        deadline: Instant::now() + inv.settings.deadline(),
        outputs: record.outputs.clone().unwrap_or_default(),
        no_effect: false,
    };
    let errors = undo_all(&steps, &mut ctx, state).await;
    if !errors.is_empty() {
        // Keep the record: it names what is left, and the runtime retries DEL.
        return errors.into_result();
    }
    state.remove_record(&record.attachment.id)?;
    Ok(())
}

/// No record: the stdin config's IPAM (if any) is asked to release the attachment. Its leases
/// may come from an upstream plugin's ADD (which keeps no record of ours); a delegate that holds
/// nothing succeeds, and a config no ADD could have run with is skipped.
async fn ipam_del_without_record(inv: &Invocation<'_>, conf: &NetConf, id: &AttachmentId) -> Result<(), CniError> {
    let step = match IpamStep::new(&conf.raw, conf.ipam.as_ref(), &inv.env.path, cni_args_text(&inv.env.args)) {
        Ok(Some(step)) => step,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "DEL without a record: IPAM DEL skipped");
            return Ok(());
        }
    };
    let env = step.env_for(id, inv.env.netns.as_deref());
    step.del_without_record(&env, Budget::of_settings(inv.settings)).await
}
