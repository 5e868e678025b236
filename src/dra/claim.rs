//! What a `resource.k8s.io/v1` ResourceClaim asks of our driver, decided before any side effect:
//! the claim's identity, the one pod it is reserved for, its name in that pod, and per allocated
//! device of our driver the request (full and base), pool, device, share id and the port config
//! from the claim's opaque parameters. Pure: the claim was fetched by the caller; every name that
//! later becomes a path component or an OVS name is checked here, and errors never echo more than
//! a short, escaped piece of a value (the claim is written by a namespace-scoped user).

use crate::plan::k8s_names::{shown, Shape};
use k8s_openapi::api::resource::v1::{DeviceAllocationConfiguration, ResourceClaim};
use serde::Deserialize;
use std::collections::BTreeSet;

/// kubelet's annotation on a claim generated from a pod's ResourceClaimTemplate: the
/// `pod.spec.resourceClaims[].name` it was made for.
pub const POD_CLAIM_NAME_ANNOTATION: &str = "resource.kubernetes.io/pod-claim-name";
/// The opaque parameters' type, as the proof-of-concept driver defines it (kept for migration).
pub const PORT_CONFIG_API_VERSION: &str = "ovsdpdk.k8snetworkplumbingwg.io/v1alpha1";
pub const PORT_CONFIG_KIND: &str = "OvsPortConfig";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedPod {
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policing {
    /// kbps (OVS `ingress_policing_rate`); 0 means unlimited.
    pub rate_kbps: u32,
    /// kb (OVS `ingress_policing_burst`); 0 means OVS's default.
    pub burst_kb: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortConfig {
    pub vlan: Option<u16>,
    pub policing: Option<Policing>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlan {
    /// The full request reference (`req` or `req/sub`): what the metadata names.
    pub request: String,
    /// `req` of `req/sub`: what paths, port names and kubelet's `request_names` use.
    pub base: String,
    pub pool: String,
    pub device: String,
    pub share_id: Option<String>,
    pub config: PortConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    pub claim: ClaimIdentity,
    pub pod: ReservedPod,
    /// Set only for a claim made from a template (the annotation is there).
    pub pod_claim_name: Option<String>,
    pub requests: Vec<RequestPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the API server returned claim uid {got} where kubelet asked for {want}: the claim was deleted and made again; kubelet will retry with the new one")]
    UidMismatch { want: String, got: String },
    #[error("the claim is not allocated (status.allocation is empty): the scheduler has not placed it yet")]
    NotAllocated,
    #[error("the claim's allocation has no device of driver {driver}: kubelet sent it to the wrong plugin, or the DeviceClass selects another driver")]
    NoDevices { driver: String },
    #[error("the claim is reserved for {count} consumers; a vhost-user port belongs to exactly one pod: use one claim (or a ResourceClaimTemplate) per pod")]
    Consumers { count: usize },
    #[error("the claim is reserved for a {resource} in API group {group:?}, not a pod")]
    NotAPod { resource: String, group: String },
    #[error("{field} {value} is not valid: {reason}; expected {expected}")]
    Name { field: &'static str, value: String, reason: &'static str, expected: &'static str },
    #[error("request {request} was allocated {count} devices of this driver; each request gets one port: ask for count 1 and add one request per NIC")]
    SeveralDevices { request: String, count: usize },
    #[error("request {request} has admin access, which this driver does not grant (a vhost-user port has one user)")]
    AdminAccess { request: String },
    #[error("opaque config #{index} for this driver: {reason}")]
    Config { index: usize, reason: String },
}

fn check(field: &'static str, shape: Shape, value: &str) -> Result<(), ClaimError> {
    shape.check(value).map_err(|reason| ClaimError::Name {
        field,
        value: shown(value),
        reason,
        expected: shape.expected(),
    })
}

/// `req` of `req/sub`, after checking both parts are DNS labels.
pub fn base_request(request: &str) -> Result<&str, ClaimError> {
    crate::plan::k8s_names::base_request(request, check)
}

/// The opaque parameters as written in the claim (the PoC's `OvsPortConfig`). Unknown keys are
/// refused: a misspelt `vlanId` silently ignored would put a VM on the wrong network.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortConfig {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    vlan: Option<i64>,
    policing: Option<RawPolicing>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicing {
    max_rate: Option<i64>,
    burst: Option<i64>,
}

fn parse_config(index: usize, value: &serde_json::Value) -> Result<PortConfig, ClaimError> {
    let bad = |reason: String| ClaimError::Config { index, reason };
    let raw: RawPortConfig = serde_json::from_value(value.clone()).map_err(|e| {
        // serde's message names the field and the expected type, never a whole value.
        bad(format!("{e}; expected {{\"apiVersion\": \"{PORT_CONFIG_API_VERSION}\", \"kind\": \"{PORT_CONFIG_KIND}\", \"vlan\": 0-4095, \"policing\": {{\"max_rate\": kbps, \"burst\": kb}}}}"))
    })?;
    if raw.api_version.as_deref() != Some(PORT_CONFIG_API_VERSION) {
        return Err(bad(format!(
            "apiVersion is {}, expected {PORT_CONFIG_API_VERSION}",
            raw.api_version.as_deref().map(shown).unwrap_or_else(|| "missing".into())
        )));
    }
    if raw.kind.as_deref() != Some(PORT_CONFIG_KIND) {
        return Err(bad(format!(
            "kind is {}, expected {PORT_CONFIG_KIND}",
            raw.kind.as_deref().map(shown).unwrap_or_else(|| "missing".into())
        )));
    }
    let vlan = match raw.vlan {
        None => None,
        Some(v @ 0..=4095) => Some(v as u16),
        Some(v) => return Err(bad(format!("vlan {v} is outside 0-4095"))),
    };
    let policing = match raw.policing {
        None => None,
        Some(p) => {
            let u32_field = |name: &str, v: i64| {
                u32::try_from(v).map_err(|_| bad(format!("policing.{name} {v} is outside 0-{}", u32::MAX)))
            };
            let rate = p.max_rate.ok_or_else(|| bad("policing.max_rate is required when policing is set".into()))?;
            Some(Policing {
                rate_kbps: u32_field("max_rate", rate)?,
                burst_kb: u32_field("burst", p.burst.unwrap_or(0))?,
            })
        }
    };
    Ok(PortConfig { vlan, policing })
}

/// The port config of `request` (full) with base `base`: the configs of our driver from the
/// class, then from the claim, each applying to all requests (none listed) or to the listed ones
/// (`req` also covers `req/sub`); the last that applies wins, as the DRA API orders them.
fn config_for(
    configs: &[(usize, &DeviceAllocationConfiguration, PortConfig)],
    request: &str,
    base: &str,
) -> PortConfig {
    let applies = |c: &DeviceAllocationConfiguration| match &c.requests {
        None => true,
        Some(list) if list.is_empty() => true,
        Some(list) => list.iter().any(|r| r == request || r == base),
    };
    let mut chosen = PortConfig::default();
    for source in ["FromClass", "FromClaim"] {
        for (_, c, parsed) in configs.iter().filter(|(_, c, _)| c.source == source) {
            if applies(c) {
                chosen = *parsed;
            }
        }
    }
    chosen
}

/// Plan the devices of `driver` in `claim`, which kubelet named by `want_uid`.
pub fn plan_claim(claim: &ResourceClaim, want_uid: &str, driver: &str) -> Result<ClaimPlan, ClaimError> {
    let meta = &claim.metadata;
    let uid = meta.uid.clone().unwrap_or_default();
    if uid != want_uid {
        return Err(ClaimError::UidMismatch { want: shown(want_uid), got: shown(&uid) });
    }
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    check("claim namespace", Shape::DnsLabel, &namespace)?;
    check("claim name", Shape::DnsSubdomain, &name)?;
    check("claim uid", Shape::Uid, &uid)?;
    let pod_claim_name = meta.annotations.as_ref().and_then(|a| a.get(POD_CLAIM_NAME_ANNOTATION)).cloned();
    if let Some(p) = &pod_claim_name {
        check("pod claim name (annotation resource.kubernetes.io/pod-claim-name)", Shape::DnsLabel, p)?;
    }

    let status = claim.status.as_ref();
    let consumers = status.and_then(|s| s.reserved_for.as_deref()).unwrap_or_default();
    let [consumer] = consumers else {
        return Err(ClaimError::Consumers { count: consumers.len() });
    };
    let group = consumer.api_group.clone().unwrap_or_default();
    if consumer.resource != "pods" || !group.is_empty() {
        return Err(ClaimError::NotAPod { resource: shown(&consumer.resource), group: shown(&group) });
    }
    check("pod name", Shape::DnsSubdomain, &consumer.name)?;
    check("pod uid", Shape::Uid, &consumer.uid)?;

    let devices = status.and_then(|s| s.allocation.as_ref()).and_then(|a| a.devices.as_ref());
    let Some(devices) = devices else { return Err(ClaimError::NotAllocated) };
    let mut configs = Vec::new();
    for (index, c) in devices.config.as_deref().unwrap_or_default().iter().enumerate() {
        let Some(opaque) = c.opaque.as_ref().filter(|o| o.driver == driver) else { continue };
        if c.source != "FromClass" && c.source != "FromClaim" {
            return Err(ClaimError::Config { index, reason: format!("unknown source {}", shown(&c.source)) });
        }
        configs.push((index, c, parse_config(index, &opaque.parameters.0)?));
    }

    let ours: Vec<_> = devices.results.as_deref().unwrap_or_default().iter().filter(|r| r.driver == driver).collect();
    if ours.is_empty() {
        return Err(ClaimError::NoDevices { driver: shown(driver) });
    }
    let mut requests = Vec::new();
    let mut bases = BTreeSet::new();
    for r in &ours {
        let base = base_request(&r.request)?.to_owned();
        let count = ours.iter().filter(|o| base_request(&o.request).is_ok_and(|b| b == base)).count();
        if count > 1 {
            return Err(ClaimError::SeveralDevices { request: shown(&base), count });
        }
        if r.admin_access == Some(true) {
            return Err(ClaimError::AdminAccess { request: shown(&r.request) });
        }
        check("pool", Shape::DnsSubdomain, &r.pool)?;
        check("device", Shape::DnsLabel, &r.device)?;
        if let Some(id) = &r.share_id {
            check("share id", Shape::Uid, id)?;
        }
        bases.insert(base.clone());
        requests.push(RequestPlan {
            config: config_for(&configs, &r.request, &base),
            request: r.request.clone(),
            base,
            pool: r.pool.clone(),
            device: r.device.clone(),
            share_id: r.share_id.clone(),
        });
    }
    Ok(ClaimPlan {
        claim: ClaimIdentity { namespace, name, uid, generation: meta.generation },
        pod: ReservedPod { name: consumer.name.clone(), uid: consumer.uid.clone() },
        pod_claim_name,
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
    const UID: &str = "5d0c2a4e-1f7b-4c59-9a83-0e6f3c2d1b7a";
    const POD_UID: &str = "9b1e7c3a-2d4f-4e6a-8c0b-1a2b3c4d5e6f";

    fn claim(patch: impl FnOnce(&mut serde_json::Value)) -> ResourceClaim {
        let mut v = json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"namespace": "vms", "name": "vm1-nic-x7k2p", "uid": UID, "generation": 1,
                         "annotations": {POD_CLAIM_NAME_ANNOTATION: "nic"}},
            "spec": {"devices": {"requests": [{"name": "vhost", "exactly": {"deviceClassName": "vhost-user"}}]}},
            "status": {
                "allocation": {"devices": {
                    "results": [{"request": "vhost", "driver": DRIVER, "pool": "node-a", "device": "br-dpdk0",
                                 "shareID": "0a1b2c3d-0000-4000-8000-000000000001"}],
                    "config": [{"source": "FromClaim", "requests": ["vhost"], "opaque": {"driver": DRIVER,
                        "parameters": {"apiVersion": PORT_CONFIG_API_VERSION, "kind": PORT_CONFIG_KIND,
                                       "vlan": 100, "policing": {"max_rate": 10000, "burst": 1000}}}}]}},
                "reservedFor": [{"resource": "pods", "name": "virt-launcher-vm1-abcde", "uid": POD_UID}]
            }
        });
        patch(&mut v);
        serde_json::from_value(v).expect("test claim decodes")
    }

    #[test]
    fn a_template_claim_plans_its_request_with_the_claims_config() {
        let p = plan_claim(&claim(|_| {}), UID, DRIVER).expect("plans");
        assert_eq!(p.claim.name, "vm1-nic-x7k2p");
        assert_eq!(p.claim.generation, Some(1));
        assert_eq!(p.pod, ReservedPod { name: "virt-launcher-vm1-abcde".into(), uid: POD_UID.into() });
        assert_eq!(p.pod_claim_name.as_deref(), Some("nic"));
        assert_eq!(p.requests.len(), 1);
        let r = &p.requests[0];
        assert_eq!(
            (r.request.as_str(), r.base.as_str(), r.pool.as_str(), r.device.as_str()),
            ("vhost", "vhost", "node-a", "br-dpdk0")
        );
        assert_eq!(r.share_id.as_deref(), Some("0a1b2c3d-0000-4000-8000-000000000001"));
        assert_eq!(
            r.config,
            PortConfig { vlan: Some(100), policing: Some(Policing { rate_kbps: 10000, burst_kb: 1000 }) }
        );
    }

    #[test]
    fn a_subrequest_uses_its_base_for_names_and_keeps_the_full_reference() {
        let c = claim(|v| {
            v["status"]["allocation"]["devices"]["results"][0]["request"] = json!("vhost/fast");
            // A config naming the base request applies to its subrequests.
        });
        let p = plan_claim(&c, UID, DRIVER).expect("plans");
        assert_eq!(p.requests[0].request, "vhost/fast");
        assert_eq!(p.requests[0].base, "vhost");
        assert_eq!(p.requests[0].config.vlan, Some(100));
    }

    #[test]
    fn the_claims_config_overrides_the_class_and_a_listed_request_narrows_it() {
        let c = claim(|v| {
            v["status"]["allocation"]["devices"]["config"] = json!([
                {"source": "FromClaim", "opaque": {"driver": DRIVER, "parameters":
                    {"apiVersion": PORT_CONFIG_API_VERSION, "kind": PORT_CONFIG_KIND, "vlan": 7}}},
                {"source": "FromClass", "opaque": {"driver": DRIVER, "parameters":
                    {"apiVersion": PORT_CONFIG_API_VERSION, "kind": PORT_CONFIG_KIND, "vlan": 1}}},
                {"source": "FromClaim", "requests": ["other"], "opaque": {"driver": DRIVER, "parameters":
                    {"apiVersion": PORT_CONFIG_API_VERSION, "kind": PORT_CONFIG_KIND, "vlan": 9}}},
                {"source": "FromClaim", "opaque": {"driver": "other.example.com", "parameters": {"anything": true}}}
            ]);
        });
        assert_eq!(plan_claim(&c, UID, DRIVER).expect("plans").requests[0].config.vlan, Some(7));
    }

    #[test]
    fn a_direct_claim_has_no_pod_claim_name_and_no_config_means_defaults() {
        let c = claim(|v| {
            v["metadata"]["annotations"] = json!({});
            v["status"]["allocation"]["devices"]["config"] = json!([]);
        });
        let p = plan_claim(&c, UID, DRIVER).expect("plans");
        assert_eq!(p.pod_claim_name, None);
        assert_eq!(p.requests[0].config, PortConfig::default());
    }

    /// Each row: what is wrong, and a piece of the message a user acts on.
    #[test]
    fn bad_claims_are_refused_with_a_message_that_says_what_to_do() {
        type Patch = fn(&mut serde_json::Value);
        let cases: &[(&str, Patch, &str)] = &[
            ("not allocated", |v| v["status"]["allocation"] = json!(null), "not allocated"),
            ("no consumer", |v| v["status"]["reservedFor"] = json!([]), "reserved for 0 consumers"),
            (
                "two consumers",
                |v| {
                    let p = v["status"]["reservedFor"][0].clone();
                    v["status"]["reservedFor"] = json!([p.clone(), p]);
                },
                "exactly one pod",
            ),
            ("not a pod", |v| v["status"]["reservedFor"][0]["resource"] = json!("deployments"), "not a pod"),
            (
                "other driver only",
                |v| v["status"]["allocation"]["devices"]["results"][0]["driver"] = json!("gpu.example.com"),
                "no device of driver",
            ),
            (
                "count 2",
                |v| {
                    let r = v["status"]["allocation"]["devices"]["results"][0].clone();
                    v["status"]["allocation"]["devices"]["results"] = json!([r.clone(), r]);
                },
                "count 1",
            ),
            (
                "admin access",
                |v| v["status"]["allocation"]["devices"]["results"][0]["adminAccess"] = json!(true),
                "admin access",
            ),
            (
                "vlan out of range",
                |v| v["status"]["allocation"]["devices"]["config"][0]["opaque"]["parameters"]["vlan"] = json!(4096),
                "outside 0-4095",
            ),
            (
                "typo in config",
                |v| v["status"]["allocation"]["devices"]["config"][0]["opaque"]["parameters"]["vlanId"] = json!(5),
                "vlanId",
            ),
            (
                "wrong kind",
                |v| v["status"]["allocation"]["devices"]["config"][0]["opaque"]["parameters"]["kind"] = json!("Other"),
                "kind is",
            ),
            (
                "policing without rate",
                |v| {
                    v["status"]["allocation"]["devices"]["config"][0]["opaque"]["parameters"]["policing"] =
                        json!({"burst": 1})
                },
                "max_rate is required",
            ),
            (
                "negative rate",
                |v| {
                    v["status"]["allocation"]["devices"]["config"][0]["opaque"]["parameters"]["policing"]["max_rate"] =
                        json!(-1)
                },
                "outside 0-",
            ),
            (
                "request with a slash part too many",
                |v| v["status"]["allocation"]["devices"]["results"][0]["request"] = json!("a/b/c"),
                "subrequest",
            ),
            (
                "traversal in a device",
                |v| v["status"]["allocation"]["devices"]["results"][0]["device"] = json!("../../etc"),
                "device",
            ),
            (
                "traversal in the pod claim name",
                |v| v["metadata"]["annotations"][POD_CLAIM_NAME_ANNOTATION] = json!("../x"),
                "pod claim name",
            ),
            ("NUL in a pod name", |v| v["status"]["reservedFor"][0]["name"] = json!("a\u{0}b"), "pod name"),
            ("uid with a slash", |v| v["status"]["reservedFor"][0]["uid"] = json!("../0"), "pod uid"),
        ];
        for (what, patch, needle) in cases {
            let err = plan_claim(&claim(*patch), UID, DRIVER).expect_err(what).to_string();
            assert!(err.contains(needle), "{what}: {err:?} should contain {needle:?}");
        }
    }

    #[test]
    fn a_recreated_claim_is_not_prepared_under_the_old_uid() {
        let err = plan_claim(&claim(|_| {}), "11111111-1111-1111-1111-111111111111", DRIVER).expect_err("uid differs");
        assert!(matches!(err, ClaimError::UidMismatch { .. }), "{err}");
    }

    #[test]
    fn a_long_hostile_value_is_cut_in_the_message() {
        let long = "X".repeat(100_000);
        let c = claim(|v| v["status"]["allocation"]["devices"]["results"][0]["device"] = json!(long));
        let err = plan_claim(&c, UID, DRIVER).expect_err("bad device").to_string();
        assert!(err.len() < 600, "message of {} bytes", err.len());
    }
}
