//! Attaching: the record created exclusively before the first side effect, then the record's
//! steps applied in order, the applied prefix undone in reverse on failure. Shared by the CNI
//! ADD and the DRA plugin's Prepare; the caller holds the attachment's lock.

use super::{apply_all, build_steps};
use crate::plan::Record;
use crate::state::{StateDir, StateError};
use std::sync::Arc;
use std::time::Instant;
use userspace_cni_api::{codes, Backend, CniError, NodeSettings, Outputs, StepContext, Verb};

/// Why an attach failed, and whether its record is gone (a clean rollback) or kept (an undo
/// failed: the record names what is left, for DEL or the reconciler).
#[derive(Debug)]
pub struct AttachFailure {
    pub error: CniError,
    pub record_removed: bool,
}

impl From<CniError> for AttachFailure {
    fn from(error: CniError) -> Self {
        AttachFailure { error, record_removed: false }
    }
}

/// Create `record` (exclusively: code 100 when this attachment has one, 101 when another's
/// record has the same file name; nothing is undone then) and apply its steps by `deadline`.
/// On success the context holds the outputs (the record was completed by its save-state step).
pub async fn attach(
    verb: Verb,
    settings: &NodeSettings,
    backend: &dyn Backend,
    state: &StateDir,
    record: &Record,
    deadline: Instant,
) -> Result<StepContext, AttachFailure> {
    if let Err(e) = state.create_record(record) {
        if let StateError::Exists { .. } = e {
            if let Err(m @ StateError::Mismatch { .. }) = state.read_record(&record.attachment.id) {
                return Err(CniError::new(codes::NAME_COLLISION, m.to_string()).into());
            }
        }
        return Err(CniError::from(e).into());
    }
    let steps = match build_steps(backend, state, record) {
        Ok(s) => s,
        Err(error) => {
            // Nothing ran: the record goes with the error.
            let _ = state.remove_record(&record.attachment.id);
            return Err(AttachFailure { error, record_removed: true });
        }
    };
    let mut ctx = StepContext {
        verb,
        attachment: record.attachment.clone(),
        settings: Arc::new(settings.clone()),
        shared_dir: record.plan.shared_dir.clone(),
        deadline,
        outputs: Outputs { socket: record.plan.backend.socket.clone(), ..Outputs::default() },
        no_effect: false,
    };
    let Err(failure) = apply_all(&steps, &mut ctx, state).await else { return Ok(ctx) };
    if failure.undo_errors.is_empty() {
        // The step's error is what the caller must see; a record that cannot be removed is
        // named in the details (DEL removes it).
        let mut error = failure.error;
        let removed = match state.remove_record(&record.attachment.id) {
            Ok(_) => true,
            Err(e) => {
                error.details = format!("the rolled-back record could not be removed, run DEL: {e}");
                false
            }
        };
        return Err(AttachFailure { error, record_removed: removed });
    }
    let undo = failure.undo_errors.0.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; ");
    tracing::error!(%undo, "rollback incomplete; the record is kept so a teardown can finish");
    let mut error = failure.error;
    error.details = format!("rollback incomplete, run DEL to finish the clean-up: {undo}");
    Err(AttachFailure { error, record_removed: false })
}
