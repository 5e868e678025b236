//! The IPAM step: delegates addresses to the plugin named by `ipam.type` (ADD on apply, DEL on undo),
//! and forwards CHECK, GC and STATUS by DESIGN.md §3.3. Never edits the result: publication merges it.

use super::delegate::{delegated_config, Delegate, DelegateEnv, DelegateError};
use crate::cni::args::CniArgs;
use crate::cni::describe;
use crate::cni::result::{CniResult, ResultError};
use crate::cni::version::CniVersion;
use crate::plan::Record;
use serde_json::Value;
use std::path::PathBuf;
use tokio::sync::OnceCell;
use userspace_cni_api::{async_trait, codes, AttachmentId, CniError, Step, StepContext};

/// The config key that names the delegate, for messages.
const TYPE_KEY: &str = "ipam.type";

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(
        "ipam.type is required when ipam has settings; name the IPAM plugin in CNI_PATH, such as \"host-local\" \
         (an empty ipam object means no IPAM)"
    )]
    MissingType,

    #[error("ipam.type must be a string naming the IPAM plugin, such as \"host-local\"; found {found}")]
    TypeNotString { found: String },

    #[error(transparent)]
    Delegate(#[from] DelegateError),

    #[error("{plugin}: its {command} output is not JSON: {problem}")]
    NotJson { plugin: String, command: &'static str, problem: String },

    #[error("{plugin}: its {command} result is not a CNI result: {source}")]
    BadResult { plugin: String, command: &'static str, source: ResultError },

    #[error("the IPAM plugin cannot serve ADD: {reason}")]
    Unavailable { reason: String },
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> Self {
        match e {
            IpamError::Delegate(d) => d.into(),
            IpamError::MissingType | IpamError::TypeNotString { .. } => {
                CniError::new(codes::INVALID_NETCONF, e.to_string())
            }
            IpamError::BadResult { ref source, .. } => {
                let code = match source {
                    ResultError::UnsupportedVersion { .. } => codes::INCOMPATIBLE_VERSION,
                    ResultError::NotAnObject { .. } | ResultError::Field { .. } => codes::DECODE_FAILURE,
                };
                CniError::new(code, e.to_string())
            }
            IpamError::NotJson { .. } => CniError::new(codes::DECODE_FAILURE, e.to_string()),
            IpamError::Unavailable { .. } => CniError::new(codes::NOT_AVAILABLE, e.to_string()),
        }
    }
}

impl IpamError {
    /// The config can never have reached the delegate (bad or missing plugin, no shared
    /// version): an ADD with it failed at validation, so there is no lease to release.
    fn delegate_never_ran(&self) -> bool {
        matches!(
            self,
            IpamError::MissingType
                | IpamError::TypeNotString { .. }
                | IpamError::Delegate(
                    DelegateError::InvalidType { .. }
                        | DelegateError::NotFound { .. }
                        | DelegateError::NoCommonVersion { .. }
                )
        )
    }
}

/// The plugin named by `ipam`, or `None` when no IPAM is asked for: no `ipam`, or an empty
/// object (upstream and the reference plugins skip IPAM when its type is unset, and NADs in the
/// wild carry `"ipam": {}`).
pub fn plugin_type(ipam: Option<&Value>) -> Result<Option<&str>, IpamError> {
    let Some(ipam) = ipam else { return Ok(None) };
    let Some(obj) = ipam.as_object() else { return Ok(None) };
    match obj.get("type") {
        None if obj.is_empty() => Ok(None),
        None | Some(Value::Null) => Err(IpamError::MissingType),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(IpamError::TypeNotString { found: describe(other) }),
    }
}

/// CNI_ARGS for the delegate, rebuilt from the pairs we parsed (the record holds this text so a
/// DEL in another process passes the same). Only validated pairs are forwarded.
pub fn cni_args_text(args: &CniArgs) -> Option<String> {
    let mut pairs: Vec<String> = Vec::new();
    if args.ignore_unknown {
        pairs.push("IgnoreUnknown=1".into());
    }
    let known = [
        ("K8S_POD_NAMESPACE", &args.k8s_pod_namespace),
        ("K8S_POD_NAME", &args.k8s_pod_name),
        ("K8S_POD_INFRA_CONTAINER_ID", &args.k8s_pod_infra_container_id),
        ("K8S_POD_UID", &args.k8s_pod_uid),
        ("MAC", &args.mac),
    ];
    for (k, v) in known {
        if let Some(v) = v {
            pairs.push(format!("{k}={v}"));
        }
    }
    if !args.ips.is_empty() {
        // host-local and static read `IP=` to pin an address.
        pairs.push(format!("IP={}", args.ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(",")));
    }
    pairs.extend(args.unknown.iter().map(|(k, v)| format!("{k}={v}")));
    (!pairs.is_empty()).then(|| pairs.join(";"))
}

/// The bound of each delegate call: the per-wait timeout, capped by what is left of the verb's
/// deadline (`StepContext::budget`, or `Budget::of_settings` for the verbs that have no context).
pub use userspace_cni_api::Budget;

/// The IPAM delegation of one attachment (or one network, for GC and STATUS).
#[derive(Debug)]
pub struct IpamStep {
    pub plugin: String,
    /// The whole network config (the record's for ADD, DEL and CHECK): what the delegate reads.
    pub config: Value,
    pub cni_path: Vec<PathBuf>,
    pub cni_args: Option<String>,
    /// The delegate and the versions it speaks: asked once per invocation of ours.
    negotiated: OnceCell<(Delegate, Vec<String>)>,
}

impl IpamStep {
    /// `None` when the config asks for no IPAM; an invalid `ipam.type` is code 7.
    pub fn new(
        config: &Value,
        ipam: Option<&Value>,
        cni_path: &[PathBuf],
        cni_args: Option<String>,
    ) -> Result<Option<IpamStep>, IpamError> {
        let Some(plugin) = plugin_type(ipam)? else { return Ok(None) };
        super::delegate::validate_type(TYPE_KEY, plugin)?;
        Ok(Some(IpamStep {
            plugin: plugin.to_owned(),
            config: config.clone(),
            cni_path: cni_path.to_vec(),
            cni_args,
            negotiated: OnceCell::new(),
        }))
    }

    /// The step of a recorded attachment: everything comes from the record, so DEL in another
    /// process (or GC) delegates exactly as ADD did.
    pub fn from_record(record: &Record) -> Result<Option<IpamStep>, CniError> {
        let plan = &record.plan;
        // Records written before IPAM delegation carry `ipam` but not the step (nor the CNI_PATH
        // to find the plugin): their ADD allocated nothing, and a DEL must not fail over it.
        if !plan.steps.iter().any(|s| s == "ipam") {
            return Ok(None);
        }
        Ok(IpamStep::new(&record.config, plan.ipam.as_ref(), &plan.cni_path, plan.cni_args.clone())?)
    }

    /// Validation before any side effect: the plugin must be in CNI_PATH (code 7 if not).
    pub fn locate(&self) -> Result<Delegate, IpamError> {
        Ok(Delegate::find(TYPE_KEY, &self.plugin, &self.cni_path)?)
    }

    /// The environment for an attachment's delegate call.
    pub fn env_for(&self, id: &AttachmentId, netns: Option<&str>) -> DelegateEnv {
        DelegateEnv {
            container_id: Some(id.container_id.clone()),
            netns: netns.map(str::to_owned),
            ifname: Some(id.ifname.clone()),
            args: self.cni_args.clone(),
            path: self.cni_path.clone(),
        }
    }

    /// The environment of the network-wide verbs (GC, STATUS): no attachment.
    fn env_network(&self) -> DelegateEnv {
        DelegateEnv { path: self.cni_path.clone(), ..DelegateEnv::default() }
    }

    /// Find the delegate and ask VERSION (once).
    async fn negotiated(&self, budget: Budget) -> Result<&(Delegate, Vec<String>), IpamError> {
        self.negotiated
            .get_or_try_init(|| async {
                let delegate = self.locate()?;
                let theirs = delegate.supported_versions(CniVersion::LATEST, &self.cni_path, budget.next()).await?;
                tracing::debug!(plugin = %self.plugin, supported = ?theirs, "delegate versions");
                Ok::<_, IpamError>((delegate, theirs))
            })
            .await
    }

    /// The delegate and the highest version both sides speak.
    async fn version(&self, budget: Budget) -> Result<(&Delegate, CniVersion), IpamError> {
        let (delegate, theirs) = self.negotiated(budget).await?;
        Ok((delegate, delegate.common_version(theirs)?))
    }

    /// IPAM ADD: the delegate's result, converted to 1.1.0 form.
    pub async fn add(&self, env: &DelegateEnv, budget: Budget) -> Result<CniResult, IpamError> {
        let (delegate, version) = self.version(budget).await?;
        let stdin = delegated_config(&self.config, version, None).to_string();
        let out = delegate.run("ADD", env, stdin.as_bytes(), budget.next()).await?;
        let doc: Value = serde_json::from_slice(&out).map_err(|e| IpamError::NotJson {
            plugin: self.plugin.clone(),
            command: "ADD",
            problem: e.to_string(),
        })?;
        let result = CniResult::from_json(&doc).map_err(|source| IpamError::BadResult {
            plugin: self.plugin.clone(),
            command: "ADD",
            source,
        })?;
        tracing::info!(plugin = %self.plugin, version = %version, ips = result.ips.len(), "IPAM ADD");
        Ok(result)
    }

    /// IPAM DEL: releases what ADD allocated; a delegate treats an unknown attachment as done.
    pub async fn del(&self, env: &DelegateEnv, budget: Budget) -> Result<(), IpamError> {
        let (delegate, version) = self.version(budget).await?;
        let stdin = delegated_config(&self.config, version, None).to_string();
        delegate.run("DEL", env, stdin.as_bytes(), budget.next()).await?;
        tracing::info!(plugin = %self.plugin, version = %version, "IPAM DEL");
        Ok(())
    }

    /// IPAM CHECK with the runtime's `prevResult`, when the shared version defines CHECK (0.4.0+).
    pub async fn check(&self, env: &DelegateEnv, prev_result: Option<&Value>, budget: Budget) -> Result<(), IpamError> {
        let (delegate, version) = self.version(budget).await?;
        if version < CniVersion::V040 {
            tracing::debug!(plugin = %self.plugin, version = %version, "IPAM CHECK skipped: not defined below 0.4.0");
            return Ok(());
        }
        let stdin = delegated_config(&self.config, version, prev_result).to_string();
        delegate.run("CHECK", env, stdin.as_bytes(), budget.next()).await?;
        Ok(())
    }

    /// Whether the delegate advertises 1.1.0, the version that defines GC and STATUS (§3.3:
    /// forward them only then; Debian's host-local 1.1.1 stops at 1.0.0).
    async fn speaks_1_1(&self, budget: Budget) -> Result<Option<&Delegate>, IpamError> {
        let (delegate, theirs) = self.negotiated(budget).await?;
        Ok(theirs.iter().any(|v| v == CniVersion::V110.as_str()).then_some(delegate))
    }

    /// Forward GC (the config carries `cni.dev/valid-attachments`) to a 1.1.0 delegate.
    pub async fn gc(&self, budget: Budget) -> Result<(), IpamError> {
        let Some(delegate) = self.speaks_1_1(budget).await? else {
            tracing::debug!(plugin = %self.plugin, "IPAM GC not forwarded: the delegate does not speak 1.1.0");
            return Ok(());
        };
        let stdin = delegated_config(&self.config, CniVersion::V110, None).to_string();
        delegate.run("GC", &self.env_network(), stdin.as_bytes(), budget.next()).await?;
        Ok(())
    }

    /// STATUS: a delegate that cannot be found or asked is code 50; a 1.1.0 delegate answers itself.
    pub async fn status(&self, budget: Budget) -> Result<(), IpamError> {
        // new() validated the type, so any failure here means the plugin cannot be run or asked.
        let delegate = match self.speaks_1_1(budget).await {
            Ok(d) => d,
            Err(e) => return Err(IpamError::Unavailable { reason: e.to_string() }),
        };
        let Some(delegate) = delegate else { return Ok(()) };
        let stdin = delegated_config(&self.config, CniVersion::V110, None).to_string();
        delegate.run("STATUS", &self.env_network(), stdin.as_bytes(), budget.next()).await?;
        Ok(())
    }

    /// DEL with no record (ADD never created one, or an upstream plugin made the attachment):
    /// release whatever the delegate holds for it. This clean-up must stay harmless (DEL never
    /// fails for lack of state): only "try again later" is reported, so a delegate that timed out
    /// is retried; a refusal (a config no ADD could have run with, say a bad subnet) is logged.
    pub async fn del_without_record(&self, env: &DelegateEnv, budget: Budget) -> Result<(), CniError> {
        match self.del(env, budget).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = CniError::from(e);
                if e.code == codes::TRY_AGAIN_LATER {
                    return Err(e);
                }
                tracing::warn!(error = %e, "DEL without a record: IPAM DEL failed; nothing of ours to keep, ignored");
                Ok(())
            }
        }
    }

    /// GC's forwarding, with the same leniency: a plugin that is missing or speaks no shared
    /// version holds no lease of this network we could free.
    pub async fn gc_lenient(&self, budget: Budget) -> Result<(), CniError> {
        match self.gc(budget).await {
            Ok(()) => Ok(()),
            Err(e) if e.delegate_never_ran() => {
                tracing::warn!(error = %e, "GC: not forwarded to the IPAM plugin");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Step for IpamStep {
    fn name(&self) -> &'static str {
        crate::plan::stages::IPAM
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let budget = ctx.budget();
        let env = self.env_for(&ctx.attachment.id, ctx.attachment.netns.as_deref());
        // Nothing reached the delegate yet: no undo needed (and a DEL would fail the same way).
        if let Err(e) = self.version(budget).await {
            return Err(ctx.fail_unchanged(e.into()));
        }
        match self.add(&env, budget).await {
            Ok(result) => {
                ctx.outputs.ipam = Some(result.to_json(CniVersion::LATEST));
                Ok(())
            }
            Err(e @ IpamError::Delegate(DelegateError::Reported { .. })) => {
                // The delegate said no. The spec still wants a DEL after a failed ADD, but a
                // delegate that refused the config (a bad subnet) refuses its DEL too, and an
                // undo error would keep our record for nothing: release here, best effort.
                if let Err(del) = self.del(&env, budget).await {
                    tracing::warn!(error = %del, "IPAM DEL after a failed IPAM ADD failed");
                }
                Err(ctx.fail_unchanged(e.into()))
            }
            // A timeout or a crash may have left a lease: the executor's undo runs DEL.
            Err(e) => Err(e.into()),
        }
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let budget = ctx.budget();
        let env = self.env_for(&ctx.attachment.id, ctx.attachment.netns.as_deref());
        self.del(&env, budget).await?;
        // A host-local killed with us mid-ADD may have left an ownerless (empty) lease that its
        // DEL cannot match; found by tests/crash.rs's timed kills.
        if self.plugin == "host-local" {
            super::host_local::release_torn_leases(&self.config, budget.next()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_ipam_and_an_empty_object_mean_no_delegate() {
        assert_eq!(plugin_type(None).unwrap(), None);
        assert_eq!(plugin_type(Some(&json!({}))).unwrap(), None);
        assert_eq!(plugin_type(Some(&json!({"type": "host-local"}))).unwrap(), Some("host-local"));
    }

    #[test]
    fn settings_without_a_type_are_code_7() {
        for ipam in [json!({"subnet": "10.0.0.0/24"}), json!({"type": null, "subnet": "10.0.0.0/24"})] {
            let e = CniError::from(plugin_type(Some(&ipam)).unwrap_err());
            assert_eq!(e.code, codes::INVALID_NETCONF, "{ipam}");
            assert!(e.msg.contains("ipam.type is required"), "{}", e.msg);
        }
        let e = CniError::from(plugin_type(Some(&json!({"type": 5}))).unwrap_err());
        assert!(e.msg.contains("number 5"), "{}", e.msg);
    }

    #[test]
    fn a_path_as_type_is_refused_before_any_lookup() {
        let e = IpamStep::new(&json!({}), Some(&json!({"type": "/bin/sh"})), &[], None).unwrap_err();
        assert_eq!(CniError::from(e).code, codes::INVALID_NETCONF);
    }

    #[test]
    fn cni_args_are_forwarded_from_the_parsed_pairs() {
        let args = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns;IP=10.0.0.5;FOO=bar").unwrap();
        assert_eq!(
            cni_args_text(&args).as_deref(),
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IP=10.0.0.5;FOO=bar")
        );
        assert_eq!(cni_args_text(&CniArgs::default()), None);
    }
}
