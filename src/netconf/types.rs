//! The typed network config and its reader: from the normalised JSON document to `NetConf`,
//! checking every known key's JSON type and enum value. Never reads the filesystem or settings.

use super::path::Path;
use serde_json::{Map, Value};
use std::path::PathBuf;
use userspace_cni_api::spec::{BridgeConf, IfType, MemifConf, MemifMode, MemifRole, NetType, VhostConf, VhostMode};
use userspace_cni_api::{codes, CniError, InterfaceSpec};
use userspace_cni_support::perms::{self, PermissionsConf};

/// The network config, upstream-compatible (DESIGN.md §4). Optional strings that are `""` in the
/// JSON are `None` here, as Go's zero values meant "not set" to the upstream plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: Option<String>,
    pub cni_versions: Option<Vec<String>>,
    pub name: String,
    pub plugin_type: String,
    pub ipam: Option<Value>,
    pub kubeconfig: Option<PathBuf>,
    pub shared_dir: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<LogLevel>,
    /// `deviceInfoVhostMode`: whose side `vhost-user.mode` in device-info files states.
    pub device_info_vhost_mode: ModeSide,
    /// With the host-side defaults applied (vhost mode `server`, memif role `master`, mode `ethernet`).
    pub host: InterfaceSpec,
    /// With the container-side defaults applied (the inverse of the host, the same socket name).
    pub container: InterfaceSpec,
    pub capabilities: Option<Map<String, Value>>,
    pub runtime_config: RuntimeConfig,
    pub device_id: Option<String>,
    pub args: Option<Value>,
    pub prev_result: Option<Value>,
    /// The whole document with our keys in their canonical spelling: what is delegated and recorded.
    /// GC's `cni.dev/valid-attachments` is read from here by `cni::gc`.
    pub raw: Value,
}

/// `runtimeConfig`: what the runtime (or Multus) asks of this attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub mac: Option<String>,
    pub device_id: Option<String>,
    /// Where to write the device-info file (`CNIDeviceInfoFile`).
    pub device_info_file: Option<PathBuf>,
}

/// `logLevel`, with the upstream plugin's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Panic,
    Error,
    Warning,
    Info,
    Debug,
    Verbose,
}

impl LogLevel {
    pub const ACCEPTED: &'static str = "panic, error, warning (or warn), info, debug, verbose (or trace)";

    /// Case-insensitive, as upstream's `strings.ToLower` comparison was.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "panic" => LogLevel::Panic,
            "error" => LogLevel::Error,
            "warning" | "warn" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "verbose" | "trace" => LogLevel::Verbose,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Panic => "panic",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Verbose => "verbose",
        }
    }

    /// The `tracing` level to filter at. We never panic on purpose, so `panic` logs errors.
    pub fn as_tracing(&self) -> tracing::Level {
        match self {
            LogLevel::Panic | LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warning => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Verbose => tracing::Level::TRACE,
        }
    }
}

/// Whose side the `vhost-user.mode` of a device-info file states (`deviceInfoVhostMode`). The
/// device-info spec's text and DPDK pod tooling read it as the workload's (`server`: the
/// workload creates the socket); KubeVirt's prototype vhost-user binding and
/// virtio-device-plugin as the host port's (`client`: OVS connects, the VM serves). Governs the
/// file we write and how a device plugin's file is read; memif `role` is always the workload's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSide {
    /// The workload's side (the spec's text): the default.
    #[default]
    Workload,
    /// The host (OVS/VPP) port's side.
    Host,
}

impl ModeSide {
    pub const ACCEPTED: &'static str = "workload (the default: the device-info spec's text), host (KubeVirt's \
         prototype vhost-user binding, virtio-device-plugin)";

    pub fn parse(s: &str) -> Option<ModeSide> {
        match s {
            "workload" => Some(ModeSide::Workload),
            "host" => Some(ModeSide::Host),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModeSide::Workload => "workload",
            ModeSide::Host => "host",
        }
    }

    pub fn is_workload(&self) -> bool {
        *self == ModeSide::Workload
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("{path} must be {expected}, not {found}")]
    WrongType { path: String, expected: &'static str, found: String },
    #[error("{path} {value} is not accepted; expected one of: {accepted}")]
    BadValue { path: String, value: String, accepted: &'static str },
    #[error("{path} {value} is out of range; expected {accepted}")]
    OutOfRange { path: String, value: String, accepted: &'static str },
    #[error("{path} is required: {hint}")]
    Missing { path: String, hint: &'static str },
    #[error("{path} {value} is not supported: {remedy}")]
    Unsupported { path: String, value: String, remedy: &'static str },
}

impl From<TypeError> for CniError {
    fn from(e: TypeError) -> Self {
        let code = match e {
            TypeError::WrongType { .. }
            | TypeError::BadValue { .. }
            | TypeError::OutOfRange { .. }
            | TypeError::Missing { .. } => codes::INVALID_NETCONF,
            // A value upstream documented but nothing can honour.
            TypeError::Unsupported { .. } => codes::UNSUPPORTED_FIELD,
        };
        CniError::new(code, e.to_string())
    }
}

/// A JSON value in an error message: its kind and, for scalars, the value cut to a readable size.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({})", clip(&n.to_string())),
        Value::String(s) => format!("a string ({})", quoted(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A string for an error message: quoted with control characters escaped, at most 64 chars.
pub(crate) fn quoted(s: &str) -> String {
    clip(&format!("{s:?}"))
}

fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// One of our objects, with its path for messages. `null` is treated as absent, as encoding/json
/// leaves a field untouched on `null`.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: Path,
}

impl<'a> Obj<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn at(&self, key: &str) -> String {
        self.path.key(key).to_string()
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> TypeError {
        TypeError::WrongType { path: self.at(key), expected, found: describe(v) }
    }

    /// An optional string; `""` counts as absent.
    fn string(&self, key: &str) -> Result<Option<String>, TypeError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    fn path_buf(&self, key: &str) -> Result<Option<PathBuf>, TypeError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, TypeError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj { map, path: self.path.key(key) })),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }

    /// An object passed through as it is (ipam, args, prevResult).
    fn opaque_object(&self, key: &str) -> Result<Option<Value>, TypeError> {
        Ok(self.object(key)?.map(|o| Value::Object(o.map.clone())))
    }

    /// An optional integer in `0..=max`; `0` counts as absent (Go's zero value: upstream treated
    /// `vlanId: 0` as "no VLAN" and `bridgeId: 0` as "the default bridge").
    fn nonzero_uint(&self, key: &str, max: u64, expected: &'static str) -> Result<Option<u64>, TypeError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v.as_u64() {
            Some(0) => Ok(None),
            Some(n) if n <= max => Ok(Some(n)),
            Some(n) => Err(TypeError::OutOfRange { path: self.at(key), value: n.to_string(), accepted: expected }),
            None => Err(self.wrong(key, expected, v)),
        }
    }

    /// A user or group: a name (a string) or a numeric id (a number or a string of digits; the
    /// name lookup is `perms::resolve`'s). `""` counts as absent.
    fn account(&self, key: &str) -> Result<Option<String>, TypeError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v {
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) => match n.as_u64() {
                Some(id) if id < u64::from(u32::MAX) => Ok(Some(id.to_string())),
                _ => Err(TypeError::OutOfRange {
                    path: self.at(key),
                    value: clip(&n.to_string()),
                    accepted: "a name, or a numeric id from 0 to 4294967294",
                }),
            },
            _ => Err(self.wrong(key, "a name or a numeric id", v)),
        }
    }

    /// An octal mode: a string of 3 or 4 octal digits up to `max`. JSON has no octal numbers (770
    /// would be decimal), so a number is refused rather than guessed at.
    fn mode(&self, key: &str, max: u32, accepted: &'static str) -> Result<Option<u32>, TypeError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v {
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => userspace_cni_support::perms::parse_mode(s, max)
                .map(Some)
                .ok_or_else(|| TypeError::BadValue { path: self.at(key), value: quoted(s), accepted }),
            _ => Err(self.wrong(key, "an octal string like \"0770\" (JSON has no octal numbers)", v)),
        }
    }

    /// An optional enum value, matched exactly as upstream compared it; `""` counts as absent.
    fn choice<T: Copy>(&self, key: &str, table: &[(&str, T)], accepted: &'static str) -> Result<Option<T>, TypeError> {
        let Some(s) = self.string(key)? else { return Ok(None) };
        match table.iter().find(|(name, _)| *name == s) {
            Some((_, t)) => Ok(Some(*t)),
            None => Err(TypeError::BadValue { path: self.at(key), value: quoted(&s), accepted }),
        }
    }
}

const IFTYPES: &[(&str, IfType)] = &[("vhostuser", IfType::VhostUser), ("memif", IfType::Memif)];
const NETTYPES: &[(&str, NetType)] = &[("bridge", NetType::Bridge), ("interface", NetType::Interface)];
const VHOST_MODES: &[(&str, VhostMode)] = &[("client", VhostMode::Client), ("server", VhostMode::Server)];
const MEMIF_ROLES: &[(&str, MemifRole)] = &[("master", MemifRole::Master), ("slave", MemifRole::Slave)];
const MEMIF_MODES: &[(&str, MemifMode)] =
    &[("ethernet", MemifMode::Ethernet), ("ip", MemifMode::Ip), ("inject-punt", MemifMode::InjectPunt)];

/// Read the typed config from a document whose keys `keys::normalise` has canonicalised.
/// No defaults are applied here.
pub fn from_document(raw: Value) -> Result<NetConf, TypeError> {
    let Value::Object(map) = &raw else {
        return Err(TypeError::WrongType {
            path: Path::default().to_string(),
            expected: "a JSON object",
            found: describe(&raw),
        });
    };
    let top = Obj { map, path: Path::default() };

    let name = top.string("name")?.ok_or(TypeError::Missing {
        path: "name".into(),
        hint: "give the network a name of [A-Za-z0-9_.-], e.g. \"userspace-ovs-net-1\"",
    })?;
    let log_level = match top.string("logLevel")? {
        None => None,
        Some(s) => Some(LogLevel::parse(&s).ok_or_else(|| TypeError::BadValue {
            path: "logLevel".into(),
            value: quoted(&s),
            accepted: LogLevel::ACCEPTED,
        })?),
    };
    let device_info_vhost_mode = match top.string("deviceInfoVhostMode")? {
        None => ModeSide::default(),
        Some(s) => ModeSide::parse(&s).ok_or_else(|| TypeError::BadValue {
            path: "deviceInfoVhostMode".into(),
            value: quoted(&s),
            accepted: ModeSide::ACCEPTED,
        })?,
    };
    let capabilities = top.object("capabilities")?.map(|o| o.map.clone());
    let runtime_config = match top.object("runtimeConfig")? {
        None => RuntimeConfig::default(),
        Some(rc) => RuntimeConfig {
            mac: rc.string("mac")?,
            device_id: rc.string("deviceID")?,
            device_info_file: rc.path_buf("CNIDeviceInfoFile")?,
        },
    };

    Ok(NetConf {
        cni_version: top.string("cniVersion")?,
        cni_versions: string_list(&top, "cniVersions")?,
        name,
        plugin_type: top.string("type")?.unwrap_or_default(),
        ipam: top.opaque_object("ipam")?,
        kubeconfig: top.path_buf("kubeconfig")?,
        shared_dir: top.path_buf("sharedDir")?,
        log_file: top.path_buf("logFile")?,
        log_level,
        device_info_vhost_mode,
        host: side(&top, "host")?,
        container: side(&top, "container")?,
        capabilities,
        runtime_config,
        device_id: top.string("deviceID")?,
        args: top.opaque_object("args")?,
        prev_result: top.opaque_object("prevResult")?,
        raw,
    })
}

fn string_list(obj: &Obj<'_>, key: &str) -> Result<Option<Vec<String>>, TypeError> {
    let Some(v) = obj.get(key) else { return Ok(None) };
    let expected = "an array of strings";
    let items = v.as_array().ok_or_else(|| obj.wrong(key, expected, v))?;
    items
        .iter()
        .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| obj.wrong(key, expected, i)))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `host` or `container`; absent means all defaults.
fn side(top: &Obj<'_>, key: &str) -> Result<InterfaceSpec, TypeError> {
    let Some(o) = top.object(key)? else { return Ok(InterfaceSpec::default()) };
    let net_type = match o.string("netType")?.as_deref() {
        // Documented upstream as a value but never implemented by it: say so rather than "invalid".
        Some("none") => {
            return Err(TypeError::Unsupported {
                path: o.at("netType"),
                value: "\"none\"".into(),
                remedy: "use \"bridge\" (attach to a bridge) or \"interface\", or leave netType out",
            })
        }
        _ => o.choice("netType", NETTYPES, "bridge, interface")?,
    };
    let memif = match o.object("memif")? {
        None => None,
        Some(m) => Some(MemifConf {
            role: m.choice("role", MEMIF_ROLES, "master, slave")?,
            mode: m.choice("mode", MEMIF_MODES, "ethernet, ip, inject-punt")?,
            socketfile: m.string("socketfile")?,
        }),
    };
    let vhost = match o.object("vhost")? {
        None => None,
        Some(v) => Some(VhostConf {
            mode: v.choice("mode", VHOST_MODES, "client, server")?,
            group: v.string("group")?,
            socketfile: v.string("socketfile")?,
        }),
    };
    let bridge = match o.object("bridge")? {
        None => None,
        Some(b) => Some(BridgeConf {
            bridge_name: b.string("bridgeName")?,
            bridge_id: b.nonzero_uint("bridgeId", u64::from(u32::MAX), "an integer 0..=4294967295")?.map(|n| n as u32),
            vlan_id: b.nonzero_uint("vlanId", 4095, "an integer 0..=4095 (0: no VLAN)")?.map(|n| n as u16),
        }),
    };
    let permissions = match o.object("permissions")? {
        None => None,
        Some(p) => Some(PermissionsConf {
            owner: p.account("owner")?,
            group: p.account("group")?,
            dir_mode: p.mode(
                "dirMode",
                perms::MAX_DIR_MODE,
                "an octal string of 3 or 4 digits up to \"7777\", e.g. \"2770\"",
            )?,
            socket_mode: p.mode(
                "socketMode",
                perms::MAX_SOCKET_MODE,
                "an octal string of 3 or 4 digits up to \"0777\", e.g. \"0660\"",
            )?,
            selinux_context: p.string("selinuxContext")?,
        }),
    };
    Ok(InterfaceSpec {
        engine: o.string("engine")?,
        iftype: o.choice("iftype", IFTYPES, "vhostuser, memif")?,
        net_type,
        memif,
        vhost,
        bridge,
        permissions,
        raw: Value::Object(o.map.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::keys;
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<NetConf, TypeError> {
        let mut v = v;
        keys::normalise(&mut v, &keys::TOP, &Path::default()).unwrap();
        from_document(v)
    }

    #[test]
    fn log_levels_accept_upstream_names_in_any_case() {
        for (s, l, t) in [
            ("panic", LogLevel::Panic, tracing::Level::ERROR),
            ("Error", LogLevel::Error, tracing::Level::ERROR),
            ("WARNING", LogLevel::Warning, tracing::Level::WARN),
            ("warn", LogLevel::Warning, tracing::Level::WARN),
            ("info", LogLevel::Info, tracing::Level::INFO),
            ("debug", LogLevel::Debug, tracing::Level::DEBUG),
            ("verbose", LogLevel::Verbose, tracing::Level::TRACE),
        ] {
            assert_eq!(LogLevel::parse(s), Some(l), "{s}");
            assert_eq!(l.as_tracing(), t, "{s}");
            assert_eq!(LogLevel::parse(l.as_str()), Some(l));
        }
        let err = read(json!({"name": "n", "logLevel": "loud"})).unwrap_err();
        assert!(err.to_string().contains("logLevel \"loud\"") && err.to_string().contains("verbose"), "{err}");
    }

    #[test]
    fn wrong_json_types_name_the_key_and_the_expected_type() {
        for (doc, needle) in [
            (json!({"name": 5}), "name must be a string, not a number (5)"),
            (json!({"name": "n", "host": "ovs"}), "host must be an object, not a string (\"ovs\")"),
            (json!({"name": "n", "host": {"engine": ["a"]}}), "host.engine must be a string, not an array"),
            (json!({"name": "n", "host": {"vhost": {"mode": true}}}), "host.vhost.mode must be a string"),
            (json!({"name": "n", "host": {"bridge": {"vlanId": "100"}}}), "host.bridge.vlanId must be an integer"),
            (json!({"name": "n", "host": {"bridge": {"vlanId": 1.5}}}), "host.bridge.vlanId must be an integer"),
            (json!({"name": "n", "host": {"bridge": {"bridgeId": -1}}}), "host.bridge.bridgeId must be an integer"),
            (json!({"name": "n", "cniVersions": ["1.0.0", 1]}), "cniVersions must be an array of strings"),
            (json!({"name": "n", "ipam": "host-local"}), "ipam must be an object"),
            (json!({"name": "n", "capabilities": []}), "capabilities must be an object"),
            (json!({"name": "n", "runtimeConfig": {"mac": 1}}), "runtimeConfig.mac must be a string"),
            (json!({"name": "n", "kubeconfig": {}}), "kubeconfig must be a string"),
            (json!([1]), "(top level) must be a JSON object, not an array"),
        ] {
            let err = read(doc.clone()).unwrap_err();
            assert!(err.to_string().contains(needle), "{doc}: {err}");
            assert_eq!(CniError::from(err).code, codes::INVALID_NETCONF);
        }
    }

    #[test]
    fn bad_enum_values_list_what_is_accepted() {
        for (doc, needle) in [
            (
                json!({"name": "n", "host": {"iftype": "foo"}}),
                "host.iftype \"foo\" is not accepted; expected one of: vhostuser, memif",
            ),
            (json!({"name": "n", "host": {"iftype": "VhostUser"}}), "vhostuser, memif"),
            (json!({"name": "n", "host": {"netType": "l2"}}), "bridge, interface"),
            (json!({"name": "n", "container": {"vhost": {"mode": "Client"}}}), "client, server"),
            (json!({"name": "n", "host": {"memif": {"role": "primary"}}}), "master, slave"),
            (json!({"name": "n", "host": {"memif": {"mode": "l3"}}}), "ethernet, ip, inject-punt"),
            (json!({"name": "n", "host": {"bridge": {"vlanId": 4096}}}), "0..=4095"),
            (json!({"name": "n", "host": {"bridge": {"bridgeId": 4294967296u64}}}), "0..=4294967295"),
        ] {
            let err = read(doc.clone()).unwrap_err();
            assert!(err.to_string().contains(needle), "{doc}: {err}");
            assert_eq!(CniError::from(err).code, codes::INVALID_NETCONF);
        }
    }

    #[test]
    fn net_type_none_is_unsupported_not_invalid() {
        let err = read(json!({"name": "n", "host": {"netType": "none"}})).unwrap_err();
        assert_eq!(CniError::from(err).code, codes::UNSUPPORTED_FIELD);
    }

    #[test]
    fn name_is_required() {
        for doc in [json!({}), json!({"name": null}), json!({"name": ""})] {
            let err = read(doc.clone()).unwrap_err();
            assert!(matches!(err, TypeError::Missing { .. }), "{doc}: {err:?}");
            assert_eq!(CniError::from(err).code, codes::INVALID_NETCONF);
        }
    }

    #[test]
    fn null_and_empty_strings_mean_absent_as_go_zero_values_did() {
        let nc = read(json!({
            "name": "n", "type": null, "kubeconfig": "", "sharedDir": null, "logLevel": "",
            "host": {"engine": "ovs-dpdk", "iftype": "", "vhost": {"mode": "", "socketfile": ""},
                     "bridge": {"bridgeName": "", "vlanId": 0, "bridgeId": 0}},
            "container": null, "ipam": null
        }))
        .unwrap();
        assert_eq!(nc.plugin_type, "");
        assert_eq!((nc.kubeconfig, nc.shared_dir, nc.log_level, nc.ipam), (None, None, None, None));
        assert_eq!(nc.host.iftype, None);
        assert_eq!(nc.host.vhost, Some(VhostConf::default()));
        assert_eq!(nc.host.bridge, Some(BridgeConf::default()));
        assert_eq!(nc.container, InterfaceSpec::default());
    }

    #[test]
    fn permissions_take_names_ids_and_octal_strings() {
        let nc = read(json!({"name": "n", "Host": {"Permissions": {
            "Owner": 107, "group": "hugetlbfs", "dirMode": "2770", "SocketMode": "0660",
            "selinuxcontext": "system_u:object_r:container_file_t:s0"}}}))
        .unwrap();
        let p = nc.host.permissions.expect("permissions");
        assert_eq!((p.owner.as_deref(), p.group.as_deref()), (Some("107"), Some("hugetlbfs")));
        assert_eq!((p.dir_mode, p.socket_mode), (Some(0o2770), Some(0o660)));
        assert_eq!(p.selinux_context.as_deref(), Some("system_u:object_r:container_file_t:s0"));
        for (perms, needle) in [
            (json!({"dirMode": 770}), "host.permissions.dirMode must be an octal string"),
            (json!({"dirMode": "0999"}), "host.permissions.dirMode \"0999\" is not accepted"),
            (json!({"socketMode": "2770"}), "host.permissions.socketMode \"2770\" is not accepted"),
            (json!({"owner": -1}), "host.permissions.owner -1 is out of range"),
            (json!({"group": 4294967295u64}), "host.permissions.group 4294967295 is out of range"),
            (json!({"group": 1.5}), "host.permissions.group 1.5 is out of range"),
            (json!({"owner": ["qemu"]}), "host.permissions.owner must be a name or a numeric id"),
            (json!("qemu"), "host.permissions must be an object"),
        ] {
            let err = read(json!({"name": "n", "host": {"permissions": perms}})).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
            assert_eq!(CniError::from(err).code, codes::INVALID_NETCONF);
        }
    }

    #[test]
    fn long_values_are_clipped_in_messages() {
        let err = read(json!({"name": "n", "logLevel": "x".repeat(10_000)})).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }
}
