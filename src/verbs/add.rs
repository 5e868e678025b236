//! ADD: validate everything, create the record exclusively, apply the steps, complete the record,
//! return the result. On failure the applied prefix is undone and the record removed, unless an
//! undo failed: then the record stays so the runtime's DEL can finish the clean-up.

use super::plan::{attachment, request};
use super::Invocation;
use crate::cni::version::CniVersion;
use crate::netconf::NetConf;
use crate::pipeline::{attach, engine_of, make_plan};
use crate::plan::{Record, RECORD_FORMAT_CNI};
use crate::state::StateDir;
use crate::steps::publish;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use userspace_cni_api::CniError;

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
        format: RECORD_FORMAT_CNI,
        complete: false,
        created_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        boot_id: inv.settings.current_boot_id(),
        cni_version: version.as_str().to_owned(),
        attachment: att.clone(),
        config: conf.raw.clone(),
        plan,
        outputs: None,
    };
    let deadline = Instant::now() + inv.settings.deadline();
    let ctx = match attach(inv.env.command, inv.settings, backend.as_ref(), &state, &record, deadline).await {
        Ok(ctx) => ctx,
        Err(failure) => {
            if failure.record_removed {
                lock.release_and_remove();
            }
            return Err(failure.error);
        }
    };
    drop(lock);
    Ok(publish::cni_result(&ctx.attachment, &ctx.outputs)?.to_json(version))
}
