//! The reconciler's node marking: read this node's Node object, let the caller edit its labels,
//! PUT it back with the resourceVersion it was read at (re-read and re-apply on 409, bounded).
//! Never PATCHes (as for pods, DESIGN.md §3.5), never touches anything but `metadata.labels`.
//!
//! The Node travels as raw JSON, so a PUT never drops a field this build's types do not know.

#[cfg(feature = "kubernetes")]
use super::MAX_CONFLICT_RETRIES;
use super::{ApiAccess, Budget, K8sError};
use serde_json::{Map, Value};
use userspace_cni_api::{codes, CniError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// Connecting (credentials, kubeconfig, not built): the pod module's error says it well.
    #[error(transparent)]
    Access(#[from] K8sError),
    #[error("node {node:?} does not exist in the Kubernetes API (404): is NODE_NAME this node's name?")]
    NotFound { node: String },
    #[error(
        "the Kubernetes API server refused {what} (403 Forbidden, {access}): {message}. The reconciler's \
         service account needs get and update on nodes (config/kubernetes/clusterrole.yaml)"
    )]
    Forbidden { access: String, what: String, message: String },
    #[error(
        "node {node} changed under {attempts} consecutive updates (409 Conflict each time); the next pass retries"
    )]
    Conflict { node: String, attempts: u32 },
    #[error("the Kubernetes API server did not answer {what} within {waited_ms} ms ({access})")]
    Timeout { access: String, what: String, waited_ms: u64 },
    #[error("the Kubernetes API server answered {what} with HTTP {status}: {message}")]
    Api { what: String, status: u16, message: String },
    #[error("Kubernetes API server unreachable ({access}) during {what}: {reason}")]
    Unreachable { access: String, what: String, reason: String },
    #[error("the Kubernetes API server's answer to {what} is not a Node object: {reason}")]
    Malformed { what: String, reason: String },
}

impl From<NodeError> for CniError {
    fn from(e: NodeError) -> Self {
        let code = match &e {
            NodeError::Access(k) => return CniError::from(k.clone()),
            NodeError::Conflict { .. } | NodeError::Timeout { .. } | NodeError::Unreachable { .. } => {
                codes::TRY_AGAIN_LATER
            }
            NodeError::Api { status, .. } if *status >= 500 || *status == 429 => codes::TRY_AGAIN_LATER,
            NodeError::Forbidden { .. } => codes::INVALID_NETCONF,
            NodeError::NotFound { .. } | NodeError::Api { .. } | NodeError::Malformed { .. } => codes::IO_FAILURE,
        };
        CniError::new(code, e.to_string())
    }
}

/// Read Node `node`, let `edit` change its labels, PUT it back with the resourceVersion it was
/// read at; on 409 re-read and re-apply, at most `MAX_CONFLICT_RETRIES` times (the kubelet
/// updates its Node often). `edit` returns false when nothing needs writing: no PUT then.
/// Returns whether a PUT succeeded.
pub async fn update_labels(
    access: &ApiAccess,
    node: &str,
    budget: Budget,
    edit: &mut (dyn FnMut(&mut Map<String, Value>) -> bool + Send),
) -> Result<bool, NodeError> {
    #[cfg(feature = "kubernetes")]
    {
        imp::update_labels(access, node, budget, edit).await
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (access, node, budget, edit);
        Err(NodeError::Access(K8sError::NotBuilt { what: "marking the node" }))
    }
}

/// Apply `edit` to the labels of a Node object in place. False: nothing to write.
pub fn edit_labels(
    object: &mut Value,
    edit: &mut (dyn FnMut(&mut Map<String, Value>) -> bool + Send),
) -> Result<bool, String> {
    super::edit_metadata_map(object, "labels", edit).map_err(str::to_owned)
}

#[cfg(feature = "kubernetes")]
mod imp {
    use super::*;
    use kube::core::params::GetParams;
    use kube::core::Request;
    use std::future::Future;

    async fn call<F>(access: &ApiAccess, node: &str, what: &str, budget: Budget, fut: F) -> Result<Value, NodeError>
    where
        F: Future<Output = Result<Value, kube::Error>>,
    {
        let limit = budget.next();
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) => Err(match s.code {
                404 => NodeError::NotFound { node: node.into() },
                403 => NodeError::Forbidden { access: access.to_string(), what: what.into(), message: s.message },
                code => NodeError::Api { what: what.into(), status: code, message: s.message },
            }),
            Ok(Err(kube::Error::SerdeError(e))) => {
                Err(NodeError::Malformed { what: what.into(), reason: e.to_string() })
            }
            Ok(Err(e)) => {
                Err(NodeError::Unreachable { access: access.to_string(), what: what.into(), reason: e.to_string() })
            }
            Err(_) => Err(NodeError::Timeout {
                access: access.to_string(),
                what: what.into(),
                waited_ms: limit.as_millis() as u64,
            }),
        }
    }

    pub(super) async fn update_labels(
        access: &ApiAccess,
        node: &str,
        budget: Budget,
        edit: &mut (dyn FnMut(&mut Map<String, Value>) -> bool + Send),
    ) -> Result<bool, NodeError> {
        let api = super::super::client::Api::connect(access, budget).await?;
        let (client, access) = api.parts();
        let nodes = Request::new("/api/v1/nodes");
        let get_what = format!("GET node {node}");
        let put_what = format!("PUT node {node}");
        let malformed = |what: &str, reason: String| NodeError::Malformed { what: what.into(), reason };
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            let req = nodes.get(node, &GetParams::default()).map_err(|e| malformed(&get_what, e.to_string()))?;
            let mut object = call(access, node, &get_what, budget, client.request::<Value>(req)).await?;
            if !edit_labels(&mut object, edit).map_err(|r| malformed(&get_what, r))? {
                return Ok(false);
            }
            let body = serde_json::to_vec(&object).map_err(|e| malformed(&put_what, e.to_string()))?;
            let req = nodes
                .replace(node, &super::super::post_params(), body)
                .map_err(|e| malformed(&put_what, e.to_string()))?;
            match call(access, node, &put_what, budget, client.request::<Value>(req)).await {
                Ok(_) => return Ok(true),
                Err(NodeError::Api { status: 409, .. }) => {
                    tracing::debug!(node, attempt, "409 Conflict on the node label update; re-reading the node");
                }
                Err(e) => return Err(e),
            }
        }
        Err(NodeError::Conflict { node: node.into(), attempts: MAX_CONFLICT_RETRIES + 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_edited_in_place_and_a_node_without_resource_version_is_refused() {
        let mut n = json!({"metadata": {"name": "n1", "resourceVersion": "7"}, "status": {"x": 1}});
        let changed = edit_labels(&mut n, &mut |l| l.insert("a/b".into(), json!("true")).is_none()).expect("edit");
        assert!(changed);
        assert_eq!(n["metadata"]["labels"]["a/b"], "true");
        assert_eq!(n["status"]["x"], 1, "the rest of the object is kept");
        let mut bare = json!({"metadata": {"name": "n1"}});
        assert!(edit_labels(&mut bare, &mut |_| true).is_err());
    }
}
