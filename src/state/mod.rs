//! The state directory: attachment records and locks. Owns the on-disk layout; never talks to a
//! dataplane.
//!
//! Layout of `<state_dir>` (mode 0700, files 0600):
//! - `<cid>_<ifname>.json`: the attachment record. Created exclusively (`O_EXCL`) by ADD before its
//!   first side effect, rewritten once when ADD completes, removed by DEL/GC after every object it
//!   names is gone. Written only while holding the attachment lock.
//! - `.<cid>_<ifname>.json.tmp`: the deterministic temp name of a rewrite (DEL/GC remove leftovers).
//! - `<cid>_<ifname>.lock`: the per-attachment lock (flock), taken by ADD, DEL, CHECK, GC and the
//!   reconciler; removed with the record.
//! - `node.lock`: the node lock around shared dataplane objects (bridge ensure → port attach).
//! - `testkit/`: the recording fake backend's dataplane (test builds only).
//! - `dra/`: reserved for the DRA front-end's records (keyed by claim, not by container id and
//!   ifname); `list_records` never reads below the top level, so the two never mix.
//!
//! `<cid>_<ifname>` is ambiguous (`x` + `a_b` and `x_a` + `b`): every read checks the id inside
//! (`Mismatch`, code 3), and ADD refuses a name another attachment holds (code 101).

mod lock;
mod sweep;

pub use lock::LockGuard;

use crate::plan::Record;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use userspace_cni_api::{codes, AttachmentId, CniError};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use state dir {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("state dir {path} is mode {mode:o}; it must not be accessible by group or others (0700)")]
    DirMode { path: PathBuf, mode: u32 },
    #[error("attachment {cid}/{ifname} already exists (record {path}); DEL it first, or use another CNI_IFNAME")]
    Exists { cid: String, ifname: String, path: PathBuf },
    #[error("cannot write record {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read record {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("record {path} is not a valid attachment record: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Empty or not JSON at all: what a write that a power cut interrupted leaves (records are
    /// not fsynced on the hot path). Handled as absent: the dataplane's ownership tags say what
    /// the attachment had. Valid JSON that is not a record of this binary is `Corrupt`, left alone.
    #[error("record {path} is torn ({reason}): a write was cut short, e.g. by a power loss")]
    Torn { path: PathBuf, reason: String },
    #[error(
        "record {path} belongs to attachment {found_cid}/{found_ifname}, not {cid}/{ifname} (their file names \
         coincide); use another CNI_IFNAME"
    )]
    Mismatch { path: PathBuf, cid: String, ifname: String, found_cid: String, found_ifname: String },
    #[error("timed out after {waited_ms} ms waiting for lock {path} (another ADD/DEL/GC holds it)")]
    LockTimeout { path: PathBuf, waited_ms: u64 },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
}

impl From<StateError> for CniError {
    fn from(e: StateError) -> Self {
        let code = match &e {
            StateError::Exists { .. } => codes::ATTACHMENT_EXISTS,
            StateError::LockTimeout { .. } => codes::TRY_AGAIN_LATER,
            StateError::Corrupt { .. } | StateError::Torn { .. } => codes::DECODE_FAILURE,
            StateError::Mismatch { .. } => codes::UNKNOWN_CONTAINER,
            _ => codes::IO_FAILURE,
        };
        CniError::new(code, e.to_string())
    }
}

/// Handle on the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A handle that has not touched the disk (for read-only use: DEL without a record must not
    /// create the state dir).
    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// Create the directory (0700) if needed and check that nobody else can read it.
    pub fn ensure(&self) -> Result<(), StateError> {
        let dir_err = |source| StateError::Dir { path: self.root.clone(), source };
        match DirBuilder::new().recursive(true).mode(0o700).create(&self.root) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(dir_err(e)),
        }
        let meta = fs::metadata(&self.root).map_err(dir_err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StateError::DirMode { path: self.root.clone(), mode });
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether every file name this layout derives from `id` fits NAME_MAX (the longest is the
    /// temp record `.<cid>_<ifname>.json.tmp`): checked before any side effect, so an over-long
    /// id is refused up front instead of failing between two steps or in a rollback.
    pub fn check_names_fit(id: &AttachmentId) -> Result<(), String> {
        let longest = format!(".{}.json.tmp", id.file_stem()).len();
        if longest > userspace_cni_support::names::MAX_FILE_NAME {
            return Err(format!(
                "CNI_CONTAINERID {:?} is {} bytes long; with CNI_IFNAME the plugin's state file names would be \
                 {longest} bytes, over the {} a file name may have",
                id.container_id,
                id.container_id.len(),
                userspace_cni_support::names::MAX_FILE_NAME
            ));
        }
        Ok(())
    }

    pub fn record_path(&self, id: &AttachmentId) -> PathBuf {
        self.root.join(format!("{}.json", id.file_stem()))
    }

    fn temp_path(&self, id: &AttachmentId) -> PathBuf {
        self.root.join(format!(".{}.json.tmp", id.file_stem()))
    }

    /// Whether nobody holds `id`'s lock, without creating the lock file (a missing one is free).
    pub fn lock_is_free(&self, id: &AttachmentId) -> bool {
        lock::is_free(&self.lock_path(id))
    }

    /// Lock and temp files that belong to no record (a process killed between its lock and its
    /// record): removed under their lock, or listed with `dry_run`.
    pub async fn sweep_stray_files(&self, dry_run: bool) -> (Vec<PathBuf>, userspace_cni_api::ErrorList) {
        sweep::sweep_state_files(self, dry_run).await
    }

    fn lock_path(&self, id: &AttachmentId) -> PathBuf {
        self.root.join(format!("{}.lock", id.file_stem()))
    }

    /// Take the per-attachment lock (bounded wait).
    pub async fn lock_attachment(&self, id: &AttachmentId, timeout: Duration) -> Result<LockGuard, StateError> {
        lock::acquire(&self.lock_path(id), timeout, true).await
    }

    /// Take the node lock (bounded wait).
    pub async fn lock_node(&self, timeout: Duration) -> Result<LockGuard, StateError> {
        lock::acquire(&self.root.join("node.lock"), timeout, false).await
    }

    /// ADD's first action: create the record exclusively. An existing record is code 100 and
    /// nothing else happens (a second ADD must never roll back the first one's objects).
    ///
    /// Crash-atomic: the record appears whole or not at all. A SIGKILL between an `O_EXCL` create
    /// and its write would leave an empty record that no DEL can parse (code 6 forever) and that
    /// blocks every later ADD (code 100); so the bytes go to an unnamed `O_TMPFILE` first, are
    /// fsynced, and `linkat` gives it its name, failing with `EEXIST` exactly as `O_EXCL` would.
    /// A kill before the link leaves nothing at all. Filesystems without `O_TMPFILE` get the
    /// plain `O_EXCL` write.
    ///
    /// Not fsynced (issue 15: 0.5-11 ms each on a busy node), except when the attachment
    /// delegates IPAM: a SIGKILL loses nothing that is in the page cache, but a power loss can
    /// lose an unsynced record, and then its IP lease (which host-local keeps across reboots)
    /// would leak for good; the dataplane objects of a lost record are found by their ownership
    /// tags instead (the reconciler's sweep).
    pub fn create_record(&self, rec: &Record) -> Result<(), StateError> {
        let durable = rec.plan.ipam.is_some();
        let path = self.record_path(&rec.attachment.id);
        let bytes = rec.to_bytes().map_err(|e| StateError::Write { path: path.clone(), source: e })?;
        let exists = || StateError::Exists {
            cid: rec.attachment.id.container_id.clone(),
            ifname: rec.attachment.id.ifname.clone(),
            path: path.clone(),
        };
        let write_err = |source| StateError::Write { path: path.clone(), source };
        match self.link_new_file(&path, &bytes, durable) {
            Ok(true) => {}
            Ok(false) => {
                let mut f = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists()),
                    Err(e) => return Err(write_err(e)),
                };
                f.write_all(&bytes).map_err(write_err)?;
                if durable {
                    sync_file(&f).map_err(write_err)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists()),
            Err(e) => return Err(write_err(e)),
        }
        if durable {
            sync_dir(&self.root).map_err(write_err)?;
        }
        Ok(())
    }

    /// Write `bytes` to an unnamed file in the state dir and link it at `path`. `Ok(false)` when
    /// the filesystem (or a missing /proc) does not allow it, before anything was named.
    fn link_new_file(&self, path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<bool> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::io::AsRawFd;
        let mut f = match OpenOptions::new().write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(&self.root) {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        f.write_all(bytes)?;
        if durable {
            sync_file(&f)?;
        }
        // Through /proc/self/fd with AT_SYMLINK_FOLLOW: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
        let src = std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).map_err(std::io::Error::other)?;
        let dst = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: both are valid NUL-terminated paths; the fd stays open until after the call.
        let rc = unsafe {
            libc::linkat(libc::AT_FDCWD, src.as_ptr(), libc::AT_FDCWD, dst.as_ptr(), libc::AT_SYMLINK_FOLLOW)
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // No /proc in this mount namespace: fall back (the unnamed file vanishes with `f`).
            if e.raw_os_error() == Some(libc::ENOENT) && !Path::new("/proc/self/fd").exists() {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Rewrite an existing record atomically against a SIGKILL: deterministic temp name, then
    /// rename. No fsync (issue 15): a power cut may bring back the previous version (it still
    /// names everything, and every undo is idempotent) or leave the file torn, which readers
    /// detect (`StateError::Torn`) and treat as absent; the reconciler then works from the
    /// dataplane's ownership tags. A record with delegated IPAM is the exception: its file is
    /// fsynced before the rename, so it is never torn and its lease is always released.
    pub fn write_record(&self, rec: &Record) -> Result<(), StateError> {
        let path = self.record_path(&rec.attachment.id);
        let tmp = self.temp_path(&rec.attachment.id);
        let write_err = |source| StateError::Write { path: path.clone(), source };
        let bytes = rec.to_bytes().map_err(write_err)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(write_err)?;
        f.write_all(&bytes).map_err(write_err)?;
        // With delegated IPAM a torn record would leak the lease for good (see create_record):
        // the new version's bytes reach the disk before its name does.
        if rec.plan.ipam.is_some() {
            sync_file(&f).map_err(write_err)?;
        }
        drop(f);
        replace(&tmp, &path).map_err(write_err)
    }

    /// The record of an attachment, if there is one. `<cid>_<ifname>` is ambiguous (both may
    /// contain `_`), so the id inside must be the one asked for: another's is `Mismatch` (code 3).
    pub fn read_record(&self, id: &AttachmentId) -> Result<Option<Record>, StateError> {
        let path = self.record_path(id);
        match read_record_file(&path)? {
            Some(r) if r.attachment.id != *id => Err(StateError::Mismatch {
                path,
                cid: id.container_id.clone(),
                ifname: id.ifname.clone(),
                found_cid: r.attachment.id.container_id.clone(),
                found_ifname: r.attachment.id.ifname.clone(),
            }),
            other => Ok(other),
        }
    }

    /// Remove a torn record file (`StateError::Torn`), whatever attachment it was: it names
    /// nothing any more. Call while holding the attachment's lock when the id is known.
    pub fn remove_torn(&self, path: &Path) -> Result<(), StateError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Write { path: path.to_path_buf(), source: e }),
        }
    }

    /// Remove the record and its leftover temp file; "not found" is success. Call while holding
    /// the attachment lock. No directory fsync: a removal lost to a power cut brings back a
    /// record whose objects are gone, and the next DEL or GC finds nothing to undo and removes it.
    pub fn remove_record(&self, id: &AttachmentId) -> Result<(), StateError> {
        for path in [self.temp_path(id), self.record_path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StateError::Write { path, source: e }),
            }
        }
        Ok(())
    }

    /// Every record in the state dir; unreadable ones are returned as errors, not skipped.
    pub fn list_records(&self) -> Result<Vec<Result<Record, StateError>>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::Dir { path: self.root.clone(), source: e }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StateError::Dir { path: self.root.clone(), source: e })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match read_record_file(&entry.path()) {
                Ok(Some(r)) => out.push(Ok(r)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }
}

/// A record holds at most the 1 MiB stdin config plus its plan; anything larger is not one.
pub const MAX_RECORD: u64 = 8 << 20;

/// Put `tmp` in `path`'s place atomically. An exchange, then the unlink of the old version now
/// at `tmp`: a plain rename over an existing file makes ext4 (`auto_da_alloc`) start writing the
/// new file's data back inside the rename, the cost of a partial fsync on every ADD and DEL,
/// which this design does without (issue 15). Where the filesystem cannot exchange, or `path`
/// does not exist yet, a plain rename.
fn replace(tmp: &Path, path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(tmp)?, c(path)?);
    // SAFETY: renameat2(2) with two NUL-terminated paths that outlive the call; it touches no
    // other memory. A raw syscall, so glibc and musl builds behave alike.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        // The new version is in place; an old one left at `tmp` is overwritten by the next write
        // and removed with the record, so failing the verb over it would be wrong.
        if let Err(e) = fs::remove_file(tmp) {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove a record's previous version");
            }
        }
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => fs::rename(tmp, path),
        _ => Err(e),
    }
}

fn read_record_file(path: &Path) -> Result<Option<Record>, StateError> {
    let open = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path);
    let f = match open {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Read { path: path.to_path_buf(), source: e }),
    };
    let bytes = userspace_cni_support::confine::read_bounded(f, MAX_RECORD).map_err(|e| match e {
        userspace_cni_support::confine::ReadError::Io(source) => StateError::Read { path: path.to_path_buf(), source },
        other => StateError::Corrupt { path: path.to_path_buf(), reason: other.to_string() },
    })?;
    let torn = |reason: String| StateError::Torn { path: path.to_path_buf(), reason };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(torn("it is empty".into()));
    }
    // A prefix of a JSON object, or one with a zero-filled block, is never a JSON document; this
    // detects a torn write as well as a length and checksum would, without a format change.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        return Err(torn(format!("{} bytes, not a JSON document: {e}", bytes.len())));
    }
    Record::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })
}

/// Test builds only (feature `failpoints`): `USERSPACE_CNI_TEST_NO_FSYNC=1` skips every fsync of
/// the state dir, so a benchmark can attribute latency to them (issue 15). Never in a release.
#[cfg(feature = "failpoints")]
fn fsync_disabled() -> bool {
    std::env::var_os("USERSPACE_CNI_TEST_NO_FSYNC").is_some_and(|v| v == "1")
}

#[cfg(not(feature = "failpoints"))]
fn fsync_disabled() -> bool {
    false
}

/// fsync a record file (see `fsync_disabled`).
fn sync_file(f: &File) -> std::io::Result<()> {
    if fsync_disabled() {
        return Ok(());
    }
    f.sync_all()
}

/// fsync a directory so a create/rename/unlink in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if fsync_disabled() {
        return Ok(());
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a power loss leaves of an unsynced write is torn; valid JSON that is not a record of
    /// this binary (a newer format) is corrupt and left alone.
    #[test]
    fn torn_records_are_told_from_corrupt_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x_net1.json");
        let full = br#"{"format": 1, "complete": true, "created_unix_ms": 1}"#;
        for (bytes, torn) in [
            (&b""[..], true),
            (&b"   \n"[..], true),
            (&full[..full.len() / 2], true),
            (&b"{\"format\": 1}\0\0\0\0"[..], true),
            (&b"\0\0\0\0\0\0"[..], true),
            (&br#"{"format": 99}"#[..], false),
            (&full[..], false),
        ] {
            std::fs::write(&path, bytes).expect("write");
            match read_record_file(&path) {
                Err(StateError::Torn { .. }) => assert!(torn, "{:?} is not torn", String::from_utf8_lossy(bytes)),
                Err(StateError::Corrupt { .. }) => assert!(!torn, "{:?} is torn", String::from_utf8_lossy(bytes)),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
            }
        }
    }

    /// The new version takes the old one's place (an exchange on filesystems that have it, else a
    /// rename), a first version goes in by rename, and no previous version is left behind.
    #[test]
    fn replacing_leaves_the_new_version_and_no_old_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let (tmp, path) = (dir.path().join(".r.json.tmp"), dir.path().join("r.json"));
        std::fs::write(&tmp, b"first").expect("write");
        replace(&tmp, &path).expect("first version");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        assert!(!tmp.exists(), "the temp name is gone after a first version");
        for version in ["second", "third"] {
            std::fs::write(&tmp, version).expect("write");
            replace(&tmp, &path).expect("replace");
            assert_eq!(std::fs::read(&path).expect("read"), version.as_bytes());
            assert!(!tmp.exists(), "the old version is removed after {version}");
        }
    }
}
