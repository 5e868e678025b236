//! The OVS-DPDK side of CHECK, GC, STATUS and `userspace doctor`: verify a port against its plan,
//! list and remove objects by their ownership tags, and report whether OVS can serve an ADD.
//! Never deletes an object whose tags do not name us (and, for a port, the exact attachment).

use crate::config::OvsPlan;
use crate::conn::{self, ovs_err};
use crate::ovsdb::datum::{as_optional_integer, as_set, as_string, as_string_map, as_uuid, column, set};
use crate::ovsdb::{Condition, Mutation, Op, OvsdbClient, OvsdbError, OPEN_VSWITCH_DB};
use crate::tags;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{codes, AttachmentId, CniError, NodeSettings, OwnedObject, TaggedObject};

/// `OwnedObject::kind` of a vhost-user port (Port + Interface rows of one name).
pub const KIND_PORT: &str = "port";
/// `OwnedObject::kind` of a bridge we created. A bridge belongs to no single attachment: its id
/// is empty, so GC never finds it "owned by" a valid attachment, and `remove_owned` deletes it
/// only while it has no port.
pub const KIND_BRIDGE: &str = "bridge";

/// ovs-vswitchd answers an empty transaction within milliseconds; STATUS must not take the
/// whole per-wait timeout to say it is down.
const VSWITCHD_PROBE: Duration = Duration::from_secs(3);

/// What CHECK found wrong with a port, each naming the object and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("OVS port {port} is missing (expected on bridge {bridge})")]
    PortMissing { port: String, bridge: String },

    #[error("OVS port {port} does not carry this attachment's tags (found container {found_cid:?}, ifname {found_ifname:?}; expected {cid}/{ifname})")]
    NotOurs { port: String, cid: String, ifname: String, found_cid: Option<String>, found_ifname: Option<String> },

    #[error("OVS port {port} has type {found:?}, expected {expected}")]
    WrongType { port: String, found: String, expected: &'static str },

    #[error("OVS port {port} has options:{key}={found:?}, expected {expected:?}")]
    WrongOption { port: String, key: &'static str, found: String, expected: String },

    #[error("OVS port {port} reports an error: {error}")]
    InterfaceError { port: String, error: String },

    #[error("OVS port {port} has no valid ofport ({found}); ovs-vswitchd could not attach it, see ovs-vswitchd.log")]
    BadOfport { port: String, found: String },

    #[error("OVS port {port} is on bridge {found}, expected {expected}")]
    WrongBridge { port: String, found: String, expected: String },

    #[error("OVS port {port} is on no bridge (expected {expected})")]
    NoBridge { port: String, expected: String },

    #[error("OVS port {port} has {column}={found}, expected {expected}")]
    WrongSetting { port: String, column: &'static str, found: String, expected: String },

    #[error("{what}: {source}")]
    Ovsdb {
        what: &'static str,
        #[source]
        source: OvsdbError,
    },

    /// STATUS: OVS cannot serve an ADD now.
    #[error("{0}")]
    Unavailable(String),
}

impl From<LifecycleError> for CniError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Ovsdb { what, source } => CniError::from(source).context(what),
            LifecycleError::Unavailable(_) => CniError::new(codes::NOT_AVAILABLE, e.to_string()),
            // What CHECK finds wrong is a fact about the host, not a transient state: code 5.
            _ => CniError::new(codes::IO_FAILURE, e.to_string()),
        }
    }
}

fn db(what: &'static str) -> impl FnOnce(OvsdbError) -> LifecycleError {
    move |source| LifecycleError::Ovsdb { what, source }
}

/// CHECK one attachment's port: present, tagged for this attachment, on the planned bridge, the
/// planned type, `vhost-server-path`, VLAN tag and MTU, no `Interface.error`, `ofport > 0`.
/// Every mismatch is reported, not only the first. Never touches the vhost-user socket.
pub async fn check(
    settings: &NodeSettings,
    id: &AttachmentId,
    p: &OvsPlan,
    timeout: Duration,
) -> Result<Vec<LifecycleError>, CniError> {
    let mut client = conn::connect(settings, timeout).await?;
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::select(
                    "Interface",
                    vec![Condition::eq("name", json!(p.port))],
                    &["type", "options", "error", "ofport", "external_ids", "mtu_request"],
                ),
                Op::select("Port", vec![Condition::eq("name", json!(p.port))], &["_uuid", "tag", "external_ids"]),
            ],
        )
        .await
        .map_err(db("CHECK: reading the port"))?;
    let (Some(iface), Some(port)) = (r.first().and_then(|r| r.rows().first()), r.get(1).and_then(|r| r.rows().first()))
    else {
        return Ok(vec![LifecycleError::PortMissing { port: p.port.clone(), bridge: p.bridge.clone() }]);
    };
    let mut wrong = Vec::new();
    // Both rows carry the tags; DEL trusts the Port's, so a mismatch on either is reported.
    let port_ids = as_string_map(column(port, "external_ids")?)?;
    let iface_ids = as_string_map(column(iface, "external_ids")?)?;
    let mine = |ids: &BTreeMap<String, String>| tags::is_attachment(ids, &id.container_id, &id.ifname);
    if let Some(ids) = [&port_ids, &iface_ids].into_iter().find(|ids| !mine(ids)) {
        // A port of this name that is not ours: every other fact about it is beside the point.
        return Ok(vec![LifecycleError::NotOurs {
            port: p.port.clone(),
            cid: id.container_id.clone(),
            ifname: id.ifname.clone(),
            found_cid: ids.get(tags::CONTAINER_ID).cloned(),
            found_ifname: ids.get(tags::IFNAME).cloned(),
        }]);
    }
    let expected = if p.host_mode == VhostMode::Server { "dpdkvhostuser" } else { "dpdkvhostuserclient" };
    let ty = as_string(column(iface, "type")?)?;
    if ty != expected {
        wrong.push(LifecycleError::WrongType { port: p.port.clone(), found: ty, expected });
    }
    if p.host_mode == VhostMode::Client {
        let opts = as_string_map(column(iface, "options")?)?;
        let want = p.shared_socket.to_string_lossy().into_owned();
        let found = opts.get("vhost-server-path");
        if found != Some(&want) {
            wrong.push(LifecycleError::WrongOption {
                port: p.port.clone(),
                key: "vhost-server-path",
                found: found.cloned().unwrap_or_else(|| "(unset)".into()),
                expected: want,
            });
        }
    }
    let errors: Vec<String> =
        as_set(column(iface, "error")?)?.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    if let Some(e) = errors.first() {
        wrong.push(LifecycleError::InterfaceError { port: p.port.clone(), error: e.clone() });
    }
    match as_optional_integer(column(iface, "ofport")?)? {
        Some(n) if n > 0 => {}
        other => wrong.push(LifecycleError::BadOfport {
            port: p.port.clone(),
            found: other.map(|n| n.to_string()).unwrap_or_else(|| "none".into()),
        }),
    }
    let vlan = as_optional_integer(column(port, "tag")?)?;
    if vlan != p.vlan.map(i64::from) {
        wrong.push(LifecycleError::WrongSetting {
            port: p.port.clone(),
            column: "tag",
            found: vlan.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
            expected: p.vlan.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
        });
    }
    if let Some(mtu) = p.mtu {
        let found = as_optional_integer(column(iface, "mtu_request")?)?;
        if found != Some(i64::from(mtu)) {
            wrong.push(LifecycleError::WrongSetting {
                port: p.port.clone(),
                column: "mtu_request",
                found: found.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                expected: mtu.to_string(),
            });
        }
    }
    // Which bridge holds the port (Bridge.ports references Port rows).
    let uuid = as_uuid(column(port, "_uuid")?)?;
    let holders = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![Op::select("Bridge", vec![Condition::includes("ports", set([uuid.to_json()]))], &["name"])],
        )
        .await
        .map_err(db("CHECK: finding the port's bridge"))?;
    let names: Vec<String> = holders
        .first()
        .map(|r| r.rows().iter().filter_map(|row| row.get("name").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default();
    match names.as_slice() {
        [] => wrong.push(LifecycleError::NoBridge { port: p.port.clone(), expected: p.bridge.clone() }),
        [b] if *b == p.bridge => {}
        found => wrong.push(LifecycleError::WrongBridge {
            port: p.port.clone(),
            found: found.join(","),
            expected: p.bridge.clone(),
        }),
    }
    Ok(wrong)
}

/// Ports tagged for `network` (any attachment), then the bridges we created for it: GC removes
/// ports first, so a bridge they emptied can go in the same pass.
pub async fn list_owned(settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
    let mut client = conn::connect(settings, settings.timeout()).await?;
    let ours = || {
        vec![Condition::includes(
            "external_ids",
            crate::ovsdb::datum::string_map([(tags::OWNER_KEY, tags::OWNER), (tags::NETWORK, network)]),
        )]
    };
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![Op::select("Port", ours(), &["name", "external_ids"]), Op::select("Bridge", ours(), &["name"])],
        )
        .await
        .map_err(ovs_err("listing our ports and bridges"))?;
    let mut out = Vec::new();
    for row in r.first().map(|r| r.rows()).unwrap_or_default() {
        let ids = as_string_map(column(row, "external_ids")?)?;
        let (Some(cid), Some(ifname)) = (ids.get(tags::CONTAINER_ID), ids.get(tags::IFNAME)) else { continue };
        out.push(OwnedObject {
            id: AttachmentId::new(cid.clone(), ifname.clone()),
            network: network.to_owned(),
            kind: KIND_PORT.into(),
            name: as_string(column(row, "name")?)?,
        });
    }
    for row in r.get(1).map(|r| r.rows()).unwrap_or_default() {
        out.push(OwnedObject {
            id: AttachmentId::new("", ""),
            network: network.to_owned(),
            kind: KIND_BRIDGE.into(),
            name: as_string(column(row, "name")?)?,
        });
    }
    Ok(out)
}

/// Every port and bridge tagged as ours, any network (the reconciler's sweep for objects whose
/// record a power loss took).
pub async fn list_all_owned(settings: &NodeSettings) -> Result<Vec<TaggedObject>, CniError> {
    let mut client = conn::connect(settings, settings.timeout()).await?;
    let ours =
        || vec![Condition::includes("external_ids", crate::ovsdb::datum::string_map([(tags::OWNER_KEY, tags::OWNER)]))];
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::select("Port", ours(), &["name", "external_ids"]),
                Op::select("Bridge", ours(), &["name", "external_ids"]),
            ],
        )
        .await
        .map_err(ovs_err("listing our ports and bridges"))?;
    let mut out = Vec::new();
    for (i, kind) in [(0, KIND_PORT), (1, KIND_BRIDGE)] {
        for row in r.get(i).map(|r| r.rows()).unwrap_or_default() {
            let ids = as_string_map(column(row, "external_ids")?)?;
            let get = |k: &str| ids.get(k).cloned().unwrap_or_default();
            let id = match kind {
                KIND_PORT => AttachmentId::new(get(tags::CONTAINER_ID), get(tags::IFNAME)),
                _ => AttachmentId::new("", ""),
            };
            out.push(TaggedObject {
                object: OwnedObject {
                    id,
                    network: get(tags::NETWORK),
                    kind: kind.into(),
                    name: as_string(column(row, "name")?)?,
                },
                netns: ids.get(tags::NETNS).cloned().filter(|n| !n.is_empty()),
                boot_id: ids.get(tags::BOOT_ID).cloned().filter(|b| !b.is_empty()),
            });
        }
    }
    Ok(out)
}

/// Remove one object found by `list_owned`; "not found" and "no longer ours" are success.
pub async fn remove_owned(settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
    let mut client = conn::connect(settings, settings.timeout()).await?;
    match obj.kind.as_str() {
        KIND_BRIDGE => crate::steps::delete_bridge_if_unused(&mut client, &obj.name, "GC unused bridge").await,
        _ => remove_port(&mut client, settings, obj).await,
    }
}

async fn remove_port(client: &mut OvsdbClient, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::select("Port", vec![Condition::eq("name", json!(obj.name))], &["_uuid", "external_ids"]),
                Op::select("Interface", vec![Condition::eq("name", json!(obj.name))], &["type"]),
            ],
        )
        .await
        .map_err(ovs_err("GC: reading the port"))?;
    let Some(row) = r.first().and_then(|r| r.rows().first()) else { return Ok(()) };
    let ids = as_string_map(column(row, "external_ids")?)?;
    // Match the full container id, never the name alone (names collide on cid12).
    if !tags::is_attachment(&ids, &obj.id.container_id, &obj.id.ifname) {
        return Ok(());
    }
    let server_mode = r
        .get(1)
        .and_then(|r| r.rows().first())
        .and_then(|row| row.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "dpdkvhostuser");
    let uuid = as_uuid(column(row, "_uuid")?)?.to_json();
    client
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::mutate(
                    "Bridge",
                    vec![Condition::includes("ports", set([uuid.clone()]))],
                    vec![Mutation::delete("ports", set([uuid]))],
                ),
                Op::comment(format!(
                    "userspace-cni: GC port {} of {}/{}",
                    obj.name, obj.id.container_id, obj.id.ifname
                )),
            ],
        )
        .await
        .map_err(ovs_err("GC: deleting the port"))?;
    if server_mode {
        // OVS leaves a dpdkvhostuser socket behind in its vhost-sock-dir; with no record we do
        // not know the pod's shared dir, but this copy's place follows from the port name.
        // The port was proven ours (tags) and its name is the socket's: only a socket is removed.
        let sock_dir = crate::settings::OvsSettings::from_node(settings).sock_dir;
        let dir = userspace_cni_support::confine::Dir::root(&sock_dir);
        match dir {
            Ok(d) => crate::steps::remove_socket_in(&d, &obj.name).map_err(|e| e.context("GC"))?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(CniError::io(format!("GC: cannot open {}: {e}", sock_dir.display()))),
        }
    }
    Ok(())
}

/// The `Open_vSwitch` row's facts `doctor` and STATUS report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OvsFacts {
    pub ovs_version: Option<String>,
    pub dpdk_initialized: Option<bool>,
    pub dpdk_version: Option<String>,
    pub other_config: BTreeMap<String, String>,
}

impl OvsFacts {
    /// Where ovs-vswitchd puts `dpdkvhostuser` sockets: `other_config:vhost-sock-dir` is read
    /// relative to OVS's rundir, which is the directory of its OVSDB socket in every packaging
    /// we know (absolute values are used as they are).
    pub fn vhost_sock_dir(&self, settings: &NodeSettings) -> Option<PathBuf> {
        let rundir = crate::settings::OvsSettings::from_node(settings).ovsdb_socket()?.parent()?.to_path_buf();
        Some(match self.other_config.get("vhost-sock-dir") {
            Some(d) => rundir.join(d),
            None => rundir,
        })
    }

    /// Whether DPDK runs without hugepages (`--no-huge` in `dpdk-extra`, as test labs do).
    pub fn no_huge(&self) -> bool {
        self.other_config.get("dpdk-extra").is_some_and(|e| e.split_whitespace().any(|w| w == "--no-huge"))
    }
}

/// Connect and read the `Open_vSwitch` row.
pub async fn facts(settings: &NodeSettings, timeout: Duration) -> Result<(OvsdbClient, OvsFacts), CniError> {
    let mut client = conn::connect(settings, timeout).await?;
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![Op::select(
                "Open_vSwitch",
                vec![],
                &["ovs_version", "dpdk_initialized", "dpdk_version", "other_config"],
            )],
        )
        .await
        .map_err(ovs_err("reading the Open_vSwitch table"))?;
    let Some(row) = r.first().and_then(|r| r.rows().first()) else {
        return Err(CniError::try_again(format!(
            "OVSDB at {} has no Open_vSwitch row; has OVS finished starting (ovs-vsctl init)?",
            crate::settings::OvsSettings::from_node(settings).ovsdb
        )));
    };
    let opt_string = |c: &str| row.get(c).and_then(|v| crate::ovsdb::datum::as_optional_string(v).ok().flatten());
    let facts = OvsFacts {
        ovs_version: opt_string("ovs_version"),
        dpdk_initialized: row.get("dpdk_initialized").and_then(Value::as_bool),
        dpdk_version: opt_string("dpdk_version"),
        other_config: row.get("other_config").map(as_string_map).transpose()?.unwrap_or_default(),
    };
    Ok((client, facts))
}

/// Prove ovs-vswitchd is alive: it must acknowledge an empty transaction (`cur_cfg >= next_cfg`).
pub async fn vswitchd_applies(client: &mut OvsdbClient, timeout: Duration) -> Result<(), CniError> {
    client.transact_and_wait(OPEN_VSWITCH_DB, vec![], timeout.min(VSWITCHD_PROBE)).await.map(drop).map_err(|e| {
        CniError::from(e).context("ovs-vswitchd is not applying changes (is it running, and is it the DPDK build?)")
    })
}

/// STATUS: OVSDB answers, DPDK is initialised, ovs-vswitchd applies changes; code 50 otherwise.
pub async fn status(settings: &NodeSettings) -> Result<(), CniError> {
    let unavailable = |why: String| CniError::from(LifecycleError::Unavailable(why));
    let (mut client, facts) = facts(settings, settings.timeout()).await.map_err(|e| {
        let ovsdb = crate::settings::OvsSettings::from_node(settings).ovsdb;
        unavailable(format!("OVSDB at {ovsdb} cannot serve ADD: {}", e.msg))
    })?;
    if facts.dpdk_initialized != Some(true) {
        return Err(unavailable(
            "ovs-vswitchd has not initialised DPDK (set other_config:dpdk-init=true and check that \
             ovs-vswitchd-dpdk runs)"
                .into(),
        ));
    }
    vswitchd_applies(&mut client, settings.timeout()).await.map_err(|e| unavailable(e.msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_findings_are_code_5_and_unavailability_is_50() {
        let e = CniError::from(LifecycleError::PortMissing { port: "p".into(), bridge: "br".into() });
        assert_eq!(e.code, codes::IO_FAILURE);
        assert_eq!(e.msg, "OVS port p is missing (expected on bridge br)");
        let e = CniError::from(LifecycleError::Unavailable("down".into()));
        assert_eq!(e.code, codes::NOT_AVAILABLE);
    }

    #[test]
    fn vhost_sock_dir_is_relative_to_the_db_socket_dir() {
        let mut s = NodeSettings::default();
        s.set_engine(crate::ENGINE, &crate::settings::OVSDB, "unix:/run/ovs/db.sock");
        let mut f = OvsFacts::default();
        assert_eq!(f.vhost_sock_dir(&s), Some(PathBuf::from("/run/ovs")));
        f.other_config.insert("vhost-sock-dir".into(), "vhu".into());
        assert_eq!(f.vhost_sock_dir(&s), Some(PathBuf::from("/run/ovs/vhu")));
        f.other_config.insert("vhost-sock-dir".into(), "/abs".into());
        assert_eq!(f.vhost_sock_dir(&s), Some(PathBuf::from("/abs")));
        f.other_config.insert("dpdk-extra".into(), "-m 512 --no-huge".into());
        assert!(f.no_huge());
    }
}
