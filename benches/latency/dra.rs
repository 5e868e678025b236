//! DRA Prepare/Unprepare latency (issue 15): the in-process `dra::prepare::PipelineDriver` with a
//! static claim source, driven as tests/dra_prepare.rs drives it (kubelet's gRPC and the API
//! server are not in the path), against the benchmark's own lab. Leaves nothing: checked.

use super::{Errors, Stats};
use k8s_openapi::api::resource::v1::ResourceClaim;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testlab::Lab;
use userspace_cni::dra::prepare::{ClaimSource, PipelineDriver};
use userspace_cni::dra::{ClaimDriver, ClaimRef};
use userspace_cni::pipeline::Registry;

const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
const NODE: &str = "bench-node";
const BRIDGE: &str = "brb-dra";
/// Kubelet gives a batch 45 s; one claim here gets a bound well inside it.
const CLAIM_DEADLINE: Duration = Duration::from_secs(20);

pub(crate) struct DraReport {
    pub prepare: Stats,
    pub unprepare: Stats,
}

/// Claims as the API server would return them, fixed before the driver starts.
struct StaticClaims(HashMap<String, ResourceClaim>);

#[userspace_cni_api::async_trait]
impl ClaimSource for StaticClaims {
    async fn get(&self, claim: &ClaimRef, _deadline: Instant) -> Result<ResourceClaim, String> {
        self.0.get(&claim.uid).cloned().ok_or_else(|| format!("ResourceClaim {} does not exist (404)", claim.name))
    }
}

/// A template-made claim allocated on BRIDGE and reserved for a pod of its own.
fn claim(n: usize) -> Result<(ClaimRef, ResourceClaim), String> {
    // The port's name comes from the uid's first 12 characters: unique there, as random uids are.
    let uid = format!("{n:08x}-bbbb-4000-8000-000000000000");
    let name = format!("vm-{n}-nic");
    let doc = json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"namespace": "bench", "name": name, "uid": uid, "generation": 1,
                     "annotations": {"resource.kubernetes.io/pod-claim-name": "nic"}},
        "spec": {"devices": {"requests": [{"name": "vhost", "exactly": {"deviceClassName": "vhost-user"}}]}},
        "status": {
            "allocation": {"devices": {"results": [{"request": "vhost", "driver": DRIVER, "pool": NODE, "device": BRIDGE}]}},
            "reservedFor": [{"resource": "pods", "name": format!("virt-launcher-{n}"), "uid": format!("{n:08x}-cccc-4000-8000-000000000000")}]
        }
    });
    let c: ResourceClaim = serde_json::from_value(doc).map_err(|e| format!("claim {n}: {e}"))?;
    Ok((ClaimRef { namespace: "bench".into(), name, uid }, c))
}

/// Prepare and Unprepare `runs` claims one after another on a bridge an anchor claim keeps.
pub(crate) fn measure(lab: &Lab, runs: usize, warmup: usize, errors: &mut Errors) -> Option<DraReport> {
    let node = match tempfile::Builder::new().prefix("uscni-bench-dra-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            errors.add("dra: temp dir", e.to_string());
            return None;
        }
    };
    let r = measure_in(lab, node.path(), runs, warmup, errors);
    // What a finished Unprepare must not leave: socket dirs, metadata, CDI specs, records.
    for dir in ["dra", "meta", "cdi", "state"] {
        let Ok(list) = std::fs::read_dir(node.path().join(dir)) else { continue };
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // The state dir keeps its lock files; a record (`*.json`) there is a leftover.
            if dir != "state" || name.ends_with(".json") {
                errors.add("dra: leftover", format!("{dir}/{name}"));
            }
        }
    }
    if lab.bridges().is_ok_and(|b| b.iter().any(|x| x == BRIDGE)) {
        errors.add("dra: leftover", format!("bridge {BRIDGE} still exists"));
        let _ = lab.vsctl(&["--if-exists", "del-br", BRIDGE]);
    }
    r
}

fn measure_in(lab: &Lab, root: &std::path::Path, runs: usize, warmup: usize, errors: &mut Errors) -> Option<DraReport> {
    let p = |rel: &str| root.join(rel).display().to_string();
    if let Err(e) = std::fs::write(root.join("userspace.toml"), "") {
        errors.add("dra: settings file", e.to_string());
        return None;
    }
    let env: HashMap<String, String> = [
        ("CONFIG", p("userspace.toml")),
        ("STATE_DIR", p("state")),
        ("SHARED_DIR", p("shared")),
        ("SHORT_SOCKET_DIR", p("short")),
        ("KUBELET_ROOT", p("kubelet")),
        ("SHARED_ROOTS", p("shared")),
        ("OVSDB", lab.db_endpoint()),
        ("OVS_SOCK_DIR", lab.sock_dir().display().to_string()),
        ("DRA_SOCKET_ROOT", p("dra")),
        ("DRA_METADATA_DIR", p("meta")),
        ("CDI_DIR", p("cdi")),
        ("DRA_BRIDGES", format!("{BRIDGE}=1500")),
        ("NODE_NAME", NODE.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("USERSPACE_CNI_{k}"), v))
    .collect();
    let settings =
        match userspace_cni::settings::load_from(userspace_cni::pipeline::Registry::linked().registrations(), |k| {
            env.get(k).cloned()
        }) {
            Ok(s) => s,
            Err(e) => {
                errors.add("dra: settings", e.to_string());
                return None;
            }
        };
    let total = warmup + runs;
    let mut claims = HashMap::new();
    let mut refs = Vec::new();
    for n in 0..=total {
        match claim(n) {
            Ok((r, c)) => {
                claims.insert(r.uid.clone(), c);
                refs.push(r);
            }
            Err(e) => {
                errors.add("dra", e);
                return None;
            }
        }
    }
    let driver =
        PipelineDriver { settings, registry: Arc::new(Registry::linked()), claims: Arc::new(StaticClaims(claims)) };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errors.add("dra: runtime", e.to_string());
            return None;
        }
    };
    let prepare = |c: &ClaimRef| -> Result<Duration, String> {
        let t = Instant::now();
        rt.block_on(driver.prepare(c, t + CLAIM_DEADLINE))?;
        Ok(t.elapsed())
    };
    let unprepare = |c: &ClaimRef| -> Result<Duration, String> {
        let t = Instant::now();
        rt.block_on(driver.unprepare(c, t + CLAIM_DEADLINE))?;
        Ok(t.elapsed())
    };
    // refs[0] is the anchor: it keeps the bridge, so every measured claim finds it existing.
    let (anchor, rest) = refs.split_first()?;
    if let Err(e) = prepare(anchor) {
        errors.add("dra: anchor Prepare", e);
        return None;
    }
    let (mut prep, mut unprep) = (Vec::new(), Vec::new());
    for (i, c) in rest.iter().enumerate() {
        match prepare(c) {
            Ok(d) if i >= warmup => prep.push(d),
            Ok(_) => {}
            Err(e) => errors.add("dra: Prepare", e),
        }
        match unprepare(c) {
            Ok(d) if i >= warmup => unprep.push(d),
            Ok(_) => {}
            Err(e) => errors.add("dra: Unprepare", e),
        }
        if errors.too_many() {
            break;
        }
    }
    if let Err(e) = unprepare(anchor) {
        errors.add("dra: anchor Unprepare", e);
    }
    Some(DraReport { prepare: Stats::of(prep), unprepare: Stats::of(unprep) })
}
