//! What a backend may use but need not: the contract (`userspace_cni_api`) says what a backend
//! is; this crate holds the helpers the built-in backends and the generic steps share, so a new
//! backend gets the same safety without copying them.
//!
//! - `confine`: open a path below a trusted root without following a symlink (docs/security.md).
//! - `names`: validators for names and paths from a network config or the runtime.
//! - `perms`: resolve `host.permissions` and apply it through descriptors.
//! - `acl`: POSIX ACLs for a socket dir (uids checked, the xattr encoding, `fsetxattr`).
//! - `json`: the case-insensitive key lookup Go's `encoding/json` users expect.
//! - `lazy`: one connection per verb, opened on first use, dropped after an error.

pub mod acl;
pub mod confine;
pub mod json;
pub mod lazy;
pub mod names;
pub mod perms;
