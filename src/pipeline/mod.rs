//! Reversible steps and the executor: run steps in order; on failure undo the applied prefix in
//! reverse; teardown undoes every step and collects every error. Never prints to stdout.

mod executor;
mod save_state;

pub use executor::{apply_all, undo_all, ApplyFailure};
pub use save_state::SaveState;
