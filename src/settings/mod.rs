//! Node settings (DESIGN.md §6): built-in defaults < the TOML settings file < `USERSPACE_CNI_*`
//! environment variables, with the `config` crate. Reads only; never creates the file or any dir.
//!
//! Error codes: a bad value from the environment (or `USERSPACE_CNI_CONFIG` naming a missing file)
//! is code 4 (INVALID_ENV: the caller's environment is wrong); a bad value or key in the file is
//! code 7 (invalid configuration, the closest spec code for the plugin's own config); a file that
//! exists but cannot be read is code 5 (IO_FAILURE). Every message names the key and its source.

use config::{Config, ConfigError, Environment, File, FileFormat, Source, ValueKind};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use userspace_cni_api::{codes, AnnotationMode, CniError, NodeSettings};

/// The variable naming the settings file.
pub const CONFIG_ENV: &str = "USERSPACE_CNI_CONFIG";
/// Used when `USERSPACE_CNI_CONFIG` is unset; may be absent.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/userspace-cni/userspace.toml";
/// `USERSPACE_CNI_<KEY>` overrides the file's `<key>`.
pub const ENV_PREFIX: &str = "USERSPACE_CNI";

/// Every key, as written in the file (lower case); the variable is the upper-case form.
pub const KEYS: &[&str] = &[
    "state_dir",
    "ovsdb",
    "ovs_sock_dir",
    "vpp_api_socket",
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
    "dra_kubeconfig",
    "config",
];

/// The config crate's origin string for values from an `Environment` source.
const ENV_ORIGIN: &str = "the environment";

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
    #[error("unknown key {key:?} in settings file {}; known keys: {}", path.display(), KEYS.join(", "))]
    UnknownKey { key: String, path: PathBuf },
    #[error("environment variable {var} is not valid UTF-8")]
    NotUnicode { var: String },
    #[error("{key} from {origin} is {value}; expected {expected}")]
    BadValue { key: &'static str, origin: Origin, value: String, expected: &'static str },
}

impl From<SettingsError> for CniError {
    fn from(e: SettingsError) -> Self {
        let code = match &e {
            SettingsError::FileMissing { .. } | SettingsError::NotUnicode { .. } => codes::INVALID_ENV,
            SettingsError::FileUnreadable { .. } => codes::IO_FAILURE,
            SettingsError::FileSyntax { .. } | SettingsError::UnknownKey { .. } => codes::INVALID_NETCONF,
            SettingsError::BadValue { origin, .. } => origin.code(),
        };
        CniError::new(code, e.to_string())
    }
}

/// The variable for a key: `state_dir` → `USERSPACE_CNI_STATE_DIR`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.to_ascii_uppercase())
}

/// Load from the process environment (and the file it names).
pub fn load() -> Result<NodeSettings, SettingsError> {
    // A variable that is not UTF-8 would otherwise be silently ignored.
    for key in KEYS {
        let var = env_var(key);
        if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(&var) {
            return Err(SettingsError::NotUnicode { var });
        }
    }
    load_from(|name| std::env::var(name).ok())
}

/// Load with `env` standing in for the process environment (tests pass a map).
pub fn load_from(env: impl Fn(&str) -> Option<String>) -> Result<NodeSettings, SettingsError> {
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
    // Sorted, so the first error reported does not depend on hash order.
    let mut entries: Vec<_> = values.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in entries {
        let Some(key) = KEYS.iter().copied().find(|k| *k == key) else {
            return Err(SettingsError::UnknownKey { key, path: file });
        };
        let origin = match value.origin() {
            Some(ENV_ORIGIN) => Origin::Env(env_var(key)),
            _ => Origin::File(file.clone()),
        };
        let field = Field { key, origin: origin.clone(), value: &value };
        match key {
            "state_dir" => s.state_dir = field.path()?,
            "ovsdb" => s.ovsdb = field.ovsdb()?,
            "ovs_sock_dir" => s.ovs_sock_dir = field.path()?,
            "vpp_api_socket" => s.vpp_api_socket = field.path()?,
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
    Ok(s)
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
    key: &'static str,
    origin: Origin,
    value: &'a config::Value,
}

impl Field<'_> {
    fn bad(&self, expected: &'static str) -> SettingsError {
        let value = match &self.value.kind {
            ValueKind::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        SettingsError::BadValue { key: self.key, origin: self.origin.clone(), value, expected }
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

    fn ovsdb(&self) -> Result<String, SettingsError> {
        const EXPECTED: &str = "unix:<absolute path to the OVSDB socket>";
        let s = self.string(EXPECTED)?;
        let path = s.strip_prefix("unix:").and_then(absolute).ok_or_else(|| self.bad(EXPECTED))?;
        Ok(format!("unix:{}", path.display()))
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

    /// A lower-case DNS subdomain of at most `max` bytes (node names, the DRA driver name).
    /// A short opaque token (a boot id): letters, digits and '-' only.
    fn token(&self, expected: &'static str, max: usize) -> Result<String, SettingsError> {
        let s = self.string(expected)?;
        if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(self.bad(expected));
        }
        Ok(s.to_owned())
    }

    fn dns_name(&self, expected: &'static str, max: usize) -> Result<String, SettingsError> {
        let s = self.string(expected)?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if s.len() > max || !s.split('.').all(label_ok) {
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
            key: self.key,
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
                    key: self.key,
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
