//! What the plugin needs to know about a pod, read from the API's JSON with k8s-openapi's types:
//! its uid and its `shared-dir` volume (hostPath or emptyDir) with the path a container mounts it at.
//! Never interprets anything else of the pod and never writes.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The name of the pod volume the upstream plugin and KubeVirt share sockets through.
pub const SHARED_DIR_VOLUME: &str = "shared-dir";

/// Where the `shared-dir` volume lives on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeSource {
    /// `hostPath.path`.
    HostPath(PathBuf),
    /// `<kubelet root>/pods/<uid>/volumes/kubernetes.io~empty-dir/shared-dir`.
    EmptyDir,
    /// Any other volume type (named for the error message): not usable for sockets.
    Other(String),
}

/// The pod's `shared-dir` volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodVolume {
    pub source: VolumeSource,
    /// The first container's `volumeMounts[].mountPath` for it: where the pod sees the sockets.
    pub mount_path: Option<PathBuf>,
    /// Other containers mount it elsewhere (logged: the annotation can name only one dir).
    pub other_mount_paths: Vec<PathBuf>,
}

/// The parts of a pod the plugin reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodView {
    pub uid: Option<String>,
    pub shared_dir: Option<PodVolume>,
}

#[cfg(feature = "kubernetes")]
impl PodView {
    /// Read a pod object as the API returns it. Errors say what is malformed.
    pub fn from_pod(pod: &serde_json::Value) -> Result<PodView, String> {
        use k8s_openapi::api::core::v1::PodSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta: ObjectMeta = match pod.get("metadata") {
            Some(m) => serde_json::from_value(m.clone()).map_err(|e| format!("metadata: {e}"))?,
            None => return Err("no metadata".into()),
        };
        let spec: PodSpec = match pod.get("spec") {
            Some(s) => serde_json::from_value(s.clone()).map_err(|e| format!("spec: {e}"))?,
            None => PodSpec::default(),
        };
        let volume = spec.volumes.iter().flatten().find(|v| v.name == SHARED_DIR_VOLUME);
        let shared_dir = volume.map(|v| {
            let source = if let Some(hp) = &v.host_path {
                VolumeSource::HostPath(PathBuf::from(&hp.path))
            } else if v.empty_dir.is_some() {
                VolumeSource::EmptyDir
            } else {
                VolumeSource::Other(volume_kind(v))
            };
            let mut mounts = spec
                .containers
                .iter()
                .flat_map(|c| c.volume_mounts.iter().flatten())
                .filter(|m| m.name == SHARED_DIR_VOLUME)
                .map(|m| PathBuf::from(&m.mount_path));
            let mount_path = mounts.next();
            let other_mount_paths = mounts.filter(|p| Some(p) != mount_path.as_ref()).collect();
            PodVolume { source, mount_path, other_mount_paths }
        });
        Ok(PodView { uid: meta.uid, shared_dir })
    }
}

/// The volume type's field name, for "shared-dir is a persistentVolumeClaim" messages.
#[cfg(feature = "kubernetes")]
fn volume_kind(v: &k8s_openapi::api::core::v1::Volume) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => {
            m.keys().find(|k| k.as_str() != "name").cloned().unwrap_or_else(|| "unknown".into())
        }
        _ => "unknown".into(),
    }
}

#[cfg(all(test, feature = "kubernetes"))]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(volumes: serde_json::Value, containers: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
               "spec": {"volumes": volumes, "containers": containers}})
    }

    #[test]
    fn host_path_volume_and_its_mount_path() {
        let p = pod(
            json!([{"name": "other", "emptyDir": {}}, {"name": "shared-dir", "hostPath": {"path": "/var/run/vpp"}}]),
            json!([{"name": "app", "image": "x", "volumeMounts": [{"name": "shared-dir", "mountPath": "/sock"}]}]),
        );
        let v = PodView::from_pod(&p).unwrap();
        assert_eq!(v.uid.as_deref(), Some("u-1"));
        let sd = v.shared_dir.unwrap();
        assert_eq!(sd.source, VolumeSource::HostPath("/var/run/vpp".into()));
        assert_eq!(sd.mount_path, Some(PathBuf::from("/sock")));
    }

    #[test]
    fn empty_dir_volume_mounted_by_the_second_container() {
        let p = pod(
            json!([{"name": "shared-dir", "emptyDir": {"medium": "Memory"}}]),
            json!([{"name": "a", "image": "x"},
                   {"name": "b", "image": "x",
                    "volumeMounts": [{"name": "shared-dir", "mountPath": "/var/run/sockets"}]},
                   {"name": "c", "image": "x", "volumeMounts": [{"name": "shared-dir", "mountPath": "/elsewhere"}]}]),
        );
        let sd = PodView::from_pod(&p).unwrap().shared_dir.unwrap();
        assert_eq!(sd.source, VolumeSource::EmptyDir);
        assert_eq!(sd.mount_path, Some(PathBuf::from("/var/run/sockets")));
        assert_eq!(sd.other_mount_paths, vec![PathBuf::from("/elsewhere")]);
    }

    #[test]
    fn no_shared_dir_and_other_volume_kinds() {
        assert_eq!(PodView::from_pod(&pod(json!([]), json!([]))).unwrap().shared_dir, None);
        let p = pod(json!([{"name": "shared-dir", "persistentVolumeClaim": {"claimName": "c"}}]), json!([]));
        let sd = PodView::from_pod(&p).unwrap().shared_dir.unwrap();
        assert_eq!(sd.source, VolumeSource::Other("persistentVolumeClaim".into()));
        assert_eq!(sd.mount_path, None);
        assert!(PodView::from_pod(&json!({"spec": {}})).is_err(), "no metadata");
    }
}
