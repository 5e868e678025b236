//! libcni's result cache: `<cache dir>/results/<network>-<container id>-<ifname>`, written by the
//! runtime (and by Multus for its delegates) after each ADD. It holds what the upstream plugin's
//! state file lacks: the full container id, the network config, the netns and the CNI args. Read
//! only (never written or removed: it is the runtime's); every file is bounded and validated.
//!
//! Format (libcni `cachedInfo`): `{"kind": "cniCacheV1", "containerId", "config": <base64 of the
//! config bytes>, "ifName", "networkName", "netns", "cniArgs": [[k, v], ...], "capabilityArgs",
//! "result"}`.

use super::LegacyError;
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use userspace_cni_support::json::get_ci;

/// A network config with its result is far below this; more is not a libcni cache file.
const MAX_CACHE_FILE: u64 = 1024 * 1024;

const KIND: &str = "cniCacheV1";

/// One cache entry, for an attachment of the `userspace` plugin.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub path: PathBuf,
    pub container_id: String,
    pub if_name: String,
    pub network_name: String,
    pub netns: Option<String>,
    /// `cniArgs` pairs, in order (K8S_POD_NAME and friends).
    pub cni_args: Vec<(String, String)>,
    /// The `userspace` plugin's own config (from a conflist: its entry, with the list's `name`
    /// and `cniVersion`, as libcni builds it for the call).
    pub config: Value,
}

impl CacheEntry {
    /// `cniArgs` as the CNI_ARGS text a runtime would have passed.
    pub fn cni_args_text(&self) -> String {
        self.cni_args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }
}

/// Entries in `dirs`' `results/` subdirs for the container whose id starts with `cid12`, with
/// interface `ifname`, of a `userspace` network. Files that are not such entries are skipped;
/// a matching file that is malformed is an error (the operator must look at it).
pub fn find(dirs: &[PathBuf], cid12: &str, ifname: &str) -> Result<Vec<CacheEntry>, LegacyError> {
    let mut out: Vec<CacheEntry> = Vec::new();
    for dir in dirs {
        let results = dir.join("results");
        let Ok(entries) = std::fs::read_dir(&results) else { continue };
        let mut names: Vec<String> =
            entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect();
        names.sort();
        // The name is `<network>-<full id>-<ifname>`: a cheap filter before reading.
        let suffix = format!("-{ifname}");
        for name in names.iter().filter(|n| n.ends_with(&suffix) && n.contains(&format!("-{cid12}"))) {
            let path = results.join(name);
            if let Some(entry) = read_entry(&path, cid12, ifname)? {
                // The same attachment cached twice (runtime and Multus): one is enough.
                if !out.iter().any(|o| o.container_id == entry.container_id && o.network_name == entry.network_name) {
                    out.push(entry);
                }
            }
        }
    }
    Ok(out)
}

fn bad(path: &Path, reason: impl Into<String>) -> LegacyError {
    LegacyError::Cache { path: path.to_path_buf(), reason: reason.into() }
}

/// Go's encoding/json matches struct fields case-insensitively (containerd's reader spells it
/// `containerID`), so lookups here do too.
fn get<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    get_ci(doc, key)
}

fn read_entry(path: &Path, cid12: &str, ifname: &str) -> Result<Option<CacheEntry>, LegacyError> {
    let open = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path);
    let f = match open {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    f.take(MAX_CACHE_FILE + 1).read_to_end(&mut bytes).map_err(|e| bad(path, e.to_string()))?;
    if bytes.len() as u64 > MAX_CACHE_FILE {
        return Err(bad(path, format!("larger than {MAX_CACHE_FILE} bytes")));
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else { return Ok(None) };
    let text = |key: &str| get(&doc, key).and_then(Value::as_str).map(str::to_owned);
    if text("kind").as_deref() != Some(KIND) {
        return Ok(None);
    }
    let (Some(container_id), Some(if_name)) = (text("containerId"), text("ifName")) else { return Ok(None) };
    if !container_id.starts_with(cid12) || if_name != ifname {
        return Ok(None);
    }
    let encoded = text("config").ok_or_else(|| bad(path, "no \"config\""))?;
    let config_bytes = decode_base64(&encoded).ok_or_else(|| bad(path, "\"config\" is not base64"))?;
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(path, format!("\"config\" is not a JSON network config: {e}")))?;
    let Some(config) = userspace_config(&config) else { return Ok(None) };
    let cni_args = match get(&doc, "cniArgs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
                _ => Err(bad(path, format!("\"cniArgs\" entry {p} is not a [key, value] pair"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(path, format!("\"cniArgs\" is {other}, not a list of pairs"))),
    };
    let network_name = text("networkName")
        .or_else(|| config.get("name").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Ok(Some(CacheEntry {
        path: path.to_path_buf(),
        container_id,
        if_name,
        network_name,
        netns: text("netns").filter(|s| !s.is_empty()),
        cni_args,
        config,
    }))
}

/// The `userspace` plugin's config: the document itself, or its entry in a conflist's
/// `plugins` (given the list's `name` and `cniVersion`, as libcni does for each call).
fn userspace_config(doc: &Value) -> Option<Value> {
    let is_ours = |c: &Value| c.get("type").and_then(Value::as_str) == Some("userspace");
    if is_ours(doc) {
        return Some(doc.clone());
    }
    let plugin = doc.get("plugins")?.as_array()?.iter().find(|p| is_ours(p))?;
    let mut conf = plugin.clone();
    let obj = conf.as_object_mut()?;
    for key in ["name", "cniVersion"] {
        if let Some(v) = doc.get(key) {
            obj.insert(key.to_owned(), v.clone());
        }
    }
    Some(conf)
}

/// Standard base64 with padding (Go's encoding of `[]byte` in JSON). `None` on any bad input.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_go_encoding() {
        assert_eq!(decode_base64("eyJhIjoxfQ==").as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(decode_base64(""), Some(Vec::new()));
        assert_eq!(decode_base64("YW*j"), None);
        assert_eq!(decode_base64("YWJ"), None);
    }

    #[test]
    fn the_userspace_entry_of_a_conflist_gets_the_list_name() {
        let list = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "tuning"}, {"type": "userspace", "host": {}}]});
        let c = userspace_config(&list).expect("found");
        assert_eq!(c["name"], "n");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert!(userspace_config(&serde_json::json!({"type": "bridge"})).is_none());
    }
}
