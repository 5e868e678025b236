//! Adoption of an attachment the upstream plugin created (DESIGN.md §3.3, docs/upgrading.md):
//! build the record our ADD would have written, from a config and an attachment (DEL's own, or
//! the libcni cache's for `userspace adopt`) through the same planning code ADD uses, and let the
//! backend verify and tag the dataplane object the upstream state file names. Writes nothing on
//! disk itself; the caller decides whether to tear the record down (DEL) or save it (adopt).

use super::planner::{make_plan, AttachRequest};
use super::Registry;
use crate::cni::version;
use crate::legacy::{LegacyFile, LegacyObject};
use crate::plan::{Record, RECORD_FORMAT_CNI};
use std::time::{SystemTime, UNIX_EPOCH};
use userspace_cni_api::{codes, Adoption, CniError, Outputs};

/// The record for `legacy` and what the backend found (with `dry_run`, nothing is tagged).
/// Returns `Adoption::Mismatch` without asking the backend when the config's engine is not the
/// one that wrote the file.
pub async fn adopt_legacy(
    req: &AttachRequest<'_>,
    registry: &Registry,
    legacy: &LegacyFile,
    dry_run: bool,
) -> Result<(Record, Adoption), CniError> {
    let conf = req.conf;
    let engine = super::engine_of(conf)?;
    let att = req.attachment;
    if !att.id.container_id.starts_with(&legacy.cid12) || att.id.ifname != legacy.ifname {
        return Err(CniError::new(
            codes::INTERNAL,
            format!(
                "upstream state file {} is not for {}/{}",
                legacy.path.display(),
                att.id.container_id,
                att.id.ifname
            ),
        ));
    }
    // Plan with the port name the upstream plugin used (the config may have changed since; the
    // name decides the port, the socket's file name and so its path). The stored config stays
    // as given.
    let mut planned = conf.clone();
    if let LegacyObject::Ovs { vhostname } = &legacy.object {
        planned.host.vhost.get_or_insert_with(Default::default).socketfile = Some(vhostname.clone());
    }
    let backend = registry.get(engine)?;
    let plan = make_plan(&AttachRequest { conf: &planned, ..*req }, backend.as_ref()).await?;
    let adoption = if legacy.object.engine() != engine {
        Adoption::Mismatch {
            object: legacy.path.display().to_string(),
            reason: format!("written by engine {}, the config selects {engine}", legacy.object.engine()),
        }
    } else {
        backend.adopt(req.settings, att, &plan.backend, &legacy.raw, dry_run).await?
    };
    let cni_version = version::negotiate(&conf.raw)?.as_str().to_owned();
    let outputs = Outputs { socket: plan.backend.socket.clone(), ..Outputs::default() };
    let record = Record {
        format: RECORD_FORMAT_CNI,
        complete: true,
        created_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        // The upstream ADD's boot is unknown (it may predate a reboot): never judged by boot.
        boot_id: None,
        cni_version,
        attachment: att.clone(),
        config: conf.raw.clone(),
        plan,
        outputs: Some(outputs),
    };
    Ok((record, adoption))
}
