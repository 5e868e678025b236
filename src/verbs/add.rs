//! ADD: validate everything, create the record exclusively, apply the steps, complete the record,
//! return the result. On failure the applied prefix is undone and the record removed, unless an
//! undo failed: then the record stays so the runtime's DEL can finish the clean-up.

use super::plan::{attachment, request};
use crate::pipeline::{build_steps, engine_of, make_plan};
use super::Invocation;
use crate::cni::version::CniVersion;
use crate::netconf::NetConf;
use crate::pipeline::apply_all;
use crate::plan::{Record, RECORD_FORMAT};
use crate::state::StateDir;
use crate::steps::publish;
use backend_api::{CniError, Outputs, StepContext};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub async fn add(inv: &Invocation<'_>, conf: &NetConf, version: CniVersion) -> Result<serde_json::Value, CniError> {
    // 1. Validate all, no side effects.
    let att = attachment(inv, conf)?;
    crate::steps::netns::check(att.netns.as_deref())?;
    let backend = inv.registry.get(engine_of(conf)?)?;
    let plan = make_plan(&request(inv, conf, &att), backend.as_ref()).await?;

    // 2. The record, created exclusively before the first side effect.
    let state = StateDir::at(&inv.settings.state_dir);
    state.ensure()?;
    let lock = state.lock_attachment(&att.id, inv.settings.timeout()).await?;
    let record = Record {
        format: RECORD_FORMAT,
        complete: false,
        created_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        cni_version: version.as_str().to_owned(),
        attachment: att.clone(),
        config: conf.raw.clone(),
        plan,
        outputs: None,
    };
    if let Err(e) = state.create_record(&record) {
        // The file name is taken: by this attachment (code 100), or by another whose
        // `<cid>_<ifname>` spells the same (code 101); never undo either.
        if let crate::state::StateError::Exists { .. } = e {
            if let Err(m @ crate::state::StateError::Mismatch { .. }) = state.read_record(&record.attachment.id) {
                return Err(CniError::new(backend_api::codes::NAME_COLLISION, m.to_string()));
            }
        }
        return Err(e.into());
    }

    // 3. The steps, undone in reverse on failure.
    let steps = build_steps(backend.as_ref(), &state, &record)?;
    let mut ctx = StepContext {
        verb: inv.env.command,
        attachment: att,
        settings: Arc::new(inv.settings.clone()),
        shared_dir: record.plan.shared_dir.clone(),
        deadline: Instant::now() + inv.settings.deadline(),
        outputs: Outputs { socket: record.plan.backend.socket.clone(), ..Outputs::default() },
        no_effect: false,
    };
    if let Err(failure) = apply_all(&steps, &mut ctx, &state).await {
        if failure.undo_errors.is_empty() {
            // The step's error is what the runtime must see; a record that cannot be removed is
            // named in the details (DEL removes it).
            let mut err = failure.error;
            if let Err(e) = state.remove_record(&record.attachment.id) {
                err.details = format!("the rolled-back record could not be removed, run DEL: {e}");
            }
            lock.release_and_remove();
            return Err(err);
        }
        // Report the original error; keep the record (marked incomplete) for DEL.
        let undo = failure.undo_errors.0.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; ");
        tracing::error!(%undo, "rollback incomplete; the record is kept so DEL can finish");
        let mut err = failure.error;
        err.details = format!("rollback incomplete, run DEL to finish the clean-up: {undo}");
        return Err(err);
    }
    drop(lock);
    Ok(publish::cni_result(&ctx.attachment, &ctx.outputs)?.to_json(version))
}
