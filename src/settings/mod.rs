//! Node settings (DESIGN.md §6): built-in defaults < the TOML settings file < `USERSPACE_CNI_*`
//! environment variables, with the `config` crate. Reads only; never creates the file or any dir.
//!
//! Two kinds of keys. The plugin's own (`KEYS`) are top-level keys. Each engine's are declared by
//! its backend (`BackendRegistration::settings`) and live in that engine's table,
//! `[engines.<engine>]`; a declared key may also keep an older top-level spelling (`ovsdb`,
//! `ovs_sock_dir`, `vpp_api_socket`). Setting one value both ways in the file is an error, the
//! environment beats either: `USERSPACE_CNI_<LEGACY_KEY>` for a key with an older spelling, else
//! `USERSPACE_CNI_<ENGINE>_<KEY>` (upper case, `-` as `_`). This module names no engine's key.
//!
//! Error codes: a bad value from the environment (or `USERSPACE_CNI_CONFIG` naming a missing file)
//! is code 4 (INVALID_ENV: the caller's environment is wrong); a bad value or key in the file is
//! code 7 (invalid configuration, the closest spec code for the plugin's own config); a file that
//! exists but cannot be read is code 5 (IO_FAILURE). Every message names the key and its source.

use config::{Config, ConfigError, Environment, File, FileFormat, Source, ValueKind};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use userspace_cni_api::{codes, AnnotationMode, BackendRegistration, CniError, NodeSettings, SettingSpec};

/// The variable naming the settings file.
pub const CONFIG_ENV: &str = "USERSPACE_CNI_CONFIG";
/// Used when `USERSPACE_CNI_CONFIG` is unset; may be absent.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/userspace-cni/userspace.toml";
/// `USERSPACE_CNI_<KEY>` overrides the file's `<key>`.
pub const ENV_PREFIX: &str = "USERSPACE_CNI";

/// Every key of the plugin's own, as written in the file (lower case); the variable is the
/// upper-case form. Engines' keys are their backends' (`engine_keys`).
pub const KEYS: &[&str] = &[
    "state_dir",
    "kubelet_root",
    "short_socket_dir",
    "shared_dir",
    "timeout_ms",
    "deadline_ms",
    "allowed_roots",
    "shared_roots",
    "log_roots",
    "device_info_roots",
    "kubeconfig_files",
    "annotations",
    "device_host_dir",
    "cni_cache_dirs",
    "boot_id",
    "node_name",
    "dra_driver_name",
    "dra_socket_root",
    "dra_container_root",
    "dra_metadata_dir",
    "cdi_dir",
    "dra_bridges",
    "dra_dir_group",
    "dra_dir_mode",
    "dra_dir_acl_users",
    "dra_kubeconfig",
    "config",
];

/// The config crate's origin string for values from an `Environment` source.
const ENV_ORIGIN: &str = "the environment";
/// The file's key holding one table per engine.
pub const ENGINES_KEY: &str = "engines";
/// The longest key or value an error message repeats: a hostile file's megabyte key must not
/// become a megabyte CNI error.
const SHOWN_MAX: usize = 120;

/// One engine setting as the loader sees it: whose, which, and how the operator spells it.
#[derive(Debug, Clone, Copy)]
pub struct EngineKey {
    pub engine: &'static str,
    pub spec: &'static SettingSpec,
}

impl EngineKey {
    /// `engines.<engine>.<key>`, its name in messages.
    pub fn name(&self) -> String {
        format!("{ENGINES_KEY}.{}.{}", self.engine, self.spec.key)
    }

    /// The environment variable: the older flat key's, else `USERSPACE_CNI_<ENGINE>_<KEY>`.
    pub fn env_var(&self) -> String {
        match self.spec.legacy_key {
            Some(flat) => env_var(flat),
            None => env_var(&format!("{}_{}", self.engine.replace('-', "_"), self.spec.key)),
        }
    }
}

/// Every engine setting the given backends declare, in registration order.
pub fn engine_keys(regs: &[&'static BackendRegistration]) -> Vec<EngineKey> {
    regs.iter().flat_map(|r| r.settings.iter().map(|spec| EngineKey { engine: r.engine, spec })).collect()
}

/// `s` cut to `SHOWN_MAX` bytes (at a char boundary) for a message, marked when cut.
fn shown(s: &str) -> String {
    if s.len() <= SHOWN_MAX {
        return s.to_owned();
    }
    let mut end = SHOWN_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
}

impl Origin {
    fn code(&self) -> u32 {
        match self {
            Origin::File(_) => codes::INVALID_NETCONF,
            Origin::Env(_) => codes::INVALID_ENV,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "settings file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("settings file {} (named by {CONFIG_ENV}) does not exist; create it or unset {CONFIG_ENV}", path.display())]
    FileMissing { path: PathBuf },
    #[error("cannot read settings file {}: {reason}", path.display())]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("settings file {} is not valid TOML: {reason}", path.display())]
    FileSyntax { path: PathBuf, reason: String },
    #[error("unknown key {key:?} in settings file {}; known keys: {known}", path.display())]
    UnknownKey { key: String, path: PathBuf, known: String },
    #[error("unknown engine table [engines.{engine}] in settings file {}; this binary's engines with settings: {known}", path.display())]
    UnknownEngine { engine: String, path: PathBuf, known: String },
    #[error("unknown key {key:?} in table [engines.{engine}] of settings file {}; known keys there: {known}", path.display())]
    UnknownEngineKey { key: String, engine: String, path: PathBuf, known: String },
    #[error("settings file {} sets {name} twice, as {flat} and in [engines.{engine}]: keep one", path.display())]
    SetTwice { name: String, flat: &'static str, engine: &'static str, path: PathBuf },
    #[error("environment variable {var} is not valid UTF-8")]
    NotUnicode { var: String },
    #[error("{key} from {origin} is {value}; expected {expected}")]
    BadValue { key: String, origin: Origin, value: String, expected: &'static str },
}

impl From<SettingsError> for CniError {
    fn from(e: SettingsError) -> Self {
        let code = match &e {
            SettingsError::FileMissing { .. } | SettingsError::NotUnicode { .. } => codes::INVALID_ENV,
            SettingsError::FileUnreadable { .. } => codes::IO_FAILURE,
            SettingsError::FileSyntax { .. }
            | SettingsError::UnknownKey { .. }
            | SettingsError::UnknownEngine { .. }
            | SettingsError::UnknownEngineKey { .. }
            | SettingsError::SetTwice { .. } => codes::INVALID_NETCONF,
            SettingsError::BadValue { origin, .. } => origin.code(),
        };
        CniError::new(code, e.to_string())
    }
}

/// The variable for a key: `state_dir` → `USERSPACE_CNI_STATE_DIR`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.to_ascii_uppercase())
}

/// Load from the process environment (and the file it names), with the settings the linked
/// backends `regs` declare (`Registry::registrations`).
/// Whether `s` is a lower-case DNS subdomain (RFC 1123) of at most `max` bytes.
pub fn is_dns_subdomain(s: &str, max: usize) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= max && s.split('.').all(label_ok)
}

/// The variable a DaemonSet fills from the downward API (`spec.nodeName`).
pub const NODE_NAME_ENV: &str = "NODE_NAME";

/// This node's name: the setting `node_name` (checked when loaded), else `NODE_NAME`, checked
/// here the same way because it reaches object names and field selectors. `Ok(None)`: neither
/// is set.
pub fn node_name(settings: &NodeSettings) -> Result<Option<String>, String> {
    node_name_from(settings, std::env::var_os(NODE_NAME_ENV))
}

fn node_name_from(settings: &NodeSettings, env: Option<std::ffi::OsString>) -> Result<Option<String>, String> {
    if let Some(n) = &settings.node_name {
        return Ok(Some(n.clone()));
    }
    let Some(raw) = env.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match raw.into_string() {
        Ok(n) if is_dns_subdomain(&n, 253) => Ok(Some(n)),
        Ok(n) => Err(format!(
            "{NODE_NAME_ENV}={:?} is not a Kubernetes node name (a lower-case DNS subdomain of at most \
             253 bytes): set it from the downward API's spec.nodeName, or set node_name",
            n.chars().take(80).collect::<String>()
        )),
        Err(_) => {
            Err(format!("{NODE_NAME_ENV} is not UTF-8: set it from the downward API's spec.nodeName, or set node_name"))
        }
    }
}

pub fn load(regs: &[&'static BackendRegistration]) -> Result<NodeSettings, SettingsError> {
    // A variable that is not UTF-8 would otherwise be silently ignored.
    let vars = KEYS.iter().map(|k| env_var(k)).chain(engine_keys(regs).into_iter().map(|e| e.env_var()));
    for var in vars {
        if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(&var) {
            return Err(SettingsError::NotUnicode { var });
        }
    }
    load_from(regs, |name| std::env::var(name).ok())
}

/// Load with `env` standing in for the process environment (tests pass a map).
pub fn load_from(
    regs: &[&'static BackendRegistration],
    env: impl Fn(&str) -> Option<String>,
) -> Result<NodeSettings, SettingsError> {
    let engine_keys = engine_keys(regs);
    let (file, explicit) = match env(CONFIG_ENV).filter(|s| !s.is_empty()) {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    // Decide about the file ourselves: the config crate's optional file also hides "permission
    // denied", which must not silently drop the operator's settings.
    let use_file = match std::fs::metadata(&file) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SettingsError::FileMissing { path: file }),
        Err(e) => return Err(SettingsError::FileUnreadable { path: file, reason: e.to_string() }),
    };

    let vars: config::Map<String, String> =
        KEYS.iter().filter_map(|k| env(&env_var(k)).map(|v| (env_var(k), v))).collect();
    let mut builder = Config::builder();
    if use_file {
        builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml).required(true));
    }
    // Empty variables count as unset, as most shells' `VAR=` idiom means.
    builder = builder.add_source(Environment::with_prefix(ENV_PREFIX).source(Some(vars)).ignore_empty(true));
    let layered = builder.build().map_err(|e| file_error(&file, e))?;
    let values = layered.collect().map_err(|e| file_error(&file, e))?;

    let mut s = NodeSettings::default();
    let (mut shared_roots, mut log_roots, mut legacy_roots) = (None, None, None);
    let (mut flat_engine, mut tables) = (Vec::new(), None);
    // Sorted, so the first error reported does not depend on hash order.
    let mut entries: Vec<_> = values.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in entries {
        if key == ENGINES_KEY {
            tables = Some(value);
            continue;
        }
        // Engine keys never reach here from the environment (they are not in `vars`).
        if let Some(ek) = engine_keys.iter().find(|e| e.spec.legacy_key == Some(key.as_str())) {
            flat_engine.push((*ek, value));
            continue;
        }
        let Some(key) = KEYS.iter().copied().find(|k| *k == key) else {
            return Err(SettingsError::UnknownKey { key: shown(&key), path: file, known: known_keys(&engine_keys) });
        };
        let origin = match value.origin() {
            Some(ENV_ORIGIN) => Origin::Env(env_var(key)),
            _ => Origin::File(file.clone()),
        };
        let field = Field { key: key.into(), origin: origin.clone(), value: &value };
        match key {
            "state_dir" => s.state_dir = field.path()?,
            "kubelet_root" => s.kubelet_root = field.path()?,
            "short_socket_dir" => s.short_socket_dir = field.path()?,
            "shared_dir" => s.shared_dir = field.path()?,
            "timeout_ms" => s.timeout_ms = field.millis()?,
            "deadline_ms" => s.deadline_ms = field.millis()?,
            "annotations" => s.annotations = field.annotations()?,
            "device_host_dir" => s.device_host_dir = Some(field.device_dir()?),
            "cni_cache_dirs" => s.cni_cache_dirs = field.roots()?,
            "boot_id" => s.boot_id = Some(field.token("a boot id: 1-64 characters of letters, digits and '-'", 64)?),
            "node_name" => {
                s.node_name = Some(field.dns_name("a Kubernetes node name (lower-case DNS subdomain)", 253)?)
            }
            "dra_driver_name" => {
                s.dra.driver_name = field.dns_name("a DNS subdomain such as ovsdpdk.k8snetworkplumbingwg.io", 63)?
            }
            "dra_socket_root" => s.dra.socket_root = field.path()?,
            "dra_container_root" => s.dra.container_root = field.path()?,
            "dra_metadata_dir" => s.dra.metadata_dir = field.path()?,
            "cdi_dir" => s.dra.cdi_dir = field.path()?,
            "dra_bridges" => s.dra.bridges = field.bridges()?,
            "dra_dir_group" => s.dra.dir_group = field.group()?,
            "dra_dir_mode" => s.dra.dir_mode = field.mode()?,
            "dra_dir_acl_users" => s.dra.dir_acl_users = field.uids()?,
            "dra_kubeconfig" => s.dra.kubeconfig = Some(field.path()?),
            "log_roots" => log_roots = Some(field.roots()?),
            "device_info_roots" => s.device_info_roots = field.roots()?,
            "kubeconfig_files" => s.kubeconfig_files = field.roots()?,
            // Derived from the other dirs when unset, so read them after them.
            "shared_roots" => shared_roots = Some(field.roots()?),
            "allowed_roots" => legacy_roots = Some(field.roots()?),
            // The file's own location is chosen by the environment only; in the file it is inert.
            _ => tracing::debug!(key, "settings key ignored here"),
        }
    }
    // The deprecated `allowed_roots` (one list for every key) maps onto the keys that create
    // or write, never onto those that read files as root: `kubeconfig` has its allow-list
    // (`kubeconfig_files`) and the device-info file its dir (`device_info_roots`).
    if let Some(legacy) = &legacy_roots {
        tracing::warn!(
            "settings: allowed_roots is deprecated; it now sets shared_roots and log_roots where those are unset \
             (kubeconfig_files and device_info_roots are separate): docs/security.md"
        );
        shared_roots = shared_roots.or_else(|| Some(legacy.clone()));
        // Never a log root under /etc: the old default listed /etc/cni/net.d (for Multus's
        // kubeconfig), the runtime's config dir.
        let logs = legacy.iter().filter(|r| !r.starts_with("/etc")).cloned().collect();
        log_roots = log_roots.or(Some(logs));
    }
    s.shared_roots = shared_roots.unwrap_or_else(|| vec![s.shared_dir.clone(), s.short_socket_dir.clone()]);
    if let Some(r) = log_roots {
        s.log_roots = r;
    }
    s.engines = engine_values(&engine_keys, &file, flat_engine, tables, &env)?;
    Ok(s)
}

/// `s` with every declared engine setting it leaves unset at its default: what the backends
/// read, spelled out (comparisons of loaded settings, listings).
pub fn with_engine_defaults(mut s: NodeSettings, regs: &[&'static BackendRegistration]) -> NodeSettings {
    for ek in engine_keys(regs) {
        let table = s.engines.entry(ek.engine.into()).or_default();
        table.entry(ek.spec.key.into()).or_insert_with(|| ek.spec.default.into());
    }
    s
}

/// The known keys for an unknown-key message: the plugin's, the engines' older flat spellings,
/// and where the engines' tables are.
fn known_keys(engine_keys: &[EngineKey]) -> String {
    let flat = engine_keys.iter().filter_map(|e| e.spec.legacy_key);
    let mut known: Vec<&str> = KEYS.iter().copied().chain(flat).collect();
    known.sort_unstable();
    let mut engines: Vec<&str> = engine_keys.iter().map(|e| e.engine).collect();
    engines.dedup();
    format!("{}; and a table [engines.<engine>] for each of: {}", known.join(", "), engines.join(", "))
}

/// Every engine setting the node sets: the file's flat spellings and `[engines.*]` tables, then
/// the environment over them. Each value is checked against its declaration's kind.
fn engine_values(
    engine_keys: &[EngineKey],
    file: &Path,
    flat: Vec<(EngineKey, config::Value)>,
    tables: Option<config::Value>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, SettingsError> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let origin = Origin::File(file.to_path_buf());
    for (ek, value) in flat {
        let flat_key = ek.spec.legacy_key.unwrap_or(ek.spec.key);
        let v = Field { key: flat_key.into(), origin: origin.clone(), value: &value }.engine_value(ek.spec)?;
        out.entry(ek.engine.into()).or_default().insert(ek.spec.key.into(), v);
    }
    if let Some(tables) = tables {
        let table_expected = "one table per engine, [engines.<engine>] with key = \"value\" lines";
        let ValueKind::Table(engines) = tables.kind else {
            let f = Field { key: ENGINES_KEY.into(), origin, value: &tables };
            return Err(f.bad(table_expected));
        };
        // Sorted, so the first error reported does not depend on hash order.
        let mut engines: Vec<_> = engines.into_iter().collect();
        engines.sort_by(|a, b| a.0.cmp(&b.0));
        for (engine, table) in engines {
            let mine: Vec<&EngineKey> = engine_keys.iter().filter(|e| e.engine == engine).collect();
            if mine.is_empty() {
                let mut known: Vec<&str> = engine_keys.iter().map(|e| e.engine).collect();
                known.dedup();
                return Err(SettingsError::UnknownEngine {
                    engine: shown(&engine),
                    path: file.into(),
                    known: if known.is_empty() { "none".into() } else { known.join(", ") },
                });
            }
            let ValueKind::Table(keys) = &table.kind else {
                let f = Field { key: format!("{ENGINES_KEY}.{}", shown(&engine)), origin, value: &table };
                return Err(f.bad(table_expected));
            };
            let mut keys: Vec<_> = keys.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            for (key, value) in keys {
                let Some(ek) = mine.iter().find(|e| e.spec.key == key.as_str()) else {
                    return Err(SettingsError::UnknownEngineKey {
                        key: shown(key),
                        engine: engine.clone(),
                        path: file.into(),
                        known: mine.iter().map(|e| e.spec.key).collect::<Vec<_>>().join(", "),
                    });
                };
                let v = Field { key: ek.name(), origin: origin.clone(), value }.engine_value(ek.spec)?;
                let slot = out.entry(ek.engine.into()).or_default();
                if slot.contains_key(ek.spec.key) {
                    return Err(SettingsError::SetTwice {
                        name: ek.name(),
                        flat: ek.spec.legacy_key.unwrap_or(ek.spec.key),
                        engine: ek.engine,
                        path: file.into(),
                    });
                }
                slot.insert(ek.spec.key.into(), v);
            }
        }
    }
    for ek in engine_keys {
        let var = ek.env_var();
        // Empty variables count as unset, as for the plugin's own keys.
        let Some(raw) = env(&var).filter(|v| !v.is_empty()) else { continue };
        let value = config::Value::new(Some(&ENV_ORIGIN.to_owned()), raw);
        let key = ek.spec.legacy_key.map_or_else(|| ek.name(), str::to_owned);
        let v = Field { key, origin: Origin::Env(var), value: &value }.engine_value(ek.spec)?;
        out.entry(ek.engine.into()).or_default().insert(ek.spec.key.into(), v);
    }
    Ok(out)
}

fn file_error(file: &Path, e: ConfigError) -> SettingsError {
    match e {
        ConfigError::FileParse { cause, .. } => {
            SettingsError::FileSyntax { path: file.into(), reason: cause.to_string() }
        }
        ConfigError::Foreign(cause) => SettingsError::FileUnreadable { path: file.into(), reason: cause.to_string() },
        other => SettingsError::FileSyntax { path: file.into(), reason: other.to_string() },
    }
}

/// One value being converted, with what the error message needs.
struct Field<'a> {
    key: String,
    origin: Origin,
    value: &'a config::Value,
}

impl Field<'_> {
    fn bad(&self, expected: &'static str) -> SettingsError {
        let value = match &self.value.kind {
            ValueKind::String(s) => format!("{:?}", shown(s)),
            ValueKind::Table(_) => "a table".to_owned(),
            ValueKind::Array(_) => "an array".to_owned(),
            other => shown(&other.to_string()),
        };
        SettingsError::BadValue { key: self.key.clone(), origin: self.origin.clone(), value, expected }
    }

    /// An engine setting: a string of its declaration's kind, normalised.
    fn engine_value(&self, spec: &SettingSpec) -> Result<String, SettingsError> {
        let expected = spec.kind.expected();
        spec.kind.parse(self.string(expected)?).ok_or_else(|| self.bad(expected))
    }

    fn string(&self, expected: &'static str) -> Result<&str, SettingsError> {
        match &self.value.kind {
            ValueKind::String(s) => Ok(s),
            _ => Err(self.bad(expected)),
        }
    }

    fn path(&self) -> Result<PathBuf, SettingsError> {
        const EXPECTED: &str = "an absolute path without '..'";
        let s = self.string(EXPECTED)?;
        absolute(s).ok_or_else(|| self.bad(EXPECTED))
    }

    fn millis(&self) -> Result<u64, SettingsError> {
        const EXPECTED: &str = "a whole number of milliseconds, at least 1";
        let n = match &self.value.kind {
            ValueKind::I64(n) => u64::try_from(*n).ok(),
            ValueKind::U64(n) => Some(*n),
            ValueKind::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        n.filter(|n| *n >= 1).ok_or_else(|| self.bad(EXPECTED))
    }

    fn annotations(&self) -> Result<AnnotationMode, SettingsError> {
        const EXPECTED: &str = "one of auto, in-cluster, off";
        match self.string(EXPECTED)?.to_ascii_lowercase().as_str() {
            "auto" => Ok(AnnotationMode::Auto),
            "in-cluster" => Ok(AnnotationMode::InCluster),
            "off" => Ok(AnnotationMode::Off),
            _ => Err(self.bad(EXPECTED)),
        }
    }

    /// An absolute path template in which `{deviceID}` stands for a device's id.
    fn device_dir(&self) -> Result<String, SettingsError> {
        const EXPECTED: &str = "an absolute path without '..', e.g. \"/var/lib/vhost-dp/{deviceID}\"";
        let s = self.string(EXPECTED)?;
        let normal = absolute(s).ok_or_else(|| self.bad(EXPECTED))?;
        normal.to_str().map(str::to_owned).ok_or_else(|| self.bad(EXPECTED))
    }

    /// A short opaque token (a boot id): letters, digits and '-' only.
    fn token(&self, expected: &'static str, max: usize) -> Result<String, SettingsError> {
        let s = self.string(expected)?;
        if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(self.bad(expected));
        }
        Ok(s.to_owned())
    }

    /// A lower-case DNS subdomain of at most `max` bytes (node names, the DRA driver name).
    fn dns_name(&self, expected: &'static str, max: usize) -> Result<String, SettingsError> {
        let s = self.string(expected)?;
        if !is_dns_subdomain(s, max) {
            return Err(self.bad(expected));
        }
        Ok(s.to_owned())
    }

    /// `dra_bridges`: bridge names, each optionally `=<mtu>` (68-9702, the range KubeVirt's
    /// binding accepts); without one, 1500. A TOML array, or ':'-separated in the environment.
    fn bridges(&self) -> Result<Vec<userspace_cni_api::DraBridge>, SettingsError> {
        const EXPECTED: &str =
            "bridge names (DNS labels), each optionally with =<mtu> in 68..=9702, e.g. [\"br-dpdk0=9000\", \"br-dpdk1\"]";
        let items: Vec<String> = match &self.value.kind {
            ValueKind::String(s) => s.split(':').map(str::to_owned).collect(),
            ValueKind::Array(a) => a
                .iter()
                .map(|v| match &v.kind {
                    ValueKind::String(s) => Ok(s.clone()),
                    _ => Err(self.bad(EXPECTED)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(self.bad(EXPECTED)),
        };
        let bad = |item: &str| SettingsError::BadValue {
            key: self.key.clone(),
            origin: self.origin.clone(),
            value: format!("{item:?}"),
            expected: EXPECTED,
        };
        let mut out: Vec<userspace_cni_api::DraBridge> = Vec::new();
        for item in items.iter().filter(|s| !s.is_empty()) {
            let (name, mtu) = match item.split_once('=') {
                Some((n, m)) => (n, m.trim().parse::<u32>().map_err(|_| bad(item))?),
                None => (item.as_str(), userspace_cni_api::settings::DEFAULT_DRA_MTU),
            };
            let label = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !label || !(68..=9702).contains(&mtu) || out.iter().any(|b| b.name == name) {
                return Err(bad(item));
            }
            out.push(userspace_cni_api::DraBridge { name: name.to_owned(), mtu });
        }
        Ok(out)
    }

    /// A group name or numeric gid; "" means none.
    fn group(&self) -> Result<Option<String>, SettingsError> {
        const EXPECTED: &str = "a group name or numeric gid (\"\" for none)";
        let s = match &self.value.kind {
            ValueKind::I64(n) if *n >= 0 => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::String(s) => s.clone(),
            _ => return Err(self.bad(EXPECTED)),
        };
        if s.is_empty() {
            return Ok(None);
        }
        let ok = s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(self.bad(EXPECTED));
        }
        Ok(Some(s))
    }

    /// Numeric uids (`userspace_cni_support::acl::parse_uids`): a TOML array of integers or digit
    /// strings, or a ':'-separated string (the environment's form); [] for none.
    fn uids(&self) -> Result<Vec<u32>, SettingsError> {
        use userspace_cni_support::acl;
        let items: Vec<String> = match &self.value.kind {
            // Empty entries (a stray ':') are skipped, as in the other lists.
            ValueKind::String(s) => s.split(':').filter(|i| !i.is_empty()).map(str::to_owned).collect(),
            ValueKind::I64(n) => vec![n.to_string()],
            ValueKind::U64(n) => vec![n.to_string()],
            ValueKind::Array(a) => a
                .iter()
                .map(|v| match &v.kind {
                    ValueKind::String(s) => Ok(s.clone()),
                    ValueKind::I64(n) => Ok(n.to_string()),
                    ValueKind::U64(n) => Ok(n.to_string()),
                    _ => Err(self.bad(acl::WHY_FORMAT)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(self.bad(acl::WHY_FORMAT)),
        };
        acl::parse_uids(items.iter().map(String::as_str)).map_err(|(item, why)| SettingsError::BadValue {
            key: self.key.clone(),
            origin: self.origin.clone(),
            value: format!("{:?}", shown(&item)),
            expected: why,
        })
    }

    /// A directory mode in octal text (`"2770"`); never writable by others.
    fn mode(&self) -> Result<u32, SettingsError> {
        const EXPECTED: &str = "an octal directory mode such as \"2770\" (never writable by others)";
        let s = self.string(EXPECTED)?;
        let m = u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| self.bad(EXPECTED))?;
        if m > 0o7777 || m & 0o002 != 0 || m & 0o700 != 0o700 {
            return Err(self.bad(EXPECTED));
        }
        Ok(m)
    }

    /// A list of absolute paths: a TOML array of strings, or a ':'-separated string (the only
    /// form an environment variable has). Empty entries (a stray ':') are skipped.
    fn roots(&self) -> Result<Vec<PathBuf>, SettingsError> {
        const EXPECTED: &str = "absolute paths without '..' (an array in the file, ':'-separated in the environment)";
        let items: Vec<String> = match &self.value.kind {
            ValueKind::String(s) => s.split(':').map(str::to_owned).collect(),
            ValueKind::Array(a) => a
                .iter()
                .map(|v| match &v.kind {
                    ValueKind::String(s) => Ok(s.clone()),
                    _ => Err(self.bad(EXPECTED)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(self.bad(EXPECTED)),
        };
        items
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                absolute(s).ok_or_else(|| SettingsError::BadValue {
                    key: self.key.clone(),
                    origin: self.origin.clone(),
                    value: format!("{s:?}"),
                    expected: EXPECTED,
                })
            })
            .collect()
    }
}

/// `s` as an absolute path without `..` or NUL, lexically normalised (`.` and `//` removed).
fn absolute(s: &str) -> Option<PathBuf> {
    let p = Path::new(s);
    if !p.is_absolute() || s.contains('\0') || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    Some(userspace_cni_support::names::lexical_normal(p))
}

#[cfg(test)]
mod tests;
