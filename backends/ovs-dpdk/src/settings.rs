//! The OVS-DPDK engine's node settings, `[engines.ovs-dpdk]`: the OVSDB endpoint and the
//! directory where ovs-vswitchd creates server-mode vhost-user sockets. Declared here (the
//! loader validates them and mounts their directory); every other module reads them through
//! `OvsSettings`, never by key.

use std::path::PathBuf;
use userspace_cni_api::{Mount, NodeSettings, Propagation, SettingKind, SettingSpec};

/// The OVSDB endpoint. Only `unix:` is supported: the plugin runs on the node, next to
/// ovsdb-server, and a TCP endpoint would need credentials the settings file should not hold.
pub const OVSDB: SettingSpec = SettingSpec {
    key: "ovsdb",
    kind: SettingKind::UnixEndpoint,
    default: "unix:/var/run/openvswitch/db.sock",
    doc: "OVSDB endpoint, unix:<path to ovsdb-server's socket>",
    legacy_key: Some("ovsdb"),
    mount: Some(Mount {
        volume: "ovs-run",
        dir: "/var/run/openvswitch",
        propagation: Propagation::None,
        read_only: false,
        must_exist: false,
        why: "OVSDB socket (setting ovsdb) and server-mode vhost sockets (setting ovs_sock_dir, the same \
              dir by default)",
    }),
};

/// Where ovs-vswitchd creates `dpdkvhostuser` (server-mode) sockets: its `vhost-sock-dir`,
/// relative to its rundir (the OVSDB socket's dir). The plugin renames each socket from here into
/// the pod's shared dir, so the two must be on one filesystem.
pub const SOCK_DIR: SettingSpec = SettingSpec {
    key: "ovs_sock_dir",
    kind: SettingKind::Dir,
    default: "/var/run/openvswitch",
    doc: "ovs-vswitchd's vhost-sock-dir: where server-mode sockets appear before they move to the pod",
    legacy_key: Some("ovs_sock_dir"),
    // The same directory as the OVSDB socket's by default: the `ovs-run` volume holds it.
    mount: None,
};

/// Every setting of this engine, for its registration.
pub const SETTINGS: &[SettingSpec] = &[OVSDB, SOCK_DIR];

/// This engine's settings, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsSettings {
    /// `unix:<path>`, as validated by the loader.
    pub ovsdb: String,
    pub sock_dir: PathBuf,
}

impl OvsSettings {
    pub fn from_node(settings: &NodeSettings) -> OvsSettings {
        let e = settings.engine(crate::ENGINE);
        OvsSettings { ovsdb: e.get(&OVSDB).to_owned(), sock_dir: e.path(&SOCK_DIR) }
    }

    /// The OVSDB unix socket path, if the endpoint is `unix:` (the loader allows nothing else;
    /// a harness's hand-made settings may).
    pub fn ovsdb_socket(&self) -> Option<PathBuf> {
        self.ovsdb.strip_prefix("unix:").map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declarations_are_consistent() {
        assert_eq!(userspace_cni_api::engine_settings::check_declarations(crate::ENGINE, SETTINGS), Ok(()));
    }

    #[test]
    fn defaults_and_set_values_read_back_typed() {
        let mut s = NodeSettings::default();
        let o = OvsSettings::from_node(&s);
        assert_eq!(o.ovsdb_socket(), Some(PathBuf::from("/var/run/openvswitch/db.sock")));
        assert_eq!(o.sock_dir, PathBuf::from("/var/run/openvswitch"));
        s.set_engine(crate::ENGINE, &OVSDB, "unix:/srv/db.sock");
        assert_eq!(OvsSettings::from_node(&s).ovsdb_socket(), Some(PathBuf::from("/srv/db.sock")));
    }
}
