//! GC: for this network only, remove every attachment we own whose (container id, ifname) is not
//! in the runtime's valid list; keeps going past errors and reports them all.

use super::del::teardown;
use super::plan::engine_of;
use super::Invocation;
use crate::cni::gc::valid_attachments;
use crate::netconf::NetConf;
use crate::state::StateDir;
use crate::steps::ipam::Budget;
use crate::steps::IpamStep;
use backend_api::{AttachmentId, CniError, ErrorList};
use std::collections::HashSet;

pub async fn gc(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let valid: HashSet<AttachmentId> = valid_attachments(&conf.raw)?.into_iter().collect();
    let network = conf.name.as_str();
    let state = StateDir::at(&inv.settings.state_dir);
    let mut errors = ErrorList::default();
    let mut recorded: HashSet<AttachmentId> = HashSet::new();

    for rec in state.list_records()? {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(e.into());
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
        let lock = match state.lock_attachment(&rec.attachment.id, std::time::Duration::from_millis(0)).await {
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

    // Tagged dataplane objects of this network with no record and no place in the valid list
    // (e.g. left by a crash between the dataplane change and the record's removal).
    let backend = inv.registry.get(engine_of(conf)?)?;
    match backend.list_owned(inv.settings, network).await {
        Ok(objects) => {
            for obj in objects {
                if obj.network != network || valid.contains(&obj.id) || recorded.contains(&obj.id) {
                    continue;
                }
                if let Err(e) = backend.remove_owned(inv.settings, &obj).await {
                    errors.push(e.context(format!("gc {} {}", obj.kind, obj.name)));
                }
            }
        }
        Err(e) => errors.push(e.context("gc: listing dataplane objects")),
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
