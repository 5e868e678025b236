//! The kube client for the three calls the plugin makes: GET pods/{name}, GET and PUT
//! pods/{name}/status (the reconciler's node calls are in `node.rs`, on the same client). The
//! pod travels as raw JSON, so a PUT never drops a field this build's k8s-openapi types do not
//! know (a newer API server's status fields). Every request is bounded.

use super::kubeconfig::{self, Trust};
use super::{ApiAccess, Budget, K8sError, PodName, MAX_CONFLICT_RETRIES};
use kube::core::params::GetParams;
use kube::core::Request;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Mutex;

/// Clients already built in this process, by access and runtime: the validation-time read and the
/// annotation step then share one TLS connection (a second handshake measured ~5 ms in release).
/// Keyed by the runtime too, so a client never outlives the runtime its connection pool runs on.
/// A cache of connections, not of data: every call still reads the pod afresh.
static CLIENTS: Mutex<Vec<(ApiAccess, tokio::runtime::Id, kube::Client)>> = Mutex::new(Vec::new());

pub(super) struct Api {
    client: kube::Client,
    access: ApiAccess,
}

impl Api {
    /// Build a client from the kubeconfig or the in-cluster account. Connects lazily.
    pub async fn connect(access: &ApiAccess, budget: Budget) -> Result<Api, K8sError> {
        let runtime = tokio::runtime::Handle::current().id();
        let cached = CLIENTS
            .lock()
            .ok()
            .and_then(|c| c.iter().find(|(a, r, _)| a == access && *r == runtime).map(|(_, _, client)| client.clone()));
        if let Some(client) = cached {
            return Ok(Api { client, access: access.clone() });
        }
        let mut config = match access {
            // Read bounded and checked before kube sees it: no plugin runs, no other file is
            // opened for a network config's file, and no error quotes its contents
            // (kubeconfig.rs). Nothing here waits, so no timeout is needed around it.
            ApiAccess::Kubeconfig { path } => kubeconfig::load(path, Trust::NetworkConfig).await?,
            ApiAccess::OperatorKubeconfig { path } => kubeconfig::load(path, Trust::Operator).await?,
            ApiAccess::InCluster => {
                kube::Config::incluster().map_err(|e| K8sError::NoCredentials { reason: chain(&e) })?
            }
        };
        // Who we are, on every request: audit logs show it as userAgent.
        config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(super::USER_AGENT)));
        config.connect_timeout = Some(budget.timeout);
        config.read_timeout = Some(budget.timeout);
        config.write_timeout = Some(budget.timeout);
        let client = kube::Client::try_from(config).map_err(|e| match access {
            ApiAccess::Kubeconfig { path } | ApiAccess::OperatorKubeconfig { path } => {
                K8sError::Kubeconfig { path: path.clone(), reason: chain(&e) }
            }
            ApiAccess::InCluster => K8sError::NoCredentials { reason: chain(&e) },
        })?;
        if let Ok(mut c) = CLIENTS.lock() {
            c.retain(|(a, r, _)| !(a == access && *r == runtime));
            c.push((access.clone(), runtime, client.clone()));
        }
        Ok(Api { client, access: access.clone() })
    }

    /// The kube client and who it speaks for, for the other resources' modules (`node.rs`).
    pub(super) fn parts(&self) -> (&kube::Client, &ApiAccess) {
        (&self.client, &self.access)
    }

    fn pods(pod: &PodName) -> Request {
        Request::new(format!("/api/v1/namespaces/{}/pods", pod.namespace))
    }

    /// One request, bounded by the budget, errors mapped with `what` for the message.
    async fn call<F>(&self, what: &str, pod: &PodName, budget: Budget, fut: F) -> Result<Value, K8sError>
    where
        F: Future<Output = Result<Value, kube::Error>>,
    {
        let limit = budget.next();
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_error(what, pod, e)),
            Err(_) => Err(K8sError::Timeout {
                access: self.access.to_string(),
                what: what.into(),
                waited_ms: limit.as_millis() as u64,
            }),
        }
    }

    fn map_error(&self, what: &str, pod: &PodName, e: kube::Error) -> K8sError {
        match e {
            kube::Error::Api(status) => match status.code {
                401 => K8sError::Unauthorized { access: self.access.to_string(), message: status.message },
                403 => K8sError::Forbidden {
                    access: self.access.to_string(),
                    what: what.into(),
                    namespace: pod.namespace.clone(),
                    message: status.message,
                },
                404 => K8sError::PodNotFound { pod: pod.to_string() },
                422 if status.message.contains("metadata.annotations: Too long") => {
                    K8sError::AnnotationsTooLarge { what: what.into(), message: status.message }
                }
                code => K8sError::Api { what: what.into(), status: code, message: status.message },
            },
            kube::Error::SerdeError(e) => K8sError::Malformed { what: what.into(), reason: e.to_string() },
            other => {
                let reason = chain(&other);
                // A certificate the kubeconfig does not trust will not start working on a retry.
                let untrusted = reason.contains("certificate") || reason.contains("Certificate");
                if let (true, ApiAccess::Kubeconfig { path } | ApiAccess::OperatorKubeconfig { path }) =
                    (untrusted, &self.access)
                {
                    K8sError::Kubeconfig { path: path.clone(), reason }
                } else if untrusted {
                    K8sError::NoCredentials { reason }
                } else {
                    K8sError::Unreachable { access: self.access.to_string(), what: what.into(), reason }
                }
            }
        }
    }

    /// GET pods/{name}.
    pub async fn get_pod(&self, pod: &PodName, budget: Budget) -> Result<Value, K8sError> {
        let what = format!("GET pod {pod}");
        let req = Self::pods(pod)
            .get(&pod.name, &GetParams::default())
            .map_err(|e| K8sError::Malformed { what: what.clone(), reason: e.to_string() })?;
        self.call(&what, pod, budget, self.client.request::<Value>(req)).await
    }

    /// GET pods/{name}/status (the re-read after a 409; same object, the subresource we write).
    async fn get_pod_status(&self, pod: &PodName, budget: Budget) -> Result<Value, K8sError> {
        let what = format!("GET pod {pod}/status");
        let req = Self::pods(pod)
            .get_subresource("status", &pod.name)
            .map_err(|e| K8sError::Malformed { what: what.clone(), reason: e.to_string() })?;
        self.call(&what, pod, budget, self.client.request::<Value>(req)).await
    }

    /// See `super::update_annotations`.
    pub async fn update_annotations(
        &self,
        pod: &PodName,
        uid: Option<&str>,
        budget: Budget,
        edit: &mut (dyn FnMut(&mut Map<String, Value>) -> bool + Send),
    ) -> Result<bool, K8sError> {
        let mut object = self.get_pod(pod, budget).await?;
        let what = format!("PUT pod {pod}/status");
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            check_uid(pod, &object, uid)?;
            let changed = super::edit_metadata_map(&mut object, "annotations", edit)
                .map_err(|reason| K8sError::Malformed { what: format!("GET pod {pod}"), reason: reason.into() })?;
            if !changed {
                return Ok(false);
            }
            let body = serde_json::to_vec(&object)
                .map_err(|e| K8sError::Malformed { what: what.clone(), reason: e.to_string() })?;
            let req = Self::pods(pod)
                .replace_subresource("status", &pod.name, &super::post_params(), body)
                .map_err(|e| K8sError::Malformed { what: what.clone(), reason: e.to_string() })?;
            match self.call(&what, pod, budget, self.client.request::<Value>(req)).await {
                Ok(_) => return Ok(true),
                Err(K8sError::Api { status: 409, .. }) => {
                    tracing::debug!(%pod, attempt, "409 Conflict on the annotation update; re-reading the pod");
                    object = self.get_pod_status(pod, budget).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(K8sError::Conflict { pod: pod.to_string(), attempts: MAX_CONFLICT_RETRIES + 1 })
    }
}

/// The object must still be the pod CNI_ARGS named (a pod deleted and re-created under the same
/// name is another pod).
fn check_uid(pod: &PodName, object: &Value, want: Option<&str>) -> Result<(), K8sError> {
    let got = object.pointer("/metadata/uid").and_then(Value::as_str);
    match (want, got) {
        (Some(w), Some(g)) if w != g => {
            Err(K8sError::PodReplaced { pod: pod.to_string(), api_uid: g.into(), args_uid: w.into() })
        }
        _ => Ok(()),
    }
}

/// An error with its sources, for messages ("connection refused" hides two levels down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
