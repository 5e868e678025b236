//! The plugin's two unix sockets on the host: clear a stale one left by a previous instance, bind,
//! and remove exactly the socket we bound on shutdown. Never follows a symlink and never removes
//! anything but a dead unix socket at one of the two paths it was given.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

/// `sun_path` is 108 bytes with the terminating NUL.
const SUN_PATH_MAX: usize = 107;
/// How long a connect to an existing socket may take before we call its server dead. A unix
/// connect is answered at once by a listening server or refused at once by a dead one.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Created parent dirs: kubelet (root) and the plugin's group only.
const DIR_MODE: u32 = 0o750;
/// Only root (kubelet) connects; the sockets drive host networking.
const SOCKET_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket path {path} is {len} bytes; a unix socket path must be at most {SUN_PATH_MAX}: use a shorter kubelet root or driver name")]
    TooLong { path: PathBuf, len: usize },
    #[error("socket path {path} must be absolute (kubelet dials it from its own working directory)")]
    Relative { path: PathBuf },
    #[error(
        "{path} exists and is {found}, not a unix socket; refusing to remove it: move it away if it is not needed"
    )]
    NotASocket { path: PathBuf, found: &'static str },
    #[error(
        "another server answers on {path}: is a second instance of the plugin running on this node? stop it first"
    )]
    InUse { path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io { op, path: path.to_path_buf(), source }
}

/// A socket we bound: its path and the inode we created there, so shutdown removes ours and not a
/// successor's that was bound at the same path in the meantime.
#[derive(Debug)]
pub struct Bound {
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Check the path, clear a stale socket, create the parent dirs and bind.
pub async fn bind(path: &Path) -> Result<(UnixListener, Bound), SocketError> {
    if !path.is_absolute() {
        return Err(SocketError::Relative { path: path.to_path_buf() });
    }
    let len = path.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(SocketError::TooLong { path: path.to_path_buf(), len });
    }
    clear_stale(path).await?;
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(parent).map_err(io("create", parent))?;
    }
    let listener = UnixListener::bind(path).map_err(io("bind", path))?;
    let meta = std::fs::symlink_metadata(path).map_err(io("stat", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(io("chmod", path))?;
    Ok((listener, Bound { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() }))
}

/// Remove a unix socket left at `path` by a dead server. Anything else there is refused: a
/// regular file, directory or symlink is someone's data (and a symlink could point anywhere).
async fn clear_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("stat", path)(e)),
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let found = if kind.is_symlink() {
            "a symlink"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_file() {
            "a regular file"
        } else {
            "a special file"
        };
        return Err(SocketError::NotASocket { path: path.to_path_buf(), found });
    }
    // A live server there means two plugins for one driver; kubelet would talk to either. A
    // refused connect means nobody listens: the socket is stale. A connect that hangs past the
    // probe timeout is a server too wedged to serve kubelet; replacing it is what a restart wants.
    if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        return Err(SocketError::InUse { path: path.to_path_buf() });
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a stale socket of a previous instance");
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path)(e)),
    }
}

/// Remove the socket if it is still the one we bound. Shutdown keeps going on errors: they are
/// logged, since there is nobody left to return them to but the caller's exit.
pub fn remove(bound: &Bound) {
    match std::fs::symlink_metadata(&bound.path) {
        Ok(meta) if meta.file_type().is_socket() && meta.dev() == bound.dev && meta.ino() == bound.ino => {
            if let Err(error) = std::fs::remove_file(&bound.path) {
                tracing::warn!(path = %bound.path.display(), %error, "cannot remove our socket on shutdown");
            }
        }
        Ok(_) => {
            tracing::info!(path = %bound.path.display(), "socket path now holds another file; leaving it");
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(path = %bound.path.display(), %error, "cannot stat our socket on shutdown"),
    }
}
