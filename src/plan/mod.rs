//! The plan layer: what an attachment is made of, decided before any side effect, and the
//! record format that carries it to DEL, CHECK, GC, the reconciler and `forget`. Plain data and
//! pure decisions; never touches the disk or a dataplane itself (the pipeline does, through the
//! probe it passes in).

mod record;

pub use record::{mapped_dir_of, AnnotationPlan, Plan, Record, ShortDir, RECORD_FORMAT};
