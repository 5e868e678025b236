//! Tests of the settings layers: defaults, the file, the environment, derived allowed roots, and
//! errors that name key and source with the documented codes.

use super::*;
use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;
use userspace_cni_api::{Mount, Propagation, SettingKind};

/// The backends linked into the plugin (OVS-DPDK and VPP), whose declarations the loader reads.
fn linked() -> &'static [&'static BackendRegistration] {
    static REGISTRY: OnceLock<crate::pipeline::Registry> = OnceLock::new();
    REGISTRY.get_or_init(crate::pipeline::Registry::linked).registrations()
}

/// The loader with the linked backends' declarations.
fn load_from(env: impl Fn(&str) -> Option<String>) -> Result<NodeSettings, SettingsError> {
    super::load_from(linked(), env)
}

/// What a backend reads for `engine`'s `key` (the set value or the declared default).
fn engine_value(s: &NodeSettings, engine: &str, key: &str) -> String {
    let reg = linked().iter().find(|r| r.engine == engine).expect("a linked engine");
    let spec = reg.settings.iter().find(|d| d.key == key).expect("a declared key");
    s.engine(engine).get(spec).to_owned()
}

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
    assert_eq!(
        with_engine_defaults(s, linked()),
        with_engine_defaults(NodeSettings::default(), linked()),
        "config/userspace.toml must set every key to its default"
    );
    let text = std::fs::read_to_string(example).unwrap();
    for key in KEYS {
        assert!(text.contains(&format!("{key} =")), "config/userspace.toml must document {key}");
    }
    for ek in engine_keys(linked()) {
        assert!(
            text.contains(&format!("[engines.{}]", ek.engine)),
            "config/userspace.toml lacks [engines.{}]",
            ek.engine
        );
        assert!(text.contains(&format!("{} =", ek.spec.key)), "config/userspace.toml must document {}", ek.name());
        assert!(text.contains(&ek.env_var()), "config/userspace.toml must name {}", ek.env_var());
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
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovsdb"), "unix:/srv/ovs/db.sock", "file beats default");
    assert_eq!(s.timeout_ms, 100);
    assert_eq!(s.deadline_ms, 9000);
    assert_eq!(s.annotations, AnnotationMode::InCluster);
    assert_eq!(s.kubelet_root, PathBuf::from("/tmp/t1/kubelet"), "paths are normalised");
    assert_eq!(engine_value(&s, "vpp", "api_socket"), "/run/vpp/api.sock", "an empty variable is unset");
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
    let f = file_with("");
    assert!(
        load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap().engines.is_empty(),
        "nothing set, nothing stored"
    );
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

#[test]
fn dra_dir_acl_users_are_numeric_uids_from_the_file_or_the_environment() {
    assert!(NodeSettings::default().dra.dir_acl_users.is_empty(), "no ACL unless asked for");
    let f = file_with("dra_dir_acl_users = [4242, \"1000\"]\n");
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(s.dra.dir_acl_users, [4242, 1000]);
    let s = load_from(env_of(&[("USERSPACE_CNI_DRA_DIR_ACL_USERS", "4242::1000:")])).unwrap();
    assert_eq!(s.dra.dir_acl_users, [4242, 1000]);
    let f = file_with("dra_dir_acl_users = 4242\n");
    assert_eq!(load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap().dra.dir_acl_users, [4242]);
    let f = file_with("dra_dir_acl_users = []\n");
    assert!(load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap().dra.dir_acl_users.is_empty());
}

#[test]
fn hostile_dra_dir_acl_users_are_refused_with_what_to_write_instead() {
    // From the environment: code 4, the variable named, the remedy in the message.
    for (value, says) in [
        ("-1", "digits only"),
        ("0", "root passes every permission check"),
        ("4294967295", "(uid_t)-1"),
        ("4294967296", "4294967294"),
        ("99999999999999999999", "4294967294"),
        ("openvswitch", "id -u <name>"),
        ("ovs/user", "digits only"),
        ("../../etc/passwd", "digits only"),
        ("42\u{0}42", "digits only"),
        ("4242:4242", "listed twice"),
        ("4242,1000", "digits only"),
        (" 4242", "digits only"),
        ("0107", "without a leading 0"),
    ] {
        let e = load_from(env_of(&[("USERSPACE_CNI_DRA_DIR_ACL_USERS", value)])).expect_err(value);
        let msg = e.to_string();
        assert!(msg.contains("USERSPACE_CNI_DRA_DIR_ACL_USERS") && msg.contains(says), "{value:?}: {msg}");
        assert_eq!(code(e), codes::INVALID_ENV, "{value:?}");
    }
    // From the file: code 7, the key named.
    for (text, says) in [
        ("dra_dir_acl_users = [-1]", "digits only"),
        ("dra_dir_acl_users = [0]", "root"),
        ("dra_dir_acl_users = [4294967296]", "4294967294"),
        ("dra_dir_acl_users = [107, 107]", "listed twice"),
        ("dra_dir_acl_users = [\"qemu\"]", "names are not looked up"),
        ("dra_dir_acl_users = [true]", "numeric uids"),
        ("dra_dir_acl_users = [[4242]]", "numeric uids"),
        ("dra_dir_acl_users = 4242.0", "numeric uids"),
    ] {
        let f = file_with(text);
        let e = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).expect_err(text);
        let msg = e.to_string();
        assert!(msg.starts_with("dra_dir_acl_users from settings file") && msg.contains(says), "{text}: {msg}");
        assert_eq!(code(e), codes::INVALID_NETCONF, "{text}");
    }
    let many = (1..=33).map(|n| n.to_string()).collect::<Vec<_>>().join(":");
    let e = load_from(env_of(&[("USERSPACE_CNI_DRA_DIR_ACL_USERS", &many)])).unwrap_err();
    assert!(e.to_string().contains("at most 32"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Engine settings: declared by each backend, `[engines.<engine>]` tables, older flat keys.

/// A third backend's setting without an older spelling, as a new engine would declare it.
const NOTE: SettingSpec = SettingSpec {
    key: "note",
    kind: SettingKind::Text { max: 16 },
    default: "hello",
    doc: "a test setting",
    legacy_key: None,
    mount: None,
};
const SPOOL: SettingSpec = SettingSpec {
    key: "spool",
    kind: SettingKind::Dir,
    default: "/var/spool/third",
    doc: "a test directory",
    legacy_key: None,
    mount: Some(Mount {
        volume: "third-spool",
        dir: "/var/spool/third",
        propagation: Propagation::None,
        read_only: false,
        must_exist: false,
        why: "test",
    }),
};

fn third_make() -> Box<dyn userspace_cni_api::Backend> {
    Box::new(userspace_cni_api::Typed(userspace_cni_ovs_dpdk::OvsDpdkBackend))
}

static THIRD: BackendRegistration =
    BackendRegistration { engine: "third-dp", description: "test", make: third_make, settings: &[NOTE, SPOOL] };

fn with_third() -> Vec<&'static BackendRegistration> {
    let mut regs = linked().to_vec();
    regs.push(&THIRD);
    regs
}

#[test]
fn the_linked_declarations_are_sound_and_never_clash() {
    let mut names: HashMap<String, String> = KEYS.iter().map(|k| (env_var(k), format!("key {k}"))).collect();
    let mut flat: Vec<&str> = KEYS.to_vec();
    for r in with_third() {
        assert_eq!(userspace_cni_api::engine_settings::check_declarations(r.engine, r.settings), Ok(()));
        for spec in r.settings {
            let ek = EngineKey { engine: r.engine, spec };
            if let Some(other) = names.insert(ek.env_var(), ek.name()) {
                panic!("{} and {other} share the variable {}", ek.name(), ek.env_var());
            }
            if let Some(l) = spec.legacy_key {
                assert!(!flat.contains(&l), "{}'s older key {l} is already a key", ek.name());
                flat.push(l);
            }
        }
    }
    assert!(!KEYS.contains(&ENGINES_KEY));
}

#[test]
fn engine_tables_set_engine_settings_and_unset_keys_keep_their_defaults() {
    let f = file_with(
        r#"
state_dir = "/srv/state"

[engines.ovs-dpdk]
ovsdb = "unix:/srv/ovs//db.sock"

[engines.vpp]
api_socket = "/srv/vpp/api.sock"
"#,
    );
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(s.state_dir, PathBuf::from("/srv/state"), "top-level keys before the tables still count");
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovsdb"), "unix:/srv/ovs/db.sock", "normalised");
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovs_sock_dir"), "/var/run/openvswitch", "the declared default");
    assert_eq!(engine_value(&s, "vpp", "api_socket"), "/srv/vpp/api.sock");
    // What the backends themselves read.
    let ovs = userspace_cni_ovs_dpdk::settings::OvsSettings::from_node(&s);
    assert_eq!(ovs.ovsdb_socket(), Some(PathBuf::from("/srv/ovs/db.sock")));
    let vpp = userspace_cni_vpp::settings::VppSettings::from_node(&s);
    assert_eq!(vpp.api_socket, PathBuf::from("/srv/vpp/api.sock"));
}

#[test]
fn the_older_flat_keys_and_their_variables_keep_working() {
    let f = file_with(
        r#"
ovsdb = "unix:/srv/a/db.sock"
ovs_sock_dir = "/srv/a"
vpp_api_socket = "/srv/vpp.sock"
"#,
    );
    let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovsdb"), "unix:/srv/a/db.sock");
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovs_sock_dir"), "/srv/a");
    assert_eq!(engine_value(&s, "vpp", "api_socket"), "/srv/vpp.sock");

    let s = load_from(env_of(&[
        ("USERSPACE_CNI_OVSDB", "unix:/e/db.sock"),
        ("USERSPACE_CNI_OVS_SOCK_DIR", "/e/socks/"),
        ("USERSPACE_CNI_VPP_API_SOCKET", "/e/api.sock"),
    ]))
    .unwrap();
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovsdb"), "unix:/e/db.sock");
    assert_eq!(engine_value(&s, "ovs-dpdk", "ovs_sock_dir"), "/e/socks");
    assert_eq!(engine_value(&s, "vpp", "api_socket"), "/e/api.sock");
}

#[test]
fn the_environment_beats_the_file_in_either_spelling() {
    for text in ["ovsdb = \"unix:/file/db.sock\"", "[engines.ovs-dpdk]\novsdb = \"unix:/file/db.sock\""] {
        let f = file_with(text);
        let s =
            load_from(env_of(&[(CONFIG_ENV, &path_str(&f)), ("USERSPACE_CNI_OVSDB", "unix:/env/db.sock")])).unwrap();
        assert_eq!(engine_value(&s, "ovs-dpdk", "ovsdb"), "unix:/env/db.sock", "{text}");
        // An empty variable is unset, as for every key.
        let s = load_from(env_of(&[(CONFIG_ENV, &path_str(&f)), ("USERSPACE_CNI_OVSDB", "")])).unwrap();
        assert_eq!(engine_value(&s, "ovs-dpdk", "ovsdb"), "unix:/file/db.sock", "{text}");
    }
}

#[test]
fn a_new_engine_setting_has_its_table_and_a_variable_named_after_engine_and_key() {
    let regs = with_third();
    let f = file_with("[engines.third-dp]\nnote = \"from file\"");
    let s = super::load_from(&regs, env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap();
    assert_eq!(s.engine("third-dp").get(&NOTE), "from file");
    assert_eq!(s.engine("third-dp").get(&SPOOL), "/var/spool/third", "the declared default");
    let s =
        super::load_from(&regs, env_of(&[(CONFIG_ENV, &path_str(&f)), ("USERSPACE_CNI_THIRD_DP_NOTE", "from env")]))
            .unwrap();
    assert_eq!(s.engine("third-dp").get(&NOTE), "from env");
    // Its volume joins the node-path table without a change to the plugin.
    let rows = crate::node_paths::node_paths(&regs);
    assert!(rows.iter().any(|r| r.volume == "third-spool" && r.default == "/var/spool/third"));
    // The same variable without the backend linked is nobody's: ignored like any stray variable.
    let s = load_from(env_of(&[("USERSPACE_CNI_THIRD_DP_NOTE", "x")])).unwrap();
    assert!(!s.engines.contains_key("third-dp"));
}

#[test]
fn unknown_engine_keys_and_tables_are_code_7_naming_key_table_and_file() {
    for (text, needles) in [
        ("[engines.ovs-dpdk]\novsdbb = \"unix:/x\"", &["\"ovsdbb\"", "[engines.ovs-dpdk]", "ovsdb, ovs_sock_dir"][..]),
        ("[engines.vpp]\nvpp_api_socket = \"/x\"", &["\"vpp_api_socket\"", "[engines.vpp]", "api_socket"][..]),
        ("[engines.ovs]\novsdb = \"unix:/x\"", &["[engines.ovs]", "ovs-dpdk, vpp"][..]),
        ("[engines.OVS-DPDK]\novsdb = \"unix:/x\"", &["[engines.OVS-DPDK]"][..]),
        ("engine = 1", &["unknown key \"engine\"", "[engines.<engine>]"][..]),
    ] {
        let f = file_with(text);
        let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap_err();
        let msg = err.to_string();
        for n in needles {
            assert!(msg.contains(n), "{text}: {msg} lacks {n}");
        }
        assert!(msg.contains(&path_str(&f)), "{text}: {msg}");
        assert_eq!(code(err), codes::INVALID_NETCONF, "{text}");
    }
}

#[test]
fn one_value_set_both_ways_in_the_file_is_an_error() {
    let f = file_with("vpp_api_socket = \"/a.sock\"\n[engines.vpp]\napi_socket = \"/b.sock\"");
    let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap_err();
    assert!(matches!(err, SettingsError::SetTwice { .. }), "{err:?}");
    assert!(err.to_string().contains("vpp_api_socket") && err.to_string().contains("[engines.vpp]"), "{err}");
    assert_eq!(code(err), codes::INVALID_NETCONF);
}

#[test]
fn bad_engine_values_name_the_key_its_source_and_what_is_expected() {
    for (text, needle) in [
        ("[engines.ovs-dpdk]\novsdb = \"tcp:127.0.0.1:6640\"", "engines.ovs-dpdk.ovsdb"),
        ("[engines.ovs-dpdk]\novsdb = \"unix:db.sock\"", "unix:<absolute path"),
        ("[engines.ovs-dpdk]\novs_sock_dir = \"/a/../b\"", "engines.ovs-dpdk.ovs_sock_dir"),
        ("[engines.vpp]\napi_socket = \"relative.sock\"", "absolute"),
        ("ovsdb = \"unix:/x/../db.sock\"", "ovsdb from settings file"),
    ] {
        let f = file_with(text);
        let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains(&path_str(&f)), "{text}: {msg}");
        assert_eq!(code(err), codes::INVALID_NETCONF, "{text}");
    }
    let regs = with_third();
    let err = super::load_from(&regs, env_of(&[("USERSPACE_CNI_THIRD_DP_NOTE", "a\u{7}bell")])).unwrap_err();
    assert!(err.to_string().contains("USERSPACE_CNI_THIRD_DP_NOTE"), "{err}");
    assert_eq!(code(err), codes::INVALID_ENV);
}

#[test]
fn hostile_engine_tables_are_clear_errors_never_panics() {
    let long_value = format!("/{}", "a".repeat(100_000));
    let long_key = "k".repeat(100_000);
    let cases: Vec<(String, &str)> = vec![
        ("[engines.ovs-dpdk]\novsdb = 5".into(), "engines.ovs-dpdk.ovsdb"),
        ("[engines.ovs-dpdk]\novsdb = true".into(), "engines.ovs-dpdk.ovsdb"),
        ("[engines.ovs-dpdk]\novsdb = [\"unix:/a\"]".into(), "an array"),
        ("[engines.ovs-dpdk.ovsdb]\npath = \"/a\"".into(), "a table"),
        ("[engines.ovs-dpdk]\novsdb = { path = \"/a\" }".into(), "a table"),
        ("engines = \"ovs-dpdk\"".into(), "[engines.<engine>]"),
        ("engines = [1, 2]".into(), "[engines.<engine>]"),
        ("[engines]\novs-dpdk = \"x\"".into(), "engines.ovs-dpdk"),
        ("[engines]\nvpp = 3".into(), "engines.vpp"),
        (format!("[engines.vpp]\napi_socket = \"{long_value}\""), "bytes)"),
        (format!("[engines.vpp]\n{long_key} = \"/a\""), "bytes)"),
        (format!("[engines.{long_key}]\nx = \"/a\""), "bytes)"),
        ("[engines.vpp]\napi_socket = \"/a\\u0000b\"".into(), "engines.vpp.api_socket"),
        ("[engines.\"\"]\nx = 1".into(), "[engines.]"),
    ];
    for (text, needle) in &cases {
        let f = file_with(text);
        let err = load_from(env_of(&[(CONFIG_ENV, &path_str(&f))])).unwrap_err();
        let msg = err.to_string();
        let head: String = text.chars().take(60).collect();
        assert!(msg.contains(needle), "{head}: {msg:.300}");
        assert!(msg.len() < 1500, "{head}: a {} byte message repeats the hostile input", msg.len());
        assert_eq!(code(err), codes::INVALID_NETCONF, "{head}");
    }
    // From the environment, an overlong value is refused the same way.
    let err = load_from(env_of(&[("USERSPACE_CNI_VPP_API_SOCKET", long_value.as_str())])).unwrap_err();
    assert!(err.to_string().len() < 1500 && err.to_string().contains("USERSPACE_CNI_VPP_API_SOCKET"));
    assert_eq!(code(err), codes::INVALID_ENV);
}

#[test]
fn node_name_env_is_checked_like_the_setting_and_quoted_only_in_part() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let unset = load_from(env_of(&[])).unwrap();
    assert_eq!(node_name_from(&unset, None), Ok(None));
    assert_eq!(node_name_from(&unset, Some(OsString::new())), Ok(None), "empty is unset");
    assert_eq!(node_name_from(&unset, Some("worker-0.lab".into())), Ok(Some("worker-0.lab".into())));
    // Hostile values: multi-byte characters past a byte cut, a selector injection, a path, too
    // long, not UTF-8. Each is refused with a message that names the variable and the remedy.
    let long_multibyte = "é".repeat(300);
    for bad in [
        OsString::from(long_multibyte.as_str()),
        OsString::from("worker-0,spec.driver=x"),
        OsString::from("../../etc"),
        OsString::from("Worker-0"),
        OsString::from("n".repeat(254)),
        OsString::from_vec(vec![b'w', 0xff, b'x']),
    ] {
        let e = node_name_from(&unset, Some(bad.clone())).expect_err(&format!("{bad:?} refused"));
        assert!(e.contains("NODE_NAME") && e.contains("spec.nodeName"), "{e}");
        assert!(e.chars().count() < 300, "the value is quoted in part only: {e}");
    }
    // The setting wins over the variable (it was checked when loaded).
    let set = load_from(env_of(&[("USERSPACE_CNI_NODE_NAME", "worker-1")])).unwrap();
    assert_eq!(node_name_from(&set, Some("../x".into())), Ok(Some("worker-1".into())));
}
