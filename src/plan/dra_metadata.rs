//! KEP-5304 device metadata (`metadata.resource.k8s.io/v1alpha1` `DeviceMetadata`, Kubernetes
//! 1.36): the document the DRA front-end writes per (claim, request), where the container sees it,
//! and the attributes of a vhost-user port that KubeVirt's vhost-user binding reads from it. Pure:
//! the pipeline step writes the file and the CDI mount that shows it to the container.
//!
//! Wire contract, from `k8s.io/dynamic-resource-allocation` (`api/metadata`, `kubeletplugin/
//! metadata.go`, `devicemetadata/decode.go`) and the binding (`pkg/dra/ovsdpdk`):
//! - the file is a stream of JSON objects, the same metadata once per API version, newest first,
//!   each followed by a newline; a reader takes the first object whose version it knows;
//! - in the container it is `/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/
//!   <podClaimName>/<base request>/<driver>-metadata.json` for a claim made from a template, or
//!   `.../resourceclaims/<claim name>/<base request>/...` for a claim the pod names directly; the
//!   path has the base request (`req` of `req/sub`), the document's `requests[].name` the full one;
//! - attribute values are the resource API's `DeviceAttribute`: `{"string": "..."}`, `{"int": n}`;
//! - the binding reads only template claims, takes the first device carrying `vhost-user-path`
//!   (a string) and refuses it without an int `mtu` in 68..=9702.

use super::k8s_names::{shown, Shape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub const API_VERSION: &str = "metadata.resource.k8s.io/v1alpha1";
pub const KIND: &str = "DeviceMetadata";
/// The API group: an object of this group in a version we do not know is skipped, as the
/// reference decoder does, so a newer driver's extra versions do not break us.
const GROUP: &str = "metadata.resource.k8s.io";

/// Where the files appear in a container (`api/metadata.ContainerDir`).
pub const CONTAINER_DIR: &str = "/var/run/kubernetes.io/dra-device-attributes";
pub const RESOURCE_CLAIMS_SUBDIR: &str = "resourceclaims";
pub const RESOURCE_CLAIM_TEMPLATES_SUBDIR: &str = "resourceclaimtemplates";
pub const FILE_SUFFIX: &str = "-metadata.json";

/// The vhost-user socket as the container (virt-launcher) sees it.
pub const ATTR_VHOST_USER_PATH: &str = "vhost-user-path";
/// The port's MTU; the binding refuses a device without it.
pub const ATTR_MTU: &str = "mtu";
pub const ATTR_POLICING_RATE: &str = "ingress-policing-rate";
pub const ATTR_POLICING_BURST: &str = "ingress-policing-burst";
/// The binding's MTU range: RFC 791's minimum and OVS-DPDK's largest vhost-user MTU.
pub const MTU_MIN: u32 = 68;
pub const MTU_MAX: u32 = 9702;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("device metadata: {field} {value} is not valid: {reason}; expected {expected}")]
    Name { field: &'static str, value: String, reason: &'static str, expected: &'static str },
    #[error(
        "device metadata: mtu {mtu} is outside {MTU_MIN}..={MTU_MAX}, which KubeVirt's vhost-user binding \
         refuses; set the bridge's MTU inside that range"
    )]
    Mtu { mtu: u32 },
    #[error("device metadata: the socket path {path} {reason}")]
    SocketPath { path: String, reason: &'static str },
    #[error("device metadata file is not a {API_VERSION} DeviceMetadata stream: {reason}")]
    Malformed { reason: String },
}

/// A `DeviceAttribute` value as the resource API encodes it: an object with exactly one key
/// naming the type. The alpha list types (`ints`, `strings`, ...) are not written by us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attribute {
    Bool(bool),
    Int(i64),
    String(String),
    Version(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Not the claim's generation: the file's, 1 when first written and raised on every rewrite
    /// so a reader sees the change (KEP-5304 rule 3).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMetadata {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    /// `pod.spec.resourceClaims[].name`, set only for a claim made from a template.
    #[serde(rename = "podClaimName", default, skip_serializing_if = "Option::is_none")]
    pub pod_claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<MetadataRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataRequest {
    /// The full request reference: `req` or `req/sub`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<MetadataDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataDevice {
    pub driver: String,
    pub pool: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Attribute>,
}

/// The claim a document describes; every name is checked before it reaches a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataClaim {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// From the claim's `resource.kubernetes.io/pod-claim-name` annotation.
    pub pod_claim_name: Option<String>,
}

fn check(field: &'static str, shape: Shape, value: &str) -> Result<(), MetadataError> {
    shape.check(value).map_err(|reason| MetadataError::Name {
        field,
        value: shown(value),
        reason,
        expected: shape.expected(),
    })
}

/// `req` of `req/sub`, after checking that the reference is one or two DNS labels.
fn base_request(request: &str) -> Result<&str, MetadataError> {
    super::k8s_names::base_request(request, check)
}

impl MetadataClaim {
    fn validate(&self) -> Result<(), MetadataError> {
        check("claim namespace", Shape::DnsLabel, &self.namespace)?;
        check("claim name", Shape::DnsSubdomain, &self.name)?;
        check("claim uid", Shape::Uid, &self.uid)?;
        if let Some(p) = &self.pod_claim_name {
            check("pod claim name", Shape::DnsLabel, p)?;
        }
        Ok(())
    }
}

/// Where the container sees the metadata file of `request` (full or base reference) of `claim`
/// written by `driver`.
pub fn container_path(driver: &str, claim: &MetadataClaim, request: &str) -> Result<PathBuf, MetadataError> {
    claim.validate()?;
    check("driver", Shape::DnsSubdomain, driver)?;
    let base = base_request(request)?;
    let (subdir, claim_dir) = match &claim.pod_claim_name {
        Some(pod_claim_name) => (RESOURCE_CLAIM_TEMPLATES_SUBDIR, pod_claim_name),
        None => (RESOURCE_CLAIMS_SUBDIR, &claim.name),
    };
    Ok(Path::new(CONTAINER_DIR).join(subdir).join(claim_dir).join(base).join(format!("{driver}{FILE_SUFFIX}")))
}

/// The attributes of a vhost-user port: the socket as the container sees it, the MTU (always:
/// the binding refuses a device without it), and the ingress policing when it limits anything
/// (a rate or burst of 0 is OVS's "no policing" / "default burst", so it is left out, as the
/// proof-of-concept driver does).
pub fn vhost_user_attributes(
    socket_in_container: &str,
    mtu: u32,
    policing_rate_kbps: Option<u32>,
    policing_burst_kb: Option<u32>,
) -> Result<BTreeMap<String, Attribute>, MetadataError> {
    let bad = |reason| MetadataError::SocketPath { path: shown(socket_in_container), reason };
    if !socket_in_container.starts_with('/') {
        return Err(bad("is not absolute"));
    }
    if socket_in_container.contains('\0') {
        return Err(bad("holds a NUL byte"));
    }
    if Path::new(socket_in_container).components().any(|c| c == Component::ParentDir) {
        return Err(bad("has a '..' component"));
    }
    // QEMU cannot bind a socket path longer than sun_path.
    if !userspace_cni_support::names::fits_sun_path(Path::new(socket_in_container)) {
        return Err(bad("is longer than a unix socket path may be (107 bytes)"));
    }
    if !(MTU_MIN..=MTU_MAX).contains(&mtu) {
        return Err(MetadataError::Mtu { mtu });
    }
    let mut attrs = BTreeMap::new();
    attrs.insert(ATTR_VHOST_USER_PATH.to_owned(), Attribute::String(socket_in_container.to_owned()));
    attrs.insert(ATTR_MTU.to_owned(), Attribute::Int(i64::from(mtu)));
    for (key, value) in [(ATTR_POLICING_RATE, policing_rate_kbps), (ATTR_POLICING_BURST, policing_burst_kb)] {
        if let Some(v) = value.filter(|v| *v > 0) {
            attrs.insert(key.to_owned(), Attribute::Int(i64::from(v)));
        }
    }
    Ok(attrs)
}

impl DeviceMetadata {
    /// The document for one request of a claim (the reference writer writes one file, so one
    /// request, per base request). `request` is the full reference (`req` or `req/sub`).
    pub fn new(
        claim: &MetadataClaim,
        generation: i64,
        request: &str,
        devices: Vec<MetadataDevice>,
    ) -> Result<Self, MetadataError> {
        claim.validate()?;
        base_request(request)?;
        for d in &devices {
            check("device driver", Shape::DnsSubdomain, &d.driver)?;
            check("device pool", Shape::DnsSubdomain, &d.pool)?;
            check("device name", Shape::DnsLabel, &d.name)?;
        }
        Ok(DeviceMetadata {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: ObjectMeta {
                name: claim.name.clone(),
                namespace: claim.namespace.clone(),
                uid: claim.uid.clone(),
                generation,
            },
            pod_claim_name: claim.pod_claim_name.clone(),
            requests: vec![MetadataRequest { name: request.to_owned(), devices }],
        })
    }

    /// The file's content: a stream with one object per version we write (one: v1alpha1), each
    /// followed by a newline, as the reference writer does.
    pub fn to_stream(&self) -> Result<Vec<u8>, MetadataError> {
        let mut out = serde_json::to_vec(self).map_err(|e| MetadataError::Malformed { reason: e.to_string() })?;
        out.push(b'\n');
        Ok(out)
    }

    /// The first object of a stream in our version, skipping objects of our group in versions we
    /// do not know (a newer writer's), as the reference decoder does; anything else is an error.
    /// The caller bounds the bytes it reads.
    pub fn from_stream(bytes: &[u8]) -> Result<Self, MetadataError> {
        let malformed = |reason: String| MetadataError::Malformed { reason };
        let mut skipped = Vec::new();
        for value in serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>() {
            let value = value.map_err(|e| malformed(format!("not JSON ({e})")))?;
            let version = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
            if version == API_VERSION {
                return serde_json::from_value(value).map_err(|e| malformed(e.to_string()));
            }
            match version.split_once('/') {
                Some((GROUP, _)) => skipped.push(shown(version)),
                _ => return Err(malformed(format!("an object has apiVersion {}", shown(version)))),
            }
        }
        Err(malformed(match skipped.is_empty() {
            true => "it holds no object".to_owned(),
            false => format!("it holds only versions this build does not know: {}", skipped.join(", ")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The driver name KubeVirt's vhost-user binding hard-codes.
    const BINDING_DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
    const UID: &str = "0f6c2f5e-8a8b-4c1e-9f5e-2b7d1c3a4e5f";

    /// KubeVirt's vhost-user binding (`pkg/dra/ovsdpdk`, through `devicemetadata.
    /// ReadResourceClaimTemplateMetadataWithDriverName`), as a checker over what we write: the file
    /// is at the template path of the VMI's claim and request for the binding's driver; the first
    /// object of our version is a DeviceMetadata; the first device carrying `vhost-user-path`
    /// has it as a string and an int `mtu` in 68..=9702. Returns (socket, mtu).
    fn binding_accepts(path: &Path, stream: &[u8], claim: &str, request: &str) -> Result<(String, i64), String> {
        let want = format!("{CONTAINER_DIR}/resourceclaimtemplates/{claim}/{request}/{BINDING_DRIVER}-metadata.json");
        if path != Path::new(&want) {
            return Err(format!("the binding reads {want}, the file is at {}", path.display()));
        }
        let mut first = None;
        for v in serde_json::Deserializer::from_slice(stream).into_iter::<Value>() {
            let v = v.map_err(|e| format!("stream: {e}"))?;
            if v["apiVersion"] == "metadata.resource.k8s.io/v1alpha1" {
                first = Some(v);
                break;
            }
        }
        let doc = first.ok_or("no v1alpha1 object")?;
        if doc["kind"] != "DeviceMetadata" {
            return Err(format!("kind {}", doc["kind"]));
        }
        let devices = doc["requests"].as_array().into_iter().flatten().flat_map(|r| r["devices"].as_array()).flatten();
        for dev in devices {
            let Some(path) = dev["attributes"].get("vhost-user-path") else { continue };
            let path = path["string"].as_str().ok_or("vhost-user-path is not a string")?;
            let mtu = dev["attributes"].get("mtu").ok_or("mandatory attribute mtu not found")?;
            let mtu = mtu["int"].as_i64().ok_or("mtu is not an integer")?;
            if !(68..=9702).contains(&mtu) {
                return Err(format!("mtu {mtu} out of range"));
            }
            return Ok((path.to_owned(), mtu));
        }
        Err("no device carries vhost-user-path".into())
    }

    fn claim(pod_claim_name: Option<&str>) -> MetadataClaim {
        MetadataClaim {
            namespace: "vms".into(),
            name: "virt-launcher-vm1-x7k2p-net-9qz4d".into(),
            uid: UID.into(),
            pod_claim_name: pod_claim_name.map(str::to_owned),
        }
    }

    fn document(request: &str, socket: &str, mtu: u32, rate: Option<u32>, burst: Option<u32>) -> DeviceMetadata {
        let attributes = vhost_user_attributes(socket, mtu, rate, burst).expect("valid attributes");
        let device = MetadataDevice {
            driver: BINDING_DRIVER.into(),
            pool: "worker-0.example.com".into(),
            name: "br-vm".into(),
            attributes,
        };
        DeviceMetadata::new(&claim(Some("net")), 1, request, vec![device]).expect("valid document")
    }

    /// (request, socket, mtu, policing rate, burst)
    type Row<'a> = (&'a str, &'a str, u32, Option<u32>, Option<u32>);

    #[test]
    fn our_documents_pass_the_binding_rules() {
        let table: &[Row] = &[
            ("vhost", "/var/run/vhost-user/net/vhost/vhost.sock", 1500, None, None),
            ("vhost", "/var/run/vhost-user/net/vhost/vhost.sock", MTU_MIN, Some(10_000), Some(1_000)),
            ("vhost", "/v.sock", MTU_MAX, Some(10_000), None),
            // A subrequest: the path carries the base request, the document the full one.
            ("vhost/fast", "/var/run/vhost-user/net/vhost/vhost.sock", 9000, None, None),
        ];
        for (request, socket, mtu, rate, burst) in table {
            let doc = document(request, socket, *mtu, *rate, *burst);
            let path = container_path(BINDING_DRIVER, &claim(Some("net")), request).expect("path");
            let stream = doc.to_stream().expect("encodes");
            let base = request.split('/').next().unwrap_or_default();
            assert_eq!(
                binding_accepts(&path, &stream, "net", base),
                Ok((socket.to_string(), i64::from(*mtu))),
                "request {request}: {}",
                String::from_utf8_lossy(&stream)
            );
            assert_eq!(doc.requests[0].name, *request, "the document keeps the full request reference");
        }
    }

    #[test]
    fn the_binding_checker_refuses_what_the_binding_refuses() {
        let good = document("vhost", "/s.sock", 1500, None, None);
        let path = container_path(BINDING_DRIVER, &claim(Some("net")), "vhost").expect("path");
        let mutate = |f: &dyn Fn(&mut Value)| {
            let mut v = serde_json::to_value(&good).expect("value");
            f(&mut v["requests"][0]["devices"][0]["attributes"]);
            serde_json::to_vec(&v).expect("bytes")
        };
        let cases: [(&str, Vec<u8>); 5] = [
            ("no mtu", mutate(&|a| drop(a.as_object_mut().map(|m| m.remove("mtu"))))),
            ("mtu as a string", mutate(&|a| a["mtu"] = json!({"string": "1500"}))),
            ("mtu too small", mutate(&|a| a["mtu"] = json!({"int": 67}))),
            ("mtu too large", mutate(&|a| a["mtu"] = json!({"int": 9703}))),
            ("path as an int", mutate(&|a| a["vhost-user-path"] = json!({"int": 1}))),
        ];
        for (what, stream) in cases {
            assert!(
                binding_accepts(&path, &stream, "net", "vhost").is_err(),
                "checker accepted a document with {what}"
            );
        }
        let direct = container_path(BINDING_DRIVER, &claim(None), "vhost").expect("path");
        let stream = good.to_stream().expect("encodes");
        assert!(binding_accepts(&direct, &stream, "net", "vhost").is_err(), "the binding reads template claims only");
    }

    #[test]
    fn the_document_has_the_kep_5304_json_shape() {
        let doc = document("vhost", "/s.sock", 1500, Some(100), Some(10));
        let stream = doc.to_stream().expect("encodes");
        assert_eq!(stream.last(), Some(&b'\n'), "each object of the stream ends with a newline");
        let v: Value = serde_json::from_slice(&stream).expect("one JSON object");
        assert_eq!(
            v,
            json!({
                "apiVersion": "metadata.resource.k8s.io/v1alpha1",
                "kind": "DeviceMetadata",
                "metadata": {"name": "virt-launcher-vm1-x7k2p-net-9qz4d", "namespace": "vms", "uid": UID, "generation": 1},
                "podClaimName": "net",
                "requests": [{"name": "vhost", "devices": [{
                    "driver": BINDING_DRIVER, "pool": "worker-0.example.com", "name": "br-vm",
                    "attributes": {
                        "vhost-user-path": {"string": "/s.sock"},
                        "mtu": {"int": 1500},
                        "ingress-policing-rate": {"int": 100},
                        "ingress-policing-burst": {"int": 10}
                    }
                }]}]
            })
        );
        assert_eq!(DeviceMetadata::from_stream(&stream), Ok(doc));
    }

    #[test]
    fn a_direct_claim_has_no_pod_claim_name_and_lives_under_resourceclaims() {
        let c = claim(None);
        let doc = DeviceMetadata::new(&c, 3, "vhost", vec![]).expect("valid");
        let v = serde_json::to_value(&doc).expect("value");
        assert!(v.get("podClaimName").is_none(), "{v}");
        assert_eq!(v["metadata"]["generation"], 3);
        assert_eq!(
            container_path("example.com", &c, "vhost/alt").expect("path"),
            Path::new("/var/run/kubernetes.io/dra-device-attributes/resourceclaims/virt-launcher-vm1-x7k2p-net-9qz4d/vhost/example.com-metadata.json")
        );
    }

    #[test]
    fn zero_policing_is_left_out_and_mtu_is_always_there() {
        let attrs = vhost_user_attributes("/s", 1500, Some(0), Some(0)).expect("valid");
        assert_eq!(attrs.keys().collect::<Vec<_>>(), ["mtu", "vhost-user-path"]);
        for mtu in [0, 67, 9703, u32::MAX] {
            assert_eq!(vhost_user_attributes("/s", mtu, None, None), Err(MetadataError::Mtu { mtu }));
        }
    }

    #[test]
    fn hostile_names_never_reach_the_path() {
        let hostile = ["..", ".", "a/b", "../../etc", "net\0", "Net", "", &"a".repeat(64)];
        for h in hostile {
            let mut c = claim(Some(h));
            assert!(container_path(BINDING_DRIVER, &c, "vhost").is_err(), "pod claim name {:?}", shown(h));
            c.pod_claim_name = None;
            c.name = h.to_owned();
            assert!(container_path(BINDING_DRIVER, &c, "vhost").is_err(), "claim name {:?}", shown(h));
            // `a/b` is a valid request reference (request/subrequest), a path of the base alone.
            if h != "a/b" {
                assert!(container_path(BINDING_DRIVER, &claim(Some("net")), h).is_err(), "request {:?}", shown(h));
            }
            assert!(container_path(h, &claim(Some("net")), "vhost").is_err(), "driver {:?}", shown(h));
        }
        for request in ["a/b/c", "a/", "/a", "a/..", "a/B"] {
            assert!(container_path(BINDING_DRIVER, &claim(Some("net")), request).is_err(), "request {request:?}");
        }
        let mut c = claim(Some("net"));
        c.uid = "../x".into();
        assert!(container_path(BINDING_DRIVER, &c, "vhost").is_err());
        let err = container_path(BINDING_DRIVER, &claim(Some(&"x".repeat(1 << 20))), "vhost").expect_err("overlong");
        assert!(err.to_string().len() < 400, "the error repeats the value: {} bytes", err.to_string().len());
    }

    #[test]
    fn hostile_socket_paths_are_refused() {
        for p in ["", "relative/s", "/a/../../etc/s", "/a\0b", &format!("/{}", "a".repeat(107))] {
            assert!(
                matches!(vhost_user_attributes(p, 1500, None, None), Err(MetadataError::SocketPath { .. })),
                "{:?}",
                shown(p)
            );
        }
    }

    #[test]
    fn a_stream_is_read_at_its_first_known_version() {
        let ours = serde_json::to_vec(&document("vhost", "/s", 1500, None, None)).expect("bytes");
        let newer = br#"{"apiVersion":"metadata.resource.k8s.io/v1beta1","kind":"DeviceMetadata","future":1}"#;
        let stream = [&newer[..], b"\n", &ours, b"\n"].concat();
        assert_eq!(DeviceMetadata::from_stream(&stream).map(|d| d.requests[0].name.clone()), Ok("vhost".into()));
        for bad in [&newer[..], b"", b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}", b"{\"apiVersion\":"] {
            assert!(DeviceMetadata::from_stream(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let two_types = br#"{"apiVersion":"metadata.resource.k8s.io/v1alpha1","kind":"DeviceMetadata","metadata":{},
            "requests":[{"name":"r","devices":[{"driver":"d","pool":"p","name":"n","attributes":{"a":{"int":1,"string":"x"}}}]}]}"#;
        assert!(DeviceMetadata::from_stream(two_types).is_err(), "an attribute has exactly one type");
    }
}
