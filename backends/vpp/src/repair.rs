//! Repair after a VPP restart (the reconciler's `Backend::repair`): compare what VPP holds with
//! what an attachment's record names and re-create what is missing through the ADD steps' own
//! `apply`, so names, tags, socket paths, roles, bridge domains and addresses come out the same.
//! Never deletes what another attachment or an administrator owns, never trusts a stored index.
//!
//! A VPP restart loses every memif, vhost-user interface, socket filename and bridge domain
//! (VPP keeps no configuration across a restart unless a startup script replays it), while the
//! workload keeps retrying the same socket path: re-creating the objects with the same socket
//! filename is all it takes for the workload to reconnect.

use crate::api::messages::{
    BridgeDomainDetails, BridgeDomainDump, IpAddressDetails, IpAddressDump, Prefix, SwInterfaceDetails,
    SwInterfaceSetFlags, SwInterfaceSetFlagsReply, IF_STATUS_API_FLAG_ADMIN_UP, MEMIF_MODE_API_ETHERNET,
    MEMIF_MODE_API_IP, MEMIF_ROLE_API_MASTER, MEMIF_ROLE_API_SLAVE,
};
use crate::api::{Client, VppError};
use crate::config::{Iface, Net, VppPlan};
use crate::steps::{self, BRIDGE_ATTACH, BRIDGE_DOMAIN, IP_ADDRESS, MEMIF, MEMIF_SOCKET, VHOST_USER};
use crate::{conn, ops};
use serde_json::json;
use userspace_cni_api::spec::{MemifMode, MemifRole, VhostMode};
use userspace_cni_api::{CniError, Repair, StepContext, Verb};

/// What went wrong while looking at or fixing VPP; mapped to CNI codes through `VppError`'s own
/// mapping (unreachable or silent VPP: 11, another release: 105, a refused request: 74).
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("repairing the VPP objects of {tag}: {what}: {source}")]
    Vpp {
        tag: String,
        what: &'static str,
        #[source]
        source: VppError,
    },
}

impl From<RepairError> for CniError {
    fn from(e: RepairError) -> CniError {
        match e {
            RepairError::Vpp { tag, what, source } => {
                CniError::from(source).context(format!("repairing the VPP objects of {tag}: {what}"))
            }
        }
    }
}

/// What VPP holds of one attachment, read fresh.
#[derive(Debug, Default)]
struct Found {
    /// Our tagged interface, when it is the right kind on the right socket (else it is
    /// re-created: the interface step's create replaces a wrong one carrying our tag).
    iface: Option<SwInterfaceDetails>,
    /// Why a tagged interface was found unusable (for the report).
    wrong: Option<String>,
    /// `Net::Bridge`: whether the domain exists, and whether our interface is a member.
    bd_exists: bool,
    in_bd: bool,
    /// `Net::Interface`: the record's addresses VPP does not have on our interface.
    missing_addresses: Vec<(String, Prefix)>,
    /// How many addresses the record names (for a dry run's report).
    recorded_addresses: usize,
}

fn memif_role(r: MemifRole) -> u32 {
    match r {
        MemifRole::Master => MEMIF_ROLE_API_MASTER,
        MemifRole::Slave => MEMIF_ROLE_API_SLAVE,
    }
}

fn memif_mode(m: MemifMode) -> Option<u32> {
    match m {
        MemifMode::Ethernet => Some(MEMIF_MODE_API_ETHERNET),
        MemifMode::Ip => Some(MEMIF_MODE_API_IP),
        // Refused at validation (config.rs); never in a record.
        MemifMode::InjectPunt => None,
    }
}

/// The record's IPAM addresses (what the ip-address step set), as VPP prefixes.
fn recorded_addresses(ctx: &StepContext) -> Vec<(String, Prefix)> {
    let Some(ipam) = &ctx.outputs.ipam else { return Vec::new() };
    ipam.get("ips")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address").and_then(|v| v.as_str()))
        .filter_map(|s| steps::parse_prefix(s).map(|p| (s.to_owned(), p)))
        .collect()
}

async fn survey(c: &mut Client, p: &VppPlan, ctx: &StepContext) -> Result<Found, VppError> {
    let mut found = Found::default();
    let tagged = ops::tagged(c, &p.tag).await?;
    if let Some(i) = tagged.into_iter().next() {
        let idx = i.sw_if_index;
        match &p.iface {
            Iface::Memif(m) => {
                let ids = ops::socket_ids(c, &m.socket).await?;
                match ops::memifs(c).await?.into_iter().find(|x| x.sw_if_index == idx) {
                    Some(x)
                        if ids.contains(&x.socket_id)
                            && x.role == memif_role(m.role)
                            && Some(x.mode) == memif_mode(m.mode) =>
                    {
                        found.iface = Some(i)
                    }
                    Some(x) => {
                        found.wrong = Some(format!(
                            "memif {} (socket id {}, role {}, mode {}) does not match the record (socket {})",
                            i.interface_name, x.socket_id, x.role, x.mode, m.socket
                        ))
                    }
                    None => found.wrong = Some(format!("{} carries our tag but is not a memif", i.interface_name)),
                }
            }
            Iface::VhostUser(v) => {
                let want = v.socket.to_string_lossy();
                match ops::vhosts(c).await?.into_iter().find(|x| x.sw_if_index == idx) {
                    Some(x) if x.sock_filename == want && x.is_server == (v.mode == VhostMode::Server) => {
                        found.iface = Some(i)
                    }
                    Some(x) => {
                        found.wrong = Some(format!(
                            "vhost-user {} has socket {} (server {}), the record says {want}",
                            i.interface_name, x.sock_filename, x.is_server
                        ))
                    }
                    None => found.wrong = Some(format!("{} carries our tag but is not vhost-user", i.interface_name)),
                }
            }
        }
    }
    match p.net {
        Net::Bridge { bd_id } => {
            let bds: Vec<BridgeDomainDetails> = c
                .dump(BridgeDomainDump { bd_id, sw_if_index: ops::ALL, ..Default::default() }, "bridge_domain_dump")
                .await?;
            let bd = bds.into_iter().find(|b| b.bd_id == bd_id);
            found.bd_exists = bd.is_some();
            found.in_bd = match (&bd, &found.iface) {
                (Some(b), Some(i)) => b.sw_if_details.iter().any(|m| m.sw_if_index == i.sw_if_index),
                _ => false,
            };
        }
        Net::Interface => {
            found.recorded_addresses = recorded_addresses(ctx).len();
            if let Some(i) = &found.iface {
                let mut have: Vec<Prefix> = Vec::new();
                for is_ipv6 in [false, true] {
                    let d: Vec<IpAddressDetails> = c
                        .dump(
                            IpAddressDump { sw_if_index: i.sw_if_index, is_ipv6, ..Default::default() },
                            "ip_address_dump",
                        )
                        .await?;
                    have.extend(d.into_iter().map(|a| a.prefix));
                }
                found.missing_addresses =
                    recorded_addresses(ctx).into_iter().filter(|(_, p)| !have.contains(p)).collect();
            }
        }
    }
    Ok(found)
}

/// The interface step's output key for this plan.
fn iface_step(p: &VppPlan) -> &'static str {
    match p.iface {
        Iface::Memif(_) => MEMIF,
        Iface::VhostUser(_) => VHOST_USER,
    }
}

fn describe(p: &VppPlan) -> String {
    match &p.iface {
        Iface::Memif(m) => format!("memif on socket {} (VPP {})", m.socket, m.role.as_str()),
        Iface::VhostUser(v) => format!("vhost-user on socket {} (VPP {})", v.socket.display(), v.mode.as_str()),
    }
}

/// What a dry run (`ctx.verb == Verb::Check`, the reconciler's `--dry-run`, no lock held)
/// reports: the actions a repair would take, found by the same survey, nothing changed.
fn planned(p: &VppPlan, found: &Found) -> Vec<String> {
    let mut lines = Vec::new();
    if let Net::Bridge { bd_id } = p.net {
        if !found.bd_exists {
            lines.push(format!("re-create bridge domain {bd_id}"));
        }
    }
    let Some(iface) = &found.iface else {
        if let Some(why) = &found.wrong {
            lines.push(format!("replace {why}"));
        }
        lines.push(format!("re-create {} (tag {})", describe(p), p.tag));
        match p.net {
            Net::Bridge { bd_id } => lines.push(format!("attach it to bridge domain {bd_id}")),
            Net::Interface if found.recorded_addresses > 0 => lines.push("set the recorded addresses on it".into()),
            Net::Interface => {}
        }
        return lines;
    };
    if iface.flags & IF_STATUS_API_FLAG_ADMIN_UP == 0 {
        lines.push(format!("set {} administratively up", iface.interface_name));
    }
    for (shown, _) in &found.missing_addresses {
        lines.push(format!("re-add address {shown} to {}", iface.interface_name));
    }
    if let Net::Bridge { bd_id } = p.net {
        if !found.in_bd {
            lines.push(format!("re-attach {} to bridge domain {bd_id}", iface.interface_name));
        }
    }
    lines
}

/// `Backend::repair` for the VPP backend (see its doc comment for the caller's guarantees: a
/// complete record, a live pod, the attachment and node locks held; `Verb::Check`: detect only).
pub async fn repair(ctx: &mut StepContext, p: &VppPlan) -> Result<Repair, CniError> {
    let vpp = |what: &'static str| {
        let tag = p.tag.clone();
        move |source: VppError| CniError::from(RepairError::Vpp { tag, what, source })
    };
    let mut c = conn::connect(&ctx.settings, ctx.wait_budget()).await.map_err(vpp("connecting to VPP"))?;
    let found = survey(&mut c, p, ctx).await.map_err(vpp("reading what VPP holds"));
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            c.close().await;
            return Err(e);
        }
    };
    if ctx.verb == Verb::Check {
        c.close().await;
        let lines = planned(p, &found);
        return Ok(if lines.is_empty() { Repair::Healthy } else { Repair::Repaired(lines) });
    }
    let Some(iface) = &found.iface else {
        c.close().await;
        return recreate(ctx, p, &found).await;
    };
    // The interface survived (no restart): fix what is missing around it, in place.
    let idx = iface.sw_if_index;
    let name = iface.interface_name.clone();
    let mut lines = Vec::new();
    let fixed = fix_in_place(&mut c, p, &found, iface, &mut lines).await.map_err(vpp("fixing the interface"));
    c.close().await;
    fixed?;
    if let Net::Bridge { .. } = p.net {
        if !found.in_bd {
            // The bridge steps read the interface's index from the interface step's output.
            record_index(ctx, p, idx);
            for s in steps::for_plan(p).iter().filter(|s| [BRIDGE_DOMAIN, BRIDGE_ATTACH].contains(&s.name())) {
                s.apply(ctx).await?;
            }
            if !found.bd_exists {
                lines.push(format!("re-created bridge domain {}", bd_of(p)));
            }
            lines.push(format!("re-attached {name} to bridge domain {}", bd_of(p)));
        }
    }
    if lines.is_empty() {
        return Ok(Repair::Healthy);
    }
    Ok(Repair::Repaired(lines))
}

fn bd_of(p: &VppPlan) -> u32 {
    match p.net {
        Net::Bridge { bd_id } => bd_id,
        Net::Interface => 0,
    }
}

/// Keep the record's `sw_if_index` equal to VPP's (it is informational: undo never uses it).
fn record_index(ctx: &mut StepContext, p: &VppPlan, idx: u32) {
    let key = iface_step(p);
    let mut v = ctx.outputs.values.get(key).cloned().unwrap_or_else(|| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("sw_if_index".into(), json!(idx));
    }
    ctx.outputs.values.insert(key.into(), v);
}

/// Admin state and addresses of an interface that survived.
async fn fix_in_place(
    c: &mut Client,
    p: &VppPlan,
    found: &Found,
    iface: &SwInterfaceDetails,
    lines: &mut Vec<String>,
) -> Result<(), VppError> {
    let idx = iface.sw_if_index;
    if iface.flags & IF_STATUS_API_FLAG_ADMIN_UP == 0 {
        let req = SwInterfaceSetFlags { sw_if_index: idx, flags: IF_STATUS_API_FLAG_ADMIN_UP, ..Default::default() };
        c.call::<_, SwInterfaceSetFlagsReply>(req, "sw_interface_set_flags (admin up)").await?;
        lines.push(format!("set {} ({}) administratively up", iface.interface_name, describe(p)));
    }
    for (shown, prefix) in &found.missing_addresses {
        ops::add_address(c, idx, prefix).await?;
        lines.push(format!("re-added address {shown} to {}", iface.interface_name));
    }
    Ok(())
}

/// The interface is gone (VPP restarted) or unusable: run the ADD steps' `apply` again, in
/// order. Each is idempotent for what exists (a bridge domain or socket filename another
/// attachment's repair already re-created is reused). No rollback on failure: what was
/// re-created is tagged, so the next pass finishes the job and DEL finds it by tag.
async fn recreate(ctx: &mut StepContext, p: &VppPlan, found: &Found) -> Result<Repair, CniError> {
    let mut lines = Vec::new();
    if let Some(why) = &found.wrong {
        lines.push(format!("replacing {why}"));
    }
    // The interface step records the new interface's name; the VPP steps are the only ones that
    // put host interfaces in a VPP record, so the old (now meaningless) name goes.
    let old_names: Vec<String> = ctx.outputs.host_interfaces.drain(..).map(|h| h.name).collect();
    for key in [MEMIF_SOCKET, MEMIF, VHOST_USER, IP_ADDRESS] {
        ctx.outputs.values.remove(key);
    }
    if let Net::Bridge { bd_id } = p.net {
        if !found.bd_exists {
            lines.push(format!("re-created bridge domain {bd_id}"));
        }
    }
    for s in steps::for_plan(p) {
        // A repair's failure is the pass's to report; the step context's `no_effect` only
        // matters to the executor's rollback, which does not run here.
        s.apply(ctx).await.map_err(|e| e.context(format!("repair: re-applying step {}", s.name())))?;
    }
    let new_name = ctx.outputs.host_interfaces.first().map(|h| h.name.clone()).unwrap_or_default();
    let idx = ctx
        .outputs
        .values
        .get(iface_step(p))
        .and_then(|v| v.get("sw_if_index"))
        .and_then(|v| v.as_u64())
        .unwrap_or_default();
    let mut what = format!("re-created {} as {new_name} (sw_if_index {idx}, tag {})", describe(p), p.tag);
    if !old_names.is_empty() && old_names.first() != Some(&new_name) {
        what.push_str(&format!(", was {}", old_names.join(", ")));
    }
    lines.push(what);
    match p.net {
        Net::Bridge { bd_id } => lines.push(format!("attached {new_name} to bridge domain {bd_id}")),
        Net::Interface => {
            if let Some(a) = ctx.outputs.values.get(IP_ADDRESS).and_then(|v| v.get("addresses")) {
                lines.push(format!("set addresses {a} on {new_name}"));
            }
        }
    }
    Ok(Repair::Repaired(lines))
}
