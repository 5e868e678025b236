//! The plan layer: what an attachment is made of, decided before any side effect, and the
//! record format that carries it to DEL, CHECK, GC, the reconciler and `forget`. Plain data and
//! pure decisions; never touches the disk or a dataplane itself (the pipeline does, through the
//! probe it passes in).

pub mod cdi;
pub mod device_info;
pub mod dra_metadata;
pub mod k8s_names;
mod record;
pub mod shared_dir;
pub mod stages;

pub use record::{
    mapped_dir_of, AnnotationPlan, ClaimName, DraPlan, Plan, PublishedFile, Record, ShortDir, RECORD_FORMAT,
    RECORD_FORMAT_CNI, RECORD_FORMAT_DRA,
};
pub use shared_dir::{shared_dir, specs_for_given, FsProbe, SharedDirRoute};
pub use stages::{stages, step_names, Stage};
