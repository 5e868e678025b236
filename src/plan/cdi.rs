//! The CDI spec document (container-device-interface `SPEC.md`, `specs-go/config.go`) the DRA
//! front-end hands the runtime: its model for the fields we use (device mounts), the lowest
//! `cdiVersion` that content needs (`specs-go/version.go` rules), the CDI parser's name rules, the
//! qualified device id and the transient spec's file name. Pure: the pipeline step writes the file.
//!
//! Why the lowest version: a runtime's CDI library refuses a spec whose `cdiVersion` it does not
//! know, and refuses one whose content needs a newer version than it states. Stating exactly the
//! minimum keeps the spec readable by the oldest runtime that can apply it.

use super::k8s_names::shown;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Component, Path};

/// The released CDI spec versions, oldest first (`specs-go/version.go`; 0.1.0 and 0.2.0 predate
/// the version checks and no current library writes them).
pub const KNOWN_VERSIONS: &[&str] = &["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"];

/// NAME_MAX: a spec file name longer than this cannot be created.
const MAX_FILE_NAME: usize = 255;

/// The spec's `kind` limits (SPEC.md "Kind"): the vendor is a DNS subdomain, the class a name of
/// at most 63 characters. The parser itself checks characters only.
const MAX_VENDOR: usize = 253;
const MAX_CLASS: usize = 63;
/// CDI sets no limit on a device name; ours are a claim UID and a request (about 100 bytes), and the
/// qualified id travels in kubelet's CRI request, so anything past this is a bug, not a device.
const MAX_DEVICE_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdiError {
    #[error("CDI vendor {value} is not valid: {reason}; expected a letter first, then letters, digits, '_', '-' or '.', ending with a letter or digit, at most {MAX_VENDOR} characters (e.g. \"example.com\")")]
    Vendor { value: String, reason: &'static str },
    #[error("CDI class {value} is not valid: {reason}; expected a letter first, then letters, digits, '_', '-' or '.', ending with a letter or digit, at most {MAX_CLASS} characters (e.g. \"vhost-user\")")]
    Class { value: String, reason: &'static str },
    #[error("CDI device name {value} is not valid: {reason}; expected a letter or digit first, then letters, digits, '_', '-', '.' or ':', ending with a letter or digit, at most {MAX_DEVICE_NAME} characters")]
    DeviceName { value: String, reason: &'static str },
    #[error("CDI kind {value} is not <vendor>/<class>")]
    Kind { value: String },
    #[error("CDI spec of kind {kind} has no devices; CDI requires at least one")]
    NoDevices { kind: String },
    #[error("CDI spec of kind {kind} lists device {name} twice")]
    DuplicateDevice { kind: String, name: String },
    #[error("CDI device {name} has no container edits; CDI refuses a device that changes nothing")]
    EmptyDevice { name: String },
    #[error("CDI mount {which} of {owner}: {reason}")]
    Mount { owner: String, which: usize, reason: String },
    #[error("cdiVersion {value} is not a released CDI spec version (known: {})", KNOWN_VERSIONS.join(", "))]
    UnknownVersion { value: String },
    #[error("cdiVersion {stated} is too old for this spec's content, which needs at least {needed}")]
    VersionTooOld { stated: String, needed: &'static str },
    #[error("cannot encode the CDI spec: {reason}")]
    Encode { reason: String },
    #[error("CDI transient spec id {value} is not valid: {reason}")]
    TransientId { value: String, reason: &'static str },
}

/// A CDI spec as we write it. Fields we never write are absent, so a spec read back with unknown
/// content is refused, as the CDI library does (it decodes strictly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdiSpec {
    #[serde(rename = "cdiVersion")]
    pub cdi_version: String,
    /// `<vendor>/<class>`.
    pub kind: String,
    pub devices: Vec<CdiDevice>,
    /// Edits applied whenever any device of the spec is requested.
    #[serde(rename = "containerEdits", default, skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdiDevice {
    pub name: String,
    #[serde(rename = "containerEdits")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<CdiMount>,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdiMount {
    #[serde(rename = "hostPath")]
    pub host_path: String,
    #[serde(rename = "containerPath")]
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The filesystem type (added in CDI 0.4.0); a bind mount needs none.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

impl CdiMount {
    /// A bind mount of a host path, read-write or read-only.
    pub fn bind(host_path: &str, container_path: &str, read_only: bool) -> Self {
        let mode = if read_only { "ro" } else { "rw" };
        CdiMount {
            host_path: host_path.to_owned(),
            container_path: container_path.to_owned(),
            options: vec!["bind".to_owned(), mode.to_owned()],
            fs_type: None,
        }
    }
}

impl CdiSpec {
    /// A checked spec of `vendor/class` with these devices, stating the lowest version they need.
    pub fn new(vendor: &str, class: &str, devices: Vec<CdiDevice>) -> Result<Self, CdiError> {
        validate_vendor(vendor)?;
        validate_class(class)?;
        let mut spec = CdiSpec {
            cdi_version: String::new(),
            kind: format!("{vendor}/{class}"),
            devices,
            container_edits: ContainerEdits::default(),
        };
        spec.cdi_version = spec.minimum_version().to_owned();
        spec.validate()?;
        Ok(spec)
    }

    /// The lowest `cdiVersion` this content needs, by the rules of `specs-go/version.go` for the
    /// fields this model has: a mount `type` needs 0.4.0, a device name starting with a digit
    /// (a claim UID often does) 0.5.0, a `.` in the class 0.6.0; anything else is valid in 0.3.0.
    pub fn minimum_version(&self) -> &'static str {
        let class_has_dot = self.kind.split_once('/').is_some_and(|(_, class)| class.contains('.'));
        let digit_first = self.devices.iter().any(|d| d.name.as_bytes().first().is_some_and(u8::is_ascii_digit));
        let typed_mount = self
            .devices
            .iter()
            .map(|d| &d.container_edits)
            .chain(std::iter::once(&self.container_edits))
            .flat_map(|e| &e.mounts)
            .any(|m| m.fs_type.as_deref().is_some_and(|t| !t.is_empty()));
        if class_has_dot {
            "0.6.0"
        } else if digit_first {
            "0.5.0"
        } else if typed_mount {
            "0.4.0"
        } else {
            "0.3.0"
        }
    }

    /// Everything the CDI library checks when it loads the spec, for the fields we use.
    pub fn validate(&self) -> Result<(), CdiError> {
        let stated = version_index(&self.cdi_version)
            .ok_or_else(|| CdiError::UnknownVersion { value: shown(&self.cdi_version) })?;
        let needed = self.minimum_version();
        if version_index(needed).is_some_and(|n| stated < n) {
            return Err(CdiError::VersionTooOld { stated: shown(&self.cdi_version), needed });
        }
        let (vendor, class) = self.kind.split_once('/').ok_or_else(|| CdiError::Kind { value: shown(&self.kind) })?;
        validate_vendor(vendor)?;
        validate_class(class)?;
        check_mounts("the spec's containerEdits", &self.container_edits)?;
        if self.devices.is_empty() {
            return Err(CdiError::NoDevices { kind: shown(&self.kind) });
        }
        let mut seen = BTreeSet::new();
        for device in &self.devices {
            validate_device_name(&device.name)?;
            if !seen.insert(device.name.as_str()) {
                return Err(CdiError::DuplicateDevice { kind: shown(&self.kind), name: shown(&device.name) });
            }
            if device.container_edits.is_empty() {
                return Err(CdiError::EmptyDevice { name: shown(&device.name) });
            }
            check_mounts(&format!("device {}", shown(&device.name)), &device.container_edits)?;
        }
        Ok(())
    }

    /// The document as the file holds it (compact JSON, as the CDI library writes it).
    pub fn to_json(&self) -> Result<Vec<u8>, CdiError> {
        self.validate()?;
        serde_json::to_vec(self).map_err(|e| CdiError::Encode { reason: e.to_string() })
    }
}

/// Position of a version in [`KNOWN_VERSIONS`]; a leading `v` is allowed, as the library does.
fn version_index(version: &str) -> Option<usize> {
    let v = version.strip_prefix('v').unwrap_or(version);
    KNOWN_VERSIONS.iter().position(|k| *k == v)
}

fn check_mounts(owner: &str, edits: &ContainerEdits) -> Result<(), CdiError> {
    for (which, mount) in edits.mounts.iter().enumerate() {
        for (field, path) in [("hostPath", &mount.host_path), ("containerPath", &mount.container_path)] {
            let reason = if path.is_empty() {
                Some("is empty".to_owned())
            } else if path.contains('\0') {
                Some("holds a NUL byte".to_owned())
            } else if !path.starts_with('/') {
                Some(format!("{} is not absolute", shown(path)))
            } else if Path::new(path).components().any(|c| c == Component::ParentDir) {
                Some(format!("{} has a '..' component", shown(path)))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(CdiError::Mount { owner: owner.to_owned(), which, reason: format!("{field} {reason}") });
            }
        }
    }
    Ok(())
}

/// The CDI parser's rule for a vendor or a class (`pkg/parser`): a letter, then letters, digits,
/// `_`, `-`, `.`, ending with a letter or digit. ASCII only: the parser compares runes to ASCII
/// ranges, so any other character fails there too.
fn vendor_or_class(name: &str, max: usize) -> Result<(), &'static str> {
    let b = name.as_bytes();
    match (b.first(), b.last()) {
        (None, _) | (_, None) => Err("it is empty"),
        _ if b.len() > max => Err("it is too long"),
        (Some(f), _) if !f.is_ascii_alphabetic() => Err("it does not start with a letter"),
        (_, Some(l)) if !l.is_ascii_alphanumeric() => Err("it does not end with a letter or digit"),
        _ if !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')) => {
            Err("it holds a character other than letters, digits, '_', '-' and '.'")
        }
        _ => Ok(()),
    }
}

pub fn validate_vendor(vendor: &str) -> Result<(), CdiError> {
    vendor_or_class(vendor, MAX_VENDOR).map_err(|reason| CdiError::Vendor { value: shown(vendor), reason })
}

pub fn validate_class(class: &str) -> Result<(), CdiError> {
    vendor_or_class(class, MAX_CLASS).map_err(|reason| CdiError::Class { value: shown(class), reason })
}

/// The CDI parser's rule for a device name: a letter or digit, then letters, digits, `_`, `-`,
/// `.`, `:`, ending with a letter or digit (a digit first needs cdiVersion 0.5.0).
pub fn validate_device_name(name: &str) -> Result<(), CdiError> {
    let b = name.as_bytes();
    let reason = match (b.first(), b.last()) {
        (None, _) | (_, None) => Some("it is empty"),
        _ if b.len() > MAX_DEVICE_NAME => Some("it is too long"),
        (Some(f), _) if !f.is_ascii_alphanumeric() => Some("it does not start with a letter or digit"),
        (_, Some(l)) if !l.is_ascii_alphanumeric() => Some("it does not end with a letter or digit"),
        _ if !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')) => {
            Some("it holds a character other than letters, digits, '_', '-', '.' and ':'")
        }
        _ => None,
    };
    match reason {
        Some(reason) => Err(CdiError::DeviceName { value: shown(name), reason }),
        None => Ok(()),
    }
}

/// `<vendor>/<class>=<name>`, the id kubelet passes to the runtime, each part checked.
pub fn qualified_device_id(vendor: &str, class: &str, name: &str) -> Result<String, CdiError> {
    validate_vendor(vendor)?;
    validate_class(class)?;
    validate_device_name(name)?;
    Ok(format!("{vendor}/{class}={name}"))
}

/// The file name of a transient spec (one whose life is tied to a claim): the CDI library's
/// `GenerateTransientSpecName` (`<vendor>-<class>_<id>` with `/` in the id made `_`) plus `.json`,
/// which selects the JSON encoding and makes the runtime's scan read it. The writer writes a temp
/// name that does not end in `.json` (the scan skips it) and renames it to this one.
pub fn transient_spec_file_name(vendor: &str, class: &str, transient_id: &str) -> Result<String, CdiError> {
    validate_vendor(vendor)?;
    validate_class(class)?;
    let bad = |reason| CdiError::TransientId { value: shown(transient_id), reason };
    if transient_id.is_empty() {
        return Err(bad("it is empty"));
    }
    // Beyond the library's rule (it only replaces '/'): the id is one file-name component, so it
    // keeps to the CDI name characters, which excludes NUL and whitespace.
    if !transient_id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b'/')) {
        return Err(bad("it holds a character other than letters, digits, '_', '-', '.', ':' and '/'"));
    }
    let name = format!("{vendor}-{class}_{}.json", transient_id.replace('/', "_"));
    if name.len() > MAX_FILE_NAME {
        return Err(bad("the spec file name it makes is longer than 255 bytes"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UID: &str = "0f6c2f5e-8a8b-4c1e-9f5e-2b7d1c3a4e5f";

    fn device(name: &str) -> CdiDevice {
        CdiDevice {
            name: name.to_owned(),
            container_edits: ContainerEdits {
                mounts: vec![CdiMount::bind("/var/lib/userspace-cni/dra/x", "/var/run/vhost-user/net1", false)],
            },
        }
    }

    #[test]
    fn minimum_version_follows_the_spec_rules_for_our_fields() {
        // (class, device names, a mount type set, expected version)
        let table: &[(&str, &[&str], bool, &str)] = &[
            ("vhost-user", &["net1"], false, "0.3.0"),
            ("vhost-user", &["net1"], true, "0.4.0"),
            ("vhost-user", &[UID], false, "0.5.0"),
            ("vhost-user", &["net1", "9net"], true, "0.5.0"),
            ("vhost.user", &["net1"], false, "0.6.0"),
            ("vhost.user", &[UID], true, "0.6.0"),
            // A dot in the vendor is allowed everywhere; only the class's dot is new in 0.6.0.
            ("vhost-user", &["a.b:c_d-e"], false, "0.3.0"),
        ];
        for (class, names, typed, want) in table {
            let mut devices: Vec<_> = names.iter().map(|n| device(n)).collect();
            if *typed {
                devices[0].container_edits.mounts[0].fs_type = Some("none".into());
            }
            let spec = CdiSpec::new("ovsdpdk.k8snetworkplumbingwg.io", class, devices)
                .unwrap_or_else(|e| panic!("class {class}, names {names:?}: {e}"));
            assert_eq!(spec.minimum_version(), *want, "class {class}, names {names:?}, typed {typed}");
            assert_eq!(spec.cdi_version, *want, "new() states the minimum");
            assert_eq!(spec.validate(), Ok(()));
        }
    }

    #[test]
    fn a_stated_version_below_the_content_or_unknown_is_refused() {
        let mut spec = CdiSpec::new("example.com", "vhost-user", vec![device(UID)]).expect("valid");
        for (stated, ok) in
            [("0.3.0", false), ("0.4.0", false), ("0.5.0", true), ("v0.5.0", true), ("1.1.0", true), ("0.9.0", false)]
        {
            spec.cdi_version = stated.into();
            assert_eq!(spec.validate().is_ok(), ok, "cdiVersion {stated}: {:?}", spec.validate());
        }
        spec.cdi_version = "0.4.0".into();
        assert_eq!(spec.validate(), Err(CdiError::VersionTooOld { stated: "\"0.4.0\"".into(), needed: "0.5.0" }));
    }

    #[test]
    fn the_document_has_the_cdi_field_names() {
        let spec = CdiSpec::new("ovsdpdk.k8snetworkplumbingwg.io", "vhost-user", vec![device(UID)]).expect("valid");
        let doc: serde_json::Value = serde_json::from_slice(&spec.to_json().expect("encodes")).expect("json");
        assert_eq!(
            doc,
            json!({
                "cdiVersion": "0.5.0",
                "kind": "ovsdpdk.k8snetworkplumbingwg.io/vhost-user",
                "devices": [{
                    "name": UID,
                    "containerEdits": {"mounts": [{
                        "hostPath": "/var/lib/userspace-cni/dra/x",
                        "containerPath": "/var/run/vhost-user/net1",
                        "options": ["bind", "rw"]
                    }]}
                }]
            })
        );
        let back: CdiSpec = serde_json::from_value(doc).expect("reads back");
        assert_eq!(back, spec);
    }

    #[test]
    fn unknown_fields_are_refused_on_read_as_the_cdi_library_does() {
        let doc = json!({"cdiVersion": "0.3.0", "kind": "a.b/c", "devices": [], "hooks": []});
        assert!(serde_json::from_value::<CdiSpec>(doc).is_err());
    }

    #[test]
    fn names_follow_the_cdi_parser() {
        let vendors = [
            ("example.com", true),
            ("k8s.io", true),
            ("a", true),
            ("A_b-c.d", true),
            ("", false),
            ("1abc", false),
            (".abc", false),
            ("abc.", false),
            ("ab/c", false),
            ("ab=c", false),
            ("ab\0c", false),
            ("exämple.com", false),
        ];
        for (v, ok) in vendors {
            assert_eq!(validate_vendor(v).is_ok(), ok, "vendor {v:?}");
            assert_eq!(validate_class(v).is_ok(), ok, "class {v:?}");
        }
        assert!(validate_vendor(&"a".repeat(254)).is_err());
        assert!(validate_class(&"a".repeat(64)).is_err());
        assert!(validate_class(&"a".repeat(63)).is_ok());
        let names = [
            (UID, true),
            ("net1", true),
            ("a:b.c_d-e", true),
            ("9", true),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("a/b", false),
            ("..", false),
            ("a=b", false),
            ("a b", false),
            ("a\0b", false),
        ];
        for (n, ok) in names {
            assert_eq!(validate_device_name(n).is_ok(), ok, "device name {n:?}");
        }
        assert!(validate_device_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn qualified_id_is_vendor_class_equals_name_and_checks_each_part() {
        assert_eq!(
            qualified_device_id("ovsdpdk.k8snetworkplumbingwg.io", "vhost-user", UID).as_deref(),
            Ok(format!("ovsdpdk.k8snetworkplumbingwg.io/vhost-user={UID}").as_str())
        );
        assert!(matches!(qualified_device_id("a/b", "c", "d"), Err(CdiError::Vendor { .. })));
        assert!(matches!(qualified_device_id("a", "c=d", "e"), Err(CdiError::Class { .. })));
        assert!(matches!(qualified_device_id("a", "c", "../../x"), Err(CdiError::DeviceName { .. })));
    }

    #[test]
    fn transient_spec_name_is_the_library_rule_plus_json() {
        assert_eq!(
            transient_spec_file_name("ovsdpdk.k8snetworkplumbingwg.io", "vhost-user", UID).as_deref(),
            Ok(format!("ovsdpdk.k8snetworkplumbingwg.io-vhost-user_{UID}.json").as_str())
        );
        // The library turns '/' into '_', so an id can never name another directory.
        assert_eq!(transient_spec_file_name("a.io", "c", "ns/claim").as_deref(), Ok("a.io-c_ns_claim.json"));
        assert_eq!(transient_spec_file_name("a.io", "c", "../../etc").as_deref(), Ok("a.io-c_.._.._etc.json"));
        for bad in ["", "a\0b", "a b", "a\nb", &"a".repeat(250)] {
            assert!(
                matches!(transient_spec_file_name("a.io", "c", bad), Err(CdiError::TransientId { .. })),
                "id {:?} accepted",
                shown(bad)
            );
        }
    }

    #[test]
    fn structural_rules_of_the_cdi_library_hold() {
        let ok = || CdiSpec::new("a.io", "c", vec![device("x")]).expect("valid");
        let mut s = ok();
        s.devices.clear();
        assert!(matches!(s.validate(), Err(CdiError::NoDevices { .. })));
        let mut s = ok();
        s.devices.push(device("x"));
        assert!(matches!(s.validate(), Err(CdiError::DuplicateDevice { .. })));
        let mut s = ok();
        s.devices[0].container_edits.mounts.clear();
        assert!(matches!(s.validate(), Err(CdiError::EmptyDevice { .. })));
        let mut s = ok();
        s.kind = "a.io".into();
        assert!(matches!(s.validate(), Err(CdiError::Kind { .. })));
        let mut s = ok();
        s.kind = "a.io/c/d".into();
        assert!(matches!(s.validate(), Err(CdiError::Class { .. })));
    }

    #[test]
    fn hostile_mount_paths_are_refused() {
        for (host, container) in [
            ("", "/x"),
            ("/x", ""),
            ("relative", "/x"),
            ("/x", "../x"),
            ("/var/lib/../../etc", "/x"),
            ("/x", "/var/run/../../etc"),
            ("/x\0y", "/x"),
        ] {
            let mut d = device("x");
            d.container_edits.mounts[0].host_path = host.into();
            d.container_edits.mounts[0].container_path = container.into();
            let got = CdiSpec::new("a.io", "c", vec![d]);
            assert!(matches!(got, Err(CdiError::Mount { .. })), "{host:?} -> {container:?}: {got:?}");
        }
    }
}
