//! DEL: idempotent, best effort. With a record, undo every planned step in reverse and remove the
//! record only when all undos succeeded; without one, ADD created nothing of ours: only the
//! harmless IPAM DEL (DESIGN.md §3.3), then succeed, unless the upstream plugin left a state
//! file for the attachment: then the record its ADD would have had is built and torn down. A
//! torn record (a power loss cut its write) is absent too, after its tagged objects are removed.

use super::Invocation;
use crate::legacy::LegacyFile;
use crate::netconf::NetConf;
use crate::pipeline::engine_of;
use crate::state::StateDir;
use crate::steps::ipam::{cni_args_text, Budget};
use crate::steps::IpamStep;
use userspace_cni_api::{codes, Adoption, AttachmentId, CniError};

pub async fn del(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let id = super::plan::attachment_id(inv)?;
    // The engine must still be one we know, even when there is nothing to delete.
    inv.registry.get(engine_of(conf)?)?;
    let state = StateDir::at(&inv.settings.state_dir);
    let legacy = legacy_file(inv, &id);
    if !state.root().exists() && legacy.is_none() {
        tracing::debug!("no state dir: nothing was added on this node");
        return ipam_del_without_record(inv, conf, &id).await;
    }
    if legacy.is_some() {
        // Just upgraded from the upstream plugin: the lock needs the state dir.
        state.ensure()?;
    }
    let lock = state.lock_attachment(&id, inv.settings.timeout()).await?;
    let found = match state.read_record(&id) {
        // Another attachment's record under the same file name: not ours to touch; this
        // attachment has none (ADD refused the name with code 101).
        Err(e @ crate::state::StateError::Mismatch { .. }) => {
            tracing::warn!(error = %e, "DEL: the record under this name is another attachment's; leaving it");
            None
        }
        // A write cut short by a power loss: the record names nothing any more. Its dataplane
        // objects are found by their ownership tags; the rest is the no-record path.
        Err(crate::state::StateError::Torn { path, reason }) => {
            tracing::warn!(path = %path.display(), %reason, "DEL: torn record; removing the attachment's tagged objects");
            remove_tagged(inv, conf, &id).await?;
            state.remove_torn(&path)?;
            None
        }
        other => other?,
    };
    let Some(record) = found else {
        // Under the lock, so a concurrent ADD of the same attachment cannot lose its lease.
        let released = match &legacy {
            Some(file) => del_legacy(inv, conf, &state, file).await,
            None => {
                tracing::debug!(cid = %id.container_id, ifname = %id.ifname, "no record: nothing to delete");
                ipam_del_without_record(inv, conf, &id).await
            }
        };
        lock.release_and_remove();
        return released;
    };
    teardown(inv, &state, &record).await?;
    lock.release_and_remove();
    Ok(())
}

/// Tear a record down as this invocation's verb (DEL, or GC's teardown of a stale attachment).
pub async fn teardown(inv: &Invocation<'_>, state: &StateDir, record: &crate::plan::Record) -> Result<(), CniError> {
    crate::pipeline::teardown(inv.env.command, inv.settings, inv.registry, state, record).await
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

/// Remove every dataplane object tagged as this attachment's (network, full container id,
/// ifname), as GC would; "not found" is success, an unreachable dataplane code 11 (retry).
async fn remove_tagged(inv: &Invocation<'_>, conf: &NetConf, id: &AttachmentId) -> Result<(), CniError> {
    let backend = inv.registry.get(engine_of(conf)?)?;
    for obj in backend.list_owned(inv.settings, &conf.name).await? {
        if backend.owned_by(&obj, id) {
            backend.remove_owned(inv.settings, &obj).await?;
        }
    }
    Ok(())
}

/// The upstream plugin's state file for this attachment, if any. One that cannot be read is
/// logged and left for the operator: DEL never fails for lack of state.
fn legacy_file(inv: &Invocation<'_>, id: &AttachmentId) -> Option<LegacyFile> {
    match crate::legacy::for_attachment(inv.settings, id) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the upstream plugin's state file");
            None
        }
    }
}

/// No record of ours, but the upstream plugin's state file: build the record its ADD would have
/// had (from this DEL's config and environment), adopt the dataplane object it names, and tear
/// everything down; the state file goes last. An object that is not what the plan describes (on
/// another bridge, another attachment's) is left alone with the file, and only the lease is
/// released. OVS unreachable is code 11 with the file kept, so the runtime retries.
async fn del_legacy(
    inv: &Invocation<'_>,
    conf: &NetConf,
    state: &StateDir,
    legacy: &LegacyFile,
) -> Result<(), CniError> {
    let id = super::plan::attachment_id(inv)?;
    let att = super::plan::attachment(inv, conf)?;
    let req = super::plan::request(inv, conf, &att);
    match crate::pipeline::adopt::adopt_legacy(&req, inv.registry, legacy, false).await {
        Ok((record, Adoption::Adopted { .. } | Adoption::Missing { .. })) => {
            tracing::info!(file = %legacy.path.display(), "removing an attachment of the upstream plugin");
            teardown(inv, state, &record).await?;
            crate::legacy::remove(&legacy.path)?;
            Ok(())
        }
        Ok((_, Adoption::Mismatch { object, reason })) => {
            tracing::warn!(
                %object, %reason, file = %legacy.path.display(),
                "the upstream state file names an object that is not this attachment's; leaving both"
            );
            ipam_del_without_record(inv, conf, &id).await
        }
        Err(e) if e.code == codes::TRY_AGAIN_LATER => Err(e),
        Err(e) => {
            tracing::warn!(
                error = %e, file = %legacy.path.display(),
                "cannot plan the upstream plugin's attachment; only its lease is released"
            );
            ipam_del_without_record(inv, conf, &id).await
        }
    }
}
