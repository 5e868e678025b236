//! DRA claims in the API: GET a `resource.k8s.io/v1` ResourceClaim (Prepare reads it), and the
//! liveness of a DRA attachment (the reconciler and the DRA plugin's start-up clean-up ask it):
//! live while its claim (same uid) is allocated and reserved for the recorded pod, and that pod
//! (same uid) is bound to this node. An API error never means gone.

use super::{ApiAccess, Budget, K8sError};
use serde::Serialize;
use serde_json::Value;

/// What the API says about a DRA attachment's claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum ClaimLiveness {
    /// Allocated, reserved for the recorded pod, and that pod is on this node: keep.
    Live,
    /// The claim or its pod is gone, or no longer here: the attachment may be torn down.
    Gone(String),
    /// The API could not be asked (timeout, 5xx, RBAC): keep, ask again next pass.
    Unknown(String),
}

/// The facts liveness is decided from (pure, so it is table-tested).
pub fn decide(
    claim: Option<&Value>,
    claim_uid: &str,
    pod_uid: Option<&str>,
    pod: Option<&Value>,
    node: &str,
) -> ClaimLiveness {
    let Some(claim) = claim else { return ClaimLiveness::Gone("the claim was deleted".into()) };
    if claim.pointer("/metadata/uid").and_then(Value::as_str) != Some(claim_uid) {
        return ClaimLiveness::Gone("the claim was deleted and re-created (another uid)".into());
    }
    if claim.pointer("/status/allocation").is_none_or(Value::is_null) {
        return ClaimLiveness::Gone("the claim is no longer allocated".into());
    }
    let reserved: Vec<&str> = claim
        .pointer("/status/reservedFor")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.get("uid").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    match pod_uid {
        Some(u) if !reserved.contains(&u) => {
            return ClaimLiveness::Gone("the claim is no longer reserved for the pod it was prepared for".into())
        }
        None if reserved.is_empty() => return ClaimLiveness::Gone("the claim is reserved for no pod".into()),
        _ => {}
    }
    let Some(pod) = pod else { return ClaimLiveness::Gone("the pod it was reserved for was deleted".into()) };
    if let Some(u) = pod_uid {
        if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(u) {
            return ClaimLiveness::Gone("the pod was deleted and re-created (another uid)".into());
        }
    }
    match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
        Some(n) if n == node => ClaimLiveness::Live,
        Some(n) => ClaimLiveness::Gone(format!("the pod runs on node {n}, not this one")),
        // Not yet scheduled cannot be a pod whose claim kubelet prepared here; but a claim is
        // prepared only after binding, so this is an odd state: keep and ask again.
        None => ClaimLiveness::Unknown("the pod is not bound to a node".into()),
    }
}

/// GET the claim `namespace/name` as raw JSON; `None` on 404.
pub async fn get_claim(
    access: &ApiAccess,
    namespace: &str,
    name: &str,
    budget: Budget,
) -> Result<Option<Value>, K8sError> {
    super::check_name("the claim's namespace", namespace)?;
    super::check_name("the claim's name", name)?;
    get(access, &format!("/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims"), name, budget).await
}

/// The liveness of the attachment of claim `namespace/name` (uid `claim_uid`) prepared for the
/// pod `pod_uid` on `node`.
pub async fn liveness(
    access: &ApiAccess,
    namespace: &str,
    name: &str,
    claim_uid: &str,
    pod_uid: Option<&str>,
    node: &str,
    budget: Budget,
) -> ClaimLiveness {
    let claim = match get_claim(access, namespace, name, budget).await {
        Ok(c) => c,
        Err(e) => return ClaimLiveness::Unknown(e.to_string()),
    };
    // The pod named by the reservation that matches (or the only one).
    let pod_name = claim.as_ref().and_then(|c| {
        let reserved = c.pointer("/status/reservedFor")?.as_array()?;
        let entry = match pod_uid {
            Some(u) => reserved.iter().find(|r| r.get("uid").and_then(Value::as_str) == Some(u)),
            None => reserved.first(),
        }?;
        entry.get("name").and_then(Value::as_str).map(str::to_owned)
    });
    let pod = match &pod_name {
        Some(p) if super::check_name("the reserved pod's name", p).is_ok() => {
            match get(access, &format!("/api/v1/namespaces/{namespace}/pods"), p, budget).await {
                Ok(v) => v,
                Err(e) => return ClaimLiveness::Unknown(e.to_string()),
            }
        }
        _ => None,
    };
    decide(claim.as_ref(), claim_uid, pod_uid, pod.as_ref(), node)
}

/// A kube client for `access` (the DRA plugin's own calls: its ResourceSlice).
#[cfg(feature = "kubernetes")]
pub async fn client(access: &ApiAccess, budget: Budget) -> Result<kube::Client, K8sError> {
    let api = super::client::Api::connect(access, budget).await?;
    Ok(api.parts().0.clone())
}

async fn get(access: &ApiAccess, collection: &str, name: &str, budget: Budget) -> Result<Option<Value>, K8sError> {
    #[cfg(feature = "kubernetes")]
    {
        use kube::core::params::GetParams;
        let api = super::client::Api::connect(access, budget).await?;
        let (client, access) = api.parts();
        let what = format!("GET {collection}/{name}");
        let req = kube::core::Request::new(collection)
            .get(name, &GetParams::default())
            .map_err(|e| K8sError::Malformed { what: what.clone(), reason: e.to_string() })?;
        let limit = budget.next();
        match tokio::time::timeout(limit, client.request::<Value>(req)).await {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(None),
            Ok(Err(kube::Error::Api(s))) => Err(K8sError::Api { what, status: s.code, message: s.message }),
            Ok(Err(e)) => Err(K8sError::Unreachable { access: access.to_string(), what, reason: e.to_string() }),
            Err(_) => Err(K8sError::Timeout { access: access.to_string(), what, waited_ms: limit.as_millis() as u64 }),
        }
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (access, collection, name, budget);
        Err(K8sError::NotBuilt { what: "reading DRA claims" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(uid: &str, allocated: bool, reserved: &[(&str, &str)]) -> Value {
        let mut c = json!({"metadata": {"uid": uid}, "status": {}});
        if allocated {
            c["status"]["allocation"] = json!({"devices": {"results": []}});
        }
        c["status"]["reservedFor"] =
            reserved.iter().map(|(n, u)| json!({"resource": "pods", "name": n, "uid": u})).collect();
        c
    }

    fn pod(uid: &str, node: Option<&str>) -> Value {
        json!({"metadata": {"uid": uid}, "spec": {"nodeName": node}})
    }

    #[test]
    fn live_only_when_claim_reservation_and_pod_all_hold() {
        let c = claim("c1", true, &[("vm", "p1")]);
        assert_eq!(decide(Some(&c), "c1", Some("p1"), Some(&pod("p1", Some("n1"))), "n1"), ClaimLiveness::Live);
        let gone = |l: ClaimLiveness| matches!(l, ClaimLiveness::Gone(_));
        assert!(gone(decide(None, "c1", Some("p1"), None, "n1")));
        assert!(gone(decide(Some(&c), "c2", Some("p1"), Some(&pod("p1", Some("n1"))), "n1")), "replaced claim");
        let unalloc = claim("c1", false, &[("vm", "p1")]);
        assert!(gone(decide(Some(&unalloc), "c1", Some("p1"), Some(&pod("p1", Some("n1"))), "n1")));
        let other = claim("c1", true, &[("vm2", "p2")]);
        assert!(gone(decide(Some(&other), "c1", Some("p1"), Some(&pod("p2", Some("n1"))), "n1")));
        assert!(gone(decide(Some(&c), "c1", Some("p1"), None, "n1")), "pod deleted");
        assert!(gone(decide(Some(&c), "c1", Some("p1"), Some(&pod("p9", Some("n1"))), "n1")), "pod replaced");
        assert!(gone(decide(Some(&c), "c1", Some("p1"), Some(&pod("p1", Some("n2"))), "n1")), "elsewhere");
        assert!(matches!(decide(Some(&c), "c1", Some("p1"), Some(&pod("p1", None)), "n1"), ClaimLiveness::Unknown(_)));
    }
}
