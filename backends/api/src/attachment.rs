//! Who an attachment is for and what it produces for the workload: identifiers, the shared
//! directory, and the socket descriptor that generic publication (result, device-info) consumes.

use crate::access::Permissions;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// (container id, ifname): the key of an attachment, as the CNI spec defines it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AttachmentId {
    pub container_id: String,
    pub ifname: String,
}

impl AttachmentId {
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        AttachmentId { container_id: container_id.into(), ifname: ifname.into() }
    }

    /// The first 12 characters of the container id, or the whole id when shorter (upstream
    /// sliced `[:12]` and panicked on short ids). Ids are ASCII after validation; this never
    /// splits a character even if called on unvalidated input.
    pub fn cid12(&self) -> &str {
        let end = self.container_id.char_indices().nth(12).map(|(i, _)| i).unwrap_or(self.container_id.len());
        &self.container_id[..end]
    }

    /// `<cid>_<ifname>`: the stem of the record and lock files.
    pub fn file_stem(&self) -> String {
        format!("{}_{}", self.container_id, self.ifname)
    }
}

/// The Kubernetes pod, from CNI_ARGS (all optional: a runtime need not be Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infra_container_id: Option<String>,
}

/// Everything about the attachment that is known before any side effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: AttachmentId,
    /// The network config's `name`: GC acts only on objects of this network.
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(default)]
    pub pod: PodRef,
    /// MAC requested by `runtimeConfig.mac` or CNI_ARGS `MAC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A directory shared with the pod, as the host and as the pod see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDir {
    pub host: PathBuf,
    pub pod: PathBuf,
    /// `host.vhost.group` as written (name or id). Kept for the record; what is applied is
    /// `permissions` (where it is resolved into the socket's group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Owner, group, mode and label of this dir and of a server-mode socket in it, resolved at
    /// validation (`host.permissions`, `host.vhost.group`).
    #[serde(default, skip_serializing_if = "Permissions::is_empty")]
    pub permissions: Permissions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketKind {
    VhostUser,
    Memif,
}

/// What a backend hands to generic publication: the socket the workload must open and how.
/// Modes and roles are stated **from the workload's side** (OVS `dpdkvhostuserclient` means the
/// workload is the vhost-user `server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketDescriptor {
    pub kind: SocketKind,
    /// vhost-user: `client` | `server`; memif: `master` | `slave`.
    pub workload_mode: String,
    /// memif only: `ethernet` | `ip` | `inject-punt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif_mode: Option<String>,
    pub host_path: PathBuf,
    pub pod_path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A host-side interface for the CNI result (an OVS port, a VPP interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInterface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}
