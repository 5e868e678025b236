//! Who may open what a workload opens: owner, group, mode and SELinux label of the shared dir and of a
//! server-mode socket, resolved at validation, applied through file descriptors, never by a path in a pod's dir.

pub use userspace_cni_api::access::{Access, Permissions, PermissionsConf};

use crate::acl;
use crate::confine::Dir;
use crate::names;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use userspace_cni_api::{codes, CniError};

/// The config object these settings come from (`host.permissions`); its keys are below.
pub const KEY: &str = "host.permissions";
pub const OWNER: &str = "host.permissions.owner";
pub const GROUP: &str = "host.permissions.group";
pub const DIR_MODE: &str = "host.permissions.dirMode";
pub const SOCKET_MODE: &str = "host.permissions.socketMode";
pub const SELINUX_CONTEXT: &str = "host.permissions.selinuxContext";
/// The upstream plugin's key: the group of a server-mode vhost-user socket (mode 0660).
pub const VHOST_GROUP: &str = "host.vhost.group";

/// The extended attribute SELinux keeps a file's label in.
pub const SELINUX_XATTR: &str = "security.selinux";
/// Where names are looked up. Read directly (not through NSS), so the static musl release binary
/// and a glibc build resolve the same way; users and groups only known to LDAP/SSSD need their id.
pub const PASSWD_FILE: &str = "/etc/passwd";
pub const GROUP_FILE: &str = "/etc/group";

/// setgid/sticky on a dir are meaningful (new sockets inherit the dir's group); setuid is not,
/// but Linux ignores it there, so the whole 12-bit range is accepted.
pub const MAX_DIR_MODE: u32 = 0o7777;
/// A socket only has permission bits: connect(2) needs write permission on it.
pub const MAX_SOCKET_MODE: u32 = 0o777;
/// The socket mode when a group is given and `socketMode` is not: the group can connect. This is
/// what `vhost.group` has always meant (upstream chmods 0660 too).
pub const GROUP_SOCKET_MODE: u32 = 0o660;
/// A label longer than this is not a real SELinux context (the kernel's own limit is a page).
pub const MAX_SELINUX_CONTEXT: usize = 1024;
/// `(uid_t)-1` means "leave unchanged" to chown(2), so it can never be an id here.
const NO_ID: u32 = u32::MAX;

fn invalid(msg: String) -> CniError {
    CniError::new(codes::INVALID_NETCONF, msg)
}

/// The account databases names are looked up in (the files' text, or why it could not be read).
pub struct Accounts {
    passwd: Result<String, String>,
    group: Result<String, String>,
}

impl Accounts {
    /// The node's /etc/passwd and /etc/group.
    pub fn system() -> Accounts {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
        Accounts { passwd: read(PASSWD_FILE), group: read(GROUP_FILE) }
    }

    /// Given texts (tests).
    pub fn from_text(passwd: &str, group: &str) -> Accounts {
        Accounts { passwd: Ok(passwd.to_owned()), group: Ok(group.to_owned()) }
    }
}

#[derive(Clone, Copy)]
enum Db {
    User,
    Group,
}

impl Db {
    fn file(self) -> &'static str {
        match self {
            Db::User => PASSWD_FILE,
            Db::Group => GROUP_FILE,
        }
    }
    fn what(self) -> (&'static str, &'static str) {
        match self {
            Db::User => ("user", "uid"),
            Db::Group => ("group", "gid"),
        }
    }
}

/// A uid or gid as given: all digits is an id, anything else a name looked up in the database
/// (`name:password:id:...` lines).
fn lookup(key: &str, value: &str, db: Db, accounts: &Accounts) -> Result<u32, CniError> {
    let (what, id) = db.what();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u32>() {
            Ok(n) if n != NO_ID => Ok(n),
            _ => Err(invalid(format!("{key} {value:?} is not a valid {id}; expected a number from 0 to 4294967294"))),
        };
    }
    let text = match db {
        Db::User => &accounts.passwd,
        Db::Group => &accounts.group,
    };
    let text = text.as_ref().map_err(|e| {
        invalid(format!(
            "{key} {value:?}: cannot read {} to look the {what} up ({e}); give the numeric {id}",
            db.file()
        ))
    })?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut f = l.split(':');
            if f.next()? != value {
                return None;
            }
            f.nth(1)?.trim().parse::<u32>().ok().filter(|n| *n != NO_ID)
        })
        .ok_or_else(|| {
            invalid(format!(
                "{key} {value:?} is neither a {what} in {} nor a numeric {id}: create the {what}, correct the name, \
                 or give the numeric {id} (names known only to LDAP/SSSD are not looked up)",
                db.file()
            ))
        })
}

/// Resolve `host.permissions` and `host.vhost.group` into numeric settings, before any side
/// effect, so a typo fails validation rather than a half-done ADD.
/// - The dir gets `owner`, `group`, `dirMode`, `selinuxContext`.
/// - A server-mode socket gets `owner`, `group` (or `vhost.group`), `socketMode` (0660 when a
///   group is given without it), `selinuxContext`.
pub fn resolve(conf: Option<&PermissionsConf>, vhost_group: Option<&str>) -> Result<Permissions, CniError> {
    if conf.is_none() && vhost_group.is_none() {
        return Ok(Permissions::default());
    }
    resolve_with(conf, vhost_group, &Accounts::system())
}

/// [`resolve`] against the given account databases.
pub fn resolve_with(
    conf: Option<&PermissionsConf>,
    vhost_group: Option<&str>,
    accounts: &Accounts,
) -> Result<Permissions, CniError> {
    let c = conf.cloned().unwrap_or_default();
    let uid = c.owner.as_deref().map(|v| lookup(OWNER, v, Db::User, accounts)).transpose()?;
    let gid = c.group.as_deref().map(|v| lookup(GROUP, v, Db::Group, accounts)).transpose()?;
    let vhost_gid = vhost_group.map(|v| lookup(VHOST_GROUP, v, Db::Group, accounts)).transpose()?;
    if let (Some(a), Some(b), Some(g), Some(vg)) = (gid, vhost_gid, &c.group, vhost_group) {
        if a != b {
            return Err(invalid(format!(
                "{VHOST_GROUP} {vg:?} (gid {b}) and {GROUP} {g:?} (gid {a}) name different groups for the socket; \
                 keep one ({GROUP} also applies to the shared dir)"
            )));
        }
    }
    if let Some(ctx) = &c.selinux_context {
        validate_selinux_context(SELINUX_CONTEXT, ctx)?;
    }
    for (key, mode, max) in [(DIR_MODE, c.dir_mode, MAX_DIR_MODE), (SOCKET_MODE, c.socket_mode, MAX_SOCKET_MODE)] {
        if let Some(m) = mode.filter(|m| *m > max) {
            return Err(invalid(format!("{key} {m:04o} is out of range; at most {max:04o}")));
        }
    }
    let socket_gid = gid.or(vhost_gid);
    Ok(Permissions {
        dir: Access { uid, gid, mode: c.dir_mode, selinux_context: c.selinux_context.clone(), acl_users: Vec::new() },
        socket: Access {
            uid,
            gid: socket_gid,
            mode: c.socket_mode.or(socket_gid.map(|_| GROUP_SOCKET_MODE)),
            selinux_context: c.selinux_context,
            acl_users: Vec::new(),
        },
    })
}

/// An octal mode as a config gives it: a string of 3 or 4 octal digits (`"770"`, `"0770"`,
/// `"2770"`), at most `max`. JSON has no octal numbers, so a number is never a mode.
pub fn parse_mode(s: &str, max: u32) -> Option<u32> {
    if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= max)
}

/// An SELinux context `user:role:type[:level]` (e.g. `system_u:object_r:container_file_t:s0`,
/// levels like `s0:c1,c2` or `s0-s0:c0.c1023`). Only the shape is checked here; the kernel
/// checks it against the policy when it is applied.
pub fn validate_selinux_context(key: &str, value: &str) -> Result<(), CniError> {
    let example = "e.g. \"system_u:object_r:container_file_t:s0\"";
    if value.is_empty() || value.len() > MAX_SELINUX_CONTEXT {
        return Err(invalid(format!(
            "{key} is {} bytes long; expected an SELinux context user:role:type[:level] of at most \
             {MAX_SELINUX_CONTEXT} bytes, {example}",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | ',' | '-'))) {
        return Err(invalid(format!(
            "{key} {value:?} contains {c:?}; an SELinux context has only [A-Za-z0-9_.:,-], {example}"
        )));
    }
    let fields: Vec<&str> = value.splitn(4, ':').collect();
    if fields.len() < 3 || fields.iter().take(3).any(|f| f.is_empty()) {
        return Err(invalid(format!("{key} {value:?} is not an SELinux context user:role:type[:level], {example}")));
    }
    Ok(())
}

/// Refuse settings for a directory every pod shares (an allowed root, the shared-dir or
/// short-dir base): a namespace-scoped NAD author may change their pod's dir, not the node's.
pub fn check_dir_target(dir: &Path, bases: &[PathBuf]) -> Result<(), CniError> {
    let normal = names::lexical_normal(dir);
    match bases.iter().find(|b| names::lexical_normal(b) == normal) {
        Some(b) => Err(invalid(format!(
            "{KEY} would change {}, which is {} shared by every pod on the node; give the pod its own \
             directory (a subdirectory, or the default <sharedDir>/<container id>)",
            dir.display(),
            if b.as_os_str().is_empty() { "a base directory".to_string() } else { format!("the base {}", b.display()) }
        ))),
        None => Ok(()),
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// What the kernel's refusal to label means, for a user.
fn label_error(path: &Path, ctx: &str, e: &io::Error) -> CniError {
    if errno(e) == libc::EOPNOTSUPP {
        return CniError::new(
            codes::UNSUPPORTED_FIELD,
            format!(
                "{SELINUX_CONTEXT} {ctx:?}: the filesystem of {} does not support SELinux labels \
                 ({SELINUX_XATTR}: {e}); remove {SELINUX_CONTEXT}, or put the shared dir on a filesystem with \
                 labels (ext4, xfs, tmpfs)",
                path.display()
            ),
        );
    }
    let remedy = match errno(e) {
        libc::EINVAL => {
            "the loaded SELinux policy does not know this context: compare with `ls -Z` of a file that works, \
             or `semanage fcontext -l`"
        }
        libc::EPERM | libc::EACCES => {
            "the plugin is not allowed to relabel (it must run as root, and the SELinux policy must let its \
             domain relabel to this type)"
        }
        _ => "check the context and the filesystem",
    };
    CniError::io(format!("{SELINUX_CONTEXT} {ctx:?}: cannot label {}: {e}; {remedy}", path.display()))
}

/// Whether SELinux labels can be stored at `path` (or, when it does not exist yet, at its nearest
/// existing ancestor, which a new dir inherits its filesystem from). A read-only probe for
/// validation: "not supported" is code 2 before any side effect; anything else is left to apply.
pub fn check_labels_supported(path: &Path, ctx: &str) -> Result<(), CniError> {
    let Some(existing) = path.ancestors().find(|a| std::fs::symlink_metadata(a).is_ok()) else { return Ok(()) };
    let (Ok(p), Ok(name)) = (CString::new(existing.as_os_str().as_bytes()), CString::new(SELINUX_XATTR)) else {
        return Ok(());
    };
    // SAFETY: both strings are valid and NUL-terminated; a null buffer of size 0 asks for the
    // value's size only, so nothing is written.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if errno(&e) == libc::EOPNOTSUPP {
            return Err(label_error(existing, ctx, &e));
        }
    }
    Ok(())
}

/// The SELinux label of `path` itself (a symlink is not followed), `None` when it has none.
pub fn read_label(path: &Path) -> io::Result<Option<String>> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let name = CString::new(SELINUX_XATTR).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings; `buf` is writable for `buf.len()` bytes.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if errno(&e) == libc::ENODATA { Ok(None) } else { Err(e) };
    }
    buf.truncate(n as usize);
    // The kernel stores the terminating NUL libselinux writes.
    while buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The file a setting is applied to: an open directory, or an `O_PATH` descriptor of a socket
/// (a socket cannot be opened for reading, so fchown/fchmod/fsetxattr do not work on it).
enum Target<'a> {
    Dir(&'a Dir),
    Socket(&'a OwnedFd),
}

impl Target<'_> {
    fn fd(&self) -> i32 {
        match self {
            Target::Dir(d) => d.raw_fd(),
            Target::Socket(fd) => fd.as_raw_fd(),
        }
    }

    /// `/proc/self/fd/N`: opening or chmod-ing it follows the magic link to exactly the inode
    /// the descriptor holds, not to whatever a path names now.
    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd()))
    }

    fn set_label(&self, ctx: &str) -> io::Result<()> {
        let name = CString::new(SELINUX_XATTR).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // libselinux stores the context with its terminating NUL; do the same so tools agree.
        let mut value = ctx.as_bytes().to_vec();
        value.push(0);
        let rc = match self {
            // SAFETY: a valid fd, NUL-terminated name, and `value` readable for its length.
            Target::Dir(d) => unsafe {
                libc::fsetxattr(d.raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0)
            },
            // fsetxattr on an O_PATH descriptor is EBADF (setxattrat(2) with AT_EMPTY_PATH only
            // exists since Linux 6.13): go through the descriptor's /proc magic link instead.
            Target::Socket(_) => {
                let p = CString::new(self.proc_path().as_os_str().as_bytes())
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: as above, with a NUL-terminated path.
                unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) }
            }
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        match self {
            Target::Dir(d) => {
                // SAFETY: a valid descriptor; -1 leaves an id unchanged.
                let rc = unsafe { libc::fchown(d.raw_fd(), uid.unwrap_or(NO_ID), gid.unwrap_or(NO_ID)) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
            Target::Socket(fd) => {
                let empty = c"";
                // fchownat(fd, "", AT_EMPTY_PATH) acts on the descriptor itself, O_PATH included
                // (Linux 2.6.39+). -1 leaves an id unchanged.
                // SAFETY: a valid fd and a NUL-terminated empty path.
                let rc = unsafe {
                    libc::fchownat(
                        fd.as_raw_fd(),
                        empty.as_ptr(),
                        uid.unwrap_or(NO_ID),
                        gid.unwrap_or(NO_ID),
                        libc::AT_EMPTY_PATH,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
        }
    }

    fn chmod(&self, mode: u32) -> io::Result<()> {
        match self {
            Target::Dir(d) => {
                // SAFETY: a valid descriptor.
                if unsafe { libc::fchmod(d.raw_fd(), mode as libc::mode_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
            // fchmod on an O_PATH descriptor is EBADF, and fchmodat(AT_SYMLINK_NOFOLLOW) is not a
            // kernel feature before fchmodat2 (Linux 6.6; glibc and musl emulate it with this very
            // /proc trick). chmod(2) on the magic link reaches the inode we opened with O_NOFOLLOW
            // and checked to be a socket, whatever the pod does to the name meanwhile.
            Target::Socket(_) => std::fs::set_permissions(self.proc_path(), std::fs::Permissions::from_mode(mode)),
        }
    }
}

/// Apply `access` to one target: the label first (the likeliest refusal, so an unsupported
/// filesystem leaves owner and mode untouched), then owner and group, then the mode (a chown may
/// clear setgid bits, so it comes before the chmod), then a dir's ACLs.
fn apply(target: &Target<'_>, what: &str, path: &Path, access: &Access) -> Result<(), CniError> {
    if let Some(ctx) = &access.selinux_context {
        target.set_label(ctx).map_err(|e| label_error(path, ctx, &e))?;
    }
    if access.uid.is_some() || access.gid.is_some() {
        target.chown(access.uid, access.gid).map_err(|e| {
            let show = |id: Option<u32>| id.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            CniError::io(format!(
                "cannot give {what} {} owner {} and group {} ({OWNER}, {GROUP} or {VHOST_GROUP}): {e}; the plugin must \
                 run as root on the node",
                path.display(),
                show(access.uid),
                show(access.gid)
            ))
        })?;
    }
    if let Some(mode) = access.mode {
        target.chmod(mode).map_err(|e| {
            let key = if matches!(target, Target::Dir(_)) { DIR_MODE } else { SOCKET_MODE };
            CniError::io(format!("cannot set mode {mode:04o} on {what} {} ({key}): {e}", path.display()))
        })?;
    }
    if !access.acl_users.is_empty() {
        // Last: a chmod rewrites an ACL's mask, and the ACL is built from the final mode.
        let Target::Dir(dir) = target else {
            return Err(CniError::new(codes::INTERNAL, format!("ACL users given for {what} {}", path.display())));
        };
        apply_acls(dir, access)?;
    }
    Ok(())
}

/// The key that asks for ACLs (no network-config key does yet).
pub const ACL_USERS: &str = "dra_dir_acl_users";

/// Write the dir's access and default ACLs for `access.acl_users` (both, every time: a re-applied
/// attachment's dir may have been made anew). `Dir` holds an `O_RDONLY` descriptor, never
/// `O_PATH`, so `fsetxattr` acts on exactly the inode resolved below the root.
fn apply_acls(dir: &Dir, access: &Access) -> Result<(), CniError> {
    let path = dir.path();
    let mode = match access.mode {
        Some(m) => m,
        None => dir.stat().map_err(|e| CniError::io(format!("cannot stat shared dir {}: {e}", path.display())))?.mode,
    };
    let (acl, default) = acl::for_socket_dir(mode, &access.acl_users);
    for (name, value) in [(acl::ACCESS_XATTR, &acl), (acl::DEFAULT_XATTR, &default)] {
        acl::write(dir.raw_fd(), name, value).map_err(|e| acl_error(dir, &access.acl_users, name, &e))?;
    }
    Ok(())
}

/// What the kernel's refusal to store an ACL means, for an operator.
fn acl_error(dir: &Dir, uids: &[u32], xattr: &str, e: &io::Error) -> CniError {
    let path = dir.path().display();
    let users = uids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    if errno(e) == libc::EOPNOTSUPP {
        return CniError::new(
            codes::UNSUPPORTED_FIELD,
            format!(
                "{ACL_USERS} [{users}]: the filesystem of {path}, {}, does not support POSIX ACLs ({xattr}: {e}); \
                 put the socket dirs on a filesystem with ACLs (tmpfs, ext4, xfs, btrfs; mounted without noacl), or \
                 empty {ACL_USERS} and let OVS connect as root",
                acl::filesystem_name(dir.raw_fd())
            ),
        );
    }
    let remedy = match errno(e) {
        libc::EPERM | libc::EACCES => "the plugin must run as root (or own the dir) on the node",
        libc::EINVAL => "the kernel refused the ACL's form; report this as a bug",
        _ => "check the filesystem",
    };
    CniError::io(format!("{ACL_USERS} [{users}]: cannot write {xattr} of shared dir {path}: {e}; {remedy}"))
}

/// Give the shared dir `dir` (held: resolved below its root without following symlinks) its
/// owner, group, mode, label and ACLs, through its descriptor.
pub fn apply_to_dir(dir: &Dir, access: &Access) -> Result<(), CniError> {
    if access.is_empty() {
        return Ok(());
    }
    apply(&Target::Dir(dir), "shared dir", dir.path(), access)
}

/// Give the socket `name` in the held directory `dir` its owner, group, mode and label. The socket
/// is opened relative to the descriptor with `O_PATH | O_NOFOLLOW` and must be a socket: a
/// symlink or file the pod put there instead is refused, never followed.
pub fn apply_to_socket(dir: &Dir, name: &str, access: &Access) -> Result<(), CniError> {
    if access.is_empty() {
        return Ok(());
    }
    names::validate_file_name("socket file name", name)?;
    let path = dir.path().join(name);
    let cname = CString::new(name).map_err(|_| invalid(format!("socket name {name:?} contains NUL")))?;
    // SAFETY: a valid directory fd and a NUL-terminated name; the result is owned at once.
    let raw = unsafe { libc::openat(dir.raw_fd(), cname.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(CniError::io(format!("cannot open socket {} to set its permissions: {e}", path.display())));
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| CniError::io(format!("cannot stat socket {}: {e}", path.display())))?;
    if !meta.file_type().is_socket() {
        return Err(CniError::io(format!(
            "{} should be the dataplane's socket but is a {}; refusing to change its permissions",
            path.display(),
            kind_of(&meta)
        )));
    }
    let fd = OwnedFd::from(file);
    apply(&Target::Socket(&fd), "socket", &path, access)
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// A problem a non-root workload would hit opening what the plugin made, for `userspace doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    pub msg: String,
}

/// What stops a workload that is not root (QEMU as uid 107, a DPDK app with a runAsUser) from using
/// the shared dir `dir` and, in server mode, the socket `socket`: a root-owned dir it cannot write
/// (client mode: the workload creates its socket there), or a socket only root can connect to.
/// Read-only (lstat); a missing path is no finding (CHECK reports those).
pub fn diagnose(dir: &Path, socket: Option<&Path>, workload_creates_socket: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let hint = format!("set {KEY} (owner/group/dirMode/socketMode), see docs/permissions.md");
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        let mode = m.mode() & 0o7777;
        if workload_creates_socket && m.uid() == 0 && m.gid() == 0 && mode & 0o002 == 0 {
            out.push(Finding {
                path: dir.to_path_buf(),
                msg: format!(
                    "shared dir {} is root:root {mode:04o}: only root can create the workload's socket in it \
                     (client mode); a QEMU or DPDK process running as another user gets EACCES: {hint}",
                    dir.display()
                ),
            });
        } else if mode & 0o001 == 0 && m.uid() == 0 && m.gid() == 0 {
            out.push(Finding {
                path: dir.to_path_buf(),
                msg: format!(
                    "shared dir {} is root:root {mode:04o}: no other user can reach the socket in it: {hint}",
                    dir.display()
                ),
            });
        }
    }
    if let Some(s) = socket {
        if let Ok(m) = std::fs::symlink_metadata(s) {
            let mode = m.mode() & 0o777;
            if m.uid() == 0 && m.gid() == 0 && mode & 0o002 == 0 {
                out.push(Finding {
                    path: s.to_path_buf(),
                    msg: format!(
                        "socket {} is root:root {mode:04o}: connect(2) needs write permission, so only root can \
                         open it; a workload running as another user gets EACCES: {hint}",
                        s.display()
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nqemu:x:107:107::/:/sbin/nologin\n#x:x:1:1::/:/bin/sh\n";
    const GROUPS: &str = "root:x:0:\nkvm:x:107:\nhugetlbfs:x:36:qemu\nbroken:x:notanumber:\n";

    fn accounts() -> Accounts {
        Accounts::from_text(PASSWD, GROUPS)
    }

    fn conf(owner: Option<&str>, group: Option<&str>) -> PermissionsConf {
        PermissionsConf { owner: owner.map(Into::into), group: group.map(Into::into), ..Default::default() }
    }

    #[test]
    fn names_and_numbers_resolve_to_ids() {
        let p = resolve_with(Some(&conf(Some("qemu"), Some("hugetlbfs"))), None, &accounts()).unwrap();
        assert_eq!((p.dir.uid, p.dir.gid, p.dir.mode), (Some(107), Some(36), None));
        assert_eq!((p.socket.uid, p.socket.gid, p.socket.mode), (Some(107), Some(36), Some(0o660)));
        let p = resolve_with(Some(&conf(Some("4242"), Some("0"))), None, &accounts()).unwrap();
        assert_eq!((p.dir.uid, p.dir.gid), (Some(4242), Some(0)));
    }

    #[test]
    fn unknown_names_and_impossible_ids_name_the_key() {
        for (c, key) in [
            (conf(Some("nobody-here"), None), OWNER),
            (conf(None, Some("nogroup-here")), GROUP),
            (conf(None, Some("broken")), GROUP),
            (conf(Some("4294967295"), None), OWNER),
            (conf(Some("99999999999"), None), OWNER),
            (conf(Some("x"), None), OWNER),
        ] {
            let e = resolve_with(Some(&c), None, &accounts()).unwrap_err();
            assert_eq!(e.code, codes::INVALID_NETCONF, "{e}");
            assert!(e.msg.starts_with(key), "{key}: {e}");
        }
        let e = resolve_with(None, Some("qemu-group"), &accounts()).unwrap_err();
        assert!(e.msg.starts_with(VHOST_GROUP) && e.msg.contains("/etc/group"), "{e}");
        let unreadable = Accounts { passwd: Err("gone".into()), group: Err("gone".into()) };
        let e = resolve_with(Some(&conf(Some("qemu"), None)), None, &unreadable).unwrap_err();
        assert!(e.msg.contains("cannot read /etc/passwd") && e.msg.contains("numeric uid"), "{e}");
    }

    #[test]
    fn vhost_group_keeps_its_meaning_and_must_agree() {
        let p = resolve_with(None, Some("kvm"), &accounts()).unwrap();
        assert!(p.dir.is_empty(), "vhost.group never changed the dir: {p:?}");
        assert_eq!((p.socket.gid, p.socket.mode, p.socket.uid), (Some(107), Some(0o660), None));
        let same = resolve_with(Some(&conf(None, Some("107"))), Some("kvm"), &accounts()).unwrap();
        assert_eq!(same.socket.gid, Some(107));
        let e = resolve_with(Some(&conf(None, Some("hugetlbfs"))), Some("kvm"), &accounts()).unwrap_err();
        assert!(e.msg.contains(VHOST_GROUP) && e.msg.contains(GROUP) && e.msg.contains("different"), "{e}");
    }

    #[test]
    fn socket_mode_defaults_only_with_a_group() {
        let owner_only = resolve_with(Some(&conf(Some("107"), None)), None, &accounts()).unwrap();
        assert_eq!(owner_only.socket.mode, None);
        let c = PermissionsConf { group: Some("36".into()), socket_mode: Some(0o600), ..Default::default() };
        assert_eq!(resolve_with(Some(&c), None, &accounts()).unwrap().socket.mode, Some(0o600));
        let c = PermissionsConf { socket_mode: Some(0o4755), ..Default::default() };
        assert!(resolve_with(Some(&c), None, &accounts()).unwrap_err().msg.contains(SOCKET_MODE));
    }

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(parse_mode("770", MAX_DIR_MODE), Some(0o770));
        assert_eq!(parse_mode("0770", MAX_DIR_MODE), Some(0o770));
        assert_eq!(parse_mode("2770", MAX_DIR_MODE), Some(0o2770));
        assert_eq!(parse_mode("2770", MAX_SOCKET_MODE), None);
        for bad in ["", "7", "77", "0o770", "0789", "07777x", "12345", "-770", " 770"] {
            assert_eq!(parse_mode(bad, MAX_DIR_MODE), None, "{bad:?}");
        }
    }

    #[test]
    fn selinux_contexts_are_checked_for_shape() {
        for ok in [
            "system_u:object_r:container_file_t:s0",
            "system_u:object_r:container_file_t:s0:c1,c2",
            "system_u:object_r:svirt_image_t:s0-s0:c0.c1023",
            "user_u:object_r:tmp_t",
        ] {
            assert!(validate_selinux_context(SELINUX_CONTEXT, ok).is_ok(), "{ok}");
        }
        let long = format!("a:b:{}", "c".repeat(MAX_SELINUX_CONTEXT));
        for bad in ["", "container_file_t", "a:b", "a::c", "a:b:c d", "a:b:c\n", "a:b:c;rm", long.as_str()] {
            let e = validate_selinux_context(SELINUX_CONTEXT, bad).unwrap_err();
            assert!(e.msg.starts_with(SELINUX_CONTEXT) && e.msg.contains("system_u"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_base_dir_is_never_a_target() {
        let bases = vec![PathBuf::from("/var/lib/cni/usrspcni"), PathBuf::from("/var/lib/vhost_sockets/")];
        assert!(check_dir_target(Path::new("/var/lib/cni/usrspcni/abc"), &bases).is_ok());
        for bad in ["/var/lib/cni/usrspcni", "/var/lib/cni//usrspcni/.", "/var/lib/vhost_sockets"] {
            let e = check_dir_target(Path::new(bad), &bases).unwrap_err();
            assert!(e.msg.starts_with(KEY) && e.msg.contains("every pod"), "{e}");
        }
    }

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("uscni-perms-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        p
    }

    #[test]
    fn dir_and_socket_get_mode_through_descriptors() {
        let d = tmp("apply");
        let sub = d.join("pod");
        std::fs::create_dir(&sub).unwrap();
        let root = Dir::root(&d).unwrap();
        let pod = root.open_dir(Path::new("pod")).unwrap();
        apply_to_dir(&pod, &Access { mode: Some(0o2750), ..Default::default() }).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o7777, 0o2750);
        let _l = std::os::unix::net::UnixListener::bind(sub.join("s.sock")).unwrap();
        apply_to_socket(&pod, "s.sock", &Access { mode: Some(0o606), ..Default::default() }).unwrap();
        assert_eq!(std::fs::symlink_metadata(sub.join("s.sock")).unwrap().mode() & 0o777, 0o606);
        // A symlink in place of the dir cannot be opened as one, and a symlink in place of the
        // socket is refused; the targets stay untouched.
        let target = d.join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&target, d.join("link")).unwrap();
        assert!(root.open_dir(Path::new("link")).is_err());
        std::fs::write(target.join("f"), "x").unwrap();
        let before = std::fs::metadata(target.join("f")).unwrap().mode();
        std::os::unix::fs::symlink(target.join("f"), sub.join("planted")).unwrap();
        let e = apply_to_socket(&pod, "planted", &Access { mode: Some(0o777), ..Default::default() }).unwrap_err();
        assert!(e.msg.contains("symlink"), "{e}");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(target.join("f")).unwrap().mode(), before);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn diagnose_names_a_root_only_socket_and_dir() {
        let d = tmp("diag");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(d.join("s")).unwrap();
        std::fs::set_permissions(d.join("s"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = std::fs::metadata(&d).unwrap().uid() == 0;
        let f = diagnose(&d, Some(&d.join("s")), true);
        if root {
            assert_eq!(f.len(), 2, "{f:?}");
            assert!(f.iter().all(|x| x.msg.contains("docs/permissions.md")), "{f:?}");
        }
        std::fs::set_permissions(d.join("s"), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(diagnose(&d, Some(&d.join("s")), false).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The entries of `path`'s ACL xattr `name` as (tag, perm, id), `None` when it has none.
    fn read_acl(path: &Path, name: &str) -> Option<Vec<(u16, u16, u32)>> {
        let (p, n) = (CString::new(path.as_os_str().as_bytes()).unwrap(), CString::new(name).unwrap());
        let mut buf = vec![0u8; 1024];
        // SAFETY: NUL-terminated strings; `buf` is writable for its length.
        let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if len < 0 {
            return None;
        }
        buf.truncate(len as usize);
        assert_eq!(buf[..4], 2u32.to_le_bytes(), "version 2");
        let word = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
        Some(
            buf[4..]
                .chunks(8)
                .map(|c| (word(&c[0..2]), word(&c[2..4]), u32::from_le_bytes([c[4], c[5], c[6], c[7]])))
                .collect(),
        )
    }

    const NONE: u32 = u32::MAX;

    #[test]
    fn acls_go_on_the_held_dir_and_keep_its_mode_and_setgid() {
        let d = tmp("acl");
        let sub = d.join("pod");
        std::fs::create_dir(&sub).unwrap();
        let pod = Dir::root(&d).unwrap().open_dir(Path::new("pod")).unwrap();
        let access = Access { mode: Some(0o2770), acl_users: vec![4242, 1000], ..Default::default() };
        // Twice: a re-applied attachment writes the same ACLs again.
        for _ in 0..2 {
            apply_to_dir(&pod, &access).unwrap();
            assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o7777, 0o2770, "mode and setgid kept");
            assert_eq!(
                read_acl(&sub, acl::ACCESS_XATTR).expect("an access ACL"),
                [(0x01, 7, NONE), (0x02, 1, 1000), (0x02, 1, 4242), (0x04, 7, NONE), (0x10, 7, NONE), (0x20, 0, NONE)],
                "user::rwx user:1000:--x user:4242:--x group::rwx mask::rwx other::---"
            );
            assert_eq!(
                read_acl(&sub, acl::DEFAULT_XATTR).expect("a default ACL"),
                [(0x01, 7, NONE), (0x02, 6, 1000), (0x02, 6, 4242), (0x04, 7, NONE), (0x10, 7, NONE), (0x20, 0, NONE)],
                "default: user::rwx user:1000:rw- user:4242:rw- group::rwx mask::rwx other::---"
            );
        }
        // No mode given: the ACL follows the dir's own; the owning group gains nothing.
        let other = d.join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o750)).unwrap();
        let held = Dir::root(&d).unwrap().open_dir(Path::new("other")).unwrap();
        apply_to_dir(&held, &Access { acl_users: vec![4242], ..Default::default() }).unwrap();
        assert_eq!(std::fs::metadata(&other).unwrap().mode() & 0o7777, 0o750);
        let default = read_acl(&other, acl::DEFAULT_XATTR).unwrap();
        assert!(default.contains(&(0x04, 5, NONE)) && default.contains(&(0x10, 7, NONE)), "{default:?}");
        // Nothing asked: nothing written (today's behaviour).
        let plain = d.join("plain");
        std::fs::create_dir(&plain).unwrap();
        let held = Dir::root(&d).unwrap().open_dir(Path::new("plain")).unwrap();
        apply_to_dir(&held, &Access { mode: Some(0o2770), ..Default::default() }).unwrap();
        assert_eq!(read_acl(&plain, acl::DEFAULT_XATTR), None);
        // A socket never takes ACL users.
        let _l = std::os::unix::net::UnixListener::bind(sub.join("s.sock")).unwrap();
        let e = apply_to_socket(&pod, "s.sock", &Access { acl_users: vec![4242], ..Default::default() }).unwrap_err();
        assert_eq!(e.code, codes::INTERNAL, "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// ramfs stores no ACLs. It is mounted in a private mount namespace: the test runs itself
    /// again under `unshare --mount` with the mount point in `INSIDE`.
    #[test]
    fn acls_on_a_filesystem_without_them_name_the_setting_and_the_filesystem() {
        const INSIDE: &str = "USERSPACE_CNI_TEST_RAMFS_DIR";
        const NAME: &str = "perms::tests::acls_on_a_filesystem_without_them_name_the_setting_and_the_filesystem";
        if let Some(dir) = std::env::var_os(INSIDE) {
            let dir = PathBuf::from(dir);
            let (what, target, fstype) = (c"uscni-ramfs", CString::new(dir.as_os_str().as_bytes()).unwrap(), c"ramfs");
            // SAFETY: NUL-terminated strings; no data argument.
            let rc = unsafe { libc::mount(what.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
            assert_eq!(rc, 0, "mount ramfs: {}", io::Error::last_os_error());
            std::fs::create_dir(dir.join("pod")).unwrap();
            let pod = Dir::root(&dir).unwrap().open_dir(Path::new("pod")).unwrap();
            let access = Access { mode: Some(0o2770), acl_users: vec![4242], ..Default::default() };
            let e = apply_to_dir(&pod, &access).unwrap_err();
            assert_eq!(e.code, codes::UNSUPPORTED_FIELD, "{e}");
            for part in [ACL_USERS, "[4242]", "ramfs", &dir.join("pod").display().to_string(), "tmpfs, ext4"] {
                assert!(e.msg.contains(part), "names {part}: {e}");
            }
            return;
        }
        // SAFETY: no arguments, no side effects.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || std::process::Command::new("unshare").arg("--version").output().is_err() {
            eprintln!("SKIPPED: mounting a ramfs needs root and unshare (util-linux)");
            return;
        }
        let d = tmp("ramfs");
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(INSIDE, &d)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
