//! STATUS: can this node serve an ADD for this network now (state dir, dataplane, IPAM delegate)?
//! Code 50 with the reason if not; never changes anything.

use super::Invocation;
use crate::netconf::NetConf;
use crate::pipeline::engine_of;
use crate::steps::ipam::Budget;
use crate::steps::IpamStep;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use userspace_cni_api::{codes, CniError};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("state dir {path} is mode {mode:o}; ADD refuses a state dir group or others can read: chmod 0700 {path}")]
    StateDirMode { path: String, mode: u32 },

    #[error("state dir {path} is not a directory; ADD cannot record attachments there")]
    StateDirNotDir { path: String },

    #[error("the dataplane cannot serve ADD: {0}")]
    Dataplane(String),

    #[error("the IPAM plugin cannot serve ADD: {0}")]
    Ipam(String),
}

impl From<StatusError> for CniError {
    fn from(e: StatusError) -> Self {
        CniError::new(codes::NOT_AVAILABLE, e.to_string())
    }
}

pub async fn status(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let backend = inv.registry.get(engine_of(conf)?)?;
    state_dir_usable(&inv.settings.state_dir)?;
    backend.status(inv.settings).await.map_err(|e| as_unavailable(e, StatusError::Dataplane))?;
    if let Some(ipam) = IpamStep::new(&conf.raw, conf.ipam.as_ref(), &inv.env.path, None)? {
        ipam.status(Budget::of_settings(inv.settings))
            .await
            .map_err(|e| as_unavailable(e.into(), StatusError::Ipam))?;
    }
    Ok(())
}

/// The spec gives STATUS two failure codes, 50 and 51 (limited connectivity, the plugin can still
/// serve ADD); whatever else a dataplane or delegate reports (a timeout is 11, a delegate's own
/// 999) means "cannot serve ADD now": 50, with the original message. A config error stays 7.
fn as_unavailable(e: CniError, wrap: fn(String) -> StatusError) -> CniError {
    match e.code {
        codes::NOT_AVAILABLE | codes::LIMITED_CONNECTIVITY | codes::INVALID_NETCONF => e,
        _ => {
            let details = e.details.clone();
            CniError::from(wrap(e.to_string())).with_details(details)
        }
    }
}

/// ADD creates the state dir if it is missing; one that exists must be a 0700 directory.
fn state_dir_usable(path: &Path) -> Result<(), StatusError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    let shown = path.display().to_string();
    if !meta.is_dir() {
        return Err(StatusError::StateDirNotDir { path: shown });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StatusError::StateDirMode { path: shown, mode });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_50_51_and_7_becomes_50_with_the_reason() {
        let e = as_unavailable(CniError::try_again("OVSDB timed out"), StatusError::Dataplane);
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert!(e.msg.contains("OVSDB timed out"), "{}", e.msg);
        let e = as_unavailable(CniError::new(codes::INTERNAL, "boom"), StatusError::Ipam);
        assert_eq!((e.code, e.msg.starts_with("the IPAM plugin cannot serve ADD")), (codes::NOT_AVAILABLE, true));
        assert_eq!(as_unavailable(CniError::new(51, "limited"), StatusError::Ipam).code, 51);
        assert_eq!(as_unavailable(CniError::invalid_config("bad"), StatusError::Ipam).code, 7);
    }

    #[test]
    fn a_readable_state_dir_is_50() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = CniError::from(state_dir_usable(dir.path()).unwrap_err());
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert!(e.msg.contains("chmod 0700"), "{}", e.msg);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(state_dir_usable(dir.path()).is_ok());
        assert!(state_dir_usable(&dir.path().join("absent")).is_ok());
    }
}
