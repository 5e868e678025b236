//! The reconciler's heartbeat: `<state_dir>/reconciler.heartbeat`, touched after every completed
//! pass, and the liveness check that reads its age. Never touched by a dry run.

use super::ReconcileError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FILE: &str = "reconciler.heartbeat";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Record that a pass completed now (the file's mtime; its text is the time, for humans).
pub fn touch(state_dir: &Path) -> Result<(), ReconcileError> {
    let p = path(state_dir);
    let err = |source| ReconcileError::Heartbeat { path: p.clone(), source };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .map_err(err)?;
    f.write_all(format!("{now}\n").as_bytes()).map_err(err)?;
    Ok(())
}

/// The age of the last pass, or an error when there was none or it is older than `max_age`.
pub fn check(state_dir: &Path, max_age: Duration) -> Result<Duration, ReconcileError> {
    let p = path(state_dir);
    let meta = match std::fs::metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReconcileError::HeartbeatMissing { path: p }),
        Err(source) => return Err(ReconcileError::Heartbeat { path: p, source }),
    };
    let modified = meta.modified().map_err(|source| ReconcileError::Heartbeat { path: p.clone(), source })?;
    // A clock that went backwards makes the file look fresh: that is the safe direction for a
    // liveness probe (a restart would not help).
    let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO);
    if age > max_age {
        return Err(ReconcileError::HeartbeatStale { path: p, age, max_age });
    }
    Ok(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_after_touch_and_missing_before() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(matches!(check(dir.path(), Duration::from_secs(60)), Err(ReconcileError::HeartbeatMissing { .. })));
        touch(dir.path()).expect("touch");
        assert!(check(dir.path(), Duration::from_secs(60)).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(check(dir.path(), Duration::from_millis(1)), Err(ReconcileError::HeartbeatStale { .. })));
    }
}
