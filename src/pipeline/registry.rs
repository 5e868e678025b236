//! The backends this binary can select: inventory's registrations plus any a test binary adds.
//! One registry for every front-end (CNI verbs, reconciler, operator CLI).

use crate::netconf::NetConf;
use userspace_cni_api::{Backend, BackendRegistration, CniError};

/// The backends this binary can select (inventory's plus any a test binary adds).
pub struct Registry {
    regs: Vec<&'static BackendRegistration>,
}

impl Registry {
    /// Every backend linked into the binary. Naming each backend crate here makes the linker keep
    /// it: a dependency nothing refers to can be dropped with its `inventory` registration.
    pub fn linked() -> Registry {
        std::hint::black_box([userspace_cni_ovs_dpdk::ENGINE, userspace_cni_vpp::ENGINE]);
        #[cfg(feature = "template-backend")]
        std::hint::black_box(userspace_cni_backend_template::ENGINE);
        Registry { regs: userspace_cni_api::registered() }
    }

    /// Add registrations that are not in `inventory` (the test kit's recording backend).
    pub fn with_extra(mut self, extra: &[&'static BackendRegistration]) -> Registry {
        self.regs.extend_from_slice(extra);
        self.regs.sort_by_key(|r| r.engine);
        self
    }

    pub fn engines(&self) -> Vec<&'static str> {
        self.regs.iter().map(|r| r.engine).collect()
    }

    pub fn registrations(&self) -> &[&'static BackendRegistration] {
        &self.regs
    }

    pub fn get(&self, engine: &str) -> Result<Box<dyn Backend>, CniError> {
        self.regs.iter().find(|r| r.engine == engine).map(|r| (r.make)()).ok_or_else(|| {
            CniError::invalid_config(format!(
                "host.engine {engine:?} is not a known engine; this binary supports: {}",
                self.engines().join(", ")
            ))
        })
    }
}

/// The engine named by the config (validated as present by netconf).
pub fn engine_of(conf: &NetConf) -> Result<&str, CniError> {
    conf.host
        .engine
        .as_deref()
        .ok_or_else(|| CniError::invalid_config("host.engine is required (one of: ovs-dpdk, vpp)"))
}
