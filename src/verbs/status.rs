//! STATUS: can this node serve an ADD for this network now (dataplane and IPAM delegate)? Code 50
//! with the reason if not.

use super::plan::engine_of;
use super::Invocation;
use crate::netconf::NetConf;
use crate::steps::ipam::Budget;
use crate::steps::IpamStep;
use backend_api::CniError;

pub async fn status(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let backend = inv.registry.get(engine_of(conf)?)?;
    backend.status(inv.settings).await?;
    if let Some(ipam) = IpamStep::new(&conf.raw, conf.ipam.as_ref(), &inv.env.path, None)? {
        ipam.status(Budget::of_settings(inv.settings)).await?;
    }
    Ok(())
}
