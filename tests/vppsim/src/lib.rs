//! A VPP simulator for tests: a unix socket server speaking VPP's binary-API socket protocol
//! (framing, `sockclnt_create` with a message table built from the `.api.json` files, context
//! echo, control_ping), with in-memory memif, vhost-user, bridge-domain and address state and
//! VPP's reply codes. It can restart (losing state), stall, go away, and advertise a wrong CRC.
//! Test code only: never linked into the plugin.

pub mod codec;
mod handlers;
mod sim;

pub use sim::{BridgeDomain, IfKind, Interface, Memif, Sim, Vhost};

/// The `.api.json` files the backend was generated from (copied into the repository).
pub fn api_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../backends/vpp/api")
}
