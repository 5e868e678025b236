//! A read-only survey of the state dir: every record with its state (complete, in progress,
//! orphaned), its netns and its age, for `inspect` and the reconciler. Never creates, locks for
//! longer than a probe, or changes a file.

use super::netns::{probe, NetnsState};
use crate::plan::Record;
use crate::state::{StateDir, StateError};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where an attachment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentState {
    /// ADD finished and no DEL has started.
    Complete,
    /// Not complete, and an ADD, DEL or GC holds its lock right now.
    InProgress,
    /// Not complete and nobody holds its lock: an ADD or DEL was interrupted; DEL or GC finishes it.
    Orphaned,
}

impl AttachmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Complete => "complete",
            AttachmentState::InProgress => "in-progress",
            AttachmentState::Orphaned => "orphaned",
        }
    }
}

/// One record as found now.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub record: Record,
    pub state: AttachmentState,
    pub lock_free: bool,
    pub netns: NetnsState,
    pub age: Duration,
}

/// Every record, and the files that could not be read as one.
#[derive(Debug, Default)]
pub struct Survey {
    pub entries: Vec<Entry>,
    pub unreadable: Vec<(PathBuf, String)>,
    /// Records a power loss cut short (`StateError::Torn`): they name nothing any more.
    pub torn: Vec<(PathBuf, String)>,
}

pub fn age_of(record: &Record, now: SystemTime) -> Duration {
    let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Duration::from_millis(now_ms.saturating_sub(record.created_unix_ms))
}

/// Survey the state dir (a missing one is empty).
pub fn survey(state: &StateDir, now: SystemTime) -> Result<Survey, StateError> {
    let mut out = Survey::default();
    for rec in state.list_records()? {
        match rec {
            Ok(record) => {
                let path = state.record_path(&record.attachment.id);
                let lock_free = state.lock_is_free(&record.attachment.id);
                let status = match (record.complete, lock_free) {
                    (true, _) => AttachmentState::Complete,
                    (false, false) => AttachmentState::InProgress,
                    (false, true) => AttachmentState::Orphaned,
                };
                out.entries.push(Entry {
                    path,
                    state: status,
                    lock_free,
                    netns: probe(record.attachment.netns.as_deref()),
                    age: age_of(&record, now),
                    record,
                });
            }
            Err(StateError::Torn { path, reason }) => out.torn.push((path, reason)),
            Err(e) => {
                let path = match &e {
                    StateError::Corrupt { path, .. } | StateError::Read { path, .. } => path.clone(),
                    _ => state.root().to_path_buf(),
                };
                out.unreadable.push((path, e.to_string()));
            }
        }
    }
    out.entries.sort_by(|a, b| {
        (&a.record.attachment.network, &a.record.attachment.id)
            .cmp(&(&b.record.attachment.network, &b.record.attachment.id))
    });
    Ok(out)
}

/// The bridge an attachment's port is on, from the backend's plan when it names one (OVS
/// `bridge`, VPP `net.bd_id`); the plan is backend data, so this only reads well-known keys.
pub fn bridge_of(record: &Record) -> Option<String> {
    let data = &record.plan.backend.data;
    if let Some(b) = data.get("bridge").and_then(|v| v.as_str()) {
        return Some(b.to_owned());
    }
    data.get("net").and_then(|n| n.get("bd_id")).and_then(|v| v.as_u64()).map(|id| format!("bd {id}"))
}

/// The host-side port: the outputs' host interfaces, else the plan's `port`.
pub fn port_of(record: &Record) -> Option<String> {
    let from_outputs: Vec<&str> =
        record.outputs.iter().flat_map(|o| o.host_interfaces.iter().map(|h| h.name.as_str())).collect();
    if !from_outputs.is_empty() {
        return Some(from_outputs.join(","));
    }
    record.plan.backend.data.get("port").and_then(|v| v.as_str()).map(str::to_owned)
}

/// `42s`, `7m`, `3h05m`, `2d04h`: short enough for a table column.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(0)), "0s");
        assert_eq!(human(Duration::from_secs(59)), "59s");
        assert_eq!(human(Duration::from_secs(61)), "1m");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 5 * 60)), "3h05m");
        assert_eq!(human(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d04h");
    }
}
