//! `userspace dra-plugin --probe`: the DaemonSet's liveness check. It calls the running plugin as
//! kubelet does: `GetInfo` on the registration socket (the answer must name this driver and the
//! DRA plugin type) and an empty `NodePrepareResources` batch on the service socket, each within
//! a timeout. A plugin whose runtime hangs still has its sockets accepting in the kernel; only an
//! answer proves it serves.

use super::proto::dra_v1::dra_plugin_client::DraPluginClient;
use super::proto::dra_v1::NodePrepareResourcesRequest;
use super::proto::pluginregistration::registration_client::RegistrationClient;
use super::proto::pluginregistration::InfoRequest;
use super::proto::DRA_PLUGIN_TYPE;
use super::server::PluginSockets;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Why the plugin is not live, for the probe's one line on stderr (kubelet puts it in an event).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{what} {path}: no answer within {timeout:?}")]
    Timeout { what: &'static str, path: PathBuf, timeout: Duration },
    #[error("{what} {path}: {reason}")]
    Failed { what: &'static str, path: PathBuf, reason: String },
    #[error("GetInfo on {path} answered type {found_type:?}, name {found_name:?}; expected {DRA_PLUGIN_TYPE:?}, {driver:?}: is another driver's plugin on this socket?")]
    Mismatch { path: PathBuf, found_type: String, found_name: String, driver: String },
}

/// Run `call` on a fresh connection to `path`, all of it within `timeout`.
async fn within<T, F, Fut>(what: &'static str, path: &Path, timeout: Duration, call: F) -> Result<T, ProbeError>
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let target = path.to_path_buf();
    let work = async move {
        // The URI is a placeholder: the connector dials the socket.
        let channel = Endpoint::from_static("http://kubelet.invalid")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let target = target.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(target).await?)) }
            }))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        call(channel).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(reason)) => Err(ProbeError::Failed { what, path: path.to_path_buf(), reason }),
        Err(_) => Err(ProbeError::Timeout { what, path: path.to_path_buf(), timeout }),
    }
}

/// Whether the plugin serving `sockets` for `driver` answers both services within `timeout` each.
pub async fn probe(sockets: &PluginSockets, driver: &str, timeout: Duration) -> Result<(), ProbeError> {
    let info = within("GetInfo on", &sockets.registration, timeout, |channel| async move {
        let answer = RegistrationClient::new(channel).get_info(InfoRequest {}).await;
        answer.map(tonic::Response::into_inner).map_err(|s| format!("{}: {}", s.code(), s.message()))
    })
    .await?;
    if info.r#type != DRA_PLUGIN_TYPE || info.name != driver {
        return Err(ProbeError::Mismatch {
            path: sockets.registration.clone(),
            found_type: info.r#type.chars().take(64).collect(),
            found_name: info.name.chars().take(253).collect(),
            driver: driver.to_owned(),
        });
    }
    within("NodePrepareResources on", &sockets.service, timeout, |channel| async move {
        let answer =
            DraPluginClient::new(channel).node_prepare_resources(NodePrepareResourcesRequest { claims: vec![] }).await;
        answer.map(|_| ()).map_err(|s| format!("{}: {}", s.code(), s.message()))
    })
    .await
}
