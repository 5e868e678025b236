//! The OVS-DPDK steps: ensure the bridge, create the vhost-user port on it (one transaction,
//! then wait for ovs-vswitchd and read `Interface.error`/`ofport`), and, in server mode, deliver
//! the socket OVS created into the pod's shared dir. Undo works from the plan and the tags.

use crate::config::OvsPlan;
use crate::conn::{ovs_err, Conn, SeenBridge};
use crate::ovsdb::datum::{
    as_integer, as_set, as_string, as_string_map, as_uuid, column, empty_set, map, named_uuid, set, string_map,
};
use crate::ovsdb::{row, Condition, Mutation, Op, OpResult, OvsdbError, Row, WaitUntil, OPEN_VSWITCH_DB};
use crate::tags;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use userspace_cni_api::failpoint::{self, Phase};
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{async_trait, codes, CniError, HostInterface, NodeSettings, Step, StepContext};
use userspace_cni_support::confine::{self, Dir, Kind, Removal};

pub const BRIDGE: &str = "bridge";
pub const PORT: &str = "vhost-port";
pub const DELIVER: &str = "deliver-socket";

fn first_row(results: &[OpResult], i: usize) -> Option<&Row> {
    results.get(i).and_then(|r| r.rows().first())
}

/// `Bridge` row by name: `(uuid, datapath_type, external_ids, port uuids)`.
pub async fn find_bridge(
    client: &mut crate::ovsdb::OvsdbClient,
    name: &str,
) -> Result<Option<(Value, String, std::collections::BTreeMap<String, String>, usize)>, CniError> {
    let r =
        client.transact(OPEN_VSWITCH_DB, vec![select_bridge(name)]).await.map_err(ovs_err("looking up the bridge"))?;
    first_row(&r, 0).map(bridge_of_row).transpose()
}

/// A selected `Bridge` row (columns `_uuid`, `datapath_type`, `external_ids`, `ports`).
fn bridge_of_row(row: &Row) -> Result<(Value, String, std::collections::BTreeMap<String, String>, usize), CniError> {
    let uuid = as_uuid(column(row, "_uuid")?)?.to_json();
    let dp = as_string(column(row, "datapath_type")?).unwrap_or_default();
    let ids = as_string_map(column(row, "external_ids")?)?;
    let ports = as_set(column(row, "ports")?)?.len();
    Ok((uuid, dp, ids, ports))
}

/// The `select` that [`bridge_of_row`] decodes.
fn select_bridge(name: &str) -> Op {
    Op::select("Bridge", vec![Condition::eq("name", json!(name))], &["_uuid", "datapath_type", "external_ids", "ports"])
}

/// Delete a bridge only if we created it and no port is left, in one transaction whose leading
/// `wait` aborts if a port was attached meanwhile. An administrator's bridge is never touched.
/// Shared by the bridge step's undo and GC. `why` goes into OVSDB's log with the transaction.
pub async fn delete_bridge_if_unused(
    client: &mut crate::ovsdb::OvsdbClient,
    name: &str,
    why: &str,
) -> Result<(), CniError> {
    let Some((uuid, _, ids, ports)) = find_bridge(client, name).await? else { return Ok(()) };
    delete_bridge_seen_unused(client, name, why, uuid, &ids, ports).await
}

/// [`delete_bridge_if_unused`] for a bridge already read (`uuid`, its tags, its port count).
async fn delete_bridge_seen_unused(
    client: &mut crate::ovsdb::OvsdbClient,
    name: &str,
    why: &str,
    uuid: Value,
    ids: &std::collections::BTreeMap<String, String>,
    ports: usize,
) -> Result<(), CniError> {
    if !tags::is_ours(ids) || ports > 0 {
        return Ok(());
    }
    let ops = vec![
        Op::wait(
            "Bridge",
            vec![Condition::eq("name", json!(name))],
            &["ports"],
            WaitUntil::Equal,
            vec![row([("ports", empty_set())])],
            Duration::ZERO,
        ),
        Op::mutate("Open_vSwitch", vec![], vec![Mutation::delete("bridges", set([uuid]))]),
        Op::comment(format!("userspace-cni: {why} {name}")),
    ];
    match client.transact(OPEN_VSWITCH_DB, ops).await {
        Ok(_) => Ok(()),
        // The wait failed: a port was attached in between, so the bridge stays.
        Err(crate::ovsdb::OvsdbError::Transaction { op_index: 0, .. }) => Ok(()),
        Err(e) => Err(ovs_err("deleting the bridge")(e)),
    }
}

pub struct BridgeStep {
    pub plan: OvsPlan,
    pub conn: Arc<Conn>,
}

#[async_trait]
impl Step for BridgeStep {
    fn name(&self) -> &'static str {
        BRIDGE
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let mut g = match self.conn.get(&ctx.settings, ctx.wait_budget()).await {
            Ok(g) => g,
            Err(e) => return Err(ctx.fail_unchanged(e)),
        };
        let client = g.client();
        let name = &self.plan.bridge;
        let existing = match find_bridge(client, name).await {
            Ok(b) => b,
            Err(e) => {
                drop(g);
                return Err(ctx.fail_unchanged(e));
            }
        };
        match existing {
            Some((_, dp, _, _)) if dp == "netdev" => return Ok(()),
            Some((_, dp, _, _)) => {
                let dp = if dp.is_empty() { "system (the default)".to_owned() } else { dp };
                drop(g);
                return Err(ctx.fail_unchanged(CniError::new(
                    codes::OWNED_BY_OTHER,
                    format!(
                        "bridge {name} exists with datapath_type={dp}; userspace (vhost-user) ports need a \
                         datapath_type=netdev bridge: choose another bridge.bridgeName or recreate {name} with \
                         datapath_type=netdev"
                    ),
                )));
            }
            None => {}
        }
        let ops = vec![
            Op::comment(format!("userspace-cni: create bridge {name} for {}", ctx.attachment.network)),
            Op::insert_named(
                "Bridge",
                "br",
                row([
                    ("name", json!(name)),
                    ("datapath_type", json!("netdev")),
                    (
                        "external_ids",
                        tags::to_ovs_map(&tags::bridge_tags(&ctx.attachment, ctx.settings.current_boot_id())),
                    ),
                ]),
            ),
            Op::mutate("Open_vSwitch", vec![], vec![Mutation::insert("bridges", set([named_uuid("br")]))]),
        ];
        let r = client.transact(OPEN_VSWITCH_DB, ops).await.map_err(ovs_err("creating the bridge"));
        drop(g);
        if let Err(e) = r {
            self.conn.reset().await;
            return Err(e);
        }
        ctx.outputs.values.insert(BRIDGE.into(), json!({"created": true}));
        failpoint::hit(BRIDGE, Phase::During)
    }

    /// Delete the bridge only if we created it and no port is left, in one transaction whose
    /// `wait` fails if a port was attached meanwhile. An administrator's bridge is never touched.
    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let why = "delete unused bridge";
        let name = &self.plan.bridge;
        // The port's removal just read the bridge in its own transaction: in use, an
        // administrator's or gone needs no second look. Deleting still goes through the `wait`.
        if let Some(seen) = self.conn.take_seen_bridge(name) {
            let Some((uuid, ids, ports)) = seen.row else { return Ok(()) };
            if !tags::is_ours(&ids) || ports > 0 {
                return Ok(());
            }
            let mut g = self.conn.get(&ctx.settings, ctx.wait_budget()).await?;
            return delete_bridge_seen_unused(g.client(), name, why, uuid, &ids, ports).await;
        }
        let mut g = self.conn.get(&ctx.settings, ctx.wait_budget()).await?;
        delete_bridge_if_unused(g.client(), name, why).await
    }
}

pub struct PortStep {
    pub plan: OvsPlan,
    pub conn: Arc<Conn>,
    /// The `next_cfg` that `apply`'s commit produced, for `settle` to wait for.
    committed: std::sync::Mutex<Option<i64>>,
}

impl PortStep {
    pub fn new(plan: OvsPlan, conn: Arc<Conn>) -> PortStep {
        PortStep { plan, conn, committed: std::sync::Mutex::new(None) }
    }

    fn interface_row(&self, ctx: &StepContext) -> Row {
        let p = &self.plan;
        let (ty, options) = match p.host_mode {
            VhostMode::Server => ("dpdkvhostuser", empty_map()),
            VhostMode::Client => {
                ("dpdkvhostuserclient", string_map([("vhost-server-path", p.shared_socket.to_string_lossy().as_ref())]))
            }
        };
        let mut r = row([
            ("name", json!(p.port)),
            ("type", json!(ty)),
            ("options", options),
            ("external_ids", tags::to_ovs_map(&tags::port_tags(&ctx.attachment, ctx.settings.current_boot_id()))),
        ]);
        if let Some(mtu) = p.mtu {
            r.insert("mtu_request".into(), json!(mtu));
        }
        if let Some(pol) = p.policing {
            r.insert("ingress_policing_rate".into(), json!(pol.rate));
            r.insert("ingress_policing_burst".into(), json!(pol.burst));
        }
        r
    }

    fn port_row(&self, ctx: &StepContext) -> Row {
        let p = &self.plan;
        let mut r = row([
            ("name", json!(p.port)),
            ("interfaces", set([named_uuid("iface")])),
            ("external_ids", tags::to_ovs_map(&tags::port_tags(&ctx.attachment, ctx.settings.current_boot_id()))),
        ]);
        if let Some(tag) = p.vlan {
            r.insert("tag".into(), json!(tag));
        }
        if !p.trunks.is_empty() {
            r.insert("trunks".into(), set(p.trunks.iter().map(|t| json!(t))));
        }
        r
    }
}

fn empty_map() -> Value {
    json!(["map", []])
}

#[async_trait]
impl Step for PortStep {
    fn name(&self) -> &'static str {
        PORT
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let r = self.apply_inner(ctx).await;
        if r.as_ref().is_err_and(|e| e.code == codes::TRY_AGAIN_LATER || e.code == codes::IO_FAILURE) {
            self.conn.reset().await;
        }
        r
    }

    /// Outside the node lock: wait for ovs-vswitchd to apply the commit, then the port must be
    /// up without error and have an `ofport`.
    async fn settle(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let r = self.settle_inner(ctx).await;
        if r.as_ref().is_err_and(|e| e.code == codes::TRY_AGAIN_LATER || e.code == codes::IO_FAILURE) {
            self.conn.reset().await;
        }
        r
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let mut g = self.conn.get(&ctx.settings, ctx.wait_budget()).await?;
        let client = g.client();
        let name = &self.plan.port;
        let id = &ctx.attachment.id;
        if let Some(uuid) = recorded_port_uuid(ctx) {
            // One round trip: the `wait` proves the row is still this attachment's port (same
            // uuid, name and tags), the mutate removes it, the select reads the bridge as left.
            let ours = map([(tags::CONTAINER_ID, id.container_id.as_str()), (tags::IFNAME, id.ifname.as_str())]);
            let ops = vec![
                Op::wait(
                    "Port",
                    vec![
                        Condition::eq("_uuid", uuid.to_json()),
                        Condition::eq("name", json!(name)),
                        Condition::includes("external_ids", ours),
                    ],
                    &["name"],
                    WaitUntil::Equal,
                    vec![row([("name", json!(name))])],
                    Duration::ZERO,
                ),
                Op::mutate(
                    "Bridge",
                    vec![Condition::includes("ports", set([uuid.to_json()]))],
                    vec![Mutation::delete("ports", set([uuid.to_json()]))],
                ),
                select_bridge(&self.plan.bridge),
                Op::comment(format!("userspace-cni: delete port {name} of {}/{}", id.container_id, id.ifname)),
            ];
            match client.transact(OPEN_VSWITCH_DB, ops).await {
                Ok(res) => {
                    let row = first_row(&res, 2).map(bridge_of_row).transpose()?;
                    self.conn.saw_bridge(SeenBridge {
                        name: self.plan.bridge.clone(),
                        row: row.map(|(uuid, _, ids, ports)| (uuid, ids, ports)),
                    });
                    return self.after_removal();
                }
                // Not (or no longer) that row: a repair re-created the port, or it is gone or
                // someone else's. The lookup by name below decides.
                Err(OvsdbError::Transaction { op_index: 0, .. }) => {}
                Err(e) => return Err(ovs_err("deleting the port")(e)),
            }
        }
        let r = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![Op::select("Port", vec![Condition::eq("name", json!(name))], &["_uuid", "external_ids"])],
            )
            .await
            .map_err(ovs_err("looking up the port"))?;
        let Some(row) = first_row(&r, 0) else { return Ok(()) };
        let ids = as_string_map(column(row, "external_ids")?)?;
        let id = &ctx.attachment.id;
        if !tags::is_attachment(&ids, &id.container_id, &id.ifname) {
            // Another container's (or an administrator's) port with the same name: not ours.
            tracing::debug!(port = %name, "port with this name is not ours; leaving it");
            return Ok(());
        }
        let uuid = as_uuid(column(row, "_uuid")?)?.to_json();
        // Deleting the Port row itself would violate Bridge.ports' strong reference; removing it
        // from the bridge lets OVSDB garbage-collect Port and Interface. DEL does not wait for
        // vswitchd (OVSDB is the truth).
        let ops = vec![
            Op::mutate(
                "Bridge",
                vec![Condition::includes("ports", set([uuid.clone()]))],
                vec![Mutation::delete("ports", set([uuid]))],
            ),
            Op::comment(format!("userspace-cni: delete port {name} of {}/{}", id.container_id, id.ifname)),
        ];
        client.transact(OPEN_VSWITCH_DB, ops).await.map_err(ovs_err("deleting the port"))?;
        self.after_removal()
    }
}

/// The `ofport` of an interface whose `error` is empty and whose `ofport` is valid.
fn healthy_ofport(ofport: &Value, error: &Value) -> Option<i64> {
    if !as_set(error).ok()?.is_empty() {
        return None;
    }
    let n = as_integer(as_set(ofport).ok()?.first()?).ok()?;
    (n > 0).then_some(n)
}

/// Record the port's `ofport` next to its row's uuid.
fn record_ofport(ctx: &mut StepContext, n: i64) {
    let entry = ctx.outputs.values.entry(PORT.into()).or_insert_with(|| json!({}));
    if let Some(o) = entry.as_object_mut() {
        o.insert("ofport".into(), json!(n));
    }
}

/// The port row's uuid that this attachment's ADD recorded, if any (records written before it
/// was recorded, and incomplete ones, have none).
fn recorded_port_uuid(ctx: &StepContext) -> Option<crate::ovsdb::datum::Uuid> {
    let v = ctx.outputs.values.get(PORT)?.get("uuid")?.as_str()?;
    crate::ovsdb::datum::Uuid::parse(v)
}

impl PortStep {
    /// Once the port is proven ours and removed from OVSDB.
    fn after_removal(&self) -> Result<(), CniError> {
        // Server mode: vswitchd unlinks its socket only when it gets round to applying the
        // deletion, and DEL does not wait for it; a socket never delivered (ADD rolled back
        // before delivery) would outlive the DEL. Remove it now; vswitchd tolerates that.
        // Only here, where the port is proven ours: a socket of that name is the one OVS made for it.
        if self.plan.host_mode == VhostMode::Server {
            remove_socket_in(&ovs_dir(&self.plan)?, &self.plan.port)?;
        }
        Ok(())
    }
}

/// Server mode: OVS will create `<vhost-sock-dir>/<port>`, and the port's undo removes it. A file
/// already there is not this port's (no port of that name exists): refuse, so undo never removes
/// another's file (docs/security.md).
fn precheck_socket_name(p: &OvsPlan) -> Result<(), CniError> {
    if p.host_mode != VhostMode::Server {
        return Ok(());
    }
    let Some(dir) = p.ovs_socket.parent() else { return Ok(()) };
    let present = Dir::root(dir).and_then(|d| d.entry(std::ffi::OsStr::new(&p.port)));
    match present {
        Ok(Some(e)) => Err(CniError::new(
            codes::NAME_COLLISION,
            format!(
                "{} already exists in OVS's vhost-sock-dir (a {}) and no OVS port of that name does; it is not \
                 this port's socket: choose another host.vhost.socketfile",
                p.ovs_socket.display(),
                e.kind.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// Remove `<dir>/<name>` if it is a socket; anything else there is left with a warning.
pub fn remove_socket_in(dir: &Dir, name: &str) -> Result<(), CniError> {
    let name = std::ffi::OsStr::new(name);
    let path = dir.path().join(name);
    match dir.remove_if(name, Kind::Socket) {
        Ok(Removal::Removed | Removal::Absent) => Ok(()),
        Ok(Removal::Left(kind)) => {
            tracing::warn!(path = %path.display(), kind = kind.as_str(), "expected a socket; left in place");
            Ok(())
        }
        Err(e) => Err(CniError::io(format!("cannot remove {}: {}", path.display(), confine::explain(&e)))),
    }
}

/// OVS's vhost-sock-dir (an operator's setting: symlinks in it are followed once).
fn ovs_dir(p: &OvsPlan) -> Result<Dir, CniError> {
    let dir = p.ovs_socket.parent().unwrap_or(Path::new("/"));
    Dir::root(dir).map_err(|e| CniError::io(format!("cannot open OVS's vhost-sock-dir {}: {e}", dir.display())))
}

impl PortStep {
    /// Why the port's name is not free (after the insert's `wait` found it taken): refuse a
    /// name another attachment or someone else holds, with a message that says which.
    async fn precheck(&self, ctx: &StepContext) -> Result<(), CniError> {
        let mut g = self.conn.get(&ctx.settings, ctx.wait_budget()).await?;
        let client = g.client();
        let p = &self.plan;
        let r = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![
                    Op::select("Port", vec![Condition::eq("name", json!(p.port))], &["external_ids"]),
                    Op::select("Interface", vec![Condition::eq("name", json!(p.port))], &["external_ids"]),
                ],
            )
            .await
            .map_err(ovs_err("looking up the port name"))?;
        let Some(existing) = first_row(&r, 0).or(first_row(&r, 1)) else { return Ok(()) };
        let ids = as_string_map(column(existing, "external_ids")?)?;
        Err(match ids.get(tags::CONTAINER_ID) {
            Some(cid) if tags::is_ours(&ids) => CniError::new(
                codes::NAME_COLLISION,
                format!(
                    "OVS port {} already exists for container {cid} (ifname {}); container ids that share \
                     their first 12 characters collide on the default name: set host.vhost.socketfile",
                    p.port,
                    ids.get(tags::IFNAME).map(String::as_str).unwrap_or("?")
                ),
            ),
            _ => CniError::new(
                codes::OWNED_BY_OTHER,
                format!(
                    "OVS port {} exists and was not created by userspace-cni; choose another host.vhost.socketfile",
                    p.port
                ),
            ),
        })
    }

    async fn apply_inner(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let p = &self.plan;
        if let Err(e) = precheck_socket_name(p) {
            return Err(ctx.fail_unchanged(e));
        }
        let budget = ctx.wait_budget();
        let mut g = match self.conn.get(&ctx.settings, budget).await {
            Ok(g) => g,
            Err(e) => return Err(ctx.fail_unchanged(e)),
        };
        let client = g.client();
        let id = ctx.attachment.id.clone();

        // One round trip: the name must be free (the two `wait`s abort the whole transaction
        // otherwise, and only then is the holder looked up for the message).
        let absent = |table: &str| {
            Op::wait(
                table,
                vec![Condition::eq("name", json!(p.port))],
                &["name"],
                WaitUntil::Equal,
                vec![],
                Duration::ZERO,
            )
        };
        let ops = vec![
            Op::comment(format!("userspace-cni: add port {} for {}/{}", p.port, id.container_id, id.ifname)),
            absent("Port"),
            absent("Interface"),
            Op::insert_named("Interface", "iface", self.interface_row(ctx)),
            Op::insert_named("Port", "port", self.port_row(ctx)),
            Op::mutate(
                "Bridge",
                vec![Condition::eq("name", json!(p.bridge))],
                vec![Mutation::insert("ports", set([named_uuid("port")]))],
            ),
        ];
        let (res, next_cfg) = match client.transact_for_cfg(OPEN_VSWITCH_DB, ops, budget).await {
            Ok(r) => r,
            Err(OvsdbError::Transaction { op_index: 1 | 2, .. }) => {
                drop(g);
                let why = match self.precheck(ctx).await {
                    Err(e) => e,
                    // Gone again meanwhile: the runtime retries.
                    Ok(()) => CniError::try_again(format!("OVS port name {} was briefly taken; retry", p.port)),
                };
                return Err(ctx.fail_unchanged(why));
            }
            Err(e) => return Err(ovs_err("adding the port")(e)),
        };
        // A mutate that matches no bridge still commits, and OVSDB then silently drops the
        // unreferenced port: the bridge vanished between our two steps (DESIGN.md §3.4).
        if res.get(5).and_then(|r| r.count) != Some(1) {
            return Err(CniError::try_again(format!(
                "bridge {} disappeared before port {} could be attached; retry",
                p.bridge, p.port
            )));
        }
        if let Ok(mut c) = self.committed.lock() {
            *c = Some(next_cfg);
        }
        // The row's uuid lets DEL remove exactly this port in one transaction.
        if let Some(uuid) = res.get(4).and_then(|r| r.uuid.as_ref()) {
            ctx.outputs.values.insert(PORT.into(), json!({"uuid": uuid.as_str()}));
        }
        failpoint::hit(PORT, Phase::During)?;
        ctx.outputs.host_interfaces.push(HostInterface { name: p.port.clone(), mac: None });
        Ok(())
    }

    async fn settle_inner(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let Some(next_cfg) = self.committed.lock().ok().and_then(|mut c| c.take()) else { return Ok(()) };
        let budget = ctx.wait_budget();
        let mut g = self.conn.get(&ctx.settings, budget).await?;
        let client = g.client();
        let p = &self.plan;
        client.wait_cfg(OPEN_VSWITCH_DB, next_cfg, budget).await.map_err(ovs_err("waiting for ovs-vswitchd"))?;

        // vswitchd has applied it: the port must be up without error. The monitor carried
        // vswitchd's own transaction; a valid ofport and no error there settle it. Anything else
        // (an error, no ofport yet, a monitor installed after the commit) is read from OVSDB.
        if let Some(n) = client.seen_interface(&p.port).and_then(|(ofport, error)| healthy_ofport(ofport, error)) {
            record_ofport(ctx, n);
            return Ok(());
        }
        let r = client
            .transact(
                OPEN_VSWITCH_DB,
                vec![Op::select("Interface", vec![Condition::eq("name", json!(p.port))], &["error", "ofport"])],
            )
            .await
            .map_err(ovs_err("reading the port's state"))?;
        let row = first_row(&r, 0).ok_or_else(|| CniError::io(format!("port {} vanished after creation", p.port)))?;
        let error: Vec<String> =
            as_set(column(row, "error")?)?.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        if let Some(e) = error.first() {
            return Err(CniError::io(format!("OVS could not create vhost-user port {}: {e}", p.port)));
        }
        let ofport: Vec<i64> = as_set(column(row, "ofport")?)?.into_iter().filter_map(|v| as_integer(v).ok()).collect();
        match ofport.first() {
            Some(n) if *n > 0 => {
                record_ofport(ctx, *n);
                Ok(())
            }
            other => {
                Err(CniError::io(format!("OVS gave port {} no valid ofport ({other:?}); see ovs-vswitchd.log", p.port)))
            }
        }
    }
}

/// Wait (bounded) for the socket OVS serves for `p.port` in its vhost-sock-dir, give it `access`
/// there (OVS's dir is root's, so nothing of the pod's can stand in for it), then rename it over
/// the shared-dir socket (atomic; same filesystem, checked at validation). Both ends are held
/// directory descriptors: the pod's dir is resolved below its root without following a symlink,
/// so a link planted in it never redirects the rename. Shared by ADD's delivery and the
/// reconciler's re-delivery after an OVS restart (repair.rs).
pub async fn deliver(
    settings: &NodeSettings,
    p: &OvsPlan,
    access: &userspace_cni_support::perms::Access,
    budget: Duration,
) -> Result<(), CniError> {
    let ovs = ovs_dir(p)?;
    let name = std::ffi::OsStr::new(&p.port);
    // vswitchd has applied the port, so the socket normally exists already; a loaded node can
    // still take seconds to listen, so wait up to the step's budget (the timeout setting).
    let deadline = std::time::Instant::now() + budget;
    while !matches!(ovs.entry(name), Ok(Some(_))) {
        if std::time::Instant::now() >= deadline {
            return Err(CniError::io(format!(
                "OVS did not create the vhost-user socket {} for port {}",
                p.ovs_socket.display(),
                p.port
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !access.is_empty() {
        userspace_cni_support::perms::apply_to_socket(&ovs, &p.port, access)?;
    }
    let shared_dir = p.shared_socket.parent().unwrap_or(Path::new("/"));
    let target = p.shared_socket.file_name().unwrap_or(name);
    let shared = confine::socket_dir(settings, shared_dir).map_err(|e| {
        CniError::io(format!("cannot open the shared dir {}: {}", shared_dir.display(), confine::explain(&e)))
    })?;
    shared.rename_from(&ovs, name, target).map_err(|e| {
        // Validation proved one filesystem (same st_dev), so EXDEV here means two mounts of it:
        // rename(2) never crosses mount points. That is the reconciler in a container, where
        // OVS's dir and the shared dirs are separate hostPath volumes.
        let hint = if e.raw_os_error() == Some(libc::EXDEV) {
            ": they are separate mounts of one filesystem (as in a container with one hostPath volume \
             each), and rename(2) cannot cross mount points. Run this where both are one mount (on the \
             host, as the CNI plugin runs), or use host vhost.mode \"client\", which needs no delivery"
        } else {
            ""
        };
        CniError::io(format!("cannot move {} to {}: {e}{hint}", p.ovs_socket.display(), p.shared_socket.display()))
    })
}

/// Server mode: OVS created the socket in its vhost-sock-dir; give it the configured owner, group,
/// mode and label there (OVS's dir is root's, so nothing of the pod's can stand in for it), then
/// move it into the pod's shared dir (rename: same filesystem, checked at validation).
pub struct DeliverSocket {
    pub plan: OvsPlan,
}

#[async_trait]
impl Step for DeliverSocket {
    fn name(&self) -> &'static str {
        DELIVER
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let p = &self.plan;
        tracing::warn!(
            port = %p.port,
            "vhost.mode server: OVS deprecates dpdkvhostuser ports; prefer host vhost.mode \"client\""
        );
        deliver(&ctx.settings, p, &p.socket_access, ctx.wait_budget()).await
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        // OVS leaves the delivered socket behind after del-port: remove it from the pod's dir,
        // found without following a link; only a socket is removed. A socket never delivered is
        // still in OVS's dir: the port's own undo removes it once it has proven the port ours.
        let p = &self.plan;
        let (Some(dir), Some(name)) = (p.shared_socket.parent(), p.shared_socket.file_name()) else { return Ok(()) };
        match confine::socket_dir(&ctx.settings, dir) {
            Ok(d) => remove_socket_in(&d, &name.to_string_lossy()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), reason = %confine::explain(&e), "shared dir skipped, not followed");
                Ok(())
            }
        }
    }
}
