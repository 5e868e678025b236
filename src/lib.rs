//! userspace-cni: a CNI plugin giving pods and VMs userspace (DPDK) interfaces. The binary is
//! thin; everything here is library code that tests call directly.

pub mod cli;
pub mod cni;
#[cfg(feature = "kubernetes")]
pub mod dra;
pub mod entry;
pub mod heap;
pub mod k8s;
pub mod legacy;
pub mod logging;
pub mod netconf;
pub mod node_paths;
pub mod pipeline;
pub mod plan;
pub mod rbac;
pub mod reconcile;
pub mod settings;
pub mod state;
pub mod stdout;
pub mod steps;
pub mod verbs;
