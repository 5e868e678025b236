//! The KubeVirt short socket dir: when a pod's shared dir (its emptyDir under the kubelet root) is
//! too deep for a 107-byte socket path, `<short_socket_dir>/<pod uid>` is bind-mounted onto it and
//! sockets are addressed through the short path. The short dir is shared by all of the pod's
//! interfaces: mounted if absent, unmounted only when no other record (nor an upstream state file
//! of the same pod) refers to it. Never follows a path from the pod: both ends come from settings
//! and the pod uid.

pub use crate::plan::ShortDir;
use crate::state::StateDir;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use userspace_cni_api::{async_trait, CniError, Step, StepContext};
use userspace_cni_support::confine::{self, Dir};

pub struct ShortDirStep {
    pub dir: ShortDir,
    pub state: StateDir,
}

fn cstr(p: &Path) -> Result<CString, CniError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| CniError::invalid_config(format!("{} contains NUL", p.display())))
}

/// Whether `path` is a mount point, from /proc/self/mountinfo (field 5 is the mount point, with
/// spaces and backslashes octal-escaped).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.to_string_lossy().replace('\\', "\\134").replace(' ', "\\040");
    info.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

#[async_trait]
impl Step for ShortDirStep {
    fn name(&self) -> &'static str {
        crate::plan::stages::SHORT_DIR
    }

    /// Sibling interfaces of one pod race to mount the same dir; the node lock orders them.
    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let ShortDir { short, long } = &self.dir;
        let ioe = |what: &str, p: &Path, e: std::io::Error| {
            CniError::io(format!("{what} {}: {}", p.display(), confine::explain(&e)))
        };
        // The pod's dir, below kubelet's root, no symlink followed: a pod cannot swap it, but
        // nothing below a root is trusted by path.
        let long_dir = confine::socket_dir(&ctx.settings, long)
            .map_err(|e| ioe("the pod's shared dir is not a directory below its root:", long, e))?;
        let (Some(base), Some(name)) = (short.parent(), short.file_name()) else {
            return Err(CniError::io(format!("short socket dir {} has no parent", short.display())));
        };
        let base = Dir::root_or_create(base, 0o755).map_err(|e| ioe("cannot create short socket dir", base, e))?;
        base.mkdir(name, 0o755).map_err(|e| ioe("cannot create short socket dir", short, e))?;
        let short_dir = base.open_dir(Path::new(name)).map_err(|e| ioe("cannot open short socket dir", short, e))?;
        if is_mount_point(short) {
            return Ok(());
        }
        // A stale, unmounted dir left by a crash is simply mounted again. Both ends through their
        // descriptors' /proc links: the kernel binds exactly the inodes held, whatever a path
        // names by now.
        let (src, dst) = (cstr(&long_dir.proc_path())?, cstr(&short_dir.proc_path())?);
        // SAFETY: both strings are valid and NUL-terminated; the other arguments may be null for
        // a bind mount.
        let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(CniError::io(format!("cannot bind-mount {} onto {}: {e}", long.display(), short.display())));
        }
        Ok(())
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let short = &self.dir.short;
        // Another interface of the pod (another record) still uses it: leave it mounted.
        let me = &ctx.attachment.id;
        let others = self
            .state
            .list_records()?
            .into_iter()
            .flatten()
            .any(|r| r.attachment.id != *me && r.plan.short_dir.as_ref().is_some_and(|d| d.short == *short));
        if others {
            return Ok(());
        }
        // An interface of the same pod that the upstream plugin added has no record, only its
        // state file; its port still addresses its socket through this dir (docs/upgrading.md).
        let upstream = crate::legacy::sibling_ifnames(&ctx.settings, me);
        if !upstream.is_empty() {
            tracing::debug!(?upstream, short = %short.display(), "upstream interfaces of the pod still use the short dir");
            return Ok(());
        }
        if is_mount_point(short) {
            let dst = cstr(short)?;
            // SAFETY: `dst` is a valid NUL-terminated path. The short dir's parent is the
            // operator's; UMOUNT_NOFOLLOW refuses a symlink in its place all the same.
            let rc = unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(CniError::io(format!("cannot unmount {}: {e}", short.display())));
                }
            }
        }
        let (Some(base), Some(name)) = (short.parent(), short.file_name()) else { return Ok(()) };
        let base = match Dir::root(base) {
            Ok(b) => b,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(CniError::io(format!("cannot open {}: {e}", base.display()))),
        };
        // Not a directory (a symlink or file planted in its place): nothing we made, and rmdir
        // would fail on it forever, keeping the record; left with a warning, never followed.
        match base.entry(name) {
            Ok(Some(e)) if e.kind != confine::Kind::Dir => {
                tracing::warn!(dir = %short.display(), kind = e.kind.as_str(), "short socket dir replaced; left in place");
                return Ok(());
            }
            Ok(None) => return Ok(()),
            _ => {}
        }
        // Not empty (something outside our knowledge is in it): left in place.
        base.rmdir(name)
            .map(|_| ())
            .map_err(|e| CniError::io(format!("cannot remove short socket dir {}: {e}", short.display())))
    }
}
