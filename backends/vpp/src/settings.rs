//! The VPP engine's node settings, `[engines.vpp]`: where VPP's binary API socket is. Declared
//! here (the loader validates it and mounts its directory); read through `VppSettings`.

use std::path::PathBuf;
use userspace_cni_api::{Mount, NodeSettings, Propagation, SettingKind, SettingSpec};

/// VPP's binary API socket (`socksvr { socket-name }` in startup.conf).
pub const API_SOCKET: SettingSpec = SettingSpec {
    key: "api_socket",
    kind: SettingKind::File,
    default: "/run/vpp/api.sock",
    doc: "VPP's binary API socket (startup.conf socksvr socket-name)",
    legacy_key: Some("vpp_api_socket"),
    mount: Some(Mount {
        volume: "vpp-api",
        dir: "/run/vpp",
        propagation: Propagation::None,
        read_only: false,
        must_exist: false,
        why: "VPP's binary API socket",
    }),
};

/// Every setting of this engine, for its registration.
pub const SETTINGS: &[SettingSpec] = &[API_SOCKET];

/// This engine's settings, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VppSettings {
    pub api_socket: PathBuf,
}

impl VppSettings {
    pub fn from_node(settings: &NodeSettings) -> VppSettings {
        VppSettings { api_socket: settings.engine(crate::ENGINE).path(&API_SOCKET) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declarations_are_consistent() {
        assert_eq!(userspace_cni_api::engine_settings::check_declarations(crate::ENGINE, SETTINGS), Ok(()));
        assert_eq!(VppSettings::from_node(&NodeSettings::default()).api_socket, PathBuf::from("/run/vpp/api.sock"));
    }
}
