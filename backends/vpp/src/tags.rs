//! Ownership tags on VPP objects: interface tags (`sw_interface_tag_add_del`) and bridge-domain
//! tags. VPP keeps at most 63 bytes, too few for a network name and a 64-character container id,
//! so a tag holds digests; never match an object on a name or index alone.

use sha2::{Digest, Sha256};
use userspace_cni_api::Attachment;

/// Every tag we write starts with this.
pub const PREFIX: &str = "uscni:";
/// How GC shows an attachment known only by its digest (`OwnedObject.id.container_id`).
pub const DIGEST_ID_PREFIX: &str = "digest:";
/// VPP's tag fields are `string[64]`: 63 bytes and the NUL.
pub const MAX_TAG: usize = 63;

fn hex(bytes: &[u8], n: usize) -> String {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(n)
        .map(|d| char::from_digit(d as u32, 16).unwrap_or('0'))
        .collect()
}

/// 12 hex digits of SHA-256(network): selects a network's objects for GC.
pub fn network_digest(network: &str) -> String {
    hex(&Sha256::digest(network.as_bytes()), 12)
}

/// 24 hex digits (96 bits) of SHA-256(network NUL container-id NUL ifname): the attachment.
pub fn attachment_digest(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h = Sha256::new();
    h.update(network.as_bytes());
    h.update([0]);
    h.update(container_id.as_bytes());
    h.update([0]);
    h.update(ifname.as_bytes());
    hex(&h.finalize(), 24)
}

/// `uscni:<network digest>:<attachment digest>:<ifname>` (the ifname, readable in `show
/// interface`, is left out if it would not fit).
pub fn interface_tag(att: &Attachment) -> String {
    let base = format!(
        "{PREFIX}{}:{}",
        network_digest(&att.network),
        attachment_digest(&att.network, &att.id.container_id, &att.id.ifname)
    );
    let full = format!("{base}:{}", att.id.ifname);
    if full.len() <= MAX_TAG {
        full
    } else {
        base
    }
}

/// `uscni:<network digest>`: a bridge domain we created (shared by all attachments that name it).
pub fn bridge_domain_tag(network: &str) -> String {
    format!("{PREFIX}{}", network_digest(network))
}

/// A parsed interface tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub network: String,
    pub attachment: String,
    pub ifname: Option<String>,
}

pub fn parse(tag: &str) -> Option<Parsed> {
    let rest = tag.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, ':');
    let network = parts.next()?.to_owned();
    let attachment = parts.next()?.to_owned();
    if network.len() != 12 || attachment.len() != 24 {
        return None;
    }
    Some(Parsed { network, attachment, ifname: parts.next().map(str::to_owned) })
}

/// Whether a bridge domain's tag says we created it.
pub fn is_ours(tag: &str) -> bool {
    tag.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use userspace_cni_api::AttachmentId;

    fn att(net: &str, cid: &str, ifname: &str) -> Attachment {
        Attachment {
            id: AttachmentId::new(cid, ifname),
            network: net.into(),
            netns: None,
            pod: Default::default(),
            mac: None,
        }
    }

    #[test]
    fn tags_fit_vpp_and_tell_attachments_apart() {
        let cid = "a".repeat(64);
        let long_net = "n".repeat(253);
        let t = interface_tag(&att(&long_net, &cid, "net1234567890ab"));
        assert!(t.len() <= MAX_TAG, "{t} is {} bytes", t.len());
        assert!(t.ends_with(":net1234567890ab"), "{t}");
        let p = parse(&t).expect("parses");
        assert_eq!(p.network, network_digest(&long_net));
        // Same cid12, different full ids: different tags.
        let a = interface_tag(&att("n", "0123456789ab-1", "net1"));
        let b = interface_tag(&att("n", "0123456789ab-2", "net1"));
        assert_ne!(a, b);
        assert_eq!(interface_tag(&att("n", "c", "net1")), interface_tag(&att("n", "c", "net1")));
        assert!(parse("uscni:short:x").is_none() && parse("other").is_none());
    }
}
