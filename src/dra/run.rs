//! `userspace dra-plugin`: the long-running kubelet plugin. Start-up clean-up of DRA attachments
//! whose claims are gone, the node's ResourceSlice, then kubelet's registration and DRAPlugin
//! services until SIGTERM or SIGINT; a background pass every minute republishes a slice that
//! could not be published and tears down attachments whose claims went away while kubelet did
//! not ask (its Unprepare is the normal path).

use super::prepare::{ClaimSource, PipelineDriver};
use super::server::{serve, PluginSockets};
use super::slice::{publish, BridgeDevice, SliceSpec};
use super::ClaimRef;
use crate::k8s::claims::{self, ClaimLiveness};
use crate::k8s::{ApiAccess, Budget};
use crate::pipeline::{teardown, Registry};
use crate::state::StateDir;
use k8s_openapi::api::resource::v1::ResourceClaim;
use std::sync::Arc;
use std::time::{Duration, Instant};
use userspace_cni_api::{async_trait, NodeSettings, Verb};

/// How often the background pass runs.
pub const PASS_EVERY: Duration = Duration::from_secs(60);
/// Test builds only (feature `failpoints`): this variable, in milliseconds, replaces
/// [`PASS_EVERY`] so a test sees a settings change take effect without waiting a minute.
pub const PASS_EVERY_ENV: &str = "USERSPACE_CNI_TEST_DRA_PASS_MS";
/// The shortest pass period [`PASS_EVERY_ENV`] can ask for, so even a test build cannot be made
/// to spin against the API server.
pub const PASS_FLOOR: Duration = Duration::from_millis(200);
/// Whether this build reads [`PASS_EVERY_ENV`] (release builds do not).
pub const PASS_EVERY_OVERRIDABLE: bool = cfg!(feature = "failpoints");

fn pass_every() -> Duration {
    if PASS_EVERY_OVERRIDABLE {
        pass_every_of(std::env::var(PASS_EVERY_ENV).ok().as_deref())
    } else {
        PASS_EVERY
    }
}

/// The pass period a value of [`PASS_EVERY_ENV`] asks for: anything but a whole number of
/// milliseconds keeps the default, and nothing goes below the floor.
fn pass_every_of(value: Option<&str>) -> Duration {
    match value.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(ms) => Duration::from_millis(ms).max(PASS_FLOOR),
        None => PASS_EVERY,
    }
}

const USAGE: &str = "usage: userspace dra-plugin [--probe]
  Serve kubelet's DRA plugin API for KubeVirt vhost-user NICs (docs/kubevirt-dra.md). Settings:
  node_name (or NODE_NAME), dra_* and cdi_dir in the settings file (config/userspace.toml).
  --probe   the liveness check: ask the running plugin on this node's sockets, as kubelet does
            (GetInfo, an empty NodePrepareResources), each within 5 s; exit 0 when both
            answer, 1 (with the reason on stderr) when not
";

/// Each of the probe's two calls gets this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server's view of claims.
pub struct ApiClaimSource {
    pub access: ApiAccess,
    pub timeout: Duration,
}

#[async_trait]
impl ClaimSource for ApiClaimSource {
    async fn get(&self, claim: &ClaimRef, deadline: Instant) -> Result<ResourceClaim, String> {
        let budget = Budget { deadline, timeout: self.timeout };
        match claims::get_claim(&self.access, &claim.namespace, &claim.name, budget).await {
            Ok(Some(v)) => serde_json::from_value(v).map_err(|e| {
                format!("the API server's ResourceClaim {}/{} does not decode: {e}", claim.namespace, claim.name)
            }),
            Ok(None) => Err(format!("ResourceClaim {}/{} does not exist (404)", claim.namespace, claim.name)),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn access_of(settings: &NodeSettings) -> ApiAccess {
    match &settings.dra.kubeconfig {
        Some(path) => ApiAccess::OperatorKubeconfig { path: path.clone() },
        None => ApiAccess::InCluster,
    }
}

/// Tear down every DRA attachment whose claim is provably gone (never on an API error).
/// Returns how many were removed and the errors met.
pub async fn sweep_gone_claims(
    settings: &NodeSettings,
    registry: &Registry,
    access: &ApiAccess,
    node: &str,
) -> (usize, Vec<String>) {
    let state = StateDir::at(&settings.state_dir);
    let mut removed = 0;
    let mut errors = Vec::new();
    let records = match state.list_records() {
        Ok(r) => r,
        Err(e) => return (0, vec![e.to_string()]),
    };
    for rec in records.into_iter().flatten().filter(|r| r.is_dra()) {
        let Some(dra) = &rec.plan.dra else { continue };
        let budget = Budget { deadline: Instant::now() + settings.timeout() * 2, timeout: settings.timeout() };
        let live = claims::liveness(
            access,
            &dra.claim.namespace,
            &dra.claim.name,
            &dra.claim.uid,
            rec.attachment.pod.uid.as_deref(),
            node,
            budget,
        )
        .await;
        let ClaimLiveness::Gone(why) = live else { continue };
        let id = &rec.attachment.id;
        // Busy: a Prepare or Unprepare of this claim is running; the next pass looks again.
        let Ok(lock) = state.lock_attachment(id, Duration::ZERO).await else { continue };
        let Ok(Some(current)) = state.read_record(id) else {
            lock.release_and_remove();
            continue;
        };
        match teardown(Verb::Del, settings, registry, &state, &current).await {
            Ok(()) => {
                lock.release_and_remove();
                removed += 1;
                tracing::info!(claim = %id.container_id, request = %id.ifname, %why, "removed a DRA attachment");
            }
            Err(e) => errors.push(format!("claim {} request {}: {e}", id.container_id, id.ifname)),
        }
    }
    (removed, errors)
}

async fn publish_slice(settings: &NodeSettings, access: &ApiAccess, node: &str) -> Result<(), String> {
    let budget = Budget::of_settings(settings);
    let client = claims::client(access, budget).await.map_err(|e| e.to_string())?;
    let spec = SliceSpec {
        driver: settings.dra.driver_name.clone(),
        node: node.to_owned(),
        bridges: settings.dra.bridges.iter().map(|b| BridgeDevice { name: b.name.clone(), mtu: b.mtu }).collect(),
        ports_per_bridge: super::slice::DEFAULT_PORTS_PER_BRIDGE,
    };
    publish(&client, &spec, settings.timeout()).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Run the plugin until a stop signal. Returns the process exit code.
pub fn main(registry: Registry, args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        crate::stdout::out!("{USAGE}");
        return 0;
    }
    let probe = args.first().is_some_and(|a| a == "--probe");
    if let Some(a) = args.get(usize::from(probe)) {
        eprintln!("userspace dra-plugin: unexpected argument {a:?}\n{USAGE}");
        return 2;
    }
    let settings = match crate::settings::load(registry.registrations()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("userspace dra-plugin: {e}");
            return 2;
        }
    };
    if probe {
        return probe_main(&settings);
    }
    // A daemon: what it prepares, removes and publishes goes to its container log.
    crate::logging::init(Some(crate::netconf::LogLevel::Info), None, &[]);
    // Failpoints (test builds only) name Prepare's steps with ADD's verb, its undo phase included.
    userspace_cni_api::failpoint::set_verb(Verb::Add);
    let node = match crate::settings::node_name(&settings) {
        Ok(Some(node)) => node,
        Ok(None) => {
            eprintln!("userspace dra-plugin: this node's name is unknown: set node_name in the settings or NODE_NAME");
            return 2;
        }
        Err(e) => {
            eprintln!("userspace dra-plugin: {e}");
            return 2;
        }
    };
    if settings.dra.bridges.is_empty() {
        tracing::warn!("dra_bridges is empty: the node offers no device, so no claim can be allocated here");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("userspace dra-plugin: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(run(settings, Arc::new(registry), node))
}

/// `--probe`: no logging set-up and nothing on stdout; the reason on stderr when not live.
fn probe_main(settings: &NodeSettings) -> i32 {
    let sockets = PluginSockets::new(&settings.kubelet_root, &settings.dra.driver_name);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("userspace dra-plugin --probe: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(super::probe::probe(&sockets, &settings.dra.driver_name, PROBE_TIMEOUT)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("userspace dra-plugin --probe: not live: {e}");
            1
        }
    }
}

async fn run(settings: NodeSettings, registry: Arc<Registry>, node: String) -> i32 {
    let access = access_of(&settings);
    let (removed, errors) = sweep_gone_claims(&settings, &registry, &access, &node).await;
    tracing::info!(removed, errors = errors.len(), "start-up clean-up of DRA attachments");
    for e in &errors {
        tracing::warn!(error = %e, "start-up clean-up");
    }
    let mut published = match publish_slice(&settings, &access, &node).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot publish this node's ResourceSlice; retrying every minute");
            false
        }
    };
    let sockets = PluginSockets::new(&settings.kubelet_root, &settings.dra.driver_name);
    let driver = Arc::new(PipelineDriver {
        settings: settings.clone(),
        registry: registry.clone(),
        claims: Arc::new(ApiClaimSource { access: access.clone(), timeout: settings.timeout() }),
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let background = {
        let (settings, registry, access, node) = (settings.clone(), registry.clone(), access.clone(), node.clone());
        let stop_tx = stop_tx.clone();
        let mut stop_rx = stop_rx.clone();
        let every = pass_every();
        if every != PASS_EVERY {
            tracing::warn!(every_ms = every.as_millis() as u64, "test build: the background pass runs every {every:?}");
        }
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop_rx.changed() => return,
                }
                // A changed settings file (bridges, MTU, roots) takes effect by a restart: the
                // start-up path republishes the slice and every later Prepare plans with it.
                match crate::settings::load(registry.registrations()) {
                    Ok(now) if now.dra != settings.dra || now.node_name != settings.node_name => {
                        tracing::info!("the DRA settings changed: stopping so the restarted plugin applies them");
                        let _ = stop_tx.send(true);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the settings no longer load; running with the ones read at start")
                    }
                }
                if !published {
                    published = publish_slice(&settings, &access, &node).await.is_ok();
                }
                let (removed, errors) = sweep_gone_claims(&settings, &registry, &access, &node).await;
                if removed > 0 || !errors.is_empty() {
                    tracing::info!(removed, errors = %errors.join("; "), "DRA clean-up pass");
                }
            }
        }
    };
    let shutdown = async move {
        tokio::select! {
            _ = stop_signal() => tracing::info!("stop signal: finishing in-flight kubelet calls"),
            _ = stop_rx.changed() => {}
        }
        let _ = stop_tx.send(true);
    };
    let driver_name = settings.dra.driver_name.clone();
    let served = tokio::join!(serve(driver, &driver_name, &sockets, shutdown), background).0;
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("userspace dra-plugin: {e}");
            1
        }
    }
}

/// SIGTERM (kubelet, the DaemonSet's rollout) or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install the stop signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_pass_period_keeps_the_default_on_junk_and_never_goes_below_the_floor() {
        assert_eq!(pass_every_of(None), PASS_EVERY);
        for junk in ["", "abc", "-5", "1.5", "300ms", "99999999999999999999999", "\u{0}"] {
            assert_eq!(pass_every_of(Some(junk)), PASS_EVERY, "{junk:?}");
        }
        assert_eq!(pass_every_of(Some("0")), PASS_FLOOR);
        assert_eq!(pass_every_of(Some("199")), PASS_FLOOR);
        assert_eq!(pass_every_of(Some(" 300 ")), Duration::from_millis(300));
        assert_eq!(pass_every_of(Some("18446744073709551615")), Duration::from_millis(u64::MAX));
    }
}
