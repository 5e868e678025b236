//! STATUS: can this node serve an ADD for this network now? Code 50 with the reason if not.

use super::plan::engine_of;
use super::Invocation;
use crate::netconf::NetConf;
use backend_api::CniError;

pub async fn status(inv: &Invocation<'_>, conf: &NetConf) -> Result<(), CniError> {
    let backend = inv.registry.get(engine_of(conf)?)?;
    backend.status(inv.settings).await
}
