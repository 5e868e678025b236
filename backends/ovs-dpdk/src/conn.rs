//! One OVSDB connection shared by the steps of a verb, opened on first use with the node's
//! endpoint and bounded by the verb's remaining time.

use crate::ovsdb::{OvsdbClient, OvsdbError};
use std::time::Duration;
use tokio::sync::MappedMutexGuard;
use userspace_cni_api::{codes, CniError, NodeSettings};
use userspace_cni_support::lazy::LazyConn;

#[derive(Default)]
pub struct Conn {
    client: LazyConn<OvsdbClient>,
    /// The bridge as the port's removal left it, read in the removal's own transaction, for the
    /// bridge step's undo that runs next in the same verb (one round trip fewer per DEL). Lives
    /// only as long as this verb's steps; never written to a record.
    bridge_after_port_removal: std::sync::Mutex<Option<SeenBridge>>,
}

/// A `Bridge` row as one transaction saw it.
#[derive(Debug, Clone)]
pub struct SeenBridge {
    pub name: String,
    /// `None`: no bridge of that name.
    pub row: Option<(serde_json::Value, std::collections::BTreeMap<String, String>, usize)>,
}

impl Conn {
    /// The connected client (connecting now if needed).
    pub async fn get(&self, settings: &NodeSettings, timeout: Duration) -> Result<ClientGuard<'_>, CniError> {
        self.client.get(|| connect(settings, timeout)).await.map(ClientGuard)
    }

    /// Remember how the port's removal left the bridge (see the field).
    pub fn saw_bridge(&self, seen: SeenBridge) {
        if let Ok(mut s) = self.bridge_after_port_removal.lock() {
            *s = Some(seen);
        }
    }

    /// What the port's removal saw of bridge `name`, once.
    pub fn take_seen_bridge(&self, name: &str) -> Option<SeenBridge> {
        let mut s = self.bridge_after_port_removal.lock().ok()?;
        s.take_if(|b| b.name == name)
    }

    /// Drop the connection after an error, so the next use reconnects instead of reading a
    /// half-finished reply.
    pub async fn reset(&self) {
        self.client.reset().await;
    }
}

pub struct ClientGuard<'a>(MappedMutexGuard<'a, OvsdbClient>);

impl ClientGuard<'_> {
    /// The client; the guard holds the connection, so it cannot be lost between `get` and use.
    pub fn client(&mut self) -> &mut OvsdbClient {
        &mut self.0
    }
}

pub async fn connect(settings: &NodeSettings, timeout: Duration) -> Result<OvsdbClient, CniError> {
    let ovs = crate::settings::OvsSettings::from_node(settings);
    let path = ovs.ovsdb_socket().ok_or_else(|| {
        CniError::new(
            codes::INVALID_NETCONF,
            format!("setting ovsdb={:?}: only unix:<path> endpoints are supported", ovs.ovsdb),
        )
    })?;
    let mut c = OvsdbClient::connect(&path, timeout).await.map_err(CniError::from)?;
    c.set_timeout(timeout);
    Ok(c)
}

/// An OVSDB error as a CNI error, with what we were doing.
pub fn ovs_err(what: &str) -> impl FnOnce(OvsdbError) -> CniError + '_ {
    move |e| CniError::from(e).context(what)
}
