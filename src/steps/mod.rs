//! The generic steps every backend's attachment goes through (the pod's shared directory, IPAM delegation), the
//! netns check, and publication of the result. Backends never create directories; these steps never touch a dataplane.

pub mod delegate;
pub mod ipam;
pub mod netns;
pub mod publish;
pub mod shared_dir;
pub mod short_dir;

pub use ipam::IpamStep;
pub use shared_dir::SharedDirStep;
