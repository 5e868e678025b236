//! The network config from stdin: strict JSON, upstream-compatible keys (case-insensitive, as Go's
//! encoding/json), defaults and validation. Never performs a side effect: parse and check only.
//!
//! Pipeline: [`strict_json::decode`] (size, UTF-8, syntax, depth, duplicate keys) →
//! [`keys::normalise`] (canonical key spellings of our objects) → [`types::from_document`] (JSON
//! types, enum values, `name`) → [`defaults::apply`] (host defaults, container mirrors host). Then
//! [`NetConf::validate`] checks names and paths against the node settings.

pub mod defaults;
pub mod keys;
pub mod path;
pub mod strict_json;
pub mod types;
pub mod validate;

#[cfg(test)]
mod tests;

pub use strict_json::{JsonError, MAX_DEPTH, MAX_INPUT_BYTES};
pub use types::{LogLevel, ModeSide, NetConf, RuntimeConfig, TypeError};
pub use validate::ValidateError;

use serde_json::Value;
use userspace_cni_api::{CniError, NodeSettings};

/// Everything that can be wrong with a network config, by stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetConfError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Type(#[from] TypeError),
    #[error(transparent)]
    Invalid(#[from] ValidateError),
}

impl From<NetConfError> for CniError {
    fn from(e: NetConfError) -> Self {
        // Each stage knows its codes (6 broken JSON, 7 invalid, 2 unsupported); keep them.
        match e {
            NetConfError::Json(e) => e.into(),
            NetConfError::Keys(e) => e.into(),
            NetConfError::Type(e) => e.into(),
            NetConfError::Invalid(e) => e.into(),
        }
    }
}

/// Parse the stdin bytes of a CNI call into a typed config with defaults applied. Checks JSON
/// well-formedness and the types of known keys; [`NetConf::validate`] checks the values.
pub fn parse(bytes: &[u8]) -> Result<NetConf, NetConfError> {
    from_value(strict_json::decode(bytes)?)
}

/// As [`parse`], from a document already decoded (e.g. the config stored in an attachment record,
/// which was strictly decoded when it was first received).
pub fn from_value(mut doc: Value) -> Result<NetConf, NetConfError> {
    keys::normalise(&mut doc, &keys::TOP, &path::Path::default())?;
    let mut nc = types::from_document(doc)?;
    defaults::apply(&mut nc.host, &mut nc.container);
    Ok(nc)
}

impl NetConf {
    /// The generic checks against the node settings (names, paths under `allowed_roots`, both
    /// sides agreeing). No side effects; the backend's `plan` checks the engine-specific part.
    pub fn validate(&self, settings: &NodeSettings) -> Result<(), NetConfError> {
        Ok(validate::validate(self, settings)?)
    }
}
