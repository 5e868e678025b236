//! The ordered stages of an attachment, decided from its plan alone. ADD applies them in this
//! order and DEL undoes them in reverse; the pipeline instantiates each stage, and the record's
//! `steps` names are taken from the same list, so nothing dispatches on a name and nothing
//! mirrors this order elsewhere.

use super::Plan;
use userspace_cni_api::{Backend, CniError};

pub const SHORT_DIR: &str = "short-dir";
pub const SHARED_DIR: &str = "shared-dir";
pub const IPAM: &str = "ipam";
pub const DEVICE_INFO: &str = "device-info";
pub const CONFIG_FILE: &str = "config-file";
pub const ANNOTATIONS: &str = "annotations";
pub const DRA_METADATA: &str = "dra-metadata";
pub const CDI_SPEC: &str = "cdi-spec";
pub const SAVE_STATE: &str = "save-state";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// KubeVirt: the short alias bind-mounted onto the pod's deep shared dir.
    ShortDir,
    SharedDir,
    /// Before the dataplane: a backend may need the addresses (DESIGN.md §3.2).
    Ipam,
    /// The backend's own steps, in its order.
    Backend,
    /// Publication last: it describes what the steps above made.
    DeviceInfo,
    ConfigFile,
    Annotations,
    /// DRA: the KEP-5304 device metadata file, then the CDI specs that mount it and the socket
    /// dir into the container (last: a runtime may read a spec as soon as it exists).
    DraMetadata,
    CdiSpec,
    /// The record's completion (DESIGN.md §3.1).
    SaveState,
}

impl Stage {
    /// The step name of a generic stage; `None` for `Backend`, whose steps name themselves.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Stage::ShortDir => SHORT_DIR,
            Stage::SharedDir => SHARED_DIR,
            Stage::Ipam => IPAM,
            Stage::Backend => return None,
            Stage::DeviceInfo => DEVICE_INFO,
            Stage::ConfigFile => CONFIG_FILE,
            Stage::Annotations => ANNOTATIONS,
            Stage::DraMetadata => DRA_METADATA,
            Stage::CdiSpec => CDI_SPEC,
            Stage::SaveState => SAVE_STATE,
        })
    }
}

/// Whether the plan delegates IPAM: an `ipam` object with anything in it (its `type` was
/// validated when the plan was made).
fn delegates_ipam(plan: &Plan) -> bool {
    plan.ipam.as_ref().and_then(|v| v.as_object()).is_some_and(|o| !o.is_empty())
}

/// The stages of `plan`, in ADD order.
pub fn stages(plan: &Plan) -> Vec<Stage> {
    let mut out = Vec::new();
    if plan.short_dir.is_some() {
        out.push(Stage::ShortDir);
    }
    if plan.shared_dir.is_some() {
        out.push(Stage::SharedDir);
    }
    if delegates_ipam(plan) {
        out.push(Stage::Ipam);
    }
    out.push(Stage::Backend);
    if plan.device_info_file.is_some() && plan.backend.socket.is_some() {
        out.push(Stage::DeviceInfo);
    }
    if plan.config_file.is_some() {
        out.push(Stage::ConfigFile);
    }
    if plan.annotations.is_some() {
        out.push(Stage::Annotations);
    }
    if let Some(dra) = &plan.dra {
        if !dra.metadata.is_empty() {
            out.push(Stage::DraMetadata);
        }
        if !dra.cdi_specs.is_empty() {
            out.push(Stage::CdiSpec);
        }
    }
    out.push(Stage::SaveState);
    out
}

/// The step names of `plan` in ADD order, for the record (`inspect`, humans).
pub fn step_names(plan: &Plan, backend: &dyn Backend) -> Result<Vec<String>, CniError> {
    let mut names = Vec::new();
    for stage in stages(plan) {
        match stage.name() {
            Some(n) => names.push(n.to_owned()),
            None => names.extend(backend.steps(&plan.backend)?.iter().map(|s| s.name().to_owned())),
        }
    }
    Ok(names)
}
