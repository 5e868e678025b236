//! The configuration data a pod reads to find its interface (upstream's `ConfigurationData`:
//! `{containerId, ifName, name, config, ipResult}`), and the config-file step that writes it as
//! `configData-<cid12>-<ifname>.json` into the shared dir when there are no annotations.
//! Never follows a symlink in the pod-writable dir; removes only its own file.

use crate::cni::version::CniVersion;
use crate::steps::publish;
use serde_json::{json, Map, Value};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use userspace_cni_api::{async_trait, Attachment, CniError, SocketDescriptor, SocketKind, Step, StepContext};
use userspace_cni_support::confine::{self, Dir, Kind, Removal};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot write the configuration data file {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("cannot remove the configuration data file {}: {reason}", path.display())]
    Remove { path: PathBuf, reason: String },
    #[error("the configuration data file {} {problem}", path.display())]
    Check { path: PathBuf, problem: String },
    #[error("the attachment has no socket to describe (the backend planned none)")]
    NoSocket,
    #[error("the record's cniVersion {0:?} is not a supported version")]
    Version(String),
}

impl From<ConfigFileError> for CniError {
    fn from(e: ConfigFileError) -> Self {
        match e {
            ConfigFileError::Version(_) => CniError::new(userspace_cni_api::codes::DECODE_FAILURE, e.to_string()),
            _ => CniError::io(e.to_string()),
        }
    }
}

/// `configData-<cid12>-<ifname>.json`, upstream's name.
pub fn file_name(att: &Attachment) -> String {
    format!("configData-{}-{}.json", att.id.cid12(), att.id.ifname)
}

/// The container side of the config as the pod must use it: the recorded `container` object
/// with the socket's file name and the workload's mode (or role) filled in from the socket.
pub fn container_config(config: &Value, socket: &SocketDescriptor) -> Value {
    let mut c = match config.get("container") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !c.get("engine").is_some_and(Value::is_string) {
        if let Some(e) = config.pointer("/host/engine") {
            c.insert("engine".into(), e.clone());
        }
    }
    let file = socket.pod_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (iftype, section, mode_key) = match socket.kind {
        SocketKind::VhostUser => ("vhostuser", "vhost", "mode"),
        SocketKind::Memif => ("memif", "memif", "role"),
    };
    c.insert("iftype".into(), json!(iftype));
    if !c.get("netType").is_some_and(Value::is_string) {
        c.insert("netType".into(), json!("interface"));
    }
    let sec = c.entry(section).or_insert_with(|| Value::Object(Map::new()));
    if !sec.is_object() {
        *sec = Value::Object(Map::new());
    }
    if let Value::Object(sec) = sec {
        sec.insert(mode_key.into(), json!(socket.workload_mode));
        sec.insert("socketfile".into(), json!(file));
        if let (SocketKind::Memif, Some(m)) = (socket.kind, &socket.memif_mode) {
            sec.insert("mode".into(), json!(m));
        }
    }
    Value::Object(c)
}

/// One interface's configuration data, from the attachment and the step outputs.
pub fn entry(ctx: &StepContext, config: &Value, cni_version: &str) -> Result<Value, CniError> {
    let socket = ctx.outputs.socket.as_ref().ok_or(ConfigFileError::NoSocket)?;
    let version = CniVersion::parse(cni_version).ok_or_else(|| ConfigFileError::Version(cni_version.into()))?;
    let ip_result = publish::cni_result(&ctx.attachment, &ctx.outputs)?.to_json(version);
    Ok(json!({
        "containerId": ctx.attachment.id.container_id,
        "ifName": ctx.attachment.id.ifname,
        "name": ctx.attachment.network,
        "config": container_config(config, socket),
        "ipResult": ip_result,
    }))
}

pub struct ConfigFileStep {
    /// Host path of the file, in the shared dir.
    pub path: PathBuf,
    /// The recorded network config.
    pub config: Value,
    pub cni_version: String,
}

/// The shared dir (held, resolved below its root without following a symlink) and the file's
/// name in it. `Ok(None)` when the dir is gone or was swapped for something else.
fn open_dir(ctx: &StepContext, path: &Path) -> Result<Option<(Dir, OsString)>, ConfigFileError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(ConfigFileError::Write { path: path.into(), reason: "not a file path".into() });
    };
    match confine::socket_dir(&ctx.settings, dir) {
        Ok(d) => Ok(Some((d, name.to_owned()))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(ConfigFileError::Write { path: path.into(), reason: confine::explain(&e) }),
    }
}

fn temp_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(".tmp");
    t
}

/// Remove our regular file `name`; anything else the pod put there is left with a warning.
fn unlink(dir: &Dir, name: &OsStr) -> Result<(), ConfigFileError> {
    let path = dir.path().join(name);
    match dir.remove_if(name, Kind::File) {
        Ok(Removal::Removed | Removal::Absent) => Ok(()),
        Ok(Removal::Left(kind)) => {
            tracing::warn!(path = %path.display(), kind = kind.as_str(), "not our configuration data file; left");
            Ok(())
        }
        Err(e) => Err(ConfigFileError::Remove { path, reason: e.to_string() }),
    }
}

#[async_trait]
impl Step for ConfigFileStep {
    fn name(&self) -> &'static str {
        crate::plan::stages::CONFIG_FILE
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let doc = entry(ctx, &self.config, &self.cni_version)?;
        let werr = |e: std::io::Error| ConfigFileError::Write { path: self.path.clone(), reason: confine::explain(&e) };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| werr(std::io::Error::other(e)))?;
        let Some((dir, name)) = open_dir(ctx, &self.path)? else {
            return Err(werr(std::io::Error::from_raw_os_error(libc::ENOENT)).into());
        };
        // The shared dir is pod-writable: the temp file is created exclusively without following
        // a planted link, given its mode through its descriptor, then renamed over whatever has
        // our file's name, all relative to the held dir.
        let tmp = temp_name(&name);
        // The temp name is ours (docs/socket-discovery.md): a crash's leftover, or a link or FIFO
        // the pod put there, is unlinked (unlinkat never follows); a directory there fails the
        // exclusive create below.
        match dir.entry(&tmp) {
            Ok(Some(e)) if e.kind != Kind::Dir => {
                dir.unlink(&tmp).map_err(|e| CniError::from(werr(e)))?;
            }
            Ok(_) => {}
            Err(e) => return Err(werr(e).into()),
        }
        // A failed exclusive create made nothing: whatever holds the temp name is not ours to
        // remove. Only our own temp file goes when the rename fails.
        dir.write_new(&tmp, &bytes, 0o444).map_err(|e| CniError::from(werr(e)))?;
        dir.rename_from(&dir, &tmp, &name).map_err(|e| {
            let _ = dir.unlink_if(&tmp, |en| en.kind == Kind::File);
            CniError::from(werr(e))
        })
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        // A shared dir the pod swapped for a symlink (or anything not a directory below its
        // root) holds nothing of ours: skip it with a warning, as the shared-dir step does, or
        // DEL could never finish and the pod would stay Terminating.
        let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name()) else { return Ok(()) };
        if let Some(dir) = crate::steps::shared_dir::open_existing(&ctx.settings, parent)? {
            unlink(&dir, &temp_name(name))?;
            unlink(&dir, name)?;
        }
        Ok(())
    }

    async fn check(&self, ctx: &StepContext) -> Result<(), CniError> {
        let problem = |p: String| CniError::from(ConfigFileError::Check { path: self.path.clone(), problem: p });
        let Some((dir, name)) = open_dir(ctx, &self.path).map_err(|e| problem(e.to_string()))? else {
            return Err(problem("is missing: its shared dir is gone".into()));
        };
        let bytes = match dir.read_file(Path::new(&name), 1 << 20) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(problem("is missing".into())),
            Err(confine::ReadError::Io(e)) => return Err(problem(format!("cannot be read: {}", confine::explain(&e)))),
            Err(e) => return Err(problem(format!("cannot be read: {e}"))),
        };
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| problem(format!("is not JSON: {e}")))?;
        let id = &ctx.attachment.id;
        if doc["containerId"] != id.container_id.as_str() || doc["ifName"] != id.ifname.as_str() {
            return Err(problem(format!("does not describe {}/{}", id.container_id, id.ifname)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(kind: SocketKind, mode: &str) -> SocketDescriptor {
        SocketDescriptor {
            kind,
            workload_mode: mode.into(),
            memif_mode: (kind == SocketKind::Memif).then(|| "ethernet".into()),
            host_path: "/host/dir/abc-net1".into(),
            pod_path: "/pod/dir/abc-net1".into(),
            mac: None,
            mtu: None,
        }
    }

    #[test]
    fn container_config_takes_socket_name_and_workload_mode_from_the_socket() {
        let conf = json!({"host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "vhost": {"mode": "client"}},
                          "container": {"engine": "ovs-dpdk", "vhost": {"mode": "server", "group": "qemu"}}});
        let c = container_config(&conf, &sock(SocketKind::VhostUser, "server"));
        assert_eq!(
            c,
            json!({"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface",
                   "vhost": {"mode": "server", "group": "qemu", "socketfile": "abc-net1"}})
        );
        let c = container_config(&json!({"host": {"engine": "vpp"}}), &sock(SocketKind::Memif, "slave"));
        assert_eq!(
            c,
            json!({"engine": "vpp", "iftype": "memif", "netType": "interface",
                   "memif": {"role": "slave", "mode": "ethernet", "socketfile": "abc-net1"}})
        );
    }
}
