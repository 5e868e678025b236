//! kubelet's side of the DRA plugin: the registration socket in `plugins_registry/` and the
//! `v1.DRAPlugin` service socket, turning each batch into one `ClaimDriver` call per claim. Knows
//! the wire and kubelet's rules (one answer per UID, the batch deadline); never prepares anything
//! itself.

mod batch;
mod sockets;

pub use batch::{parse_grpc_timeout, KUBELET_CALL_TIMEOUT};
pub use sockets::SocketError;

use super::proto::dra_v1::dra_plugin_server::{DraPlugin, DraPluginServer};
use super::proto::dra_v1::{
    Claim, Device, NodePrepareResourceResponse, NodePrepareResourcesRequest, NodePrepareResourcesResponse,
    NodeUnprepareResourceResponse, NodeUnprepareResourcesRequest, NodeUnprepareResourcesResponse,
};
use super::proto::pluginregistration::registration_server::{Registration, RegistrationServer};
use super::proto::pluginregistration::{InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse};
use super::proto::{DRA_PLUGIN_TYPE, DRA_V1_SERVICE};
use super::{ClaimDriver, ClaimRef, PreparedDevice};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// After shutdown is asked for, how long in-flight batches may run on (kubelet's own timeout,
/// plus a little) before the servers are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(50);

/// Where kubelet finds the plugin: the registration socket its plugin watcher sees, and the
/// service socket named in `PluginInfo.endpoint`. Both are host paths; in a pod they must be
/// mounted at the same paths, since kubelet dials the endpoint string as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSockets {
    pub registration: PathBuf,
    pub service: PathBuf,
}

impl PluginSockets {
    /// kubelet's layout, as its helper library (k8s.io/dynamic-resource-allocation/kubeletplugin)
    /// names it: `<root>/plugins_registry/<driver>-reg.sock` and `<root>/plugins/<driver>/dra.sock`.
    pub fn new(kubelet_root: &Path, driver: &str) -> Self {
        PluginSockets {
            registration: kubelet_root.join("plugins_registry").join(format!("{driver}-reg.sock")),
            service: kubelet_root.join("plugins").join(driver).join("dra.sock"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "DRA driver name {name:?} cannot name a socket: it must be a DNS subdomain (lower-case letters, digits, '-' \
         and '.')"
    )]
    DriverName { name: String },
    #[error("service socket path {path} is not UTF-8; kubelet receives it as a string")]
    NonUtf8 { path: PathBuf },
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("gRPC server on {path} failed: {source}")]
    Serve { path: PathBuf, source: tonic::transport::Error },
}

/// Serve kubelet until `shutdown` completes, then remove both sockets. Binds the service socket
/// before the registration socket, so the endpoint kubelet is told about already answers.
pub async fn serve(
    driver: Arc<dyn ClaimDriver>,
    driver_name: &str,
    sockets: &PluginSockets,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if !is_dns_subdomain(driver_name) {
        return Err(ServerError::DriverName { name: driver_name.to_owned() });
    }
    let endpoint = sockets.service.to_str().ok_or_else(|| ServerError::NonUtf8 { path: sockets.service.clone() })?;

    let (service_listener, service_bound) = sockets::bind(&sockets.service).await?;
    let (registration_listener, registration_bound) = match sockets::bind(&sockets.registration).await {
        Ok(bound) => bound,
        Err(e) => {
            sockets::remove(&service_bound);
            return Err(e.into());
        }
    };
    tracing::info!(
        driver = driver_name,
        registration = %sockets.registration.display(),
        service = endpoint,
        "serving kubelet"
    );

    // One stop signal for both servers: the caller's shutdown, or either server failing (a plugin
    // kubelet can register but not call, or call but not find, is worse than one that exits).
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let external = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            shutdown.await;
            stop.send_replace(true);
        })
    };
    let signal = |mut rx: watch::Receiver<bool>| async move {
        // An Err means the sender is gone, which only happens once serve is over.
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let batches = Arc::new(Mutex::new(()));
    let dra = tonic::transport::Server::builder()
        .add_service(DraPluginServer::new(DraService { driver, batches: Arc::clone(&batches) }))
        .serve_with_incoming_shutdown(UnixListenerStream::new(service_listener), signal(stopped.clone()));
    let registration = tonic::transport::Server::builder()
        .add_service(RegistrationServer::new(RegistrationService {
            driver_name: driver_name.to_owned(),
            endpoint: endpoint.to_owned(),
        }))
        .serve_with_incoming_shutdown(UnixListenerStream::new(registration_listener), signal(stopped.clone()));
    let both = async {
        tokio::join!(
            async {
                let result = dra.await;
                stop.send_replace(true);
                result
            },
            async {
                let result = registration.await;
                stop.send_replace(true);
                result
            }
        )
    };
    // The servers' graceful stop also waits for kubelet to close its idle connections, which it
    // need not do: once no batch is in flight (or the grace is over) the servers are dropped.
    let grace = async {
        signal(stopped.clone()).await;
        match tokio::time::timeout(SHUTDOWN_GRACE, batches.lock()).await {
            Ok(_idle) => tracing::info!("no kubelet call in flight; stopping"),
            Err(_) => tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "in-flight kubelet calls outlived the shutdown grace; dropping them"
            ),
        }
    };
    let (dra_result, registration_result) = tokio::select! {
        results = both => results,
        () = grace => (Ok(()), Ok(())),
    };
    external.abort();

    // Registration first: kubelet deregisters the plugin when that socket goes.
    sockets::remove(&registration_bound);
    sockets::remove(&service_bound);
    tracing::info!(driver = driver_name, "stopped serving kubelet");
    dra_result.map_err(|source| ServerError::Serve { path: sockets.service.clone(), source })?;
    registration_result.map_err(|source| ServerError::Serve { path: sockets.registration.clone(), source })?;
    Ok(())
}

/// A DRA driver name is a DNS subdomain (resource.k8s.io validation); that also keeps it a single
/// path component.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

struct RegistrationService {
    driver_name: String,
    endpoint: String,
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn get_info(&self, _request: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(PluginInfo {
            r#type: DRA_PLUGIN_TYPE.to_owned(),
            name: self.driver_name.clone(),
            endpoint: self.endpoint.clone(),
            supported_versions: vec![DRA_V1_SERVICE.to_owned()],
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        if status.plugin_registered {
            tracing::info!(driver = %self.driver_name, "kubelet registered the plugin");
        } else {
            tracing::error!(driver = %self.driver_name, error = %status.error, "kubelet refused the plugin's registration");
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

struct DraService {
    driver: Arc<dyn ClaimDriver>,
    /// One batch at a time, as kubelet's helper library does by default: two calls naming the
    /// same claim (kubelet retrying while the first still runs) must not interleave.
    batches: Arc<Mutex<()>>,
}

impl DraService {
    /// The batch deadline and the serialisation lock, taken within that deadline.
    async fn begin<T>(
        &self,
        request: &Request<T>,
        verb: &str,
    ) -> Result<(Instant, tokio::sync::MutexGuard<'_, ()>), String> {
        let start = Instant::now();
        let timeout = request.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        let deadline = batch::batch_deadline(start, timeout);
        match tokio::time::timeout_at(deadline.into(), self.batches.lock()).await {
            Ok(guard) => Ok((deadline, guard)),
            Err(_) => Err(format!(
                "{verb} not started: an earlier batch still ran at kubelet's deadline ({} ms); kubelet retries",
                deadline.saturating_duration_since(start).as_millis()
            )),
        }
    }
}

fn claim_ref(claim: Claim) -> ClaimRef {
    ClaimRef { namespace: claim.namespace, name: claim.name, uid: claim.uid }
}

/// kubelet hands these to the runtime: refuse here what it would refuse there, so the error
/// names the claim instead of failing the pod later.
fn check_devices(devices: Vec<PreparedDevice>) -> Result<Vec<Device>, String> {
    devices
        .into_iter()
        .map(|d| {
            if d.pool_name.is_empty() || d.device_name.is_empty() {
                return Err(format!(
                    "the driver prepared a device without a pool or device name (pool {:?}, device {:?})",
                    d.pool_name, d.device_name
                ));
            }
            if let Some(bad) = d.cdi_device_ids.iter().find(|id| !is_qualified_cdi_id(id)) {
                return Err(format!("the driver returned CDI id {bad:?}, not a fully qualified vendor/class=name"));
            }
            Ok(Device {
                request_names: d.request_names,
                pool_name: d.pool_name,
                device_name: d.device_name,
                cdi_device_ids: d.cdi_device_ids,
                share_id: d.share_id,
            })
        })
        .collect()
}

/// `vendor/class=name`, each part non-empty (the CDI library's parser splits the same way).
fn is_qualified_cdi_id(id: &str) -> bool {
    let Some((kind, name)) = id.split_once('=') else { return false };
    let Some((vendor, class)) = kind.split_once('/') else { return false };
    !vendor.is_empty() && !class.is_empty() && !name.is_empty() && !class.contains('/')
}

#[tonic::async_trait]
impl DraPlugin for DraService {
    async fn node_prepare_resources(
        &self,
        request: Request<NodePrepareResourcesRequest>,
    ) -> Result<Response<NodePrepareResourcesResponse>, Status> {
        let verb = "prepare";
        // An empty batch (the liveness probe's) has nothing to serialise: answered at once, so a
        // long batch in flight never fails the probe.
        if request.get_ref().claims.is_empty() {
            return Ok(Response::new(NodePrepareResourcesResponse { claims: Default::default() }));
        }
        let (deadline, guard) = match self.begin(&request, verb).await {
            Ok(begun) => begun,
            Err(error) => {
                let claims = request.into_inner().claims;
                let answer = |_| NodePrepareResourceResponse { devices: vec![], error: error.clone() };
                return Ok(Response::new(NodePrepareResourcesResponse {
                    claims: claims.into_iter().map(|c| (c.uid.clone(), answer(c))).collect(),
                }));
            }
        };
        let claims = request.into_inner().claims.into_iter().map(claim_ref).collect();
        let driver = Arc::clone(&self.driver);
        let answers = batch::run(verb, claims, deadline, move |claim, own| {
            let driver = Arc::clone(&driver);
            async move { driver.prepare(&claim, own).await.and_then(check_devices) }
        })
        .await;
        drop(guard);
        let claims = answers
            .into_iter()
            .map(|(uid, answer)| {
                let response = match answer {
                    Ok(devices) => NodePrepareResourceResponse { devices, error: String::new() },
                    Err(error) => NodePrepareResourceResponse { devices: vec![], error },
                };
                (uid, response)
            })
            .collect();
        Ok(Response::new(NodePrepareResourcesResponse { claims }))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<NodeUnprepareResourcesRequest>,
    ) -> Result<Response<NodeUnprepareResourcesResponse>, Status> {
        let verb = "unprepare";
        let (deadline, guard) = match self.begin(&request, verb).await {
            Ok(begun) => begun,
            Err(error) => {
                let claims = request.into_inner().claims;
                return Ok(Response::new(NodeUnprepareResourcesResponse {
                    claims: claims
                        .into_iter()
                        .map(|c| (c.uid, NodeUnprepareResourceResponse { error: error.clone() }))
                        .collect(),
                }));
            }
        };
        let claims = request.into_inner().claims.into_iter().map(claim_ref).collect();
        let driver = Arc::clone(&self.driver);
        let answers = batch::run(verb, claims, deadline, move |claim, own| {
            let driver = Arc::clone(&driver);
            async move { driver.unprepare(&claim, own).await }
        })
        .await;
        drop(guard);
        let claims = answers
            .into_iter()
            .map(|(uid, answer)| (uid, NodeUnprepareResourceResponse { error: answer.err().unwrap_or_default() }))
            .collect();
        Ok(Response::new(NodeUnprepareResourcesResponse { claims }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_follow_kubelets_layout() {
        let s = PluginSockets::new(Path::new("/var/lib/kubelet"), "ovsdpdk.k8snetworkplumbingwg.io");
        assert_eq!(
            s.registration,
            Path::new("/var/lib/kubelet/plugins_registry/ovsdpdk.k8snetworkplumbingwg.io-reg.sock")
        );
        assert_eq!(s.service, Path::new("/var/lib/kubelet/plugins/ovsdpdk.k8snetworkplumbingwg.io/dra.sock"));
    }

    #[test]
    fn driver_names_that_would_escape_the_dirs_are_refused() {
        assert!(is_dns_subdomain("ovsdpdk.k8snetworkplumbingwg.io"));
        for bad in ["", "..", "a/b", "A.io", "-a.io", "a..io", ".a", "a b"] {
            assert!(!is_dns_subdomain(bad), "{bad:?} must be refused");
        }
    }

    #[test]
    fn cdi_ids_must_be_fully_qualified() {
        assert!(is_qualified_cdi_id("k8snetworkplumbingwg.io/ovsdpdk=claim-1"));
        for bad in ["claim-1", "vendor=claim", "/class=x", "v/=x", "v/c=", "v/c/d=x"] {
            assert!(!is_qualified_cdi_id(bad), "{bad:?} must be refused");
        }
    }
}
