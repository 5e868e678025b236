use super::*;
use std::os::unix::fs::{symlink, MetadataExt};

/// A temp dir with a decoy outside it: `<t>/root` is the trusted root, `<t>/outside/secret` the
/// decoy every attack aims at.
struct Fixture {
    t: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(t.path().join("root")).unwrap();
        std::fs::create_dir(t.path().join("outside")).unwrap();
        std::fs::write(t.path().join("outside/secret"), b"DECOY-CONTENT").unwrap();
        Fixture { t }
    }
    fn root(&self) -> PathBuf {
        self.t.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.t.path().join("outside")
    }
}

const BOTH: [Resolver; 2] = [Resolver::Openat2, Resolver::Walk];

fn open_with(how: Resolver, root: &Dir, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    open_beneath_with(how, root.raw_fd(), Path::new(rel), flags, 0o600)
}

#[test]
fn a_symlink_in_any_component_is_refused_by_both_resolvers() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root().join("a/b")).unwrap();
    symlink(f.outside(), f.root().join("a/link")).unwrap();
    symlink(f.outside().join("secret"), f.root().join("a/b/file")).unwrap();
    let root = Dir::root(&f.root()).unwrap();
    for how in BOTH {
        for rel in ["a/link/secret", "a/link", "a/b/file"] {
            let e = open_with(how, &root, rel, libc::O_RDONLY).expect_err(rel);
            assert!(matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)), "{how:?} {rel}: {e}");
        }
        assert!(open_with(how, &root, "a/b", libc::O_RDONLY | libc::O_DIRECTORY).is_ok(), "{how:?}");
    }
}

#[test]
fn dotdot_and_absolute_components_never_leave_the_root() {
    let f = Fixture::new();
    let root = Dir::root(&f.root()).unwrap();
    for how in BOTH {
        for rel in ["../outside/secret", "/etc/passwd", "a/../../outside"] {
            assert!(open_with(how, &root, rel, libc::O_RDONLY).is_err(), "{how:?} {rel}");
        }
    }
}

#[test]
fn a_fifo_is_refused_without_blocking_and_a_huge_file_without_reading_it() {
    let f = Fixture::new();
    let fifo = CString::new(f.root().join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let big = File::create(f.root().join("sparse")).unwrap();
    big.set_len(1 << 40).unwrap();
    let root = Dir::root(&f.root()).unwrap();
    assert!(matches!(root.read_file(Path::new("fifo"), 1024), Err(ReadError::NotRegular(Kind::Fifo))));
    assert!(matches!(root.read_file(Path::new("sparse"), 1024), Err(ReadError::TooLarge(1024))));
    assert!(root.read_file(Path::new("absent"), 1024).unwrap().is_none());
}

#[test]
fn created_directories_get_their_mode_whatever_the_umask() {
    let f = Fixture::new();
    let root = Dir::root(&f.root()).unwrap();
    for (umask, name) in [(0o000, "u000"), (0o077, "u077")] {
        // SAFETY: umask is process-wide; these tests restore it at once.
        let old = unsafe { libc::umask(umask) };
        let made = root.create_dirs(Path::new(&format!("{name}/x/y")), 0o755);
        let file = made.as_ref().ok().map(|d| d.write_new(OsStr::new("f"), b"x", 0o444));
        unsafe { libc::umask(old) };
        made.unwrap();
        file.unwrap().unwrap();
        for d in [name.to_string(), format!("{name}/x"), format!("{name}/x/y")] {
            let m = std::fs::metadata(f.root().join(&d)).unwrap().mode() & 0o7777;
            assert_eq!(m, 0o755, "{d} under umask {umask:03o}");
        }
        let m = std::fs::metadata(f.root().join(format!("{name}/x/y/f"))).unwrap().mode() & 0o7777;
        assert_eq!(m, 0o444);
    }
}

#[test]
fn create_dirs_refuses_a_planted_symlink_and_creates_nothing_outside() {
    let f = Fixture::new();
    symlink(f.outside(), f.root().join("pod")).unwrap();
    let root = Dir::root(&f.root()).unwrap();
    assert!(root.create_dirs(Path::new("pod/new"), 0o755).is_err());
    assert!(!f.outside().join("new").exists(), "a directory was made through the link");
}

#[test]
fn write_new_never_follows_a_planted_link() {
    let f = Fixture::new();
    symlink(f.outside().join("secret"), f.root().join("tmp")).unwrap();
    let root = Dir::root(&f.root()).unwrap();
    assert!(root.write_new(OsStr::new("tmp"), b"attack", 0o644).is_err());
    assert_eq!(std::fs::read(f.outside().join("secret")).unwrap(), b"DECOY-CONTENT");
}

#[test]
fn unlink_if_leaves_a_swapped_entry_alone() {
    let f = Fixture::new();
    std::fs::write(f.root().join("ours"), b"x").unwrap();
    let root = Dir::root(&f.root()).unwrap();
    let made = root.entry(OsStr::new("ours")).unwrap().unwrap();
    // The pod swaps the entry (a new inode under the same name: both exist at once, so the
    // numbers differ).
    std::fs::write(f.root().join("theirs"), b"theirs").unwrap();
    std::fs::rename(f.root().join("theirs"), f.root().join("ours")).unwrap();
    let removed = root.unlink_if(OsStr::new("ours"), |e| e.same_inode(&made)).unwrap();
    assert!(!removed, "a swapped entry was removed");
    assert_eq!(std::fs::read(f.root().join("ours")).unwrap(), b"theirs");
    // A symlink standing in a removal is removed itself, never its target.
    symlink(f.outside().join("secret"), f.root().join("link")).unwrap();
    assert!(root.unlink(OsStr::new("link")).unwrap());
    assert!(f.outside().join("secret").exists());
    assert!(!root.unlink(OsStr::new("link")).unwrap(), "already gone is not an error");
}

#[test]
fn held_directory_survives_a_rename_of_its_path() {
    // Acting on the fd: after the pod renames the dir and plants a link at its old name, a
    // removal through the held descriptor reaches the original directory only.
    let f = Fixture::new();
    std::fs::create_dir(f.root().join("pod")).unwrap();
    std::fs::write(f.root().join("pod/sock"), b"").unwrap();
    let root = Dir::root(&f.root()).unwrap();
    let pod = root.open_dir(Path::new("pod")).unwrap();
    std::fs::rename(f.root().join("pod"), f.root().join("moved")).unwrap();
    symlink(f.outside(), f.root().join("pod")).unwrap();
    std::fs::write(f.outside().join("sock"), b"decoy").unwrap();
    assert!(pod.unlink(OsStr::new("sock")).unwrap());
    assert!(f.outside().join("sock").exists(), "the decoy behind the link was removed");
    assert!(!f.root().join("moved/sock").exists());
}

#[test]
fn confine_picks_the_longest_root_and_refuses_everything_else() {
    let roots = vec![PathBuf::from("/var/lib/cni/usrspcni"), PathBuf::from("/var/lib/cni/usrspcni/deep/")];
    let c = confine(Path::new("/var/lib/cni/usrspcni//deep/./pod1"), &roots).unwrap();
    assert_eq!(c.root, PathBuf::from("/var/lib/cni/usrspcni/deep/"));
    assert_eq!(c.rel, PathBuf::from("pod1"));
    let c = confine(Path::new("/var/lib/cni/usrspcni"), &roots).unwrap();
    assert_eq!(c.rel, PathBuf::from(""));
    for (bad, why) in [
        ("", ConfineError::Empty),
        ("rel/x", ConfineError::Relative),
        ("/var/lib/cni/usrspcni/../x", ConfineError::DotDot),
        ("/var/lib/cni/usrspcni-evil", ConfineError::Outside),
        ("/var/lib/cni", ConfineError::Outside),
        ("/var/lib/cni/usrspcni/a\0b", ConfineError::Nul),
    ] {
        assert_eq!(confine(Path::new(bad), &roots).unwrap_err(), why, "{bad:?}");
    }
    assert_eq!(confine(Path::new("/x"), &[PathBuf::from("relative")]).unwrap_err(), ConfineError::Outside);
}

#[test]
fn confine_matches_a_root_through_its_resolved_spelling() {
    // An operator writes the real path, the runtime passes a symlinked one (/var/run vs /run).
    let f = Fixture::new();
    symlink(f.root(), f.t.path().join("alias")).unwrap();
    let c = confine(&f.t.path().join("alias/dev/file.json"), &[f.root()]).unwrap();
    assert_eq!(c.root, f.root());
    assert_eq!(c.rel, PathBuf::from("dev/file.json"));
}

#[test]
fn read_root_owned_refuses_writable_or_foreign_ancestors() {
    let f = Fixture::new();
    // A world-writable directory without the sticky bit: anyone could swap the file. Refused,
    // and the message names that directory, never the file's contents.
    let open = f.root().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(open.join("kc"), b"apiVersion: v1").unwrap();
    let e = read_root_owned(&open.join("kc"), 1 << 20).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("writable by group or others") && text.contains("/open"), "{text}");
    assert!(!text.contains("apiVersion"), "{text}");
    // A directory owned by someone else, even 0755.
    let foreign = f.root().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(foreign.join("kc"), b"apiVersion: v1").unwrap();
    if std::os::unix::fs::chown(&foreign, Some(65534), None).is_ok() {
        let e = read_root_owned(&foreign.join("kc"), 1 << 20).unwrap_err();
        assert!(matches!(e, RootOwnedError::NotRootOwned { uid: 65534, .. }), "{e}");
    }
    // The file itself a symlink (to a root-only file): refused, the target never read.
    std::fs::set_permissions(f.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(f.outside().join("secret"), f.root().join("link")).unwrap();
    let e = read_root_owned(&f.root().join("link"), 1 << 20).unwrap_err();
    assert!(!e.to_string().contains("DECOY"), "{e}");
    assert!(read_root_owned(&f.root().join("absent"), 1 << 20).unwrap().is_none());
}

#[test]
fn read_root_owned_accepts_a_sticky_world_writable_ancestor() {
    // The temp dir lives under /tmp (1777): sticky, so only an entry's owner can replace it,
    // and the next component (ours, root's when the tests run as root) is checked in turn.
    let f = Fixture::new();
    for d in [f.t.path(), &f.root()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(f.root().join("kc"), b"apiVersion: v1").unwrap();
    std::fs::set_permissions(f.root().join("kc"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let sticky = std::fs::metadata(std::env::temp_dir()).unwrap().mode() & 0o1000 != 0;
    match read_root_owned(&f.root().join("kc"), 1 << 20) {
        Ok(bytes) => assert_eq!(bytes.unwrap(), b"apiVersion: v1"),
        Err(RootOwnedError::NotRootOwned { .. }) => eprintln!("skipped: not running as root"),
        Err(e) if !sticky => eprintln!("skipped: the temp dir is not sticky ({e})"),
        Err(e) => panic!("a file under a sticky /tmp in a root-owned dir was refused: {e}"),
    }
    // A group-writable file is refused even there.
    std::fs::set_permissions(f.root().join("kc"), std::fs::Permissions::from_mode(0o620)).unwrap();
    let e = read_root_owned(&f.root().join("kc"), 1 << 20).unwrap_err();
    assert!(matches!(e, RootOwnedError::Writable { .. } | RootOwnedError::NotRootOwned { .. }), "{e}");
}

#[test]
fn read_root_owned_reads_a_file_in_a_root_owned_tree() {
    // The crate's own directory is root's and not world-writable on CI and dev machines (root);
    // skip where the checkout is not (someone else's clone).
    let base = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"));
    let dir = base.join(format!("confine-owned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("kc");
    std::fs::write(&file, b"apiVersion: v1").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let got = read_root_owned(&file, 1 << 20);
    let _ = std::fs::remove_dir_all(&dir);
    match got {
        Ok(bytes) => assert_eq!(bytes.unwrap(), b"apiVersion: v1"),
        Err(RootOwnedError::NotRootOwned { .. } | RootOwnedError::Writable { .. }) => {
            eprintln!("skipped: the checkout is not in a root-owned tree")
        }
        Err(e) => panic!("{e}"),
    }
}
