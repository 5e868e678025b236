//! `userspace install [DIR] [--settings PATH]`: copies the running binary into the host's CNI bin
//! dir (temp file in DIR, fsync, rename) and optionally writes the node settings file if absent.
//! Never leaves a half-written `userspace` where a runtime could exec it; never overwrites settings.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where container runtimes look for CNI plugins unless configured otherwise.
pub const DEFAULT_DIR: &str = "/opt/cni/bin";
/// The plugin's file name: NADs say `"type": "userspace"`.
pub const BINARY_NAME: &str = "userspace";
/// The running binary, even if its file was replaced or deleted since it started.
const SELF_EXE: &str = "/proc/self/exe";
const BINARY_MODE: u32 = 0o755;
const SETTINGS_MODE: u32 = 0o644;
/// The shipped settings file: every key at its built-in default, documented.
const SETTINGS_TEMPLATE: &str = include_str!("../../config/userspace.toml");
/// Temp files of an install killed mid-way: harmless (no runtime execs a dot-file), removed once
/// older than this, which no live install takes.
const STALE_TEMP: Duration = Duration::from_secs(600);
const TEMP_PREFIX: &str = ".userspace.install-";

const USAGE: &str = "usage: userspace install [DIR] [--settings PATH]
  Copies this binary to DIR/userspace (default DIR: /opt/cni/bin) atomically; does nothing when
  the same bytes are already there. --settings PATH writes the node settings file (all defaults)
  if PATH does not exist; an existing file is never changed.
";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("cannot read the running binary ({}): {source}", path.display())]
    ReadSelf { path: PathBuf, source: io::Error },
    #[error("install dir {} does not exist; create it, or pass the host's CNI bin dir as DIR", dir.display())]
    DirMissing { dir: PathBuf },
    #[error("install dir {} is not a directory", dir.display())]
    NotADir { dir: PathBuf },
    #[error("{} is a directory, not a file; remove it so the plugin can be installed there", path.display())]
    TargetIsDir { path: PathBuf },
    #[error("cannot {op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io { op, path: path.to_owned(), source }
}

/// What happened to the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryOutcome {
    Installed {
        path: PathBuf,
        bytes: u64,
    },
    Replaced {
        path: PathBuf,
        bytes: u64,
        previous_bytes: u64,
    },
    /// Same bytes already there; only the mode may have been corrected.
    Unchanged {
        path: PathBuf,
        bytes: u64,
        mode_fixed: bool,
    },
}

/// What happened to the settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsOutcome {
    Written(PathBuf),
    Kept(PathBuf),
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub dir: PathBuf,
    pub settings: Option<PathBuf>,
}

/// `None` for `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Args>, InstallError> {
    let mut dir = None;
    let mut settings = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--settings" => match it.next() {
                Some(p) if !p.is_empty() => settings = Some(PathBuf::from(p)),
                _ => return Err(InstallError::Usage("--settings needs a path".into())),
            },
            s if s.starts_with("--settings=") => {
                let p = &s["--settings=".len()..];
                if p.is_empty() {
                    return Err(InstallError::Usage("--settings needs a path".into()));
                }
                settings = Some(PathBuf::from(p));
            }
            s if s.starts_with('-') => return Err(InstallError::Usage(format!("unknown option {s:?}"))),
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(InstallError::Usage(format!("unexpected argument {s:?}: only one DIR"))),
        }
    }
    Ok(Some(Args { dir: dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)), settings }))
}

/// The command: prints what it did on stdout, errors on stderr; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            crate::stdout::out!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("userspace install: {e}");
            return 2;
        }
    };
    let version = env!("CARGO_PKG_VERSION");
    match install_binary(Path::new(SELF_EXE), &args.dir) {
        Ok(BinaryOutcome::Installed { path, bytes }) => {
            crate::stdout::outln!("installed {} (userspace-cni {version}, {bytes} bytes)", path.display())
        }
        Ok(BinaryOutcome::Replaced { path, bytes, previous_bytes }) => crate::stdout::outln!(
            "replaced {} with userspace-cni {version} ({bytes} bytes; the previous file had {previous_bytes})",
            path.display()
        ),
        Ok(BinaryOutcome::Unchanged { path, bytes, mode_fixed }) => {
            let mode = if mode_fixed { "; mode set to 0755" } else { "" };
            crate::stdout::outln!(
                "unchanged: {} already is userspace-cni {version} ({bytes} bytes), nothing written{mode}",
                path.display()
            )
        }
        Err(e) => {
            eprintln!("userspace install: {e}");
            return 1;
        }
    }
    if let Some(path) = &args.settings {
        match install_settings(path) {
            Ok(SettingsOutcome::Written(p)) => {
                crate::stdout::outln!("wrote the settings file {} (built-in defaults)", p.display())
            }
            Ok(SettingsOutcome::Kept(p)) => crate::stdout::outln!("settings file {} exists: left as is", p.display()),
            Err(e) => {
                eprintln!("userspace install: {e}");
                return 1;
            }
        }
    }
    0
}

/// Copy the file `src` to `<dir>/userspace`, atomically and only when the content differs.
pub fn install_binary(src: &Path, dir: &Path) -> Result<BinaryOutcome, InstallError> {
    let content = read_source(src)?;
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(InstallError::NotADir { dir: dir.to_owned() }),
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(InstallError::DirMissing { dir: dir.to_owned() }),
        Err(e) => return Err(io_err("inspect", dir)(e)),
    }
    remove_stale_temps(dir);
    let target = dir.join(BINARY_NAME);
    let bytes = content.len() as u64;
    let previous = match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => return Err(InstallError::TargetIsDir { path: target }),
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("inspect", &target)(e)),
    };
    if let Some(m) = &previous {
        // A symlink is replaced by the file itself: the runtime should exec what we tested.
        if m.is_file() && m.len() == bytes && same_content(&target, &content)? {
            let mode_fixed = m.permissions().mode() & 0o7777 != BINARY_MODE;
            if mode_fixed {
                fs::set_permissions(&target, fs::Permissions::from_mode(BINARY_MODE))
                    .map_err(io_err("set the mode of", &target))?;
            }
            return Ok(BinaryOutcome::Unchanged { path: target, bytes, mode_fixed });
        }
    }
    let temp = write_temp(dir, &content, BINARY_MODE)?;
    if let Err(e) = fs::rename(&temp, &target) {
        let _ = fs::remove_file(&temp);
        return Err(io_err("rename the new binary onto", &target)(e));
    }
    sync_dir(dir)?;
    Ok(match previous {
        Some(m) => BinaryOutcome::Replaced { path: target, bytes, previous_bytes: m.len() },
        None => BinaryOutcome::Installed { path: target, bytes },
    })
}

/// Write the shipped settings file at `path` unless something exists there. The final name
/// appears by `link(2)`, which fails rather than replace a file created meanwhile.
pub fn install_settings(path: &Path) -> Result<SettingsOutcome, InstallError> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(SettingsOutcome::Kept(path.to_owned()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io_err("create", dir))?;
    let temp = write_temp(dir, SETTINGS_TEMPLATE.as_bytes(), SETTINGS_MODE)?;
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(SettingsOutcome::Written(path.to_owned()))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(SettingsOutcome::Kept(path.to_owned())),
        Err(e) => Err(io_err("create", path)(e)),
    }
}

fn read_source(src: &Path) -> Result<Vec<u8>, InstallError> {
    let mut content = Vec::new();
    File::open(src)
        .and_then(|mut f| f.read_to_end(&mut content))
        .map_err(|source| InstallError::ReadSelf { path: src.to_owned(), source })?;
    Ok(content)
}

fn same_content(path: &Path, content: &[u8]) -> Result<bool, InstallError> {
    let mut existing = Vec::with_capacity(content.len());
    File::open(path).and_then(|mut f| f.read_to_end(&mut existing)).map_err(io_err("read", path))?;
    Ok(existing == content)
}

/// A new file in `dir` holding `content` with `mode`, flushed to disk; removed again on error.
fn write_temp(dir: &Path, content: &[u8], mode: u32) -> Result<PathBuf, InstallError> {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    // Two installers may share a pid (pid 1 of two containers), hence the time as well.
    let temp = dir.join(format!("{TEMP_PREFIX}{}-{nanos:x}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(io_err("create a temp file in", dir))?;
    let written = file
        .write_all(content)
        // The umask may have narrowed the creation mode.
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(&temp);
        return Err(io_err("write", &temp)(e));
    }
    Ok(temp)
}

/// Make a rename or link in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync", dir))
}

/// Remove temp files an install killed mid-way left in `dir`. Best effort.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with(TEMP_PREFIX) || !name.ends_with(".tmp") {
            continue;
        }
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP);
        if old && fs::remove_file(entry.path()).is_ok() {
            crate::stdout::outln!("removed {}, left by an interrupted install", entry.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &Path, content: &[u8]) -> PathBuf {
        let p = dir.join("source-bin");
        fs::write(&p, content).unwrap();
        p
    }

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect()
    }

    #[test]
    fn installs_then_does_nothing_for_the_same_bytes() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let src = source(t.path(), b"\x7fELF first");
        let out = install_binary(&src, &bin).unwrap();
        assert_eq!(out, BinaryOutcome::Installed { path: bin.join("userspace"), bytes: 10 });
        let target = bin.join("userspace");
        assert_eq!(fs::read(&target).unwrap(), b"\x7fELF first");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o755);
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&target).unwrap());

        let again = install_binary(&src, &bin).unwrap();
        assert_eq!(again, BinaryOutcome::Unchanged { path: target.clone(), bytes: 10, mode_fixed: false });
        // No write at all: the same inode is still there.
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&fs::metadata(&target).unwrap()), inode);
        assert!(temps(&bin).is_empty(), "temp files left: {:?}", temps(&bin));
    }

    #[test]
    fn replaces_other_content_atomically_and_fixes_a_wrong_mode() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("userspace");
        fs::write(&target, b"upstream go plugin").unwrap();
        let src = source(t.path(), b"ours");
        let out = install_binary(&src, t.path()).unwrap();
        assert_eq!(out, BinaryOutcome::Replaced { path: target.clone(), bytes: 4, previous_bytes: 18 });
        assert_eq!(fs::read(&target).unwrap(), b"ours");

        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let out = install_binary(&src, t.path()).unwrap();
        assert_eq!(out, BinaryOutcome::Unchanged { path: target.clone(), bytes: 4, mode_fixed: true });
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn a_symlink_is_replaced_by_the_file() {
        let t = tempfile::tempdir().unwrap();
        let src = source(t.path(), b"ours");
        std::os::unix::fs::symlink(&src, t.path().join("userspace")).unwrap();
        let out = install_binary(&src, t.path()).unwrap();
        assert!(matches!(out, BinaryOutcome::Replaced { .. }), "{out:?}");
        assert!(fs::symlink_metadata(t.path().join("userspace")).unwrap().is_file());
    }

    #[test]
    fn refuses_a_missing_dir_a_file_as_dir_and_a_directory_as_target() {
        let t = tempfile::tempdir().unwrap();
        let src = source(t.path(), b"x");
        let e = install_binary(&src, &t.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = install_binary(&src, &src).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        fs::create_dir(t.path().join("userspace")).unwrap();
        let e = install_binary(&src, t.path()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = install_binary(&t.path().join("missing-src"), t.path()).unwrap_err();
        assert!(e.to_string().contains("cannot read the running binary"), "{e}");
    }

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let stale = t.path().join(format!("{TEMP_PREFIX}1-1.tmp"));
        let fresh = t.path().join(format!("{TEMP_PREFIX}2-2.tmp"));
        fs::write(&stale, b"half").unwrap();
        fs::write(&fresh, b"in flight").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
        let src = source(t.path(), b"x");
        install_binary(&src, t.path()).unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn settings_are_written_once_and_never_overwritten() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("etc/userspace-cni/userspace.toml");
        assert_eq!(install_settings(&path).unwrap(), SettingsOutcome::Written(path.clone()));
        assert_eq!(fs::read_to_string(&path).unwrap(), SETTINGS_TEMPLATE);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        fs::write(&path, "state_dir = \"/srv/state\"\n").unwrap();
        assert_eq!(install_settings(&path).unwrap(), SettingsOutcome::Kept(path.clone()));
        assert_eq!(fs::read_to_string(&path).unwrap(), "state_dir = \"/srv/state\"\n");
        assert!(temps(path.parent().unwrap()).is_empty());
    }

    #[test]
    fn the_shipped_settings_file_loads_as_the_defaults() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("userspace.toml");
        install_settings(&path).unwrap();
        let p = path.to_string_lossy().into_owned();
        let regs = crate::pipeline::Registry::linked();
        let loaded =
            crate::settings::load_from(regs.registrations(), |k| (k == crate::settings::CONFIG_ENV).then(|| p.clone()))
                .expect("loads");
        let effective = |s| crate::settings::with_engine_defaults(s, regs.registrations());
        assert_eq!(effective(loaded), effective(userspace_cni_api::NodeSettings::default()));
    }

    #[test]
    fn arguments() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&s(&[])).unwrap(), Some(Args { dir: PathBuf::from("/opt/cni/bin"), settings: None }));
        assert_eq!(
            parse_args(&s(&["/host/bin", "--settings", "/etc/u.toml"])).unwrap(),
            Some(Args { dir: PathBuf::from("/host/bin"), settings: Some(PathBuf::from("/etc/u.toml")) })
        );
        assert_eq!(
            parse_args(&s(&["--settings=/etc/u.toml"])).unwrap().unwrap().settings,
            Some(PathBuf::from("/etc/u.toml"))
        );
        assert_eq!(parse_args(&s(&["--help"])).unwrap(), None);
        for bad in [&["--settings"][..], &["--force"], &["a", "b"], &["--settings="]] {
            assert!(matches!(parse_args(&s(bad)), Err(InstallError::Usage(_))), "{bad:?}");
        }
    }
}
