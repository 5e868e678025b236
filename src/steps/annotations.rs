//! The upstream plugin's pod annotations (compatibility mode, DESIGN.md §3.5):
//! `userspace/configuration-data` (a JSON array of `{containerId, ifName, name, config, ipResult}`)
//! and `userspace/mapped-dir`, kept by a reversible step: ADD replaces this interface's entry,
//! DEL removes only it. Never touches another interface's entry or any other annotation, and
//! never fails a DEL or a rollback for an API server that is away (the entry is best effort).

use crate::k8s::{self, ApiAccess, Budget, K8sError, PodName, PodView};
pub use crate::plan::{mapped_dir_of, AnnotationPlan};
use crate::steps::config_file;
use userspace_cni_api::{async_trait, AnnotationMode, CniError, NodeSettings, PodRef, Step, StepContext};

use serde_json::{Map, Value};
use std::path::Path;

pub const CONFIG_DATA: &str = "userspace/configuration-data";
pub const MAPPED_DIR: &str = "userspace/mapped-dir";

/// Which API access this attachment asks for: the config's `kubeconfig`, or the setting
/// `annotations = "in-cluster"`; `None` when off, or when CNI_ARGS names no pod (a runtime
/// without Kubernetes). A binary built without Kubernetes refuses a config that asks.
pub fn wanted(
    kubeconfig: Option<&Path>,
    settings: &NodeSettings,
    pod: &PodRef,
) -> Result<Option<(ApiAccess, PodName)>, CniError> {
    let access = match (settings.annotations, kubeconfig) {
        (AnnotationMode::Off, _) => return Ok(None),
        (_, Some(path)) => ApiAccess::Kubeconfig { path: path.to_path_buf() },
        (AnnotationMode::InCluster, None) => ApiAccess::InCluster,
        (AnnotationMode::Auto, None) => return Ok(None),
    };
    if !k8s::BUILT {
        return Err(K8sError::NotBuilt { what: "annotation mode (kubeconfig or annotations = \"in-cluster\")" }.into());
    }
    let (Some(namespace), Some(name)) = (&pod.namespace, &pod.name) else {
        tracing::warn!(
            %access,
            "annotation mode is on, but CNI_ARGS names no pod (K8S_POD_NAMESPACE, K8S_POD_NAME): no annotations"
        );
        return Ok(None);
    };
    k8s::check_name("K8S_POD_NAMESPACE", namespace)?;
    k8s::check_name("K8S_POD_NAME", name)?;
    Ok(Some((access, PodName { namespace: namespace.clone(), name: name.clone() })))
}

/// Read the pod at validation time (its `shared-dir` volume decides the shared dir). The
/// in-cluster account missing is not an error: that config did not ask for annotations.
pub async fn read_pod(access: &ApiAccess, pod: &PodName, budget: Budget) -> Result<Option<PodView>, CniError> {
    match k8s::read_pod(access, pod, budget).await {
        Ok(view) => Ok(Some(view)),
        Err(K8sError::NoCredentials { reason }) if *access == ApiAccess::InCluster => {
            tracing::warn!(%reason, "annotations = \"in-cluster\" but no in-cluster credentials: no annotations");
            Ok(None)
        }
        Err(e) => Err(CniError::from(e).context("annotation mode")),
    }
}

/// (containerId, ifName) of an entry.
fn key_of(v: &Value) -> Option<(&str, &str)> {
    Some((v.get("containerId")?.as_str()?, v.get("ifName")?.as_str()?))
}

/// The entries of an existing `configuration-data` value. Junk is dropped with a warning: the
/// key is ours, and a value nobody can parse helps no consumer.
fn entries(value: Option<&Value>) -> Vec<Value> {
    let Some(Value::String(s)) = value else { return Vec::new() };
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Object(o)) => vec![Value::Object(o)],
        _ => {
            tracing::warn!(annotation = CONFIG_DATA, "existing value is not a JSON array; replacing it");
            Vec::new()
        }
    }
}

/// Drop the entries of (cid, ifname), and collapse the duplicates the upstream plugin left
/// (it appended on every ADD): for each other key the last entry wins, in first-seen order.
fn without(list: Vec<Value>, cid: &str, ifname: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(list.len());
    for e in list {
        match key_of(&e).map(|(c, i)| (c.to_owned(), i.to_owned())) {
            Some((c, i)) if c == cid && i == ifname => {}
            Some((c, i)) => match out.iter().position(|o| key_of(o) == Some((c.as_str(), i.as_str()))) {
                Some(at) => out[at] = e,
                None => out.push(e),
            },
            None => out.push(e),
        }
    }
    out
}

fn set_if_changed(annotations: &mut Map<String, Value>, key: &str, value: String) -> bool {
    if annotations.get(key).and_then(Value::as_str) == Some(value.as_str()) {
        return false;
    }
    annotations.insert(key.into(), Value::String(value));
    true
}

/// ADD: this interface's entry replaced (others kept, duplicates collapsed) and mapped-dir set.
/// Returns whether anything changed.
pub fn upsert(annotations: &mut Map<String, Value>, entry: &Value, mapped_dir: &str) -> bool {
    let Some((cid, ifname)) = key_of(entry) else { return false };
    let mut list = without(entries(annotations.get(CONFIG_DATA)), cid, ifname);
    list.push(entry.clone());
    let text = serde_json::to_string(&Value::Array(list)).unwrap_or_default();
    let mut changed = set_if_changed(annotations, CONFIG_DATA, text);
    match annotations.get(MAPPED_DIR).and_then(Value::as_str) {
        Some(existing) if existing.trim_end_matches('/') != mapped_dir.trim_end_matches('/') => {
            // One annotation per pod: the first interface's dir stays; this one's socketPath and
            // device-info still say where its socket is.
            tracing::warn!(existing, ours = mapped_dir, "pod already has another {MAPPED_DIR}; keeping it");
        }
        _ => changed |= set_if_changed(annotations, MAPPED_DIR, mapped_dir.to_owned()),
    }
    changed
}

/// DEL: only (cid, ifname)'s entry goes; the last one takes mapped-dir with it.
pub fn remove(annotations: &mut Map<String, Value>, cid: &str, ifname: &str) -> bool {
    if !annotations.contains_key(CONFIG_DATA) {
        return false;
    }
    let before = entries(annotations.get(CONFIG_DATA));
    let had = before.iter().any(|e| key_of(e) == Some((cid, ifname)));
    let list = without(before, cid, ifname);
    if !had {
        return false;
    }
    if list.is_empty() {
        annotations.remove(CONFIG_DATA);
        annotations.remove(MAPPED_DIR);
        return true;
    }
    set_if_changed(annotations, CONFIG_DATA, serde_json::to_string(&Value::Array(list)).unwrap_or_default())
}

pub struct AnnotationStep {
    pub plan: AnnotationPlan,
    /// The recorded network config (the `config` of the entry).
    pub config: Value,
    pub cni_version: String,
}

fn budget(ctx: &StepContext) -> Budget {
    ctx.budget()
}

#[async_trait]
impl Step for AnnotationStep {
    fn name(&self) -> &'static str {
        crate::plan::stages::ANNOTATIONS
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let entry = config_file::entry(ctx, &self.config, &self.cni_version)?;
        let mapped = self.plan.mapped_dir.clone();
        let mut edit = |a: &mut Map<String, Value>| upsert(a, &entry, &mapped);
        match k8s::update_annotations(
            &self.plan.access,
            &self.plan.pod,
            self.plan.uid.as_deref(),
            budget(ctx),
            &mut edit,
        )
        .await
        {
            Ok(_) => Ok(()),
            // A refused or never-sent request changed nothing: no undo needed (it would fail alike).
            Err(e) if e.nothing_written() => Err(ctx.fail_unchanged(e.into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let id = ctx.attachment.id.clone();
        let mut edit = |a: &mut Map<String, Value>| remove(a, &id.container_id, &id.ifname);
        match k8s::update_annotations(
            &self.plan.access,
            &self.plan.pod,
            self.plan.uid.as_deref(),
            budget(ctx),
            &mut edit,
        )
        .await
        {
            Ok(_) => {}
            Err(K8sError::PodNotFound { .. } | K8sError::PodReplaced { .. }) => {
                tracing::debug!(pod = %self.plan.pod, "pod gone: its annotations went with it");
            }
            // Best effort (DESIGN.md §3.3): the dataplane, files and lease still go, DEL succeeds.
            Err(e) => tracing::warn!(
                pod = %self.plan.pod,
                error = %e,
                "could not remove this interface's {CONFIG_DATA} entry; continuing without it"
            ),
        }
        Ok(())
    }

    async fn check(&self, ctx: &StepContext) -> Result<(), CniError> {
        let id = &ctx.attachment.id;
        match k8s::read_annotations(&self.plan.access, &self.plan.pod, budget(ctx)).await {
            Ok(a) => {
                let present =
                    entries(a.get(CONFIG_DATA)).iter().any(|e| key_of(e) == Some((&id.container_id, &id.ifname)));
                if present {
                    Ok(())
                } else {
                    Err(CniError::io(format!(
                        "pod {} has no {CONFIG_DATA} entry for {}/{}",
                        self.plan.pod, id.container_id, id.ifname
                    )))
                }
            }
            // The API server's availability is not the attachment's health.
            Err(e) => {
                tracing::warn!(error = %e, "CHECK could not read the pod annotations");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(cid: &str, ifname: &str, tag: u32) -> Value {
        json!({"containerId": cid, "ifName": ifname, "name": "n", "config": {}, "ipResult": {"tag": tag}})
    }

    fn list(a: &Map<String, Value>) -> Vec<Value> {
        entries(a.get(CONFIG_DATA))
    }

    #[test]
    fn add_replaces_this_interface_keeps_others_and_collapses_upstream_duplicates() {
        let mut a = Map::new();
        // What the upstream plugin leaves after two ADDs of net1 and one of net2.
        let upstream = json!([e("c1", "net1", 1), e("c1", "net2", 2), e("c1", "net1", 3), e("c1", "net2", 4)]);
        a.insert(CONFIG_DATA.into(), Value::String(upstream.to_string()));
        a.insert("other".into(), json!("kept"));
        assert!(upsert(&mut a, &e("c1", "net1", 9), "/sock/"));
        assert_eq!(list(&a), vec![e("c1", "net2", 4), e("c1", "net1", 9)]);
        assert_eq!(a[MAPPED_DIR], "/sock/");
        assert_eq!(a["other"], "kept");
        assert!(!upsert(&mut a, &e("c1", "net1", 9), "/sock/"), "the same ADD again changes nothing");
    }

    #[test]
    fn del_removes_only_this_interface_and_the_last_takes_mapped_dir() {
        let mut a = Map::new();
        upsert(&mut a, &e("c1", "net1", 1), "/sock/");
        upsert(&mut a, &e("c1", "net2", 2), "/sock/");
        assert!(remove(&mut a, "c1", "net1"));
        assert_eq!(list(&a), vec![e("c1", "net2", 2)]);
        assert_eq!(a[MAPPED_DIR], "/sock/");
        assert!(!remove(&mut a, "c1", "net1"), "idempotent");
        assert!(remove(&mut a, "c1", "net2"));
        assert!(a.is_empty(), "{a:?}");
        assert!(!remove(&mut a, "c1", "net2"));
    }

    #[test]
    fn junk_is_replaced_and_a_foreign_mapped_dir_is_kept() {
        let mut a = Map::new();
        a.insert(CONFIG_DATA.into(), json!("not json"));
        a.insert(MAPPED_DIR.into(), json!("/elsewhere/"));
        assert!(upsert(&mut a, &e("c1", "net1", 1), "/sock/"));
        assert_eq!(list(&a), vec![e("c1", "net1", 1)]);
        assert_eq!(a[MAPPED_DIR], "/elsewhere/");
        // Upstream wrote the dir without the trailing slash consumers need.
        a.insert(MAPPED_DIR.into(), json!("/sock"));
        assert!(upsert(&mut a, &e("c1", "net1", 1), "/sock/"));
        assert_eq!(a[MAPPED_DIR], "/sock/");
    }

    #[test]
    fn mapped_dir_ends_in_a_slash() {
        assert_eq!(mapped_dir_of(Path::new("/var/run/vpp/memif-1.sock")), "/var/run/vpp/");
        assert_eq!(mapped_dir_of(Path::new("/s")), "/");
    }

    #[test]
    fn off_or_no_pod_means_no_annotations() {
        let pod = PodRef { namespace: Some("ns".into()), name: Some("p".into()), ..PodRef::default() };
        let off = NodeSettings { annotations: AnnotationMode::Off, ..NodeSettings::default() };
        assert_eq!(wanted(Some(Path::new("/k")), &off, &pod).unwrap(), None);
        let auto = NodeSettings::default();
        assert_eq!(wanted(None, &auto, &pod).unwrap(), None);
        if k8s::BUILT {
            assert_eq!(wanted(Some(Path::new("/k")), &auto, &PodRef::default()).unwrap(), None);
            let (access, name) = wanted(Some(Path::new("/k")), &auto, &pod).unwrap().unwrap();
            assert_eq!(access, ApiAccess::Kubeconfig { path: "/k".into() });
            assert_eq!(name.to_string(), "ns/p");
            let bad = PodRef { name: Some("a/b".into()), ..pod };
            assert!(wanted(Some(Path::new("/k")), &auto, &bad).is_err());
        } else {
            let err = wanted(Some(Path::new("/k")), &auto, &pod).unwrap_err();
            assert!(err.msg.contains("kubernetes"), "{}", err.msg);
        }
    }
}
