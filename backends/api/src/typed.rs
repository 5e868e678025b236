//! A backend written against its own plan type. `Backend` must stay object-safe (the registry
//! holds `Box<dyn Backend>`), so its plan is JSON; a backend implements `TypedBackend` with an
//! associated `Plan` instead, and `Typed` adapts it: the plan is encoded once when planned and
//! decoded in one place when a record is read back, with one error (code 6) naming the engine.

use crate::attachment::{Attachment, AttachmentId, SocketDescriptor};
use crate::backend::{Adoption, Backend, BackendPlan, OwnedObject, PlanRequest, Repair, TaggedObject};
use crate::error::{codes, CniError};
use crate::settings::NodeSettings;
use crate::step::{Step, StepContext};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What `TypedBackend::plan` returns: the backend's own plan, and what the generic code reads
/// of it (see `BackendPlan`).
#[derive(Debug, Clone)]
pub struct Planned<P> {
    pub plan: P,
    pub socket: Option<SocketDescriptor>,
    pub uses_shared_dir: bool,
}

/// `Backend` with a typed plan; the methods mean what `Backend`'s of the same name mean. Records
/// outlive upgrades, so `Plan` must decode every plan an older version of the backend wrote
/// (`#[serde(default)]` on added fields).
#[async_trait]
pub trait TypedBackend: Send + Sync + 'static {
    type Plan: Serialize + DeserializeOwned + Send + Sync;

    fn engine(&self) -> &'static str;

    fn object_noun(&self) -> &'static str {
        "interface"
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<Planned<Self::Plan>, CniError>;

    fn steps(&self, plan: &Self::Plan) -> Result<Vec<Box<dyn Step>>, CniError>;

    async fn check(&self, ctx: &StepContext, plan: &Self::Plan) -> Result<(), CniError>;

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError>;

    fn owned_by(&self, obj: &OwnedObject, id: &AttachmentId) -> bool {
        obj.id == *id
    }

    async fn list_all_owned(&self, _settings: &NodeSettings) -> Result<Option<Vec<TaggedObject>>, CniError> {
        Ok(None)
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError>;

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError>;

    async fn doctor(&self, _settings: &NodeSettings, _required: bool) -> crate::diagnosis::Diagnosis {
        crate::diagnosis::Diagnosis::default()
    }

    async fn repair(&self, _ctx: &mut StepContext, _plan: &Self::Plan) -> Result<Repair, CniError> {
        Ok(Repair::Healthy)
    }

    async fn adopt(
        &self,
        _settings: &NodeSettings,
        _attachment: &Attachment,
        _plan: &Self::Plan,
        _legacy: &serde_json::Value,
        _dry_run: bool,
    ) -> Result<Adoption, CniError> {
        Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            format!("engine {} cannot adopt objects created by the upstream plugin", self.engine()),
        ))
    }
}

/// A `TypedBackend` as a `Backend`: register `Box::new(Typed(MyBackend))`.
pub struct Typed<B>(pub B);

impl<B: TypedBackend> Typed<B> {
    /// The backend's plan from a record. A record is ours, but may be another version's or
    /// damaged: code 6 (DECODE_FAILURE), naming the engine, never a panic.
    pub fn decode(&self, plan: &BackendPlan) -> Result<B::Plan, CniError> {
        B::Plan::deserialize(&plan.data).map_err(|e| {
            CniError::new(codes::DECODE_FAILURE, format!("{} plan in the attachment record: {e}", self.0.engine()))
        })
    }
}

#[async_trait]
impl<B: TypedBackend> Backend for Typed<B> {
    fn engine(&self) -> &'static str {
        self.0.engine()
    }

    fn object_noun(&self) -> &'static str {
        self.0.object_noun()
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<BackendPlan, CniError> {
        let planned = self.0.plan(req)?;
        let data = serde_json::to_value(&planned.plan)
            .map_err(|e| CniError::io(format!("{} plan cannot be recorded: {e}", self.0.engine())))?;
        Ok(BackendPlan { data, socket: planned.socket, uses_shared_dir: planned.uses_shared_dir })
    }

    fn steps(&self, plan: &BackendPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        self.0.steps(&self.decode(plan)?)
    }

    async fn check(&self, ctx: &StepContext, plan: &BackendPlan) -> Result<(), CniError> {
        self.0.check(ctx, &self.decode(plan)?).await
    }

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
        self.0.list_owned(settings, network).await
    }

    fn owned_by(&self, obj: &OwnedObject, id: &AttachmentId) -> bool {
        self.0.owned_by(obj, id)
    }

    async fn list_all_owned(&self, settings: &NodeSettings) -> Result<Option<Vec<TaggedObject>>, CniError> {
        self.0.list_all_owned(settings).await
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
        self.0.remove_owned(settings, obj).await
    }

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError> {
        self.0.status(settings).await
    }

    async fn doctor(&self, settings: &NodeSettings, required: bool) -> crate::diagnosis::Diagnosis {
        self.0.doctor(settings, required).await
    }

    async fn repair(&self, ctx: &mut StepContext, plan: &BackendPlan) -> Result<Repair, CniError> {
        let p = self.decode(plan)?;
        self.0.repair(ctx, &p).await
    }

    async fn adopt(
        &self,
        settings: &NodeSettings,
        attachment: &Attachment,
        plan: &BackendPlan,
        legacy: &serde_json::Value,
        dry_run: bool,
    ) -> Result<Adoption, CniError> {
        let p = self.decode(plan)?;
        self.0.adopt(settings, attachment, &p, legacy, dry_run).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plan {
        port: String,
        #[serde(default)]
        mtu: Option<u32>,
    }

    struct Minimal;

    #[async_trait]
    impl TypedBackend for Minimal {
        type Plan = Plan;
        fn engine(&self) -> &'static str {
            "minimal"
        }
        fn plan(&self, _req: &PlanRequest<'_>) -> Result<Planned<Plan>, CniError> {
            Err(CniError::io("not used"))
        }
        fn steps(&self, plan: &Plan) -> Result<Vec<Box<dyn Step>>, CniError> {
            if plan.port.is_empty() {
                return Err(CniError::invalid_config("empty port"));
            }
            Ok(Vec::new())
        }
        async fn check(&self, _ctx: &StepContext, _plan: &Plan) -> Result<(), CniError> {
            Ok(())
        }
        async fn list_owned(&self, _s: &NodeSettings, _n: &str) -> Result<Vec<OwnedObject>, CniError> {
            Ok(Vec::new())
        }
        async fn remove_owned(&self, _s: &NodeSettings, _o: &OwnedObject) -> Result<(), CniError> {
            Ok(())
        }
        async fn status(&self, _s: &NodeSettings) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn record(data: serde_json::Value) -> BackendPlan {
        BackendPlan { data, socket: None, uses_shared_dir: false }
    }

    #[test]
    fn an_older_plan_decodes_with_defaults() {
        let p = Typed(Minimal).decode(&record(serde_json::json!({"port": "p1"}))).expect("decodes");
        assert_eq!(p, Plan { port: "p1".into(), mtu: None });
        assert!(Typed(Minimal).steps(&record(serde_json::json!({"port": "p1"}))).is_ok());
    }

    #[test]
    fn a_damaged_plan_is_code_6_naming_the_engine() {
        for data in [serde_json::json!(null), serde_json::json!({"port": 7}), serde_json::json!([1, 2])] {
            let e = Typed(Minimal).steps(&record(data.clone())).err().expect("refused");
            assert_eq!(e.code, codes::DECODE_FAILURE, "{data}");
            assert!(e.msg.starts_with("minimal plan in the attachment record"), "{}", e.msg);
        }
    }

    #[test]
    fn the_adapter_keeps_the_defaults_of_backend() {
        let b: Box<dyn Backend> = Box::new(Typed(Minimal));
        assert_eq!(b.engine(), "minimal");
        assert_eq!(b.object_noun(), "interface");
        let id = AttachmentId::new("c", "eth0");
        let obj = OwnedObject { id: id.clone(), network: "n".into(), kind: "port".into(), name: "p".into() };
        assert!(b.owned_by(&obj, &id));
    }

    #[tokio::test]
    async fn a_backend_without_doctor_checks_reports_nothing_and_no_dataplane() {
        let b: Box<dyn Backend> = Box::new(Typed(Minimal));
        let d = b.doctor(&NodeSettings::default(), true).await;
        assert_eq!(d, crate::diagnosis::Diagnosis::default());
    }
}
