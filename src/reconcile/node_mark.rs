//! Node marking: while an engine that has attachments on this node cannot be reached, the
//! reconciler sets the label `userspace-cni.io/<engine>-unavailable: "true"` on this node's Node
//! object, and removes it once the engine answers again. Never fails the pass: API trouble is
//! logged and reported, and the next pass tries again.
//!
//! A label rather than a node condition: conditions are the kubelet's and node-problem-detector's
//! (the kubelet rewrites `status` every heartbeat, and a condition needs `nodes/status`), while a
//! label is what `kubectl get nodes -l`, `nodeSelector` and `nodeAffinity` select on, so
//! operators and schedulers can keep new pods of that network off the node. Only our own
//! `userspace-cni.io/*-unavailable` keys are ever added or removed.

use super::repair::{RepairOutcome, RepairReport};
use crate::k8s::{self, ApiAccess};
use crate::pipeline::Registry;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use userspace_cni_api::{codes, NodeSettings};

/// The prefix of our label keys (a DNS subdomain we name, as Kubernetes asks of non-core labels).
pub const LABEL_PREFIX: &str = "userspace-cni.io/";
/// The suffix after the engine name.
pub const LABEL_SUFFIX: &str = "-unavailable";
/// The variable the DaemonSet fills from the downward API (`spec.nodeName`).
pub const NODE_NAME_ENV: &str = "NODE_NAME";

/// `userspace-cni.io/<engine>-unavailable`; engine names are short lowercase words (`vpp`,
/// `ovs-dpdk`), well within a label name's 63 characters.
pub fn label_key(engine: &str) -> String {
    format!("{LABEL_PREFIX}{engine}{LABEL_SUFFIX}")
}

fn is_our_label(key: &str) -> bool {
    key.strip_prefix(LABEL_PREFIX).is_some_and(|k| k.ends_with(LABEL_SUFFIX))
}

/// Who marks which node.
#[derive(Debug, Clone)]
pub struct NodeMarker {
    pub access: ApiAccess,
    pub node: String,
    /// Bound of each API request (the setting `timeout_ms`).
    pub timeout: Duration,
}

impl NodeMarker {
    /// From `NODE_NAME`; without it (or with a name that is not a Kubernetes object name) there is
    /// no node to mark: one debug line, and the reconciler runs without marking.
    pub fn from_env(access: ApiAccess, timeout: Duration) -> Option<NodeMarker> {
        let node = std::env::var(NODE_NAME_ENV).unwrap_or_default();
        if k8s::check_name(NODE_NAME_ENV, &node).is_err() {
            tracing::debug!(
                value = %node,
                "no usable NODE_NAME (set it from the downward API spec.nodeName): node marking is off"
            );
            return None;
        }
        Some(NodeMarker { access, node, timeout })
    }
}

/// What the marking did in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMarkReport {
    pub node: String,
    /// Engines with attachments here that could not be reached in this pass.
    pub unavailable: Vec<String>,
    /// Label keys added and removed (dry run: that would be).
    pub set: Vec<String>,
    pub removed: Vec<String>,
    /// The API call failed; the labels are as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn unreachable_code(code: u32) -> bool {
    code == codes::TRY_AGAIN_LATER || code == codes::NOT_AVAILABLE
}

/// Which of `engines` (those with records on this node) are down: a repair of this pass that
/// answered code 11 or 50, or else the engine's `status` (code 50 or 11: down).
pub async fn engines_down(
    engines: &BTreeSet<String>,
    repairs: &[RepairReport],
    registry: &Registry,
    settings: &NodeSettings,
) -> BTreeSet<String> {
    let mut down = BTreeSet::new();
    for engine in engines {
        let verdicts: Vec<&RepairOutcome> =
            repairs.iter().filter(|r| &r.engine == engine).map(|r| &r.outcome).collect();
        let failed = verdicts.iter().any(|o| match o {
            // An attachment skipped because its engine was found down always follows that
            // engine's failed repair in the same pass: the failure alone decides.
            RepairOutcome::Failed { code, .. } => unreachable_code(*code),
            _ => false,
        });
        // A healthy repair does not prove the engine can serve ADD (OVS's repair reads OVSDB
        // only; a stopped ovs-vswitchd leaves every record looking intact): ask STATUS, which
        // is bounded and cheap, unless a repair already proved the engine down.
        let is_down = failed
            || match registry.get(engine) {
                Ok(b) => b.status(settings).await.is_err_and(|e| unreachable_code(e.code)),
                // Not built into this binary: nothing to reach.
                Err(_) => false,
            };
        if is_down {
            down.insert(engine.clone());
        }
    }
    down
}

/// Make the node's labels say exactly `down` (our keys only). Dry run: report, write nothing.
pub async fn mark(marker: &NodeMarker, down: &BTreeSet<String>, dry_run: bool) -> NodeMarkReport {
    let want: BTreeSet<String> = down.iter().map(|e| label_key(e)).collect();
    let mut report =
        NodeMarkReport { node: marker.node.clone(), unavailable: down.iter().cloned().collect(), ..Default::default() };
    let (mut set, mut removed) = (Vec::new(), Vec::new());
    let mut edit = |labels: &mut serde_json::Map<String, serde_json::Value>| {
        // Re-computed on every attempt: a 409 re-read may show another writer's change.
        set.clear();
        removed.clear();
        for key in &want {
            if labels.get(key).and_then(|v| v.as_str()) != Some("true") {
                set.push(key.clone());
            }
        }
        removed.extend(labels.keys().filter(|k| is_our_label(k) && !want.contains(*k)).cloned());
        if dry_run || (set.is_empty() && removed.is_empty()) {
            return false;
        }
        for k in &set {
            labels.insert(k.clone(), serde_json::Value::String("true".into()));
        }
        for k in &removed {
            labels.remove(k);
        }
        true
    };
    let budget = k8s::Budget { deadline: Instant::now() + marker.timeout * 2, timeout: marker.timeout };
    let result = k8s::node::update_labels(&marker.access, &marker.node, budget, &mut edit).await;
    report.set = set;
    report.removed = removed;
    match result {
        Ok(_) => {
            for k in &report.set {
                tracing::warn!(node = %marker.node, label = %k, "dataplane unreachable: node labelled");
            }
            for k in &report.removed {
                tracing::info!(node = %marker.node, label = %k, "dataplane answers again: label removed");
            }
        }
        Err(e) => {
            tracing::warn!(node = %marker.node, error = %e, "could not update the node's labels");
            report.set.clear();
            report.removed.clear();
            report.error = Some(e.to_string());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_are_valid_and_only_ours_are_touched() {
        for engine in ["vpp", "ovs-dpdk"] {
            let key = label_key(engine);
            let (prefix, name) = key.split_once('/').expect("prefixed");
            assert!(prefix.len() <= 253 && name.len() <= 63, "{key}");
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
            assert!(is_our_label(&key));
        }
        assert!(!is_our_label("userspace-cni.io/other"));
        assert!(!is_our_label("kubernetes.io/hostname"));
    }
}
