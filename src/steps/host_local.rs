//! Repair of host-local's torn leases: host-local creates a lease file (`O_EXCL`) and writes its
//! owner in a second call, so a host-local killed in between (by PDEATHSIG when we are killed, or
//! by a node crash) leaves an empty lease that its DEL, which matches owners, never releases.
//! Removed only under host-local's own lock, when no host-local can be between those two calls.

use serde_json::Value;
use std::fs::{File, TryLockError};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use userspace_cni_api::CniError;
use userspace_cni_support::json::get_ci;

/// host-local's `dataDir` when the config names none.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// Between two tries of host-local's lock: its critical sections take about a millisecond.
const LOCK_POLL: Duration = Duration::from_millis(5);

/// `ipam.dataDir` (host-local reads it case-insensitively, as Go's encoding/json does).
fn data_dir(config: &Value) -> PathBuf {
    config
        .get("ipam")
        .and_then(|ipam| get_ci(ipam, "dataDir"))
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// Remove the empty lease files of this config's network; returns the files removed. A missing
/// network dir or lock file means host-local never ran here: nothing to do.
pub async fn release_torn_leases(config: &Value, budget: Duration) -> Result<Vec<PathBuf>, CniError> {
    let Some(name) = config.get("name").and_then(Value::as_str) else { return Ok(Vec::new()) };
    // Validated as a network name by netconf; never let it leave the data dir anyway.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Ok(Vec::new());
    }
    let dir = data_dir(config).join(name);
    let lock = match File::open(dir.join("lock")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CniError::io(format!("host-local lock {}: {e}", dir.join("lock").display()))),
    };
    let started = Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if started.elapsed() < budget => tokio::time::sleep(LOCK_POLL).await,
            Err(TryLockError::WouldBlock) => {
                return Err(CniError::try_again(format!(
                    "host-local's lock {} stayed taken for {} ms; retry",
                    dir.join("lock").display(),
                    started.elapsed().as_millis()
                )))
            }
            Err(TryLockError::Error(e)) => {
                return Err(CniError::io(format!("cannot lock {}: {e}", dir.join("lock").display())))
            }
        }
    }
    let removed = remove_empty_leases(&dir);
    let _ = lock.unlock();
    removed
}

fn remove_empty_leases(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CniError::io(format!("cannot list {}: {e}", dir.display())))?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let is_lease = entry.file_name().to_str().is_some_and(|n| n.parse::<IpAddr>().is_ok());
        let empty_file = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_file() && m.len() == 0);
        if is_lease && empty_file {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::warn!(lease = %entry.path().display(), "removed a torn host-local lease (its writer died)");
                    removed.push(entry.path());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CniError::io(format!("cannot remove {}: {e}", entry.path().display()))),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn only_empty_ip_named_files_go_and_only_under_the_lock() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("net-a");
        std::fs::create_dir(&dir).expect("dir");
        for (name, body) in
            [("lock", ""), ("10.0.0.2", ""), ("10.0.0.3", "cid\r\nnet1"), ("fd00::2", ""), ("last_reserved_ip.0", "")]
        {
            std::fs::write(dir.join(name), body).expect("write");
        }
        let conf = json!({"name": "net-a", "ipam": {"type": "host-local", "datadir": root.path()}});
        let held = File::open(dir.join("lock")).expect("lock");
        held.lock().expect("hold host-local's lock");
        let e = release_torn_leases(&conf, Duration::from_millis(30)).await.unwrap_err();
        assert_eq!(e.code, userspace_cni_api::codes::TRY_AGAIN_LATER, "{e}");
        assert!(dir.join("10.0.0.2").exists(), "nothing removed without the lock");
        held.unlock().expect("unlock");
        let mut removed = release_torn_leases(&conf, Duration::from_secs(1)).await.expect("repair");
        removed.sort();
        assert_eq!(removed, vec![dir.join("10.0.0.2"), dir.join("fd00::2")]);
        assert!(dir.join("10.0.0.3").exists() && dir.join("last_reserved_ip.0").exists() && dir.join("lock").exists());
        let none = json!({"name": "net-b", "ipam": {"type": "host-local", "dataDir": root.path()}});
        assert!(release_torn_leases(&none, Duration::from_secs(1)).await.expect("no dir").is_empty());
    }
}
