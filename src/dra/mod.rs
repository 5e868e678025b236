//! The DRA front-end (DESIGN.md §7, docs/kubevirt-dra.md): `userspace dra-plugin` serves kubelet's
//! plugin registration and `DRAPlugin` services on unix sockets and turns each claim kubelet asks
//! to prepare into an attachment of the core pipeline (per-claim socket dir, bridge, client-mode
//! vhost-user port, CDI specs, KEP-5304 device metadata, the record). It depends on the core and
//! support layers, never on another front-end.

pub mod claim;
pub mod documents;
pub mod prepare;
pub mod probe;
pub mod run;
pub mod slice;

use async_trait::async_trait;
use std::time::Instant;

/// A claim as kubelet names it in `NodePrepareResources` / `NodeUnprepareResources`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// One prepared device, as kubelet's `Device` message carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDevice {
    /// The base request names (`req` of `req/sub`).
    pub request_names: Vec<String>,
    pub pool_name: String,
    pub device_name: String,
    /// Fully qualified CDI ids (`vendor/class=name`).
    pub cdi_device_ids: Vec<String>,
    /// The allocation's share id, when the device allows multiple allocations.
    pub share_id: Option<String>,
}

/// What the gRPC service asks of the driver, one claim at a time. An error is a message for
/// kubelet's event on the pod: it names the claim's problem and what to do, never a file's content.
#[async_trait]
pub trait ClaimDriver: Send + Sync {
    /// Prepare (or prepare again: after a reboot or kubelet restart) every device of our driver
    /// in the claim, finishing before `deadline`.
    async fn prepare(&self, claim: &ClaimRef, deadline: Instant) -> Result<Vec<PreparedDevice>, String>;
    /// Undo what Prepare made for the claim; a claim never prepared (or already unprepared) is Ok.
    async fn unprepare(&self, claim: &ClaimRef, deadline: Instant) -> Result<(), String>;
}

pub mod proto;
pub mod server;
