//! The generic steps every backend's attachment goes through (the pod's shared directory), the
//! netns check, and publication of the result. Backends never create directories; these steps never touch a dataplane.

pub mod netns;
pub mod publish;
pub mod shared_dir;

pub use shared_dir::SharedDirStep;
