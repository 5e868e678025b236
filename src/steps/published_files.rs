//! Publishing JSON documents in an operator's directory (a setting such as `cdi_dir`, never a
//! pod's): the DRA metadata file and the CDI specs. Each is written under a temp name that a
//! runtime ignores (not ending in `.json`) and renamed into place, so a reader sees the whole old
//! document or the whole new one; writing again replaces it (Prepare after a reboot). Undo
//! removes only regular files of ours, then the per-attachment dir when it is empty.

use crate::plan::PublishedFile;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use userspace_cni_api::{async_trait, CniError, Step, StepContext};
use userspace_cni_support::confine::{self, Dir, Kind, Removal};

/// Directories made under an operator's root: the container runtime (and, through a read-only
/// bind mount, the workload) reads what is in them.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
/// A published document is small; a bigger file at its name is not ours to read.
const READ_CAP: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("{} is not a file name or <dir>/<file name> below {}", rel.display(), root.display())]
    BadPath { root: PathBuf, rel: PathBuf },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("cannot remove {}: {reason}", path.display())]
    Remove { path: PathBuf, reason: String },
    #[error("{} {problem}", path.display())]
    Check { path: PathBuf, problem: String },
}

impl From<PublishError> for CniError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::BadPath { .. } => CniError::new(userspace_cni_api::codes::INTERNAL, e.to_string()),
            _ => CniError::io(e.to_string()),
        }
    }
}

/// `rel` split into its optional directory and its file name: exactly one or two normal
/// components (checked at planning too; a record is read back from disk).
pub fn split(file: &PublishedFile) -> Result<(Option<&OsStr>, &OsStr), PublishError> {
    let bad = || PublishError::BadPath { root: file.root.clone(), rel: file.rel.clone() };
    let parts: Vec<&OsStr> = file
        .rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [name] => Ok((None, name)),
        [dir, name] => Ok((Some(dir), name)),
        _ => Err(bad()),
    }
}

fn temp_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(".tmp");
    t
}

/// The publishing step of one stage (`dra-metadata`, `cdi-spec`).
pub struct PublishedFilesStep {
    pub name: &'static str,
    pub files: Vec<PublishedFile>,
}

fn write(file: &PublishedFile) -> Result<(), PublishError> {
    let path = file.root.join(&file.rel);
    let werr = |e: std::io::Error| PublishError::Write { path: path.clone(), reason: confine::explain(&e) };
    let (sub, name) = split(file)?;
    let mut bytes = serde_json::to_vec_pretty(&file.content).map_err(|e| werr(std::io::Error::other(e)))?;
    // A newline ends the document: KEP-5304 readers take the file as a stream of JSON objects.
    bytes.push(b'\n');
    let root = Dir::root_or_create(&file.root, DIR_MODE).map_err(werr)?;
    let dir = match sub {
        Some(s) => root.create_dirs(Path::new(s), DIR_MODE).map_err(werr)?,
        None => root,
    };
    let tmp = temp_name(name);
    // A crash's leftover under our temp name goes first (never a directory: that fails below).
    if let Some(e) = dir.entry(&tmp).map_err(werr)? {
        if e.kind != Kind::Dir {
            dir.unlink(&tmp).map_err(werr)?;
        }
    }
    dir.write_new(&tmp, &bytes, FILE_MODE).map_err(werr)?;
    dir.rename_from(&dir, &tmp, name).map_err(|e| {
        let _ = dir.unlink_if(&tmp, |en| en.kind == Kind::File);
        werr(e)
    })
}

fn remove(file: &PublishedFile) -> Result<(), PublishError> {
    let path = file.root.join(&file.rel);
    let rerr = |e: std::io::Error| PublishError::Remove { path: path.clone(), reason: confine::explain(&e) };
    let (sub, name) = split(file)?;
    let root = match Dir::root(&file.root) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(rerr(e)),
    };
    let dir = match sub {
        Some(s) => match root.open_dir(Path::new(s)) {
            Ok(d) => d,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                return Ok(())
            }
            Err(e) => return Err(rerr(e)),
        },
        None => root.open_dir(Path::new("")).map_err(rerr)?,
    };
    for n in [temp_name(name).as_os_str(), name] {
        match dir.remove_if(n, Kind::File).map_err(rerr)? {
            Removal::Removed | Removal::Absent => {}
            Removal::Left(kind) => {
                tracing::warn!(path = %dir.path().join(n).display(), kind = kind.as_str(), "not a file of ours; left")
            }
        }
    }
    if let Some(s) = sub {
        root.rmdir(s).map_err(rerr)?;
    }
    Ok(())
}

fn verify(file: &PublishedFile) -> Result<(), PublishError> {
    let path = file.root.join(&file.rel);
    let problem = |p: String| PublishError::Check { path: path.clone(), problem: p };
    let root = Dir::root(&file.root).map_err(|e| problem(format!("cannot be reached: {}", confine::explain(&e))))?;
    let bytes = match root.read_file(&file.rel, READ_CAP) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(problem("is missing".into())),
        Err(confine::ReadError::Io(e)) => return Err(problem(format!("cannot be read: {}", confine::explain(&e)))),
        Err(e) => return Err(problem(format!("cannot be read: {e}"))),
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if v == file.content => Ok(()),
        _ => Err(problem("differs from what this attachment published".into())),
    }
}

#[async_trait]
impl Step for PublishedFilesStep {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn apply(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
        for f in &self.files {
            write(f)?;
        }
        Ok(())
    }

    async fn undo(&self, _ctx: &mut StepContext) -> Result<(), CniError> {
        // Every file is tried; the first error is reported after the rest were attempted.
        let mut first = None;
        for f in self.files.iter().rev() {
            if let Err(e) = remove(f) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    async fn check(&self, _ctx: &StepContext) -> Result<(), CniError> {
        for f in &self.files {
            verify(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn file(root: &Path, rel: &str, v: serde_json::Value) -> PublishedFile {
        PublishedFile { root: root.into(), rel: rel.into(), content: v }
    }

    #[test]
    fn write_replaces_atomically_and_remove_takes_the_empty_dir() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("cdi");
        let f = file(&root, "claim-a/spec.json", json!({"a": 1}));
        write(&f).unwrap();
        let path = root.join("claim-a/spec.json");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap()).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        let again = file(&root, "claim-a/spec.json", json!({"a": 2}));
        write(&again).unwrap();
        verify(&again).unwrap();
        assert!(verify(&f).is_err(), "the old content is gone");
        assert_eq!(std::fs::read_dir(root.join("claim-a")).unwrap().count(), 1, "no temp file is left");
        remove(&again).unwrap();
        assert!(!root.join("claim-a").exists());
        remove(&again).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed_and_never_removed_through() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("cdi");
        std::fs::create_dir(&root).unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, root.join("spec.json")).unwrap();
        std::os::unix::fs::symlink(&victim, root.join(".spec.json.tmp")).unwrap();
        let f = file(&root, "spec.json", json!({"x": true}));
        write(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(root.join("spec.json")).unwrap().is_file());
        // A symlinked sub-dir is never entered for removal.
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("spec.json"), "theirs").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("sub")).unwrap();
        remove(&file(&root, "sub/spec.json", json!({}))).unwrap();
        assert_eq!(std::fs::read_to_string(elsewhere.join("spec.json")).unwrap(), "theirs");
    }

    #[test]
    fn paths_that_leave_the_root_are_refused() {
        for rel in ["../x.json", "/etc/x.json", "a/b/c.json", "", "a/../b.json"] {
            assert!(split(&file(Path::new("/r"), rel, json!({}))).is_err(), "{rel}");
        }
    }
}
