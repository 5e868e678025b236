//! The contract a dataplane backend implements: the `Backend` trait and its reversible `Step`s,
//! the data types they exchange, CNI errors and codes, the registry and the failpoint facility.
//! No I/O here beyond reading the kernel's boot id and a failpoint's pause (test builds). Helpers a
//! backend may use live in `userspace_cni_support`; the conformance kit and a recording fake
//! backend in `userspace_cni_testkit` (docs/backend-authors.md).

pub mod access;
pub mod attachment;
pub mod backend;
pub mod diagnosis;
pub mod engine_settings;
pub mod error;
pub mod failpoint;
pub mod settings;
pub mod spec;
pub mod step;
pub mod typed;

pub use async_trait::async_trait;
pub use inventory;

pub use attachment::{Attachment, AttachmentId, HostInterface, PodRef, SharedDir, SocketDescriptor, SocketKind};
pub use backend::{
    registered, Adoption, Backend, BackendPlan, BackendRegistration, OwnedObject, PlanRequest, Repair, TaggedObject,
};
pub use diagnosis::{CheckStatus, Diagnosis, DoctorCheck};
pub use engine_settings::{EngineSettings, Mount, Propagation, SettingKind, SettingSpec};
pub use error::{codes, CniError, ErrorList};
pub use settings::{AnnotationMode, DraBridge, DraSettings, NodeSettings};
pub use spec::InterfaceSpec;
pub use step::{Budget, Outputs, Step, StepContext};
pub use typed::{Planned, Typed, TypedBackend};

use serde::{Deserialize, Serialize};

/// The CNI verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verb {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
            Verb::Gc => "GC",
            Verb::Status => "STATUS",
            Verb::Version => "VERSION",
        }
    }

    pub fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "ADD" => Verb::Add,
            "DEL" => Verb::Del,
            "CHECK" => Verb::Check,
            "GC" => Verb::Gc,
            "STATUS" => Verb::Status,
            "VERSION" => Verb::Version,
            _ => return None,
        })
    }
}
