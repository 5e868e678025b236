//! The typed view of the upstream plugin's `host` / `container` objects (DESIGN.md §4), shared by
//! the config parser (which fills it) and the backends (which validate their own part of it).

use serde::{Deserialize, Serialize};

/// `iftype`: the kind of userspace interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IfType {
    #[serde(rename = "vhostuser")]
    VhostUser,
    #[serde(rename = "memif")]
    Memif,
}

impl IfType {
    pub fn as_str(self) -> &'static str {
        match self {
            IfType::VhostUser => "vhostuser",
            IfType::Memif => "memif",
        }
    }
}

/// `netType`: how the interface joins the dataplane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetType {
    #[serde(rename = "bridge")]
    Bridge,
    #[serde(rename = "interface")]
    Interface,
}

/// vhost-user mode, always stated from the side that owns the object (host or container).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VhostMode {
    #[serde(rename = "client")]
    Client,
    #[serde(rename = "server")]
    Server,
}

impl VhostMode {
    pub fn inverse(self) -> Self {
        match self {
            VhostMode::Client => VhostMode::Server,
            VhostMode::Server => VhostMode::Client,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            VhostMode::Client => "client",
            VhostMode::Server => "server",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemifRole {
    #[serde(rename = "master")]
    Master,
    #[serde(rename = "slave")]
    Slave,
}

impl MemifRole {
    pub fn inverse(self) -> Self {
        match self {
            MemifRole::Master => MemifRole::Slave,
            MemifRole::Slave => MemifRole::Master,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MemifRole::Master => "master",
            MemifRole::Slave => "slave",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemifMode {
    #[serde(rename = "ethernet")]
    Ethernet,
    #[serde(rename = "ip")]
    Ip,
    #[serde(rename = "inject-punt")]
    InjectPunt,
}

impl MemifMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MemifMode::Ethernet => "ethernet",
            MemifMode::Ip => "ip",
            MemifMode::InjectPunt => "inject-punt",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemifConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<MemifRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MemifMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socketfile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<VhostMode>,
    /// Group (name or numeric id) given to the socket and, for KubeVirt, the short dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socketfile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeConf {
    #[serde(default, rename = "bridgeName", skip_serializing_if = "Option::is_none")]
    pub bridge_name: Option<String>,
    #[serde(default, rename = "bridgeId", skip_serializing_if = "Option::is_none")]
    pub bridge_id: Option<u32>,
    #[serde(default, rename = "vlanId", skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
}

/// One side (`host` or `container`) of the upstream config. Keys have been normalised to these
/// canonical spellings by the config parser; `raw` keeps the whole normalised object so a backend
/// can read engine-specific keys it documents itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iftype: Option<IfType>,
    #[serde(default, rename = "netType", skip_serializing_if = "Option::is_none")]
    pub net_type: Option<NetType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif: Option<MemifConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<VhostConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgeConf>,
    /// `permissions`: owner, group, modes and SELinux label of the shared dir and server-mode
    /// socket (host side only; names are resolved by `perms::resolve` at planning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<crate::access::PermissionsConf>,
    #[serde(skip)]
    pub raw: serde_json::Value,
}
