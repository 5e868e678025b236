//! The executor: the only place that sequences steps, holds the node lock across runs of steps
//! that need it (releasing it before the last step's `settle`), hits the before/after/undo
//! failpoints and times each step in a tracing span.

use crate::state::{LockGuard, StateDir};
use std::time::Instant;
use tracing::Instrument;
use userspace_cni_api::failpoint::{self, Phase};
use userspace_cni_api::{CniError, ErrorList, Step, StepContext};

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
        let next_needs_lock = steps.get(i + 1).is_some_and(|s| s.needs_node_lock());
        let result = async {
            sync_node_lock(step.needs_node_lock(), &mut node_lock, state, ctx).await?;
            failpoint::hit(name, Phase::Before)?;
            step.apply(ctx).await?;
            // The commit is done: the waiting (e.g. for ovs-vswitchd) happens outside the node
            // lock unless the next step needs it anyway.
            if !next_needs_lock {
                node_lock = None;
            }
            step.settle(ctx).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use userspace_cni_api::{async_trait, Attachment, AttachmentId, NodeSettings, Outputs, PodRef, Verb};

    /// A step that records, in `apply` and `settle`, whether the node lock was free.
    struct Probe {
        name: &'static str,
        locked: bool,
        state: StateDir,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Probe {
        async fn note(&self, phase: &str) {
            let free = self.state.lock_node(Duration::ZERO).await.is_ok();
            let held = if free { "free" } else { "held" };
            self.seen.lock().expect("seen").push(format!("{} {phase}: node lock {held}", self.name));
        }
    }

    #[async_trait]
    impl Step for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn needs_node_lock(&self) -> bool {
            self.locked
        }
        async fn apply(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
            self.note("apply").await;
            Ok(())
        }
        async fn settle(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
            self.note("settle").await;
            Ok(())
        }
        async fn undo(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
            Ok(())
        }
    }

    /// The waiting part of a run of locked steps happens after the lock is released, except
    /// where the next step needs the lock anyway.
    #[tokio::test]
    async fn the_last_locked_step_settles_outside_the_node_lock() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("state");
        let state = StateDir::at(&dir);
        state.ensure().expect("state dir");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = |name, locked| -> Box<dyn Step> {
            Box::new(Probe { name, locked, state: StateDir::at(&dir), seen: seen.clone() })
        };
        let steps = vec![probe("bridge", true), probe("port", true), probe("publish", false)];
        let mut ctx = StepContext {
            verb: Verb::Add,
            attachment: Attachment {
                id: AttachmentId::new("c1", "net1"),
                network: "n".into(),
                netns: None,
                pod: PodRef::default(),
                mac: None,
            },
            settings: Arc::new(NodeSettings::default()),
            shared_dir: None,
            deadline: std::time::Instant::now() + Duration::from_secs(5),
            outputs: Outputs::default(),
            no_effect: false,
        };
        apply_all(&steps, &mut ctx, &state).await.map_err(|f| f.error).expect("apply");
        assert_eq!(
            *seen.lock().expect("seen"),
            [
                "bridge apply: node lock held",
                "bridge settle: node lock held",
                "port apply: node lock held",
                "port settle: node lock free",
                "publish apply: node lock free",
                "publish settle: node lock free",
            ]
        );
    }
}
