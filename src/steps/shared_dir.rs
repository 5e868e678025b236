//! The shared-dir step: creates the pod's shared dir when the plugin manages it, applies `host.permissions` via its fd;
//! undo removes this attachment's socket, then the dir if ours and empty. Never follows symlinks in pod-writable dirs.

use backend_api::{async_trait, CniError, SharedDir, Step, StepContext};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub struct SharedDirStep {
    pub dir: SharedDir,
    /// The plugin created `<base>/<cid12>` and may remove it when empty; a pod volume or an
    /// administrator's directory is never removed.
    pub managed: bool,
    /// Host paths of the files this attachment puts in the dir (sockets), removed on undo.
    pub files: Vec<PathBuf>,
}

#[async_trait]
impl Step for SharedDirStep {
    fn name(&self) -> &'static str {
        "shared-dir"
    }

    async fn apply(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
        self.ensure_dir()?;
        // Also on a dir someone else made (the pod's volume, a sibling interface): a workload
        // that is not root must be able to open it (docs/permissions.md). Undo needs nothing
        // more: a dir we made goes, a pod's volume goes with the pod.
        backend_api::perms::apply_to_dir(&self.dir.host, &self.dir.permissions.dir)
    }

    async fn undo(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
        for f in &self.files {
            remove_socket_file(f)?;
        }
        if self.managed {
            match fs::remove_dir(&self.dir.host) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                // Another interface of the pod still has files here.
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
                Err(e) => {
                    return Err(CniError::io(format!("cannot remove shared dir {}: {e}", self.dir.host.display())))
                }
            }
        }
        Ok(())
    }
}

impl SharedDirStep {
    /// The dir exists afterwards (created 0755 when absent; `host.permissions` then applies).
    fn ensure_dir(&self) -> Result<(), CniError> {
        let path = &self.dir.host;
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(CniError::io(format!(
                    "shared dir {} exists but is not a directory (a symlink or file); remove it",
                    path.display()
                )))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(CniError::io(format!("shared dir {}: {e}", path.display()))),
        }
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| CniError::io(format!("cannot create {}: {e}", parent.display())))?;
        }
        match fs::DirBuilder::new().mode(0o755).create(path) {
            Ok(()) => Ok(()),
            // A sibling interface of the same pod created it concurrently.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(CniError::io(format!("cannot create shared dir {}: {e}", path.display()))),
        }
    }
}

/// Remove a socket (or a stale regular file / symlink) at `path`; a directory is left alone and
/// reported. `unlink` never follows a symlink, so a planted link cannot redirect the removal.
pub fn remove_socket_file(path: &Path) -> Result<(), CniError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::io(format!("{}: {e}", path.display()))),
        Ok(m) if m.is_dir() => {
            Err(CniError::io(format!("{} should be a socket but is a directory; not removing it", path.display())))
        }
        Ok(_) => match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CniError::io(format!("cannot remove {}: {e}", path.display()))),
        },
    }
}
