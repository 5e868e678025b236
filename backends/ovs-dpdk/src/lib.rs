//! The OVS-DPDK backend: vhost-user ports on a `datapath_type=netdev` bridge, driven through
//! OVSDB (RFC 7047) over ovsdb-server's unix socket. Never runs ovs-vsctl on the ADD/DEL path.

pub mod config;
mod conn;
pub mod ovsdb;
pub mod steps;
pub mod tags;

use crate::config::OvsPlan;
use crate::conn::{ovs_err, Conn};
use crate::ovsdb::datum::{as_integer, as_set, as_string, as_string_map, as_uuid, column, set};
use crate::ovsdb::{Condition, Mutation, Op, OPEN_VSWITCH_DB};
use backend_api::spec::VhostMode;
use backend_api::{
    async_trait, codes, AttachmentId, Backend, BackendPlan, BackendRegistration, CniError, NodeSettings, OwnedObject,
    PlanRequest, SocketDescriptor, SocketKind, Step, StepContext,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const ENGINE: &str = "ovs-dpdk";

pub struct OvsDpdkBackend;

fn decode_plan(plan: &BackendPlan) -> Result<OvsPlan, CniError> {
    serde_json::from_value(plan.data.clone())
        .map_err(|e| CniError::new(codes::DECODE_FAILURE, format!("ovs-dpdk plan in the attachment record: {e}")))
}

#[async_trait]
impl Backend for OvsDpdkBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<BackendPlan, CniError> {
        let plan = config::plan(req)?;
        let socket = SocketDescriptor {
            kind: SocketKind::VhostUser,
            // Stated from the workload's side: OVS dpdkvhostuserclient → the workload serves.
            workload_mode: plan.host_mode.inverse().as_str().into(),
            memif_mode: None,
            host_path: plan.shared_socket.clone(),
            pod_path: req.shared_dir.pod.join(&plan.port),
            mac: req.attachment.mac.clone(),
            mtu: plan.mtu,
        };
        Ok(BackendPlan {
            data: serde_json::to_value(&plan).map_err(|e| CniError::io(e.to_string()))?,
            socket: Some(socket),
            uses_shared_dir: true,
        })
    }

    fn steps(&self, plan: &BackendPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        let plan = decode_plan(plan)?;
        let conn = Arc::new(Conn::default());
        let mut steps: Vec<Box<dyn Step>> = vec![
            Box::new(steps::BridgeStep { plan: plan.clone(), conn: conn.clone() }),
            Box::new(steps::PortStep { plan: plan.clone(), conn }),
        ];
        if plan.host_mode == VhostMode::Server {
            steps.push(Box::new(steps::DeliverSocket { plan }));
        }
        Ok(steps)
    }

    async fn check(&self, ctx: &StepContext, plan: &BackendPlan) -> Result<(), CniError> {
        let p = decode_plan(plan)?;
        let mut client = conn::connect(&ctx.settings, ctx.wait_budget()).await?;
        let r = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![
                    Op::select(
                        "Interface",
                        vec![Condition::eq("name", json!(p.port))],
                        &["type", "options", "error", "ofport", "external_ids"],
                    ),
                    Op::select("Port", vec![Condition::eq("name", json!(p.port))], &["_uuid"]),
                ],
            )
            .await
            .map_err(ovs_err("CHECK"))?;
        let iface = r
            .first()
            .and_then(|r| r.rows().first())
            .ok_or_else(|| CniError::io(format!("OVS port {} is missing (expected on bridge {})", p.port, p.bridge)))?;
        let ids = as_string_map(column(iface, "external_ids")?)?;
        let id = &ctx.attachment.id;
        if !tags::is_attachment(&ids, &id.container_id, &id.ifname) {
            return Err(CniError::io(format!("OVS port {} does not carry this attachment's tags", p.port)));
        }
        let want = if p.host_mode == VhostMode::Server { "dpdkvhostuser" } else { "dpdkvhostuserclient" };
        let ty = as_string(column(iface, "type")?)?;
        if ty != want {
            return Err(CniError::io(format!("OVS port {} has type {ty}, expected {want}", p.port)));
        }
        if p.host_mode == VhostMode::Client {
            let opts = as_string_map(column(iface, "options")?)?;
            let want_path = p.shared_socket.to_string_lossy();
            if opts.get("vhost-server-path").map(String::as_str) != Some(want_path.as_ref()) {
                return Err(CniError::io(format!(
                    "OVS port {} has vhost-server-path {:?}, expected {want_path}",
                    p.port,
                    opts.get("vhost-server-path")
                )));
            }
        }
        let errors: Vec<String> =
            as_set(column(iface, "error")?)?.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        if let Some(e) = errors.first() {
            return Err(CniError::io(format!("OVS port {} reports an error: {e}", p.port)));
        }
        let ofport: Vec<i64> =
            as_set(column(iface, "ofport")?)?.into_iter().filter_map(|v| as_integer(v).ok()).collect();
        if ofport.first().is_none_or(|n| *n <= 0) {
            return Err(CniError::io(format!("OVS port {} has no valid ofport ({ofport:?})", p.port)));
        }
        let port_uuid = r
            .get(1)
            .and_then(|r| r.rows().first())
            .map(|row| column(row, "_uuid").and_then(as_uuid))
            .transpose()?
            .ok_or_else(|| CniError::io(format!("OVS port row {} is missing", p.port)))?;
        let on_bridge = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![Op::select(
                    "Bridge",
                    vec![
                        Condition::eq("name", json!(p.bridge)),
                        Condition::includes("ports", set([port_uuid.to_json()])),
                    ],
                    &["name"],
                )],
            )
            .await
            .map_err(ovs_err("CHECK"))?;
        if on_bridge.first().map(|r| r.rows().len()) != Some(1) {
            return Err(CniError::io(format!("OVS port {} is not on bridge {}", p.port, p.bridge)));
        }
        Ok(())
    }

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
        let mut client = conn::connect(settings, settings.timeout()).await?;
        let r = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![Op::select(
                    "Port",
                    vec![Condition::includes(
                        "external_ids",
                        ovsdb::datum::string_map([(tags::OWNER_KEY, tags::OWNER), (tags::NETWORK, network)]),
                    )],
                    &["name", "external_ids"],
                )],
            )
            .await
            .map_err(ovs_err("listing our ports"))?;
        let mut out = Vec::new();
        for row in r.first().map(|r| r.rows()).unwrap_or_default() {
            let ids = as_string_map(column(row, "external_ids")?)?;
            let (Some(cid), Some(ifname)) = (ids.get(tags::CONTAINER_ID), ids.get(tags::IFNAME)) else { continue };
            out.push(OwnedObject {
                id: AttachmentId::new(cid.clone(), ifname.clone()),
                network: network.to_owned(),
                kind: "port".into(),
                name: as_string(column(row, "name")?)?,
            });
        }
        Ok(out)
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
        let mut client = conn::connect(settings, settings.timeout()).await?;
        let r = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![Op::select("Port", vec![Condition::eq("name", json!(obj.name))], &["_uuid", "external_ids"])],
            )
            .await
            .map_err(ovs_err("GC"))?;
        let Some(row) = r.first().and_then(|r| r.rows().first()) else { return Ok(()) };
        let ids = as_string_map(column(row, "external_ids")?)?;
        if !tags::is_attachment(&ids, &obj.id.container_id, &obj.id.ifname) {
            return Ok(());
        }
        let uuid = as_uuid(column(row, "_uuid")?)?.to_json();
        client
            .transact(
                OPEN_VSWITCH_DB,
                vec![Op::mutate(
                    "Bridge",
                    vec![Condition::includes("ports", set([uuid.clone()]))],
                    vec![Mutation::delete("ports", set([uuid]))],
                )],
            )
            .await
            .map_err(ovs_err("GC: deleting the port"))?;
        Ok(())
    }

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError> {
        let unavailable = |why: String| CniError::new(codes::NOT_AVAILABLE, why);
        let mut client = conn::connect(settings, settings.timeout())
            .await
            .map_err(|e| unavailable(format!("OVSDB at {} is not reachable: {}", settings.ovsdb, e.msg)))?;
        let r = client
            .transact(OPEN_VSWITCH_DB, vec![Op::select("Open_vSwitch", vec![], &["dpdk_initialized"])])
            .await
            .map_err(|e| unavailable(format!("OVSDB does not answer: {e}")))?;
        let init = r
            .first()
            .and_then(|r| r.rows().first())
            .and_then(|row| row.get("dpdk_initialized"))
            .and_then(|v| v.as_bool());
        if init != Some(true) {
            return Err(unavailable(
                "ovs-vswitchd has not initialised DPDK (set other_config:dpdk-init=true and check that ovs-vswitchd-dpdk runs)".into(),
            ));
        }
        // An empty transaction that vswitchd must acknowledge proves it is alive.
        client
            .transact_and_wait(OPEN_VSWITCH_DB, vec![], settings.timeout().min(Duration::from_secs(3)))
            .await
            .map_err(|e| unavailable(format!("ovs-vswitchd is not applying changes: {e}")))?;
        Ok(())
    }
}

fn make() -> Box<dyn Backend> {
    Box::new(OvsDpdkBackend)
}

backend_api::inventory::submit! {
    BackendRegistration {
        engine: ENGINE,
        description: "OVS-DPDK: vhost-user ports on an OVS netdev bridge (OVSDB over the unix socket)",
        make,
    }
}
