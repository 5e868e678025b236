//! The core every front-end (the CNI verbs, the reconciler and operator CLI, later the DRA
//! plugin) runs attachments through: the backend registry, planning (config -> plan), the step
//! list of a plan, the executor (apply in order; on failure undo the applied prefix in reverse),
//! teardown (undo everything, collect every error) and adoption of upstream attachments. Never
//! prints to stdout and never depends on a front-end.

pub mod adopt;
mod attach;
mod executor;
pub mod planner;
mod reapply;
mod registry;
mod save_state;
mod step_list;
mod teardown;

pub use attach::{attach, AttachFailure};
pub use executor::{apply_all, undo_all, ApplyFailure};
pub use planner::{attachment_of, make_plan, AttachRequest};
pub use reapply::reapply;
pub use registry::{engine_of, Registry};
pub use save_state::SaveState;
pub use step_list::build_steps;
pub use teardown::teardown;
