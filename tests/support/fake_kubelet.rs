//! A fake kubelet written from the protos: the plugin watcher's registration sequence, the DRA
//! manager's Prepare/Unprepare batches with kubelet's checks on the answers, and the runtime's
//! half (CDI ids resolved from spec files, mounts applied in a private mount namespace). Every
//! wait is bounded; nothing it does is visible outside the temp dirs it is given.
#![allow(dead_code)]

use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use userspace_cni::dra::proto::dra_v1::dra_plugin_client::DraPluginClient;
use userspace_cni::dra::proto::dra_v1::{Claim, Device, NodePrepareResourcesRequest, NodeUnprepareResourcesRequest};
use userspace_cni::dra::proto::pluginregistration::registration_client::RegistrationClient;
use userspace_cni::dra::proto::pluginregistration::{InfoRequest, PluginInfo, RegistrationStatus};
use userspace_cni::dra::ClaimRef;

/// kubelet's `defaultClientCallTimeout` for the DRA calls.
pub const KUBELET_DRA_TIMEOUT: Duration = Duration::from_secs(45);
/// The plugin watcher's timeout for GetInfo and NotifyRegistrationStatus.
const REGISTRATION_CALL_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Dial a unix socket as kubelet's gRPC client does (plain HTTP/2, no TLS), within `timeout`.
pub async fn dial(path: &Path, timeout: Duration) -> Result<Channel, String> {
    let target = path.to_path_buf();
    // The URI is a placeholder: the connector ignores it and dials the socket.
    let endpoint = Endpoint::from_static("http://kubelet.invalid").connect_timeout(timeout);
    let connect = endpoint.connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
        let target = target.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(target).await?)) }
    }));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(format!("dial {}: {e}", path.display())),
        Err(_) => Err(format!("dial {}: no connection within {timeout:?}", path.display())),
    }
}

/// The first unix socket in `dir` (sorted by name), skipping dot files as kubelet's plugin
/// watcher does.
fn find_socket(dir: &Path) -> Option<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.path())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// What the registration told kubelet, and a client on the endpoint it named.
pub struct FakeKubelet {
    pub registration_socket: PathBuf,
    pub driver: String,
    pub endpoint: PathBuf,
    pub supported_versions: Vec<String>,
    /// The deadline each DRA call carries (`grpc-timeout`); kubelet's is 45 s.
    pub call_timeout: Duration,
    client: DraPluginClient<Channel>,
}

impl FakeKubelet {
    /// Wait (polling, at most `timeout`) for a registration socket in `registry_dir`, then run the
    /// plugin watcher's sequence: GetInfo; type DRAPlugin and `v1.DRAPlugin` supported, else the
    /// plugin is told it was refused; dial the endpoint; NotifyRegistrationStatus{registered}.
    pub async fn register(registry_dir: &Path, timeout: Duration) -> Result<FakeKubelet, String> {
        let until = Instant::now() + timeout;
        // Like the plugin watcher, retry a socket that does not answer yet (a stale one from a
        // previous instance is replaced by the new one in place).
        let (socket, mut registration, info) = loop {
            let mut last = format!("no registration socket in {}", registry_dir.display());
            if let Some(socket) = find_socket(registry_dir) {
                match Self::get_info(&socket).await {
                    Ok((client, info)) => break (socket, client, info),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= until {
                return Err(format!("no plugin registered within {timeout:?}: {last}"));
            }
            tokio::time::sleep(POLL).await;
        };

        let refusal = if info.r#type != "DRAPlugin" {
            Some(format!("plugin type {:?} is not DRAPlugin", info.r#type))
        } else if !info.supported_versions.iter().any(|v| v == "v1.DRAPlugin") {
            Some(format!("none of the supported versions {:?} is v1.DRAPlugin", info.supported_versions))
        } else if info.name.is_empty() || !Path::new(&info.endpoint).is_absolute() {
            Some(format!("driver name {:?} or endpoint {:?} is unusable", info.name, info.endpoint))
        } else {
            None
        };
        let dialed = match refusal {
            Some(reason) => Err(reason),
            None => dial(Path::new(&info.endpoint), REGISTRATION_CALL_TIMEOUT).await,
        };
        let status = match &dialed {
            Ok(_) => RegistrationStatus { plugin_registered: true, error: String::new() },
            Err(reason) => RegistrationStatus { plugin_registered: false, error: reason.clone() },
        };
        let mut request = tonic::Request::new(status);
        request.set_timeout(REGISTRATION_CALL_TIMEOUT);
        registration.notify_registration_status(request).await.map_err(|s| format!("NotifyRegistrationStatus: {s}"))?;
        let channel = dialed?;
        Ok(FakeKubelet {
            registration_socket: socket,
            driver: info.name,
            endpoint: PathBuf::from(info.endpoint),
            supported_versions: info.supported_versions,
            call_timeout: KUBELET_DRA_TIMEOUT,
            client: DraPluginClient::new(channel),
        })
    }

    async fn get_info(socket: &Path) -> Result<(RegistrationClient<Channel>, PluginInfo), String> {
        let mut client = RegistrationClient::new(dial(socket, REGISTRATION_CALL_TIMEOUT).await?);
        let mut request = tonic::Request::new(InfoRequest {});
        request.set_timeout(REGISTRATION_CALL_TIMEOUT);
        let info = client.get_info(request).await.map_err(|s| format!("GetInfo: {s}"))?.into_inner();
        Ok((client, info))
    }

    fn claims(claims: &[ClaimRef]) -> Vec<Claim> {
        claims
            .iter()
            .map(|c| Claim { namespace: c.namespace.clone(), uid: c.uid.clone(), name: c.name.clone() })
            .collect()
    }

    /// The UIDs kubelet expects an answer for: every claim it sent, nothing else.
    fn check_keys<'a>(sent: &[ClaimRef], answered: impl Iterator<Item = &'a String>) {
        let want: BTreeSet<&str> = sent.iter().map(|c| c.uid.as_str()).collect();
        let got: BTreeSet<&str> = answered.map(String::as_str).collect();
        assert_eq!(got, want, "the answer must have exactly one entry per requested claim UID");
    }

    /// NodePrepareResources as kubelet calls it, with kubelet's checks asserted on the answer.
    pub async fn prepare(&mut self, claims: &[ClaimRef]) -> BTreeMap<String, Result<Vec<Device>, String>> {
        self.try_prepare(claims).await.unwrap_or_else(|status| {
            panic!("NodePrepareResources failed as a whole (kubelet retries every claim): {status}")
        })
    }

    /// [`FakeKubelet::prepare`] where the call as a whole may fail (the plugin died under it):
    /// `Err` is the gRPC status, as kubelet logs it before retrying every claim of the batch.
    pub async fn try_prepare(
        &mut self,
        claims: &[ClaimRef],
    ) -> Result<BTreeMap<String, Result<Vec<Device>, String>>, String> {
        let mut request = tonic::Request::new(NodePrepareResourcesRequest { claims: Self::claims(claims) });
        request.set_timeout(self.call_timeout);
        let call = self.client.node_prepare_resources(request);
        let response = tokio::time::timeout(self.call_timeout + Duration::from_secs(1), call)
            .await
            .unwrap_or_else(|_| panic!("NodePrepareResources outlived its {:?} deadline", self.call_timeout))
            .map_err(|status| status.to_string())?
            .into_inner();
        Self::check_keys(claims, response.claims.keys());
        Ok(response
            .claims
            .into_iter()
            .map(|(uid, answer)| {
                if !answer.error.is_empty() {
                    return (uid, Err(answer.error));
                }
                for device in &answer.devices {
                    assert!(!device.pool_name.is_empty() && !device.device_name.is_empty(), "claim {uid}: {device:?}");
                    assert!(
                        !device.request_names.is_empty(),
                        "claim {uid}: a device without request names: {device:?}"
                    );
                    for id in &device.cdi_device_ids {
                        assert!(is_qualified_cdi_id(id), "claim {uid}: CDI id {id:?} is not vendor/class=name");
                    }
                }
                (uid, Ok(answer.devices))
            })
            .collect())
    }

    /// NodeUnprepareResources as kubelet calls it.
    pub async fn unprepare(&mut self, claims: &[ClaimRef]) -> BTreeMap<String, Result<(), String>> {
        self.try_unprepare(claims)
            .await
            .unwrap_or_else(|status| panic!("NodeUnprepareResources failed as a whole: {status}"))
    }

    /// [`FakeKubelet::unprepare`] where the call as a whole may fail: `Err` is the gRPC status.
    pub async fn try_unprepare(&mut self, claims: &[ClaimRef]) -> Result<BTreeMap<String, Result<(), String>>, String> {
        let mut request = tonic::Request::new(NodeUnprepareResourcesRequest { claims: Self::claims(claims) });
        request.set_timeout(self.call_timeout);
        let call = self.client.node_unprepare_resources(request);
        let response = tokio::time::timeout(self.call_timeout + Duration::from_secs(1), call)
            .await
            .unwrap_or_else(|_| panic!("NodeUnprepareResources outlived its {:?} deadline", self.call_timeout))
            .map_err(|status| status.to_string())?
            .into_inner();
        Self::check_keys(claims, response.claims.keys());
        Ok(response
            .claims
            .into_iter()
            .map(|(uid, answer)| (uid, if answer.error.is_empty() { Ok(()) } else { Err(answer.error) }))
            .collect())
    }
}

/// `vendor/class=name`, as the CDI library's qualified-name parser splits it.
pub fn is_qualified_cdi_id(id: &str) -> bool {
    let Some((kind, name)) = id.split_once('=') else { return false };
    let Some((vendor, class)) = kind.split_once('/') else { return false };
    !vendor.is_empty() && !class.is_empty() && !name.is_empty() && !class.contains('/')
}

/// One CDI `containerEdits.mounts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub options: Vec<String>,
}

fn spec_mounts(edits: Option<&Value>, file: &Path) -> Result<Vec<Mount>, String> {
    let Some(edits) = edits else { return Ok(vec![]) };
    // A fake runtime that silently skipped these would let a test pass that a real one fails.
    for unsupported in ["deviceNodes", "hooks"] {
        if edits.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(format!(
                "{}: containerEdits.{unsupported} is not supported by the fake runtime",
                file.display()
            ));
        }
    }
    let Some(mounts) = edits.get("mounts") else { return Ok(vec![]) };
    let mounts = mounts.as_array().ok_or_else(|| format!("{}: containerEdits.mounts is not a list", file.display()))?;
    mounts
        .iter()
        .map(|m| {
            let text = |key: &str| {
                m.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| format!("{}: a mount without {key}", file.display()))
            };
            let options = match m.get("options") {
                None | Some(Value::Null) => vec![],
                Some(v) => v
                    .as_array()
                    .and_then(|a| a.iter().map(|o| o.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| format!("{}: mount options are not a list of strings", file.display()))?,
            };
            Ok(Mount { host_path: text("hostPath")?.into(), container_path: text("containerPath")?.into(), options })
        })
        .collect()
}

/// Resolve fully qualified CDI ids from the `*.json` specs in `spec_dir` the way the CDI library
/// does: `kind` is `vendor/class`, a device is `kind=devices[].name`; a used device brings its
/// own `containerEdits` and, once per spec, the spec's; a name defined twice is a conflict; the
/// mounts come out parents first (sorted by container path depth, as the library sorts them).
pub fn resolve_cdi(spec_dir: &Path, ids: &[String]) -> Result<Vec<Mount>, String> {
    // qualified name → (spec file index, device's mounts)
    let mut devices: BTreeMap<String, (usize, Vec<Mount>)> = BTreeMap::new();
    let mut spec_edits: Vec<Vec<Mount>> = vec![];
    let mut files: Vec<PathBuf> = std::fs::read_dir(spec_dir)
        .map_err(|e| format!("read CDI dir {}: {e}", spec_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        let spec: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
        if spec.get("cdiVersion").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(format!("{}: no cdiVersion", file.display()));
        }
        let kind = spec.get("kind").and_then(Value::as_str).unwrap_or_default();
        match kind.split_once('/') {
            Some((vendor, class)) if !vendor.is_empty() && !class.is_empty() && !class.contains('/') => {}
            _ => return Err(format!("{}: kind {kind:?} is not vendor/class", file.display())),
        }
        let index = spec_edits.len();
        spec_edits.push(spec_mounts(spec.get("containerEdits"), file)?);
        let list =
            spec.get("devices").and_then(Value::as_array).ok_or_else(|| format!("{}: no devices", file.display()))?;
        for device in list {
            let name = device
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("{}: a device without a name", file.display()))?;
            let qualified = format!("{kind}={name}");
            let mounts = spec_mounts(device.get("containerEdits"), file)?;
            if devices.insert(qualified.clone(), (index, mounts)).is_some() {
                return Err(format!("CDI device {qualified} is defined more than once in {}", spec_dir.display()));
            }
        }
    }
    let mut out = vec![];
    let mut specs_used = BTreeSet::new();
    for id in ids {
        let (index, mounts) = devices.get(id).ok_or_else(|| format!("unresolvable CDI device {id}"))?;
        if specs_used.insert(*index) {
            out.extend(spec_edits[*index].iter().cloned());
        }
        out.extend(mounts.iter().cloned());
    }
    out.sort_by_key(|m| m.container_path.components().count());
    Ok(out)
}

/// Single-quote `s` for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A target the fake runtime may create: absolute, no `..`, and under the private tmpfs on /run
/// (/var/run is a link to it), since a mkdir anywhere else would land on the host's disk.
fn check_target(path: &Path) -> Result<(), String> {
    let ok = path.is_absolute()
        && path.components().all(|c| !matches!(c, Component::ParentDir))
        && (path.starts_with("/run") || path.starts_with("/var/run"));
    ok.then_some(())
        .ok_or_else(|| format!("container path {} must be absolute and under /run or /var/run", path.display()))
}

/// A command that runs `program args` the way runc would after CDI: in a private mount
/// namespace (`unshare --mount --propagation private`) with a fresh tmpfs on /run (so nothing
/// appears on the host's /run), each mount target created (a file for a file source), bound
/// (recursively for `rbind`) and remounted read-only (`ro`, plus nosuid/nodev/noexec) as its
/// options say. The sources are opened before /run is covered, so a host source under /run is
/// still reachable (bound from /proc/self/fd).
pub fn container_command(mounts: &[Mount], program: &str, args: &[&str]) -> Result<Command, String> {
    let mut script = String::from("set -eu\n");
    let mut opens = vec![];
    let mut binds = vec![];
    for (i, m) in mounts.iter().enumerate() {
        check_target(&m.container_path)?;
        let source = m.host_path.to_str().ok_or_else(|| format!("{} is not UTF-8", m.host_path.display()))?;
        let target =
            quote(m.container_path.to_str().ok_or_else(|| format!("{} is not UTF-8", m.container_path.display()))?);
        let is_dir = std::fs::metadata(&m.host_path).map_err(|e| format!("CDI mount source {source}: {e}"))?.is_dir();
        let fd = 10 + i;
        opens.push(format!("exec {fd}<{}", quote(source)));
        if is_dir {
            binds.push(format!("mkdir -p {target}"));
        } else {
            binds.push(format!("mkdir -p \"$(dirname {target})\"; [ -e {target} ] || : > {target}"));
        }
        let recursive = if m.options.iter().any(|o| o == "rbind") { "--rbind" } else { "--bind" };
        binds.push(format!("mount --no-canonicalize {recursive} /proc/self/fd/{fd} {target}"));
        let mut remount: Vec<&str> = m
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| matches!(*o, "ro" | "nosuid" | "nodev" | "noexec"))
            .collect();
        if !remount.is_empty() {
            remount.insert(0, "remount,bind");
            binds.push(format!("mount -o {} {target}", remount.join(",")));
        }
        binds.push(format!("exec {fd}<&-"));
    }
    for line in opens {
        script.push_str(&line);
        script.push('\n');
    }
    script.push_str("mount -t tmpfs -o mode=0755 fake-runtime-run /run\n");
    script.push_str("[ -L /var/run ] || mount -t tmpfs -o mode=0755 fake-runtime-var-run /var/run\n");
    for line in binds {
        script.push_str(&line);
        script.push('\n');
    }
    script.push_str("exec \"$@\"\n");
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "bash", "-c", &script, "fake-runtime", program])
        .args(args);
    Ok(command)
}
