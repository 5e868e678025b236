//! The node reconciler (`userspace gc`): finds attachments whose pod is gone and removes them with
//! the verbs' own teardown (IPAM DEL included). Never reaps what it cannot prove dead.
//!
//! An attachment is reaped only when all hold: its netns is provably gone (`netns::probe`: a
//! missing netns *directory* proves nothing), its record is older than the grace period, nobody
//! holds its lock, and the pod oracle does not place its pod on this node (with Kubernetes access;
//! without, the netns decides). Records are node-wide: every network, every engine.

pub mod heartbeat;
pub mod netns;
pub mod node_mark;
pub mod pods;
pub mod repair;
pub mod survey;
pub mod sweep;

use crate::k8s::claims::ClaimLiveness;
use crate::pipeline::{teardown, Registry};
use crate::state::{StateDir, StateError};
use netns::NetnsState;
use pods::{ClaimOracle, PodOracle, PodPresence};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use survey::AttachmentState;
use userspace_cni_api::{AttachmentId, CniError, NodeSettings, Verb};

/// Default `--grace`: kubelet normally sends DEL itself when a pod goes; the reconciler is the
/// backstop, so it leaves the runtime time to do that first.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    State(#[from] StateError),

    #[error("cannot write the reconciler heartbeat {}: {source}", path.display())]
    Heartbeat { path: PathBuf, source: std::io::Error },

    #[error(
        "no reconciler heartbeat at {}: no `userspace gc` pass has completed on this node (is `userspace gc --every` \
         running, with the same state_dir?)",
        path.display()
    )]
    HeartbeatMissing { path: PathBuf },

    #[error(
        "the reconciler heartbeat {} is {}s old, more than the allowed {}s: the reconciler is stuck or stopped",
        path.display(),
        age.as_secs(),
        max_age.as_secs()
    )]
    HeartbeatStale { path: PathBuf, age: Duration, max_age: Duration },
}

impl From<ReconcileError> for CniError {
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::State(s) => s.into(),
            other => CniError::io(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Records younger than this are kept, whatever their netns says.
    pub grace: Duration,
    /// Decide and report; change nothing (no teardown, no sweep, no heartbeat).
    pub dry_run: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { grace: DEFAULT_GRACE, dry_run: false }
    }
}

/// Why an attachment stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum Keep {
    NetnsAlive,
    NetnsUnverifiable(String),
    YoungerThanGrace,
    LockHeld,
    PodOnThisNode,
    PodUnknown(String),
    /// A DRA attachment whose claim is allocated and reserved for a pod on this node.
    ClaimLive,
    /// A DRA attachment whose claim could not be asked about: never reaped on a guess.
    ClaimUnknown(String),
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keep::NetnsAlive => f.write_str("its netns is alive"),
            Keep::NetnsUnverifiable(why) => write!(f, "its netns cannot be verified: {why}"),
            Keep::YoungerThanGrace => f.write_str("younger than the grace period"),
            Keep::LockHeld => f.write_str("an ADD/DEL/GC holds its lock"),
            Keep::PodOnThisNode => f.write_str("Kubernetes still places its pod on this node"),
            Keep::PodUnknown(why) => write!(f, "its pod's state is unknown: {why}"),
            Keep::ClaimLive => f.write_str("its DRA claim is allocated and reserved for a pod on this node"),
            Keep::ClaimUnknown(why) => write!(f, "its DRA claim's state is unknown: {why}"),
        }
    }
}

/// The decision for one attachment, from facts alone (no I/O), in the order that makes the
/// report most useful: a live netns is the common reason to keep.
pub fn decide(
    netns: &NetnsState,
    old_boot: bool,
    age: Duration,
    grace: Duration,
    lock_free: bool,
    pod: &PodPresence,
) -> Option<Keep> {
    // Made before the last reboot: its netns and its pod sandbox went with that boot (a pod that
    // is still scheduled here got a new sandbox, with a new container id and its own ADD).
    if old_boot {
        return (!lock_free).then_some(Keep::LockHeld);
    }
    match netns {
        NetnsState::Alive => return Some(Keep::NetnsAlive),
        NetnsState::Unverifiable(why) => return Some(Keep::NetnsUnverifiable(why.clone())),
        NetnsState::Gone => {}
    }
    if age < grace {
        return Some(Keep::YoungerThanGrace);
    }
    if !lock_free {
        return Some(Keep::LockHeld);
    }
    match pod {
        PodPresence::OnThisNode => Some(Keep::PodOnThisNode),
        PodPresence::Unknown(why) => Some(Keep::PodUnknown(why.clone())),
        PodPresence::Gone | PodPresence::NoAccess => None,
    }
}

/// What the pass did with one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Reaped,
    WouldReap,
    Kept {
        why: Keep,
    },
    /// Teardown failed; the record stays and the next pass retries.
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    pub netns: Option<String>,
    pub state: AttachmentState,
    pub age_seconds: u64,
    #[serde(flatten)]
    pub action: Action,
}

/// The decision for a DRA attachment: no netns; the claim decides (kubelet's Unprepare is the
/// normal path, this is the backstop).
pub fn decide_dra(claim: &ClaimLiveness, age: Duration, grace: Duration, lock_free: bool) -> Option<Keep> {
    match claim {
        ClaimLiveness::Live => return Some(Keep::ClaimLive),
        ClaimLiveness::Unknown(why) => return Some(Keep::ClaimUnknown(why.clone())),
        ClaimLiveness::Gone(_) => {}
    }
    if age < grace {
        return Some(Keep::YoungerThanGrace);
    }
    if !lock_free {
        return Some(Keep::LockHeld);
    }
    None
}

/// One pass: what happened to each record, the stray state files swept, and every error.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub attachments: Vec<Outcome>,
    pub swept_files: Vec<PathBuf>,
    pub errors: Vec<String>,
    /// True when a stop was requested before every record was visited.
    pub interrupted: bool,
    /// Complete attachments of live pods, after a dataplane restart (`repair.rs`).
    pub repairs: Vec<repair::RepairReport>,
    /// Torn record files removed (a power loss cut their write).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub torn_records: Vec<PathBuf>,
    /// Objects tagged as ours that no record names (`sweep.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untracked: Vec<sweep::Untracked>,
    /// The node's `<engine>-unavailable` labels (`node_mark.rs`; with Kubernetes access and
    /// `NODE_NAME` only). Its errors are here, not in `errors`: they never fail the pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_mark: Option<node_mark::NodeMarkReport>,
}

impl Report {
    pub fn reaped(&self) -> usize {
        self.attachments.iter().filter(|o| matches!(o.action, Action::Reaped | Action::WouldReap)).count()
    }
}

/// The reconciler of one node.
pub struct Reconciler<'a> {
    pub settings: &'a NodeSettings,
    pub registry: &'a Registry,
    pub pods: &'a dyn PodOracle,
    /// Liveness of DRA attachments (their claims).
    pub claims: &'a dyn ClaimOracle,
    pub options: Options,
    /// Marks this node while an engine is unreachable (None: no Kubernetes access or no node name).
    pub node_marker: Option<&'a node_mark::NodeMarker>,
}

impl Reconciler<'_> {
    /// One pass over every record. `stop` is polled between attachments (a teardown in progress
    /// finishes; each is bounded by the deadline setting). Touches the heartbeat unless dry.
    pub async fn pass(&self, stop: &dyn Fn() -> bool) -> Report {
        let state = StateDir::at(&self.settings.state_dir);
        let mut report = Report { dry_run: self.options.dry_run, ..Report::default() };
        let found = match survey::survey(&state, SystemTime::now()) {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(e.to_string());
                return report;
            }
        };
        for (path, why) in &found.unreadable {
            report.errors.push(format!("unreadable record {} (left alone): {why}", path.display()));
        }
        // Torn records (a power loss cut their write) name nothing: removed, and their objects
        // found by the sweep of tagged objects below.
        for (path, why) in &found.torn {
            tracing::warn!(path = %path.display(), %why, "torn record");
            if !self.options.dry_run {
                if let Err(e) = state.remove_torn(path) {
                    report.errors.push(e.to_string());
                    continue;
                }
            }
            report.torn_records.push(path.clone());
        }
        let boot = self.settings.current_boot_id();
        let mut to_repair = Vec::new();
        let engines: std::collections::BTreeSet<String> =
            found.entries.iter().map(|e| e.record.plan.engine.clone()).collect();
        for entry in found.entries {
            if stop() {
                report.interrupted = true;
                break;
            }
            let att = &entry.record.attachment;
            let mut claim_live = false;
            let keep = if entry.record.is_dra() {
                let claim = self.claims.liveness(&entry.record).await;
                claim_live = claim == ClaimLiveness::Live;
                decide_dra(&claim, entry.age, self.options.grace, entry.lock_free)
            } else {
                let pod = match entry.netns {
                    // Only a dead netns makes the API server's opinion matter.
                    NetnsState::Gone => self.pods.presence(&att.pod).await,
                    _ => PodPresence::NoAccess,
                };
                let old_boot = entry.record.from_another_boot(boot.as_deref());
                decide(&entry.netns, old_boot, entry.age, self.options.grace, entry.lock_free, &pod)
            };
            let action = match keep {
                Some(why) => Action::Kept { why },
                None if self.options.dry_run => Action::WouldReap,
                None => match self.reap(&state, &att.id).await {
                    Ok(true) => Action::Reaped,
                    // Someone took the lock (or removed the record) since the survey.
                    Ok(false) => Action::Kept { why: Keep::LockHeld },
                    Err(e) => {
                        report.errors.push(format!("{}/{}: {e}", att.id.container_id, att.id.ifname));
                        Action::Failed { error: e.to_string() }
                    }
                },
            };
            match &action {
                Action::Reaped => tracing::info!(cid = %att.id.container_id, ifname = %att.id.ifname, "reaped"),
                Action::Failed { error } => tracing::warn!(cid = %att.id.container_id, %error, "reap failed"),
                _ => {}
            }
            report.attachments.push(Outcome {
                container_id: att.id.container_id.clone(),
                ifname: att.id.ifname.clone(),
                network: att.network.clone(),
                netns: att.netns.clone(),
                state: entry.state,
                age_seconds: entry.age.as_secs(),
                action,
            });
            if repair::wants_repair(&entry) || (claim_live && entry.state == AttachmentState::Complete) {
                to_repair.push(entry);
            }
        }
        if report.interrupted {
            return report;
        }
        self.sweep_untracked(&state, &mut report).await;
        let (repairs, interrupted) =
            repair::repair_all(self.settings, self.registry, &state, &to_repair, self.options.dry_run, stop).await;
        report.errors.extend(repairs.iter().filter_map(|r| match &r.outcome {
            repair::RepairOutcome::Failed { error, .. } => Some(format!("{}/{}: {error}", r.container_id, r.ifname)),
            _ => None,
        }));
        report.repairs = repairs;
        if interrupted {
            report.interrupted = true;
            return report;
        }
        if let Some(marker) = self.node_marker {
            let down = node_mark::engines_down(&engines, &report.repairs, self.registry, self.settings).await;
            report.node_mark = Some(node_mark::mark(marker, &down, self.options.dry_run).await);
        }
        let (swept, errors) = state.sweep_stray_files(self.options.dry_run).await;
        report.swept_files = swept;
        report.errors.extend(errors.0.into_iter().map(|e| e.to_string()));
        if !self.options.dry_run {
            let beat = state.ensure().map_err(ReconcileError::from).and_then(|()| heartbeat::touch(state.root()));
            if let Err(e) = beat {
                report.errors.push(e.to_string());
            }
        }
        report
    }

    /// Tear one attachment down under its lock, exactly as DEL would (the record's own config,
    /// engine, CNI_PATH and CNI_ARGS). `Ok(false)`: its lock is held or its record is gone.
    async fn reap(&self, state: &StateDir, id: &AttachmentId) -> Result<bool, CniError> {
        let Ok(lock) = state.lock_attachment(id, Duration::ZERO).await else { return Ok(false) };
        let Some(record) = state.read_record(id)? else {
            lock.release_and_remove();
            return Ok(false);
        };
        teardown(Verb::Del, self.settings, self.registry, state, &record).await?;
        lock.release_and_remove();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(300);
    const OLD: Duration = Duration::from_secs(3600);

    #[test]
    fn only_a_dead_old_unlocked_attachment_without_a_pod_is_reaped() {
        let gone = NetnsState::Gone;
        assert_eq!(decide(&gone, false, OLD, GRACE, true, &PodPresence::NoAccess), None);
        assert_eq!(decide(&gone, false, OLD, GRACE, true, &PodPresence::Gone), None);
        assert_eq!(decide(&NetnsState::Alive, false, OLD, GRACE, true, &PodPresence::Gone), Some(Keep::NetnsAlive));
        let unverifiable = NetnsState::Unverifiable("no /run/netns".into());
        assert!(matches!(
            decide(&unverifiable, false, OLD, GRACE, true, &PodPresence::Gone),
            Some(Keep::NetnsUnverifiable(_))
        ));
        assert_eq!(
            decide(&gone, false, Duration::from_secs(10), GRACE, true, &PodPresence::Gone),
            Some(Keep::YoungerThanGrace)
        );
        assert_eq!(decide(&gone, false, OLD, GRACE, false, &PodPresence::Gone), Some(Keep::LockHeld));
    }

    #[test]
    fn an_attachment_of_an_earlier_boot_goes_whatever_its_netns_pod_or_age_say_unless_locked() {
        for netns in [NetnsState::Alive, NetnsState::Unverifiable("x".into()), NetnsState::Gone] {
            for pod in [PodPresence::OnThisNode, PodPresence::Unknown("503".into()), PodPresence::Gone] {
                assert_eq!(decide(&netns, true, Duration::ZERO, GRACE, true, &pod), None, "{netns:?} {pod:?}");
                assert_eq!(decide(&netns, true, OLD, GRACE, false, &pod), Some(Keep::LockHeld));
            }
        }
    }

    #[test]
    fn a_dra_attachment_goes_only_when_its_claim_is_provably_gone() {
        let gone = ClaimLiveness::Gone("the claim was deleted".into());
        assert_eq!(decide_dra(&gone, OLD, GRACE, true), None);
        assert_eq!(decide_dra(&ClaimLiveness::Live, OLD, GRACE, true), Some(Keep::ClaimLive));
        assert!(matches!(
            decide_dra(&ClaimLiveness::Unknown("503".into()), OLD, GRACE, true),
            Some(Keep::ClaimUnknown(_))
        ));
        assert_eq!(decide_dra(&gone, Duration::from_secs(1), GRACE, true), Some(Keep::YoungerThanGrace));
        assert_eq!(decide_dra(&gone, OLD, GRACE, false), Some(Keep::LockHeld));
    }

    #[test]
    fn with_kubernetes_a_pod_still_on_the_node_or_unknown_keeps_it() {
        let gone = NetnsState::Gone;
        assert_eq!(decide(&gone, false, OLD, GRACE, true, &PodPresence::OnThisNode), Some(Keep::PodOnThisNode));
        assert!(matches!(
            decide(&gone, false, OLD, GRACE, true, &PodPresence::Unknown("timeout".into())),
            Some(Keep::PodUnknown(_))
        ));
    }
}
