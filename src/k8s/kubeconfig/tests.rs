use super::*;

const PATH: &str = "/etc/cni/net.d/multus.d/multus.kubeconfig";
/// Stands for any value of the file: it must never reach a message.
const SECRET: &str = "SECRET-VALUE-7f3a";

fn path() -> &'static Path {
    Path::new(PATH)
}

/// A Multus-shaped kubeconfig (inline credentials only) with `user` and `cluster` spliced into
/// its one user and cluster, and a second, unused user `spare` with `spare_user`.
fn doc(user: &str, cluster: &str, spare_user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:6443\n    \
         certificate-authority-data: Zm9v\n{cluster}users:\n- name: multus\n  user:\n    token: {SECRET}\n{user}\
         - name: spare\n  user:\n    token: {SECRET}\n{spare_user}contexts:\n- name: ctx\n  context:\n    \
         cluster: local\n    user: multus\ncurrent-context: ctx\n"
    )
}

fn assert_no_contents(msg: &str) {
    assert!(!msg.contains(SECRET), "a message quotes the file's contents: {msg}");
}

#[test]
fn inline_credentials_are_accepted() {
    let ok = [
        doc("", "", ""),
        doc("    client-certificate-data: Zm9v\n    client-key-data: Zm9v\n", "", ""),
        doc("    username: u\n    password: p\n", "", ""),
        doc("", "    insecure-skip-tls-verify: false\n", ""),
    ];
    for text in ok {
        assert!(parse(path(), text.as_bytes(), Trust::NetworkConfig).is_ok(), "refused:\n{text}");
    }
}

#[test]
fn plugins_and_file_references_are_refused_in_any_entry() {
    // (what is spliced in, into which entry, the field named, the entry named)
    let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      \
                args: [\"-c\", \"touch /tmp/pwned\"]\n";
    let provider = "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh\n";
    let cases: &[(&str, &str, &str, Field, &str)] = &[
        (exec, "", "", Field::Exec, "user \"multus\""),
        (provider, "", "", Field::AuthProvider, "user \"multus\""),
        ("    tokenFile: /root/secret\n", "", "", Field::TokenFile, "user \"multus\""),
        ("    token-file: /root/secret\n", "", "", Field::TokenFile, "user \"multus\""),
        ("    client-certificate: /root/c.pem\n", "", "", Field::ClientCertificate, "user \"multus\""),
        ("    client-key: /root/k.pem\n", "", "", Field::ClientKey, "user \"multus\""),
        ("", "    certificate-authority: /root/ca.pem\n", "", Field::CertificateAuthority, "cluster \"local\""),
        // A user no context uses is checked as well.
        ("", "", exec, Field::Exec, "user \"spare\""),
        ("", "", "    tokenFile: /root/secret\n", Field::TokenFile, "user \"spare\""),
    ];
    for (user, cluster, spare, field, entry) in cases {
        let text = doc(user, cluster, spare);
        let e = parse(path(), text.as_bytes(), Trust::NetworkConfig).expect_err(field.key());
        assert!(matches!(&e, KubeconfigError::Refused { field: f, .. } if f == field), "{field:?}: {e}");
        let cni = CniError::from(e.clone());
        assert_eq!(cni.code, codes::INVALID_NETCONF, "{field:?}: {cni:?}");
        let msg = e.to_string();
        assert!(msg.contains(PATH) && msg.contains(entry) && msg.contains(field.key()), "{field:?}: {msg}");
        assert_no_contents(&msg);
        assert!(!msg.contains("/root/") && !msg.contains("/bin/sh"), "{field:?}: {msg}");
    }
}

#[test]
fn exec_message_says_plugins_are_refused_for_a_network_config() {
    let text = doc("    exec:\n      command: /bin/true\n", "", "");
    let msg = parse(path(), text.as_bytes(), Trust::NetworkConfig).unwrap_err().to_string();
    assert!(msg.contains("uses exec; credential plugins are refused in a kubeconfig a network config names"), "{msg}");
}

#[test]
fn an_operator_file_may_name_files_but_not_run_plugins() {
    for user in ["    tokenFile: /var/run/token\n", "    client-certificate: /p/c.pem\n    client-key: /p/k.pem\n"] {
        let text = doc(user, "    certificate-authority: /p/ca.pem\n", "");
        assert!(parse(path(), text.as_bytes(), Trust::Operator).is_ok(), "refused:\n{text}");
    }
    for user in ["    exec:\n      command: /bin/true\n", "    auth-provider:\n      name: oidc\n"] {
        let e = parse(path(), doc(user, "", "").as_bytes(), Trust::Operator).unwrap_err();
        assert!(e.to_string().contains("blocking child process"), "{e}");
    }
}

#[test]
fn parse_errors_give_a_line_and_column_never_a_value() {
    let cases = [
        // Wrong types: serde's messages quote the value they met.
        format!("apiVersion: v1\nusers: {SECRET}\n"),
        format!("clusters:\n- name: c\n  cluster:\n    insecure-skip-tls-verify: {SECRET}\n"),
        format!("users:\n- name: u\n  user:\n    token: [{SECRET}]\n"),
        // Not YAML at all (a root-only file of another kind).
        format!("root:x:0:0:{SECRET}:/root:/bin/bash\n\t{SECRET}: [\n"),
        format!("{{\"{SECRET}\": {SECRET}"),
        format!("- {SECRET}\n"),
    ];
    for text in cases {
        let e = parse(path(), text.as_bytes(), Trust::NetworkConfig).expect_err(&text);
        assert!(matches!(e, KubeconfigError::Syntax { .. }), "{text:?}: {e}");
        let msg = e.to_string();
        assert_no_contents(&msg);
        assert!(msg.contains(PATH) && msg.contains("contents are not shown"), "{msg}");
        assert_eq!(CniError::from(e).code, codes::INVALID_NETCONF);
    }
    let e = parse(path(), b"users:\n- name: u\n  user: {SECRET}\n  x: [\n", Trust::NetworkConfig).unwrap_err();
    assert!(e.to_string().contains("line "), "a location when the parser has one: {e}");
}

#[test]
fn bytes_that_are_not_text_are_refused_without_quoting_them() {
    let mut bytes = SECRET.as_bytes().to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00]);
    let e = parse(path(), &bytes, Trust::NetworkConfig).unwrap_err();
    assert!(matches!(e, KubeconfigError::NotText { .. }), "{e}");
    assert_no_contents(&e.to_string());
}

#[test]
fn an_alias_bomb_ends_promptly() {
    // Billion laughs: nine levels of ten aliases each, well under the size cap.
    let mut text = String::from("a: &a [\"lol\"]\n");
    let mut prev = 'a';
    for name in 'b'..='j' {
        text.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 10].join(",")));
        prev = name;
    }
    let started = std::time::Instant::now();
    let _ = parse(path(), text.as_bytes(), Trust::NetworkConfig);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn kube_errors_become_fixed_reasons() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cases = [
        (doc("", "", "").replace("current-context: ctx\n", ""), "no current-context"),
        (doc("", "", "").replace("current-context: ctx", &format!("current-context: {SECRET}")), "names no context"),
        (
            doc("", "", "").replace("    cluster: local\n    user", &format!("    cluster: {SECRET}\n    user")),
            "names no cluster",
        ),
        (
            doc("", "", "")
                .replace("certificate-authority-data: Zm9v", &format!("certificate-authority-data: {SECRET}!")),
            "certificate-authority-data",
        ),
    ];
    for (text, want) in cases {
        let kc = parse(path(), text.as_bytes(), Trust::NetworkConfig).expect("parses");
        let e = rt.block_on(with_kube_config_of(kc)).expect_err(want);
        let msg = e.to_string();
        assert!(msg.contains(want), "{want}: {msg}");
        assert_no_contents(&msg);
    }
}

async fn with_kube_config_of(kc: kube::config::Kubeconfig) -> Result<kube::Config, KubeconfigError> {
    super::with_kube::config_of(path(), kc).await
}

/// A directory tree for `read`: root-owned and closed to others when the tests run as root.
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::Builder::new().prefix("uscni-kc-").tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Tree(t)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

fn running_as_root() -> bool {
    // SAFETY: no arguments, no memory.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn read_refuses_fifos_symlinks_and_oversized_files_promptly() {
    if !running_as_root() {
        eprintln!("skipped: the root-owned rules need the tests to run as root");
        return;
    }
    let t = Tree::new();
    let decoy = t.file("decoy", SECRET);
    let fifo = t.0.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let link = t.0.path().join("link");
    std::os::unix::fs::symlink(&decoy, &link).unwrap();
    let big = t.0.path().join("big");
    std::fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
    for trust in [Trust::NetworkConfig, Trust::Operator] {
        let started = std::time::Instant::now();
        let e = read(&fifo, trust).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{trust:?}: {e}");
        let e = read(&big, trust).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{trust:?}: {e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{trust:?}: {:?}", started.elapsed());
        let e = read(&t.0.path().join("absent"), trust).unwrap_err();
        assert!(matches!(e, KubeconfigError::Missing { .. }), "{e}");
    }
    let e = read(&link, Trust::NetworkConfig).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_no_contents(&e.to_string());
    assert_eq!(read(&decoy, Trust::NetworkConfig).unwrap(), SECRET.as_bytes());
}

#[test]
fn codes_are_mapped_in_one_place() {
    let p = PathBuf::from(PATH);
    let code = |e: KubeconfigError| CniError::from(e).code;
    assert_eq!(code(KubeconfigError::Read { path: p.clone(), reason: "EIO".into() }), codes::IO_FAILURE);
    assert_eq!(code(KubeconfigError::Missing { path: p.clone() }), codes::INVALID_NETCONF);
    assert_eq!(code(KubeconfigError::Untrusted { path: p.clone(), reason: "x".into() }), codes::INVALID_NETCONF);
    assert_eq!(code(KubeconfigError::Unusable { path: p.clone(), reason: "x" }), codes::INVALID_NETCONF);
    // Through the module's error as the client returns it.
    let via = CniError::from(crate::k8s::K8sError::from(KubeconfigError::NotText { path: p }));
    assert_eq!(via.code, codes::INVALID_NETCONF);
}
