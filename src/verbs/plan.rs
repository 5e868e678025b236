//! What the CNI verbs add to the core's planning: the attachment's identity from the CNI
//! environment (CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, CNI_ARGS) and the request the core plans
//! with. Everything else is `pipeline::planner`.

use super::Invocation;
use crate::netconf::NetConf;
use crate::pipeline::{attachment_of, AttachRequest};
use userspace_cni_api::{codes, Attachment, AttachmentId, CniError};

/// (CNI_CONTAINERID, CNI_IFNAME): the env parser already required them for ADD, DEL and CHECK.
pub fn attachment_id(inv: &Invocation<'_>) -> Result<AttachmentId, CniError> {
    let env = inv.env;
    let id = AttachmentId::new(
        env.container_id.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_CONTAINERID is required"))?,
        env.ifname.clone().ok_or_else(|| CniError::new(codes::INVALID_ENV, "CNI_IFNAME is required"))?,
    );
    crate::state::StateDir::check_names_fit(&id).map_err(|m| CniError::new(codes::INVALID_ENV, m))?;
    Ok(id)
}

/// The attachment from the environment, CNI_ARGS and the config.
pub fn attachment(inv: &Invocation<'_>, conf: &NetConf) -> Result<Attachment, CniError> {
    attachment_of(attachment_id(inv)?, inv.env.netns.clone(), &inv.env.args, conf)
}

/// The core's planning request for this invocation.
pub fn request<'a>(inv: &'a Invocation<'a>, conf: &'a NetConf, att: &'a Attachment) -> AttachRequest<'a> {
    AttachRequest { settings: inv.settings, conf, attachment: att, cni_path: &inv.env.path, cni_args: &inv.env.args }
}
