//! A backend's own node settings: what it declares (`SettingSpec`, listed on its
//! `BackendRegistration`) and how it reads them back (`NodeSettings::engine`). Pure data and
//! pure checks: the plugin's loader reads the settings file and the environment.
//!
//! In the settings file each engine has a table, `[engines.<engine>]`, holding only the keys its
//! backend declares; a declared key may also keep an older flat spelling (`legacy_key`) so that
//! existing files and `USERSPACE_CNI_*` variables keep working. The loader validates every value
//! with the declaration's `SettingKind` before a backend sees it; a key left unset reads as the
//! declaration's default.

use crate::settings::NodeSettings;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The longest value any engine setting may have: PATH_MAX, so a hostile or mistyped file cannot
/// carry megabytes into every error message and record.
pub const MAX_VALUE_LEN: usize = 4096;

/// What a setting's value is, and so how the loader checks and normalises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// An absolute directory path without `..` (normalised: no `.`, no repeated or trailing `/`).
    /// Its host directory is the value itself.
    Dir,
    /// An absolute path of a file or socket (normalised like `Dir`). Its host directory is the
    /// parent.
    File,
    /// `unix:<absolute path>`, a unix-socket endpoint (OVSDB's spelling). Its host directory is
    /// the socket's parent.
    UnixEndpoint,
    /// Text of 1 to `max` bytes without control characters; not a host path.
    Text { max: usize },
}

impl SettingKind {
    /// What a valid value looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            SettingKind::Dir => "an absolute directory path without '..'",
            SettingKind::File => "an absolute file or socket path without '..'",
            SettingKind::UnixEndpoint => "unix:<absolute path to the socket>",
            SettingKind::Text { .. } => "text without control characters (and not too long)",
        }
    }

    /// The normalised value, or `None` when `raw` is not of this kind.
    pub fn parse(self, raw: &str) -> Option<String> {
        if raw.len() > MAX_VALUE_LEN {
            return None;
        }
        match self {
            SettingKind::Dir | SettingKind::File => normal_absolute(raw),
            SettingKind::UnixEndpoint => {
                raw.strip_prefix("unix:").and_then(normal_absolute).map(|p| format!("unix:{p}"))
            }
            SettingKind::Text { max } => {
                (!raw.is_empty() && raw.len() <= max && !raw.chars().any(char::is_control)).then(|| raw.to_owned())
            }
        }
    }

    /// The host directory a (valid) value names: what the DaemonSet must mount for the plugin
    /// and the reconciler to reach it. `None` for text.
    pub fn host_dir(self, value: &str) -> Option<PathBuf> {
        match self {
            SettingKind::Dir => Some(PathBuf::from(value)),
            SettingKind::File => Path::new(value).parent().map(PathBuf::from),
            SettingKind::UnixEndpoint => {
                value.strip_prefix("unix:").and_then(|p| Path::new(p).parent()).map(PathBuf::from)
            }
            SettingKind::Text { .. } => None,
        }
    }
}

/// `s` as an absolute path without `..` or NUL, lexically normalised; `None` otherwise.
fn normal_absolute(s: &str) -> Option<String> {
    let p = Path::new(s);
    if !p.is_absolute() || s.contains('\0') || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    // `components()` already drops `.`, repeated and trailing separators.
    let normal: PathBuf = p.components().collect();
    normal.to_str().map(str::to_owned)
}

/// Kubernetes `mountPropagation` of the reconciler's mount of a host directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    None,
    /// Mounts the host makes later (a new netns, a volume of a new pod) become visible inside.
    HostToContainer,
    /// Mounts and unmounts made inside reach the host too (needs a privileged container).
    Bidirectional,
}

impl Propagation {
    /// The Kubernetes spelling.
    pub fn as_k8s(self) -> &'static str {
        match self {
            Propagation::None => "None",
            Propagation::HostToContainer => "HostToContainer",
            Propagation::Bidirectional => "Bidirectional",
        }
    }
}

/// The DaemonSet volume a host-path setting needs: the plugin's node-path table gets one row per
/// volume, and the shipped DaemonSet is tested against that table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    /// The volume name (a DNS-1123 label), unique on the node.
    pub volume: &'static str,
    /// The host directory under the default value (`SettingKind::host_dir` of `default`);
    /// mounted at the same path in the containers.
    pub dir: &'static str,
    /// Propagation of the reconciler's mount.
    pub propagation: Propagation,
    /// The reconciler only reads there.
    pub read_only: bool,
    /// The directory belongs to another component that must have created it (hostPath type
    /// `Directory`); otherwise the kubelet creates it (`DirectoryOrCreate`).
    pub must_exist: bool,
    /// Why the plugin or the reconciler touches it.
    pub why: &'static str,
}

/// One setting a backend reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingSpec {
    /// The key in the engine's table: lower case, `[a-z0-9_]`.
    pub key: &'static str,
    pub kind: SettingKind,
    /// The value when the node sets none; must parse as `kind`.
    pub default: &'static str,
    /// One line for the settings reference.
    pub doc: &'static str,
    /// An older top-level spelling that keeps working, in the file (`<legacy_key> = ...`) and in
    /// the environment (`USERSPACE_CNI_<LEGACY_KEY>`). New settings have none: their variable is
    /// `USERSPACE_CNI_<ENGINE>_<KEY>` (upper case, `-` as `_`).
    pub legacy_key: Option<&'static str>,
    /// The DaemonSet volume of the directory this setting names, when the plugin or the
    /// reconciler touches it and no other setting's volume already holds it. `None` for text, and
    /// for a path that lies in another row's directory under the defaults.
    pub mount: Option<Mount>,
}

/// An engine's view of the settings, from `NodeSettings::engine`.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings<'a> {
    table: Option<&'a BTreeMap<String, String>>,
}

impl<'a> EngineSettings<'a> {
    /// The value the node set for `spec`, else its default. The loader validated it.
    pub fn get(&self, spec: &SettingSpec) -> &'a str {
        match self.table.and_then(|t| t.get(spec.key)) {
            Some(v) => v,
            None => spec.default,
        }
    }

    /// A `Dir` or `File` setting as a path.
    pub fn path(&self, spec: &SettingSpec) -> PathBuf {
        PathBuf::from(self.get(spec))
    }

    /// The socket path of a `UnixEndpoint` setting; `None` for another spelling.
    pub fn unix_socket(&self, spec: &SettingSpec) -> Option<PathBuf> {
        self.get(spec).strip_prefix("unix:").map(PathBuf::from)
    }
}

impl NodeSettings {
    /// The settings of `engine` (its `[engines.<engine>]` table), read through its declarations.
    pub fn engine(&self, engine: &str) -> EngineSettings<'_> {
        EngineSettings { table: self.engines.get(engine) }
    }

    /// Set one engine setting as given (tests and harnesses; the loader validates first). Use
    /// `spec.kind.parse` when the value comes from outside.
    pub fn set_engine(&mut self, engine: &str, spec: &SettingSpec, value: impl Into<String>) {
        self.engines.entry(engine.to_owned()).or_default().insert(spec.key.to_owned(), value.into());
    }
}

/// Why a set of declarations cannot be loaded side by side; found by `check_declarations`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclarationError {
    #[error("engine {engine}: setting {key:?} is not a lower-case key of [a-z0-9_]")]
    BadKey { engine: String, key: &'static str },
    #[error("engine {engine}: setting {key} is declared twice")]
    Twice { engine: String, key: &'static str },
    #[error("engine {engine}: the default {default:?} of setting {key} is not {}", kind.expected())]
    BadDefault { engine: String, key: &'static str, default: &'static str, kind: SettingKind },
    #[error("engine {engine}: setting {key} mounts {dir}, but its default's directory is {found}")]
    MountDir { engine: String, key: &'static str, dir: &'static str, found: String },
    #[error("{name} is claimed by {first} and by {second}")]
    Clash { name: String, first: String, second: String },
}

/// Check one engine's declarations on their own: keys, defaults, mount directories. The
/// plugin's tests also check that no two engines (and no core key) claim the same legacy key or
/// environment variable.
pub fn check_declarations(engine: &str, specs: &[SettingSpec]) -> Result<(), DeclarationError> {
    for (i, s) in specs.iter().enumerate() {
        let engine = engine.to_owned();
        let key_ok =
            !s.key.is_empty() && s.key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(DeclarationError::BadKey { engine, key: s.key });
        }
        if specs[..i].iter().any(|o| o.key == s.key) {
            return Err(DeclarationError::Twice { engine, key: s.key });
        }
        let Some(default) = s.kind.parse(s.default).filter(|d| d == s.default) else {
            return Err(DeclarationError::BadDefault { engine, key: s.key, default: s.default, kind: s.kind });
        };
        if let Some(m) = &s.mount {
            let found = s.kind.host_dir(&default).map(|d| d.display().to_string()).unwrap_or_default();
            if found != m.dir {
                return Err(DeclarationError::MountDir { engine, key: s.key, dir: m.dir, found });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCK: SettingSpec = SettingSpec {
        key: "api_socket",
        kind: SettingKind::File,
        default: "/run/x/api.sock",
        doc: "x",
        legacy_key: None,
        mount: Some(Mount {
            volume: "x",
            dir: "/run/x",
            propagation: Propagation::None,
            read_only: false,
            must_exist: false,
            why: "x",
        }),
    };

    #[test]
    fn kinds_normalise_valid_values_and_refuse_others() {
        assert_eq!(SettingKind::Dir.parse("/a/./b//c/"), Some("/a/b/c".into()));
        assert_eq!(SettingKind::Dir.parse("a/b"), None, "relative");
        assert_eq!(SettingKind::File.parse("/a/../b"), None, "..");
        assert_eq!(SettingKind::File.parse("/a\0b"), None, "NUL");
        assert_eq!(SettingKind::UnixEndpoint.parse("unix:/run//db.sock"), Some("unix:/run/db.sock".into()));
        assert_eq!(SettingKind::UnixEndpoint.parse("tcp:1.2.3.4:6640"), None);
        assert_eq!(SettingKind::UnixEndpoint.parse("unix:relative"), None);
        assert_eq!(SettingKind::Text { max: 3 }.parse("abc"), Some("abc".into()));
        assert_eq!(SettingKind::Text { max: 3 }.parse("abcd"), None);
        assert_eq!(SettingKind::Text { max: 9 }.parse("a\nb"), None);
        assert_eq!(SettingKind::Text { max: 9 }.parse(""), None);
        let long = format!("/{}", "a".repeat(MAX_VALUE_LEN));
        assert_eq!(SettingKind::Dir.parse(&long), None, "longer than PATH_MAX");
    }

    #[test]
    fn host_dirs_are_the_dir_or_the_socket_parent() {
        assert_eq!(SettingKind::Dir.host_dir("/a/b"), Some("/a/b".into()));
        assert_eq!(SettingKind::File.host_dir("/a/b.sock"), Some("/a".into()));
        assert_eq!(SettingKind::UnixEndpoint.host_dir("unix:/run/ovs/db.sock"), Some("/run/ovs".into()));
        assert_eq!(SettingKind::Text { max: 5 }.host_dir("/a"), None);
    }

    #[test]
    fn an_unset_setting_reads_as_its_default_and_a_set_one_as_set() {
        let mut s = NodeSettings::default();
        assert_eq!(s.engine("x").path(&SOCK), PathBuf::from("/run/x/api.sock"));
        s.set_engine("x", &SOCK, "/srv/api.sock");
        assert_eq!(s.engine("x").get(&SOCK), "/srv/api.sock");
        assert_eq!(s.engine("y").get(&SOCK), "/run/x/api.sock", "another engine's table is not this one's");
    }

    #[test]
    fn declarations_are_checked() {
        assert_eq!(check_declarations("x", &[SOCK]), Ok(()));
        assert!(matches!(check_declarations("x", &[SOCK, SOCK]), Err(DeclarationError::Twice { .. })));
        let bad = SettingSpec { key: "Api", ..SOCK };
        assert!(matches!(check_declarations("x", &[bad]), Err(DeclarationError::BadKey { .. })));
        let bad = SettingSpec { default: "/run/x/../api.sock", ..SOCK };
        assert!(matches!(check_declarations("x", &[bad]), Err(DeclarationError::BadDefault { .. })));
        let bad = SettingSpec { default: "/run/y/api.sock", ..SOCK };
        assert!(matches!(check_declarations("x", &[bad]), Err(DeclarationError::MountDir { .. })));
    }
}
