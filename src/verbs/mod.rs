//! The verbs: each composes a plan from the config, the generic steps and the selected backend,
//! and runs it through the pipeline. Returns the document to print; never prints itself.

mod add;
mod check;
mod del;
mod gc;
mod plan;
mod status;

use crate::pipeline::Registry;

use crate::cni::env::CniEnv;
use crate::cni::version::{self, CniVersion};
use crate::netconf::NetConf;
use userspace_cni_api::{CniError, NodeSettings, Verb};

/// One CNI invocation: what the runtime gave us and what this node is configured with.
pub struct Invocation<'a> {
    pub env: &'a CniEnv,
    pub stdin: &'a [u8],
    pub settings: &'a NodeSettings,
    pub registry: &'a Registry,
}

/// Run the verb. `Ok(Some(doc))` is printed on stdout, `Ok(None)` prints nothing (DEL, CHECK, GC
/// and STATUS succeed silently), `Err` becomes the error JSON.
pub async fn run(
    inv: &Invocation<'_>,
    conf: &NetConf,
    version: CniVersion,
) -> Result<Option<serde_json::Value>, CniError> {
    version::check_verb_allowed(inv.env.command, version)?;
    match inv.env.command {
        Verb::Add => add::add(inv, conf, version).await.map(Some),
        Verb::Del => del::del(inv, conf).await.map(|()| None),
        Verb::Check => check::check(inv, conf).await.map(|()| None),
        Verb::Gc => gc::gc(inv, conf).await.map(|()| None),
        Verb::Status => status::status(inv, conf).await.map(|()| None),
        // Answered before the config is parsed (entry.rs); kept total here.
        Verb::Version => Ok(Some(version::version_response(inv.stdin))),
    }
}
