//! Read-and-act helpers over VPP's API shared by the steps, CHECK and GC: find interfaces by tag
//! or socket filename (dumped fresh each time), delete them tolerating "already gone". Never
//! acts on a sw_if_index that was not just read back from VPP.

use crate::api::messages::{
    DeleteVhostUserIf, DeleteVhostUserIfReply, MemifDelete, MemifDeleteReply, MemifDetails, MemifDump,
    MemifSocketFilenameAddDelV2, MemifSocketFilenameAddDelV2Reply, MemifSocketFilenameDetails, MemifSocketFilenameDump,
    Prefix, SwInterfaceAddDelAddress, SwInterfaceAddDelAddressReply, SwInterfaceDetails, SwInterfaceDump,
    SwInterfaceVhostUserDetails, SwInterfaceVhostUserDump,
};
use crate::api::{rv, Client, VppError};

/// `sw_if_index` meaning "all" in dumps.
pub const ALL: u32 = u32::MAX;

/// Add one address to an interface (ADD's address step and repair).
pub async fn add_address(c: &mut Client, sw_if_index: u32, prefix: &Prefix) -> Result<(), VppError> {
    let req = SwInterfaceAddDelAddress {
        sw_if_index,
        is_add: true,
        del_all: false,
        prefix: prefix.clone(),
        ..Default::default()
    };
    c.call::<_, SwInterfaceAddDelAddressReply>(req, "sw_interface_add_del_address").await.map(drop)
}

/// Every interface VPP has.
pub async fn interfaces(c: &mut Client) -> Result<Vec<SwInterfaceDetails>, VppError> {
    c.dump(SwInterfaceDump { sw_if_index: ALL, ..Default::default() }, "sw_interface_dump").await
}

/// Interfaces carrying exactly `tag`.
pub async fn tagged(c: &mut Client, tag: &str) -> Result<Vec<SwInterfaceDetails>, VppError> {
    Ok(interfaces(c).await?.into_iter().filter(|i| i.tag == tag).collect())
}

pub async fn memifs(c: &mut Client) -> Result<Vec<MemifDetails>, VppError> {
    c.dump(MemifDump::default(), "memif_dump").await
}

pub async fn vhosts(c: &mut Client) -> Result<Vec<SwInterfaceVhostUserDetails>, VppError> {
    c.dump(SwInterfaceVhostUserDump { sw_if_index: ALL, ..Default::default() }, "sw_interface_vhost_user_dump").await
}

/// Whether a dumped filename is `ours`: `memif_socket_filename_details` holds 107 bytes, so a
/// longer name (an abstract socket with a netns path) comes back truncated.
pub fn same_filename(dumped: &str, ours: &str) -> bool {
    dumped == ours || (dumped.len() >= 107 && ours.starts_with(dumped))
}

/// The memif socket ids registered with `filename`.
pub async fn socket_ids(c: &mut Client, filename: &str) -> Result<Vec<u32>, VppError> {
    let all: Vec<MemifSocketFilenameDetails> =
        c.dump(MemifSocketFilenameDump::default(), "memif_socket_filename_dump").await?;
    Ok(all.into_iter().filter(|s| same_filename(&s.socket_filename, filename)).map(|s| s.socket_id).collect())
}

/// Register a memif socket filename and let VPP choose an unused id (`0xffffffff`).
pub async fn add_socket(c: &mut Client, filename: &str) -> Result<u32, VppError> {
    let req = MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: filename.to_owned(),
        ..Default::default()
    };
    let r: MemifSocketFilenameAddDelV2Reply = c.call(req, "memif_socket_filename_add_del_v2 (add)").await?;
    Ok(r.socket_id)
}

/// Unregister socket `id` unless a memif still uses it; "unknown id" and "in use" are success
/// (gone already, or someone else's interface keeps it).
pub async fn remove_socket_if_unused(c: &mut Client, id: u32) -> Result<(), VppError> {
    if memifs(c).await?.iter().any(|m| m.socket_id == id) {
        return Ok(());
    }
    let req = MemifSocketFilenameAddDelV2 { is_add: false, socket_id: id, ..Default::default() };
    match c.call::<_, MemifSocketFilenameAddDelV2Reply>(req, "memif_socket_filename_add_del_v2 (del)").await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.retval(), Some(rv::INVALID_ARGUMENT | rv::UNEXPECTED_INTF_STATE)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn delete_memif(c: &mut Client, sw_if_index: u32) -> Result<(), VppError> {
    match c.call::<_, MemifDeleteReply>(MemifDelete { sw_if_index, ..Default::default() }, "memif_delete").await {
        Err(e) if e.retval() != Some(rv::INVALID_SW_IF_INDEX) => Err(e),
        _ => Ok(()),
    }
}

pub async fn delete_vhost(c: &mut Client, sw_if_index: u32) -> Result<(), VppError> {
    let req = DeleteVhostUserIf { sw_if_index, ..Default::default() };
    match c.call::<_, DeleteVhostUserIfReply>(req, "delete_vhost_user_if").await {
        Err(e) if e.retval() != Some(rv::INVALID_SW_IF_INDEX) => Err(e),
        _ => Ok(()),
    }
}

/// The memifs that belong to the attachment with `tag` on socket `filename`: those tagged so,
/// and untagged ones on our socket (a crash between `memif_create` and the tag leaves one).
pub async fn our_memifs(c: &mut Client, tag: &str, filename: &str) -> Result<Vec<MemifDetails>, VppError> {
    let tags: std::collections::HashMap<u32, String> =
        interfaces(c).await?.into_iter().map(|i| (i.sw_if_index, i.tag)).collect();
    let ids = socket_ids(c, filename).await?;
    Ok(memifs(c)
        .await?
        .into_iter()
        .filter(|m| match tags.get(&m.sw_if_index).map(String::as_str) {
            Some(t) if t == tag => true,
            Some("") | None => ids.contains(&m.socket_id),
            Some(_) => false,
        })
        .collect())
}

/// The vhost-user interfaces with `tag` (the tag is set by the create message itself).
pub async fn our_vhosts(c: &mut Client, tag: &str) -> Result<Vec<SwInterfaceVhostUserDetails>, VppError> {
    let mine: Vec<u32> = tagged(c, tag).await?.into_iter().map(|i| i.sw_if_index).collect();
    Ok(vhosts(c).await?.into_iter().filter(|v| mine.contains(&v.sw_if_index)).collect())
}
