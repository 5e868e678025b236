//! The attachment record, as it is on disk: the intent (plan) written before ADD's first side
//! effect, completed with the outputs at the end. DEL, CHECK, GC, the reconciler and `forget` work
//! from it; it never holds secrets. Every type a record holds is defined here, so a change to
//! the format is a change to this file (and a new fixture under tests/fixtures/records/).

use crate::k8s::{ApiAccess, PodName};
use crate::netconf::ModeSide;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use userspace_cni_api::{Attachment, BackendPlan, NodeSettings, Outputs, SharedDir, StepContext, Verb};

/// Bumped when the layout changes incompatibly; readers reject newer formats. This binary
/// reads formats up to this one and writes the lowest that holds the record (`Record::format_of`).
pub const RECORD_FORMAT: u32 = 2;
/// The format of a CNI attachment's record (an older binary still tears it down).
pub const RECORD_FORMAT_CNI: u32 = 1;
/// Format 2 adds `plan.dra` (a DRA claim's attachment): a binary that does not know it must
/// refuse the record rather than tear down half of it (its CDI specs and metadata).
pub const RECORD_FORMAT_DRA: u32 = 2;

/// Every identifier ADD will create, computed before the first side effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub engine: String,
    /// The pod's shared directory (host and pod view), when the backend uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_dir: Option<SharedDir>,
    /// Whether the shared dir step will create (and so may later remove) the directory.
    #[serde(default)]
    pub creates_shared_dir: bool,
    /// KubeVirt: the short alias bind-mounted onto the pod's deep shared dir, when the socket
    /// path would not fit `sun_path` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_dir: Option<ShortDir>,
    pub backend: BackendPlan,
    /// Device-info file to write (runtimeConfig.CNIDeviceInfoFile), if asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info_file: Option<PathBuf>,
    /// The device-info file existed before ADD (a device plugin wrote it): an input that decided
    /// the socket's place, never written or removed by us.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device_info_given: bool,
    /// Whose side the device-info file's `vhost-user.mode` states (`deviceInfoVhostMode`), so
    /// DEL and CHECK recognise the document ADD wrote or read. Absent: the workload's.
    #[serde(default, skip_serializing_if = "ModeSide::is_workload")]
    pub device_info_vhost_mode: ModeSide,
    /// The pod whose `userspace/*` annotations this attachment maintains (compatibility mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<AnnotationPlan>,
    /// `configData-<cid12>-<ifname>.json` in the shared dir (host path), when annotations are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// The IPAM delegate's config (`ipam` object), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<serde_json::Value>,
    /// CNI_PATH of the ADD, recorded when IPAM is delegated: DEL and GC run in other processes
    /// and must find the same plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_path: Vec<PathBuf>,
    /// The CNI_ARGS text passed to the IPAM delegate (rebuilt from the validated pairs), so its
    /// DEL sees what its ADD saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<String>,
    /// A DRA claim's attachment (`userspace dra-plugin`): what it publishes besides the socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dra: Option<DraPlan>,
    /// Step names in ADD order, for `inspect` and for humans reading the file.
    pub steps: Vec<String>,
}

/// One request of a DRA claim, prepared as one attachment: its id is (claim uid, base request
/// name), its shared dir the per-claim socket dir, its port a client-mode vhost-user port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraPlan {
    pub driver: String,
    pub claim: ClaimName,
    /// `resource.kubernetes.io/pod-claim-name`: the claim came from a ResourceClaimTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_claim_name: Option<String>,
    /// The allocation result's request name, as allocated (`req` or `req/sub`).
    pub request: String,
    pub pool: String,
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_id: Option<String>,
    /// What Prepare answers kubelet (fully qualified CDI ids).
    pub cdi_device_ids: Vec<String>,
    /// KEP-5304 device metadata, written by the `dra-metadata` stage.
    pub metadata: Vec<PublishedFile>,
    /// CDI specs, written by the `cdi-spec` stage.
    pub cdi_specs: Vec<PublishedFile>,
}

/// A claim as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimName {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A JSON document the plugin publishes in an operator's directory (a setting, never a pod's):
/// `<root>/<rel>`, `rel` a file name or `<dir>/<file name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedFile {
    pub root: PathBuf,
    pub rel: PathBuf,
    pub content: serde_json::Value,
}

/// KubeVirt: a bind mount of the pod's long shared dir onto a short alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortDir {
    /// `<short_socket_dir>/<pod uid>`: where sockets are addressed from the host.
    pub short: PathBuf,
    /// The pod's own shared dir (its emptyDir), which the pod sees.
    pub long: PathBuf,
}

/// What the record says about the annotations of this attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationPlan {
    pub access: ApiAccess,
    pub pod: PodName,
    /// The pod's uid (CNI_ARGS, else the API's at ADD): a pod re-created under the same name is
    /// not annotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `userspace/mapped-dir`: the socket's directory as the pod sees it, ending in `/` (consumers
    /// concatenate it with the socket file name).
    pub mapped_dir: String,
}

/// The mapped-dir value for a socket's pod-side path.
pub fn mapped_dir_of(pod_socket: &Path) -> String {
    let dir = pod_socket.parent().map(|d| d.display().to_string()).unwrap_or_default();
    if dir.ends_with('/') {
        dir
    } else {
        format!("{dir}/")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    /// False while ADD is in progress (or was interrupted), and again once DEL has started.
    pub complete: bool,
    pub created_unix_ms: u64,
    /// The boot the attachment was made in (`NodeSettings::current_boot_id`); absent in records
    /// of earlier versions, which is "unknown", never "another boot".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub cni_version: String,
    pub attachment: Attachment,
    /// The network config as the runtime gave it (normalised keys); DEL/CHECK/GC use this one.
    pub config: serde_json::Value,
    pub plan: Plan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
}

impl Record {
    /// The record format that holds `plan`: CNI records stay readable by older binaries.
    pub fn format_of(plan: &Plan) -> u32 {
        if plan.dra.is_some() {
            RECORD_FORMAT_DRA
        } else {
            RECORD_FORMAT_CNI
        }
    }

    /// Made in another boot than `current` (both known and different). Such a CNI attachment's
    /// netns and sandbox are gone; a DRA attachment is prepared again by kubelet.
    pub fn from_another_boot(&self, current: Option<&str>) -> bool {
        matches!((self.boot_id.as_deref(), current), (Some(a), Some(b)) if a != b)
    }

    /// A DRA claim's attachment (kubelet prepares and unprepares it; no netns, no CNI DEL).
    pub fn is_dra(&self) -> bool {
        self.plan.dra.is_some()
    }

    /// The context in which `verb` works on this attachment after its ADD (DEL, CHECK, GC,
    /// repair, forget): the recorded attachment, shared dir and outputs, a fresh deadline.
    pub fn step_context(&self, verb: Verb, settings: &NodeSettings) -> StepContext {
        StepContext {
            verb,
            attachment: self.attachment.clone(),
            settings: std::sync::Arc::new(settings.clone()),
            shared_dir: self.plan.shared_dir.clone(),
            deadline: std::time::Instant::now() + settings.deadline(),
            outputs: self.outputs.clone().unwrap_or_default(),
            no_effect: false,
        }
    }

    pub fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(std::io::Error::other)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Record, String> {
        let rec: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if rec.format > RECORD_FORMAT {
            return Err(format!(
                "record format {} is newer than this binary understands ({RECORD_FORMAT}); use a newer userspace binary",
                rec.format
            ));
        }
        Ok(rec)
    }
}
