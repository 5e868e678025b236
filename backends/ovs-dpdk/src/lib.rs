//! The OVS-DPDK backend: vhost-user ports on a `datapath_type=netdev` bridge, driven through
//! OVSDB (RFC 7047) over ovsdb-server's unix socket. Never runs ovs-vsctl on the ADD/DEL path.

pub mod adopt;
pub mod config;
mod conn;
pub mod doctor;
pub mod lifecycle;
pub mod ovsdb;
pub mod repair;
pub mod settings;
pub mod steps;
pub mod tags;

use crate::config::OvsPlan;
use crate::conn::Conn;
use std::sync::Arc;
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{
    async_trait, Backend, BackendRegistration, CniError, ErrorList, NodeSettings, OwnedObject, PlanRequest, Planned,
    Repair, SocketDescriptor, SocketKind, Step, StepContext, TaggedObject, Typed, TypedBackend,
};

pub const ENGINE: &str = "ovs-dpdk";

pub struct OvsDpdkBackend;

#[async_trait]
impl TypedBackend for OvsDpdkBackend {
    type Plan = OvsPlan;

    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn object_noun(&self) -> &'static str {
        "port"
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<Planned<OvsPlan>, CniError> {
        let plan = config::plan(req)?;
        let socket = SocketDescriptor {
            kind: SocketKind::VhostUser,
            // Stated from the workload's side: OVS dpdkvhostuserclient → the workload serves.
            workload_mode: plan.host_mode.inverse().as_str().into(),
            memif_mode: None,
            host_path: plan.shared_socket.clone(),
            // The socket's file name, which is the port's unless a device plugin chose it.
            pod_path: req.shared_dir.pod.join(plan.shared_socket.file_name().unwrap_or(plan.port.as_ref())),
            mac: req.attachment.mac.clone(),
            mtu: plan.mtu,
        };
        Ok(Planned { plan, socket: Some(socket), uses_shared_dir: true })
    }

    fn steps(&self, plan: &OvsPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        let plan = plan.clone();
        let conn = Arc::new(Conn::default());
        let mut steps: Vec<Box<dyn Step>> = vec![
            Box::new(steps::BridgeStep { plan: plan.clone(), conn: conn.clone() }),
            Box::new(steps::PortStep::new(plan.clone(), conn)),
        ];
        if plan.host_mode == VhostMode::Server {
            steps.push(Box::new(steps::DeliverSocket { plan }));
        }
        Ok(steps)
    }

    async fn check(&self, ctx: &StepContext, plan: &OvsPlan) -> Result<(), CniError> {
        let wrong = lifecycle::check(&ctx.settings, &ctx.attachment.id, plan, ctx.wait_budget()).await?;
        let mut errors = ErrorList::default();
        for w in wrong {
            errors.push(w.into());
        }
        errors.into_result()
    }

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
        lifecycle::list_owned(settings, network).await
    }

    async fn list_all_owned(&self, settings: &NodeSettings) -> Result<Option<Vec<TaggedObject>>, CniError> {
        lifecycle::list_all_owned(settings).await.map(Some)
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
        lifecycle::remove_owned(settings, obj).await
    }

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError> {
        lifecycle::status(settings).await
    }

    async fn doctor(&self, settings: &NodeSettings, required: bool) -> userspace_cni_api::Diagnosis {
        doctor::diagnose(settings, required).await
    }

    async fn adopt(
        &self,
        settings: &NodeSettings,
        attachment: &userspace_cni_api::Attachment,
        plan: &OvsPlan,
        legacy: &serde_json::Value,
        dry_run: bool,
    ) -> Result<userspace_cni_api::Adoption, CniError> {
        adopt::adopt(settings, attachment, plan, legacy, dry_run).await
    }

    async fn repair(&self, ctx: &mut StepContext, plan: &OvsPlan) -> Result<Repair, CniError> {
        let group = ctx.shared_dir.as_ref().and_then(|d| d.group.clone());
        let access = repair::socket_access(plan, group.as_deref())?;
        repair::repair(ctx, plan, &access).await
    }
}

fn make() -> Box<dyn Backend> {
    Box::new(Typed(OvsDpdkBackend))
}

userspace_cni_api::inventory::submit! {
    BackendRegistration {
        engine: ENGINE,
        description: "OVS-DPDK: vhost-user ports on an OVS netdev bridge (OVSDB over the unix socket)",
        make,
        settings: settings::SETTINGS,
    }
}
