//! The upstream plugin's state, read after an in-place upgrade (DESIGN.md §3.3,
//! docs/upgrading.md): its per-attachment state file `<shared_dir>/data/local-<cid12>-<ifname>.json`
//! (this module) and libcni's result cache that completes it (`cache.rs`). Reads and removes only
//! those files; never touches a dataplane, and treats every byte read as untrusted input.
//!
//! The state file holds, for OVS-DPDK, `{"vhostname": <port>, "vhostmac": .., "ifmac": ..}` (the
//! port and interface name, which is also the socket's file name), and for VPP
//! `{"swIfIndex": N, "memifSocketId": M}`. The upstream plugin wrote it after its ADD and removed it
//! in its DEL; nothing else about the attachment (full container id, network, config) is in it.

pub mod cache;

use serde_json::Value;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use userspace_cni_api::{codes, AttachmentId, CniError, NodeSettings};
use userspace_cni_support::confine::{self, Dir, Kind, ReadError};
use userspace_cni_support::json::get_ci;

/// The upstream files are a few dozen bytes; anything larger is not one of them.
const MAX_STATE_FILE: u64 = 64 * 1024;

/// The upstream plugin truncated container ids to this many characters in file and port names.
const CID12: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("cannot read the upstream plugin's state file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("upstream state file {path} is larger than {MAX_STATE_FILE} bytes; it is not the upstream plugin's: inspect and remove it by hand")]
    TooLarge { path: PathBuf },
    #[error("upstream state file {path} is not valid JSON ({reason}); inspect and remove it by hand")]
    BadJson { path: PathBuf, reason: String },
    #[error("upstream state file {path} has neither an OVS (\"vhostname\") nor a VPP (\"swIfIndex\") shape: {found}; inspect and remove it by hand")]
    UnknownShape { path: PathBuf, found: String },
    #[error("cannot remove the upstream state file {path}: {source}")]
    Remove { path: PathBuf, source: std::io::Error },
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: std::io::Error },
    #[error("libcni cache file {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
}

impl From<LegacyError> for CniError {
    fn from(e: LegacyError) -> Self {
        let code = match &e {
            LegacyError::Read { .. } | LegacyError::Remove { .. } | LegacyError::List { .. } => codes::IO_FAILURE,
            LegacyError::TooLarge { .. }
            | LegacyError::BadJson { .. }
            | LegacyError::UnknownShape { .. }
            | LegacyError::Cache { .. } => codes::DECODE_FAILURE,
        };
        CniError::new(code, e.to_string())
    }
}

/// What the upstream plugin created, by engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyObject {
    /// An OVS port and interface of this name (the socket's file name too).
    Ovs { vhostname: String },
    /// A VPP memif interface and the memif socket id it uses.
    Vpp { sw_if_index: u32, memif_socket_id: u32 },
}

impl LegacyObject {
    /// The engine (`host.engine`) that created it.
    pub fn engine(&self) -> &'static str {
        match self {
            LegacyObject::Ovs { .. } => "ovs-dpdk",
            LegacyObject::Vpp { .. } => "vpp",
        }
    }
}

/// One upstream state file.
#[derive(Debug, Clone)]
pub struct LegacyFile {
    pub path: PathBuf,
    /// The first 12 characters of the container id (all the file name keeps).
    pub cid12: String,
    pub ifname: String,
    pub object: LegacyObject,
    /// The file's JSON as read, handed to the backend's `adopt`.
    pub raw: Value,
}

/// `<shared_dir>/data`: where the upstream plugin kept its state files.
pub fn data_dir(settings: &NodeSettings) -> PathBuf {
    settings.shared_dir.join("data")
}

/// The state file the upstream plugin would have written for `id`.
pub fn file_path(settings: &NodeSettings, id: &AttachmentId) -> PathBuf {
    data_dir(settings).join(format!("local-{}-{}.json", id.cid12(), id.ifname))
}

/// The upstream state file of `id`, if there is one. A container id shorter than 12 characters
/// never has one: upstream sliced `[:12]`, which panics on a shorter id, before writing anything.
pub fn for_attachment(settings: &NodeSettings, id: &AttachmentId) -> Result<Option<LegacyFile>, LegacyError> {
    if id.container_id.chars().count() < CID12 {
        return Ok(None);
    }
    read(&file_path(settings, id))
}

/// The ifnames of the other state files of `id`'s container (same cid12: the same pod sandbox),
/// i.e. interfaces of the same pod the upstream plugin added and nobody has removed yet. Only file
/// names are read; an unreadable `data` dir counts as none.
pub fn sibling_ifnames(settings: &NodeSettings, id: &AttachmentId) -> Vec<String> {
    let Ok(Some(names)) = open_data_dir(&data_dir(settings)).map(|d| d.map(|d| names_in(&d))) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|n| parse_file_name(n))
        .filter(|(cid12, ifname)| cid12 == id.cid12() && *ifname != id.ifname)
        .map(|(_, ifname)| ifname)
        .collect()
}

/// The `data` dir at `dir` (`<shared_dir>/data`): the operator's `shared_dir` opened as a root,
/// `data` below it without following a symlink. `Ok(None)` when it does not exist.
fn open_data_dir(dir: &Path) -> std::io::Result<Option<Dir>> {
    let (Some(base), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    match Dir::root(base).and_then(|b| b.open_dir(Path::new(name))) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in a held directory (read through its descriptor, never by path).
fn names_in(dir: &Dir) -> Vec<String> {
    std::fs::read_dir(dir.proc_path())
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// An I/O error with the reason a resolver gives (a planted symlink says so).
fn explained(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), confine::explain(e))
}

/// `(cid12, ifname)` from a file name `local-<cid12>-<ifname>.json`. The container id part is
/// exactly 12 characters (upstream sliced `[:12]`), so an ifname containing '-' is unambiguous.
pub fn parse_file_name(name: &str) -> Option<(String, String)> {
    let stem = name.strip_prefix("local-")?.strip_suffix(".json")?;
    let cut = stem.char_indices().nth(CID12).map(|(i, _)| i)?;
    let (cid12, rest) = stem.split_at(cut);
    let ifname = rest.strip_prefix('-')?;
    if ifname.is_empty() {
        return None;
    }
    Some((cid12.to_owned(), ifname.to_owned()))
}

/// Read and classify one state file; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<LegacyFile>, LegacyError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (cid12, ifname) = parse_file_name(name).ok_or_else(|| LegacyError::UnknownShape {
        path: path.to_path_buf(),
        found: "a file name that is not local-<cid12>-<ifname>.json".into(),
    })?;
    let read_err = |source| LegacyError::Read { path: path.to_path_buf(), source };
    let Some(dir) = path.parent().map(open_data_dir).transpose().map_err(|e| read_err(explained(&e)))?.flatten() else {
        return Ok(None);
    };
    // No symlink, FIFO or device in place of the file: a pod must not make us read (and later
    // remove) another file, nor block on a FIFO forever.
    let bytes = match dir.read_file(Path::new(OsStr::new(name)), MAX_STATE_FILE) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(ReadError::TooLarge(_)) => return Err(LegacyError::TooLarge { path: path.to_path_buf() }),
        Err(ReadError::Io(e)) => return Err(read_err(explained(&e))),
        Err(e @ ReadError::NotRegular(_)) => return Err(read_err(std::io::Error::other(e.to_string()))),
    };
    let raw: Value = serde_json::from_slice(&bytes)
        .map_err(|e| LegacyError::BadJson { path: path.to_path_buf(), reason: e.to_string() })?;
    // The error names the file and what is missing, never its contents (docs/security.md).
    let object = classify(&raw).ok_or_else(|| LegacyError::UnknownShape {
        path: path.to_path_buf(),
        found: "a document with neither a vhostname nor a swIfIndex".into(),
    })?;
    Ok(Some(LegacyFile { path: path.to_path_buf(), cid12, ifname, object, raw }))
}

/// The two shapes the upstream plugin wrote (Go's encoding/json matched keys case-insensitively
/// when reading them back, so we do too).
fn classify(doc: &Value) -> Option<LegacyObject> {
    doc.as_object()?;
    let get = |key: &str| get_ci(doc, key);
    if let Some(name) = get("vhostname").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        return Some(LegacyObject::Ovs { vhostname: name.to_owned() });
    }
    let index = get("swIfIndex").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())?;
    let socket = get("memifSocketId").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Some(LegacyObject::Vpp { sw_if_index: index, memif_socket_id: socket })
}

/// Every upstream state file on the node, each parsed or with the reason it cannot be.
pub fn list(settings: &NodeSettings) -> Result<Vec<Result<LegacyFile, LegacyError>>, LegacyError> {
    let dir = data_dir(settings);
    let held = match open_data_dir(&dir) {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => return Err(LegacyError::List { path: dir, source: explained(&e) }),
    };
    let mut paths: Vec<PathBuf> = names_in(&held)
        .into_iter()
        .filter(|n| n.starts_with("local-") && n.ends_with(".json"))
        .map(|n| dir.join(n))
        .collect();
    paths.sort();
    Ok(paths.iter().filter_map(|p| read(p).transpose()).collect())
}

/// Remove a state file once what it names is ours (or gone); "not found" is success. Only a
/// regular file is removed, through the held `data` dir; anything else under its name (a pod's
/// symlink, a FIFO) is left with a warning. The `data` dir itself stays: it is the upstream
/// plugin's.
pub fn remove(path: &Path) -> Result<(), LegacyError> {
    let remove_err = |source| LegacyError::Remove { path: path.to_path_buf(), source };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return Ok(()) };
    let Some(dir) = open_data_dir(parent).map_err(|e| remove_err(explained(&e)))? else { return Ok(()) };
    match dir.entry(name) {
        Ok(None) => Ok(()),
        Ok(Some(e)) if e.kind == Kind::File => match dir.unlink(name) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(remove_err(e)),
        },
        Ok(Some(e)) => {
            tracing::warn!(path = %path.display(), kind = e.kind.as_str(), "not an upstream state file; left in place");
            Ok(())
        }
        Err(e) => Err(remove_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_container_id_has_no_state_file_and_no_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let settings = NodeSettings { shared_dir: dir.path().to_path_buf(), ..NodeSettings::default() };
        let id = AttachmentId { container_id: "short1".into(), ifname: "net1".into() };
        assert!(matches!(for_attachment(&settings, &id), Ok(None)));
        let id = AttachmentId { container_id: "0123456789abcdef".into(), ifname: "net1".into() };
        assert!(matches!(for_attachment(&settings, &id), Ok(None)), "absent file: none");
    }

    #[test]
    fn file_names_split_at_twelve_characters() {
        assert_eq!(parse_file_name("local-0123456789ab-net1.json"), Some(("0123456789ab".into(), "net1".into())));
        assert_eq!(parse_file_name("local-0123-5678-9a-net-a.json"), Some(("0123-5678-9a".into(), "net-a".into())));
        assert_eq!(parse_file_name("local-0123456789ab.json"), None);
        assert_eq!(parse_file_name("remote-0123456789ab-net1.json"), None);
    }

    #[test]
    fn both_upstream_shapes_are_recognised_and_others_refused() {
        let ovs = serde_json::json!({"vhostname": "0123456789ab-net1", "vhostmac": "", "ifmac": ""});
        assert_eq!(classify(&ovs), Some(LegacyObject::Ovs { vhostname: "0123456789ab-net1".into() }));
        let vpp = serde_json::json!({"swIfIndex": 3, "memifSocketId": 1});
        assert_eq!(classify(&vpp), Some(LegacyObject::Vpp { sw_if_index: 3, memif_socket_id: 1 }));
        assert_eq!(classify(&serde_json::json!({"other": 1})), None);
        assert_eq!(classify(&serde_json::json!([1])), None);
        assert_eq!(classify(&serde_json::json!({"swIfIndex": -1})), None);
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("local-0123456789ab-net1.json");
        std::fs::write(&p, b"{not json").expect("write");
        assert!(matches!(read(&p), Err(LegacyError::BadJson { .. })));
        std::fs::write(&p, vec![b' '; (MAX_STATE_FILE + 10) as usize]).expect("write");
        assert!(matches!(read(&p), Err(LegacyError::TooLarge { .. })));
        std::fs::remove_file(&p).expect("rm");
        assert!(matches!(read(&p), Ok(None)));
    }
}
