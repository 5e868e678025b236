//! One VPP API connection shared by the steps of a verb: opened on first use within the verb's
//! remaining time, its message table checked against ours before any request. Never reused
//! after an I/O error (a half-read reply would poison the next call).

use crate::api::{Client, VppError};
use backend_api::{CniError, NodeSettings};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct Conn {
    client: Mutex<Option<Client>>,
}

impl Conn {
    /// The connected client (connecting and checking CRCs now if needed), bounded by `timeout`.
    pub async fn get(&self, settings: &NodeSettings, timeout: Duration) -> Result<ClientGuard<'_>, CniError> {
        let mut g = self.client.lock().await;
        match g.as_mut() {
            Some(c) => c.set_timeout(timeout),
            None => *g = Some(connect(settings, timeout).await?),
        }
        Ok(ClientGuard(g))
    }

    /// Forget the connection after an error that may have left the stream mid-message.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }
}

pub struct ClientGuard<'a>(MutexGuard<'a, Option<Client>>);

impl ClientGuard<'_> {
    pub fn client(&mut self) -> Result<&mut Client, CniError> {
        self.0.as_mut().ok_or_else(|| CniError::try_again("VPP connection lost"))
    }
}

/// Connect to the node's VPP API socket and refuse a VPP whose messages differ from ours.
pub async fn connect(settings: &NodeSettings, timeout: Duration) -> Result<Client, CniError> {
    let mut c = Client::connect(&settings.vpp_api_socket, timeout).await?;
    c.check_messages().await?;
    Ok(c)
}

/// A VPP error as a CNI error, with what we were doing.
pub fn vpp_err(what: &str) -> impl FnOnce(VppError) -> CniError + '_ {
    move |e| CniError::from(e).context(what)
}
