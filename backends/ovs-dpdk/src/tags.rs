//! Ownership tags in OVS `external_ids`: who created an object, for which network, container and
//! interface. Deletion always matches the full container id, never a name alone.

use serde_json::Value;
use std::collections::BTreeMap;
use userspace_cni_api::Attachment;

pub const OWNER_KEY: &str = "userspace-cni/owner";
pub const OWNER: &str = "userspace-cni";
pub const NETWORK: &str = "userspace-cni/network";
pub const CONTAINER_ID: &str = "userspace-cni/container-id";
pub const IFNAME: &str = "userspace-cni/ifname";
pub const NETNS: &str = "userspace-cni/netns";
pub const POD_NAMESPACE: &str = "userspace-cni/pod-namespace";
pub const POD_NAME: &str = "userspace-cni/pod-name";
pub const POD_UID: &str = "userspace-cni/pod-uid";
/// The boot the object was made in (`NodeSettings::current_boot_id`): the reconciler's sweep
/// removes a record-less object only when it is of another boot (a power loss took its record).
pub const BOOT_ID: &str = "userspace-cni/boot-id";

/// Tags of a port created for an attachment in boot `boot`.
pub fn port_tags(att: &Attachment, boot: Option<String>) -> Vec<(&'static str, String)> {
    let mut t = vec![
        (OWNER_KEY, OWNER.to_owned()),
        (NETWORK, att.network.clone()),
        (CONTAINER_ID, att.id.container_id.clone()),
        (IFNAME, att.id.ifname.clone()),
    ];
    let opt =
        [(NETNS, &att.netns), (POD_NAMESPACE, &att.pod.namespace), (POD_NAME, &att.pod.name), (POD_UID, &att.pod.uid)];
    t.extend(opt.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))));
    t.extend(boot.map(|b| (BOOT_ID, b)));
    t
}

/// Tags of a bridge the plugin creates in boot `boot` (it is shared by every network that names it).
pub fn bridge_tags(att: &Attachment, boot: Option<String>) -> Vec<(&'static str, String)> {
    let mut t = vec![(OWNER_KEY, OWNER.to_owned()), (NETWORK, att.network.clone())];
    t.extend(boot.map(|b| (BOOT_ID, b)));
    t
}

pub fn to_ovs_map(tags: &[(&'static str, String)]) -> Value {
    crate::ovsdb::datum::string_map(tags.iter().map(|(k, v)| (*k, v.as_str())))
}

/// Whether `external_ids` says we own the object.
pub fn is_ours(ids: &BTreeMap<String, String>) -> bool {
    ids.get(OWNER_KEY).map(String::as_str) == Some(OWNER)
}

/// Whether `external_ids` says the object belongs to exactly this attachment.
pub fn is_attachment(ids: &BTreeMap<String, String>, container_id: &str, ifname: &str) -> bool {
    is_ours(ids)
        && ids.get(CONTAINER_ID).map(String::as_str) == Some(container_id)
        && ids.get(IFNAME).map(String::as_str) == Some(ifname)
}
