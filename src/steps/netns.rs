//! The netns check: ADD's validation checks that CNI_NETNS is a network namespace (a `statfs` for
//! nsfs) before any side effect. Nothing ever enters the namespace: vhost-user and memif create no
//! netdev, so there is nothing to undo and this is a check, not a pipeline step.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use userspace_cni_api::{codes, CniError};

/// `NSFS_MAGIC` from linux/magic.h.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Whether `path` is a namespace file (what `ip netns add` bind-mounts, or /proc/PID/ns/net).
pub fn is_netns(path: &Path) -> std::io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string and `buf` is a properly sized out-parameter.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(buf.f_type as i64 == NSFS_MAGIC)
}

/// CNI_NETNS must name a network namespace (ADD and CHECK).
pub fn check(netns: Option<&str>) -> Result<(), CniError> {
    let Some(netns) = netns else {
        return Err(CniError::new(codes::INVALID_ENV, "CNI_NETNS is required for ADD"));
    };
    if !netns.starts_with('/') {
        return Err(CniError::new(codes::INVALID_ENV, format!("CNI_NETNS={netns} must be an absolute path")));
    }
    match is_netns(Path::new(netns)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CniError::new(
            codes::INVALID_ENV,
            format!("CNI_NETNS={netns} is not a network namespace (expected an nsfs file such as /run/netns/NAME or /proc/PID/ns/net)"),
        )),
        Err(e) => Err(CniError::new(
            codes::UNKNOWN_CONTAINER,
            format!("CNI_NETNS={netns}: cannot inspect the network namespace: {e}; the container may be gone"),
        )),
    }
}
