//! The conformance kit: runs any `Backend` through the step contract (`crate::step`) the way the
//! plugin drives it (apply in order, roll back the applied prefix, tear down from the record in
//! another process after a crash) and reports every broken rule. Never panics on what a backend
//! or harness does: each check returns a `Report` a test asserts on.
//!
//! The author supplies a `Harness`: a fresh node per scenario, an inspector ("what does the
//! dataplane hold of this attachment?"), a simulated dataplane restart and, optionally, a way to
//! make the dataplane unreachable. The kit models the plugin's executor faithfully:
//! - ADD runs one step list (one process, one connection) and on a failure of step k undoes k
//!   (unless it set `no_effect`) and every earlier step in reverse, with the same list;
//! - DEL runs a fresh step list from the record, with the outputs the record holds: those of the
//!   complete ADD, or none when ADD died before its record was completed;
//! - a rollback whose undo failed keeps the record, so a later DEL must finish the job.

use async_trait::async_trait;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use userspace_cni_api::attachment::{Attachment, SharedDir};
use userspace_cni_api::backend::{Backend, BackendPlan, OwnedObject, PlanRequest, Repair};
use userspace_cni_api::failpoint::{self, Phase};
use userspace_cni_api::settings::NodeSettings;
use userspace_cni_api::spec::InterfaceSpec;
use userspace_cni_api::step::{Outputs, Step, StepContext};
use userspace_cni_api::Verb;

/// A step's apply and, when that succeeded, its settle: what the executor runs for one step.
async fn apply_settled(step: &dyn Step, ctx: &mut StepContext) -> Result<(), userspace_cni_api::CniError> {
    step.apply(ctx).await?;
    step.settle(ctx).await
}

/// Why a harness could not do what the kit asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The harness cannot simulate this (the check is reported as skipped, with the reason).
    #[error("not supported by this harness: {0}")]
    Unsupported(&'static str),
    /// The harness tried and failed (the check is reported as failed).
    #[error("harness failed: {0}")]
    Failed(String),
}

/// One attachment on a fresh node, as the plugin's generic code would hand it to the backend.
pub struct Fixture {
    /// The node's settings: every path under a temporary root, the dataplane's endpoint.
    pub settings: NodeSettings,
    /// An attachment (container id, ifname, network) no earlier fixture used.
    pub attachment: Attachment,
    /// The `host` and `container` config objects, as the config parser fills them.
    pub host: InterfaceSpec,
    pub container: InterfaceSpec,
    /// The pod's shared directory. The kit creates `host` (mode 0700) when the plan says it is
    /// used, as the generic shared-dir step does before the backend's steps.
    pub shared_dir: SharedDir,
    pub socket_name_from_device_plugin: bool,
    /// Whatever the harness must keep alive until the check ends (a temp dir, say); dropped
    /// with the fixture, also when the check fails.
    pub guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// What a backend author implements to run the kit against their dataplane.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new instance of the backend under test.
    fn backend(&self) -> Box<dyn Backend>;

    /// The configurations every check runs under (e.g. `["client", "server"]`); at least one.
    fn cases(&self) -> Vec<&'static str>;

    /// A fresh node for `case`, whose dataplane holds nothing of the attachment it names.
    async fn fresh(&self, case: &str) -> Result<Fixture, HarnessError>;

    /// Everything the dataplane (and any file the backend manages) holds of this attachment, one
    /// line per object; empty when nothing. Must see what a complete apply made (the kit checks
    /// it does, or "leaves nothing" would prove nothing).
    async fn holdings(&self, fx: &Fixture, plan: &BackendPlan) -> Result<Vec<String>, HarnessError>;

    /// Restart the dataplane the way the real one restarts (losing what it loses), and return
    /// once it serves again.
    async fn restart(&self, fx: &Fixture, plan: &BackendPlan) -> Result<(), HarnessError>;

    /// Make the dataplane unreachable (`up == false`: connections refused or unanswered) or
    /// reachable again, keeping its configuration. The default cannot, and the no-effect check
    /// for an unreachable dataplane is reported as skipped.
    async fn set_reachable(&self, _fx: &Fixture, _up: bool) -> Result<(), HarnessError> {
        Err(HarnessError::Unsupported("set_reachable"))
    }
}

/// One (check, case) that did not pass, or was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub case: String,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.check, self.case, self.detail)
    }
}

/// The outcome of one or more checks: what passed, what was skipped, what failed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// (check, case) pairs that ran and passed.
    pub passed: Vec<(&'static str, String)>,
    /// Parts of a check that do not apply (a harness that cannot make its dataplane unreachable,
    /// a step without a mid-step failpoint). Never a failure, always listed.
    pub skipped: Vec<Finding>,
    pub failures: Vec<Finding>,
}

impl Report {
    /// No failure (and something ran).
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && !self.passed.is_empty()
    }

    pub fn merge(&mut self, other: Report) {
        self.passed.extend(other.passed);
        self.skipped.extend(other.skipped);
        self.failures.extend(other.failures);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance: {} passed, {} failed, {} skipped part(s)",
            self.passed.len(),
            self.failures.len(),
            self.skipped.len()
        )?;
        for (check, case) in &self.passed {
            writeln!(f, "  ok    {check} [{case}]")?;
        }
        for s in &self.skipped {
            writeln!(f, "  skip  {s}")?;
        }
        for x in &self.failures {
            writeln!(f, "  FAIL  {x}")?;
        }
        Ok(())
    }
}

/// Run every check (each over every case) and merge their reports.
pub async fn run_all(h: &dyn Harness) -> Report {
    let mut r = Report::default();
    r.merge(undo_before_apply_is_a_no_op(h).await);
    r.merge(apply_then_undo_leaves_nothing(h).await);
    r.merge(undo_twice_succeeds(h).await);
    r.merge(failed_apply_leaves_nothing(h).await);
    r.merge(check_passes_after_apply_and_fails_after_undo(h).await);
    r.merge(repair_after_restart_restores(h).await);
    r.merge(kill_at_every_step_boundary_then_teardown_leaves_nothing(h).await);
    r.merge(gc_finds_and_removes_by_tags_and_status_answers(h).await);
    r
}

/// The injected failures are process-wide: one check runs at a time in a process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One case of one check, borrowed from the caller for its run.
type Scenario<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What one scenario found: failures, and parts that did not apply.
#[derive(Default)]
struct Tally {
    fails: Vec<String>,
    skips: Vec<String>,
}

impl Tally {
    fn fail(&mut self, s: impl Into<String>) {
        self.fails.push(s.into());
    }
}

/// Run `scenario` once per case of the harness, each under the kit's lock.
async fn each_case<F>(h: &dyn Harness, check: &'static str, scenario: F) -> Report
where
    F: for<'a> Fn(&'a dyn Harness, &'a str, &'a mut Tally) -> Scenario<'a>,
{
    let _one = ONE_AT_A_TIME.lock().await;
    let mut report = Report::default();
    let cases = h.cases();
    if cases.is_empty() {
        report.failures.push(Finding { check, case: String::new(), detail: "the harness names no case".into() });
    }
    for case in cases {
        let mut t = Tally::default();
        scenario(h, case, &mut t).await;
        failpoint::inject(None);
        let finding = |detail: String| Finding { check, case: case.to_owned(), detail };
        report.skipped.extend(t.skips.into_iter().map(finding));
        if t.fails.is_empty() {
            report.passed.push((check, case.to_owned()));
        } else {
            report.failures.extend(t.fails.into_iter().map(finding));
        }
    }
    report
}

/// Undo of every step on a fresh node, before any apply (DEL after an ADD killed before its
/// first step): every undo succeeds and the dataplane holds nothing afterwards.
pub async fn undo_before_apply_is_a_no_op(h: &dyn Harness) -> Report {
    each_case(h, "undo_before_apply_is_a_no_op", |h, case, t| {
        Box::pin(async move {
            let Some(a) = Attempt::new(h, case, t).await else { return };
            if let Some(left) = a.leftovers(t).await {
                if !left.is_empty() {
                    t.fail(format!("a fresh node already holds {left:?}: the harness's fixture is not fresh"));
                    return;
                }
            }
            a.teardown(Outputs::default(), "DEL before any apply", t).await;
            a.expect_nothing_left("after undo before apply", t).await;
        })
    })
    .await
}

/// Apply every step, then tear down from the record: nothing is left, and the inspector saw
/// what the apply made.
pub async fn apply_then_undo_leaves_nothing(h: &dyn Harness) -> Report {
    each_case(h, "apply_then_undo_leaves_nothing", |h, case, t| {
        Box::pin(async move {
            let Some(a) = Attempt::new(h, case, t).await else { return };
            let Some(outputs) = a.apply_complete(t).await else { return };
            a.teardown(outputs, "DEL after a complete ADD", t).await;
            a.expect_nothing_left("after DEL", t).await;
        })
    })
    .await
}

/// DEL twice (the runtime retries DEL): the second succeeds and finds nothing to do.
pub async fn undo_twice_succeeds(h: &dyn Harness) -> Report {
    each_case(h, "undo_twice_succeeds", |h, case, t| {
        Box::pin(async move {
            let Some(a) = Attempt::new(h, case, t).await else { return };
            let Some(outputs) = a.apply_complete(t).await else { return };
            a.teardown(outputs.clone(), "first DEL", t).await;
            a.teardown(outputs, "second DEL", t).await;
            a.expect_nothing_left("after two DELs", t).await;
        })
    })
    .await
}

/// The no-effect rules, for every step k, after steps 0..k applied:
/// - the dataplane unreachable: apply k fails; if it claims `no_effect` the dataplane holds
///   exactly what it held before; the executor's rollback (or, if an undo fails, the DEL that
///   the kept record calls for) leaves nothing;
/// - an error injected in the middle of apply k (its `during` failpoint, after its side
///   effect): the rollback leaves nothing;
/// - an error right after apply k succeeded (the executor's `after` failpoint): the rollback,
///   which undoes k too, leaves nothing.
pub async fn failed_apply_leaves_nothing(h: &dyn Harness) -> Report {
    each_case(h, "failed_apply_leaves_nothing", |h, case, t| {
        Box::pin(async move {
            let Some(probe) = Attempt::new(h, case, t).await else { return };
            let Some(n) = probe.step_count(t) else { return };
            drop(probe);
            let mut unreachable_supported = true;
            for k in 0..n {
                if unreachable_supported {
                    unreachable_supported = failed_apply_unreachable(h, case, k, t).await;
                }
                failed_apply_injected(h, case, k, Phase::During, t).await;
                failed_apply_injected(h, case, k, Phase::After, t).await;
            }
        })
    })
    .await
}

/// Step k applied with the dataplane unreachable. Returns false when the harness cannot do that.
async fn failed_apply_unreachable(h: &dyn Harness, case: &str, k: usize, t: &mut Tally) -> bool {
    let Some(a) = Attempt::new(h, case, t).await else { return true };
    let Some(steps) = a.steps(t) else { return true };
    let name = steps[k].name();
    let mut ctx = a.add_context();
    if !a.apply_range(&steps, &mut ctx, 0..k, t).await {
        return true;
    }
    let Some(before) = a.leftovers(t).await else { return true };
    match a.bounded("set_reachable(false)", h.set_reachable(&a.fx, false)).await {
        Ok(Ok(())) => {}
        Ok(Err(HarnessError::Unsupported(what))) => {
            t.skips.push(format!("no-effect with an unreachable dataplane: the harness does not implement {what}"));
            a.rollback(&steps, &mut ctx, k, t).await;
            return false;
        }
        Ok(Err(e)) | Err(e) => {
            t.fail(format!("making the dataplane unreachable: {e}"));
            a.rollback(&steps, &mut ctx, k, t).await;
            return true;
        }
    }
    ctx.no_effect = false;
    let applied = a.bounded(name, apply_settled(&*steps[k], &mut ctx)).await;
    if let Err(e) = a.bounded("set_reachable(true)", h.set_reachable(&a.fx, true)).await.and_then(|r| r) {
        t.fail(format!("making the dataplane reachable again: {e}"));
        return true;
    }
    let what = format!("step {k} ({name}) applied with the dataplane unreachable");
    match applied {
        Ok(Ok(())) => {
            // A step that never talks to the dataplane (a file move, say) may well succeed.
            t.skips.push(format!("{what} succeeded: it does not need the dataplane"));
            a.rollback(&steps, &mut ctx, k + 1, t).await;
        }
        Ok(Err(_)) | Err(_) => {
            if ctx.no_effect {
                if let Some(after) = a.leftovers(t).await {
                    if after != before {
                        t.fail(format!(
                            "{what} failed with no_effect set but changed the dataplane: before {before:?}, after {after:?}"
                        ));
                    }
                }
            }
            let applied = if ctx.no_effect { k } else { k + 1 };
            a.rollback(&steps, &mut ctx, applied, t).await;
        }
    }
    a.expect_nothing_left(&format!("after the rollback of {what}"), t).await;
    true
}

/// Step k fails through an injected error `phase` (during: inside the step; after: once it
/// succeeded, as the executor's failpoint does).
async fn failed_apply_injected(h: &dyn Harness, case: &str, k: usize, phase: Phase, t: &mut Tally) {
    let Some(a) = Attempt::new(h, case, t).await else { return };
    let Some(steps) = a.steps(t) else { return };
    let name = steps[k].name();
    let mut ctx = a.add_context();
    if !a.apply_range(&steps, &mut ctx, 0..k, t).await {
        return;
    }
    let what = format!("step {k} ({name}) failing {}", phase.as_str());
    ctx.no_effect = false;
    let failed = match phase {
        Phase::During => {
            failpoint::inject(Some((name, Phase::During)));
            let r = a.bounded(name, apply_settled(&*steps[k], &mut ctx)).await;
            failpoint::inject(None);
            match r {
                Ok(Ok(())) => {
                    t.skips.push(format!("step {k} ({name}) has no mid-step failpoint"));
                    false
                }
                Ok(Err(_)) | Err(_) => true,
            }
        }
        _ => match a.bounded(name, apply_settled(&*steps[k], &mut ctx)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                t.fail(format!("step {k} ({name}) apply: {e}"));
                false
            }
            Err(e) => {
                t.fail(format!("step {k} ({name}) apply: {e}"));
                false
            }
        },
    };
    let applied = if failed && ctx.no_effect && phase == Phase::During { k } else { k + 1 };
    a.rollback(&steps, &mut ctx, applied, t).await;
    a.expect_nothing_left(&format!("after the rollback of {what}"), t).await;
}

/// CHECK after a complete apply passes; after DEL it fails (the dataplane no longer holds it).
pub async fn check_passes_after_apply_and_fails_after_undo(h: &dyn Harness) -> Report {
    each_case(h, "check_passes_after_apply_and_fails_after_undo", |h, case, t| {
        Box::pin(async move {
            let Some(a) = Attempt::new(h, case, t).await else { return };
            let Some(outputs) = a.apply_complete(t).await else { return };
            let ctx = a.context(Verb::Check, outputs.clone());
            match a.bounded("check", a.backend.check(&ctx, &a.plan)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => t.fail(format!("CHECK after a complete ADD failed: {e}")),
                Err(e) => t.fail(format!("CHECK after a complete ADD: {e}")),
            }
            a.teardown(outputs.clone(), "DEL", t).await;
            let ctx = a.context(Verb::Check, outputs);
            if let Ok(Ok(())) = a.bounded("check", a.backend.check(&ctx, &a.plan)).await {
                t.fail("CHECK after DEL passed: it does not look at the dataplane");
            }
            a.expect_nothing_left("after DEL", t).await;
        })
    })
    .await
}

/// After a simulated dataplane restart: the reconciler's dry run changes nothing, its repair
/// succeeds, CHECK passes, a second repair finds nothing to do, and DEL still leaves nothing.
pub async fn repair_after_restart_restores(h: &dyn Harness) -> Report {
    each_case(h, "repair_after_restart_restores", |h, case, t| {
        Box::pin(async move {
            let Some(a) = Attempt::new(h, case, t).await else { return };
            let Some(mut outputs) = a.apply_complete(t).await else { return };
            match a.bounded("restart", h.restart(&a.fx, &a.plan)).await {
                Ok(Ok(())) => {}
                Ok(Err(HarnessError::Unsupported(what))) => {
                    t.skips.push(format!("the harness does not implement {what}"));
                    a.teardown(outputs, "DEL", t).await;
                    return;
                }
                Ok(Err(e)) | Err(e) => {
                    t.fail(format!("restarting the dataplane: {e}"));
                    a.teardown(outputs, "DEL", t).await;
                    return;
                }
            }
            let Some(restarted) = a.leftovers(t).await else { return };
            let mut dry = a.context(Verb::Check, outputs.clone());
            match a.bounded("repair --dry-run", a.backend.repair(&mut dry, &a.plan)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => t.fail(format!("the dry-run repair after a restart failed: {e}")),
                Err(e) => t.fail(format!("the dry-run repair: {e}")),
            }
            if let Some(after_dry) = a.leftovers(t).await {
                if after_dry != restarted {
                    t.fail(format!(
                        "the dry-run repair changed the dataplane: before {restarted:?}, after {after_dry:?}"
                    ));
                }
            }
            let mut ctx = a.context(Verb::Gc, outputs.clone());
            match a.bounded("repair", a.backend.repair(&mut ctx, &a.plan)).await {
                Ok(Ok(_)) => outputs = ctx.outputs.clone(),
                Ok(Err(e)) => t.fail(format!("repair after a restart failed: {e}")),
                Err(e) => t.fail(format!("repair after a restart: {e}")),
            }
            let check = a.context(Verb::Check, outputs.clone());
            match a.bounded("check", a.backend.check(&check, &a.plan)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => t.fail(format!("CHECK after the repair failed: {e}")),
                Err(e) => t.fail(format!("CHECK after the repair: {e}")),
            }
            if let Some(held) = a.leftovers(t).await {
                if held.is_empty() {
                    t.fail("after the repair the dataplane holds nothing of the attachment");
                }
            }
            let mut again = a.context(Verb::Gc, outputs.clone());
            match a.bounded("second repair", a.backend.repair(&mut again, &a.plan)).await {
                Ok(Ok(Repair::Healthy)) => {}
                Ok(Ok(Repair::Repaired(actions))) => {
                    t.fail(format!("a second repair still found work to do: {actions:?}"))
                }
                Ok(Err(e)) => t.fail(format!("a second repair failed: {e}")),
                Err(e) => t.fail(format!("a second repair: {e}")),
            }
            a.teardown(outputs, "DEL after the repair", t).await;
            a.expect_nothing_left("after DEL of a repaired attachment", t).await;
        })
    })
    .await
}

/// The reconciler's half, for an attachment whose record is lost (a power loss): after a
/// complete apply, `list_owned` of its network finds objects `owned_by` the attachment; removing
/// each with `remove_owned`, from the tags alone, leaves `list_owned` finding none of them; a
/// second `remove_owned` (GC retried) succeeds; DEL from the record afterwards finds nothing to
/// do and leaves nothing. `status` answers Ok while the dataplane is reachable and an error while
/// it is not (where the harness can make it unreachable).
pub async fn gc_finds_and_removes_by_tags_and_status_answers(h: &dyn Harness) -> Report {
    each_case(h, "gc_finds_and_removes_by_tags_and_status_answers", |h, case, t| {
        Box::pin(async move {
            let Some(a) = Attempt::new(h, case, t).await else { return };
            let settings = &a.fx.settings;
            match a.bounded("status", a.backend.status(settings)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => t.fail(format!("status of a reachable dataplane failed: {e}")),
                Err(e) => t.fail(format!("status: {e}")),
            }
            match a.bounded("set_reachable(false)", h.set_reachable(&a.fx, false)).await {
                Ok(Ok(())) => {
                    let down = a.bounded("status", a.backend.status(settings)).await;
                    if let Err(e) = a.bounded("set_reachable(true)", h.set_reachable(&a.fx, true)).await.and_then(|r| r)
                    {
                        t.fail(format!("making the dataplane reachable again: {e}"));
                        return;
                    }
                    if let Ok(Ok(())) = down {
                        t.fail("status answered Ok while the dataplane was unreachable");
                    }
                }
                Ok(Err(HarnessError::Unsupported(what))) => {
                    t.skips.push(format!("status of an unreachable dataplane: the harness does not implement {what}"))
                }
                Ok(Err(e)) | Err(e) => t.fail(format!("making the dataplane unreachable: {e}")),
            }
            let Some(outputs) = a.apply_complete(t).await else { return };
            let id = &a.fx.attachment.id;
            let network = &a.fx.attachment.network;
            let mine = |owned: Vec<OwnedObject>| -> Vec<OwnedObject> {
                owned.into_iter().filter(|o| a.backend.owned_by(o, id)).collect()
            };
            let listed = a.bounded("list_owned", a.backend.list_owned(settings, network)).await;
            let found = match listed.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                Ok(owned) => mine(owned),
                Err(e) => {
                    t.fail(format!("list_owned({network}) after a complete ADD failed: {e}"));
                    a.teardown(outputs, "DEL", t).await;
                    return;
                }
            };
            if found.is_empty() {
                t.fail(format!(
                    "list_owned({network}) after a complete ADD found nothing owned_by the attachment: GC of a \
                     lost record could never find it"
                ));
                a.teardown(outputs, "DEL", t).await;
                return;
            }
            for round in ["remove_owned", "remove_owned again (GC retried)"] {
                for o in &found {
                    match a.bounded(round, a.backend.remove_owned(settings, o)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => t.fail(format!("{round} of {} {}: {e}", o.kind, o.name)),
                        Err(e) => t.fail(format!("{round} of {} {}: {e}", o.kind, o.name)),
                    }
                }
            }
            match a.bounded("list_owned", a.backend.list_owned(settings, network)).await {
                Ok(Ok(owned)) => {
                    let left = mine(owned);
                    if !left.is_empty() {
                        t.fail(format!("after remove_owned, list_owned still finds {left:?}"));
                    }
                }
                Ok(Err(e)) => t.fail(format!("list_owned after remove_owned failed: {e}")),
                Err(e) => t.fail(format!("list_owned after remove_owned: {e}")),
            }
            a.teardown(outputs, "DEL after GC removed the objects", t).await;
            a.expect_nothing_left("after GC and DEL", t).await;
        })
    })
    .await
}

/// A SIGKILL of ADD at every step boundary (after steps 0..k, and inside each step that has a
/// mid-step failpoint), and of DEL before the undo of each step: the next DEL, a fresh process
/// working from the record, leaves nothing. The record of a killed ADD has no outputs.
pub async fn kill_at_every_step_boundary_then_teardown_leaves_nothing(h: &dyn Harness) -> Report {
    each_case(h, "kill_at_every_step_boundary_then_teardown_leaves_nothing", |h, case, t| {
        Box::pin(async move {
            let Some(probe) = Attempt::new(h, case, t).await else { return };
            let Some(n) = probe.step_count(t) else { return };
            drop(probe);
            for k in 0..=n {
                let Some(a) = Attempt::new(h, case, t).await else { return };
                let Some(steps) = a.steps(t) else { return };
                let mut ctx = a.add_context();
                let ok = a.apply_range(&steps, &mut ctx, 0..k, t).await;
                // The process dies here: its steps (and their connections) go with it.
                drop(steps);
                if ok {
                    a.teardown(Outputs::default(), &format!("DEL after ADD was killed after {k} step(s)"), t).await;
                    a.expect_nothing_left(&format!("after ADD killed after {k} step(s) and DEL"), t).await;
                }
            }
            for k in 0..n {
                let Some(a) = Attempt::new(h, case, t).await else { return };
                let Some(steps) = a.steps(t) else { return };
                let name = steps[k].name();
                let mut ctx = a.add_context();
                if !a.apply_range(&steps, &mut ctx, 0..k, t).await {
                    continue;
                }
                failpoint::inject(Some((name, Phase::During)));
                let r = a.bounded(name, apply_settled(&*steps[k], &mut ctx)).await;
                failpoint::inject(None);
                drop(steps);
                if let Ok(Ok(())) = r {
                    // No mid-step failpoint: the boundary kills above cover this step.
                    a.teardown(Outputs::default(), "DEL", t).await;
                    continue;
                }
                a.teardown(Outputs::default(), &format!("DEL after ADD was killed inside step {k} ({name})"), t).await;
                a.expect_nothing_left(&format!("after ADD killed inside step {k} ({name}) and DEL"), t).await;
            }
            for undone in 1..n {
                let Some(a) = Attempt::new(h, case, t).await else { return };
                let Some(outputs) = a.apply_complete(t).await else { return };
                let Some(steps) = a.steps(t) else { return };
                let mut ctx = a.context(Verb::Del, outputs.clone());
                for step in steps[n - undone..].iter().rev() {
                    match a.bounded(step.name(), step.undo(&mut ctx)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => t.fail(format!("DEL, undo of {}: {e}", step.name())),
                        Err(e) => t.fail(format!("DEL, undo of {}: {e}", step.name())),
                    }
                }
                drop(steps);
                a.teardown(outputs, &format!("DEL again after DEL was killed with {undone} step(s) undone"), t).await;
                a.expect_nothing_left(&format!("after DEL killed with {undone} step(s) undone and DEL again"), t).await;
            }
        })
    })
    .await
}

/// One attachment on a fresh node, planned.
struct Attempt<'h> {
    h: &'h dyn Harness,
    fx: Fixture,
    backend: Box<dyn Backend>,
    plan: BackendPlan,
    /// Bound on each call into the backend or the harness: the node's deadline and some slack,
    /// so a backend that ignores its deadline is reported instead of hanging the test.
    limit: Duration,
}

impl<'h> Attempt<'h> {
    async fn new(h: &'h dyn Harness, case: &str, t: &mut Tally) -> Option<Attempt<'h>> {
        let fx = match tokio::time::timeout(Duration::from_secs(120), h.fresh(case)).await {
            Ok(Ok(fx)) => fx,
            Ok(Err(e)) => {
                t.fail(format!("fresh node: {e}"));
                return None;
            }
            Err(_) => {
                t.fail("fresh node: no answer from the harness within 120 s");
                return None;
            }
        };
        let backend = h.backend();
        let req = PlanRequest {
            attachment: &fx.attachment,
            host: &fx.host,
            container: &fx.container,
            shared_dir: &fx.shared_dir,
            settings: &fx.settings,
            socket_name_from_device_plugin: fx.socket_name_from_device_plugin,
        };
        let plan = match backend.plan(&req) {
            Ok(p) => p,
            Err(e) => {
                t.fail(format!("plan: {e}"));
                return None;
            }
        };
        if plan.uses_shared_dir {
            use std::os::unix::fs::DirBuilderExt;
            if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&fx.shared_dir.host) {
                t.fail(format!("creating the shared dir {}: {e}", fx.shared_dir.host.display()));
                return None;
            }
        }
        let limit = fx.settings.deadline() + Duration::from_secs(10);
        Some(Attempt { h, fx, backend, plan, limit })
    }

    /// Await `f`, at most `limit`.
    async fn bounded<T>(&self, what: &str, f: impl Future<Output = T>) -> Result<T, HarnessError> {
        tokio::time::timeout(self.limit, f)
            .await
            .map_err(|_| HarnessError::Failed(format!("{what}: no answer within {:?}", self.limit)))
    }

    fn steps(&self, t: &mut Tally) -> Option<Vec<Box<dyn Step>>> {
        match self.backend.steps(&self.plan) {
            Ok(s) if s.is_empty() => {
                t.fail("the plan has no steps");
                None
            }
            Ok(s) => Some(s),
            Err(e) => {
                t.fail(format!("steps: {e}"));
                None
            }
        }
    }

    fn step_count(&self, t: &mut Tally) -> Option<usize> {
        self.steps(t).map(|s| s.len())
    }

    fn context(&self, verb: Verb, outputs: Outputs) -> StepContext {
        StepContext {
            verb,
            attachment: self.fx.attachment.clone(),
            settings: Arc::new(self.fx.settings.clone()),
            shared_dir: self.plan.uses_shared_dir.then(|| self.fx.shared_dir.clone()),
            deadline: Instant::now() + self.fx.settings.deadline(),
            outputs,
            no_effect: false,
        }
    }

    /// ADD's context: the planned socket is known before any step (as the plugin's attach does).
    fn add_context(&self) -> StepContext {
        self.context(Verb::Add, Outputs { socket: self.plan.socket.clone(), ..Outputs::default() })
    }

    /// Apply `range` of `steps` in order; false (with the failure noted) if one fails.
    async fn apply_range(
        &self,
        steps: &[Box<dyn Step>],
        ctx: &mut StepContext,
        range: std::ops::Range<usize>,
        t: &mut Tally,
    ) -> bool {
        for i in range {
            ctx.no_effect = false;
            let name = steps[i].name();
            let r = self.bounded(name, apply_settled(&*steps[i], ctx)).await;
            let e = match r {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            t.fail(format!("step {i} ({name}) apply on a healthy dataplane: {e}"));
            let applied = if ctx.no_effect { i } else { i + 1 };
            self.rollback(steps, ctx, applied, t).await;
            return false;
        }
        true
    }

    /// Apply every step; the outputs the record would hold. Checks the inspector sees the result.
    async fn apply_complete(&self, t: &mut Tally) -> Option<Outputs> {
        let steps = self.steps(t)?;
        let mut ctx = self.add_context();
        if !self.apply_range(&steps, &mut ctx, 0..steps.len(), t).await {
            return None;
        }
        drop(steps);
        if let Some(held) = self.leftovers(t).await {
            if held.is_empty() {
                t.fail("after a complete apply the harness's holdings() reports nothing: the inspector is blind");
            }
        }
        Some(ctx.outputs)
    }

    /// The executor's rollback: undo `steps[..applied]` in reverse with the ADD's own context.
    /// If an undo fails the plugin keeps the record, so a DEL (fresh steps, no outputs) follows.
    async fn rollback(&self, steps: &[Box<dyn Step>], ctx: &mut StepContext, applied: usize, t: &mut Tally) {
        let mut failed = Vec::new();
        for step in steps[..applied].iter().rev() {
            match self.bounded(step.name(), step.undo(ctx)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(format!("{}: {e}", step.name())),
                Err(e) => failed.push(format!("{}: {e}", step.name())),
            }
        }
        self.shared_dir_undo(t);
        if !failed.is_empty() {
            // Allowed by the contract (the record is kept); the DEL that follows must finish.
            t.skips.push(format!("a rollback undo failed, the record is kept and DEL follows: {failed:?}"));
            self.teardown(Outputs::default(), "DEL after an incomplete rollback", t).await;
        }
    }

    /// DEL from the record: a fresh step list (another process) undone in reverse, every error
    /// collected.
    async fn teardown(&self, outputs: Outputs, what: &str, t: &mut Tally) {
        let Some(steps) = self.steps(t) else { return };
        let mut ctx = self.context(Verb::Del, outputs);
        for step in steps.iter().rev() {
            match self.bounded(step.name(), step.undo(&mut ctx)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => t.fail(format!("{what}: undo of {}: {e}", step.name())),
                Err(e) => t.fail(format!("{what}: undo of {}: {e}", step.name())),
            }
        }
        self.shared_dir_undo(t);
    }

    /// The plugin's generic shared-dir step runs before the backend's steps, so its undo runs
    /// after theirs: it removes the planned socket from the shared dir if a socket is there
    /// (whoever made it: the backend's delivery or the workload). Anything else there stays, and
    /// `leftovers` reports it.
    fn shared_dir_undo(&self, t: &mut Tally) {
        use std::os::unix::fs::FileTypeExt;
        let Some(s) = self.plan.socket.as_ref().filter(|_| self.plan.uses_shared_dir) else { return };
        if std::fs::symlink_metadata(&s.host_path).is_ok_and(|m| m.file_type().is_socket()) {
            if let Err(e) = std::fs::remove_file(&s.host_path) {
                t.fail(format!("removing the socket {} as the shared-dir step would: {e}", s.host_path.display()));
            }
        }
    }

    /// What is left of the attachment: the harness's holdings and the planned socket file.
    async fn leftovers(&self, t: &mut Tally) -> Option<Vec<String>> {
        let mut held = match self.bounded("holdings", self.h.holdings(&self.fx, &self.plan)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) | Err(e) => {
                t.fail(format!("inspecting the dataplane: {e}"));
                return None;
            }
        };
        if let Some(s) = &self.plan.socket {
            // The workload creates a client-mode socket, never the backend, and a socket is
            // removed by the shared-dir step's undo (`shared_dir_undo`): in the kit any other
            // file there, or a socket before that undo ran, is the backend's.
            if std::fs::symlink_metadata(&s.host_path).is_ok() {
                held.push(format!("socket file {}", s.host_path.display()));
            }
        }
        held.sort();
        Some(held)
    }

    async fn expect_nothing_left(&self, when: &str, t: &mut Tally) {
        if let Some(left) = self.leftovers(t).await {
            if !left.is_empty() {
                t.fail(format!("{when} the dataplane still holds {left:?}"));
            }
        }
    }
}

/// Settings for a node whose every generic path lies under `root` (state, shared dirs, kubelet,
/// DRA dirs), with short waits. Your engine's own settings keep their declared defaults: point
/// them at your fixture with `NodeSettings::set_engine`.
pub fn settings_under(root: &std::path::Path) -> NodeSettings {
    let base = NodeSettings::default();
    NodeSettings {
        state_dir: root.join("state"),
        kubelet_root: root.join("kubelet"),
        short_socket_dir: root.join("vhost_sockets"),
        shared_dir: root.join("shared"),
        timeout_ms: 2_000,
        deadline_ms: 10_000,
        shared_roots: vec![root.join("shared")],
        log_roots: vec![root.join("log")],
        device_info_roots: vec![root.join("devinfo")],
        kubeconfig_files: Vec::new(),
        annotations: userspace_cni_api::settings::AnnotationMode::Off,
        device_host_dir: None,
        cni_cache_dirs: vec![root.join("cnicache")],
        node_name: None,
        boot_id: None,
        dra: userspace_cni_api::settings::DraSettings {
            socket_root: root.join("dra/sockets"),
            container_root: root.join("dra/sockets"),
            metadata_dir: root.join("dra/metadata"),
            cdi_dir: root.join("dra/cdi"),
            ..base.dra
        },
        engines: Default::default(),
    }
}

/// An attachment no other call in this process returned: a 64-hex container id built from the
/// pid and a counter, ifname `net1`, on `network`.
pub fn unique_attachment(network: &str) -> Attachment {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Attachment {
        id: userspace_cni_api::attachment::AttachmentId::new(
            format!("{n:06x}{:08x}{}", std::process::id(), "c".repeat(50)),
            "net1",
        ),
        network: network.to_owned(),
        netns: None,
        pod: Default::default(),
        mac: None,
    }
}

/// A `host` or `container` object as the config parser hands it over (canonical key spellings):
/// the typed view, with `raw` keeping the whole object for engine-specific keys.
pub fn spec(object: serde_json::Value) -> Result<InterfaceSpec, HarnessError> {
    let mut s: InterfaceSpec = serde_json::from_value(object.clone())
        .map_err(|e| HarnessError::Failed(format!("interface spec {object}: {e}")))?;
    s.raw = object;
    Ok(s)
}

/// The pod's shared dir for `attachment` under the node's first shared root, as the generic
/// planner places it (`<root>/<cid12>`), seen by the pod at `/var/lib/cni/usrspcni`.
pub fn shared_dir_for(settings: &NodeSettings, attachment: &Attachment) -> SharedDir {
    let root = settings.shared_roots.first().cloned().unwrap_or_else(|| settings.shared_dir.clone());
    SharedDir {
        host: root.join(attachment.id.cid12()),
        pod: "/var/lib/cni/usrspcni".into(),
        group: None,
        permissions: Default::default(),
    }
}
