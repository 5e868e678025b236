//! The sweep of tagged objects no record names: after a power loss (records are not fsynced on
//! the hot path, issue 15) an attachment's record can be gone or torn while its port is still in
//! OVSDB. Every object tagged as ours is listed (`Backend::list_all_owned`); one whose attachment
//! has no record is removed when it was made in another boot and its netns is provably gone (both
//! are in its tags), under the attachment's lock. One without a netns tag (a DRA attachment's) is kept: kubelet prepares its
//! claim again, and a claim's liveness needs its record. Bridges of ours of another boot left
//! without ports are removed under the node lock. Never touches an untagged or foreign object.

use super::netns::{probe, NetnsState};
use super::Reconciler;
use crate::state::StateDir;
use serde::Serialize;
use std::time::Duration;
use userspace_cni_api::{codes, TaggedObject};

/// What the sweep did with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Untracked {
    pub engine: String,
    pub kind: String,
    pub name: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// `removed`, `would-remove`, `kept: <why>`, `failed: <error>`.
    pub action: String,
}

/// Keep an untracked per-attachment object, and why; `None` removes it. Only an object of
/// another boot is a power loss's leftover: in this boot every object of ours has had a record
/// since before it existed (and another node's objects, on an OVS that two state dirs share,
/// have theirs elsewhere).
pub fn keep_untracked(netns: Option<&str>, boot: Option<&str>, current: Option<&str>) -> Option<String> {
    match (boot, current) {
        (Some(b), Some(c)) if b != c => {}
        (None, _) => return Some("no boot id in its tags (made by an earlier version)".into()),
        _ => return Some("made in this boot".into()),
    }
    match netns {
        None => Some("no netns in its tags (a DRA claim's port is prepared again by kubelet)".into()),
        Some(path) => match probe(Some(path)) {
            NetnsState::Gone => None,
            NetnsState::Alive => Some("its netns is alive".into()),
            NetnsState::Unverifiable(why) => Some(format!("its netns cannot be verified: {why}")),
        },
    }
}

impl Reconciler<'_> {
    /// Sweep every engine that can list its tagged objects; findings go to `report.untracked`.
    pub(super) async fn sweep_untracked(&self, state: &StateDir, report: &mut super::Report) {
        let current = self.settings.current_boot_id();
        for reg in self.registry.registrations() {
            let backend = (reg.make)();
            let objects = match backend.list_all_owned(self.settings).await {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                // An engine that does not run on this node: nothing of it to sweep.
                Err(e) if e.code == codes::TRY_AGAIN_LATER => {
                    tracing::debug!(engine = reg.engine, error = %e, "sweep: engine unreachable");
                    continue;
                }
                Err(e) => {
                    report.errors.push(format!("sweep of {}: {e}", reg.engine));
                    continue;
                }
            };
            let (bridges, ports): (Vec<&TaggedObject>, Vec<&TaggedObject>) =
                objects.iter().partition(|t| t.object.id.container_id.is_empty());
            for t in ports {
                let id = &t.object.id;
                // Tracked (or unreadable: left to the operator): not the sweep's business.
                if !matches!(state.read_record(id), Ok(None)) {
                    continue;
                }
                let action = match keep_untracked(t.netns.as_deref(), t.boot_id.as_deref(), current.as_deref()) {
                    Some(why) => format!("kept: {why}"),
                    None if self.options.dry_run => "would-remove".into(),
                    None => match state.lock_attachment(id, Duration::ZERO).await {
                        Err(_) => "kept: an ADD/DEL/GC holds its lock".into(),
                        Ok(lock) => {
                            // Under the lock: an ADD that created its record since is left alone.
                            if !matches!(state.read_record(id), Ok(None)) {
                                drop(lock);
                                continue;
                            }
                            let r = backend.remove_owned(self.settings, &t.object).await;
                            lock.release_and_remove();
                            match r {
                                Ok(()) => {
                                    tracing::info!(engine = reg.engine, object = %t.object.name, "removed an untracked object");
                                    "removed".into()
                                }
                                Err(e) => {
                                    report.errors.push(format!("{} {}: {e}", t.object.kind, t.object.name));
                                    format!("failed: {e}")
                                }
                            }
                        }
                    },
                };
                report.untracked.push(untracked(reg.engine, t, action));
            }
            if self.options.dry_run || bridges.is_empty() {
                continue;
            }
            // Ours and without ports (the deletion itself checks both, atomically): what an
            // interrupted DEL, or a removed untracked port, leaves. The node lock keeps an ADD
            // between its bridge-ensure and its port-attach safe.
            let Ok(_node) = state.lock_node(self.settings.timeout()).await else {
                report
                    .errors
                    .push(format!("sweep of {}: the node lock is busy; bridges left for the next pass", reg.engine));
                continue;
            };
            // Only bridges made in another boot: in this one, an empty bridge of ours is an ADD
            // between its bridge and port steps (under a node lock this pass may not share).
            let old_boot = |t: &&TaggedObject| matches!((&t.boot_id, &current), (Some(b), Some(c)) if b != c);
            for t in bridges.into_iter().filter(old_boot) {
                if let Err(e) = backend.remove_owned(self.settings, &t.object).await {
                    report.errors.push(format!("bridge {}: {e}", t.object.name));
                }
            }
        }
    }
}

fn untracked(engine: &str, t: &TaggedObject, action: String) -> Untracked {
    Untracked {
        engine: engine.to_owned(),
        kind: t.object.kind.clone(),
        name: t.object.name.clone(),
        network: t.object.network.clone(),
        container_id: t.object.id.container_id.clone(),
        ifname: t.object.id.ifname.clone(),
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_object_of_another_boot_whose_netns_is_provably_gone_is_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let gone = dir.path().join("cni-0000");
        let gone = gone.to_str().expect("utf-8");
        let (old, now) = (Some("boot-1"), Some("boot-2"));
        assert_eq!(keep_untracked(Some(gone), old, now), None);
        assert!(keep_untracked(None, old, now).is_some(), "a DRA port (no netns tag) stays");
        assert!(keep_untracked(Some("relative/netns"), old, now).is_some(), "unverifiable stays");
        assert!(keep_untracked(Some(gone), now, now).is_some(), "this boot's object stays");
        assert!(keep_untracked(Some(gone), None, now).is_some(), "an untagged boot stays");
        assert!(keep_untracked(Some(gone), old, None).is_some(), "an unknown current boot keeps all");
    }
}
