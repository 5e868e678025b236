//! One VPP API connection shared by the steps of a verb: opened on first use within the verb's
//! remaining time, its message table checked against ours before any request. Never reused
//! after an I/O error (a half-read reply would poison the next call).

use crate::api::{Client, VppError};
use std::time::Duration;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use userspace_cni_api::{CniError, NodeSettings};

#[derive(Default)]
pub struct Conn {
    client: Mutex<Option<Client>>,
}

impl Conn {
    /// The connected client (connecting and checking CRCs now if needed), bounded by `timeout`.
    pub async fn get(
        &self,
        settings: &NodeSettings,
        timeout: Duration,
    ) -> Result<MappedMutexGuard<'_, Client>, VppError> {
        let mut g = self.client.lock().await;
        match g.as_mut() {
            Some(c) => c.set_timeout(timeout),
            None => *g = Some(connect(settings, timeout).await?),
        }
        MutexGuard::try_map(g, |o| o.as_mut())
            .map_err(|_| VppError::Closed { path: settings.vpp_api_socket.clone(), what: "connect".into() })
    }

    /// Forget the connection after an error that may have left the stream mid-message.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }
}

/// Connect to the node's VPP API socket and refuse a VPP whose messages differ from ours.
pub async fn connect(settings: &NodeSettings, timeout: Duration) -> Result<Client, VppError> {
    let mut c = Client::connect(&settings.vpp_api_socket, timeout).await?;
    c.check_messages().await?;
    Ok(c)
}

/// A VPP error as a CNI error, with what we were doing.
pub fn vpp_err(what: &str) -> impl FnOnce(VppError) -> CniError + '_ {
    move |e| CniError::from(e).context(what)
}
