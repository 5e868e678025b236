//! The node's ResourceSlice (`resource.k8s.io/v1`): one pool named after the node, one device per
//! configured bridge, published with create-or-replace and read back. Never writes a slice of
//! another node or driver, and never waits on the API server without a bound.
//!
//! Shape (issue 14, kept from the PoC `dra-driver-ovsdpdk` so its DeviceClass selectors match):
//! device name = bridge name (a DNS label); attributes `<driver>/bridgeName` (string) and
//! `<driver>/mtu` (int); capacity `<driver>/ports` (32768, the PoC's `DefaultBridgeCapacity`) with
//! `requestPolicy {default: 1, validRange {min: 1, step: 1}}`; `allowMultipleAllocations: true`.
//! The last two need the `DRAConsumableCapacity` gate: with it off the API server drops them
//! silently, so `publish` reads the slice back and reports (and logs) what the server kept.
//!
//! Name: `<node>-<driver>` (dots kept; a DNS subdomain of at most 253 bytes, longer ones cut and
//! given a hash suffix). kubelet's helper (`k8s.io/dynamic-resource-allocation/resourceslice`)
//! uses `generateName` `<index>-<driver>-<node>-` instead, with a random suffix; a fixed name lets
//! a restarted plugin PUT its own slice instead of creating a second one and deleting the first.
//! Ours are found the way the helper finds its own: the field selector
//! `spec.driver=<driver>,spec.nodeName=<node>`; every other slice in that set is deleted once ours
//! is written with a higher `pool.generation` (the scheduler ignores older generations of a pool).

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::{
    CapacityRequestPolicy, CapacityRequestPolicyRange, Device, DeviceAttribute, DeviceCapacity, ResourcePool,
    ResourceSlice, ResourceSliceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// Ports a bridge offers per node: the PoC's `DefaultBridgeCapacity` (32 * 1024).
pub const DEFAULT_PORTS_PER_BRIDGE: i64 = 32 * 1024;
/// Re-reads after a 409 before giving up (another writer of our slice: a second plugin instance).
const MAX_CONFLICT_RETRIES: u32 = 5;
/// The longest object name the API server accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// One OVS bridge offered as a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeDevice {
    /// The OVS bridge name, also the device name: must be a DNS label.
    pub name: String,
    pub mtu: u32,
}

/// What to publish for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceSpec {
    pub driver: String,
    pub node: String,
    pub bridges: Vec<BridgeDevice>,
    /// The `ports` capacity of each bridge (`DEFAULT_PORTS_PER_BRIDGE` unless told otherwise).
    pub ports_per_bridge: i64,
}

impl SliceSpec {
    /// A spec with the default port capacity.
    pub fn new(driver: &str, node: &str, bridges: Vec<BridgeDevice>) -> SliceSpec {
        SliceSpec { driver: driver.into(), node: node.into(), bridges, ports_per_bridge: DEFAULT_PORTS_PER_BRIDGE }
    }
}

/// What the API server holds after `publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The slice's name (also when nothing was published: the name it would have).
    pub name: String,
    /// Its `pool.generation`; 0 when no slice was published (no bridges).
    pub generation: i64,
    /// Devices in the stored slice (0: no slice).
    pub devices: usize,
    /// Whether the stored devices kept `allowMultipleAllocations: true` (the API server has
    /// `DRAConsumableCapacity` on): false means one claim per bridge per node.
    pub consumable_capacity: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("{what} {value:?} cannot be published: {reason}")]
    Invalid { what: &'static str, value: String, reason: String },
    #[error("node {node:?} does not exist in the Kubernetes API (404 on GET node): is node_name (NODE_NAME) this node's name?")]
    NodeNotFound { node: String },
    #[error(
        "the Kubernetes API server refused {verb} {resource} (403 Forbidden): {message}. The DRA plugin's account \
         needs the ClusterRole userspace-cni-dra (config/kubernetes/clusterrole.yaml) and may write only slices of \
         its own node (admission-policy.yaml)"
    )]
    Forbidden { verb: &'static str, resource: String, message: String },
    #[error("the Kubernetes API server answered {verb} {resource} with HTTP {status}: {message}")]
    Api { verb: &'static str, resource: String, status: u16, message: String },
    #[error("the Kubernetes API server did not answer {verb} {resource} within {waited_ms} ms")]
    Timeout { verb: &'static str, resource: String, waited_ms: u64 },
    #[error("the Kubernetes API server was unreachable during {verb} {resource}: {reason}")]
    Unreachable { verb: &'static str, resource: String, reason: String },
    #[error(
        "resourceslice {name} exists but belongs to driver {driver:?} on node {node:?}: not ours, left alone; \
         delete it or rename the node or driver"
    )]
    NameTaken { name: String, driver: String, node: Option<String> },
    #[error("resourceslice {name} changed under {attempts} consecutive writes (409 Conflict each time): is a second plugin running for this node?")]
    Conflict { name: String, attempts: u32 },
}

/// The deterministic slice name for `node` and `driver` (see the module docs).
pub fn slice_name(node: &str, driver: &str) -> String {
    let full = format!("{node}-{driver}");
    if full.len() <= MAX_NAME {
        return full;
    }
    // FNV-1a: stable across builds and Rust versions (std's hasher is not promised to be).
    let hash = full.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    // Names are checked ASCII before they get here; the boundary search keeps this total anyway.
    let mut end = MAX_NAME - 9;
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    let cut = full[..end].trim_end_matches(['-', '.']);
    format!("{cut}-{hash:08x}")
}

fn dns_label(s: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if s.is_empty() || s.len() > 63 {
        return Err(format!("a device name is a DNS label of 1 to 63 characters, this has {}", s.len()));
    }
    if !s.chars().all(ok_char) || s.starts_with('-') || s.ends_with('-') {
        return Err("a device name is a DNS label: lower-case letters, digits and '-', starting and ending with \
                    a letter or digit (rename the bridge)"
            .into());
    }
    Ok(())
}

fn validate(spec: &SliceSpec) -> Result<(), SliceError> {
    let invalid = |what, value: &str, reason: String| SliceError::Invalid { what, value: value.into(), reason };
    if spec.driver.is_empty() || spec.driver.len() > 63 {
        return Err(invalid("driver name", &spec.driver, "a DNS subdomain of 1 to 63 characters".into()));
    }
    if spec.node.is_empty() {
        return Err(invalid("node name", &spec.node, "empty: set node_name (NODE_NAME)".into()));
    }
    if spec.ports_per_bridge < 1 {
        return Err(invalid("ports per bridge", &spec.ports_per_bridge.to_string(), "must be at least 1".into()));
    }
    for (i, b) in spec.bridges.iter().enumerate() {
        dns_label(&b.name).map_err(|r| invalid("bridge", &b.name, r))?;
        if spec.bridges[..i].iter().any(|o| o.name == b.name) {
            return Err(invalid("bridge", &b.name, "listed twice".into()));
        }
        if !(68..=9702).contains(&b.mtu) {
            return Err(invalid("bridge", &b.name, format!("mtu {} is outside 68..=9702", b.mtu)));
        }
    }
    Ok(())
}

/// The devices of `spec`, in its bridge order.
pub fn devices(spec: &SliceSpec) -> Vec<Device> {
    let q = |n: i64| Quantity(n.to_string());
    let key = |name: &str| format!("{}/{name}", spec.driver);
    spec.bridges
        .iter()
        .map(|b| Device {
            name: b.name.clone(),
            allow_multiple_allocations: Some(true),
            attributes: Some(BTreeMap::from([
                (key("bridgeName"), DeviceAttribute { string: Some(b.name.clone()), ..Default::default() }),
                (key("mtu"), DeviceAttribute { int: Some(i64::from(b.mtu)), ..Default::default() }),
            ])),
            capacity: Some(BTreeMap::from([(
                key("ports"),
                DeviceCapacity {
                    value: q(spec.ports_per_bridge),
                    request_policy: Some(CapacityRequestPolicy {
                        default: Some(q(1)),
                        valid_range: Some(CapacityRequestPolicyRange { min: q(1), step: Some(q(1)), max: None }),
                        valid_values: None,
                    }),
                },
            )])),
            ..Default::default()
        })
        .collect()
}

/// What an API server without `DRAConsumableCapacity` keeps of `devices`.
fn without_consumable_capacity(devices: &[Device]) -> Vec<Device> {
    let mut out = devices.to_vec();
    for d in &mut out {
        d.allow_multiple_allocations = None;
        for c in d.capacity.iter_mut().flat_map(|m| m.values_mut()) {
            c.request_policy = None;
        }
    }
    out
}

fn consumable(slice: &ResourceSlice) -> bool {
    let devices = slice.spec.devices.as_deref().unwrap_or_default();
    !devices.is_empty() && devices.iter().all(|d| d.allow_multiple_allocations == Some(true))
}

/// Bounds and maps API calls; the whole `publish` or `withdraw` shares one deadline.
struct Calls {
    deadline: Instant,
}

impl Calls {
    async fn run<T, F>(&self, verb: &'static str, resource: &str, fut: F) -> Result<T, SliceError>
    where
        F: Future<Output = Result<T, kube::Error>>,
    {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let resource = resource.to_owned();
        match tokio::time::timeout(left, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                Err(SliceError::Forbidden { verb, resource, message: s.message.clone() })
            }
            Ok(Err(kube::Error::Api(s))) => {
                Err(SliceError::Api { verb, resource, status: s.code, message: s.message.clone() })
            }
            // The chain of a transport error names the server, never the token.
            Ok(Err(e)) => Err(SliceError::Unreachable { verb, resource, reason: chain(&e) }),
            Err(_) => Err(SliceError::Timeout { verb, resource, waited_ms: left.as_millis() as u64 }),
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn post_params() -> PostParams {
    PostParams { field_manager: Some(crate::k8s::FIELD_MANAGER.into()), ..Default::default() }
}

/// Our slices: those of `driver` on `node`, as kubelet's helper selects them.
async fn ours(
    calls: &Calls,
    api: &Api<ResourceSlice>,
    driver: &str,
    node: &str,
) -> Result<Vec<ResourceSlice>, SliceError> {
    let selector = format!("spec.driver={driver},spec.nodeName={node}");
    let list = calls.run("list", "resourceslices", api.list(&ListParams::default().fields(&selector))).await?;
    // The server filtered already; checked again so a server ignoring the selector costs nothing.
    Ok(list
        .items
        .into_iter()
        .filter(|s| s.spec.driver == driver && s.spec.node_name.as_deref() == Some(node))
        .collect())
}

/// Delete each slice (by uid precondition: a slice re-created meanwhile is not ours to judge);
/// goes on after an error and returns the first one.
async fn delete_all(calls: &Calls, api: &Api<ResourceSlice>, slices: &[ResourceSlice]) -> Result<usize, SliceError> {
    let mut first = None;
    let mut deleted = 0;
    for s in slices {
        let Some(name) = s.metadata.name.as_deref() else { continue };
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: s.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match calls.run("delete", &format!("resourceslice {name}"), api.delete(name, &dp)).await {
            Ok(_) => {
                deleted += 1;
                tracing::info!(slice = name, "deleted a resourceslice of this node and driver");
            }
            // Gone already, or replaced by a new object (409 on the uid precondition).
            Err(SliceError::Api { status: 404 | 409, .. }) => {}
            Err(e) => {
                tracing::warn!(slice = name, error = %e, "could not delete a resourceslice of this node and driver");
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(deleted), Err)
}

/// Publish `spec` as this node's one ResourceSlice and delete any other slice of the driver on
/// the node. `timeout` bounds the whole call. An unchanged slice is not written again (a restart
/// does not bump the generation).
pub async fn publish(client: &kube::Client, spec: &SliceSpec, timeout: Duration) -> Result<Published, SliceError> {
    validate(spec)?;
    let calls = Calls { deadline: Instant::now() + timeout };
    let name = slice_name(&spec.node, &spec.driver);
    let nodes: Api<Node> = Api::all(client.clone());
    let api: Api<ResourceSlice> = Api::all(client.clone());

    let node_resource = format!("node {}", spec.node);
    let node = match calls.run("get", &node_resource, nodes.get(&spec.node)).await {
        Err(SliceError::Api { status: 404, .. }) => return Err(SliceError::NodeNotFound { node: spec.node.clone() }),
        other => other?,
    };
    let Some(node_uid) = node.metadata.uid.clone() else {
        return Err(SliceError::Api {
            verb: "get",
            resource: node_resource,
            status: 200,
            message: "the Node has no metadata.uid".into(),
        });
    };

    let existing = ours(&calls, &api, &spec.driver, &spec.node).await?;
    if spec.bridges.is_empty() {
        let deleted = delete_all(&calls, &api, &existing).await?;
        tracing::info!(
            node = %spec.node,
            driver = %spec.driver,
            deleted,
            "no bridges configured (dra_bridges): publishing no devices for this node"
        );
        return Ok(Published { name, generation: 0, devices: 0, consumable_capacity: false });
    }

    let wanted = devices(spec);
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: spec.node.clone(),
        uid: node_uid.clone(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let mut current = existing.iter().find(|s| s.metadata.name.as_deref() == Some(name.as_str())).cloned();
    let others: Vec<ResourceSlice> =
        existing.iter().filter(|s| s.metadata.name.as_deref() != Some(name.as_str())).cloned().collect();
    let mut top = existing.iter().map(|s| s.spec.pool.generation).max().unwrap_or(0);

    let unchanged = current.as_ref().is_some_and(|c| {
        others.is_empty()
            && c.spec.pool.generation == top
            && c.spec.pool.resource_slice_count == 1
            && c.spec.pool.name == spec.node
            && c.spec.all_nodes.is_none()
            && c.spec.node_selector.is_none()
            && c.metadata.owner_references.as_deref().unwrap_or_default().iter().any(|o| o.uid == node_uid)
            && c.spec.devices.as_ref().is_some_and(|d| *d == wanted || *d == without_consumable_capacity(&wanted))
    });

    if !unchanged {
        let slice_resource = format!("resourceslice {name}");
        let mut attempt = 0;
        loop {
            let generation = top + 1;
            let body = ResourceSlice {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    resource_version: current.as_ref().and_then(|c| c.metadata.resource_version.clone()),
                    // The server keeps its own record of field owners; sending it back would
                    // overwrite it.
                    managed_fields: None,
                    // Whatever else the object carries (labels someone added) is kept.
                    ..current.as_ref().map(|c| c.metadata.clone()).unwrap_or_default()
                },
                spec: ResourceSliceSpec {
                    driver: spec.driver.clone(),
                    node_name: Some(spec.node.clone()),
                    pool: ResourcePool { name: spec.node.clone(), generation, resource_slice_count: 1 },
                    devices: Some(wanted.clone()),
                    ..Default::default()
                },
            };
            let written = match &current {
                Some(_) => calls.run("update", &slice_resource, api.replace(&name, &post_params(), &body)).await,
                None => calls.run("create", &slice_resource, api.create(&post_params(), &body)).await,
            };
            match written {
                Ok(w) => {
                    tracing::info!(
                        slice = %name,
                        generation = w.spec.pool.generation,
                        devices = wanted.len(),
                        "published this node's resourceslice"
                    );
                    break;
                }
                // 409: a stale resourceVersion, or (create) the name exists. Read it again.
                Err(SliceError::Api { status: 409, .. }) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    let fresh = calls.run("get", &slice_resource, api.get_opt(&name)).await?;
                    if let Some(f) = &fresh {
                        if f.spec.driver != spec.driver || f.spec.node_name.as_deref() != Some(spec.node.as_str()) {
                            return Err(SliceError::NameTaken {
                                name,
                                driver: f.spec.driver.clone(),
                                node: f.spec.node_name.clone(),
                            });
                        }
                        top = top.max(f.spec.pool.generation);
                    }
                    current = fresh;
                }
                Err(SliceError::Api { status: 409, .. }) => {
                    return Err(SliceError::Conflict { name, attempts: attempt + 1 })
                }
                Err(e) => return Err(e),
            }
        }
    }

    // Ours is written with the highest generation: older slices of the pool are obsolete now.
    delete_all(&calls, &api, &others).await?;

    let stored = calls.run("get", &format!("resourceslice {name}"), api.get(&name)).await?;
    let consumable_capacity = consumable(&stored);
    if !consumable_capacity {
        tracing::warn!(
            slice = %name,
            "the API server dropped allowMultipleAllocations from this node's devices (feature gate \
             DRAConsumableCapacity off): each bridge then takes one claim per node"
        );
    }
    Ok(Published {
        name,
        generation: stored.spec.pool.generation,
        devices: stored.spec.devices.as_ref().map_or(0, Vec::len),
        consumable_capacity,
    })
}

/// Delete every slice of `driver` on `node` (at uninstall; a normal restart republishes
/// instead, so claims keep their devices). Returns how many were deleted. `timeout` bounds the
/// whole call.
pub async fn withdraw(client: &kube::Client, driver: &str, node: &str, timeout: Duration) -> Result<usize, SliceError> {
    let calls = Calls { deadline: Instant::now() + timeout };
    let api: Api<ResourceSlice> = Api::all(client.clone());
    let existing = ours(&calls, &api, driver, node).await?;
    delete_all(&calls, &api, &existing).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bridges: &[(&str, u32)]) -> SliceSpec {
        SliceSpec::new(
            "ovsdpdk.k8snetworkplumbingwg.io",
            "worker-0",
            bridges.iter().map(|(n, m)| BridgeDevice { name: (*n).into(), mtu: *m }).collect(),
        )
    }

    #[test]
    fn names_are_deterministic_dns_subdomains_of_at_most_253_bytes() {
        assert_eq!(
            slice_name("worker-0", "ovsdpdk.k8snetworkplumbingwg.io"),
            "worker-0-ovsdpdk.k8snetworkplumbingwg.io"
        );
        let node = format!("{}.example.com", "n".repeat(230));
        let a = slice_name(&node, "ovsdpdk.k8snetworkplumbingwg.io");
        assert!(a.len() <= 253, "{}", a.len());
        assert_eq!(a, slice_name(&node, "ovsdpdk.k8snetworkplumbingwg.io"), "stable");
        assert_ne!(a, slice_name(&node, "other.k8snetworkplumbingwg.io"), "the hash tells drivers apart");
        assert!(a.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()));
        // Never called with such a name (node and driver are checked first), but total anyway:
        // a cut inside a multi-byte character must not panic.
        let wide = format!("a{}", "é".repeat(200)); // byte 244 falls inside an é
        assert!(slice_name(&wide, "ovsdpdk.k8snetworkplumbingwg.io").len() <= 253);
    }

    #[test]
    fn bridges_must_be_dns_labels_with_an_mtu_in_range_and_listed_once() {
        assert!(validate(&spec(&[("br-dpdk0", 9000), ("br1", 1500)])).is_ok());
        for bad in [
            spec(&[("br_int", 1500)]),
            spec(&[("Br0", 1500)]),
            spec(&[("-br", 1500)]),
            spec(&[("", 1500)]),
            spec(&[(&"b".repeat(64), 1500)]),
            spec(&[("br0", 67)]),
            spec(&[("br0", 1500), ("br0", 9000)]),
        ] {
            let err = validate(&bad).expect_err(&format!("{bad:?}"));
            assert!(matches!(err, SliceError::Invalid { .. }), "{err}");
        }
        let mut s = spec(&[("br0", 1500)]);
        s.node.clear();
        assert!(validate(&s).is_err());
    }

    #[test]
    fn devices_carry_the_pocs_qualified_attributes_and_capacity() {
        let d = devices(&spec(&[("br-dpdk0", 9000)]));
        assert_eq!(d.len(), 1);
        let v = serde_json::to_value(&d[0]).unwrap();
        assert_eq!(v["name"], "br-dpdk0");
        assert_eq!(v["allowMultipleAllocations"], true);
        assert_eq!(v["attributes"]["ovsdpdk.k8snetworkplumbingwg.io/bridgeName"]["string"], "br-dpdk0");
        assert_eq!(v["attributes"]["ovsdpdk.k8snetworkplumbingwg.io/mtu"]["int"], 9000);
        let ports = &v["capacity"]["ovsdpdk.k8snetworkplumbingwg.io/ports"];
        assert_eq!(ports["value"], "32768");
        assert_eq!(ports["requestPolicy"]["default"], "1");
        assert_eq!(ports["requestPolicy"]["validRange"]["min"], "1");
        assert_eq!(ports["requestPolicy"]["validRange"]["step"], "1");
        let stripped = serde_json::to_value(&without_consumable_capacity(&d)[0]).unwrap();
        assert!(stripped.get("allowMultipleAllocations").is_none());
        assert!(stripped["capacity"]["ovsdpdk.k8snetworkplumbingwg.io/ports"].get("requestPolicy").is_none());
    }
}
