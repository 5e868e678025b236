//! The shared-dir step: creates the pod's shared dir when the plugin manages it and applies
//! `host.permissions` through its descriptor; undo removes this attachment's sockets, then the dir
//! if ours and empty. The dir is resolved below its root without following symlinks and changed
//! only through held descriptors: a pod-writable dir is never walked by path (docs/security.md).

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use userspace_cni_api::{async_trait, CniError, NodeSettings, SharedDir, Step, StepContext};
use userspace_cni_support::confine::{self, Dir, Kind, Removal};

pub struct SharedDirStep {
    pub dir: SharedDir,
    /// The plugin created `<base>/<cid12>` and may remove it when empty; a pod volume or an
    /// administrator's directory is never removed.
    pub managed: bool,
    /// Host paths of the files this attachment puts in the dir (sockets), removed on undo.
    pub files: Vec<PathBuf>,
}

/// Mode of a directory the plugin creates (docs/permissions.md), set explicitly: never the
/// umask's.
pub const DIR_MODE: u32 = 0o755;

#[async_trait]
impl Step for SharedDirStep {
    fn name(&self) -> &'static str {
        crate::plan::stages::SHARED_DIR
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let dir = ensure(&ctx.settings, &self.dir.host)?;
        // Also on a dir someone else made (the pod's volume, a sibling interface): a workload
        // that is not root must be able to open it (docs/permissions.md). Undo needs nothing
        // more: a dir we made goes, a pod's volume goes with the pod.
        userspace_cni_support::perms::apply_to_dir(&dir, &self.dir.permissions.dir)
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let dir = match open_existing(&ctx.settings, &self.dir.host)? {
            Some(d) => d,
            None => return Ok(()),
        };
        for f in &self.files {
            let Some(name) = name_in(&self.dir.host, f) else {
                tracing::warn!(file = %f.display(), "not in the shared dir; not removing it");
                continue;
            };
            remove_socket(&dir, name)?;
        }
        drop(dir);
        if self.managed {
            remove_managed_dir(&ctx.settings, &self.dir.host)?;
        }
        Ok(())
    }
}

/// The file name of `file` when it lies directly in `dir`.
fn name_in<'a>(dir: &Path, file: &'a Path) -> Option<&'a OsStr> {
    (file.parent() == Some(dir)).then(|| file.file_name()).flatten()
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> CniError {
    CniError::io(format!("{what} {}: {}", path.display(), confine::explain(e)))
}

/// The shared dir at `host`, created when absent (each missing component with `DIR_MODE`),
/// below its root, no symlink followed.
pub fn ensure(settings: &NodeSettings, host: &Path) -> Result<Dir, CniError> {
    let c = confine::confine(host, &settings.socket_dir_roots()).map_err(|e| {
        CniError::io(format!(
            "shared dir {} {e} of this node (shared_roots, kubelet_root, short_socket_dir)",
            host.display()
        ))
    })?;
    let root =
        Dir::root_or_create(&c.root, DIR_MODE).map_err(|e| io_err("cannot open the shared-dir root", &c.root, &e))?;
    root.create_dirs(&c.rel, DIR_MODE).map_err(|e| io_err("cannot create shared dir", host, &e))
}

/// The shared dir at `host` if it exists as a real directory below its root. A symlink or file in
/// its place (a pod swapped it) is left alone with a warning: nothing of ours can be in it.
pub fn open_existing(settings: &NodeSettings, host: &Path) -> Result<Option<Dir>, CniError> {
    match confine::socket_dir(settings, host) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV)) => {
            tracing::warn!(dir = %host.display(), reason = %confine::explain(&e), "shared dir skipped, not followed");
            Ok(None)
        }
        Err(e) => Err(io_err("cannot open shared dir", host, &e)),
    }
}

/// Remove the socket `name` in the held dir. Anything else under that name (a file or a symlink
/// the pod put there) is the pod's: left alone with a warning, never followed. A directory there
/// is an error, as it always was, so the record stays and an operator sees it.
pub fn remove_socket(dir: &Dir, name: &OsStr) -> Result<(), CniError> {
    let path = dir.path().join(name);
    match dir.remove_if(name, Kind::Socket) {
        Ok(Removal::Removed | Removal::Absent) => Ok(()),
        Ok(Removal::Left(Kind::Dir)) => {
            Err(CniError::io(format!("{} should be a socket but is a directory; not removing it", path.display())))
        }
        Ok(Removal::Left(kind)) => {
            tracing::warn!(path = %path.display(), kind = kind.as_str(), "expected a socket; left in place");
            Ok(())
        }
        Err(e) => Err(io_err("cannot remove", &path, &e)),
    }
}

/// Remove `<base>/<cid12>` if empty, through the held base (never by path: a link planted in its
/// place is not a directory to rmdir).
fn remove_managed_dir(settings: &NodeSettings, host: &Path) -> Result<(), CniError> {
    let (Some(base), Some(name)) = (host.parent(), host.file_name()) else { return Ok(()) };
    let Some(base) = open_existing(settings, base)? else { return Ok(()) };
    match base.entry(name) {
        Ok(Some(e)) if e.kind == Kind::Dir => {}
        Ok(Some(e)) => {
            tracing::warn!(dir = %host.display(), kind = e.kind.as_str(), "shared dir replaced; left in place");
            return Ok(());
        }
        Ok(None) => return Ok(()),
        Err(e) => return Err(io_err("cannot inspect shared dir", host, &e)),
    }
    // Not empty: another interface of the pod still has files here.
    base.rmdir(name).map(|_| ()).map_err(|e| io_err("cannot remove shared dir", host, &e))
}
