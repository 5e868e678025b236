//! One VPP API connection shared by the steps of a verb: opened on first use within the verb's
//! remaining time, its message table checked against ours before any request. Never reused
//! after an I/O error (a half-read reply would poison the next call).

use crate::api::{Client, VppError};
use std::time::Duration;
use tokio::sync::MappedMutexGuard;
use userspace_cni_api::{CniError, NodeSettings};
use userspace_cni_support::lazy::LazyConn;

#[derive(Default)]
pub struct Conn {
    client: LazyConn<Client>,
}

impl Conn {
    /// The connected client (connecting and checking CRCs now if needed), bounded by `timeout`.
    pub async fn get(
        &self,
        settings: &NodeSettings,
        timeout: Duration,
    ) -> Result<MappedMutexGuard<'_, Client>, VppError> {
        let mut c = self.client.get(|| connect(settings, timeout)).await?;
        // An open connection serves this step within this step's own remaining time.
        c.set_timeout(timeout);
        Ok(c)
    }

    /// Forget the connection after an error that may have left the stream mid-message.
    pub async fn reset(&self) {
        self.client.reset().await;
    }
}

/// Connect to the node's VPP API socket and refuse a VPP whose messages differ from ours.
pub async fn connect(settings: &NodeSettings, timeout: Duration) -> Result<Client, VppError> {
    let socket = crate::settings::VppSettings::from_node(settings).api_socket;
    let mut c = Client::connect(&socket, timeout).await?;
    c.check_messages().await?;
    Ok(c)
}

/// A VPP error as a CNI error, with what we were doing.
pub fn vpp_err(what: &str) -> impl FnOnce(VppError) -> CniError + '_ {
    move |e| CniError::from(e).context(what)
}
