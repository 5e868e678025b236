//! `logFile` from a hostile network config (docs/security.md, "logFile"), through the testkit
//! binary as a runtime runs it: a symlinked directory or file under the log root, a FIFO, a hard
//! link to a root-owned file, a path outside the roots, the umask, and a config value that tries
//! to forge a log line. A bad logFile never fails the plugin: one warning on stderr, stdout only
//! the result, no file written anywhere but below the log root.
#![cfg(feature = "testkit")]

mod support;

use serde_json::{json, Value};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{recording_conf, Node, Run, TESTKIT_BIN};

const CID: &str = "10000000000000000000000000000abc";
const LIMIT: Duration = Duration::from_secs(20);
const DECOY: &[u8] = b"root-owned decoy: must never grow\n";

fn conf(log_file: &Path) -> Value {
    let mut c = recording_conf("1.1.0", "log-net");
    c["logFile"] = json!(log_file.display().to_string());
    c["logLevel"] = json!("debug");
    c
}

fn add(node: &Node, conf: &Value) -> Run {
    node.cni_within(LIMIT, "ADD", CID, "net1", conf, &[])
}

/// ADD succeeded, printed only its result, and warned exactly once about the logFile.
fn ok_with_one_warning(run: &Run) -> String {
    let res = run.expect_ok();
    assert!(res["interfaces"].is_array(), "stdout is not the result: {}", run.stdout);
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("logFile")).collect();
    assert_eq!(warnings.len(), 1, "expected one logFile warning on stderr, got: {}", run.stderr);
    warnings[0].to_owned()
}

/// A root-owned file outside every root that an attack aims at.
fn decoy(node: &Node) -> PathBuf {
    let p = node.path("secret/decoy");
    std::fs::create_dir_all(p.parent().expect("parent")).expect("secret dir");
    std::fs::write(&p, DECOY).expect("decoy");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn log_root(node: &Node) -> PathBuf {
    let root = node.path("log");
    std::fs::create_dir_all(&root).expect("log root");
    root
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).map(|m| m.mode() & 0o7777).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_log_file_in_its_root_gets_explicit_modes_under_any_umask() {
    for umask in ["000", "077"] {
        let node = Node::new();
        let file = node.path("log/net/sub/cni.log");
        let env: Vec<(String, String)> = vec![
            ("CNI_COMMAND".into(), "ADD".into()),
            ("CNI_CONTAINERID".into(), CID.into()),
            ("CNI_IFNAME".into(), "net1".into()),
            ("CNI_NETNS".into(), support::this_netns()),
            ("CNI_PATH".into(), "/usr/lib/cni".into()),
        ];
        let script = format!("umask {umask}; exec \"$0\"");
        let run = node
            .exec_bounded("sh", &["-c", &script, TESTKIT_BIN], &env, conf(&file).to_string().as_bytes(), LIMIT)
            .unwrap_or_else(|e| panic!("umask {umask}: {e}"));
        run.expect_ok();
        assert!(!run.stderr.contains("logFile"), "umask {umask}: unexpected warning: {}", run.stderr);
        for dir in ["log", "log/net", "log/net/sub"] {
            assert_eq!(mode(&node.path(dir)), 0o750, "umask {umask}: {dir}");
        }
        assert_eq!(mode(&file), 0o640, "umask {umask}: the log file");
        let text = std::fs::read_to_string(&file).expect("log");
        assert!(text.contains("done"), "umask {umask}: the ADD was not logged: {text}");
    }
}

#[test]
fn a_symlinked_directory_under_the_log_root_is_not_followed() {
    let node = Node::new();
    let root = log_root(&node);
    let target = node.path("secret");
    let before = decoy(&node);
    std::os::unix::fs::symlink(&target, root.join("pod")).expect("plant the link");
    let warning = ok_with_one_warning(&add(&node, &conf(&root.join("pod/cni.log"))));
    assert!(warning.contains("symlink") || warning.contains("not a directory"), "{warning}");
    assert!(!target.join("cni.log").exists(), "a log file was created behind the symlink");
    assert_eq!(std::fs::read(&before).expect("decoy"), DECOY, "the decoy changed");
    let entries: Vec<_> = std::fs::read_dir(&target).expect("secret").flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries.len(), 1, "the dir behind the link gained entries: {entries:?}");
}

#[test]
fn a_symlink_as_the_log_file_is_not_followed() {
    let node = Node::new();
    let root = log_root(&node);
    let target = decoy(&node);
    std::os::unix::fs::symlink(&target, root.join("cni.log")).expect("plant the link");
    ok_with_one_warning(&add(&node, &conf(&root.join("cni.log"))));
    assert_eq!(std::fs::read(&target).expect("decoy"), DECOY, "the decoy was appended to");
    assert_eq!(mode(&target), 0o600, "the decoy's mode changed");
}

#[test]
fn a_fifo_as_the_log_file_never_blocks() {
    let node = Node::new();
    let root = log_root(&node);
    let fifo = root.join("cni.log");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Without a reader, a blocking open for writing would wait forever.
    let started = Instant::now();
    ok_with_one_warning(&add(&node, &conf(&fifo)));
    assert!(started.elapsed() < Duration::from_secs(10), "ADD took {:?}", started.elapsed());
    // With a reader the open succeeds; the file type still refuses it, and nothing is written.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO for reading");
    let run = node.cni_within(LIMIT, "ADD", "20000000000000000000000000000abc", "net1", &conf(&fifo), &[]);
    let warning = ok_with_one_warning(&run);
    assert!(warning.contains("FIFO"), "{warning}");
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    assert!(got.is_empty(), "the plugin wrote into the FIFO: {:?}", String::from_utf8_lossy(&got));
}

#[test]
fn a_hard_link_to_a_root_owned_file_is_not_appended_to() {
    let node = Node::new();
    let root = log_root(&node);
    let target = decoy(&node);
    std::fs::hard_link(&target, root.join("cni.log")).expect("plant the hard link");
    let warning = ok_with_one_warning(&add(&node, &conf(&root.join("cni.log"))));
    assert!(warning.contains("hard links"), "{warning}");
    assert_eq!(std::fs::read(&target).expect("decoy"), DECOY, "the decoy was appended to");
    assert_eq!(mode(&target), 0o600, "the decoy's mode changed");
}

#[test]
fn a_log_file_outside_the_roots_is_ignored_with_a_warning() {
    let node = Node::new();
    // Upstream NADs log to /var/log/<name>.log: outside the node's log roots.
    let outside = node.path("var-log/userspace-ovs-net-1-cni.log");
    let before = node.snapshot();
    let run = add(&node, &conf(&outside));
    let warning = ok_with_one_warning(&run);
    assert!(warning.contains("log_roots"), "the warning should name the setting: {warning}");
    let doc: Value = serde_json::from_str(run.stdout.trim()).expect("stdout is one JSON document");
    assert!(doc["interfaces"].is_array(), "{doc}");
    assert!(!node.path("var-log").exists(), "a directory was created outside the log roots");
    let created: Vec<String> =
        node.snapshot().difference(&before).filter(|p| p.starts_with("var-log")).cloned().collect();
    assert!(created.is_empty(), "{created:?}");
}

#[test]
fn only_a_dot_log_file_is_written_so_a_cni_config_dir_among_the_roots_gets_no_conflist() {
    // A node that kept /etc/cni/net.d among its deprecated allowed_roots: a NAD must not make
    // the plugin create a config file the runtime would load.
    let node = Node::new();
    let conflist = node.path("log/99-evil.conflist");
    let run = add(&node, &conf(&conflist));
    let warning = ok_with_one_warning(&run);
    assert!(warning.contains(".log"), "the warning should say why: {warning}");
    assert!(!conflist.exists(), "a non-.log file was created in a log root");
}

#[test]
fn a_config_value_cannot_forge_a_log_line() {
    let node = Node::new();
    let file = node.path("log/cni.log");
    let forged = "2030-01-01T00:00:00.000000Z  INFO cni: FORGED admin approved";
    let mut c = conf(&file);
    // host-local reports the bad subnet in its error, which the plugin logs at error level.
    c["ipam"] = json!({
        "type": "host-local",
        "dataDir": node.path("ipam").display().to_string(),
        "subnet": format!("10.77.0.0/24\n{forged}")
    });
    let run = add(&node, &c);
    assert_ne!(run.code, Some(0), "ADD with a bad subnet succeeded: {}", run.stdout);
    let text = std::fs::read_to_string(&file).expect("the log file");
    assert!(text.contains("\\x0a"), "the value with its newline never reached the log (nothing tested): {text}");
    let own_line: Vec<&str> = text.lines().filter(|l| l.starts_with(forged) || l.starts_with("2030-")).collect();
    assert!(own_line.is_empty(), "a forged line stands on its own in the log: {own_line:?}\n{text}");
    for (i, line) in text.lines().enumerate() {
        assert!(!line.chars().any(|ch| ch.is_control()), "line {i} holds a control character: {line:?}");
    }
}
