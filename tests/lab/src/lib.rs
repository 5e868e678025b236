//! Test fixture for userspace-cni: a private OVS-DPDK lab (`Lab`) and a testpmd packet check
//! (`Testpmd`), both cleaned up on drop. Installs nothing: CI installs the packages beforehand.

pub mod error;
pub mod lab;
pub mod process;
pub mod testpmd;

pub use error::LabError;
pub use lab::{Lab, LabOptions, DPDK_RUN_DIR, PMD_MAXSLEEP_US, VSWITCHD_DPDK, VSWITCH_SCHEMA};
pub use process::{pid_alive, PREFIX};
pub use testpmd::{Counters, Role, Testpmd, VhostPort, MAX_BURST};
