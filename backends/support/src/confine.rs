//! Confined filesystem access (docs/security.md): every path that a network config, a pod or a
//! record names is split at a trusted root (an operator's setting) and resolved below it without
//! following a symlink, and every later call acts on a held descriptor, never on the path string.
//! Never follows a symlink below a root; never echoes a file's contents.
//!
//! Resolution below a root uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)` (Linux 5.6+). Where the kernel lacks it or a seccomp filter refuses
//! it, a userspace walk takes over: component by component with `O_PATH | O_NOFOLLOW`, each step
//! relative to the previous descriptor and checked with `fstat`. `USERSPACE_CNI_RESOLVER=walk`
//! forces the walk (the test suite runs both).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that selects the resolver: `openat2`, `walk`, or unset (automatic).
pub const RESOLVER_ENV: &str = "USERSPACE_CNI_RESOLVER";

/// How components below a root are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    Openat2,
    Walk,
}

const UNKNOWN: u8 = 0;
const OPENAT2: u8 = 1;
const WALK: u8 = 2;
static RESOLVER: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The resolver in use (the environment's choice, else openat2 until the kernel refuses it).
pub fn resolver() -> Resolver {
    match RESOLVER.load(Ordering::Relaxed) {
        OPENAT2 => Resolver::Openat2,
        WALK => Resolver::Walk,
        _ => {
            let chosen = match std::env::var(RESOLVER_ENV).as_deref() {
                Ok("walk") => WALK,
                _ => OPENAT2,
            };
            RESOLVER.store(chosen, Ordering::Relaxed);
            if chosen == WALK {
                Resolver::Walk
            } else {
                Resolver::Openat2
            }
        }
    }
}

/// Force a resolver for this process (tests).
pub fn set_resolver(r: Resolver) {
    RESOLVER.store(if r == Resolver::Walk { WALK } else { OPENAT2 }, Ordering::Relaxed);
}

/// The most components a relative path may have (a path longer than this is not one we made).
const MAX_DEPTH: usize = 64;

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `rel` as plain file-name components: no root, no `.`-only, no `..`, not too deep. Anything
/// else is `EINVAL` (the callers validated their paths; this is the last line).
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
    if out.len() > MAX_DEPTH {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(out)
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: `st` is plain data written by the kernel; `fd` is a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn is_type(st: &libc::stat, t: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == t
}

/// `openat(dirfd, name, flags)` for one component, the result owned.
fn openat(dirfd: RawFd, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: a valid dir fd and a NUL-terminated name; the new fd is owned at once.
    let fd = check(unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat2 with the no-symlink, beneath rules. `Ok(None)` when the kernel or a filter refuses the
/// call itself (the caller switches to the walk).
fn openat2(dirfd: RawFd, rel: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<Option<OwnedFd>> {
    let c = cstr(rel.as_os_str())?;
    // SAFETY: open_how is plain data; unused fields stay zero as the kernel requires.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 { mode as u64 } else { 0 };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    for _ in 0..8 {
        // SAFETY: valid pointers for the duration of the call and the struct's true size.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            // SAFETY: a fresh descriptor nobody else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as RawFd) }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // A concurrent rename somewhere on the system: the kernel asks for a retry.
            Some(libc::EAGAIN) => continue,
            // No openat2 (before 5.6), or a seccomp filter that refuses it.
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::E2BIG) => return Ok(None),
            _ => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// The userspace walk: every component but the last opened `O_PATH | O_NOFOLLOW` relative to the
/// previous one and checked to be a directory; the last opened with `flags | O_NOFOLLOW`.
fn walk(dirfd: RawFd, parts: &[&OsStr], flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let Some((last, dirs)) = parts.split_last() else {
        // The root itself: re-open it with the wanted flags through its descriptor.
        return openat(dirfd, OsStr::new("."), flags, mode);
    };
    let mut held: Option<OwnedFd> = None;
    for d in dirs {
        let cur = held.as_ref().map_or(dirfd, |f| f.as_raw_fd());
        let next = openat(cur, d, libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY, 0)?;
        // O_PATH|O_NOFOLLOW|O_DIRECTORY on a symlink is ENOTDIR already; fstat says so again.
        if !is_type(&fstat(next.as_raw_fd())?, libc::S_IFDIR) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        held = Some(next);
    }
    let cur = held.as_ref().map_or(dirfd, |f| f.as_raw_fd());
    let fd = openat(cur, last, flags | libc::O_NOFOLLOW, mode)?;
    if flags & libc::O_PATH != 0 && is_type(&fstat(fd.as_raw_fd())?, libc::S_IFLNK) {
        // O_PATH|O_NOFOLLOW opens a symlink itself instead of failing.
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    Ok(fd)
}

/// Open `rel` below `dirfd` without following any symlink and without leaving `dirfd`.
fn open_beneath(dirfd: RawFd, rel: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    open_beneath_with(resolver(), dirfd, rel, flags, mode)
}

fn open_beneath_with(
    how: Resolver,
    dirfd: RawFd,
    rel: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let parts = components(rel)?;
    if parts.is_empty() {
        return walk(dirfd, &parts, flags, mode);
    }
    if how == Resolver::Openat2 {
        let joined: PathBuf = parts.iter().collect();
        match openat2(dirfd, &joined, flags, mode)? {
            Some(fd) => return Ok(fd),
            None => set_resolver(Resolver::Walk),
        }
    }
    walk(dirfd, &parts, flags, mode)
}

/// What one directory entry is, from `fstatat(AT_SYMLINK_NOFOLLOW)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Socket,
    Symlink,
    Fifo,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "regular file",
            Kind::Socket => "socket",
            Kind::Symlink => "symlink",
            Kind::Fifo => "FIFO",
            Kind::Other => "device or other special file",
        }
    }
}

impl Entry {
    fn of(st: &libc::stat) -> Entry {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            _ => Kind::Other,
        };
        Entry {
            kind,
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            mode: st.st_mode & 0o7777,
            nlink: st.st_nlink,
            size: st.st_size as u64,
        }
    }

    /// The same inode as `other` (a swapped entry is another inode).
    pub fn same_inode(&self, other: &Entry) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// What `Dir::remove_if` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    Absent,
    /// Something else stands there (its kind): left in place.
    Left(Kind),
}

/// Why a bounded read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("is a {} (a regular file is required)", .0.as_str())]
    NotRegular(Kind),
    #[error("is larger than {0} bytes")]
    TooLarge(u64),
}

/// A directory held open: every call below is relative to it. `path` is for messages only.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// An operator's root (a setting): opened once, symlinks in it followed (`/var/run` is
    /// `/run` on most hosts). Only for paths the operator wrote, never for a config's path.
    pub fn root(path: &Path) -> io::Result<Dir> {
        let c = cstr(path.as_os_str())?;
        // SAFETY: a NUL-terminated path; the fd is owned at once.
        let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC) })?;
        Ok(Dir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_path_buf() })
    }

    /// An operator's root, created (with its missing parents) when absent. Directories made
    /// here get `mode` explicitly, whatever the umask.
    pub fn root_or_create(path: &Path, mode: u32) -> io::Result<Dir> {
        match Dir::root(path) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        let mut missing = Vec::new();
        let mut cur = path;
        while !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        for dir in missing.iter().rev() {
            match std::fs::create_dir(dir) {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Dir::root(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `/proc/self/fd/N`: a path that reaches exactly this directory (for mount(2)).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    pub fn stat(&self) -> io::Result<Entry> {
        Ok(Entry::of(&fstat(self.fd.as_raw_fd())?))
    }

    /// The directory `rel` below this one (no symlink in any component). `rel` empty: a new
    /// handle on this directory.
    pub fn open_dir(&self, rel: &Path) -> io::Result<Dir> {
        let fd = open_beneath(self.raw_fd(), rel, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
        Ok(Dir { fd, path: self.path.join(rel) })
    }

    /// Like `open_dir`, creating each missing component with `mode` (explicit, not the umask's).
    /// Existing components must be directories and are left as they are.
    pub fn create_dirs(&self, rel: &Path, mode: u32) -> io::Result<Dir> {
        let mut cur = self.open_dir(Path::new(""))?;
        for part in components(rel)? {
            cur.mkdir(part, mode)?;
            cur = cur.open_dir(Path::new(part))?;
        }
        Ok(cur)
    }

    /// Make the directory `name` here with `mode` (chmod-ed through its descriptor, so the umask
    /// does not decide). `Ok(true)` when this call created it, `Ok(false)` when a directory was
    /// there; anything else there is `EEXIST`/`ENOTDIR`.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<bool> {
        let c = cstr(name)?;
        // SAFETY: valid fd and NUL-terminated name.
        let rc = unsafe { libc::mkdirat(self.raw_fd(), c.as_ptr(), 0o700) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
            return match self.entry(name)? {
                Some(en) if en.kind == Kind::Dir => Ok(false),
                _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            };
        }
        // Created 0700 and opened without following: nobody else could have swapped it in
        // between, then given its mode.
        let d = self.open_dir(Path::new(name))?;
        let f = File::from(d.fd);
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(true)
    }

    /// The entry `name` here, not following a symlink; `None` when absent.
    pub fn entry(&self, name: &OsStr) -> io::Result<Option<Entry>> {
        let c = cstr(name)?;
        // SAFETY: plain data written by the kernel; valid fd and name.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstatat(self.raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENOENT) { Ok(None) } else { Err(e) };
        }
        Ok(Some(Entry::of(&st)))
    }

    /// Remove the entry `name` (never a directory; a symlink itself, not its target).
    /// `Ok(false)` when it was already gone.
    pub fn unlink(&self, name: &OsStr) -> io::Result<bool> {
        let c = cstr(name)?;
        // SAFETY: valid fd and name.
        match check(unsafe { libc::unlinkat(self.raw_fd(), c.as_ptr(), 0) }) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove `name` only if it is still the inode `expect` names: a pod that swapped the entry
    /// keeps its own. `Ok(false)` when gone or swapped.
    pub fn unlink_if(&self, name: &OsStr, expect: impl Fn(&Entry) -> bool) -> io::Result<bool> {
        match self.entry(name)? {
            Some(e) if expect(&e) && e.kind != Kind::Dir => self.unlink(name),
            _ => Ok(false),
        }
    }

    /// Remove `name` only if it is a `kind` (a socket we made, our regular file): anything else
    /// under that name is a pod's and is left, reported as `Left(kind)`. Never follows a link.
    pub fn remove_if(&self, name: &OsStr, kind: Kind) -> io::Result<Removal> {
        match self.entry(name)? {
            None => Ok(Removal::Absent),
            Some(e) if e.kind == kind && kind != Kind::Dir => {
                Ok(if self.unlink(name)? { Removal::Removed } else { Removal::Absent })
            }
            Some(e) => Ok(Removal::Left(e.kind)),
        }
    }

    /// Remove the empty directory `name`. `Ok(false)` when it is gone or not empty.
    pub fn rmdir(&self, name: &OsStr) -> io::Result<bool> {
        let c = cstr(name)?;
        // SAFETY: valid fd and name.
        match check(unsafe { libc::unlinkat(self.raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) }) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Move `from`'s entry `from_name` to `to_name` here, replacing what has that name.
    pub fn rename_from(&self, from: &Dir, from_name: &OsStr, to_name: &OsStr) -> io::Result<()> {
        let (a, b) = (cstr(from_name)?, cstr(to_name)?);
        // SAFETY: valid fds and names.
        check(unsafe { libc::renameat(from.raw_fd(), a.as_ptr(), self.raw_fd(), b.as_ptr()) })?;
        Ok(())
    }

    /// Give `name` the name `to` too, failing with `EEXIST` rather than replacing anything.
    pub fn link(&self, name: &OsStr, to: &OsStr) -> io::Result<()> {
        let (a, b) = (cstr(name)?, cstr(to)?);
        // SAFETY: valid fds and names; flags 0 never follows a symlink at `name`.
        check(unsafe { libc::linkat(self.raw_fd(), a.as_ptr(), self.raw_fd(), b.as_ptr(), 0) })?;
        Ok(())
    }

    /// Create the regular file `name` exclusively (a link planted there fails the call), with
    /// `mode` set through its descriptor, and write `bytes`.
    pub fn write_new(&self, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
        let fd = openat(self.raw_fd(), name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, 0o600)?;
        let mut f = File::from(fd);
        let written = f.set_permissions(std::fs::Permissions::from_mode(mode)).and_then(|()| f.write_all(bytes));
        if let Err(e) = written {
            let _ = self.unlink(name);
            return Err(e);
        }
        Ok(())
    }

    /// Open the file `rel` below this directory with `flags` (no symlink anywhere; `O_NONBLOCK`
    /// always, so a FIFO never blocks).
    pub fn open_file(&self, rel: &Path, flags: libc::c_int, mode: u32) -> io::Result<File> {
        let fd = open_beneath(self.raw_fd(), rel, flags | libc::O_NONBLOCK | libc::O_NOCTTY, mode)?;
        Ok(File::from(fd))
    }

    /// Read the regular file `rel` below this directory, at most `cap` bytes. `Ok(None)` when it
    /// does not exist. A FIFO, device, directory or symlink is refused before any read.
    pub fn read_file(&self, rel: &Path, cap: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let f = match self.open_file(rel, libc::O_RDONLY, 0) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        read_bounded(f, cap).map(Some)
    }
}

/// Read an open file that must be regular, at most `cap` bytes.
pub fn read_bounded(f: File, cap: u64) -> Result<Vec<u8>, ReadError> {
    let st = Entry::of(&fstat(f.as_raw_fd())?);
    if st.kind != Kind::File {
        return Err(ReadError::NotRegular(st.kind));
    }
    if st.size > cap {
        return Err(ReadError::TooLarge(cap));
    }
    let mut bytes = Vec::new();
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// A config path split at the trusted root it lies under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    /// The root as the operator configured it.
    pub root: PathBuf,
    /// The rest, plain components only.
    pub rel: PathBuf,
}

impl Confined {
    /// The root opened (symlinks in the operator's path followed once).
    pub fn open_root(&self) -> io::Result<Dir> {
        Dir::root(&self.root)
    }

    /// The directory this path names, below its root, no symlinks.
    pub fn open_dir(&self) -> io::Result<Dir> {
        self.open_root()?.open_dir(&self.rel)
    }

    /// The parent directory (held) and the file name, for acting on the last component.
    pub fn open_parent(&self) -> io::Result<(Dir, &OsStr)> {
        let name = self.rel.file_name().ok_or_else(|| io::Error::from_raw_os_error(libc::EISDIR))?;
        let parent = self.rel.parent().unwrap_or(Path::new(""));
        Ok((self.open_root()?.open_dir(parent)?, name))
    }

    pub fn full(&self) -> PathBuf {
        self.root.join(&self.rel)
    }
}

/// Why a config path is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfineError {
    #[error("is empty")]
    Empty,
    #[error("is not an absolute path")]
    Relative,
    #[error("contains a NUL byte")]
    Nul,
    #[error("contains a '..' component")]
    DotDot,
    #[error("is not under an allowed root")]
    Outside,
}

/// The lexical form of an absolute path: `.` and repeated `/` removed.
fn normal(p: &Path) -> PathBuf {
    p.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// Split `path` at the longest root of `roots` that contains it. Roots are compared by their
/// text and by their resolved form (an operator's `/run/x` and a runtime's `/var/run/x` are one
/// place): resolving a prefix of the config's path only decides membership, and what is opened
/// afterwards is the operator's root and the plain components after it.
pub fn confine(path: &Path, roots: &[PathBuf]) -> Result<Confined, ConfineError> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(ConfineError::Empty);
    }
    if bytes.contains(&0) {
        return Err(ConfineError::Nul);
    }
    if !path.is_absolute() {
        return Err(ConfineError::Relative);
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ConfineError::DotDot);
    }
    let want = normal(path);
    let trusted = |r: &&PathBuf| r.is_absolute() && !r.components().any(|c| matches!(c, Component::ParentDir));
    // The longest root wins (a root inside another is the more specific one).
    let consider = |best: &mut Option<(usize, Confined)>, root: &PathBuf, rel: PathBuf, depth: usize| {
        if best.as_ref().is_none_or(|(d, _)| depth > *d) {
            *best = Some((depth, Confined { root: root.clone(), rel }));
        }
    };
    let mut best: Option<(usize, Confined)> = None;
    for root in roots.iter().filter(trusted) {
        let r = normal(root);
        if let Ok(rel) = want.strip_prefix(&r) {
            consider(&mut best, root, rel.to_path_buf(), r.components().count());
        }
    }
    if let Some((_, c)) = best {
        return Ok(c);
    }
    // No root matches by its text: try the resolved spelling, each prefix of the path whose
    // resolution is a root's (only now: this costs a realpath per prefix, and the plugin's own
    // paths always match by text).
    for root in roots.iter().filter(trusted) {
        let r = normal(root);
        let Ok(canon) = std::fs::canonicalize(&r) else { continue };
        for prefix in want.ancestors().skip(1) {
            if prefix.as_os_str().len() <= 1 {
                break;
            }
            if std::fs::canonicalize(prefix).is_ok_and(|c| c == canon) {
                if let Ok(rel) = want.strip_prefix(prefix) {
                    consider(&mut best, root, rel.to_path_buf(), r.components().count());
                }
                break;
            }
        }
    }
    best.map(|(_, c)| c).ok_or(ConfineError::Outside)
}

/// A directory a record or plan names for a pod's sockets (its shared dir, a KubeVirt short dir,
/// a device plugin's dir), opened below the one of the node's socket-dir roots it lies under
/// without following a symlink. `EXDEV` when it lies under none.
pub fn socket_dir(settings: &userspace_cni_api::NodeSettings, path: &Path) -> io::Result<Dir> {
    let c = confine(path, &settings.socket_dir_roots()).map_err(|_| io::Error::from_raw_os_error(libc::EXDEV))?;
    c.open_dir()
}

/// Check an operator-chosen file (an allow-listed kubeconfig) and each directory above it: all
/// owned by root and not writable by group or others, then read it bounded. `Ok(None)` when it
/// does not exist. The directories are the operator's path, resolved once (`/var/run` is `/run`);
/// the file itself must not be a symlink (a link there would make the allow-list name whatever
/// it points at). A group/other-writable directory is accepted only with the sticky bit (`/tmp`):
/// there nobody but an entry's owner can replace it, and the next component must be root's.
pub fn read_root_owned(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, RootOwnedError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(RootOwnedError::Io(io::Error::from_raw_os_error(libc::EISDIR)));
    };
    let canon = match std::fs::canonicalize(parent) {
        Ok(c) => c.join(name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RootOwnedError::Io(e)),
    };
    let parts = components(canon.strip_prefix("/").unwrap_or(&canon))?;
    let Some((last, dirs)) = parts.split_last() else {
        return Err(RootOwnedError::Io(io::Error::from_raw_os_error(libc::EISDIR)));
    };
    let root = Dir::root(Path::new("/"))?;
    let mut cur = root.open_dir(Path::new(""))?;
    let mut at = PathBuf::from("/");
    let trusted = |e: &Entry, at: &Path| -> Result<(), RootOwnedError> {
        if e.uid != 0 {
            return Err(RootOwnedError::NotRootOwned { path: at.to_path_buf(), uid: e.uid });
        }
        let sticky_dir = e.kind == Kind::Dir && e.mode & libc::S_ISVTX != 0;
        if e.mode & 0o022 != 0 && !sticky_dir {
            return Err(RootOwnedError::Writable { path: at.to_path_buf(), mode: e.mode });
        }
        Ok(())
    };
    trusted(&cur.stat()?, &at)?;
    for d in dirs {
        at.push(d);
        cur = walk_one_dir(&cur, d)?;
        trusted(&cur.stat()?, &at)?;
    }
    at.push(last);
    let f = match openat(cur.raw_fd(), last, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY, 0) {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(RootOwnedError::Io(e)),
    };
    let st = Entry::of(&fstat(f.as_raw_fd())?);
    if st.kind == Kind::File {
        trusted(&st, &at)?;
    }
    Ok(Some(read_bounded(f, cap)?))
}

fn walk_one_dir(cur: &Dir, name: &OsStr) -> io::Result<Dir> {
    let fd = openat(cur.raw_fd(), name, libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
    Ok(Dir { fd, path: cur.path.join(name) })
}

#[derive(Debug, thiserror::Error)]
pub enum RootOwnedError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{} is owned by uid {uid}, not root", path.display())]
    NotRootOwned { path: PathBuf, uid: u32 },
    #[error("{} is writable by group or others (mode {mode:04o})", path.display())]
    Writable { path: PathBuf, mode: u32 },
}

/// A short, human reason for an I/O error met while resolving (ELOOP and ENOTDIR mean a symlink
/// or a non-directory where a directory was expected: the usual sign of a planted link).
pub fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "a symlink stands in the path (symlinks are not followed below a root)".into(),
        Some(libc::ENOTDIR) => "a component is not a directory (or is a symlink)".into(),
        Some(libc::EXDEV) => "the path leaves its root".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
