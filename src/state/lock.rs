//! flock-based locks with a bounded wait. A lock file that is deleted while held is detected by
//! comparing inodes after locking, so per-attachment lock files can be removed without races.

use super::StateError;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
    removable: bool,
}

impl LockGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the lock file while still holding the lock (waiters see the inode change and retry).
    pub fn release_and_remove(self) {
        if self.removable {
            let _ = std::fs::remove_file(&self.path);
        }
        drop(self);
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

pub(super) async fn acquire(path: &Path, timeout: Duration, removable: bool) -> Result<LockGuard, StateError> {
    let start = Instant::now();
    // Short first sleeps: the node lock is held for ~1 ms per ADD, so polling finely keeps
    // concurrent ADDs fast; back off to bound the cost of a long wait.
    let mut pause = Duration::from_micros(200);
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| StateError::Lock { path: path.to_path_buf(), source })?;
        match file.try_lock() {
            Ok(()) => {
                // The holder before us may have removed the file after we opened it: then our
                // lock is on an orphaned inode and means nothing. Retry on the current file.
                let ours = file.metadata().map(|m| m.ino()).ok();
                let current = std::fs::metadata(path).map(|m| m.ino()).ok();
                if ours.is_some() && ours == current {
                    return Ok(LockGuard { file, path: path.to_path_buf(), removable });
                }
                continue;
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => return Err(StateError::Lock { path: path.to_path_buf(), source }),
        }
        if start.elapsed() >= timeout {
            return Err(StateError::LockTimeout {
                path: path.to_path_buf(),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Whether nobody holds the lock at `path`, without creating the file (a missing one is free).
pub fn is_free(path: &Path) -> bool {
    let f: File = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        // Unreadable: someone may be using it; claim nothing.
        Err(_) => return false,
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            true
        }
        Err(TryLockError::WouldBlock) | Err(TryLockError::Error(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_lock_file_is_free_and_a_held_one_is_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("x.lock");
        assert!(is_free(&p));
        assert!(!p.exists(), "probing creates nothing");
        let held = File::create(&p).expect("create");
        held.lock().expect("lock");
        assert!(!is_free(&p));
        held.unlock().expect("unlock");
        assert!(is_free(&p));
    }
}
