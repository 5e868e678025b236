//! The OVS-DPDK part of the network config: validated into an `OvsPlan` (every name and path the
//! backend will create), without side effects. The keys it reads are documented in README.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use userspace_cni_api::spec::{IfType, NetType, VhostMode};
use userspace_cni_api::{codes, CniError, PlanRequest};
use userspace_cni_support::json::get_ci;
use userspace_cni_support::names::{check_sun_path, validate_file_name, validate_object_name};
use userspace_cni_support::perms::Access;

/// Bridge and port names: OVS accepts long names, but a port name is also the vhost socket's
/// file name, and short names keep `ovs-vsctl show` readable.
const MAX_NAME: usize = 64;

/// Everything the OVS steps need, stored in the attachment record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OvsPlan {
    pub bridge: String,
    /// Port and interface name: the socket file name, or `<cid12>-<ifname>` when a device
    /// plugin chose the file name (which need not be unique on the node).
    pub port: String,
    /// Host (OVS) side: `server` → `dpdkvhostuser`, `client` → `dpdkvhostuserclient`.
    pub host_mode: VhostMode,
    /// Server mode: where OVS creates the socket (its vhost-sock-dir), named as the port.
    pub ovs_socket: PathBuf,
    /// The socket in the pod's shared dir (server: delivered there, renamed to this file name;
    /// client: vhost-server-path).
    pub shared_socket: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policing: Option<Policing>,
    /// Server mode: owner, group, mode and label the delivered socket gets (`host.permissions`,
    /// `host.vhost.group`), resolved at validation. Client mode: empty (the workload's socket).
    #[serde(default, skip_serializing_if = "Access::is_empty")]
    pub socket_access: Access,
    /// Records written before `host.permissions` existed: `host.vhost.group` as a name (see
    /// `repair::socket_access`). Never planned now; kept so such a record reads back whole.
    #[serde(default, rename = "group", skip_serializing_if = "Option::is_none")]
    pub legacy_group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policing {
    /// kbps (OVS `ingress_policing_rate`).
    pub rate: u32,
    /// kb (OVS `ingress_policing_burst`).
    pub burst: u32,
}

fn as_u32(key: &str, v: &Value, min: u64, max: u64) -> Result<u32, CniError> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n as u32),
        _ => Err(CniError::invalid_config(format!("{key}: {v} is not a whole number in {min}..={max}"))),
    }
}

/// In server mode OVS creates the port's socket in its own run dir (`vhost-sock-dir`), beside
/// its database socket, control sockets and pid files; a port named like one of them would make
/// vswitchd fail and the port's undo remove OVS's file. Refused before any side effect.
pub fn refuse_ovs_own_name(port: &str, bridge: &str) -> Result<(), CniError> {
    let own = port == "db.sock"
        || port.ends_with(".ctl")
        || port.ends_with(".pid")
        || port == format!("{bridge}.mgmt")
        || port == format!("{bridge}.snoop")
        || port.ends_with(".mgmt")
        || port.ends_with(".snoop");
    if own {
        return Err(CniError::invalid_config(format!(
            "host.vhost.socketfile {port:?} is the name of one of OVS's own files in its run dir (db.sock, *.ctl, \
             *.pid, <bridge>.mgmt, <bridge>.snoop), where server-mode (vhost.mode \"server\") sockets are made; \
             choose another name"
        )));
    }
    Ok(())
}

pub fn plan(req: &PlanRequest<'_>) -> Result<OvsPlan, CniError> {
    let host = req.host;
    if host.iftype != Some(IfType::VhostUser) {
        return Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            format!(
                "host.iftype {:?} is not supported by engine ovs-dpdk; use \"vhostuser\" (memif needs engine vpp)",
                host.iftype.map(IfType::as_str).unwrap_or("")
            ),
        ));
    }
    if host.net_type == Some(NetType::Interface) {
        return Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            "host.netType \"interface\" is not supported by engine ovs-dpdk: an OVS port always joins a bridge; use \"bridge\"",
        ));
    }
    let vhost = host.vhost.clone().unwrap_or_default();
    let bridge_conf = host.bridge.clone().unwrap_or_default();
    if bridge_conf.bridge_id.is_some() {
        return Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            "host.bridge.bridgeId is a VPP bridge-domain id; engine ovs-dpdk names bridges with bridge.bridgeName",
        ));
    }
    let bridge = bridge_conf.bridge_name.unwrap_or_else(|| "br0".into());
    validate_object_name("host.bridge.bridgeName", &bridge, MAX_NAME)?;

    let id = &req.attachment.id;
    let default_name = format!("{}-{}", id.cid12(), id.ifname);
    let socket_name = vhost.socketfile.unwrap_or_else(|| default_name.clone());
    validate_file_name("host.vhost.socketfile", &socket_name)?;
    // The port name is the socket's file name (upstream's rule), except when a device plugin
    // chose the file name: it may give every device's socket the same one, each in its own
    // dir, and OVS port names are node-wide. The upstream default name is unique per
    // attachment, and OVS's dir holds a server-mode socket under the port's name, not the file's.
    let port = if req.socket_name_from_device_plugin {
        validate_object_name("the OVS port name (<cid12>-<ifname>)", &default_name, MAX_NAME)?;
        default_name
    } else {
        validate_object_name("host.vhost.socketfile (the OVS port name)", &socket_name, MAX_NAME)?;
        socket_name.clone()
    };

    let host_mode = vhost.mode.unwrap_or(VhostMode::Server);
    if host_mode == VhostMode::Server {
        refuse_ovs_own_name(&port, &bridge)?;
    }
    let sock_dir = crate::settings::OvsSettings::from_node(req.settings).sock_dir;
    let ovs_socket = sock_dir.join(&port);
    // The shared-dir socket path is checked by the generic planner, which may still move it to
    // a short dir (KubeVirt); OVS's own dir is ours to check.
    let shared_socket = req.shared_dir.host.join(&socket_name);
    if host_mode == VhostMode::Server {
        check_sun_path("OVS vhost-sock-dir socket path", &ovs_socket)?;
        same_filesystem(&sock_dir, &req.shared_dir.host)?;
    }

    let raw = &host.raw;
    let braw = get_ci(raw, "bridge").cloned().unwrap_or(Value::Null);
    let trunks = match get_ci(&braw, "trunks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            a.iter().map(|v| as_u32("host.bridge.trunks", v, 0, 4095).map(|n| n as u16)).collect::<Result<_, _>>()?
        }
        Some(v) => {
            return Err(CniError::invalid_config(format!("host.bridge.trunks: {v} is not an array of VLAN ids")))
        }
    };
    let mtu = get_ci(raw, "mtu").map(|v| as_u32("host.mtu", v, 68, 65535)).transpose()?;
    let policing = match get_ci(raw, "ingressPolicing") {
        None | Some(Value::Null) => None,
        Some(p @ Value::Object(_)) => Some(Policing {
            rate: get_ci(p, "rate")
                .map(|v| as_u32("host.ingressPolicing.rate", v, 0, u32::MAX as u64))
                .transpose()?
                .ok_or_else(|| CniError::invalid_config("host.ingressPolicing.rate (kbps) is required"))?,
            burst: get_ci(p, "burst")
                .map(|v| as_u32("host.ingressPolicing.burst", v, 0, u32::MAX as u64))
                .transpose()?
                .unwrap_or(0),
        }),
        Some(v) => {
            return Err(CniError::invalid_config(format!(
                "host.ingressPolicing: {v} is not an object like {{\"rate\": 10000, \"burst\": 1000}}"
            )))
        }
    };
    // `host.vhost.group` and `host.permissions` were resolved by the generic planner (a typo
    // already failed validation); only a socket OVS serves is ours to set.
    let socket_access = match host_mode {
        VhostMode::Server => req.shared_dir.permissions.socket.clone(),
        VhostMode::Client => Access::default(),
    };
    Ok(OvsPlan {
        bridge,
        port,
        host_mode,
        ovs_socket,
        shared_socket,
        vlan: bridge_conf.vlan_id.filter(|v| *v != 0),
        trunks,
        mtu,
        policing,
        socket_access,
        legacy_group: None,
    })
}

/// Server mode moves OVS's socket into the shared dir with rename(2), which cannot cross
/// filesystems: check it now, before anything exists (DESIGN.md §3.5).
fn same_filesystem(ovs_dir: &Path, shared: &Path) -> Result<(), CniError> {
    let dev = |p: &Path| -> Option<u64> { p.ancestors().find_map(|a| std::fs::metadata(a).ok()).map(|m| m.dev()) };
    match (dev(ovs_dir), dev(shared)) {
        (Some(a), Some(b)) if a != b => Err(CniError::new(
            codes::CROSS_FILESYSTEM_SOCKET,
            format!(
                "vhost.mode \"server\" needs OVS's vhost-sock-dir ({}) and the shared dir ({}) on one filesystem, \
                 so the socket OVS creates can be moved into the pod; they are not. Use host vhost.mode \"client\" \
                 (recommended: OVS deprecates server mode) or put both on one filesystem",
                ovs_dir.display(),
                shared.display()
            ),
        )),
        _ => Ok(()),
    }
}
