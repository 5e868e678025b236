//! The Kubernetes hook of the reconciler: is an attachment's pod still on this node? Without
//! Kubernetes access the answer is "no access" and the netns alone decides; never guesses "gone".

use crate::k8s::claims::ClaimLiveness;
use crate::k8s::{self, ApiAccess, K8sError, PodName};
use crate::plan::Record;
use serde::Serialize;
use std::time::{Duration, Instant};
use userspace_cni_api::{async_trait, PodRef};

/// What the API server says about a recorded pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum PodPresence {
    /// The pod (same uid) is bound to this node and not terminated: keep its attachments.
    OnThisNode,
    /// The pod no longer exists, has another uid, or runs elsewhere.
    Gone,
    /// No Kubernetes access configured, or the record names no pod: the netns decides alone.
    NoAccess,
    /// The API server could not be asked (timeout, 5xx, RBAC): keep, and ask again next pass.
    Unknown(String),
}

/// Answers for the reconciler: `NoKubernetes`, or `ApiPods` (a GET of the pod by name); a test
/// or another source of truth plugs in here, the reconciler only needs `presence`.
#[async_trait]
pub trait PodOracle: Send + Sync {
    async fn presence(&self, pod: &PodRef) -> PodPresence;
}

/// The oracle when the reconciler has no Kubernetes access.
pub struct NoKubernetes;

#[async_trait]
impl PodOracle for NoKubernetes {
    async fn presence(&self, _pod: &PodRef) -> PodPresence {
        PodPresence::NoAccess
    }
}

/// The API server's answer: a GET of the record's pod (`K8S_POD_NAMESPACE`/`K8S_POD_NAME`), gone
/// when it is 404 or has another uid (replaced). A uid names one pod instance, which is bound to
/// one node for life, so the same uid is still the pod ADD ran for on this node. Anything else
/// (timeout, 5xx, RBAC) is unknown: keep, and ask again next pass.
pub struct ApiPods {
    pub access: ApiAccess,
    /// Bound of each GET (the setting `timeout_ms`).
    pub timeout: Duration,
}

#[async_trait]
impl PodOracle for ApiPods {
    async fn presence(&self, pod: &PodRef) -> PodPresence {
        let (Some(namespace), Some(name)) = (&pod.namespace, &pod.name) else { return PodPresence::NoAccess };
        if k8s::check_name("K8S_POD_NAMESPACE", namespace).is_err() || k8s::check_name("K8S_POD_NAME", name).is_err() {
            return PodPresence::NoAccess;
        }
        let who = PodName { namespace: namespace.clone(), name: name.clone() };
        let budget = k8s::Budget { deadline: Instant::now() + self.timeout, timeout: self.timeout };
        match k8s::read_pod(&self.access, &who, budget).await {
            Ok(view) => match (&view.uid, &pod.uid) {
                (Some(now), Some(then)) if now != then => PodPresence::Gone,
                _ => PodPresence::OnThisNode,
            },
            Err(K8sError::PodNotFound { .. } | K8sError::PodReplaced { .. }) => PodPresence::Gone,
            Err(e) => PodPresence::Unknown(e.to_string()),
        }
    }
}

/// Answers for the DRA records: is the claim still allocated and reserved for the recorded pod,
/// and is that pod on this node (`k8s::claims`)? Without Kubernetes access or this node's name
/// the answer is unknown: a DRA attachment is never reaped on the netns's word (it has none).
#[async_trait]
pub trait ClaimOracle: Send + Sync {
    async fn liveness(&self, record: &Record) -> ClaimLiveness;
}

/// The claim oracle without Kubernetes access.
pub struct NoClaims;

#[async_trait]
impl ClaimOracle for NoClaims {
    async fn liveness(&self, _record: &Record) -> ClaimLiveness {
        ClaimLiveness::Unknown("no Kubernetes access (userspace gc --kubernetes or --kubeconfig)".into())
    }
}

/// The API server's answer, for this node.
pub struct ApiClaims {
    pub access: ApiAccess,
    pub timeout: Duration,
    /// This node's name (the setting `node_name`, else `NODE_NAME`).
    pub node: Option<String>,
}

#[async_trait]
impl ClaimOracle for ApiClaims {
    async fn liveness(&self, record: &Record) -> ClaimLiveness {
        let Some(dra) = &record.plan.dra else { return ClaimLiveness::Unknown("not a DRA record".into()) };
        let Some(node) = &self.node else {
            return ClaimLiveness::Unknown("this node's name is unknown (set node_name or NODE_NAME)".into());
        };
        let budget = k8s::Budget { deadline: Instant::now() + self.timeout * 2, timeout: self.timeout };
        k8s::claims::liveness(
            &self.access,
            &dra.claim.namespace,
            &dra.claim.name,
            &dra.claim.uid,
            record.attachment.pod.uid.as_deref(),
            node,
            budget,
        )
        .await
    }
}
