//! Teardown: undo every step of a record in reverse and remove the record once everything it
//! names is gone. Shared by every front-end (DEL and GC, the reconciler, `forget`, DEL of an
//! upstream attachment); needs no CNI environment, only the record.

use super::{build_steps, undo_all, Registry};
use crate::plan::Record;
use crate::state::StateDir;
use userspace_cni_api::{CniError, NodeSettings, Verb};

/// Tear `record` down as `verb` (DEL, GC). The caller holds the attachment lock. On any undo
/// error the record stays: it names what is left, and the caller retries.
pub async fn teardown(
    verb: Verb,
    settings: &NodeSettings,
    registry: &Registry,
    state: &StateDir,
    record: &Record,
) -> Result<(), CniError> {
    // The record's own engine decides, not today's stdin.
    let backend = registry.get(&record.plan.engine)?;
    let steps = build_steps(backend.as_ref(), state, record)?;
    let mut ctx = record.step_context(verb, settings);
    let errors = undo_all(&steps, &mut ctx, state).await;
    if !errors.is_empty() {
        return errors.into_result();
    }
    state.remove_record(&record.attachment.id)?;
    Ok(())
}
