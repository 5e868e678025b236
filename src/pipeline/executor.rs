//! The executor: the only place that sequences steps, holds the node lock across runs of steps
//! that need it, hits the before/after/undo failpoints and times each step in a tracing span.

use crate::state::{LockGuard, StateDir};
use backend_api::failpoint::{self, Phase};
use backend_api::{CniError, ErrorList, Step, StepContext};
use std::time::Instant;
use tracing::Instrument;

/// ADD failed: the step error, and the errors of undos that could not finish the rollback (then
/// the record is kept so a later DEL can finish the clean-up).
#[derive(Debug)]
pub struct ApplyFailure {
    pub error: CniError,
    pub failed_step: &'static str,
    pub undo_errors: ErrorList,
}

/// Take or release the node lock so that it is held exactly while `wanted`.
async fn sync_node_lock(
    wanted: bool,
    held: &mut Option<LockGuard>,
    state: &StateDir,
    ctx: &StepContext,
) -> Result<(), CniError> {
    match (wanted, held.is_some()) {
        (true, false) => *held = Some(state.lock_node(ctx.wait_budget()).await?),
        (false, true) => *held = None,
        _ => {}
    }
    Ok(())
}

/// Apply every step in order. On the first failure, undo that step and every applied one in
/// reverse (a step's undo tolerates what never happened) and return the original error.
pub async fn apply_all(steps: &[Box<dyn Step>], ctx: &mut StepContext, state: &StateDir) -> Result<(), ApplyFailure> {
    let mut node_lock = None;
    for (i, step) in steps.iter().enumerate() {
        let name = step.name();
        let started = Instant::now();
        let span = tracing::info_span!("step", step = name, verb = ctx.verb.as_str(), op = "apply");
        ctx.no_effect = false;
        let result = async {
            sync_node_lock(step.needs_node_lock(), &mut node_lock, state, ctx).await?;
            failpoint::hit(name, Phase::Before)?;
            step.apply(ctx).await?;
            failpoint::hit(name, Phase::After)
        }
        .instrument(span.clone())
        .await;
        span.in_scope(|| tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok()));
        if let Err(error) = result {
            tracing::warn!(step = name, %error, "step failed; rolling back");
            // The failed step is undone too (it may have half-happened), unless it reported
            // that it failed before changing anything.
            let applied = if ctx.no_effect { i } else { i + 1 };
            let undo_errors = undo_range(&steps[..applied], ctx, state, &mut node_lock).await;
            return Err(ApplyFailure { error, failed_step: name, undo_errors });
        }
    }
    Ok(())
}

/// Undo every step in reverse (DEL, GC), continuing past failures; all errors are returned.
pub async fn undo_all(steps: &[Box<dyn Step>], ctx: &mut StepContext, state: &StateDir) -> ErrorList {
    let mut node_lock = None;
    undo_range(steps, ctx, state, &mut node_lock).await
}

async fn undo_range(
    steps: &[Box<dyn Step>],
    ctx: &mut StepContext,
    state: &StateDir,
    node_lock: &mut Option<LockGuard>,
) -> ErrorList {
    let mut errors = ErrorList::default();
    for step in steps.iter().rev() {
        let name = step.name();
        let started = Instant::now();
        let span = tracing::info_span!("step", step = name, verb = ctx.verb.as_str(), op = "undo");
        let result = async {
            sync_node_lock(step.needs_node_lock(), node_lock, state, ctx).await?;
            failpoint::hit(name, Phase::Undo)?;
            step.undo(ctx).await
        }
        .instrument(span.clone())
        .await;
        span.in_scope(|| tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok()));
        if let Err(e) = result {
            tracing::warn!(step = name, error = %e, "undo failed; continuing");
            errors.push(e.context(format!("undo {name}")));
        }
    }
    *node_lock = None;
    errors
}
