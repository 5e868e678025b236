//! The device-info document (Network Plumbing WG device-info spec 1.1.0) as data: what
//! publication writes, how a file a device plugin wrote before ADD is read into the socket's
//! place, and the check that a plan honours it. Pure: the step that reads and writes the file is
//! `steps::device_info`.
//!
//! File content, with mode and role stated from the workload's side:
//! `{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":"server","path":"<pod path>"}}`
//! or `{"type":"memif","version":"1.1.0","memif":{"role":"slave","mode":"ethernet","path":"<pod path>"}}`;
//! with the network's `deviceInfoVhostMode: "host"`, `vhost-user.mode` states the host port's
//! side instead (KubeVirt's prototype binding, virtio-device-plugin), in what we write and read.

use crate::netconf::ModeSide;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use userspace_cni_api::{codes, CniError, NodeSettings, SocketDescriptor, SocketKind};
use userspace_cni_support::names;

/// The device-info spec version we write (and the newest we read).
pub const SPEC_VERSION: &str = "1.1.0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceInfoError {
    #[error("cannot read device-info file {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "device-info file {} (runtimeConfig.CNIDeviceInfoFile, written before ADD) is not a device-info \
         document: {reason}", path.display()
    )]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "device-info file {} (written before ADD, e.g. by a device plugin) describes a {found:?} device; this \
         network's host.iftype {iftype:?} needs type {want:?}", path.display()
    )]
    WrongType { path: PathBuf, found: String, want: &'static str, iftype: String },
    #[error(
        "device-info file {} (written before ADD) puts the socket at {} in the pod, but the config has no \
         deviceID (runtimeConfig.deviceID) to find that directory on the host", path.display(), socket.display()
    )]
    NoDeviceId { path: PathBuf, socket: PathBuf },
    #[error(
        "device-info file {} (written before ADD) puts the socket at {} in the pod; set the node setting \
         device_host_dir (e.g. \"/var/lib/vhost-device-plugin/{{deviceID}}\") so the plugin knows where \
         device {device_id:?} keeps its sockets on the host", path.display(), socket.display()
    )]
    NoHostDir { path: PathBuf, socket: PathBuf, device_id: String },
    #[error(
        "device-info file {} (written before ADD) says the socket is {}, but this network would put it at {}: \
         {remedy}", path.display(), given.display(), planned.display()
    )]
    PathConflict { path: PathBuf, given: PathBuf, planned: PathBuf, remedy: String },
    #[error(
        "device-info file {} (written before ADD) says the {what} is {given:?}, but this network's \
         config makes it {planned:?}: {remedy}", path.display()
    )]
    /// `what`: whose mode or role, e.g. "workload's vhost-user mode".
    ModeConflict { path: PathBuf, what: &'static str, given: String, planned: String, remedy: String },
    #[error("cannot write device-info file {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error(
        "device-info file {} appeared during ADD and describes another socket; not replacing it", path.display()
    )]
    Appeared { path: PathBuf },
    #[error("device-info file {} {problem}", path.display())]
    Check { path: PathBuf, problem: String },
}

impl From<DeviceInfoError> for CniError {
    fn from(e: DeviceInfoError) -> Self {
        let code = match &e {
            DeviceInfoError::Unreadable { .. }
            | DeviceInfoError::Write { .. }
            | DeviceInfoError::Appeared { .. }
            | DeviceInfoError::Check { .. } => codes::IO_FAILURE,
            DeviceInfoError::Malformed { .. }
            | DeviceInfoError::NoDeviceId { .. }
            | DeviceInfoError::NoHostDir { .. }
            | DeviceInfoError::PathConflict { .. } => codes::INVALID_NETCONF,
            DeviceInfoError::WrongType { .. } | DeviceInfoError::ModeConflict { .. } => codes::UNSUPPORTED_FIELD,
        };
        CniError::new(code, e.to_string())
    }
}

/// The part of a device-info document the plugin writes and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub kind: SocketKind,
    /// vhost-user `mode` (`client` | `server`) or memif `role` (`master` | `slave`), as the file
    /// states it: the workload's, or for vhost-user with `deviceInfoVhostMode: "host"` the host
    /// port's.
    pub mode: String,
    /// memif `mode` (`ethernet` | `ip` | `inject-punt`).
    pub memif_mode: Option<String>,
    /// The socket as the pod sees it.
    pub path: PathBuf,
}

pub fn type_name(kind: SocketKind) -> &'static str {
    match kind {
        SocketKind::VhostUser => "vhost-user",
        SocketKind::Memif => "memif",
    }
}

/// The other end's vhost-user mode.
fn inverse_vhost(mode: &str) -> &'static str {
    if mode == "client" {
        "server"
    } else {
        "client"
    }
}

/// What a file's mode or role states, and whose, in words for messages.
fn what_mode(kind: SocketKind, side: ModeSide) -> &'static str {
    match (kind, side) {
        (SocketKind::VhostUser, ModeSide::Host) => "host port's vhost-user mode (deviceInfoVhostMode \"host\")",
        (SocketKind::VhostUser, ModeSide::Workload) => "workload's vhost-user mode",
        (SocketKind::Memif, _) => "workload's memif role",
    }
}

impl DeviceInfo {
    /// What publication says about `socket`: the pod-side path, the mode from the side
    /// `side` names (vhost-user; a memif role is always the workload's).
    pub fn of_socket(socket: &SocketDescriptor, side: ModeSide) -> DeviceInfo {
        let mode = match (socket.kind, side) {
            (SocketKind::VhostUser, ModeSide::Host) => inverse_vhost(&socket.workload_mode).to_owned(),
            _ => socket.workload_mode.clone(),
        };
        DeviceInfo {
            kind: socket.kind,
            mode,
            memif_mode: match socket.kind {
                SocketKind::Memif => socket.memif_mode.clone(),
                SocketKind::VhostUser => None,
            },
            path: socket.pod_path.clone(),
        }
    }

    /// The workload's vhost-user mode or memif role, whichever side the file states.
    pub fn workload_mode(&self, side: ModeSide) -> &str {
        match (self.kind, side) {
            (SocketKind::VhostUser, ModeSide::Host) => inverse_vhost(&self.mode),
            _ => &self.mode,
        }
    }

    pub fn to_json(&self) -> Value {
        let path = self.path.display().to_string();
        match self.kind {
            SocketKind::VhostUser => json!({
                "type": "vhost-user", "version": SPEC_VERSION,
                "vhost-user": {"mode": self.mode, "path": path}
            }),
            SocketKind::Memif => {
                let mut memif = json!({"role": self.mode, "path": path});
                if let Some(m) = &self.memif_mode {
                    memif["mode"] = Value::String(m.clone());
                }
                json!({"type": "memif", "version": SPEC_VERSION, "memif": memif})
            }
        }
    }

    /// Read a document of type vhost-user or memif; `Err(Ok(type))` for another valid type (pci,
    /// vdpa, ...), `Err(Err(reason))` for a malformed one.
    pub fn parse(doc: &Value) -> Result<DeviceInfo, Result<String, String>> {
        let kind = doc.get("type").and_then(Value::as_str).ok_or_else(|| Err("no \"type\" string".to_owned()))?;
        let (kind, section, mode_key) = match kind {
            "vhost-user" => (SocketKind::VhostUser, "vhost-user", "mode"),
            "memif" => (SocketKind::Memif, "memif", "role"),
            other => return Err(Ok(other.to_owned())),
        };
        let sec = doc.get(section).and_then(Value::as_object).ok_or_else(|| Err(format!("no {section:?} object")))?;
        let text = |k: &str| sec.get(k).and_then(Value::as_str).map(str::to_owned);
        let path = text("path").ok_or_else(|| Err(format!("no {section}.path string")))?;
        let mode = text(mode_key).ok_or_else(|| Err(format!("no {section}.{mode_key} string")))?;
        let allowed: &[&str] = match kind {
            SocketKind::VhostUser => &["client", "server"],
            SocketKind::Memif => &["master", "slave"],
        };
        if !allowed.contains(&mode.as_str()) {
            return Err(Err(format!("{section}.{mode_key} {mode:?} is not one of {allowed:?}")));
        }
        let path = PathBuf::from(path);
        pod_socket_path(&path).map_err(Err)?;
        Ok(DeviceInfo { kind, mode, memif_mode: if kind == SocketKind::Memif { text("mode") } else { None }, path })
    }
}

/// A socket path as a pod sees it: absolute, no `..`, a file name under a directory.
fn pod_socket_path(path: &Path) -> Result<(), String> {
    let s = path.as_os_str().as_encoded_bytes();
    if !path.is_absolute() || s.contains(&0) || path.components().any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("path {:?} is not an absolute path without '..'", path.display()));
    }
    match (path.parent(), path.file_name()) {
        (Some(p), Some(_)) if p != Path::new("/") && !s.ends_with(b"/") => Ok(()),
        _ => Err(format!("path {:?} does not name a socket file in a directory", path.display())),
    }
}

/// Where a device-info file written before ADD puts the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenRoute {
    pub info: DeviceInfo,
    /// The directory on the host (the setting `device_host_dir` for the deviceID).
    pub host_dir: PathBuf,
    /// The directory as the pod sees it (the parent of the file's path).
    pub pod_dir: PathBuf,
    /// The socket's file name (the backend must use exactly this one).
    pub socket_name: String,
}

/// Turn an existing device-info document into the socket's place, for a network whose host side
/// is `want` (vhost-user or memif).
pub fn route_from_given(
    file: &Path,
    doc: &Value,
    want: SocketKind,
    iftype: &str,
    device_id: Option<&str>,
    settings: &NodeSettings,
) -> Result<GivenRoute, CniError> {
    let info = match DeviceInfo::parse(doc) {
        Ok(i) => i,
        Err(Ok(found)) => {
            return Err(DeviceInfoError::WrongType {
                path: file.into(),
                found,
                want: type_name(want),
                iftype: iftype.into(),
            }
            .into())
        }
        Err(Err(reason)) => return Err(DeviceInfoError::Malformed { path: file.into(), reason }.into()),
    };
    if info.kind != want {
        return Err(DeviceInfoError::WrongType {
            path: file.into(),
            found: type_name(info.kind).into(),
            want: type_name(want),
            iftype: iftype.into(),
        }
        .into());
    }
    let (Some(pod_dir), Some(name)) = (info.path.parent(), info.path.file_name().and_then(|n| n.to_str())) else {
        return Err(DeviceInfoError::Malformed { path: file.into(), reason: "path has no file name".into() }.into());
    };
    names::validate_file_name("the device-info file's socket name", name)?;
    let device_id =
        device_id.ok_or_else(|| DeviceInfoError::NoDeviceId { path: file.into(), socket: info.path.clone() })?;
    names::validate_file_name("runtimeConfig.deviceID", device_id)?;
    let template = settings.device_host_dir.as_deref().ok_or_else(|| DeviceInfoError::NoHostDir {
        path: file.into(),
        socket: info.path.clone(),
        device_id: device_id.into(),
    })?;
    Ok(GivenRoute {
        host_dir: PathBuf::from(template.replace("{deviceID}", device_id)),
        pod_dir: pod_dir.to_path_buf(),
        socket_name: name.to_owned(),
        info,
    })
}

/// After planning with a given file: the backend's socket must be exactly the one it describes,
/// its mode read from the side `side` names.
pub fn check_honoured(
    file: &Path,
    given: &DeviceInfo,
    socket: &SocketDescriptor,
    side: ModeSide,
) -> Result<(), CniError> {
    let planned = DeviceInfo::of_socket(socket, side);
    if planned.path != given.path {
        return Err(DeviceInfoError::PathConflict {
            path: file.into(),
            given: given.path.clone(),
            planned: planned.path,
            remedy: "remove host.vhost.socketfile / host.memif.socketfile from the config, or fix the device plugin"
                .into(),
        }
        .into());
    }
    let key = match given.kind {
        SocketKind::VhostUser => "host.vhost.mode",
        SocketKind::Memif => "host.memif.role",
    };
    if planned.mode != given.mode {
        let remedy = match (given.kind, side) {
            (SocketKind::Memif, _) => {
                format!("leave {key} out (the file decides) or set it to the inverse of the file's")
            }
            (SocketKind::VhostUser, ModeSide::Workload) => format!(
                "leave {key} out (the file decides) or set it to the inverse of the file's; if the device plugin \
                 states the host port's side (as virtio-device-plugin does), set deviceInfoVhostMode \"host\""
            ),
            (SocketKind::VhostUser, ModeSide::Host) => {
                format!("leave {key} out (the file decides) or set it to the file's")
            }
        };
        return Err(DeviceInfoError::ModeConflict {
            path: file.into(),
            what: what_mode(given.kind, side),
            given: given.mode.clone(),
            planned: planned.mode,
            remedy,
        }
        .into());
    }
    if let (Some(g), Some(p)) = (&given.memif_mode, &planned.memif_mode) {
        if g != p {
            return Err(DeviceInfoError::ModeConflict {
                path: file.into(),
                what: "workload's memif mode",
                given: g.clone(),
                planned: p.clone(),
                remedy: "leave host.memif.mode out (the file decides) or set it to the file's".into(),
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vhost(mode: &str, path: &str) -> DeviceInfo {
        DeviceInfo { kind: SocketKind::VhostUser, mode: mode.into(), memif_mode: None, path: path.into() }
    }

    #[test]
    fn documents_round_trip_in_the_spec_shape() {
        let v = vhost("server", "/var/run/vhost/sock1");
        let doc = v.to_json();
        assert_eq!(
            doc,
            json!({"type": "vhost-user", "version": "1.1.0",
                   "vhost-user": {"mode": "server", "path": "/var/run/vhost/sock1"}})
        );
        assert_eq!(DeviceInfo::parse(&doc), Ok(v));
        let m = DeviceInfo {
            kind: SocketKind::Memif,
            mode: "slave".into(),
            memif_mode: Some("ip".into()),
            path: "/run/memif/m.sock".into(),
        };
        let doc = m.to_json();
        assert_eq!(doc["memif"], json!({"role": "slave", "mode": "ip", "path": "/run/memif/m.sock"}));
        assert_eq!(DeviceInfo::parse(&doc), Ok(m));
    }

    #[test]
    fn other_types_and_malformed_documents_are_told_apart() {
        assert_eq!(
            DeviceInfo::parse(&json!({"type": "pci", "pci": {"pci-address": "0000:00:01.0"}})),
            Err(Ok("pci".into()))
        );
        for bad in [
            json!({}),
            json!({"type": "vhost-user"}),
            json!({"type": "vhost-user", "vhost-user": {"mode": "server"}}),
            json!({"type": "vhost-user", "vhost-user": {"mode": "both", "path": "/a/b"}}),
            json!({"type": "vhost-user", "vhost-user": {"mode": "client", "path": "rel/b"}}),
            json!({"type": "vhost-user", "vhost-user": {"mode": "client", "path": "/a/../b"}}),
            json!({"type": "vhost-user", "vhost-user": {"mode": "client", "path": "/sock"}}),
            json!({"type": "memif", "memif": {"role": "primary", "path": "/a/b"}}),
        ] {
            assert!(matches!(DeviceInfo::parse(&bad), Err(Err(_))), "{bad}");
        }
    }

    #[test]
    fn a_given_file_needs_a_device_id_and_the_host_dir_setting() {
        let doc = vhost("client", "/var/run/vhost-dp/sock7").to_json();
        let file = Path::new("/run/devinfo/x.json");
        let mut s = NodeSettings::default();
        let err = route_from_given(file, &doc, SocketKind::VhostUser, "vhostuser", None, &s).unwrap_err();
        assert!(err.msg.contains("deviceID") && err.msg.contains("/var/run/vhost-dp/sock7"), "{}", err.msg);
        let err = route_from_given(file, &doc, SocketKind::VhostUser, "vhostuser", Some("dev7"), &s).unwrap_err();
        assert!(err.msg.contains("device_host_dir"), "{}", err.msg);
        s.device_host_dir = Some("/var/lib/dp/{deviceID}".into());
        let r = route_from_given(file, &doc, SocketKind::VhostUser, "vhostuser", Some("dev7"), &s).unwrap();
        assert_eq!(r.host_dir, PathBuf::from("/var/lib/dp/dev7"));
        assert_eq!(r.pod_dir, PathBuf::from("/var/run/vhost-dp"));
        assert_eq!(r.socket_name, "sock7");
        let err = route_from_given(file, &doc, SocketKind::VhostUser, "vhostuser", Some("../x"), &s).unwrap_err();
        assert_eq!(err.code, codes::INVALID_NETCONF);
        let err = route_from_given(file, &doc, SocketKind::Memif, "memif", Some("dev7"), &s).unwrap_err();
        assert_eq!(err.code, codes::UNSUPPORTED_FIELD, "{}", err.msg);
    }

    #[test]
    fn a_planned_socket_elsewhere_names_both_paths() {
        let given = vhost("server", "/pod/a/sock");
        let sock = SocketDescriptor {
            kind: SocketKind::VhostUser,
            workload_mode: "server".into(),
            memif_mode: None,
            host_path: "/host/b/other".into(),
            pod_path: "/pod/b/other".into(),
            mac: None,
            mtu: None,
        };
        let err = check_honoured(Path::new("/d.json"), &given, &sock, ModeSide::Workload).unwrap_err();
        assert!(err.msg.contains("/pod/a/sock") && err.msg.contains("/pod/b/other"), "{}", err.msg);
        let sock = SocketDescriptor { pod_path: "/pod/a/sock".into(), workload_mode: "client".into(), ..sock };
        let err = check_honoured(Path::new("/d.json"), &given, &sock, ModeSide::Workload).unwrap_err();
        assert!(err.msg.contains("mode") && err.msg.contains("client"), "{}", err.msg);
        let sock = SocketDescriptor { workload_mode: "server".into(), ..sock };
        assert!(check_honoured(Path::new("/d.json"), &given, &sock, ModeSide::Workload).is_ok());
    }

    #[test]
    fn the_mode_side_governs_what_we_write_and_how_a_given_file_is_read() {
        // OVS dpdkvhostuserclient: the workload serves.
        let sock = SocketDescriptor {
            kind: SocketKind::VhostUser,
            workload_mode: "server".into(),
            memif_mode: None,
            host_path: "/host/dp/0/vhost.sock".into(),
            pod_path: "/var/run/vdp/0/vhost.sock".into(),
            mac: None,
            mtu: None,
        };
        assert_eq!(DeviceInfo::of_socket(&sock, ModeSide::Workload).mode, "server", "the spec's text");
        assert_eq!(DeviceInfo::of_socket(&sock, ModeSide::Host).mode, "client", "KubeVirt's prototype reading");
        // virtio-device-plugin's file: "client", meaning OVS connects.
        let given = vhost("client", "/var/run/vdp/0/vhost.sock");
        assert_eq!(given.workload_mode(ModeSide::Host), "server");
        assert_eq!(given.workload_mode(ModeSide::Workload), "client");
        assert!(check_honoured(Path::new("/d.json"), &given, &sock, ModeSide::Host).is_ok());
        let err = check_honoured(Path::new("/d.json"), &given, &sock, ModeSide::Workload).unwrap_err();
        assert_eq!(err.code, codes::UNSUPPORTED_FIELD, "{err}");
        assert!(err.msg.contains("deviceInfoVhostMode"), "the message names the key that fixes it: {err}");
        // A memif role is always the workload's.
        let memif = SocketDescriptor { kind: SocketKind::Memif, workload_mode: "slave".into(), ..sock };
        assert_eq!(DeviceInfo::of_socket(&memif, ModeSide::Host).mode, "slave");
    }
}
