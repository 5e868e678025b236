//! Adoption of a port the upstream plugin created (docs/upgrading.md): verify that the untagged
//! port its state file names is exactly what our plan describes (name, bridge, vhost-user type and
//! socket path), then tag Port and Interface as this attachment's in one transaction that first
//! `wait`s for them to be unchanged. Never tags a port of another attachment, an administrator's
//! port on another bridge, or one whose type or socket path differ.

use crate::config::OvsPlan;
use crate::conn::{connect, ovs_err};
use crate::ovsdb::datum::{as_set, as_string, as_string_map, as_uuid, column, row, set};
use crate::ovsdb::{Condition, Mutation, Op, Row, WaitUntil, OPEN_VSWITCH_DB};
use crate::tags;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{Adoption, Attachment, CniError, NodeSettings};

/// The port named by an upstream state file (`{"vhostname": ...}`), checked against `plan`.
pub async fn adopt(
    settings: &NodeSettings,
    att: &Attachment,
    plan: &OvsPlan,
    legacy: &Value,
    dry_run: bool,
) -> Result<Adoption, CniError> {
    let name = legacy.get("vhostname").and_then(Value::as_str).unwrap_or_default();
    let object = format!("OVS port {name}");
    if name != plan.port {
        // The generic code plans with the state file's name; anything else is not this port.
        let reason = format!("the plan names port {}, the upstream state file {name:?}", plan.port);
        return Ok(Adoption::Mismatch { object, reason });
    }
    let mut client = connect(settings, settings.timeout()).await?;
    let r = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::select("Port", vec![Condition::eq("name", json!(name))], &["_uuid", "external_ids", "interfaces"]),
                Op::select(
                    "Interface",
                    vec![Condition::eq("name", json!(name))],
                    &["_uuid", "type", "options", "external_ids"],
                ),
            ],
        )
        .await
        .map_err(ovs_err("reading the upstream port"))?;
    let (Some(port), Some(iface)) = (r.first().and_then(|r| r.rows().first()), r.get(1).and_then(|r| r.rows().first()))
    else {
        return Ok(Adoption::Missing { object });
    };
    let port_ids = as_string_map(column(port, "external_ids")?)?;
    let iface_ids = as_string_map(column(iface, "external_ids")?)?;
    let id = &att.id;
    if tags::is_attachment(&port_ids, &id.container_id, &id.ifname) {
        // Tagged by an earlier, interrupted adoption (or DEL) of this very attachment.
        return Ok(Adoption::Adopted { object, already: true });
    }
    if let Some(reason) = foreign_tags(&port_ids).or_else(|| foreign_tags(&iface_ids)) {
        return Ok(Adoption::Mismatch { object, reason });
    }
    let port_uuid = as_uuid(column(port, "_uuid")?)?;
    let iface_uuid = as_uuid(column(iface, "_uuid")?)?;
    let members = as_set(column(port, "interfaces")?)?;
    if members.len() != 1 || members.first().map(|v| as_uuid(v).ok()) != Some(Some(iface_uuid.clone())) {
        return Ok(Adoption::Mismatch { object, reason: "the port does not have exactly its own interface".into() });
    }
    if let Some(reason) = wrong_interface(iface, plan)? {
        return Ok(Adoption::Mismatch { object, reason });
    }
    let b = client
        .transact(
            OPEN_VSWITCH_DB,
            vec![Op::select("Bridge", vec![Condition::includes("ports", set([port_uuid.to_json()]))], &["name"])],
        )
        .await
        .map_err(ovs_err("reading the upstream port's bridge"))?;
    let bridge = b.first().and_then(|r| r.rows().first()).map(|r| column(r, "name").and_then(as_string)).transpose()?;
    if bridge.as_deref() != Some(plan.bridge.as_str()) {
        let found = bridge.unwrap_or_else(|| "no bridge".into());
        return Ok(Adoption::Mismatch {
            object,
            reason: format!("it is on {found}, the config names {}", plan.bridge),
        });
    }
    if dry_run {
        return Ok(Adoption::Adopted { object, already: false });
    }
    let new_tags = tags::to_ovs_map(&tags::port_tags(att, settings.current_boot_id()));
    let unchanged = |table: &str, uuid: &crate::ovsdb::datum::Uuid, ids: &BTreeMap<String, String>| {
        let current = crate::ovsdb::datum::string_map(ids.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Op::wait(
            table,
            vec![Condition::uuid(uuid)],
            &["external_ids"],
            WaitUntil::Equal,
            vec![ext_row(current)],
            Duration::ZERO,
        )
    };
    // The waits abort the transaction if anyone tagged or changed either row since we looked,
    // and the bridge wait if the port moved: only the port we verified gets our tags.
    let ops = vec![
        unchanged("Port", &port_uuid, &port_ids),
        unchanged("Interface", &iface_uuid, &iface_ids),
        Op::wait(
            "Bridge",
            vec![Condition::eq("name", json!(plan.bridge)), Condition::includes("ports", set([port_uuid.to_json()]))],
            &["name"],
            WaitUntil::Equal,
            vec![row([("name", json!(plan.bridge))])],
            Duration::ZERO,
        ),
        Op::mutate("Port", vec![Condition::uuid(&port_uuid)], vec![Mutation::insert("external_ids", new_tags.clone())]),
        Op::mutate("Interface", vec![Condition::uuid(&iface_uuid)], vec![Mutation::insert("external_ids", new_tags)]),
        Op::comment(format!("userspace-cni: adopt upstream port {name} for {}/{}", id.container_id, id.ifname)),
    ];
    match client.transact(OPEN_VSWITCH_DB, ops).await {
        Ok(_) => Ok(Adoption::Adopted { object, already: false }),
        Err(crate::ovsdb::OvsdbError::Transaction { op_index, .. }) if op_index < 3 => {
            Ok(Adoption::Mismatch { object, reason: "the port changed while it was being adopted; run again".into() })
        }
        Err(e) => Err(ovs_err("tagging the upstream port")(e)),
    }
}

fn ext_row(map: Value) -> Row {
    row([("external_ids", map)])
}

/// A reason to leave the object alone if it carries any of our tags (another attachment's:
/// this attachment's were accepted before).
fn foreign_tags(ids: &BTreeMap<String, String>) -> Option<String> {
    let ours = ids.keys().any(|k| k.starts_with("userspace-cni/"));
    ours.then(|| {
        format!(
            "it carries userspace-cni tags of container {:?} ifname {:?}",
            ids.get(tags::CONTAINER_ID).map(String::as_str).unwrap_or("?"),
            ids.get(tags::IFNAME).map(String::as_str).unwrap_or("?")
        )
    })
}

/// Type and socket path as the upstream plugin set them for this plan's mode.
fn wrong_interface(iface: &Row, plan: &OvsPlan) -> Result<Option<String>, CniError> {
    let ty = as_string(column(iface, "type")?)?;
    let options = as_string_map(column(iface, "options")?)?;
    let want = match plan.host_mode {
        VhostMode::Server => "dpdkvhostuser",
        VhostMode::Client => "dpdkvhostuserclient",
    };
    if ty != want {
        return Ok(Some(format!("its type is {ty:?}, the config's vhost mode needs {want}")));
    }
    if plan.host_mode == VhostMode::Client {
        let path = options.get("vhost-server-path").map(String::as_str).unwrap_or("");
        let expected = plan.shared_socket.to_string_lossy();
        if path != expected {
            return Ok(Some(format!("its vhost-server-path is {path:?}, the plan computes {expected:?}")));
        }
    }
    Ok(None)
}
