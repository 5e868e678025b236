//! The test kit: a recording fake dataplane backend (engine `recording`) whose "bridges" and
//! "ports" live in `<state_dir>/testkit/dataplane.json` and whose every call is appended to
//! `<state_dir>/testkit/calls.log`, so separate ADD and DEL processes share it; and the
//! conformance kit (`conformance`) any backend is run through. Test builds only.

pub mod conformance;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use userspace_cni_api::attachment::{AttachmentId, SharedDir, SocketDescriptor, SocketKind};
use userspace_cni_api::backend::{Backend, BackendPlan, BackendRegistration, OwnedObject, PlanRequest};
use userspace_cni_api::failpoint::{self, Phase};
use userspace_cni_api::settings::NodeSettings;
use userspace_cni_api::spec::{IfType, VhostMode};
use userspace_cni_api::step::{Step, StepContext};
use userspace_cni_api::{codes, CniError};

pub const ENGINE: &str = "recording";
/// Tag value of objects the plugin created (administrator objects carry none).
pub const OWNER: &str = "userspace-cni";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeBridge {
    /// `Some(network)` when the plugin created it.
    pub owner_network: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakePort {
    pub bridge: String,
    pub container_id: String,
    pub ifname: String,
    pub network: String,
}

/// The whole fake dataplane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeDataplane {
    pub bridges: BTreeMap<String, FakeBridge>,
    pub ports: BTreeMap<String, FakePort>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("testkit")
}

/// Create the fake's dir; the state dir itself gets the plugin's 0700 if this creates it.
fn ensure_dir(state_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir(state_dir))
}

/// Read the fake dataplane (tests call this to assert on it).
pub fn load(state_dir: &Path) -> FakeDataplane {
    fs::read(dir(state_dir).join("dataplane.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Replace the fake dataplane (tests use this to plant an administrator's bridge).
pub fn store(state_dir: &Path, dp: &FakeDataplane) -> std::io::Result<()> {
    ensure_dir(state_dir)?;
    let tmp = dir(state_dir).join("dataplane.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(dp).map_err(std::io::Error::other)?)?;
    fs::rename(tmp, dir(state_dir).join("dataplane.json"))
}

/// The call log, one line per call: `<VERB> <apply|undo> <step> <cid>/<ifname>`.
pub fn calls(state_dir: &Path) -> Vec<String> {
    fs::read_to_string(dir(state_dir).join("calls.log"))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Mark the fake dataplane as down (STATUS 50, every step code 11) or up again.
pub fn set_down(state_dir: &Path, down: bool) -> std::io::Result<()> {
    ensure_dir(state_dir)?;
    let p = dir(state_dir).join("down");
    if down {
        fs::write(p, b"")
    } else {
        match fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn is_down(state_dir: &Path) -> bool {
    dir(state_dir).join("down").exists()
}

/// Run `f` on the dataplane under an exclusive lock, persisting its changes.
fn with_dataplane<T>(
    state_dir: &Path,
    f: impl FnOnce(&mut FakeDataplane) -> Result<T, CniError>,
) -> Result<T, CniError> {
    let d = dir(state_dir);
    if is_down(state_dir) {
        return Err(CniError::try_again("recording dataplane is down"));
    }
    ensure_dir(state_dir).map_err(|e| CniError::io(e.to_string()))?;
    let lock = File::create(d.join("dataplane.lock")).map_err(|e| CniError::io(e.to_string()))?;
    lock.lock().map_err(|e| CniError::io(e.to_string()))?;
    let mut dp = load(state_dir);
    let before = dp.clone();
    let out = f(&mut dp)?;
    if dp != before {
        store(state_dir, &dp).map_err(|e| CniError::io(e.to_string()))?;
    }
    Ok(out)
}

fn log_call(ctx: &StepContext, op: &str, step: &str) {
    let d = dir(&ctx.settings.state_dir);
    let _ = ensure_dir(&ctx.settings.state_dir);
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(d.join("calls.log")) {
        let id = &ctx.attachment.id;
        let _ = writeln!(f, "{} {op} {step} {}/{}", ctx.verb.as_str(), id.container_id, id.ifname);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    bridge: String,
    port: String,
    host_mode: VhostMode,
    /// Server mode: the "socket" the fake delivers into the shared dir.
    #[serde(default)]
    delivered_socket: Option<PathBuf>,
}

pub struct RecordingBackend;

#[async_trait]
impl Backend for RecordingBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<BackendPlan, CniError> {
        if req.host.iftype != Some(IfType::VhostUser) {
            return Err(CniError::new(
                codes::UNSUPPORTED_FIELD,
                "host.iftype: the recording backend supports only \"vhostuser\"",
            ));
        }
        let vhost = req.host.vhost.clone().unwrap_or_default();
        let host_mode = vhost.mode.unwrap_or(VhostMode::Server);
        let port = vhost
            .socketfile
            .clone()
            .unwrap_or_else(|| format!("{}-{}", req.attachment.id.cid12(), req.attachment.id.ifname));
        let bridge = req.host.bridge.as_ref().and_then(|b| b.bridge_name.clone()).unwrap_or_else(|| "br0".into());
        let SharedDir { host, pod, .. } = req.shared_dir;
        let socket = SocketDescriptor {
            kind: SocketKind::VhostUser,
            workload_mode: host_mode.inverse().as_str().into(),
            memif_mode: None,
            host_path: host.join(&port),
            pod_path: pod.join(&port),
            mac: req.attachment.mac.clone(),
            mtu: None,
        };
        let plan = Plan {
            bridge,
            port,
            host_mode,
            delivered_socket: (host_mode == VhostMode::Server).then(|| socket.host_path.clone()),
        };
        Ok(BackendPlan {
            data: serde_json::to_value(plan).map_err(|e| CniError::io(e.to_string()))?,
            socket: Some(socket),
            uses_shared_dir: true,
        })
    }

    fn steps(&self, plan: &BackendPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        let plan: Plan = serde_json::from_value(plan.data.clone())
            .map_err(|e| CniError::new(codes::DECODE_FAILURE, format!("recording plan: {e}")))?;
        Ok(vec![Box::new(BridgeStep { plan: plan.clone() }), Box::new(PortStep { plan })])
    }

    async fn check(&self, ctx: &StepContext, plan: &BackendPlan) -> Result<(), CniError> {
        let plan: Plan = serde_json::from_value(plan.data.clone())
            .map_err(|e| CniError::new(codes::DECODE_FAILURE, format!("recording plan: {e}")))?;
        let dp = load(&ctx.settings.state_dir);
        match dp.ports.get(&plan.port) {
            Some(p) if p.container_id == ctx.attachment.id.container_id && p.bridge == plan.bridge => Ok(()),
            Some(p) => Err(CniError::io(format!("port {} belongs to {} on {}", plan.port, p.container_id, p.bridge))),
            None => Err(CniError::io(format!("port {} is missing from bridge {}", plan.port, plan.bridge))),
        }
    }

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
        Ok(load(&settings.state_dir)
            .ports
            .into_iter()
            .filter(|(_, p)| p.network == network)
            .map(|(name, p)| OwnedObject {
                id: AttachmentId::new(p.container_id, p.ifname),
                network: p.network,
                kind: "port".into(),
                name,
            })
            .collect())
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
        with_dataplane(&settings.state_dir, |dp| {
            if dp.ports.get(&obj.name).is_some_and(|p| p.container_id == obj.id.container_id) {
                dp.ports.remove(&obj.name);
            }
            Ok(())
        })
    }

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError> {
        if is_down(&settings.state_dir) {
            return Err(CniError::new(codes::NOT_AVAILABLE, "recording dataplane is down"));
        }
        Ok(())
    }
}

struct BridgeStep {
    plan: Plan,
}

#[async_trait]
impl Step for BridgeStep {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        log_call(ctx, "apply", "bridge");
        let network = ctx.attachment.network.clone();
        if is_down(&ctx.settings.state_dir) {
            return Err(ctx.fail_unchanged(CniError::try_again("recording dataplane is down")));
        }
        with_dataplane(&ctx.settings.state_dir, |dp| {
            dp.bridges.entry(self.plan.bridge.clone()).or_insert(FakeBridge { owner_network: Some(network) });
            Ok(())
        })?;
        failpoint::hit("bridge", Phase::During)
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        log_call(ctx, "undo", "bridge");
        with_dataplane(&ctx.settings.state_dir, |dp| {
            let ours = dp.bridges.get(&self.plan.bridge).is_some_and(|b| b.owner_network.is_some());
            let in_use = dp.ports.values().any(|p| p.bridge == self.plan.bridge);
            if ours && !in_use {
                dp.bridges.remove(&self.plan.bridge);
            }
            Ok(())
        })
    }
}

struct PortStep {
    plan: Plan,
}

#[async_trait]
impl Step for PortStep {
    fn name(&self) -> &'static str {
        "port"
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        log_call(ctx, "apply", "port");
        let id = ctx.attachment.id.clone();
        let network = ctx.attachment.network.clone();
        if is_down(&ctx.settings.state_dir) {
            return Err(ctx.fail_unchanged(CniError::try_again("recording dataplane is down")));
        }
        with_dataplane(&ctx.settings.state_dir, |dp| {
            if !dp.bridges.contains_key(&self.plan.bridge) {
                return Err(CniError::io(format!("bridge {} vanished before the port was attached", self.plan.bridge)));
            }
            if let Some(p) = dp.ports.get(&self.plan.port) {
                if p.container_id != id.container_id || p.ifname != id.ifname {
                    return Err(CniError::new(
                        codes::NAME_COLLISION,
                        format!("port {} already belongs to container {}", self.plan.port, p.container_id),
                    ));
                }
            }
            dp.ports.insert(
                self.plan.port.clone(),
                FakePort {
                    bridge: self.plan.bridge.clone(),
                    container_id: id.container_id.clone(),
                    ifname: id.ifname.clone(),
                    network,
                },
            );
            Ok(())
        })?;
        failpoint::hit("port", Phase::During)?;
        if let Some(sock) = &self.plan.delivered_socket {
            // A real (unserved) socket file, as a dataplane in server mode leaves in the dir,
            // bound through the held dir like the real delivery (renameat between held dirs): a
            // pod that swapped its dir for a symlink must not get a socket made elsewhere.
            let deliver_err = |e: std::io::Error| {
                CniError::io(format!("deliver {}: {}", sock.display(), userspace_cni_support::confine::explain(&e)))
            };
            let (Some(parent), Some(name)) = (sock.parent(), sock.file_name()) else {
                return Err(CniError::io(format!("deliver {}: not a file path", sock.display())));
            };
            let dir = userspace_cni_support::confine::socket_dir(&ctx.settings, parent).map_err(deliver_err)?;
            std::os::unix::net::UnixListener::bind(dir.proc_path().join(name)).map_err(deliver_err)?;
        }
        ctx.outputs
            .host_interfaces
            .push(userspace_cni_api::attachment::HostInterface { name: self.plan.port.clone(), mac: None });
        Ok(())
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        log_call(ctx, "undo", "port");
        let id = ctx.attachment.id.clone();
        with_dataplane(&ctx.settings.state_dir, |dp| {
            // Never by name alone: another container's port may carry the same name.
            if dp.ports.get(&self.plan.port).is_some_and(|p| p.container_id == id.container_id && p.ifname == id.ifname)
            {
                dp.ports.remove(&self.plan.port);
            }
            Ok(())
        })
    }
}

fn make() -> Box<dyn Backend> {
    Box::new(RecordingBackend)
}

/// Not submitted to `inventory`: only the test binary passes it to the plugin explicitly, so the
/// shipped binary can never select it.
pub static REGISTRATION: BackendRegistration =
    BackendRegistration { engine: ENGINE, description: "recording fake dataplane (tests only)", make, settings: &[] };
