//! Tests of the settings layers: defaults, the file, the environment, derived allowed roots, and
//! errors that name key and source with the documented codes.

use super::*;
use std::collections::HashMap;
use std::io::Write;

/// An environment with only these variables, and the settings file pointed at a path that does
/// not exist unless the test names one (so the host's /etc never leaks into a test).
fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn path_str(f: &tempfile::NamedTempFile) -> String {
    f.path().to_str().unwrap().to_owned()
}

fn code(e: SettingsError) -> u32 {
    CniError::from(e).code
}

#[test]
fn env_var_names_follow_the_design_table() {
    assert_eq!(env_var("state_dir"), "USERSPACE_CNI_STATE_DIR");
    assert_eq!(env_var("allowed_roots"), "USERSPACE_CNI_ALLOWED_ROOTS");
    assert_eq!(env_var("config"), CONFIG_ENV);
}

#[test]
fn an_empty_file_gives_the_built_in_defaults() {
    let f = file_with("");
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(s, NodeSettings::default());
}

#[test]
fn the_example_file_documents_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/userspace.toml");
    let s = load_from(env_of(&[(CONFIG_ENV, example)])).unwrap();
    assert_eq!(s, NodeSettings::default(), "config/userspace.toml must set every key to its default");
    let text = std::fs::read_to_string(example).unwrap();
    for key in KEYS {
        assert!(text.contains(&format!("{key} =")), "config/userspace.toml must document {key}");
    }
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let f = file_with(
        r#"
        state_dir = "/srv/state"
        ovsdb = "unix:/srv/ovs/db.sock"
        timeout_ms = 2500
        deadline_ms = "9000"
        annotations = "off"
        shared_dir = "/srv/shared"
        "#,
    );
    let s = load_from(env_of(&[
        (CONFIG_ENV, &path_str(&f)),
        ("USERSPACE_CNI_STATE_DIR", "/tmp/t1/state"),
        ("USERSPACE_CNI_TIMEOUT_MS", "100"),
        ("USERSPACE_CNI_ANNOTATIONS", "in-cluster"),
        ("USERSPACE_CNI_KUBELET_ROOT", "/tmp/t1/kubelet/"),
        ("USERSPACE_CNI_VPP_API_SOCKET", ""),
    ]))
    .unwrap();
    assert_eq!(s.state_dir, PathBuf::from("/tmp/t1/state"), "env beats file");
    assert_eq!(s.ovsdb, "unix:/srv/ovs/db.sock", "file beats default");
    assert_eq!(s.timeout_ms, 100);
    assert_eq!(s.deadline_ms, 9000);
    assert_eq!(s.annotations, AnnotationMode::InCluster);
    assert_eq!(s.kubelet_root, PathBuf::from("/tmp/t1/kubelet"), "paths are normalised");
    assert_eq!(s.vpp_api_socket, NodeSettings::default().vpp_api_socket, "an empty variable is unset");
    assert_eq!(s.shared_dir, PathBuf::from("/srv/shared"));
}

#[test]
fn shared_roots_default_follows_the_effective_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let s = load_from(env_of(&[
        (CONFIG_ENV, "/nonexistent-but-unset-is-not-this"),
        ("USERSPACE_CNI_SHARED_DIR", shared.to_str().unwrap()),
    ]));
    // An explicitly named file must exist.
    assert!(matches!(s, Err(SettingsError::FileMissing { .. })), "{s:?}");

    let f = file_with(r#"short_socket_dir = "/srv/vhost""#);
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f)), ("USERSPACE_CNI_SHARED_DIR", shared.to_str().unwrap())]))
        .unwrap();
    assert_eq!(s.shared_roots, vec![shared.clone(), PathBuf::from("/srv/vhost")]);
    assert_eq!(s.log_roots, vec![PathBuf::from("/var/log/userspace-cni")]);
    assert_eq!(s.device_info_roots, vec![PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo")]);
    assert_eq!(s.kubeconfig_files.len(), 3);
}

#[test]
fn per_key_roots_from_env_file_array_and_file_string() {
    let f = file_with(
        r#"shared_roots = ["/a", "/b/./c/"]
log_roots = "/l:/m"
device_info_roots = ["/d"]
kubeconfig_files = ["/etc/k/kc"]"#,
    );
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(s.shared_roots, vec![PathBuf::from("/a"), PathBuf::from("/b/c")]);
    assert_eq!(s.log_roots, vec![PathBuf::from("/l"), PathBuf::from("/m")]);
    assert_eq!(s.device_info_roots, vec![PathBuf::from("/d")]);
    assert_eq!(s.kubeconfig_files, vec![PathBuf::from("/etc/k/kc")]);

    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f)), ("USERSPACE_CNI_SHARED_ROOTS", "/x:/y/z:")])).unwrap();
    assert_eq!(s.shared_roots, vec![PathBuf::from("/x"), PathBuf::from("/y/z")]);

    let f = file_with("kubeconfig_files = []");
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert!(s.kubeconfig_files.is_empty(), "an explicit empty list allows no kubeconfig");
}

#[test]
fn deprecated_allowed_roots_sets_shared_and_log_roots_never_kubeconfig_or_device_info() {
    let f = file_with(r#"allowed_roots = ["/a", "/etc/cni/net.d"]"#);
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    let legacy = vec![PathBuf::from("/a"), PathBuf::from("/etc/cni/net.d")];
    assert_eq!(s.shared_roots, legacy);
    assert_eq!(s.log_roots, vec![PathBuf::from("/a")], "never a log root under /etc (the CNI config dir)");
    let d = NodeSettings::default();
    assert_eq!(s.kubeconfig_files, d.kubeconfig_files, "allowed_roots must not widen the kubeconfig allow-list");
    assert_eq!(s.device_info_roots, d.device_info_roots);
    // An explicit new key wins over the deprecated one.
    let f = file_with("allowed_roots = [\"/a\"]\nlog_roots = [\"/l\"]");
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(s.log_roots, vec![PathBuf::from("/l")]);
    assert_eq!(s.shared_roots, vec![PathBuf::from("/a")]);
}

#[test]
fn bad_env_values_are_code_4_and_name_variable_and_value() {
    for (var, value, needle) in [
        ("USERSPACE_CNI_TIMEOUT_MS", "ten", "timeout_ms from environment variable USERSPACE_CNI_TIMEOUT_MS is \"ten\""),
        ("USERSPACE_CNI_DEADLINE_MS", "0", "at least 1"),
        ("USERSPACE_CNI_DEADLINE_MS", "-5", "milliseconds"),
        ("USERSPACE_CNI_STATE_DIR", "relative/state", "absolute path"),
        ("USERSPACE_CNI_SHARED_DIR", "/a/../b", "without '..'"),
        ("USERSPACE_CNI_ANNOTATIONS", "sometimes", "auto, in-cluster, off"),
        ("USERSPACE_CNI_OVSDB", "tcp:127.0.0.1:6640", "unix:<absolute path"),
        ("USERSPACE_CNI_OVSDB", "unix:db.sock", "unix:<absolute path"),
        ("USERSPACE_CNI_ALLOWED_ROOTS", "/ok:relative", "\"relative\""),
    ] {
        let f = file_with("");
        let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f)), (var, value)])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains(var), "{var}={value}: {msg}");
        assert_eq!(code(err), codes::INVALID_ENV, "{var}={value}");
    }
}

#[test]
fn bad_file_values_are_code_7_and_name_key_and_file() {
    for (text, needle) in [
        ("timeout_ms = -1", "timeout_ms"),
        ("timeout_ms = 1.5", "timeout_ms"),
        ("state_dir = 5", "state_dir"),
        ("state_dir = \"var/lib\"", "state_dir"),
        ("annotations = true", "annotations"),
        ("allowed_roots = [1]", "allowed_roots"),
        ("allowed_roots = { a = 1 }", "allowed_roots"),
        ("shared_roots = [\"rel\"]", "shared_roots"),
        ("kubeconfig_files = 3", "kubeconfig_files"),
        ("statedir = \"/x\"", "unknown key \"statedir\""),
        ("[section]\nstate_dir = \"/x\"", "unknown key \"section\""),
        ("State_Dir = \"/x\"", "unknown key \"State_Dir\""),
    ] {
        let f = file_with(text);
        let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains(&path_str(&f)), "{text}: {msg}");
        assert_eq!(code(err), codes::INVALID_NETCONF, "{text}");
    }
}

#[test]
fn broken_toml_is_code_7_and_a_missing_named_file_code_4() {
    let f = file_with("state_dir = \"/x");
    let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap_err();
    assert!(matches!(err, SettingsError::FileSyntax { .. }), "{err:?}");
    assert_eq!(code(err), codes::INVALID_NETCONF);

    let f = file_with("a = 1\na = 2");
    assert!(matches!(load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])), Err(SettingsError::FileSyntax { .. })));

    let err = load_from(env_of(&[(CONFIG_ENV, "/nonexistent/userspace.toml")])).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/userspace.toml"), "{err}");
    assert_eq!(code(err), codes::INVALID_ENV);
}

#[test]
fn odd_toml_keys_never_panic() {
    for text in ["\"a[-1]\" = 1", "\"state_dir[-100]\" = 1", "\"state_dir.x\" = 1", "\"\" = 1", "\"[\" = 2"] {
        let f = file_with(text);
        assert!(load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).is_err(), "{text}");
    }
}

#[test]
fn a_directory_as_the_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_from(env_of(&[(CONFIG_ENV, dir.path().to_str().unwrap())])).unwrap_err();
    assert!(matches!(err, SettingsError::FileUnreadable { .. }), "{err:?}");
    assert_eq!(code(err), codes::IO_FAILURE);
}

#[test]
fn a_config_key_in_the_file_is_inert() {
    let f = file_with("config = \"/elsewhere.toml\"");
    assert_eq!(load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap(), NodeSettings::default());
}

#[test]
fn dra_keys_from_the_file_and_the_environment() {
    let f = file_with(
        r#"
        node_name = "worker-0"
        dra_bridges = ["br-dpdk0=9000", "br-dpdk1"]
        dra_dir_group = 107
        dra_dir_mode = "2750"
        cdi_dir = "/srv/cdi"
        "#,
    );
    let s =
        load_from(env_of(&[(CONFIG_ENV, &path_str(&f)), ("USERSPACE_CNI_DRA_SOCKET_ROOT", "/srv/sockets")])).unwrap();
    assert_eq!(s.node_name.as_deref(), Some("worker-0"));
    assert_eq!(
        s.dra.bridges,
        [
            userspace_cni_api::DraBridge { name: "br-dpdk0".into(), mtu: 9000 },
            userspace_cni_api::DraBridge { name: "br-dpdk1".into(), mtu: 1500 }
        ]
    );
    assert_eq!(s.dra.dir_group.as_deref(), Some("107"));
    assert_eq!(s.dra.dir_mode, 0o2750);
    assert_eq!(s.dra.cdi_dir, PathBuf::from("/srv/cdi"));
    assert_eq!(s.dra.socket_root, PathBuf::from("/srv/sockets"));
    assert!(s.socket_dir_roots().contains(&PathBuf::from("/srv/sockets")));
    let env = load_from(env_of(&[("USERSPACE_CNI_DRA_BRIDGES", "br0:br1=1400")])).unwrap();
    assert_eq!(
        env.dra.bridges.iter().map(|b| (b.name.as_str(), b.mtu)).collect::<Vec<_>>(),
        [("br0", 1500), ("br1", 1400)]
    );
}

#[test]
fn bad_dra_values_name_the_key_and_what_is_expected() {
    for (var, value) in [
        ("USERSPACE_CNI_DRA_BRIDGES", "br0=67"),
        ("USERSPACE_CNI_DRA_BRIDGES", "br0=9703"),
        ("USERSPACE_CNI_DRA_BRIDGES", "Br0"),
        ("USERSPACE_CNI_DRA_BRIDGES", "../etc"),
        ("USERSPACE_CNI_DRA_BRIDGES", "br0:br0"),
        ("USERSPACE_CNI_DRA_DIR_MODE", "2777"),
        ("USERSPACE_CNI_DRA_DIR_MODE", "0070"),
        ("USERSPACE_CNI_DRA_DIR_MODE", "rwx"),
        ("USERSPACE_CNI_DRA_DIR_GROUP", "qemu;rm"),
        ("USERSPACE_CNI_DRA_DRIVER_NAME", "Ovs/Dpdk"),
        ("USERSPACE_CNI_NODE_NAME", "node_1"),
        ("USERSPACE_CNI_CDI_DIR", "var/run/cdi"),
    ] {
        let e = load_from(env_of(&[(var, value)])).expect_err(value);
        let msg = e.to_string();
        assert!(msg.contains(var), "{msg}");
        assert_eq!(code(e), codes::INVALID_ENV, "{var}={value}");
    }
}
