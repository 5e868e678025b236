//! The generic checks of a parsed config against the node settings, before any side effect:
//! required keys, names, paths under the allowed roots, the two sides agreeing. Never writes.

use super::types::{quoted, NetConf};
use std::path::{Component, Path};
use userspace_cni_api::spec::IfType;
use userspace_cni_api::{codes, CniError, InterfaceSpec, NodeSettings};
use userspace_cni_support::names;

/// Bridge names here are only checked for their characters; the backend that creates the bridge
/// applies its own limit (a Linux netdev name is 15 bytes).
const MAX_OBJECT_NAME: usize = 255;

/// A user or group name or numeric id (`vhost.group`, `permissions.owner`/`group`); Linux allows
/// 32 bytes, some tools more.
const MAX_GROUP_NAME: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// A name, MAC or path rule from `userspace_cni_support::names`: already a code-7 error with its message.
    #[error(transparent)]
    Rule(#[from] CniError),
    #[error("{key} is required: {hint}")]
    Missing { key: &'static str, hint: &'static str },
    #[error("{key} {value} is out of range; expected {accepted}")]
    OutOfRange { key: String, value: String, accepted: &'static str },
    #[error("{key} {value} cannot work with {other_key} {other_value}: {remedy}")]
    Mismatch { key: &'static str, value: String, other_key: &'static str, other_value: String, remedy: String },
}

impl From<ValidateError> for CniError {
    fn from(e: ValidateError) -> Self {
        match e {
            ValidateError::Rule(e) => e,
            ValidateError::Missing { .. } | ValidateError::OutOfRange { .. } => {
                CniError::new(codes::INVALID_NETCONF, e.to_string())
            }
            // Each value is valid alone; together they describe an interface nothing can build.
            ValidateError::Mismatch { .. } => CniError::new(codes::UNSUPPORTED_FIELD, e.to_string()),
        }
    }
}

/// Check everything generic about `nc`. Engine-specific rules (engine known, iftype supported by
/// it, bridge name length) are the backend's `plan`.
pub fn validate(nc: &NetConf, settings: &NodeSettings) -> Result<(), ValidateError> {
    names::validate_network_name("name", &nc.name)?;

    if nc.host.engine.is_none() {
        return Err(ValidateError::Missing {
            key: "host.engine",
            hint: "set it to the dataplane, \"ovs-dpdk\" or \"vpp\"",
        });
    }
    if nc.host.iftype.is_none() {
        return Err(ValidateError::Missing { key: "host.iftype", hint: "set it to \"vhostuser\" or \"memif\"" });
    }

    // A NAD author (namespace-scoped) must not make the plugin (root) write or read anywhere:
    // each key has its own roots (docs/security.md). `logFile` is checked where the log opens:
    // one outside its roots is ignored with a warning, as upstream NADs log to /var/log/x.log.
    if let Some(path) = &nc.shared_dir {
        names::confine_key("sharedDir", path, &settings.shared_roots, "shared_roots")?;
    }
    if let Some(path) = &nc.kubeconfig {
        names::allow_listed("kubeconfig", path, &settings.kubeconfig_files, "kubeconfig_files")?;
    }

    side("host", &nc.host)?;
    side("container", &nc.container)?;
    sides_agree(&nc.host, &nc.container)?;

    if let Some(mac) = &nc.runtime_config.mac {
        names::validate_mac("runtimeConfig.mac", mac)?;
    }
    if let Some(file) = &nc.runtime_config.device_info_file {
        device_info_path(file)?;
        // Read and written as root: only below the device-info roots (Multus's host-only dir).
        names::confine_key("runtimeConfig.CNIDeviceInfoFile", file, &settings.device_info_roots, "device_info_roots")?;
    }
    for (key, id) in [("deviceID", &nc.device_id), ("runtimeConfig.deviceID", &nc.runtime_config.device_id)] {
        if let Some(id) = id {
            device_id(key, id)?;
        }
    }
    Ok(())
}

/// A device id (a PCI address like `0000:03:00.1`, or a device plugin's own id) may be
/// substituted into a host path (the `device_host_dir` setting), so it must be one path
/// component: no `/`, not `.` or `..`, no NUL. Its characters are otherwise the device plugin's.
fn device_id(key: &str, id: &str) -> Result<(), ValidateError> {
    let ok = !id.contains(['/', '\0']) && id != "." && id != ".." && id.len() <= names::MAX_FILE_NAME;
    if ok {
        return Ok(());
    }
    Err(CniError::invalid_config(format!(
        "{key} {} is not a device id; expected one path component (no '/', not '.' or '..', at most {} bytes), \
         e.g. \"0000:03:00.1\"",
        quoted(id),
        names::MAX_FILE_NAME
    ))
    .into())
}

fn side(which: &'static str, spec: &InterfaceSpec) -> Result<(), ValidateError> {
    let key = |k: &str| format!("{which}.{k}");
    if let Some(vhost) = &spec.vhost {
        if let Some(f) = &vhost.socketfile {
            names::validate_file_name(&key("vhost.socketfile"), f)?;
        }
        if let Some(g) = &vhost.group {
            names::validate_object_name(&key("vhost.group"), g, MAX_GROUP_NAME)?;
        }
    }
    if let Some(p) = &spec.permissions {
        if which != "host" {
            // The plugin applies them on the host; a container-side copy would silently do nothing.
            return Err(CniError::new(
                codes::UNSUPPORTED_FIELD,
                format!(
                    "{} is not supported: the plugin sets permissions from the host side; move it to host.permissions",
                    key("permissions")
                ),
            )
            .into());
        }
        for (k, v) in [("permissions.owner", &p.owner), ("permissions.group", &p.group)] {
            if let Some(v) = v {
                names::validate_object_name(&key(k), v, MAX_GROUP_NAME)?;
            }
        }
        if let Some(ctx) = &p.selinux_context {
            userspace_cni_support::perms::validate_selinux_context(&key("permissions.selinuxContext"), ctx)?;
        }
    }
    if let Some(memif) = &spec.memif {
        if let Some(f) = &memif.socketfile {
            names::validate_file_name(&key("memif.socketfile"), f)?;
        }
    }
    if let Some(bridge) = &spec.bridge {
        if let Some(name) = &bridge.bridge_name {
            names::validate_object_name(&key("bridge.bridgeName"), name, MAX_OBJECT_NAME)?;
        }
        // The parser already limits it; a NetConf built in code gets the same rule.
        if let Some(vlan) = bridge.vlan_id.filter(|v| *v > 4095) {
            return Err(ValidateError::OutOfRange {
                key: key("bridge.vlanId"),
                value: vlan.to_string(),
                accepted: "an integer 0..=4095 (0: no VLAN)",
            });
        }
    }
    Ok(())
}

/// Both sides describe the two ends of one socket: the same kind, opposite vhost-user modes and
/// memif roles, and the same memif mode. Defaults have been applied, so absent means "not used".
fn sides_agree(host: &InterfaceSpec, container: &InterfaceSpec) -> Result<(), ValidateError> {
    let (Some(h), Some(c)) = (host.iftype, container.iftype) else { return Ok(()) };
    if h != c {
        let rule = "both ends of one socket speak the same protocol";
        return Err(conflict("container.iftype", c.as_str(), "host.iftype", h.as_str(), rule, h.as_str()));
    }
    match h {
        IfType::VhostUser => {
            let hm = host.vhost.as_ref().and_then(|v| v.mode);
            let cm = container.vhost.as_ref().and_then(|v| v.mode);
            if let (Some(hm), Some(cm)) = (hm, cm) {
                if hm == cm {
                    let rule = "one end of a vhost-user socket is the server, the other the client";
                    let want = hm.inverse().as_str();
                    return Err(conflict(
                        "container.vhost.mode",
                        cm.as_str(),
                        "host.vhost.mode",
                        hm.as_str(),
                        rule,
                        want,
                    ));
                }
            }
        }
        IfType::Memif => {
            let (hm, cm) = (host.memif.clone().unwrap_or_default(), container.memif.clone().unwrap_or_default());
            if let (Some(hr), Some(cr)) = (hm.role, cm.role) {
                if hr == cr {
                    let rule = "one end of a memif is the master, the other the slave";
                    let want = hr.inverse().as_str();
                    return Err(conflict(
                        "container.memif.role",
                        cr.as_str(),
                        "host.memif.role",
                        hr.as_str(),
                        rule,
                        want,
                    ));
                }
            }
            if let (Some(hmode), Some(cmode)) = (hm.mode, cm.mode) {
                if hmode != cmode {
                    let rule = "both ends of a memif use the same mode";
                    let (c, h) = (cmode.as_str(), hmode.as_str());
                    return Err(conflict("container.memif.mode", c, "host.memif.mode", h, rule, h));
                }
            }
        }
    }
    Ok(())
}

fn conflict(
    key: &'static str,
    value: &str,
    other_key: &'static str,
    other_value: &str,
    rule: &str,
    want: &str,
) -> ValidateError {
    ValidateError::Mismatch {
        key,
        value: quoted(value),
        other_key,
        other_value: quoted(other_value),
        remedy: format!("{rule}; set {key} to {want:?} or leave it out"),
    }
}

/// `runtimeConfig.CNIDeviceInfoFile` comes from the runtime (Multus), whose naming we do not
/// control, so only its shape is checked here; the device-info step creates it without
/// following symlinks.
fn device_info_path(path: &Path) -> Result<(), ValidateError> {
    let key = "runtimeConfig.CNIDeviceInfoFile";
    let bad = |why: &str| {
        CniError::invalid_config(format!("{key} {:?} {why}; expected an absolute file path", path.display()))
    };
    if !path.is_absolute() {
        return Err(bad("is not absolute").into());
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad("contains a '..' component").into());
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(bad("contains a NUL byte").into());
    }
    if path.file_name().is_none() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(bad("names a directory").into());
    }
    Ok(())
}
