//! The one table of host paths the plugin and the node reconciler touch, with the setting each
//! comes from; the DaemonSet's hostPath mounts must equal it. Plain data: never touches a path.
//! The generic rows are here; each engine's come from its backend's setting declarations
//! (`SettingSpec::mount`), after them in registration order, so this module names no engine.
//!
//! The plugin runs on the host (the runtime execs it), the reconciler and the installer run in a
//! container of the DaemonSet in `config/kubernetes/daemonset.yaml`. Both must see every path
//! **at the same place**, because the settings file and the attachment records name host paths;
//! so each row is mounted at its own host path. `tests/manifests.rs` fails when the DaemonSet and
//! this table differ, and prints the volumes this table expects.

use std::path::{Path, PathBuf};
use userspace_cni_api::{BackendRegistration, NodeSettings, SettingSpec};

/// Kubernetes `mountPropagation`: declared with the engines' settings, in the contract crate.
pub use userspace_cni_api::Propagation;

/// Where a host path comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A node setting (DESIGN.md §6) whose value is the directory itself.
    Setting(&'static str),
    /// The directory holding the file a setting names (`config`).
    ParentOf(&'static str),
    /// An engine's setting (`[engines.<engine>] <key>`): its directory (`SettingKind::host_dir`).
    Engine { engine: &'static str, key: &'static str },
    /// A convention of another component (the runtime, Multus, a reference plugin); no setting.
    Convention(&'static str),
}

/// One host directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePath {
    /// The DaemonSet volume name (a DNS-1123 label).
    pub volume: &'static str,
    /// The host path under the default settings; mounted at the same path in the containers.
    pub default: &'static str,
    pub source: Source,
    /// Propagation of the reconciler's mount.
    pub propagation: Propagation,
    /// The reconciler only reads here.
    pub read_only: bool,
    /// Also mounted (read-write) into the `userspace install` init container, which writes here.
    pub install: bool,
    /// The directory belongs to another component that must have created it (hostPath type
    /// `Directory`); otherwise the kubelet creates it if absent (`DirectoryOrCreate`).
    pub must_exist: bool,
    pub why: &'static str,
}

impl NodePath {
    /// The Kubernetes hostPath `type`.
    pub fn host_path_type(&self) -> &'static str {
        if self.must_exist {
            "Directory"
        } else {
            "DirectoryOrCreate"
        }
    }
}

/// Every generic host path, in the order the DaemonSet lists them (the engines' rows follow).
pub const GENERIC_PATHS: &[NodePath] = &[
    NodePath {
        volume: "cni-bin",
        default: "/opt/cni/bin",
        source: Source::Convention("the runtime's CNI_PATH; the argument of `userspace install`"),
        propagation: Propagation::None,
        read_only: true,
        install: true,
        must_exist: false,
        why: "install copies the binary here; the reconciler runs IPAM delegates (host-local) from here",
    },
    NodePath {
        volume: "settings",
        default: "/etc/userspace-cni",
        source: Source::ParentOf("config"),
        propagation: Propagation::None,
        read_only: true,
        install: true,
        must_exist: false,
        why: "the node settings file; install writes it if absent, everything else reads it",
    },
    NodePath {
        volume: "state",
        default: "/var/lib/cni/userspace",
        source: Source::Setting("state_dir"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "attachment records, locks and the reconciler's heartbeat",
    },
    NodePath {
        volume: "shared-dir",
        default: "/var/lib/cni/usrspcni",
        source: Source::Setting("shared_dir"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "per-pod shared dirs the plugin created; the reconciler removes those of orphans",
    },
    NodePath {
        volume: "short-socket-dir",
        default: "/var/lib/vhost_sockets",
        source: Source::Setting("short_socket_dir"),
        propagation: Propagation::Bidirectional,
        read_only: false,
        install: false,
        must_exist: false,
        why: "short per-pod dirs bind-mounted by the plugin on the host; the reconciler's unmount of an \
              orphan's dir must reach the host",
    },
    NodePath {
        volume: "netns",
        default: "/run/netns",
        source: Source::Convention("where containerd and CRI-O pin pod network namespaces"),
        propagation: Propagation::HostToContainer,
        read_only: true,
        install: false,
        must_exist: false,
        why: "the reconciler tells a live pod from an orphan by its netns; namespaces created after \
              the container started must be visible",
    },
    NodePath {
        volume: "device-info",
        default: "/var/run/k8s.cni.cncf.io/devinfo",
        source: Source::Convention("Multus / device-info spec 1.1.0 CNIDeviceInfoFile dir"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "device-info files the plugin wrote; the reconciler removes those of orphans",
    },
    NodePath {
        volume: "host-local-data",
        default: "/var/lib/cni/networks",
        source: Source::Convention("host-local's default dataDir"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "the reconciler frees an orphan's lease with an IPAM DEL, which host-local records here \
              (a NAD with its own ipam.dataDir needs that dir mounted too)",
    },
    NodePath {
        volume: "kubelet-root",
        default: "/var/lib/kubelet",
        source: Source::Setting("kubelet_root"),
        propagation: Propagation::HostToContainer,
        read_only: true,
        install: false,
        must_exist: true,
        why: "a pod's shared-dir emptyDir lives here; volumes of pods started later must be visible",
    },
    NodePath {
        volume: "hugepages",
        default: "/dev/hugepages",
        source: Source::Convention("systemd's hugetlbfs mount point (dev-hugepages.mount)"),
        propagation: Propagation::HostToContainer,
        read_only: true,
        install: false,
        must_exist: false,
        why: "`userspace doctor` (the readiness probe) looks for a hugetlbfs mount in its own mount table, \
              which shows the host's only through this bind",
    },
    NodePath {
        volume: "log",
        default: "/var/log/userspace-cni",
        source: Source::Convention("the default log_roots: where a network config's logFile may be"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "a DEL the reconciler runs for an orphan logs to the logFile of the orphan's config",
    },
    NodePath {
        volume: "cni-net-d",
        default: "/etc/cni/net.d",
        source: Source::Convention("Multus's kubeconfig dir, the first of the default kubeconfig_files"),
        propagation: Propagation::None,
        read_only: true,
        install: false,
        must_exist: false,
        why: "the kubeconfig a network config names (e.g. Multus's), read when an orphan's DEL updates \
              pod annotations",
    },
    NodePath {
        volume: "dra-sockets",
        default: "/var/run/ovsdpdk",
        source: Source::Setting("dra_socket_root"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "the per-claim socket dirs of DRA attachments: the reconciler removes a gone claim's dir and \
              re-creates a live one's",
    },
    NodePath {
        volume: "dra-metadata",
        default: "/var/run/userspace-cni/dra",
        source: Source::Setting("dra_metadata_dir"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "the KEP-5304 metadata files of DRA attachments, removed or rewritten with them",
    },
    NodePath {
        volume: "cdi",
        default: "/var/run/cdi",
        source: Source::Setting("cdi_dir"),
        propagation: Propagation::None,
        read_only: false,
        install: false,
        must_exist: false,
        why: "the CDI specs of DRA attachments, removed or rewritten with them",
    },
];

/// The plugin's own settings whose value is (or names a file in) a host directory; each must
/// have a row. (An engine's are its declarations whose kind has a `host_dir`.)
pub const PATH_SETTINGS: &[&str] = &[
    "state_dir",
    "kubelet_root",
    "short_socket_dir",
    "shared_dir",
    "config",
    "dra_socket_root",
    "dra_metadata_dir",
    "cdi_dir",
];

/// Path settings without a default, so without a row: a node that sets one needs the DaemonSet
/// to mount that directory as well (docs/install.md says how).
pub const UNSET_PATH_SETTINGS: &[&str] = &["device_host_dir", "dra_kubeconfig"];

/// Settings that name no host path the plugin or the reconciler touches by themselves (the root
/// lists only restrict paths from network configs, and their default entries are rows;
/// `cni_cache_dirs` is read only by `userspace adopt`, run on the node itself, docs/upgrading.md).
pub const OTHER_SETTINGS: &[&str] = &[
    "timeout_ms",
    "deadline_ms",
    "allowed_roots",
    "shared_roots",
    "log_roots",
    "device_info_roots",
    "kubeconfig_files",
    "annotations",
    "cni_cache_dirs",
    "boot_id",
    // The DRA plugin's: names and numbers, and the socket dirs' path inside the VM's pod.
    "node_name",
    "dra_driver_name",
    "dra_container_root",
    "dra_bridges",
    "dra_dir_group",
    "dra_dir_mode",
    "dra_dir_acl_users",
];

/// The directory a path setting means under `settings` (the parent for a socket or file
/// setting); `None` for a key that is not a path setting.
pub fn setting_dir(settings: &NodeSettings, key: &str) -> Option<PathBuf> {
    let parent = |p: PathBuf| p.parent().map(PathBuf::from);
    match key {
        "state_dir" => Some(settings.state_dir.clone()),
        "kubelet_root" => Some(settings.kubelet_root.clone()),
        "short_socket_dir" => Some(settings.short_socket_dir.clone()),
        "shared_dir" => Some(settings.shared_dir.clone()),
        "config" => parent(PathBuf::from(crate::settings::DEFAULT_CONFIG_FILE)),
        "dra_socket_root" => Some(settings.dra.socket_root.clone()),
        "dra_metadata_dir" => Some(settings.dra.metadata_dir.clone()),
        "cdi_dir" => Some(settings.dra.cdi_dir.clone()),
        _ => None,
    }
}

/// The directory an engine setting means under `settings` (the parent for a socket or file);
/// `None` for a setting that is not a path.
pub fn engine_setting_dir(settings: &NodeSettings, engine: &str, spec: &SettingSpec) -> Option<PathBuf> {
    spec.kind.host_dir(settings.engine(engine).get(spec))
}

/// Every host path: the generic rows, then each engine's declared volumes (an engine's volume
/// that an earlier row already has is not repeated).
pub fn node_paths(regs: &[&'static BackendRegistration]) -> Vec<NodePath> {
    let mut rows = GENERIC_PATHS.to_vec();
    for r in regs {
        for spec in r.settings {
            let Some(m) = &spec.mount else { continue };
            if rows.iter().any(|row| row.volume == m.volume) {
                continue;
            }
            rows.push(NodePath {
                volume: m.volume,
                default: m.dir,
                source: Source::Engine { engine: r.engine, key: spec.key },
                propagation: m.propagation,
                read_only: m.read_only,
                // The installer writes only the binary and the settings file.
                install: false,
                must_exist: m.must_exist,
                why: m.why,
            });
        }
    }
    rows
}

/// The row whose directory holds `dir` (a directory under a mounted one is visible too).
pub fn row_for<'a>(rows: &'a [NodePath], dir: &Path) -> Option<&'a NodePath> {
    rows.iter().find(|p| dir.starts_with(p.default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn rows() -> Vec<NodePath> {
        node_paths(crate::pipeline::Registry::linked().registrations())
    }

    #[test]
    fn every_row_with_a_setting_has_the_settings_default() {
        let d = NodeSettings::default();
        let regs = crate::pipeline::Registry::linked();
        for row in rows() {
            let (key, dir) = match row.source {
                Source::Setting(k) | Source::ParentOf(k) => (k, setting_dir(&d, k)),
                Source::Engine { engine, key } => {
                    let reg = regs.registrations().iter().find(|r| r.engine == engine).expect("a linked engine");
                    let spec = reg.settings.iter().find(|s| s.key == key).expect("a declared setting");
                    (key, engine_setting_dir(&d, engine, spec))
                }
                Source::Convention(_) => continue,
            };
            let dir = dir.unwrap_or_else(|| panic!("{key} is not a path setting"));
            assert_eq!(
                dir,
                Path::new(row.default),
                "row {} says {} but setting {key} defaults to it",
                row.volume,
                row.default
            );
        }
    }

    #[test]
    fn every_path_setting_lands_in_a_row() {
        let d = NodeSettings::default();
        let rows = rows();
        for key in PATH_SETTINGS {
            assert!(crate::settings::KEYS.contains(key), "{key} is not a settings key");
            let dir = setting_dir(&d, key).expect("path setting");
            assert!(row_for(&rows, &dir).is_some(), "setting {key} ({}) has no row in node_paths", dir.display());
        }
        for r in crate::pipeline::Registry::linked().registrations() {
            for spec in r.settings {
                let Some(dir) = engine_setting_dir(&d, r.engine, spec) else { continue };
                assert!(
                    row_for(&rows, &dir).is_some(),
                    "engine {} setting {} ({}) is under no row: give it a `mount` in its declaration",
                    r.engine,
                    spec.key,
                    dir.display()
                );
            }
        }
    }

    #[test]
    fn engine_rows_come_from_the_declarations() {
        let rows = rows();
        let ovs = rows.iter().find(|r| r.volume == "ovs-run").expect("the OVS engine declares ovs-run");
        assert_eq!(ovs.default, "/var/run/openvswitch");
        assert_eq!(ovs.source, Source::Engine { engine: "ovs-dpdk", key: "ovsdb" });
        let vpp = rows.iter().find(|r| r.volume == "vpp-api").expect("the VPP engine declares vpp-api");
        assert_eq!(vpp.default, "/run/vpp");
        assert!(GENERIC_PATHS.iter().all(|r| !matches!(r.source, Source::Engine { .. })));
    }

    #[test]
    fn every_settings_key_is_classified() {
        for key in crate::settings::KEYS {
            let n = [PATH_SETTINGS, UNSET_PATH_SETTINGS, OTHER_SETTINGS].iter().filter(|l| l.contains(key)).count();
            assert_eq!(
                n, 1,
                "settings key {key}: add it to exactly one of PATH_SETTINGS (and a row), \
                UNSET_PATH_SETTINGS or OTHER_SETTINGS in src/node_paths.rs"
            );
        }
    }

    #[test]
    fn the_default_roots_of_config_paths_are_mounted() {
        let d = NodeSettings::default();
        let rows = rows();
        for root in d.shared_roots.iter().chain(&d.log_roots).chain(&d.device_info_roots) {
            assert!(rows.iter().any(|r| Path::new(r.default) == root), "root {} has no row", root.display());
        }
        // Multus's kubeconfig (the one the shipped NADs name) is readable by the reconciler.
        let multus = PathBuf::from(userspace_cni_api::settings::DEFAULT_KUBECONFIG_FILES[0]);
        assert!(row_for(&rows, &multus).is_some(), "{} is under no row of node_paths", multus.display());
    }

    #[test]
    fn volumes_and_paths_are_unique_and_well_formed() {
        let mut names = BTreeSet::new();
        let mut paths = BTreeSet::new();
        for row in rows() {
            assert!(names.insert(row.volume), "volume {} twice", row.volume);
            assert!(paths.insert(row.default), "path {} twice", row.default);
            assert!(row.volume.len() <= 63, "{} is longer than a DNS-1123 label", row.volume);
            assert!(
                row.volume.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{} is not a DNS-1123 label",
                row.volume
            );
            assert!(Path::new(row.default).is_absolute(), "{} is not absolute", row.default);
            // Bidirectional exists so that the reconciler's unmounts reach the host.
            assert!(!(row.propagation == Propagation::Bidirectional && row.read_only), "{}", row.volume);
        }
    }
}
