//! Reversible steps: the unit the pipeline executes in order and undoes in reverse. A step's
//! `undo` works from the plan alone, treats "already gone" as success and is safe to call for a
//! step that never ran (a SIGKILL can stop ADD anywhere; DEL then undoes every step).

use crate::attachment::{Attachment, HostInterface, SharedDir, SocketDescriptor};
use crate::error::CniError;
use crate::settings::NodeSettings;
use crate::Verb;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What steps hand forward. Saved in the completed record, so DEL and CHECK see it too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketDescriptor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<HostInterface>,
    /// The IPAM delegate's result, converted to 1.1.0 form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<serde_json::Value>,
    /// Step-specific facts (e.g. whether the bridge was created by us), keyed by step name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, serde_json::Value>,
}

/// The explicit context that flows through the steps of one verb.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub verb: Verb,
    pub attachment: Attachment,
    pub settings: Arc<NodeSettings>,
    /// The planned shared directory, when the backend uses one.
    pub shared_dir: Option<SharedDir>,
    /// The whole verb must finish by then (the setting `deadline_ms`).
    pub deadline: Instant,
    pub outputs: Outputs,
    /// Set by a step whose `apply` fails before any side effect (e.g. the dataplane could not be
    /// reached): the executor then skips that step's undo, which would fail the same way and
    /// leave a record behind for nothing. Reset by the executor before each apply.
    pub no_effect: bool,
}

impl StepContext {
    /// Fail an `apply` that changed nothing.
    pub fn fail_unchanged(&mut self, e: CniError) -> CniError {
        self.no_effect = true;
        e
    }

    /// The verb's budget: its deadline and the node's per-wait timeout.
    pub fn budget(&self) -> Budget {
        Budget { deadline: self.deadline, timeout: self.settings.timeout() }
    }

    /// Time left before the verb's deadline, capped by the per-wait timeout.
    pub fn wait_budget(&self) -> Duration {
        self.budget().next()
    }
}

/// The time bounds of one verb's waits: each wait (a connection, a reply, a lock, an API call,
/// a delegate plugin) gets at most `timeout` (the setting `timeout_ms`), and all of them end by
/// `deadline` (`deadline_ms` after the verb started), so no caller waits past what the runtime
/// allows the whole verb.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub deadline: Instant,
    pub timeout: Duration,
}

impl Budget {
    /// A verb that starts now under the node's settings.
    pub fn of_settings(settings: &NodeSettings) -> Budget {
        Budget { deadline: Instant::now() + settings.deadline(), timeout: settings.timeout() }
    }

    /// Time left for the next wait.
    pub fn next(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()).min(self.timeout)
    }
}

#[async_trait]
pub trait Step: Send + Sync {
    /// Stable name: used in logs, failpoints and the record.
    fn name(&self) -> &'static str;

    /// Steps that touch node-shared dataplane objects (a bridge and the ports attached to it)
    /// declare it; the executor holds the node lock across each contiguous run of such steps,
    /// in apply and in undo (DESIGN.md §3.4).
    fn needs_node_lock(&self) -> bool {
        false
    }

    /// Do one reversible thing; on error, leave nothing this step created (or leave only what
    /// `undo` removes).
    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError>;

    /// After `apply` succeeded: the part that needs no node lock, such as waiting for a dataplane
    /// daemon to act on what `apply` committed and checking the outcome. The executor calls it
    /// right after `apply`, having released the node lock when the next step does not need it,
    /// so concurrent ADDs queue on the lock only for the commits. An error rolls back exactly
    /// like a failed `apply` of this step (its `undo` runs). Whoever calls `apply` directly
    /// (a repair) calls `settle` next. The default has nothing to settle.
    async fn settle(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
        Ok(())
    }

    /// Remove exactly what the plan names; "not found" is success.
    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError>;

    /// CHECK: verify that what `apply` made is still there, without changing anything (and
    /// without connecting to a workload's socket). Steps with nothing to verify keep the default.
    async fn check(&self, _ctx: &StepContext) -> Result<(), CniError> {
        Ok(())
    }
}
