//! The "save state" step: completes the attachment record with the outputs. Its undo marks the
//! record as being torn down; the record file itself is removed by the verb once every other
//! undo has succeeded, so it keeps naming what is left until nothing is.

use crate::plan::Record;
use crate::state::StateDir;
use userspace_cni_api::{async_trait, CniError, Step, StepContext};

pub struct SaveState {
    pub state: StateDir,
    pub record: Record,
}

#[async_trait]
impl Step for SaveState {
    fn name(&self) -> &'static str {
        crate::plan::stages::SAVE_STATE
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let mut rec = self.record.clone();
        rec.complete = true;
        rec.outputs = Some(ctx.outputs.clone());
        self.state.write_record(&rec)?;
        Ok(())
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let Some(mut rec) = self.state.read_record(&ctx.attachment.id)? else { return Ok(()) };
        if rec.complete {
            rec.complete = false;
            self.state.write_record(&rec)?;
        }
        Ok(())
    }
}
