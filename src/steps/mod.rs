//! The generic steps every backend's attachment goes through (the pod's shared directory, IPAM delegation), the
//! netns check, and publication (result, device-info, config file, pod annotations). Backends never create
//! directories; these steps never touch a dataplane.

pub mod annotations;
pub mod config_file;
pub mod delegate;
pub mod device_info;
pub mod host_local;
pub mod ipam;
pub mod netns;
pub mod publish;
pub mod published_files;
pub mod shared_dir;
pub mod short_dir;

pub use ipam::IpamStep;
pub use shared_dir::SharedDirStep;
