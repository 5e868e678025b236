//! Hostile kubeconfigs a network config names (docs/security.md, "kubeconfig"), run through the
//! testkit binary as a runtime runs it, against the fake API server: a credential plugin that
//! would run a command as root, a tokenFile that would send a root-only file as a bearer token,
//! an auth-provider, a CA file reference, a symlink to a root-only file, a FIFO, a 1 GiB file, a
//! group-writable directory and a foreign owner. Each is refused with code 7 before any request,
//! without quoting the file, and leaves the node as it was. `userspace gc --kubeconfig` (the
//! operator's file) keeps working and runs no plugin either.
#![cfg(all(feature = "testkit", feature = "kubernetes"))]

mod support;

use fakeapi::FakeApi;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{recording_conf, Node, Run};

const NS: &str = "ns1";
const POD: &str = "pod-a";
const CID: &str = "kc0000000000000000000000000000ff";
/// Far above a refusal (milliseconds), far below a hang.
const LIMIT: Duration = Duration::from_secs(20);
/// What the decoys hold: it must never be sent, printed or parsed into a message.
const DECOY: &str = "DECOY-ROOT-ONLY-5c1e";

struct Env {
    api: FakeApi,
    node: Node,
    /// The allow-listed path (USERSPACE_CNI_KUBECONFIG_FILES of the test node).
    kubeconfig: PathBuf,
}

impl Env {
    fn new() -> Env {
        let api = FakeApi::start();
        let node = Node::new();
        let kubeconfig = node.path("net.d/multus.kubeconfig");
        api.add_pod(NS, POD, "u", json!({"containers": [{"name": "c", "image": "i"}]}));
        Env { api, node, kubeconfig }
    }

    /// A root-only file outside every root, holding DECOY.
    fn decoy(&self) -> PathBuf {
        let p = self.node.path("secret/decoy");
        fakeapi::write_private(&p, format!("{DECOY}\nline-two: {DECOY}\n").as_bytes());
        p
    }

    /// Where a credential plugin would leave its mark.
    fn marker(&self) -> PathBuf {
        self.node.path("pwned")
    }

    fn write(&self, text: &str) {
        fakeapi::write_private(&self.kubeconfig, text.as_bytes());
    }

    fn add(&self) -> Run {
        let mut conf = recording_conf("1.1.0", "kc-net");
        conf["kubeconfig"] = json!(self.kubeconfig.display().to_string());
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={POD};K8S_POD_UID=u");
        self.node.cni_within(LIMIT, "ADD", CID, "net1", &conf, &[("CNI_ARGS", args.as_str())])
    }

    /// Run ADD, expect code 7 mentioning `want`, and prove nothing happened: no file changed,
    /// no request reached the API server, no plugin ran, the decoy appears nowhere.
    fn refused(&self, want: &str) -> String {
        let before = self.node.snapshot();
        let started = Instant::now();
        let run = self.add();
        let took = started.elapsed();
        let msg = run.expect_err(7);
        assert!(msg.contains(want), "the error should say {want:?}: {msg}");
        assert!(msg.contains(&self.kubeconfig.display().to_string()), "the error should name the file: {msg}");
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(!text.contains(DECOY), "the decoy's contents reached {what}: {text}");
        }
        let stdout: Value = run.json();
        assert_eq!(stdout.as_object().map(|o| o.len() <= 3), Some(true), "stdout is one error document: {stdout}");
        assert!(!self.marker().exists(), "a credential plugin ran as root (marker {})", self.marker().display());
        assert!(self.api.seen().is_empty(), "a request reached the API server: {:?}", self.api.seen());
        let leaked: Vec<String> = self.api.authorizations().into_iter().filter(|a| a.contains(DECOY)).collect();
        assert!(leaked.is_empty(), "the decoy was sent as credentials: {leaked:?}");
        assert_eq!(self.node.snapshot(), before, "the refused ADD changed the node");
        assert!(took < Duration::from_secs(5), "the refusal took {took:?}");
        msg
    }
}

#[test]
fn an_inline_kubeconfig_still_works() {
    // The control: the same node, server and config with Multus's kind of file succeed, so every
    // refusal below is the file's doing.
    let e = Env::new();
    e.api.write_kubeconfig(&e.kubeconfig);
    let res = e.add().expect_ok();
    assert!(res["interfaces"].is_array(), "{res}");
    assert!(!e.api.seen().is_empty(), "the control run never reached the API server");
}

#[test]
fn exec_credential_plugin_never_runs() {
    let e = Env::new();
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args:\n      \
         - -c\n      - \"touch {}; echo '{{\\\"kind\\\":\\\"ExecCredential\\\",\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1\\\",\\\"status\\\":{{\\\"token\\\":\\\"{}\\\"}}}}'\"\n      \
         interactiveMode: Never\n",
        e.marker().display(),
        fakeapi::TOKEN
    );
    e.write(&e.api.kubeconfig_text(&user));
    let msg = e.refused("uses exec");
    assert!(msg.contains("credential plugins are refused"), "{msg}");
}

#[test]
fn token_file_pointing_at_a_root_only_file_is_never_sent() {
    let e = Env::new();
    let decoy = e.decoy();
    e.write(&e.api.kubeconfig_text(&format!("    tokenFile: {}\n", decoy.display())));
    let msg = e.refused("uses tokenFile");
    assert!(!msg.contains(&decoy.display().to_string()), "the message names the referenced file: {msg}");
}

#[test]
fn auth_provider_is_refused() {
    let e = Env::new();
    let user = format!(
        "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh\n        cmd-args: -c 'touch {}'\n",
        e.marker().display()
    );
    e.write(&e.api.kubeconfig_text(&user));
    e.refused("uses auth-provider");
}

#[test]
fn certificate_authority_file_reference_is_refused() {
    let e = Env::new();
    let ca = e.node.path("secret/ca.pem");
    fakeapi::write_private(&ca, e.api.ca_pem().as_bytes());
    let text = e.api.kubeconfig_text(&format!("    token: {}\n", fakeapi::TOKEN));
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("certificate-authority-data:") {
                format!("    certificate-authority: {}\n", ca.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    e.write(&text);
    e.refused("uses certificate-authority");
}

#[test]
fn symlink_to_a_root_only_file_is_refused_unread() {
    let e = Env::new();
    let decoy = e.decoy();
    std::fs::create_dir_all(e.kubeconfig.parent().expect("parent")).expect("net.d");
    std::os::unix::fs::symlink(&decoy, &e.kubeconfig).expect("plant the symlink");
    let before = std::fs::read(&decoy).expect("decoy");
    e.refused("symlink");
    assert_eq!(std::fs::read(&decoy).expect("decoy"), before, "the decoy changed");
}

#[test]
fn fifo_returns_promptly() {
    let e = Env::new();
    std::fs::create_dir_all(e.kubeconfig.parent().expect("parent")).expect("net.d");
    mkfifo(&e.kubeconfig);
    e.refused("FIFO");
}

#[test]
fn a_sparse_1_gib_file_is_refused_without_reading_it() {
    let e = Env::new();
    e.write("");
    std::fs::OpenOptions::new().write(true).open(&e.kubeconfig).and_then(|f| f.set_len(1 << 30)).expect("grow");
    e.refused("larger than");
}

#[test]
fn a_group_writable_directory_is_refused() {
    let e = Env::new();
    e.api.write_kubeconfig(&e.kubeconfig);
    let dir = e.kubeconfig.parent().expect("parent");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let msg = e.refused("writable by group or others");
    assert!(msg.contains(&dir.display().to_string()), "the message names the directory: {msg}");
}

#[test]
fn a_kubeconfig_owned_by_another_user_is_refused() {
    let e = Env::new();
    e.api.write_kubeconfig(&e.kubeconfig);
    std::os::unix::fs::chown(&e.kubeconfig, Some(65534), Some(65534)).expect("chown");
    e.refused("owned by uid 65534");
}

#[test]
fn a_parse_error_quotes_nothing_of_the_file() {
    // A root-owned file that is not a kubeconfig (the allow-listed path holding something else).
    let e = Env::new();
    e.write(&format!("users: {DECOY}\nclusters: [{DECOY}\n"));
    e.refused("line ");
}

#[test]
fn gc_with_an_operator_kubeconfig_runs_no_plugin_either() {
    // The operator's file may live anywhere and name files, but kube would run a plugin blocking,
    // past every bound of a pass: refused, and the command says why.
    let e = Env::new();
    let path = e.node.path("kube/config");
    let user = format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"touch {}\"]\n", e.marker().display());
    fakeapi::write_private(&path, e.api.kubeconfig_text(&user).as_bytes());
    let run = gc(&e.node, &path);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(!e.marker().exists(), "gc ran the kubeconfig's exec plugin: {text}");
    assert!(text.contains("uses exec"), "gc should report the refused plugin: {text}");
    // The same file with a tokenFile (a file reference, fine for the operator) reaches the server.
    let token = e.node.path("kube/token");
    fakeapi::write_private(&token, fakeapi::TOKEN.as_bytes());
    fakeapi::write_private(&path, e.api.kubeconfig_text(&format!("    tokenFile: {}\n", token.display())).as_bytes());
    e.api.add_node("node-1");
    let run = gc(&e.node, &path);
    assert_eq!(run.code, Some(0), "gc with an operator tokenFile failed: {run:?}");
}

/// `userspace gc --json --kubeconfig PATH` on this node, bounded.
fn gc(node: &Node, kubeconfig: &Path) -> Run {
    let path = kubeconfig.display().to_string();
    node.exec_bounded(
        support::PLUGIN_BIN,
        &["gc", "--json", "--kubeconfig", &path],
        &[("NODE_NAME".into(), "node-1".into())],
        b"",
        LIMIT,
    )
    .unwrap_or_else(|err| panic!("gc did not return: {err}"))
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", p.display());
}
