//! The configuration data a pod reads to find its interface (upstream's `ConfigurationData`:
//! `{containerId, ifName, name, config, ipResult}`), and the config-file step that writes it as
//! `configData-<cid12>-<ifname>.json` into the shared dir when there are no annotations.
//! Never follows a symlink in the pod-writable dir; removes only its own file.

use crate::cni::version::CniVersion;
use crate::steps::publish;
use backend_api::{async_trait, Attachment, CniError, SocketDescriptor, SocketKind, Step, StepContext};
use serde_json::{json, Map, Value};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
            ConfigFileError::Version(_) => CniError::new(backend_api::codes::DECODE_FAILURE, e.to_string()),
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

fn temp_of(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Remove a file without following a symlink; "not found" is success.
fn unlink(path: &Path) -> Result<(), ConfigFileError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(ConfigFileError::Remove {
            path: path.into(),
            reason: "it is a directory (planted in the shared dir?); not removing it".into(),
        }),
        Ok(_) => match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(ConfigFileError::Remove { path: path.into(), reason: e.to_string() })
            }
            _ => Ok(()),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ConfigFileError::Remove { path: path.into(), reason: e.to_string() }),
    }
}

#[async_trait]
impl Step for ConfigFileStep {
    fn name(&self) -> &'static str {
        "config-file"
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let doc = entry(ctx, &self.config, &self.cni_version)?;
        let werr = |e: std::io::Error| ConfigFileError::Write { path: self.path.clone(), reason: e.to_string() };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| werr(std::io::Error::other(e)))?;
        // The shared dir is pod-writable: the temp file is created exclusively without following
        // a planted link, then renamed over whatever has our file's name.
        let tmp = temp_of(&self.path);
        unlink(&tmp)?;
        super::files::write_exclusive(&tmp, &bytes, 0o444).and_then(|()| fs::rename(&tmp, &self.path)).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CniError::from(werr(e))
        })
    }

    async fn undo(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
        unlink(&temp_of(&self.path))?;
        unlink(&self.path)?;
        Ok(())
    }

    async fn check(&self, ctx: &StepContext) -> Result<(), CniError> {
        let problem = |p: String| CniError::from(ConfigFileError::Check { path: self.path.clone(), problem: p });
        let mut text = String::new();
        let read = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .and_then(|f| f.take(1 << 20).read_to_string(&mut text));
        if let Err(e) = read {
            return Err(problem(format!("cannot be read: {e}")));
        }
        let doc: Value = serde_json::from_str(&text).map_err(|e| problem(format!("is not JSON: {e}")))?;
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
