//! The CNI result in 1.1.0 form, converted to and from every supported version as libcni does.
//! Never drops a field the target version can carry, and never prints anything itself.

use super::version::CniVersion;
use super::{describe, quoted};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use std::net::IpAddr;
use userspace_cni_api::{codes, CniError};

/// A result in 1.1.0 form (libcni's types100; 1.0.0 has the same types).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// 1.0.0+ only. Zero means unset (Go `int` with omitempty).
    pub mtu: Option<u32>,
    /// The netns path, for an interface inside the sandbox.
    pub sandbox: Option<String>,
    /// 1.0.0+ only: JSON `socketPath`.
    pub socket_path: Option<String>,
    /// 1.0.0+ only: JSON `pciID`.
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Index into `interfaces`.
    pub interface: Option<usize>,
    /// CIDR, the host address with its prefix length, e.g. `10.1.1.5/24`.
    pub address: String,
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// CIDR.
    pub dst: String,
    pub gw: Option<String>,
    /// `mtu`, `advmss` and `priority` are Go `int`s with omitempty: zero means unset.
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    /// `table` and `scope` are Go `*int`: zero is a value.
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("the result must be a JSON object, found {found}")]
    NotAnObject { found: String },

    #[error("result field {field}: {problem}")]
    Field { field: String, problem: String },

    #[error(
        "result cniVersion {} is not one this plugin reads; it reads 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0, so \
         call the plugin with one of those as cniVersion",
        quoted(.value)
    )]
    UnsupportedVersion { value: String },
}

impl From<ResultError> for CniError {
    fn from(e: ResultError) -> Self {
        let code = match &e {
            ResultError::NotAnObject { .. } | ResultError::Field { .. } => codes::DECODE_FAILURE,
            ResultError::UnsupportedVersion { .. } => codes::INCOMPATIBLE_VERSION,
        };
        CniError::new(code, e.to_string())
    }
}

impl Interface {
    pub fn new(name: impl Into<String>) -> Self {
        Interface { name: name.into(), ..Interface::default() }
    }
}

impl IpConfig {
    pub fn new(address: impl Into<String>) -> Self {
        IpConfig { interface: None, address: address.into(), gateway: None }
    }
}

impl Route {
    pub fn new(dst: impl Into<String>) -> Self {
        Route { dst: dst.into(), gw: None, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

impl Dns {
    /// libcni's `DNS.IsEmpty`: a 1.x result omits `dns` entirely when this holds.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().unwrap_or("").is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// The result as the runtime must see it for a config of version `v`. Always carries
    /// `cniVersion`.
    pub fn to_json(&self, v: CniVersion) -> Value {
        let legacy = v.uses_040_result();
        let mut m = Map::new();
        m.insert("cniVersion".into(), Value::String(v.as_str().into()));
        if !self.interfaces.is_empty() {
            m.insert("interfaces".into(), Value::Array(self.interfaces.iter().map(|i| i.to_json(legacy)).collect()));
        }
        if !self.ips.is_empty() {
            m.insert("ips".into(), Value::Array(self.ips.iter().map(|i| i.to_json(legacy)).collect()));
        }
        if !self.routes.is_empty() {
            m.insert("routes".into(), Value::Array(self.routes.iter().map(Route::to_json).collect()));
        }
        // types100 deletes an empty `dns` in its MarshalJSON. types040 has no such fix-up, so Go
        // prints `"dns":{}` for 0.x; `dns` is optional in every spec version and libcni reads
        // both forms alike, so the empty object is left out for all versions.
        if !self.dns.is_empty() {
            m.insert("dns".into(), self.dns.to_json());
        }
        Value::Object(m)
    }

    /// Read a result of any supported version (an IPAM delegate's) into 1.1.0 form. A 0.x ip's
    /// `version` is ignored (the address says it), and a 0.x interface's mtu/socketPath/pciID
    /// are not read, as libcni's convertFrom04x copies only name, mac and sandbox. Addresses are
    /// validated and written back in canonical form, as Go's net.IPNet does.
    pub fn from_json(v: &Value) -> Result<CniResult, ResultError> {
        let obj = v.as_object().ok_or_else(|| ResultError::NotAnObject { found: describe(v) })?;
        let version = match obj.get("cniVersion") {
            None | Some(Value::Null) => None,
            // Go decodes a missing and an empty version alike; the caller knows what it asked for.
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                Some(CniVersion::parse(s).ok_or_else(|| ResultError::UnsupportedVersion { value: s.clone() })?)
            }
            Some(other) => {
                return Err(field_error("cniVersion", format!("expected a string, found {}", describe(other))))
            }
        };
        let legacy = version.is_some_and(CniVersion::uses_040_result);
        let interfaces = read_list(obj, "interfaces", |path, v| Interface::from_json(path, v, legacy))?;
        let ips = read_list(obj, "ips", IpConfig::from_json)?;
        let routes = read_list(obj, "routes", Route::from_json)?;
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(d) => Dns::from_json("dns", d)?,
        };
        Ok(CniResult { interfaces, ips, routes, dns })
    }
}

/// Serialises in 1.1.0 form (for records and logs); the runtime gets [`CniResult::to_json`].
impl Serialize for CniResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json(CniVersion::LATEST).serialize(s)
    }
}

/// Deserialises through [`CniResult::from_json`], so a stored result is validated like a delegate's.
impl<'de> Deserialize<'de> for CniResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        CniResult::from_json(&v).map_err(serde::de::Error::custom)
    }
}

impl Interface {
    fn to_json(&self, legacy: bool) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        put_str(&mut m, "mac", &self.mac);
        // types040.Interface has only name, mac and sandbox; convertInterfaceTo040 drops the rest.
        if !legacy {
            put_nonzero(&mut m, "mtu", self.mtu);
        }
        put_str(&mut m, "sandbox", &self.sandbox);
        if !legacy {
            put_str(&mut m, "socketPath", &self.socket_path);
            put_str(&mut m, "pciID", &self.pci_id);
        }
        Value::Object(m)
    }

    fn from_json(path: &str, v: &Value, legacy: bool) -> Result<Interface, ResultError> {
        let obj = as_object(path, v)?;
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            other => return Err(expected(&format!("{path}.name"), "a string", other)),
        };
        let mut i = Interface {
            name,
            mac: opt_str(obj, path, "mac")?,
            mtu: None,
            sandbox: opt_str(obj, path, "sandbox")?,
            socket_path: None,
            pci_id: None,
        };
        if !legacy {
            i.mtu = opt_u32(obj, path, "mtu")?.filter(|m| *m != 0);
            i.socket_path = opt_str(obj, path, "socketPath")?;
            i.pci_id = opt_str(obj, path, "pciID")?;
        }
        Ok(i)
    }
}

impl IpConfig {
    fn to_json(&self, legacy: bool) -> Value {
        let mut m = Map::new();
        if legacy {
            m.insert("version".into(), Value::String(ip_family(&self.address).into()));
        }
        if let Some(i) = self.interface {
            m.insert("interface".into(), Value::Number(Number::from(i)));
        }
        m.insert("address".into(), Value::String(self.address.clone()));
        put_str(&mut m, "gateway", &self.gateway);
        Value::Object(m)
    }

    fn from_json(path: &str, v: &Value) -> Result<IpConfig, ResultError> {
        let obj = as_object(path, v)?;
        let interface = match obj.get("interface") {
            None | Some(Value::Null) => None,
            Some(n) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(i) => Some(i),
                None => {
                    return Err(expected(&format!("{path}.interface"), "an index into interfaces (0 or more)", Some(n)))
                }
            },
        };
        Ok(IpConfig { interface, address: req_cidr(obj, path, "address")?, gateway: opt_ip(obj, path, "gateway")? })
    }
}

impl Route {
    /// The same in every version: types040 and types100 share libcni's `types.Route`, and both
    /// convertTo04x and convertFrom04x copy routes with `Route.Copy`, which keeps mtu, advmss,
    /// priority, table and scope.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("dst".into(), Value::String(self.dst.clone()));
        put_str(&mut m, "gw", &self.gw);
        put_nonzero(&mut m, "mtu", self.mtu);
        put_nonzero(&mut m, "advmss", self.advmss);
        put_nonzero(&mut m, "priority", self.priority);
        if let Some(t) = self.table {
            m.insert("table".into(), Value::Number(Number::from(t)));
        }
        if let Some(s) = self.scope {
            m.insert("scope".into(), Value::Number(Number::from(s)));
        }
        Value::Object(m)
    }

    fn from_json(path: &str, v: &Value) -> Result<Route, ResultError> {
        let obj = as_object(path, v)?;
        Ok(Route {
            dst: req_cidr(obj, path, "dst")?,
            gw: opt_ip(obj, path, "gw")?,
            mtu: opt_u32(obj, path, "mtu")?.filter(|n| *n != 0),
            advmss: opt_u32(obj, path, "advmss")?.filter(|n| *n != 0),
            priority: opt_u32(obj, path, "priority")?.filter(|n| *n != 0),
            table: opt_u32(obj, path, "table")?,
            scope: opt_u32(obj, path, "scope")?,
        })
    }
}

impl Dns {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        let list = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
        if !self.nameservers.is_empty() {
            m.insert("nameservers".into(), list(&self.nameservers));
        }
        put_str(&mut m, "domain", &self.domain);
        if !self.search.is_empty() {
            m.insert("search".into(), list(&self.search));
        }
        if !self.options.is_empty() {
            m.insert("options".into(), list(&self.options));
        }
        Value::Object(m)
    }

    fn from_json(path: &str, v: &Value) -> Result<Dns, ResultError> {
        let obj = as_object(path, v)?;
        Ok(Dns {
            nameservers: str_list(obj, path, "nameservers")?,
            domain: opt_str(obj, path, "domain")?,
            search: str_list(obj, path, "search")?,
            options: str_list(obj, path, "options")?,
        })
    }
}

/// libcni's convertIPConfigTo040: "4" when Go's `IP.To4()` is non-nil, which includes
/// IPv4-mapped IPv6 addresses; "6" otherwise (an unparseable address has a nil IP in Go).
fn ip_family(cidr: &str) -> &'static str {
    let host = cidr.split_once('/').map_or(cidr, |(h, _)| h);
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => "4",
        Ok(IpAddr::V6(a)) if a.to_ipv4_mapped().is_some() => "4",
        _ => "6",
    }
}

/// `addr/prefix` with the host address kept (Go's types.ParseCIDR keeps it too), canonical text.
fn canonical_cidr(s: &str) -> Option<String> {
    let (host, prefix) = s.split_once('/')?;
    let ip: IpAddr = host.parse().ok()?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u32 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then(|| format!("{ip}/{bits}"))
}

fn put_str(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    // Go's omitempty: an empty string is left out like an absent one.
    if let Some(s) = v.as_deref().filter(|s| !s.is_empty()) {
        m.insert(key.into(), Value::String(s.into()));
    }
}

fn put_nonzero(m: &mut Map<String, Value>, key: &str, v: Option<u32>) {
    if let Some(n) = v.filter(|n| *n != 0) {
        m.insert(key.into(), Value::Number(Number::from(n)));
    }
}

fn field_error(field: &str, problem: String) -> ResultError {
    ResultError::Field { field: field.to_string(), problem }
}

fn expected(field: &str, what: &str, found: Option<&Value>) -> ResultError {
    let found = found.map_or_else(|| "nothing (the field is missing)".to_string(), describe);
    field_error(field, format!("expected {what}, found {found}"))
}

fn as_object<'a>(path: &str, v: &'a Value) -> Result<&'a Map<String, Value>, ResultError> {
    v.as_object().ok_or_else(|| expected(path, "an object", Some(v)))
}

fn read_list<T>(
    obj: &Map<String, Value>,
    key: &str,
    parse: impl Fn(&str, &Value) -> Result<T, ResultError>,
) -> Result<Vec<T>, ResultError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().enumerate().map(|(i, v)| parse(&format!("{key}[{i}]"), v)).collect(),
        Some(other) => Err(expected(key, "an array", Some(other))),
    }
}

/// Absent, null and "" are all "unset", as Go decodes them into an omitempty string.
fn opt_str(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>, ResultError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok((!s.is_empty()).then(|| s.clone())),
        Some(other) => Err(expected(&format!("{path}.{key}"), "a string", Some(other))),
    }
}

fn opt_u32(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<u32>, ResultError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(expected(&format!("{path}.{key}"), "a whole number from 0 to 4294967295", Some(v))),
        },
    }
}

fn str_list(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Vec<String>, ResultError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(expected(&format!("{path}.{key}[{i}]"), "a string", Some(other))),
            })
            .collect(),
        Some(other) => Err(expected(&format!("{path}.{key}"), "an array of strings", Some(other))),
    }
}

fn req_cidr(obj: &Map<String, Value>, path: &str, key: &str) -> Result<String, ResultError> {
    let field = format!("{path}.{key}");
    match obj.get(key) {
        Some(Value::String(s)) => canonical_cidr(s).ok_or_else(|| {
            field_error(&field, format!("expected a CIDR like 10.1.1.5/24 or fd00::5/64, found {}", quoted(s)))
        }),
        other => Err(expected(&field, "a CIDR string like 10.1.1.5/24", other)),
    }
}

/// Go's net.IP decodes "" as nil, so an empty gateway is an absent one.
fn opt_ip(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>, ResultError> {
    let field = format!("{path}.{key}");
    match opt_str(obj, path, key)? {
        None => Ok(None),
        Some(s) => match s.parse::<IpAddr>() {
            Ok(ip) => Ok(Some(ip.to_string())),
            Err(_) => Err(field_error(
                &field,
                format!("expected an IP address like 10.1.1.1 or fd00::1, found {}", quoted(&s)),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface { name: "vhu-host".into(), ..Interface::default() },
                Interface {
                    name: "net1".into(),
                    mac: Some("02:00:00:aa:bb:cc".into()),
                    mtu: Some(9000),
                    sandbox: Some("/var/run/netns/pod1".into()),
                    socket_path: Some("/var/lib/cni/usrspcni/abc/abc-net1".into()),
                    pci_id: Some("0000:03:00.1".into()),
                },
            ],
            ips: vec![IpConfig { interface: Some(1), address: "10.1.1.5/24".into(), gateway: Some("10.1.1.1".into()) }],
            routes: vec![Route {
                mtu: Some(1400),
                advmss: Some(1360),
                priority: Some(10),
                table: Some(0),
                scope: Some(253),
                ..Route::new("0.0.0.0/0")
            }],
            dns: Dns { nameservers: vec!["10.96.0.10".into()], domain: Some("cluster.local".into()), ..Dns::default() },
        }
    }

    #[test]
    fn v110_and_v100_keep_every_field() {
        for v in [CniVersion::V110, CniVersion::V100] {
            assert_eq!(
                sample().to_json(v),
                json!({
                    "cniVersion": v.as_str(),
                    "interfaces": [
                        {"name": "vhu-host"},
                        {"name": "net1", "mac": "02:00:00:aa:bb:cc", "mtu": 9000, "sandbox": "/var/run/netns/pod1",
                         "socketPath": "/var/lib/cni/usrspcni/abc/abc-net1", "pciID": "0000:03:00.1"}
                    ],
                    "ips": [{"interface": 1, "address": "10.1.1.5/24", "gateway": "10.1.1.1"}],
                    "routes": [{"dst": "0.0.0.0/0", "mtu": 1400, "advmss": 1360, "priority": 10, "table": 0, "scope": 253}],
                    "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local"}
                })
            );
        }
    }

    #[test]
    fn v0x_adds_ip_version_and_drops_1x_interface_fields_but_keeps_route_fields() {
        for v in [CniVersion::V040, CniVersion::V031, CniVersion::V030] {
            assert_eq!(
                sample().to_json(v),
                json!({
                    "cniVersion": v.as_str(),
                    "interfaces": [
                        {"name": "vhu-host"},
                        {"name": "net1", "mac": "02:00:00:aa:bb:cc", "sandbox": "/var/run/netns/pod1"}
                    ],
                    "ips": [{"version": "4", "interface": 1, "address": "10.1.1.5/24", "gateway": "10.1.1.1"}],
                    "routes": [{"dst": "0.0.0.0/0", "mtu": 1400, "advmss": 1360, "priority": 10, "table": 0, "scope": 253}],
                    "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local"}
                })
            );
        }
    }

    #[test]
    fn empty_result_is_just_the_version() {
        for v in CniVersion::ALL {
            assert_eq!(CniResult::default().to_json(v), json!({"cniVersion": v.as_str()}));
        }
    }

    #[test]
    fn go_omitempty_zero_and_empty_values_are_left_out() {
        let r = CniResult {
            interfaces: vec![Interface {
                name: "".into(),
                mac: Some("".into()),
                mtu: Some(0),
                sandbox: Some("".into()),
                socket_path: Some("".into()),
                pci_id: None,
            }],
            routes: vec![Route { gw: Some("".into()), mtu: Some(0), table: Some(0), ..Route::new("10.0.0.0/8") }],
            dns: Dns { domain: Some("".into()), ..Dns::default() },
            ..CniResult::default()
        };
        assert_eq!(
            r.to_json(CniVersion::V110),
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": ""}], "routes": [{"dst": "10.0.0.0/8", "table": 0}]})
        );
    }

    #[test]
    fn ip_family_follows_go_to4() {
        assert_eq!(ip_family("10.1.1.5/24"), "4");
        assert_eq!(ip_family("fd00::5/64"), "6");
        assert_eq!(ip_family("::ffff:10.1.1.5/120"), "4");
        assert_eq!(ip_family("garbage"), "6");
    }

    #[test]
    fn reads_a_040_host_local_result() {
        let r = CniResult::from_json(&json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mtu": 1500, "socketPath": "/x", "pciID": "y"}],
            "ips": [{"version": "4", "address": "10.1.1.5/24", "gateway": "10.1.1.1", "interface": 0},
                    {"version": "6", "address": "FD00:0::5/64"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.1.1", "mtu": 1400}],
            "dns": {}
        }))
        .unwrap();
        assert_eq!(r.interfaces, vec![Interface::new("eth0")], "0.4.0 interfaces carry no 1.x fields");
        assert_eq!(
            r.ips[0],
            IpConfig { interface: Some(0), address: "10.1.1.5/24".into(), gateway: Some("10.1.1.1".into()) }
        );
        assert_eq!(r.ips[1].address, "fd00::5/64", "addresses are canonicalised");
        assert_eq!(r.routes[0].mtu, Some(1400));
        assert!(r.dns.is_empty());
    }

    #[test]
    fn reads_a_result_without_version_in_1x_form() {
        let r = CniResult::from_json(&json!({"interfaces": [{"name": "a", "mtu": 1500}]})).unwrap();
        assert_eq!(r.interfaces[0].mtu, Some(1500));
    }

    #[test]
    fn malformed_results_are_code_6_naming_the_field() {
        let cases = [
            (json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.1.5"}]}), "ips[0].address", "\"10.1.1.5\""),
            (json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.1.5/33"}]}), "ips[0].address", "10.1.1.5/33"),
            (json!({"cniVersion": "1.0.0", "ips": [{}]}), "ips[0].address", "missing"),
            (
                json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.1.5/24", "gateway": "x"}]}),
                "ips[0].gateway",
                "\"x\"",
            ),
            (
                json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.1.5/24", "interface": -1}]}),
                "ips[0].interface",
                "-1",
            ),
            (json!({"cniVersion": "1.0.0", "ips": {}}), "ips", "an object"),
            (json!({"cniVersion": "1.0.0", "interfaces": [{"mac": "x"}]}), "interfaces[0].name", "missing"),
            (
                json!({"cniVersion": "1.0.0", "interfaces": [{"name": "a", "mtu": "9000"}]}),
                "interfaces[0].mtu",
                "\"9000\"",
            ),
            (
                json!({"cniVersion": "1.0.0", "interfaces": [{"name": "a", "mtu": 1500.5}]}),
                "interfaces[0].mtu",
                "1500.5",
            ),
            (
                json!({"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "table": 4294967296u64}]}),
                "routes[0].table",
                "",
            ),
            (json!({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}), "routes[0].dst", ""),
            (json!({"cniVersion": "1.0.0", "dns": {"nameservers": [1]}}), "dns.nameservers[0]", "number 1"),
            (json!({"cniVersion": "1.0.0", "dns": []}), "dns", "an array"),
            (json!({"cniVersion": 1}), "cniVersion", "number 1"),
        ];
        for (input, field, shown) in cases {
            let e = CniResult::from_json(&input).unwrap_err();
            match &e {
                ResultError::Field { field: f, .. } => assert_eq!(f, field, "{input}"),
                other => panic!("{input}: expected a field error, got {other:?}"),
            }
            let c = CniError::from(e);
            assert_eq!(c.code, codes::DECODE_FAILURE, "{input}");
            assert!(c.msg.contains(field) && c.msg.contains(shown), "{input}: {}", c.msg);
        }
        assert_eq!(CniError::from(CniResult::from_json(&json!([])).unwrap_err()).code, codes::DECODE_FAILURE);
    }

    #[test]
    fn unsupported_result_version_is_code_1() {
        let c = CniError::from(CniResult::from_json(&json!({"cniVersion": "0.2.0", "ip4": {}})).unwrap_err());
        assert_eq!(c.code, codes::INCOMPATIBLE_VERSION);
        assert!(c.msg.contains("\"0.2.0\""), "{}", c.msg);
    }

    #[test]
    fn cidr_canonical_form() {
        assert_eq!(canonical_cidr("10.1.1.5/24").as_deref(), Some("10.1.1.5/24"));
        assert_eq!(canonical_cidr("10.1.1.5/024").as_deref(), Some("10.1.1.5/24"));
        assert_eq!(canonical_cidr("FD00::0005/64").as_deref(), Some("fd00::5/64"));
        assert_eq!(canonical_cidr("fd00::5/128").as_deref(), Some("fd00::5/128"));
        for bad in
            ["10.1.1.5", "10.1.1.5/", "10.1.1.5/33", "fd00::5/129", "10.1.1.5/+8", "10.1.1.5/1000", "/24", "x/24"]
        {
            assert_eq!(canonical_cidr(bad), None, "{bad}");
        }
    }

    #[test]
    fn serde_goes_through_the_1_1_0_form() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v, sample().to_json(CniVersion::V110));
        assert_eq!(serde_json::from_value::<CniResult>(v).unwrap(), sample());
        assert!(serde_json::from_value::<CniResult>(json!({"ips": [{"address": "nope"}]})).is_err());
    }

    fn cidr() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<std::net::Ipv4Addr>(), 0u32..=32).prop_map(|(a, p)| format!("{a}/{p}")),
            (any::<std::net::Ipv6Addr>(), 0u32..=128).prop_map(|(a, p)| format!("{a}/{p}")),
        ]
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-zA-Z0-9/:._-]{1,24}")
    }

    fn nonzero() -> impl Strategy<Value = Option<u32>> {
        proptest::option::of(1u32..)
    }

    prop_compose! {
        fn interface()(name in "[a-z0-9]{0,15}", mac in opt_text(), mtu in nonzero(), sandbox in opt_text(),
                       socket_path in opt_text(), pci_id in opt_text()) -> Interface {
            Interface { name, mac, mtu, sandbox, socket_path, pci_id }
        }
    }

    prop_compose! {
        fn ip_config()(interface in proptest::option::of(0usize..4), address in cidr(),
                       gateway in proptest::option::of(any::<IpAddr>())) -> IpConfig {
            IpConfig { interface, address, gateway: gateway.map(|g| g.to_string()) }
        }
    }

    prop_compose! {
        fn route()(dst in cidr(), gw in proptest::option::of(any::<IpAddr>()), mtu in nonzero(), advmss in nonzero(),
                   priority in nonzero(), table in proptest::option::of(any::<u32>()),
                   scope in proptest::option::of(0u32..=255)) -> Route {
            Route { dst, gw: gw.map(|g| g.to_string()), mtu, advmss, priority, table, scope }
        }
    }

    prop_compose! {
        fn dns()(nameservers in proptest::collection::vec("[0-9.]{1,15}", 0..3), domain in opt_text(),
                 search in proptest::collection::vec("[a-z.]{1,20}", 0..3),
                 options in proptest::collection::vec("[a-z:0-9]{1,10}", 0..3)) -> Dns {
            Dns { nameservers, domain, search, options }
        }
    }

    prop_compose! {
        fn result()(interfaces in proptest::collection::vec(interface(), 0..4),
                    ips in proptest::collection::vec(ip_config(), 0..4),
                    routes in proptest::collection::vec(route(), 0..4), dns in dns()) -> CniResult {
            CniResult { interfaces, ips, routes, dns }
        }
    }

    /// JSON whose keys are mostly the result's own, so the parser's paths are reached.
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            prop_oneof![cidr(), "\\PC{0,12}", Just("1.1.0".to_string())].prop_map(Value::String),
        ];
        let key = proptest::sample::select(vec![
            "cniVersion",
            "interfaces",
            "ips",
            "routes",
            "dns",
            "name",
            "mac",
            "mtu",
            "sandbox",
            "socketPath",
            "pciID",
            "interface",
            "address",
            "gateway",
            "version",
            "dst",
            "gw",
            "table",
            "scope",
            "nameservers",
            "domain",
            "search",
            "options",
            "x",
        ]);
        leaf.prop_recursive(4, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    fn version() -> impl Strategy<Value = CniVersion> {
        proptest::sample::select(CniVersion::ALL.to_vec())
    }

    /// What a 0.x result can carry, written from libcni's types040.Interface (name, mac, sandbox).
    fn as_0x(r: &CniResult) -> CniResult {
        let mut r = r.clone();
        for i in &mut r.interfaces {
            i.mtu = None;
            i.socket_path = None;
            i.pci_id = None;
        }
        r
    }

    proptest! {
        #[test]
        fn round_trip_through_every_version(r in result(), v in version()) {
            let back = CniResult::from_json(&r.to_json(v));
            prop_assert!(back.is_ok(), "{:?}", back);
            let want = if v.uses_040_result() { as_0x(&r) } else { r.clone() };
            prop_assert_eq!(back.unwrap(), want);
        }

        #[test]
        fn every_0x_ip_carries_its_family(r in result(), v in version()) {
            let j = r.to_json(v);
            for (i, ip) in r.ips.iter().enumerate() {
                let family = j["ips"][i].get("version").and_then(Value::as_str);
                if v.uses_040_result() {
                    // Go's IP.To4() is non-nil for IPv4 and for IPv4-mapped IPv6 (::ffff:a.b.c.d).
                    let host: IpAddr = ip.address.split('/').next().unwrap_or("").parse().unwrap();
                    let is4 = match host { IpAddr::V4(_) => true, IpAddr::V6(a) => a.to_ipv4_mapped().is_some() };
                    let want = if is4 { "4" } else { "6" };
                    prop_assert_eq!(family, Some(want), "{}", ip.address);
                } else {
                    prop_assert_eq!(family, None);
                }
            }
        }

        #[test]
        fn to_json_never_panics_on_arbitrary_fields(
            name in any::<String>(), address in any::<String>(), dst in any::<String>(),
            idx in any::<usize>(), mtu in any::<Option<u32>>(), v in version(),
        ) {
            let r = CniResult {
                interfaces: vec![Interface { name, mtu, ..Interface::default() }],
                ips: vec![IpConfig { interface: Some(idx), address, gateway: None }],
                routes: vec![Route::new(dst)],
                dns: Dns::default(),
            };
            let _ = r.to_json(v);
        }

        #[test]
        fn from_json_never_panics(v in arbitrary_json()) {
            let _ = CniResult::from_json(&v);
            for key in ["interfaces", "ips", "routes", "dns"] {
                let _ = CniResult::from_json(&json!({"cniVersion": "0.4.0", key: v.clone()}));
                let _ = CniResult::from_json(&json!({key: [v.clone()]}));
            }
        }
    }
}
