//! userspace-cni: a CNI plugin giving pods and VMs userspace (DPDK) interfaces. The binary is
//! thin; everything here is library code that tests call directly.

pub mod cni;
pub mod netconf;
pub mod settings;
