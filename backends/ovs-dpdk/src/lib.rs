//! The `ovs-dpdk` backend. Its dataplane engine is not built yet: it registers itself so the
//! engine name is known, and answers ADD with code 106 and STATUS with code 50.

use backend_api::{
    async_trait, codes, Backend, BackendPlan, BackendRegistration, CniError, NodeSettings, OwnedObject, PlanRequest,
    Step, StepContext,
};

pub const ENGINE: &str = "ovs-dpdk";

pub struct OvsDpdkBackend;

fn not_built() -> CniError {
    CniError::new(
        codes::ENGINE_NOT_BUILT,
        format!("engine {ENGINE:?} is registered but its dataplane engine is not built yet in this release"),
    )
}

#[async_trait]
impl Backend for OvsDpdkBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn plan(&self, _req: &PlanRequest<'_>) -> Result<BackendPlan, CniError> {
        Err(not_built())
    }

    fn steps(&self, _plan: &BackendPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        Err(not_built())
    }

    async fn check(&self, _ctx: &StepContext, _plan: &BackendPlan) -> Result<(), CniError> {
        Err(not_built())
    }

    async fn list_owned(&self, _settings: &NodeSettings, _network: &str) -> Result<Vec<OwnedObject>, CniError> {
        Ok(Vec::new())
    }

    async fn remove_owned(&self, _settings: &NodeSettings, _obj: &OwnedObject) -> Result<(), CniError> {
        Ok(())
    }

    async fn status(&self, _settings: &NodeSettings) -> Result<(), CniError> {
        Err(CniError::new(codes::NOT_AVAILABLE, format!("engine {ENGINE:?}: dataplane engine not built yet")))
    }
}

fn make() -> Box<dyn Backend> {
    Box::new(OvsDpdkBackend)
}

backend_api::inventory::submit! {
    BackendRegistration { engine: ENGINE, description: "OVS-DPDK: vhost-user ports on an OVS bridge (OVSDB over the unix socket)", make }
}
