//! GC: for this network only, remove every attachment we own whose (container id, ifname) is not
//! in the runtime's valid list; keeps going past errors and reports them all.
//!
//! Three sweeps, each continuing past failures: (1) records of this network not in the list are
//! torn down exactly as DEL would (dataplane, sockets, dirs, mounts, device-info, IPAM DEL);
//! (2) tagged dataplane objects of this network with no record (a lost state dir) are removed by
//! tag under the node lock, ports before the bridges they empty; (3) lock and temp files that
//! belong to no record are swept. Then GC is forwarded to an IPAM delegate that speaks 1.1.0.

use super::del::teardown;
use super::Invocation;
use crate::cni::gc::valid_attachments;
use crate::netconf::NetConf;
use crate::pipeline::engine_of;
use crate::state::{StateDir, StateError};
use crate::steps::ipam::Budget;
use crate::steps::IpamStep;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use userspace_cni_api::{AttachmentId, CniError, ErrorList};

pub async fn gc(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    // An absent list is an empty one for this network (and only this network).
    let valid: HashSet<AttachmentId> = valid_attachments(&conf.raw)?.into_iter().collect();
    let network = conf.name.as_str();
    let state = StateDir::at(&inv.settings.state_dir);
    let mut errors = ErrorList::default();
    let mut recorded: HashSet<AttachmentId> = HashSet::new();

    for rec in state.list_records()? {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                unreadable_record(e, network, &mut errors);
                continue;
            }
        };
        if rec.attachment.network != network {
            continue;
        }
        recorded.insert(rec.attachment.id.clone());
        if valid.contains(&rec.attachment.id) {
            continue;
        }
        // A concurrent ADD/DEL holds the lock: leave it to them, report nothing.
        let lock = match state.lock_attachment(&rec.attachment.id, Duration::ZERO).await {
            Ok(l) => l,
            Err(_) => continue,
        };
        // Re-read under the lock: the record may have gone meanwhile.
        match state.read_record(&rec.attachment.id) {
            Ok(Some(current)) => match teardown(inv, &state, &current).await {
                Ok(()) => lock.release_and_remove(),
                Err(e) => errors
                    .push(e.context(format!("gc {}/{}", rec.attachment.id.container_id, rec.attachment.id.ifname))),
            },
            Ok(None) => lock.release_and_remove(),
            Err(e) => errors.push(e.into()),
        }
    }

    // Tagged dataplane objects of this network with no record and no place in the valid list.
    // Under the node lock: a bridge emptied here must not be deleted between another ADD's
    // bridge-ensure and port-attach (the deletion's `wait` guard is the second line of defence).
    let backend = inv.registry.get(engine_of(conf)?)?;
    // No state dir: no ADD is running here (its first act creates it), so there is none to order with.
    let node_lock = if state.root().exists() { Some(state.lock_node(inv.settings.timeout()).await) } else { None };
    match node_lock {
        Some(Err(e)) => errors.push(CniError::from(e).context("gc: dataplane objects without a record")),
        held => {
            match backend.list_owned(inv.settings, network).await {
                Ok(objects) => {
                    for obj in objects {
                        // The backend matches identities: a VPP tag holds only a digest of one.
                        let kept = valid.iter().chain(&recorded).any(|id| backend.owned_by(&obj, id));
                        if obj.network != network || kept {
                            continue;
                        }
                        if let Err(e) = backend.remove_owned(inv.settings, &obj).await {
                            errors.push(e.context(format!("gc {} {}", obj.kind, obj.name)));
                        }
                    }
                }
                Err(e) => errors.push(e.context("gc: listing dataplane objects")),
            }
            drop(held);
        }
    }

    let (_, sweep_errors) = state.sweep_stray_files(false).await;
    for e in sweep_errors.0 {
        errors.push(e.context("gc"));
    }

    // The IPAM delegate sees the same valid list, if it speaks 1.1.0 (DESIGN.md §3.3).
    match IpamStep::new(&conf.raw, conf.ipam.as_ref(), &inv.env.path, None) {
        Ok(Some(ipam)) => {
            if let Err(e) = ipam.gc_lenient(Budget::of_settings(inv.settings)).await {
                errors.push(e.context("gc: IPAM"));
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "gc: not forwarded to IPAM"),
    }
    errors.into_result()
}

/// A record that cannot be read is this network's problem only if it still says it is this
/// network's; otherwise one corrupt file would fail the GC of every network on the node
/// (`userspace inspect` and `userspace doctor` report it either way).
fn unreadable_record(e: StateError, network: &str, errors: &mut ErrorList) {
    let ours = match &e {
        StateError::Corrupt { path, .. } | StateError::Read { path, .. } => {
            network_of(path).is_some_and(|n| n == network)
        }
        // A power loss's leftover names no network any more: the node reconciler removes it
        // and finds its objects by their tags.
        StateError::Torn { .. } => false,
        _ => true,
    };
    if ours {
        errors.push(CniError::from(e).context("gc"));
    } else {
        tracing::warn!(error = %e, "gc: unreadable record of another or unknown network left alone");
    }
}

/// The `attachment.network` of a record file that does not parse as a record.
fn network_of(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    doc.get("attachment")?.get("network")?.as_str().map(str::to_owned)
}
