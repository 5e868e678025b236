//! Optional Kubernetes access: who we talk to (a kubeconfig or the in-cluster account), the pod
//! lookup (its `shared-dir` volume) and the annotation write via GET + PUT `pods/status`.
//! Never PATCHes, never waits without a bound; built without `kubernetes`, every call says so.
//!
//! The client (kube + k8s-openapi) lives in `client.rs` behind the cargo feature `kubernetes`;
//! this file holds the plain data and the one error type, so the rest of the crate compiles and
//! plans the same way with or without it.

pub mod claims;
#[cfg(feature = "kubernetes")]
mod client;
pub mod kubeconfig;
pub mod node;
pub mod pod;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use userspace_cni_api::{codes, CniError};

pub use pod::{PodView, PodVolume, VolumeSource};

/// Whether this binary can talk to Kubernetes at all.
pub const BUILT: bool = cfg!(feature = "kubernetes");

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiAccess {
    /// The network config's `kubeconfig` (e.g. Multus's own): a namespace-scoped user chose
    /// it, so it is read with `kubeconfig::Trust::NetworkConfig`'s rules. Records hold this one.
    Kubeconfig { path: PathBuf },
    /// The in-cluster service account (the setting `annotations = "in-cluster"`).
    InCluster,
    /// `userspace gc --kubeconfig PATH`: the operator's file (`kubeconfig::Trust::Operator`).
    /// Never in a record (`serde(skip)`), so no config or record can claim the operator's trust.
    #[serde(skip)]
    OperatorKubeconfig { path: PathBuf },
}

impl std::fmt::Display for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAccess::Kubeconfig { path } => write!(f, "kubeconfig {}", path.display()),
            ApiAccess::InCluster => f.write_str("the in-cluster service account"),
            ApiAccess::OperatorKubeconfig { path } => write!(f, "kubeconfig {} (--kubeconfig)", path.display()),
        }
    }
}

/// A pod, by namespace and name (CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodName {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Bounds of every API call: each request gets at most `timeout`, all of them end by `deadline`
/// (the contract's one budget type, re-exported where the API calls take it).
pub use userspace_cni_api::Budget;

/// The User-Agent of every API request: the plugin and its version, so an audit log tells its
/// calls from anyone else's (`userAgent`).
pub const USER_AGENT: &str = concat!("userspace-cni/", env!("CARGO_PKG_VERSION"));

/// The field manager of every write (`fieldManager` on each PUT): `managedFields` then name us
/// rather than `unknown`. Versionless, so an upgraded plugin still owns what the old one wrote.
pub const FIELD_MANAGER: &str = "userspace-cni";

/// Parameters of every PUT: our field manager.
#[cfg(feature = "kubernetes")]
fn post_params() -> kube::core::params::PostParams {
    kube::core::params::PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// 409 conflicts re-read and re-applied before giving up (code 11, the runtime retries).
pub const MAX_CONFLICT_RETRIES: u32 = 8;

/// Let `edit` change the string map `metadata.<key>` (labels, annotations) of an object read for
/// a PUT; returns whether it changed anything. The object must carry its resourceVersion: without
/// it the PUT would be unconditional and could undo a concurrent writer (the kubelet's own).
pub fn edit_metadata_map(
    object: &mut serde_json::Value,
    key: &str,
    edit: &mut (dyn FnMut(&mut serde_json::Map<String, serde_json::Value>) -> bool + Send),
) -> Result<bool, &'static str> {
    use serde_json::Value;
    if object.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("no resourceVersion");
    }
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err("no metadata");
    };
    let mut map = match meta.remove(key) {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let changed = edit(&mut map);
    meta.insert(key.into(), Value::Object(map));
    Ok(changed)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K8sError {
    #[error(
        "{what} needs Kubernetes API access, but this binary was built without the `kubernetes` feature; \
         use a build with it, or remove `kubeconfig` from the network config and set annotations = \"off\""
    )]
    NotBuilt { what: &'static str },
    /// The kubeconfig file itself, refused before any connection (`kubeconfig.rs` maps its codes).
    #[error(transparent)]
    File(#[from] kubeconfig::KubeconfigError),
    #[error("cannot use kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("no in-cluster Kubernetes credentials ({reason})")]
    NoCredentials { reason: String },
    #[error("CNI_ARGS {key} {value:?} is not a Kubernetes object name")]
    BadName { key: &'static str, value: String },
    #[error("Kubernetes API server unreachable ({access}) during {what}: {reason}; try again when it is back")]
    Unreachable { access: String, what: String, reason: String },
    #[error("Kubernetes API server did not answer {what} within {waited_ms} ms ({access}); try again later")]
    Timeout { access: String, what: String, waited_ms: u64 },
    #[error(
        "the Kubernetes API server refused {what} (403 Forbidden, {access}): {message}. The user of those \
         credentials needs get on pods and get/update on pods/status in namespace {namespace} (the verbs \
         Multus's ClusterRole grants; see config/kubernetes/clusterrole.yaml)"
    )]
    Forbidden { access: String, what: String, namespace: String, message: String },
    #[error("the Kubernetes API server did not accept the credentials of {access} (401 Unauthorized): {message}")]
    Unauthorized { access: String, message: String },
    #[error("pod {pod} does not exist in the Kubernetes API (404)")]
    PodNotFound { pod: String },
    #[error("pod {pod} in the API has uid {api_uid}, CNI_ARGS K8S_POD_UID says {args_uid}: the pod was replaced")]
    PodReplaced { pod: String, api_uid: String, args_uid: String },
    #[error("pod {pod} changed under {attempts} consecutive updates (409 Conflict each time); try again")]
    Conflict { pod: String, attempts: u32 },
    /// 422 on our write because the pod's annotations would pass the server's limit (256 KiB,
    /// keys and values together): not a retryable fault, and not ours alone to fix.
    #[error(
        "the Kubernetes API server refused {what}: the pod's annotations would exceed its 256 KiB limit \
         (422 Invalid: {message}); the pod carries too many or too large annotations for this interface's \
         userspace/configuration-data entry to fit"
    )]
    AnnotationsTooLarge { what: String, message: String },
    #[error("the Kubernetes API server answered {what} with HTTP {status}: {message}")]
    Api { what: String, status: u16, message: String },
    #[error("the Kubernetes API server's answer to {what} is not what was asked for: {reason}")]
    Malformed { what: String, reason: String },
}

impl From<K8sError> for CniError {
    fn from(e: K8sError) -> Self {
        let code = match &e {
            K8sError::File(f) => return f.clone().into(),
            K8sError::NotBuilt { .. } => codes::UNSUPPORTED_FIELD,
            // The runtime's CNI_ARGS.
            K8sError::BadName { .. } => codes::INVALID_ENV,
            K8sError::Kubeconfig { .. }
            | K8sError::NoCredentials { .. }
            // Retrying cannot help: the credentials or their RBAC must change.
            | K8sError::Forbidden { .. }
            | K8sError::Unauthorized { .. } => codes::INVALID_NETCONF,
            K8sError::Unreachable { .. } | K8sError::Timeout { .. } | K8sError::Conflict { .. } => {
                codes::TRY_AGAIN_LATER
            }
            // The runtime need not clean up for a pod that is gone (CNI spec, code 3).
            K8sError::PodNotFound { .. } | K8sError::PodReplaced { .. } => codes::UNKNOWN_CONTAINER,
            K8sError::Api { status, .. } if *status >= 500 || *status == 429 => codes::TRY_AGAIN_LATER,
            K8sError::Api { .. } | K8sError::Malformed { .. } | K8sError::AnnotationsTooLarge { .. } => {
                codes::IO_FAILURE
            }
        };
        CniError::new(code, e.to_string())
    }
}

impl K8sError {
    /// The request surely changed nothing on the server (it was refused, or never sent).
    pub fn nothing_written(&self) -> bool {
        !matches!(self, K8sError::Unreachable { .. } | K8sError::Timeout { .. } | K8sError::Malformed { .. })
    }
}

/// Object names in CNI_ARGS go into a URL path: DNS-1123 characters only (checked before use).
pub fn check_name(key: &'static str, value: &str) -> Result<(), K8sError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value != "."
        && value != "..";
    if ok {
        Ok(())
    } else {
        Err(K8sError::BadName { key, value: value.chars().take(80).collect() })
    }
}

/// GET the pod: its volumes, mounts and uid. Read-only.
pub async fn read_pod(access: &ApiAccess, pod: &PodName, budget: Budget) -> Result<PodView, K8sError> {
    #[cfg(feature = "kubernetes")]
    {
        let api = client::Api::connect(access, budget).await?;
        let raw = api.get_pod(pod, budget).await?;
        PodView::from_pod(&raw).map_err(|reason| K8sError::Malformed { what: format!("GET pod {pod}"), reason })
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (access, pod, budget);
        Err(K8sError::NotBuilt { what: "reading the pod" })
    }
}

/// Read the pod's annotations, let `edit` change them, and PUT the pod to `pods/status` with the
/// resourceVersion it was read at; on 409 re-read and re-apply, at most `MAX_CONFLICT_RETRIES`
/// times. `edit` returns false when nothing needs writing. Returns whether a PUT succeeded.
pub async fn update_annotations(
    access: &ApiAccess,
    pod: &PodName,
    uid: Option<&str>,
    budget: Budget,
    edit: &mut (dyn FnMut(&mut serde_json::Map<String, serde_json::Value>) -> bool + Send),
) -> Result<bool, K8sError> {
    #[cfg(feature = "kubernetes")]
    {
        let api = client::Api::connect(access, budget).await?;
        api.update_annotations(pod, uid, budget, edit).await
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (access, pod, uid, budget, edit);
        Err(K8sError::NotBuilt { what: "the pod annotations" })
    }
}

/// The pod's current annotations (CHECK).
pub async fn read_annotations(
    access: &ApiAccess,
    pod: &PodName,
    budget: Budget,
) -> Result<serde_json::Map<String, serde_json::Value>, K8sError> {
    #[cfg(feature = "kubernetes")]
    {
        let api = client::Api::connect(access, budget).await?;
        let raw = api.get_pod(pod, budget).await?;
        Ok(raw.pointer("/metadata/annotations").and_then(|a| a.as_object()).cloned().unwrap_or_default())
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (access, pod, budget);
        Err(K8sError::NotBuilt { what: "reading the pod annotations" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_cni_args_are_checked_before_they_reach_a_url() {
        for good in ["default", "pod-a", "vm.1", "a"] {
            assert!(check_name("K8S_POD_NAME", good).is_ok(), "{good}");
        }
        for bad in ["", "..", "a/b", "A", "pod a", "x?y", &"a".repeat(254)] {
            assert!(check_name("K8S_POD_NAME", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_say_whether_a_retry_can_help() {
        let code = |e: K8sError| CniError::from(e).code;
        let s = String::new;
        assert_eq!(code(K8sError::Unreachable { access: s(), what: s(), reason: s() }), codes::TRY_AGAIN_LATER);
        assert_eq!(code(K8sError::Timeout { access: s(), what: s(), waited_ms: 1 }), codes::TRY_AGAIN_LATER);
        assert_eq!(code(K8sError::Conflict { pod: s(), attempts: 9 }), codes::TRY_AGAIN_LATER);
        assert_eq!(
            code(K8sError::Forbidden { access: s(), what: s(), namespace: s(), message: s() }),
            codes::INVALID_NETCONF
        );
        assert_eq!(code(K8sError::PodNotFound { pod: s() }), codes::UNKNOWN_CONTAINER);
        assert_eq!(code(K8sError::Api { what: s(), status: 503, message: s() }), codes::TRY_AGAIN_LATER);
        assert_eq!(code(K8sError::Api { what: s(), status: 422, message: s() }), codes::IO_FAILURE);
        assert_eq!(code(K8sError::NotBuilt { what: "x" }), codes::UNSUPPORTED_FIELD);
    }
}
