//! What file access a workload's shared directory and sockets get (owner, group, mode, SELinux
//! label, ACL users): plain data carried by the contract's types (`SharedDir`, `InterfaceSpec`)
//! and the record. Resolving names and applying it to files is `userspace_cni_support::perms`.

use serde::{Deserialize, Serialize};

/// `host.permissions` as written: names not yet resolved, modes already parsed from octal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionsConf {
    /// A user name (from /etc/passwd) or a numeric uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A group name (from /etc/group) or a numeric gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_context: Option<String>,
}

/// What one file gets, with numeric ids. Empty: the file is left as it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, rename = "selinuxContext", skip_serializing_if = "Option::is_none")]
    pub selinux_context: Option<String>,
    /// Directories only: users (numeric uids) given POSIX ACL entries, search on the dir and,
    /// through its default ACL, read and write on every file created in it (a socket another
    /// process binds there). Set by the DRA setting `dra_dir_acl_users`; empty: no ACL is written.
    #[serde(default, rename = "aclUsers", skip_serializing_if = "Vec::is_empty")]
    pub acl_users: Vec<u32>,
}

impl Access {
    pub fn is_empty(&self) -> bool {
        self.uid.is_none()
            && self.gid.is_none()
            && self.mode.is_none()
            && self.selinux_context.is_none()
            && self.acl_users.is_empty()
    }
}

/// The resolved settings: what the shared dir gets, and what a socket the dataplane serves gets
/// (OVS `dpdkvhostuser`, VPP vhost-user server and memif master). A socket the workload creates
/// (client mode) is the workload's: only the dir matters for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(default, skip_serializing_if = "Access::is_empty")]
    pub dir: Access,
    #[serde(default, skip_serializing_if = "Access::is_empty")]
    pub socket: Access,
}

impl Permissions {
    pub fn is_empty(&self) -> bool {
        self.dir.is_empty() && self.socket.is_empty()
    }
}
