//! The OVS-DPDK side of the reconciler's repair after a dataplane restart: re-deliver a server-mode
//! socket OVS re-created in its own dir, re-create a port (and bridge) a fresh database lost.
//! Never connects to a workload's socket, and never touches a port whose tags name someone else.
//!
//! What an OVS restart does to an attachment:
//! - ovs-vswitchd restarted, OVSDB kept: every `dpdkvhostuser` (server-mode) port gets a new
//!   listening socket in OVS's vhost-sock-dir; the one ADD renamed into the pod's shared dir is
//!   dead (nobody listens on it). A `dpdkvhostuserclient` port reconnects by itself.
//! - a fresh database: the bridge and port rows are gone; both modes need them re-created.
//!
//! Detection needs no connection to the workload: ADD moved OVS's socket away, so a socket at
//! `ovs_socket` again can only be one vswitchd created since, and it is the live one.

use crate::config::OvsPlan;
use crate::conn::{self, Conn};
use crate::ovsdb::datum::{as_string_map, column};
use crate::ovsdb::{Condition, Op, OvsdbError, OPEN_VSWITCH_DB};
use crate::steps::{self, BridgeStep, PortStep};
use crate::tags;
use serde_json::json;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{codes, CniError, Repair, Step, StepContext, Verb};
use userspace_cni_support::perms::{self, Access};

/// Why a repair could not be done, each naming the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("{what}: {source}")]
    Ovsdb {
        what: &'static str,
        #[source]
        source: OvsdbError,
    },

    #[error(
        "OVS port {port} exists but is not this attachment's (its tags name container {found:?}); not repairing it: \
         remove the other port or run DEL for this attachment"
    )]
    NotOurs { port: String, found: Option<String> },

    #[error(
        "{} should be the socket OVS serves for port {port} but is not a socket; not delivering it",
        path.display()
    )]
    NotASocket { port: String, path: std::path::PathBuf },

    #[error("the record's vhost.group {group:?} cannot be resolved any more: {msg}")]
    LegacyGroup { group: String, msg: String },
}

impl From<RepairError> for CniError {
    fn from(e: RepairError) -> Self {
        match e {
            // Unreachable OVSDB keeps its own code (11): the reconciler stops trying this engine.
            RepairError::Ovsdb { what, source } => CniError::from(source).context(what),
            RepairError::NotOurs { .. } => CniError::new(codes::OWNED_BY_OTHER, e.to_string()),
            RepairError::LegacyGroup { .. } => CniError::new(codes::INVALID_NETCONF, e.to_string()),
            RepairError::NotASocket { .. } => CniError::io(e.to_string()),
        }
    }
}

fn db(what: &'static str) -> impl FnOnce(OvsdbError) -> RepairError {
    move |source| RepairError::Ovsdb { what, source }
}

/// What the socket delivered to a server-mode pod gets: `socket_access` as resolved at ADD. Records
/// written before `host.permissions` existed carry `vhost.group` as a name instead (the plan's
/// `group`, also the shared dir's `group`); ADD then gave the socket that group and mode 0660,
/// which is what `perms::resolve` makes of a lone `vhost.group`, so re-delivery matches ADD.
pub fn socket_access(p: &OvsPlan, shared_dir_group: Option<&str>) -> Result<Access, CniError> {
    if p.host_mode != VhostMode::Server || !p.socket_access.is_empty() {
        return Ok(p.socket_access.clone());
    }
    let legacy = p.legacy_group.as_deref().or(shared_dir_group);
    let Some(group) = legacy else { return Ok(Access::default()) };
    perms::resolve(None, Some(group))
        .map(|r| r.socket)
        .map_err(|e| RepairError::LegacyGroup { group: group.to_owned(), msg: e.msg }.into())
}

fn is_socket(path: &Path) -> Option<bool> {
    std::fs::symlink_metadata(path).ok().map(|m| m.file_type().is_socket())
}

/// Repair one attachment (the backend's `repair`); `ctx.verb == Verb::Check` (the reconciler's
/// `--dry-run`) only reports what it would do. `access` is what the delivered socket gets.
pub async fn repair(ctx: &mut StepContext, p: &OvsPlan, access: &Access) -> Result<Repair, CniError> {
    let dry = ctx.verb == Verb::Check;
    let id = ctx.attachment.id.clone();
    let mut client = conn::connect(&ctx.settings, ctx.wait_budget()).await?;
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::select("Port", vec![Condition::eq("name", json!(p.port))], &["external_ids"]),
                Op::select("Bridge", vec![Condition::eq("name", json!(p.bridge))], &["name"]),
            ],
        )
        .await
        .map_err(db("repair: reading the port and its bridge"))?;
    let port_row = r.first().and_then(|r| r.rows().first());
    let bridge_present = r.get(1).is_some_and(|r| !r.rows().is_empty());
    if let Some(row) = port_row {
        let ids = as_string_map(column(row, "external_ids").map_err(db("repair: port tags"))?)
            .map_err(db("repair: port tags"))?;
        if !tags::is_attachment(&ids, &id.container_id, &id.ifname) {
            return Err(
                RepairError::NotOurs { port: p.port.clone(), found: ids.get(tags::CONTAINER_ID).cloned() }.into()
            );
        }
    }
    drop(client);

    let mut actions = Vec::new();
    let recreate = port_row.is_none();
    if recreate {
        let what = if bridge_present {
            format!("re-created port {} on bridge {}", p.port, p.bridge)
        } else {
            format!("re-created bridge {} and port {}", p.bridge, p.port)
        };
        if dry {
            return Ok(Repair::Repaired(vec![format!("would have {what}")]));
        }
        recreate_port(ctx, p).await?;
        actions.push(what);
    }
    if p.host_mode == VhostMode::Server {
        match is_socket(&p.ovs_socket) {
            // Nothing in OVS's dir: the delivered socket is still the one OVS listens on.
            None if !recreate => {}
            Some(false) => {
                return Err(RepairError::NotASocket { port: p.port.clone(), path: p.ovs_socket.clone() }.into())
            }
            _ if dry => {
                actions.push(format!(
                    "would re-deliver socket {} to {} (OVS re-created it)",
                    p.ovs_socket.display(),
                    p.shared_socket.display()
                ));
            }
            _ => {
                steps::deliver(&ctx.settings, p, access, ctx.wait_budget()).await?;
                actions.push(format!(
                    "re-delivered socket {} to {}",
                    p.ovs_socket.display(),
                    p.shared_socket.display()
                ));
            }
        }
    }
    for a in &actions {
        tracing::info!(cid = %id.container_id, ifname = %id.ifname, port = %p.port, action = %a, dry_run = dry, "repair");
    }
    Ok(if actions.is_empty() { Repair::Healthy } else { Repair::Repaired(actions) })
}

/// Bridge and port through ADD's own steps (same names, tags, type and options; the port step
/// waits for vswitchd and checks `Interface.error`/`ofport`). The port step records the port in
/// the outputs and its new `ofport`: the caller rewrites the record with them.
async fn recreate_port(ctx: &mut StepContext, p: &OvsPlan) -> Result<(), CniError> {
    let conn = Arc::new(Conn::default());
    let bridge = BridgeStep { plan: p.clone(), conn: conn.clone() };
    let port = PortStep::new(p.clone(), conn);
    // The outputs already name the port; the step appends it again.
    let before = ctx.outputs.host_interfaces.clone();
    let had_bridge_value = ctx.outputs.values.get(steps::BRIDGE).cloned();
    bridge.apply(ctx).await?;
    let made = match port.apply(ctx).await {
        Ok(()) => port.settle(ctx).await,
        Err(e) => Err(e),
    };
    if let Err(e) = made {
        // Leave nothing half-made: the next pass starts over from the same facts.
        let _ = port.undo(ctx).await;
        ctx.outputs.host_interfaces = before;
        return Err(e);
    }
    ctx.outputs.host_interfaces = before;
    if !ctx.outputs.host_interfaces.iter().any(|h| h.name == p.port) {
        ctx.outputs.host_interfaces.push(userspace_cni_api::HostInterface { name: p.port.clone(), mac: None });
    }
    // The bridge step marks a bridge it created; one that was there (another pod re-created it
    // first, or an administrator's) keeps what ADD recorded.
    if !ctx.outputs.values.contains_key(steps::BRIDGE) {
        if let Some(v) = had_bridge_value {
            ctx.outputs.values.insert(steps::BRIDGE.into(), v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn plan(mode: VhostMode) -> OvsPlan {
        OvsPlan {
            bridge: "br0".into(),
            port: "p".into(),
            host_mode: mode,
            ovs_socket: PathBuf::from("/run/ovs/p"),
            shared_socket: PathBuf::from("/run/shared/p"),
            vlan: None,
            trunks: Vec::new(),
            mtu: None,
            policing: None,
            socket_access: Access::default(),
            legacy_group: None,
        }
    }

    /// `plan` as a record of the shape before `host.permissions` wrote it, `group` included.
    fn with_group(p: &OvsPlan, group: &str) -> OvsPlan {
        let mut v = serde_json::to_value(p).expect("a plan encodes");
        v["group"] = json!(group);
        serde_json::from_value(v).expect("an older record decodes")
    }

    #[test]
    fn a_legacy_vhost_group_gets_what_add_gave_it() {
        let p = plan(VhostMode::Server);
        let a = socket_access(&with_group(&p, "0"), None).expect("numeric gid");
        assert_eq!((a.gid, a.mode), (Some(0), Some(0o660)));
        let a = socket_access(&p, Some("0")).expect("from the shared dir's group");
        assert_eq!((a.gid, a.mode), (Some(0), Some(0o660)));
        assert!(socket_access(&p, None).expect("none").is_empty());
        let mut current = plan(VhostMode::Server);
        current.socket_access = Access { gid: Some(5), mode: Some(0o600), ..Access::default() };
        let a = socket_access(&with_group(&current, "0"), None).expect("current shape wins");
        assert_eq!((a.gid, a.mode), (Some(5), Some(0o600)));
        assert!(socket_access(&with_group(&plan(VhostMode::Client), "0"), None).expect("client").is_empty());
        let e = socket_access(&with_group(&p, "no-such-group-uscni"), None).expect_err("unknown group");
        assert_eq!(e.code, codes::INVALID_NETCONF);
        // Read back whole: a record rewritten from the decoded plan keeps its group.
        assert_eq!(serde_json::to_value(with_group(&p, "0")).expect("encodes")["group"], json!("0"));
    }
}
