//! The device-info step: publishes the socket the workload must open in
//! `runtimeConfig.CNIDeviceInfoFile` (below `device_info_roots`, written atomically with mode 0444),
//! and reads a file a device plugin wrote before ADD (bounded, never through a symlink). The
//! document itself is `plan::device_info`. Never publishes a path other than the result's
//! `socketPath`; never replaces or removes a file it did not write.

pub use crate::plan::device_info::{type_name, DeviceInfo, DeviceInfoError, GivenRoute, SPEC_VERSION};
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use userspace_cni_api::{async_trait, CniError, NodeSettings, Step, StepContext};
use userspace_cni_support::confine::{self, Confined, Dir, Entry, Kind, ReadError};

/// A device-info file larger than this is not one (the spec's documents are a few hundred bytes).
const MAX_FILE: u64 = 64 * 1024;
/// The file's place below its device-info root (Multus's host-only devinfo dir): the rest is
/// resolved without following a symlink (docs/security.md).
fn locate(settings: &NodeSettings, path: &Path) -> Result<Confined, DeviceInfoError> {
    confine::confine(path, &settings.device_info_roots).map_err(|e| DeviceInfoError::Unreadable {
        path: path.into(),
        reason: format!("{e} (node setting device_info_roots)"),
    })
}

/// The held parent dir and the file name; `Ok(None)` when the dir does not exist.
fn open_parent(settings: &NodeSettings, path: &Path) -> Result<Option<(Dir, OsString)>, DeviceInfoError> {
    let c = locate(settings, path)?;
    match c.open_parent() {
        Ok((d, name)) => Ok(Some((d, name.to_owned()))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(DeviceInfoError::Unreadable { path: path.into(), reason: confine::explain(&e) }),
    }
}

/// Read a device-info file from the held dir: bounded, regular file only, `O_NONBLOCK`.
fn read_in(dir: &Dir, name: &OsStr, path: &Path) -> Result<Option<(Value, Entry)>, DeviceInfoError> {
    let unreadable = |reason: String| DeviceInfoError::Unreadable { path: path.into(), reason };
    let entry = match dir.entry(name) {
        Ok(Some(e)) => e,
        Ok(None) => return Ok(None),
        Err(e) => return Err(unreadable(confine::explain(&e))),
    };
    let bytes = match dir.read_file(Path::new(name), MAX_FILE) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(ReadError::Io(e)) => return Err(unreadable(confine::explain(&e))),
        Err(e) => return Err(DeviceInfoError::Malformed { path: path.into(), reason: e.to_string() }),
    };
    serde_json::from_slice(&bytes)
        .map(|v| Some((v, entry)))
        .map_err(|e| DeviceInfoError::Malformed { path: path.into(), reason: e.to_string() })
}

/// Read a device-info file that exists before ADD. `Ok(None)` when there is none.
pub fn read_existing(settings: &NodeSettings, path: &Path) -> Result<Option<Value>, DeviceInfoError> {
    let Some((dir, name)) = open_parent(settings, path)? else { return Ok(None) };
    Ok(read_in(&dir, &name, path)?.map(|(v, _)| v))
}

/// The deterministic temp name next to the file (a crash leftover is removed by undo).
fn temp_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(".userspace-cni.tmp");
    t
}

/// The entry when the file holds a document describing exactly `info`.
fn describes(dir: &Dir, name: &OsStr, path: &Path, info: &DeviceInfo) -> Result<Option<Entry>, DeviceInfoError> {
    Ok(match read_in(dir, name, path)? {
        Some((doc, entry)) if DeviceInfo::parse(&doc).ok().as_ref() == Some(info) => Some(entry),
        _ => None,
    })
}

pub struct DeviceInfoStep {
    pub file: PathBuf,
    /// What the file says: from the plan's socket descriptor.
    pub info: DeviceInfo,
    /// The file existed before ADD (an input): never written or removed.
    pub given: bool,
}

impl DeviceInfoStep {
    fn write(&self, settings: &NodeSettings) -> Result<(), DeviceInfoError> {
        let werr = |e: std::io::Error| DeviceInfoError::Write { path: self.file.clone(), reason: confine::explain(&e) };
        let c = locate(settings, &self.file)?;
        let (Some(name), parent) = (c.rel.file_name(), c.rel.parent().unwrap_or(Path::new(""))) else {
            return Err(werr(std::io::Error::from_raw_os_error(libc::EISDIR)));
        };
        // The dir Multus names is host-only: 0700 as the spec's reference implementation makes
        // it, set explicitly whatever the umask.
        let root = Dir::root_or_create(&c.root, 0o700).map_err(werr)?;
        let dir = root.create_dirs(parent, 0o700).map_err(werr)?;
        let tmp = temp_name(name);
        match dir.entry(&tmp) {
            Ok(Some(e)) if e.kind != Kind::Dir => {
                dir.unlink(&tmp).map_err(werr)?;
            }
            Ok(_) => {}
            Err(e) => return Err(werr(e)),
        }
        let bytes = serde_json::to_vec(&self.info.to_json()).map_err(|e| werr(std::io::Error::other(e)))?;
        dir.write_new(&tmp, &bytes, 0o444).map_err(werr)?;
        // link(2) never replaces: a file a device plugin wrote meanwhile survives.
        let linked = dir.link(&tmp, name);
        let _ = dir.unlink(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if describes(&dir, name, &self.file, &self.info)?.is_none() {
                    return Err(DeviceInfoError::Appeared { path: self.file.clone() });
                }
                Ok(())
            }
            Err(e) => Err(werr(e)),
        }
    }
}

#[async_trait]
impl Step for DeviceInfoStep {
    fn name(&self) -> &'static str {
        crate::plan::stages::DEVICE_INFO
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        // The result's socketPath comes from the same descriptor; refuse to ever disagree with it.
        if let Some(sock) = &ctx.outputs.socket {
            if sock.pod_path != self.info.path {
                return Err(ctx.fail_unchanged(
                    DeviceInfoError::Check {
                        path: self.file.clone(),
                        problem: format!(
                            "would say {} while the result's socketPath is {}; not writing it",
                            self.info.path.display(),
                            sock.pod_path.display()
                        ),
                    }
                    .into(),
                ));
            }
        }
        if self.given {
            return self.check(ctx).await.map_err(|e| ctx.fail_unchanged(e));
        }
        match self.write(&ctx.settings) {
            Ok(()) => Ok(()),
            // Someone else's file: ours was never linked, and undo must not remove theirs.
            Err(e @ DeviceInfoError::Appeared { .. }) => Err(ctx.fail_unchanged(e.into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        if self.given {
            return Ok(());
        }
        let rerr = |e: std::io::Error| {
            CniError::io(format!("cannot remove device-info file {}: {}", self.file.display(), confine::explain(&e)))
        };
        let (dir, name) = match open_parent(&ctx.settings, &self.file) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "device-info file left in place");
                return Ok(());
            }
        };
        let tmp = temp_name(&name);
        if dir.entry(&tmp).map_err(rerr)?.is_some_and(|e| e.kind == Kind::File) {
            dir.unlink(&tmp).map_err(rerr)?;
        }
        // Only the document we wrote, and only if it is still that inode: a device plugin's
        // file for another socket stays.
        match describes(&dir, &name, &self.file, &self.info) {
            Ok(Some(ours)) => dir.unlink_if(&name, |e| e.same_inode(&ours)).map(|_| ()).map_err(rerr),
            Ok(None) => Ok(()),
            // Unreadable or not ours to judge: leave it, say so.
            Err(e) => {
                tracing::warn!(error = %e, "device-info file left in place");
                Ok(())
            }
        }
    }

    async fn check(&self, ctx: &StepContext) -> Result<(), CniError> {
        let problem = |p: String| CniError::from(DeviceInfoError::Check { path: self.file.clone(), problem: p });
        let Some(doc) = read_existing(&ctx.settings, &self.file)? else {
            return Err(problem("is missing".into()));
        };
        match DeviceInfo::parse(&doc) {
            Ok(found) if found == self.info => Ok(()),
            Ok(found) => Err(problem(format!(
                "says {} {} at {}, the attachment is {} {} at {}",
                type_name(found.kind),
                found.mode,
                found.path.display(),
                type_name(self.info.kind),
                self.info.mode,
                self.info.path.display()
            ))),
            Err(Ok(t)) => Err(problem(format!("describes a {t:?} device"))),
            Err(Err(reason)) => Err(problem(format!("is malformed: {reason}"))),
        }
    }
}
