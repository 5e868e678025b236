//! CHECK: verify, against the record, that what ADD created is still there (IPAM CHECK delegated).
//! Never connects to a vhost-user socket (that would start a session with the workload's peer).

use super::plan::engine_of;
use super::Invocation;
use crate::netconf::NetConf;
use crate::state::StateDir;
use crate::steps::ipam::Budget;
use crate::steps::IpamStep;
use backend_api::{codes, AttachmentId, CniError, StepContext};
use std::sync::Arc;
use std::time::Instant;

pub async fn check(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let env = inv.env;
    let id = AttachmentId::new(
        env.container_id.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_CONTAINERID is required"))?,
        env.ifname.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_IFNAME is required"))?,
    );
    inv.registry.get(engine_of(conf)?)?;
    if conf.prev_result.is_none() {
        return Err(CniError::invalid_config(
            "CHECK needs prevResult in the network config (CNI spec: required for CHECK)",
        ));
    }
    let state = StateDir::at(&inv.settings.state_dir);
    let record = state.read_record(&id)?.ok_or_else(|| {
        CniError::new(
            codes::UNKNOWN_CONTAINER,
            format!(
                "no attachment {}/{} on this node (no record in {})",
                id.container_id,
                id.ifname,
                state.root().display()
            ),
        )
    })?;
    if !record.complete {
        return Err(CniError::io(format!(
            "attachment {}/{} is incomplete (ADD interrupted or DEL in progress); run DEL",
            id.container_id, id.ifname
        )));
    }
    let backend = inv.registry.get(&record.plan.engine)?;
    let ctx = StepContext {
        verb: env.command,
        attachment: record.attachment.clone(),
        settings: Arc::new(inv.settings.clone()),
        shared_dir: record.plan.shared_dir.clone(),
        deadline: Instant::now() + inv.settings.deadline(),
        outputs: record.outputs.clone().unwrap_or_default(),
        no_effect: false,
    };
    if let Some(sock) = &record.plan.backend.socket {
        // A socket the dataplane serves (the workload is the client/slave) must still be there;
        // in the other mode the workload creates it, possibly later, so absence is no error.
        let served_by_dataplane = matches!(sock.workload_mode.as_str(), "client" | "slave");
        if served_by_dataplane && std::fs::symlink_metadata(&sock.host_path).is_err() {
            return Err(CniError::io(format!("socket {} is missing", sock.host_path.display())));
        }
    }
    backend.check(&ctx, &record.plan.backend).await?;
    if let Some(ipam) = IpamStep::from_record(&record)? {
        let env = ipam.env_for(&id, env.netns.as_deref());
        ipam.check(&env, conf.prev_result.as_ref(), Budget { deadline: ctx.deadline, timeout: inv.settings.timeout() })
            .await?;
    }
    Ok(())
}
