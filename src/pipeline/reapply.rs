//! Re-applying a complete attachment in place: what kubelet's Prepare of an already prepared
//! claim needs (after a node reboot the socket dir, CDI specs and metadata are gone; after an
//! OVS restart the port may be). Each stage is made to hold again: generic steps whose apply is
//! idempotent are applied again, the backend's objects are verified or repaired
//! (`Backend::repair`), and the record is written again with the outputs and this boot's id.
//! Never a cached answer.

use super::step_list::build_stage;
use crate::plan::{stages, Record, Stage};
use crate::state::StateDir;
use std::time::Instant;
use userspace_cni_api::{codes, Backend, CniError, NodeSettings, Repair, Verb};

/// Make everything `record` names hold again, by `deadline`. The caller holds the attachment's
/// lock; the node lock is taken here around the backend's repair (it may re-create a bridge).
/// Returns the record as rewritten, and what was re-done (one line each).
pub async fn reapply(
    settings: &NodeSettings,
    backend: &dyn Backend,
    state: &StateDir,
    record: &Record,
    deadline: Instant,
) -> Result<(Record, Vec<String>), CniError> {
    let mut ctx = record.step_context(Verb::Gc, settings);
    ctx.deadline = deadline;
    let mut actions = Vec::new();
    for stage in stages(&record.plan) {
        match stage {
            Stage::Backend => {
                let node = state.lock_node(ctx.wait_budget()).await?;
                let result = backend.repair(&mut ctx, &record.plan.backend).await;
                drop(node);
                if let Repair::Repaired(done) = result? {
                    actions.extend(done);
                }
            }
            Stage::SharedDir | Stage::DraMetadata | Stage::CdiSpec | Stage::DeviceInfo | Stage::ConfigFile => {
                for step in build_stage(stage, backend, state, record)? {
                    step.apply(&mut ctx).await?;
                }
            }
            // Not idempotent (a second IPAM ADD, a bind mount stacked on itself, annotations of a
            // pod that may be gone): the attachments that are prepared again have none of them.
            Stage::ShortDir | Stage::Ipam | Stage::Annotations => {
                return Err(CniError::new(
                    codes::INTERNAL,
                    format!("an attachment with a {} stage cannot be re-applied in place", stage.name().unwrap_or("?")),
                ))
            }
            Stage::SaveState => {}
        }
    }
    let mut updated = record.clone();
    updated.outputs = Some(ctx.outputs);
    updated.complete = true;
    // Re-stamped: the attachment holds in this boot (the Prepare-again rule reads it).
    if let Some(boot) = settings.current_boot_id() {
        updated.boot_id = Some(boot);
    }
    state.write_record(&updated)?;
    Ok((updated, actions))
}
