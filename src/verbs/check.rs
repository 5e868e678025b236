//! CHECK: verify, against the record and `prevResult`, that what ADD created is still there and as
//! planned (IPAM CHECK delegated); reports every finding, each naming what is wrong. Never connects
//! to a vhost-user socket (that would start a session with the workload's peer).

use super::Invocation;
use crate::cni::result::CniResult;
use crate::netconf::NetConf;
use crate::pipeline::{build_steps, engine_of};
use crate::plan::Record;
use crate::state::StateDir;
use crate::steps::ipam::Budget;
use crate::steps::{publish, IpamStep};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use userspace_cni_api::{codes, CniError, ErrorList};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("CHECK needs prevResult in the network config (CNI spec: required for CHECK)")]
    NoPrevResult,

    #[error("prevResult is not a CNI result: {0}")]
    BadPrevResult(String),

    #[error("no attachment {cid}/{ifname} on this node (no record in {})", dir.display())]
    NoRecord { cid: String, ifname: String, dir: PathBuf },

    #[error("attachment {cid}/{ifname} is incomplete (ADD interrupted or DEL in progress); run DEL")]
    Incomplete { cid: String, ifname: String },

    #[error("attachment {cid}/{ifname} was added to network {recorded:?}, not {given:?}")]
    OtherNetwork { cid: String, ifname: String, recorded: String, given: String },

    #[error("CNI_NETNS {given} is not the network namespace ADD was given ({recorded})")]
    NetnsChanged { given: String, recorded: String },

    #[error("prevResult has no interface {name:?} ({what} returned by ADD)")]
    PrevResultInterface { name: String, what: &'static str },

    #[error("prevResult's interface {name:?} has {field} {found:?}, ADD returned {expected:?}")]
    PrevResultField { name: String, field: &'static str, found: String, expected: String },

    #[error("prevResult lacks the address {address} that IPAM gave this attachment")]
    PrevResultAddress { address: String },

    #[error("shared dir {} is missing", path.display())]
    SharedDirMissing { path: PathBuf },

    #[error("shared dir {} is not a directory (a symlink or a file was put in its place)", path.display())]
    SharedDirNotDir { path: PathBuf },

    #[error("short socket dir {} is not mounted (expected a bind mount of {})", short.display(), long.display())]
    ShortDirNotMounted { short: PathBuf, long: PathBuf },

    #[error("socket {} is missing (the dataplane serves it; the workload connects as {mode})", path.display())]
    SocketMissing { path: PathBuf, mode: String },

    #[error("{} should be the dataplane's socket but is not a socket", path.display())]
    NotASocket { path: PathBuf },
}

impl From<CheckError> for CniError {
    fn from(e: CheckError) -> Self {
        let code = match &e {
            CheckError::NoPrevResult | CheckError::BadPrevResult(_) | CheckError::OtherNetwork { .. } => {
                codes::INVALID_NETCONF
            }
            CheckError::NoRecord { .. } => codes::UNKNOWN_CONTAINER,
            // Something ADD made is missing or different: an I/O-level fact about the host.
            _ => codes::IO_FAILURE,
        };
        CniError::new(code, e.to_string())
    }
}

pub async fn check(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let env = inv.env;
    let id = super::plan::attachment_id(inv)?;
    inv.registry.get(engine_of(conf)?)?;
    let prev = conf.prev_result.as_ref().ok_or(CheckError::NoPrevResult)?;
    let prev = CniResult::from_json(prev).map_err(|e| CheckError::BadPrevResult(e.to_string()))?;
    let state = StateDir::at(&inv.settings.state_dir);
    let (cid, ifname) = (id.container_id.clone(), id.ifname.clone());
    let record = state.read_record(&id)?.ok_or_else(|| CheckError::NoRecord {
        cid: cid.clone(),
        ifname: ifname.clone(),
        dir: state.root().into(),
    })?;
    if !record.complete {
        return Err(CheckError::Incomplete { cid, ifname }.into());
    }
    if record.attachment.network != conf.name {
        return Err(CheckError::OtherNetwork {
            cid,
            ifname,
            recorded: record.attachment.network.clone(),
            given: conf.name.clone(),
        }
        .into());
    }
    crate::steps::netns::check(env.netns.as_deref())?;

    let mut found = ErrorList::default();
    for e in local_findings(&record, env.netns.as_deref(), &prev)? {
        found.push(e.into());
    }
    let backend = inv.registry.get(&record.plan.engine)?;
    let ctx = record.step_context(env.command, inv.settings);
    if let Err(e) = backend.check(&ctx, &record.plan.backend).await {
        found.push(e);
    }
    // Each generic step verifies its own part (e.g. a published device-info file).
    for step in build_steps(backend.as_ref(), &state, &record)? {
        if let Err(e) = step.check(&ctx).await {
            found.push(e.context(format!("CHECK {}", step.name())));
        }
    }
    if let Some(ipam) = IpamStep::from_record(&record)? {
        let denv = ipam.env_for(&id, env.netns.as_deref());
        let budget = Budget { deadline: ctx.deadline, timeout: inv.settings.timeout() };
        if let Err(e) = ipam.check(&denv, conf.prev_result.as_ref(), budget).await {
            found.push(e.into());
        }
    }
    found.into_result()
}

/// Everything CHECK can verify without the dataplane or a delegate: the runtime's view
/// (`CNI_NETNS`, `prevResult`) against the record, and the files and mounts ADD made.
fn local_findings(record: &Record, netns: Option<&str>, prev: &CniResult) -> Result<Vec<CheckError>, CniError> {
    let mut out = Vec::new();
    if let (Some(given), Some(recorded)) = (netns, record.attachment.netns.as_deref()) {
        if given != recorded {
            out.push(CheckError::NetnsChanged { given: given.into(), recorded: recorded.into() });
        }
    }
    let outputs = record.outputs.clone().unwrap_or_default();
    let expected = publish::cni_result(&record.attachment, &outputs)?;
    for want in &expected.interfaces {
        let what = if want.sandbox.is_some() { "the sandbox interface" } else { "a host interface" };
        let Some(got) =
            prev.interfaces.iter().find(|i| i.name == want.name && i.sandbox.is_some() == want.sandbox.is_some())
        else {
            out.push(CheckError::PrevResultInterface { name: want.name.clone(), what });
            continue;
        };
        // Only fields the prevResult's version carries (socketPath is 1.1.0) are compared.
        let fields = [("sandbox", &got.sandbox, &want.sandbox), ("socketPath", &got.socket_path, &want.socket_path)];
        for (field, found, expected) in fields {
            if let (Some(found), Some(expected)) = (found, expected) {
                if found != expected {
                    out.push(CheckError::PrevResultField {
                        name: want.name.clone(),
                        field,
                        found: found.clone(),
                        expected: expected.clone(),
                    });
                }
            }
        }
    }
    for ip in &expected.ips {
        if !prev.ips.iter().any(|p| p.address == ip.address) {
            out.push(CheckError::PrevResultAddress { address: ip.address.clone() });
        }
    }
    if let Some(dir) = &record.plan.shared_dir {
        match std::fs::symlink_metadata(&dir.host) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => out.push(CheckError::SharedDirNotDir { path: dir.host.clone() }),
            Err(_) => out.push(CheckError::SharedDirMissing { path: dir.host.clone() }),
        }
    }
    if let Some(short) = &record.plan.short_dir {
        if !crate::steps::short_dir::is_mount_point(&short.short) {
            out.push(CheckError::ShortDirNotMounted { short: short.short.clone(), long: short.long.clone() });
        }
    }
    if let Some(sock) = &record.plan.backend.socket {
        // A socket the dataplane serves (the workload is the client/slave) must still be there;
        // in the other mode the workload creates it, possibly later, so absence is no error.
        if matches!(sock.workload_mode.as_str(), "client" | "slave") {
            if let Some(e) = socket_finding(&sock.host_path, &sock.workload_mode) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

fn socket_finding(path: &Path, mode: &str) -> Option<CheckError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => None,
        Ok(_) => Some(CheckError::NotASocket { path: path.into() }),
        Err(_) => Some(CheckError::SocketMissing { path: path.into(), mode: mode.into() }),
    }
}
