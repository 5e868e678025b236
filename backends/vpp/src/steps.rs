//! The VPP steps: bridge domain, memif socket filename, memif or vhost-user interface, bridge
//! attachment, IPAM addresses. Undo finds everything again by tag or socket filename and never
//! trusts a stored sw_if_index (after a VPP restart it may belong to another pod).

use crate::api::messages::{
    BridgeDomainAddDelV2, BridgeDomainAddDelV2Reply, BridgeDomainDetails, BridgeDomainDump, CreateVhostUserIfV2,
    CreateVhostUserIfV2Reply, MemifCreateV2, MemifCreateV2Reply, Prefix, SwInterfaceAddDelAddress,
    SwInterfaceAddDelAddressReply, SwInterfaceSetFlags, SwInterfaceSetFlagsReply, SwInterfaceSetL2Bridge,
    SwInterfaceSetL2BridgeReply, SwInterfaceTagAddDel, SwInterfaceTagAddDelReply, IF_STATUS_API_FLAG_ADMIN_UP,
    L2_API_PORT_TYPE_NORMAL, MEMIF_MODE_API_ETHERNET, MEMIF_MODE_API_IP, MEMIF_MODE_API_PUNT_INJECT,
    MEMIF_ROLE_API_MASTER, MEMIF_ROLE_API_SLAVE,
};
use crate::api::{rv, Client, VppError};
use crate::config::{Iface, MemifPlan, VhostPlan, VppPlan};
use crate::conn::{vpp_err, Conn};
use crate::{ops, tags};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use userspace_cni_api::failpoint::{self, Phase};
use userspace_cni_api::spec::{MemifMode, MemifRole, VhostMode};
use userspace_cni_api::{async_trait, codes, CniError, HostInterface, SocketDescriptor, SocketKind, Step, StepContext};

pub const BRIDGE_DOMAIN: &str = "bridge-domain";
pub const MEMIF_SOCKET: &str = "memif-socket";
pub const MEMIF: &str = "memif";
pub const VHOST_USER: &str = "vhost-user";
pub const BRIDGE_ATTACH: &str = "bridge-attach";
pub const IP_ADDRESS: &str = "ip-address";

/// Run `f` with the shared client; an error that may leave the stream mid-message drops the
/// connection so the next step reconnects.
macro_rules! with_client {
    ($conn:expr, $ctx:expr, |$c:ident| $body:expr) => {{
        let budget = $ctx.wait_budget();
        let r: Result<_, VppError> = match $conn.get(&$ctx.settings, budget).await {
            Err(e) => Err(e),
            Ok(mut g) => {
                let $c: &mut Client = &mut g;
                $body.await
            }
        };
        if let Err(e) = &r {
            if e.is_unavailable() {
                $conn.reset().await;
            }
        }
        r
    }};
}

/// The sw_if_index the interface step of this same ADD created (handed forward in the context;
/// undo never uses it).
fn created_index(ctx: &StepContext) -> Result<u32, CniError> {
    [MEMIF, VHOST_USER]
        .iter()
        .find_map(|s| ctx.outputs.values.get(*s).and_then(|v| v.get("sw_if_index")).and_then(|v| v.as_u64()))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| CniError::io("internal: the interface step left no sw_if_index for the next step"))
}

/// The interface of this attachment, found again by its tag (None: already gone).
async fn find_ours(c: &mut Client, tag: &str) -> Result<Option<u32>, VppError> {
    Ok(ops::tagged(c, tag).await?.first().map(|i| i.sw_if_index))
}

async fn admin_up(c: &mut Client, sw_if_index: u32) -> Result<(), VppError> {
    let req = SwInterfaceSetFlags { sw_if_index, flags: IF_STATUS_API_FLAG_ADMIN_UP, ..Default::default() };
    c.call::<_, SwInterfaceSetFlagsReply>(req, "sw_interface_set_flags (admin up)").await.map(|_| ())
}

pub(crate) async fn set_tag(c: &mut Client, sw_if_index: u32, tag: &str) -> Result<(), VppError> {
    let req = SwInterfaceTagAddDel { is_add: true, sw_if_index, tag: tag.to_owned(), ..Default::default() };
    c.call::<_, SwInterfaceTagAddDelReply>(req, "sw_interface_tag_add_del").await.map(|_| ())
}

async fn interface_name(c: &mut Client, sw_if_index: u32) -> Result<String, VppError> {
    let all = ops::interfaces(c).await?;
    Ok(all.into_iter().find(|i| i.sw_if_index == sw_if_index).map(|i| i.interface_name).unwrap_or_default())
}

/// Owner, group, mode and label of a socket VPP created, found relative to its dir's descriptor
/// (`host.permissions`, `host.vhost.group`; see `userspace_cni_support::perms`). The dir is the pod's shared
/// dir: opened below its root without following a symlink.
fn apply_socket_access(
    settings: &userspace_cni_api::NodeSettings,
    socket: &std::path::Path,
    access: &userspace_cni_support::perms::Access,
) -> Result<(), CniError> {
    if access.is_empty() {
        return Ok(());
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name().and_then(|n| n.to_str())) else {
        return Err(CniError::io(format!("socket path {} has no directory and file name", socket.display())));
    };
    let dir = userspace_cni_support::confine::socket_dir(settings, dir).map_err(|e| {
        CniError::io(format!(
            "cannot open the socket's dir {}: {}",
            dir.display(),
            userspace_cni_support::confine::explain(&e)
        ))
    })?;
    userspace_cni_support::perms::apply_to_socket(&dir, name, access)
}

/// Collision check shared by the interface steps: something already uses our socket.
fn collision(what: &str, socket: &str, other_tag: &str) -> CniError {
    if tags::parse(other_tag).is_some() {
        CniError::new(
            codes::NAME_COLLISION,
            format!(
                "{what} socket {socket} is already used by another attachment's VPP interface (tag {other_tag}); \
                 container ids sharing their first 12 characters collide on the default name: set the socketfile"
            ),
        )
    } else {
        CniError::new(
            codes::OWNED_BY_OTHER,
            format!("{what} socket {socket} is used by a VPP interface userspace-cni did not create; choose another socketfile"),
        )
    }
}

pub struct BridgeDomainStep {
    pub bd_id: u32,
    pub bd_tag: String,
    pub conn: Arc<Conn>,
}

async fn bridge_domain(c: &mut Client, bd_id: u32) -> Result<Option<BridgeDomainDetails>, VppError> {
    let all: Vec<BridgeDomainDetails> =
        c.dump(BridgeDomainDump { bd_id, sw_if_index: ops::ALL, ..Default::default() }, "bridge_domain_dump").await?;
    Ok(all.into_iter().find(|b| b.bd_id == bd_id))
}

#[async_trait]
impl Step for BridgeDomainStep {
    fn name(&self) -> &'static str {
        BRIDGE_DOMAIN
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let existing = with_client!(self.conn, ctx, |c| bridge_domain(c, self.bd_id));
        match existing {
            Err(e) => return Err(ctx.fail_unchanged(vpp_err("looking up the bridge domain")(e))),
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
        }
        let req = BridgeDomainAddDelV2 {
            bd_id: self.bd_id,
            flood: true,
            uu_flood: true,
            forward: true,
            learn: true,
            arp_term: false,
            arp_ufwd: false,
            mac_age: 0,
            bd_tag: self.bd_tag.clone(),
            is_add: true,
            ..Default::default()
        };
        let r =
            with_client!(self.conn, ctx, |c| c.call::<_, BridgeDomainAddDelV2Reply>(req, "bridge_domain_add_del_v2"));
        match r {
            Ok(_) => {}
            // Created meanwhile by someone outside our node lock: it is theirs, use it.
            Err(e) if e.retval() == Some(rv::BD_ALREADY_EXISTS) => return Ok(()),
            Err(e) => return Err(vpp_err("creating the bridge domain")(e)),
        }
        ctx.outputs.values.insert(BRIDGE_DOMAIN.into(), json!({"created": true, "bd_id": self.bd_id}));
        failpoint::hit(BRIDGE_DOMAIN, Phase::During)
    }

    /// Delete the bridge domain only if we created it (our tag) and it has no member; VPP itself
    /// refuses to delete one with members (BD_IN_USE), which covers a member added meanwhile.
    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let bd = with_client!(self.conn, ctx, |c| bridge_domain(c, self.bd_id))
            .map_err(vpp_err("looking up the bridge domain"))?;
        let Some(bd) = bd else { return Ok(()) };
        if !tags::is_ours(&bd.bd_tag) || !bd.sw_if_details.is_empty() {
            return Ok(());
        }
        let req = BridgeDomainAddDelV2 { bd_id: self.bd_id, is_add: false, ..Default::default() };
        match with_client!(self.conn, ctx, |c| c
            .call::<_, BridgeDomainAddDelV2Reply>(req, "bridge_domain_add_del_v2 (del)"))
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.retval(), Some(rv::BD_IN_USE | rv::NO_SUCH_ENTRY)) => Ok(()),
            Err(e) => Err(vpp_err("deleting the bridge domain")(e)),
        }
    }
}

pub struct MemifSocketStep {
    pub plan: MemifPlan,
    pub conn: Arc<Conn>,
}

#[async_trait]
impl Step for MemifSocketStep {
    fn name(&self) -> &'static str {
        MEMIF_SOCKET
    }

    /// Socket ids are a node-wide namespace: the lookup-then-register must not interleave with
    /// another ADD or DEL of the same filename.
    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let socket = &self.plan.socket;
        let existing = match with_client!(self.conn, ctx, |c| ops::socket_ids(c, socket)) {
            Ok(ids) => ids,
            Err(e) => return Err(ctx.fail_unchanged(vpp_err("looking up memif socket filenames")(e))),
        };
        let id = match existing.first() {
            // Reuse: VPP would happily register the same filename under a second id.
            Some(id) => *id,
            None => with_client!(self.conn, ctx, |c| ops::add_socket(c, socket))
                .map_err(vpp_err("registering the memif socket filename"))?,
        };
        ctx.outputs.values.insert(MEMIF_SOCKET.into(), json!({"socket_id": id}));
        failpoint::hit(MEMIF_SOCKET, Phase::During)
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let socket = &self.plan.socket;
        with_client!(self.conn, ctx, |c| async {
            for id in ops::socket_ids(c, socket).await? {
                ops::remove_socket_if_unused(c, id).await?;
            }
            Ok(())
        })
        .map_err(vpp_err("removing the memif socket filename"))
    }
}

pub struct MemifStep {
    pub plan: MemifPlan,
    pub tag: String,
    pub conn: Arc<Conn>,
}

pub(crate) fn role_api(r: MemifRole) -> u32 {
    match r {
        MemifRole::Master => MEMIF_ROLE_API_MASTER,
        MemifRole::Slave => MEMIF_ROLE_API_SLAVE,
    }
}

fn mode_api(m: MemifMode) -> u32 {
    match m {
        MemifMode::Ethernet => MEMIF_MODE_API_ETHERNET,
        MemifMode::Ip => MEMIF_MODE_API_IP,
        MemifMode::InjectPunt => MEMIF_MODE_API_PUNT_INJECT,
    }
}

impl MemifStep {
    /// Before any write: the socket must not carry another attachment's memif.
    async fn precheck(&self, c: &mut Client) -> Result<Result<(), CniError>, VppError> {
        let ids = ops::socket_ids(c, &self.plan.socket).await?;
        let tags: std::collections::HashMap<u32, String> =
            ops::interfaces(c).await?.into_iter().map(|i| (i.sw_if_index, i.tag)).collect();
        for m in ops::memifs(c).await? {
            if !ids.contains(&m.socket_id) {
                continue;
            }
            let tag = tags.get(&m.sw_if_index).cloned().unwrap_or_default();
            if tag != self.tag {
                return Ok(Err(collision("memif", &self.plan.socket, &tag)));
            }
        }
        Ok(Ok(()))
    }

    /// Delete the memifs of this attachment (tagged ours, or untagged on our socket) and the
    /// socket filename each was on once no memif uses it, except `keep` (the id about to be
    /// used). VPP keeps a registration after its last memif goes: a memif of ours on another
    /// filename (the record lost and the attachment added again with another socketfile) would
    /// otherwise leave that filename registered for good, since the socket step's undo only
    /// looks at the plan's filename.
    async fn delete_ours(&self, c: &mut Client, keep: Option<u32>) -> Result<(), VppError> {
        let ours = ops::our_memifs(c, &self.tag, &self.plan.socket).await?;
        for m in &ours {
            ops::delete_memif(c, m.sw_if_index).await?;
        }
        let mut ids: Vec<u32> = ours.iter().map(|m| m.socket_id).filter(|id| Some(*id) != keep).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            // Socket id 0 is VPP's default, which it never deletes.
            if id != 0 {
                ops::remove_socket_if_unused(c, id).await?;
            }
        }
        Ok(())
    }

    async fn create(&self, c: &mut Client, socket_id: u32) -> Result<u32, VppError> {
        // A leftover of ours (same tag) from an interrupted run is replaced, not duplicated.
        self.delete_ours(c, Some(socket_id)).await?;
        let p = &self.plan;
        let req = MemifCreateV2 {
            role: role_api(p.role),
            mode: mode_api(p.mode),
            rx_queues: p.rx_queues,
            tx_queues: p.tx_queues,
            // The workload side uses interface id 0 unless told otherwise (libmemif, DPDK).
            id: 0,
            socket_id,
            ring_size: p.ring_size,
            buffer_size: p.buffer_size,
            no_zero_copy: false,
            use_dma: false,
            ..Default::default()
        };
        let r: MemifCreateV2Reply = c.call(req, "memif_create_v2").await?;
        Ok(r.sw_if_index)
    }
}

#[async_trait]
impl Step for MemifStep {
    fn name(&self) -> &'static str {
        MEMIF
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let socket_id = ctx
            .outputs
            .values
            .get(MEMIF_SOCKET)
            .and_then(|v| v.get("socket_id"))
            .and_then(|v| v.as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| CniError::io("internal: the memif-socket step left no socket id"))?;
        match with_client!(self.conn, ctx, |c| self.precheck(c)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ctx.fail_unchanged(e)),
            Err(e) => return Err(ctx.fail_unchanged(vpp_err("looking up memifs")(e))),
        }
        let idx = with_client!(self.conn, ctx, |c| self.create(c, socket_id)).map_err(vpp_err("creating the memif"))?;
        ctx.outputs.values.insert(MEMIF.into(), json!({"sw_if_index": idx, "socket_id": socket_id}));
        failpoint::hit(MEMIF, Phase::During)?;
        let name = with_client!(self.conn, ctx, |c| async {
            set_tag(c, idx, &self.tag).await?;
            admin_up(c, idx).await?;
            interface_name(c, idx).await
        })
        .map_err(vpp_err("configuring the memif"))?;
        ctx.outputs.host_interfaces.push(HostInterface { name, mac: None });
        // Master on a file: VPP's listener is in the pod's shared dir (empty for slave or abstract).
        apply_socket_access(&ctx.settings, std::path::Path::new(&self.plan.socket), &self.plan.socket_access)?;
        if let Some(name) = &self.plan.abstract_name {
            // libmemif's convention: a leading '@' names an abstract socket.
            let path = std::path::PathBuf::from(format!("@{name}"));
            ctx.outputs.socket = Some(SocketDescriptor {
                kind: SocketKind::Memif,
                workload_mode: self.plan.role.inverse().as_str().into(),
                memif_mode: Some(self.plan.mode.as_str().into()),
                host_path: path.clone(),
                pod_path: path,
                mac: ctx.attachment.mac.clone(),
                mtu: None,
            });
        }
        Ok(())
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        with_client!(self.conn, ctx, |c| self.delete_ours(c, None)).map_err(vpp_err("deleting the memif"))
    }
}

pub struct VhostUserStep {
    pub plan: VhostPlan,
    pub tag: String,
    pub conn: Arc<Conn>,
}

impl VhostUserStep {
    fn socket(&self) -> String {
        self.plan.socket.to_string_lossy().into_owned()
    }

    async fn precheck(&self, c: &mut Client) -> Result<Result<(), CniError>, VppError> {
        let socket = self.socket();
        let tags: std::collections::HashMap<u32, String> =
            ops::interfaces(c).await?.into_iter().map(|i| (i.sw_if_index, i.tag)).collect();
        for v in ops::vhosts(c).await? {
            let tag = tags.get(&v.sw_if_index).cloned().unwrap_or_default();
            if v.sock_filename == socket && tag != self.tag {
                return Ok(Err(collision("vhost-user", &socket, &tag)));
            }
        }
        Ok(Ok(()))
    }

    async fn create(&self, c: &mut Client) -> Result<u32, VppError> {
        for v in ops::our_vhosts(c, &self.tag).await? {
            ops::delete_vhost(c, v.sw_if_index).await?;
        }
        let req = CreateVhostUserIfV2 {
            is_server: self.plan.mode == VhostMode::Server,
            sock_filename: self.socket(),
            // Set by the create itself: no window in which our interface is untagged.
            tag: self.tag.clone(),
            ..Default::default()
        };
        let r: CreateVhostUserIfV2Reply = c.call(req, "create_vhost_user_if_v2").await?;
        Ok(r.sw_if_index)
    }
}

#[async_trait]
impl Step for VhostUserStep {
    fn name(&self) -> &'static str {
        VHOST_USER
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        match with_client!(self.conn, ctx, |c| self.precheck(c)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ctx.fail_unchanged(e)),
            Err(e) => return Err(ctx.fail_unchanged(vpp_err("looking up vhost-user interfaces")(e))),
        }
        let idx =
            with_client!(self.conn, ctx, |c| self.create(c)).map_err(vpp_err("creating the vhost-user interface"))?;
        ctx.outputs.values.insert(VHOST_USER.into(), json!({"sw_if_index": idx}));
        failpoint::hit(VHOST_USER, Phase::During)?;
        let name = with_client!(self.conn, ctx, |c| async {
            admin_up(c, idx).await?;
            interface_name(c, idx).await
        })
        .map_err(vpp_err("configuring the vhost-user interface"))?;
        ctx.outputs.host_interfaces.push(HostInterface { name, mac: None });
        // Server mode: VPP created the socket in the pod's shared dir; give it what the workload
        // needs to connect (empty in client mode: the workload's socket is the workload's).
        apply_socket_access(&ctx.settings, &self.plan.socket, &self.plan.socket_access)?;
        Ok(())
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        with_client!(self.conn, ctx, |c| async {
            for v in ops::our_vhosts(c, &self.tag).await? {
                ops::delete_vhost(c, v.sw_if_index).await?;
            }
            Ok(())
        })
        .map_err(vpp_err("deleting the vhost-user interface"))
    }
}

pub struct BridgeAttachStep {
    pub bd_id: u32,
    pub tag: String,
    pub conn: Arc<Conn>,
}

#[async_trait]
impl Step for BridgeAttachStep {
    fn name(&self) -> &'static str {
        BRIDGE_ATTACH
    }

    fn needs_node_lock(&self) -> bool {
        true
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let idx = created_index(ctx)?;
        let req = SwInterfaceSetL2Bridge {
            rx_sw_if_index: idx,
            bd_id: self.bd_id,
            port_type: L2_API_PORT_TYPE_NORMAL,
            shg: 0,
            enable: true,
            ..Default::default()
        };
        with_client!(self.conn, ctx, |c| c.call::<_, SwInterfaceSetL2BridgeReply>(req, "sw_interface_set_l2_bridge"))
            .map_err(vpp_err("adding the interface to the bridge domain"))?;
        failpoint::hit(BRIDGE_ATTACH, Phase::During)
    }

    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let bd_id = self.bd_id;
        with_client!(self.conn, ctx, |c| async {
            let Some(idx) = find_ours(c, &self.tag).await? else { return Ok(()) };
            let req = SwInterfaceSetL2Bridge { rx_sw_if_index: idx, bd_id, enable: false, ..Default::default() };
            match c.call::<_, SwInterfaceSetL2BridgeReply>(req, "sw_interface_set_l2_bridge (detach)").await {
                Err(e) if e.retval() != Some(rv::INVALID_SW_IF_INDEX) => Err(e),
                _ => Ok(()),
            }
        })
        .map_err(vpp_err("removing the interface from the bridge domain"))
    }
}

pub struct IpAddressStep {
    pub tag: String,
    pub conn: Arc<Conn>,
}

/// `10.0.0.5/24` (an IPAM result's `ips[].address`) as VPP's prefix.
pub fn parse_prefix(s: &str) -> Option<Prefix> {
    let (addr, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    let mut p = Prefix { len, ..Default::default() };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if len <= 32 => {
            p.address.af = crate::api::messages::ADDRESS_IP4;
            p.address.un[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) if len <= 128 => {
            p.address.af = crate::api::messages::ADDRESS_IP6;
            p.address.un = a.octets();
        }
        _ => return None,
    }
    Some(p)
}

fn ipam_addresses(ctx: &StepContext) -> Result<Vec<(String, Prefix)>, CniError> {
    let Some(ipam) = &ctx.outputs.ipam else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for ip in ipam.get("ips").and_then(|v| v.as_array()).into_iter().flatten() {
        let Some(s) = ip.get("address").and_then(|v| v.as_str()) else { continue };
        let p = parse_prefix(s)
            .ok_or_else(|| CniError::new(codes::DECODE_FAILURE, format!("IPAM address {s:?} is not an address/len")))?;
        out.push((s.to_owned(), p));
    }
    Ok(out)
}

/// A refused address, with what to do when VPP's reason is the overlap rule.
fn address_refused(e: VppError, shown: &[&str]) -> CniError {
    let in_use = e.retval() == Some(rv::ADDRESS_IN_USE);
    let mut err = vpp_err("setting the IPAM addresses")(e);
    if in_use {
        // ip4_add_del_interface_address_internal: VPP refuses an IPv4 prefix that overlaps one on
        // any interface of the same FIB table (the same address twice included).
        err.msg.push_str(&format!(
            "; VPP gives no two interfaces of one FIB table addresses from overlapping subnets, and \
             another VPP interface already has one overlapping {}: give this network an IPAM range \
             that no other VPP interface uses (or use netType bridge)",
            shown.join(", ")
        ));
    }
    err
}

#[async_trait]
impl Step for IpAddressStep {
    fn name(&self) -> &'static str {
        IP_ADDRESS
    }

    async fn apply(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        let addrs = ipam_addresses(ctx)?;
        if addrs.is_empty() {
            // No IPAM ran (or it gave no address): nothing to set.
            return Ok(());
        }
        let idx = created_index(ctx)?;
        let shown: Vec<&str> = addrs.iter().map(|(s, _)| s.as_str()).collect();
        with_client!(self.conn, ctx, |c| async {
            for (_, prefix) in &addrs {
                ops::add_address(c, idx, prefix).await?;
            }
            Ok(())
        })
        .map_err(|e| address_refused(e, &shown))?;
        ctx.outputs.values.insert(IP_ADDRESS.into(), json!({"addresses": shown}));
        failpoint::hit(IP_ADDRESS, Phase::During)
    }

    /// Every address goes (`del_all`): the interface is ours, and this works even when the
    /// record lost the IPAM result in a crash.
    async fn undo(&self, ctx: &mut StepContext) -> Result<(), CniError> {
        with_client!(self.conn, ctx, |c| async {
            let Some(idx) = find_ours(c, &self.tag).await? else { return Ok(()) };
            let req = SwInterfaceAddDelAddress { sw_if_index: idx, is_add: false, del_all: true, ..Default::default() };
            match c.call::<_, SwInterfaceAddDelAddressReply>(req, "sw_interface_add_del_address (del all)").await {
                Err(e)
                    if !matches!(e.retval(), Some(rv::INVALID_SW_IF_INDEX | rv::ADDRESS_NOT_FOUND_FOR_INTERFACE)) =>
                {
                    Err(e)
                }
                _ => Ok(()),
            }
        })
        .map_err(vpp_err("removing the addresses"))
    }
}

/// The ADD steps of a plan, in order; DEL undoes them in reverse.
pub fn for_plan(plan: &VppPlan) -> Vec<Box<dyn Step>> {
    let conn = Arc::new(Conn::default());
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    if let crate::config::Net::Bridge { bd_id } = plan.net {
        steps.push(Box::new(BridgeDomainStep { bd_id, bd_tag: plan.bd_tag.clone(), conn: conn.clone() }));
    }
    match &plan.iface {
        Iface::Memif(m) => {
            steps.push(Box::new(MemifSocketStep { plan: m.clone(), conn: conn.clone() }));
            steps.push(Box::new(MemifStep { plan: m.clone(), tag: plan.tag.clone(), conn: conn.clone() }));
        }
        Iface::VhostUser(v) => {
            steps.push(Box::new(VhostUserStep { plan: v.clone(), tag: plan.tag.clone(), conn: conn.clone() }))
        }
    }
    match plan.net {
        crate::config::Net::Bridge { bd_id } => {
            steps.push(Box::new(BridgeAttachStep { bd_id, tag: plan.tag.clone(), conn }))
        }
        crate::config::Net::Interface => steps.push(Box::new(IpAddressStep { tag: plan.tag.clone(), conn })),
    }
    steps
}
