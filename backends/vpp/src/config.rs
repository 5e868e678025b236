//! The VPP part of the network config, validated into a `VppPlan` (every name, path, id and tag
//! the steps will use) without side effects. Never accepts a value VPP would refuse later.

use crate::tags;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use userspace_cni_api::spec::{IfType, MemifMode, MemifRole, NetType, VhostMode};
use userspace_cni_api::{codes, CniError, PlanRequest};
use userspace_cni_support::json::get_ci;
use userspace_cni_support::names::{check_sun_path, validate_file_name};
use userspace_cni_support::perms::Access;

/// VPP refuses bridge-domain ids above 16M (`BD_ID_EXCEED_MAX`).
pub const MAX_BD_ID: u32 = 0x00ff_ffff;
/// memif rings hold at most 2^14 descriptors (MEMIF_MAX_LOG2_RING_SIZE).
pub const MAX_RING_SIZE: u64 = 1 << 14;
/// `abstract:<name>`: the name goes to `sun_path[1..]`, so 106 bytes at most (clib_socket_init).
pub const MAX_ABSTRACT_NAME: usize = 106;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VppPlan {
    pub iface: Iface,
    pub net: Net,
    /// The interface's ownership tag (`sw_interface_tag_add_del`), see `tags`.
    pub tag: String,
    /// `bd_tag` of a bridge domain we create.
    pub bd_tag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Iface {
    Memif(MemifPlan),
    VhostUser(VhostPlan),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemifPlan {
    /// VPP's side.
    pub role: MemifRole,
    pub mode: MemifMode,
    /// What VPP is given as the socket filename: the host path, or
    /// `abstract:<name>,netns_name=<netns>` for an abstract socket in the pod's netns.
    pub socket: String,
    /// The abstract socket's name, when abstract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstract_name: Option<String>,
    /// 0 = VPP's default (1 queue, 1024 slots, 2048-byte buffers).
    pub rx_queues: u8,
    pub tx_queues: u8,
    pub ring_size: u32,
    pub buffer_size: u16,
    /// Master (VPP listens on a socket file): owner, group, mode and label of that socket
    /// (`host.permissions`), resolved at validation. Slave or abstract: empty.
    #[serde(default, skip_serializing_if = "Access::is_empty")]
    pub socket_access: Access,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VhostPlan {
    /// VPP's side: `server` creates the socket, `client` connects to the workload's.
    pub mode: VhostMode,
    pub socket: PathBuf,
    /// Server (VPP creates the socket): owner, group, mode and label it gets (`host.permissions`,
    /// `host.vhost.group`), resolved at validation. Client: empty (the workload's socket).
    #[serde(default, skip_serializing_if = "Access::is_empty")]
    pub socket_access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Net {
    /// Joined to bridge domain `bd_id` (created if missing, then ours).
    Bridge { bd_id: u32 },
    /// A routed interface: the IPAM addresses (if any) are set on it.
    Interface,
}

fn unsupported(msg: impl Into<String>) -> CniError {
    CniError::new(codes::UNSUPPORTED_FIELD, msg)
}

fn opt_uint(obj: &Value, key: &str, full: &str, max: u64) -> Result<Option<u64>, CniError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(CniError::invalid_config(format!("{full}: {v} is not a whole number in 1..={max}"))),
        },
    }
}

/// The bridge-domain id: `bridge.bridgeId`, or `bridge.bridgeName` read as a number (upstream
/// configs write `"bridgeName": "4"`). VPP numbers its bridge domains; 0 is its default domain,
/// which cannot be modified.
fn bridge_domain(req: &PlanRequest<'_>) -> Result<u32, CniError> {
    let b = req.host.bridge.clone().unwrap_or_default();
    let from_name = match &b.bridge_name {
        None => None,
        Some(name) => match name.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Err(CniError::invalid_config(format!(
                    "host.bridge.bridgeName {name:?} is not a number; engine vpp joins a bridge domain by its \
                     numeric id: set bridge.bridgeId (or a numeric bridgeName such as \"4\")"
                )))
            }
        },
    };
    let id =
        match (b.bridge_id, from_name) {
            (Some(a), Some(b)) if a != b => {
                return Err(CniError::invalid_config(format!(
                "host.bridge.bridgeId {a} and host.bridge.bridgeName \"{b}\" name different bridge domains; set one"
            )))
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => return Err(CniError::invalid_config(
                "host.netType \"bridge\" on engine vpp needs host.bridge.bridgeId (or a numeric bridge.bridgeName): \
                 the \"br0\" default is OVS-only",
            )),
        };
    if id == 0 {
        return Err(CniError::invalid_config(
            "host.bridge: bridge domain 0 is VPP's default domain and cannot be modified; use an id from 1 to 16777215",
        ));
    }
    if id > MAX_BD_ID {
        return Err(CniError::invalid_config(format!(
            "host.bridge: bridge domain {id} is above VPP's limit of {MAX_BD_ID}"
        )));
    }
    if b.vlan_id.is_some_and(|v| v != 0) {
        return Err(unsupported(
            "host.bridge.vlanId is not supported by engine vpp (bridge domains carry no VLAN tag)",
        ));
    }
    Ok(id)
}

/// The characters VPP's socket-config parser keeps in a name or netns path (anything else ends
/// the name and makes `clib_socket_init` fail with "unknown input").
fn vpp_socket_chars(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_'))
}

pub fn plan(req: &PlanRequest<'_>) -> Result<VppPlan, CniError> {
    let host = req.host;
    let net = match host.net_type {
        Some(NetType::Bridge) => Net::Bridge { bd_id: bridge_domain(req)? },
        // Upstream's VPP code treated a missing netType as a plain interface.
        Some(NetType::Interface) | None => {
            if host.bridge.as_ref().is_some_and(|b| b.vlan_id.is_some_and(|v| v != 0)) {
                return Err(unsupported("host.bridge.vlanId is not supported by engine vpp"));
            }
            Net::Interface
        }
    };
    let id = &req.attachment.id;
    let iface = match host.iftype {
        Some(IfType::Memif) => Iface::Memif(memif(req)?),
        Some(IfType::VhostUser) => {
            let vhost = host.vhost.clone().unwrap_or_default();
            let file = vhost.socketfile.clone().unwrap_or_else(|| format!("{}-{}", id.cid12(), id.ifname));
            validate_file_name("host.vhost.socketfile", &file)?;
            let socket = req.shared_dir.host.join(&file);
            check_sun_path("socket path", &socket)?;
            let mode = vhost.mode.unwrap_or(VhostMode::Server);
            // Resolved by the generic planner before any side effect (a typo failed validation).
            let socket_access = match mode {
                VhostMode::Server => req.shared_dir.permissions.socket.clone(),
                VhostMode::Client => Access::default(),
            };
            Iface::VhostUser(VhostPlan { mode, socket, socket_access })
        }
        None => return Err(CniError::invalid_config("host.iftype is required (\"memif\" or \"vhostuser\")")),
    };
    Ok(VppPlan {
        iface,
        net,
        tag: tags::interface_tag(req.attachment),
        bd_tag: tags::bridge_domain_tag(&req.attachment.network),
    })
}

fn memif(req: &PlanRequest<'_>) -> Result<MemifPlan, CniError> {
    let id = &req.attachment.id;
    let conf = req.host.memif.clone().unwrap_or_default();
    let mode = conf.mode.unwrap_or(MemifMode::Ethernet);
    if mode == MemifMode::InjectPunt {
        // Never sent: memif_create_if of v26.06 fails an unsupported mode and then frees the
        // half-made interface, which crashes VPP (SIGSEGV) and with it every pod's interfaces.
        return Err(unsupported(
            "host.memif.mode \"inject-punt\" is not supported by engine vpp: VPP's memif plugin creates only \
             ethernet and ip interfaces, and VPP v26.06 crashes (SIGSEGV) when asked for another mode; \
             use \"ethernet\" or \"ip\"",
        ));
    }
    let file = conf.socketfile.clone().unwrap_or_else(|| format!("memif-{}-{}.sock", id.cid12(), id.ifname));
    validate_file_name("host.memif.socketfile", &file)?;
    let raw = get_ci(&req.host.raw, "memif").cloned().unwrap_or(Value::Null);
    let is_abstract = match get_ci(&raw, "abstract") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(CniError::invalid_config(format!("host.memif.abstract: {v} is not true or false"))),
    };
    let ring_size = opt_uint(&raw, "ringSize", "host.memif.ringSize", MAX_RING_SIZE)?.unwrap_or(0);
    if ring_size != 0 && !ring_size.is_power_of_two() {
        return Err(CniError::invalid_config(format!(
            "host.memif.ringSize: {ring_size} is not a power of two (VPP refuses it)"
        )));
    }
    let (socket, abstract_name) = if is_abstract {
        let netns = req.attachment.netns.clone().ok_or_else(|| {
            unsupported("host.memif.abstract needs CNI_NETNS: the abstract socket lives in the pod's network namespace")
        })?;
        if !vpp_socket_chars(&netns) || !netns.starts_with('/') {
            return Err(unsupported(format!(
                "host.memif.abstract: the netns path {netns:?} has characters VPP's socket parser stops at \
                 (it keeps [A-Za-z0-9/._-]); use a file socket (host.memif.abstract false)"
            )));
        }
        if !vpp_socket_chars(&file) || file.len() > MAX_ABSTRACT_NAME {
            return Err(CniError::invalid_config(format!(
                "host.memif.socketfile {file:?}: an abstract socket name has at most {MAX_ABSTRACT_NAME} bytes of [A-Za-z0-9/._-]"
            )));
        }
        (format!("abstract:{file},netns_name={netns}"), Some(file))
    } else {
        let path = req.shared_dir.host.join(&file);
        check_sun_path("socket path", &path)?;
        (path.to_string_lossy().into_owned(), None)
    };
    let role = conf.role.unwrap_or(MemifRole::Master);
    // A listener file exists only for a master on a file socket; an abstract one has no file.
    let socket_access = match (role, &abstract_name) {
        (MemifRole::Master, None) => req.shared_dir.permissions.socket.clone(),
        _ => Access::default(),
    };
    Ok(MemifPlan {
        role,
        mode,
        socket,
        abstract_name,
        rx_queues: opt_uint(&raw, "rxQueues", "host.memif.rxQueues", 255)?.unwrap_or(0) as u8,
        tx_queues: opt_uint(&raw, "txQueues", "host.memif.txQueues", 255)?.unwrap_or(0) as u8,
        ring_size: ring_size as u32,
        buffer_size: opt_uint(&raw, "bufferSize", "host.memif.bufferSize", u16::MAX as u64)?.unwrap_or(0) as u16,
        socket_access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use userspace_cni_api::spec::{BridgeConf, InterfaceSpec, MemifConf};
    use userspace_cni_api::{Attachment, AttachmentId, NodeSettings, SharedDir};

    fn att(netns: Option<&str>) -> Attachment {
        Attachment {
            id: AttachmentId::new("0123456789abcdef", "net1"),
            network: "n".into(),
            netns: netns.map(str::to_owned),
            pod: Default::default(),
            mac: None,
        }
    }

    fn plan_of(host: InterfaceSpec, netns: Option<&str>) -> Result<VppPlan, CniError> {
        let a = att(netns);
        let dir = SharedDir {
            host: "/var/lib/cni/usrspcni/0123456789ab".into(),
            pod: "/var/lib/cni/usrspcni/0123456789ab".into(),
            group: None,
            permissions: Default::default(),
        };
        let settings = NodeSettings::default();
        let container = InterfaceSpec::default();
        plan(&PlanRequest {
            attachment: &a,
            host: &host,
            container: &container,
            shared_dir: &dir,
            settings: &settings,
            socket_name_from_device_plugin: false,
        })
    }

    fn memif(bridge: Option<BridgeConf>, raw: serde_json::Value) -> InterfaceSpec {
        InterfaceSpec {
            engine: Some("vpp".into()),
            iftype: Some(IfType::Memif),
            net_type: bridge.as_ref().map(|_| NetType::Bridge),
            memif: Some(MemifConf::default()),
            bridge,
            raw,
            ..Default::default()
        }
    }

    #[test]
    fn memif_defaults_and_bridge_name_as_a_number() {
        let p =
            plan_of(memif(Some(BridgeConf { bridge_name: Some("4".into()), ..Default::default() }), json!({})), None)
                .expect("plan");
        assert_eq!(p.net, Net::Bridge { bd_id: 4 });
        let Iface::Memif(m) = p.iface else { panic!("memif") };
        assert_eq!(m.socket, "/var/lib/cni/usrspcni/0123456789ab/memif-0123456789ab-net1.sock");
        assert_eq!((m.role, m.mode, m.ring_size, m.abstract_name), (MemifRole::Master, MemifMode::Ethernet, 0, None));
        assert!(p.tag.starts_with("uscni:") && p.tag.len() <= 63);
    }

    #[test]
    fn abstract_memif_names_the_pods_netns() {
        let raw = json!({"memif": {"abstract": true, "ringSize": 2048, "rxQueues": 2}});
        let p = plan_of(memif(None, raw.clone()), Some("/var/run/netns/cni-1234")).expect("plan");
        let Iface::Memif(m) = p.iface else { panic!("memif") };
        assert_eq!(m.socket, "abstract:memif-0123456789ab-net1.sock,netns_name=/var/run/netns/cni-1234");
        assert_eq!((m.ring_size, m.rx_queues), (2048, 2));
        let e = plan_of(memif(None, raw.clone()), Some("/proc/1/ns/net x")).unwrap_err();
        assert_eq!(e.code, codes::UNSUPPORTED_FIELD, "{e}");
        assert_eq!(plan_of(memif(None, raw), None).unwrap_err().code, codes::UNSUPPORTED_FIELD);
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let bd = |name: Option<&str>, id: Option<u32>| BridgeConf {
            bridge_name: name.map(str::to_owned),
            bridge_id: id,
            vlan_id: None,
        };
        for (b, code, key) in [
            (bd(Some("br0"), None), codes::INVALID_NETCONF, "bridgeName"),
            (bd(None, None), codes::INVALID_NETCONF, "bridgeId"),
            (bd(Some("0"), None), codes::INVALID_NETCONF, "bridge domain 0"),
            (bd(None, Some(MAX_BD_ID + 1)), codes::INVALID_NETCONF, "limit"),
            (bd(Some("3"), Some(4)), codes::INVALID_NETCONF, "different"),
        ] {
            let e = plan_of(memif(Some(b), json!({})), None).unwrap_err();
            assert_eq!(e.code, code, "{e}");
            assert!(e.msg.contains(key), "{key}: {e}");
        }
        let mut host = memif(None, json!({}));
        host.memif = Some(MemifConf { mode: Some(MemifMode::InjectPunt), ..Default::default() });
        let e = plan_of(host, None).unwrap_err();
        assert_eq!(e.code, codes::UNSUPPORTED_FIELD, "{e}");
        assert!(e.msg.contains("crashes (SIGSEGV)") && !e.msg.contains("answers"), "why, as VPP v26.06 does it: {e}");
        let e = plan_of(memif(None, json!({"memif": {"ringSize": 1000}})), None).unwrap_err();
        assert!(e.msg.contains("power of two"), "{e}");
    }
}
