//! Adoption of an interface the upstream plugin created (docs/upgrading.md): its state file holds
//! only `{"swIfIndex", "memifSocketId"}`, and a `sw_if_index` is reused after a VPP restart, so the
//! index is trusted only once the interface it names now is verified to be the one our plan
//! describes (a memif on the plan's socket filename with the plan's role, or a vhost-user on the
//! plan's socket and mode) and to carry no tag or exactly this attachment's. Only then is it
//! tagged the way ADD tags (`sw_interface_tag_add_del`), after which the ordinary undo, GC and
//! the reconciler find it by tag. Never tags or changes an interface that fails the check.

use crate::api::messages::SwInterfaceTagAddDelReply;
use crate::api::messages::{MemifSocketFilenameDetails, MemifSocketFilenameDump, SwInterfaceTagAddDel};
use crate::api::{Client, VppError};
use crate::config::{Iface, VppPlan};
use crate::{conn, ops, steps, tags};
use serde_json::Value;
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{codes, Adoption, CniError, NodeSettings};
use userspace_cni_support::json::get_ci;

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(
        "the upstream VPP state file holds no swIfIndex that is a 32-bit number ({found}); \
         inspect the file, remove the interface by hand if it exists, then the file"
    )]
    BadState { found: String },
    #[error("{what}: {source}")]
    Vpp { what: &'static str, source: VppError },
}

impl From<AdoptError> for CniError {
    fn from(e: AdoptError) -> Self {
        match e {
            AdoptError::BadState { .. } => CniError::new(codes::DECODE_FAILURE, e.to_string()),
            // VPP unreachable stays code 11 (the caller keeps the state file and is retried).
            AdoptError::Vpp { what, source } => CniError::from(source).context(what),
        }
    }
}

fn vpp(what: &'static str) -> impl FnOnce(VppError) -> AdoptError {
    move |source| AdoptError::Vpp { what, source }
}

/// What the interface at the state file's index is, compared with the plan.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Missing,
    Mismatch(String),
    /// Matches, and carries no tag (the upstream plugin set none).
    Untagged,
    /// Matches, and already carries this attachment's tag (an interrupted adoption).
    Ours,
}

/// The interface named by an upstream state file (`{"swIfIndex": N, ...}`), checked against
/// `plan` and, unless `dry_run`, tagged with `plan.tag`.
pub async fn adopt(
    settings: &NodeSettings,
    plan: &VppPlan,
    legacy: &Value,
    dry_run: bool,
) -> Result<Adoption, CniError> {
    let idx = sw_if_index(legacy)?;
    let object = format!("VPP interface sw_if_index {idx}");
    let mut c = conn::connect(settings, settings.timeout())
        .await
        .map_err(vpp("adopting the upstream plugin's VPP interface"))?;
    let r = adopt_with(&mut c, plan, idx, object, dry_run).await;
    c.close().await;
    Ok(r?)
}

/// `swIfIndex`, matched case-insensitively as Go's encoding/json read it back.
fn sw_if_index(legacy: &Value) -> Result<u32, AdoptError> {
    get_ci(legacy, "swIfIndex").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        let mut found = legacy.to_string();
        found.truncate(200);
        AdoptError::BadState { found }
    })
}

async fn adopt_with(
    c: &mut Client,
    plan: &VppPlan,
    idx: u32,
    object: String,
    dry_run: bool,
) -> Result<Adoption, AdoptError> {
    match verify(c, plan, idx).await.map_err(vpp("reading the upstream VPP interface"))? {
        Verdict::Missing => return Ok(Adoption::Missing { object }),
        Verdict::Mismatch(reason) => return Ok(Adoption::Mismatch { object, reason }),
        Verdict::Ours => return Ok(Adoption::Adopted { object, already: true }),
        Verdict::Untagged if dry_run => return Ok(Adoption::Adopted { object, already: false }),
        Verdict::Untagged => {}
    }
    steps::set_tag(c, idx, &plan.tag).await.map_err(vpp("tagging the upstream VPP interface"))?;
    // VPP has no conditional write: if the interface was deleted and its index reused between the
    // dump and the tag, the tag landed on another interface. Read back, and take it off again.
    match verify(c, plan, idx).await.map_err(vpp("re-reading the adopted VPP interface"))? {
        Verdict::Ours => Ok(Adoption::Adopted { object, already: false }),
        Verdict::Missing => Ok(Adoption::Missing { object }),
        other => {
            tracing::warn!(sw_if_index = idx, verdict = ?other, "VPP interface changed while being adopted");
            untag_if_ours(c, idx, &plan.tag).await.map_err(vpp("untagging a VPP interface that changed"))?;
            let reason = "the interface changed while it was being adopted; run again".to_owned();
            Ok(Adoption::Mismatch { object, reason })
        }
    }
}

/// Compare what VPP holds at `idx` now with the plan (every dump fresh).
async fn verify(c: &mut Client, plan: &VppPlan, idx: u32) -> Result<Verdict, VppError> {
    let Some(iface) = ops::interfaces(c).await?.into_iter().find(|i| i.sw_if_index == idx) else {
        return Ok(Verdict::Missing);
    };
    let name = iface.interface_name;
    let tag_verdict = if iface.tag.is_empty() {
        Verdict::Untagged
    } else if iface.tag == plan.tag {
        Verdict::Ours
    } else if tags::parse(&iface.tag).is_some() {
        return Ok(Verdict::Mismatch(format!("{name} carries another userspace-cni attachment's tag {}", iface.tag)));
    } else {
        return Ok(Verdict::Mismatch(format!("{name} carries tag {:?}, which neither plugin writes", iface.tag)));
    };
    let wrong = match &plan.iface {
        Iface::Memif(m) => match ops::memifs(c).await?.into_iter().find(|x| x.sw_if_index == idx) {
            None => Some(format!("{name} is not a memif, the plan describes one")),
            Some(x) => {
                let files: Vec<MemifSocketFilenameDetails> =
                    c.dump(MemifSocketFilenameDump::default(), "memif_socket_filename_dump").await?;
                let file = files.into_iter().find(|s| s.socket_id == x.socket_id).map(|s| s.socket_filename);
                match file {
                    Some(f) if ops::same_filename(&f, &m.socket) => (x.role != steps::role_api(m.role)).then(|| {
                        format!(
                            "{name} has memif role {} in VPP's numbering, the plan needs {}",
                            x.role,
                            m.role.as_str()
                        )
                    }),
                    Some(f) => Some(format!("{name} uses socket {f}, the plan computes {}", m.socket)),
                    None => Some(format!("{name} uses memif socket id {}, which has no filename", x.socket_id)),
                }
            }
        },
        Iface::VhostUser(v) => match ops::vhosts(c).await?.into_iter().find(|x| x.sw_if_index == idx) {
            None => Some(format!("{name} is not a vhost-user interface, the plan describes one")),
            Some(x) => {
                let want = v.socket.to_string_lossy();
                let server = v.mode == VhostMode::Server;
                (x.sock_filename != want || x.is_server != server).then(|| {
                    format!(
                        "{name} has socket {} (server {}), the plan computes {want} (server {server})",
                        x.sock_filename, x.is_server
                    )
                })
            }
        },
    };
    Ok(wrong.map(Verdict::Mismatch).unwrap_or(tag_verdict))
}

/// Take `tag` off `idx` only if it is still there (it may be someone else's interface by now).
async fn untag_if_ours(c: &mut Client, idx: u32, tag: &str) -> Result<(), VppError> {
    let still = ops::interfaces(c).await?.into_iter().any(|i| i.sw_if_index == idx && i.tag == tag);
    if !still {
        return Ok(());
    }
    let req = SwInterfaceTagAddDel { is_add: false, sw_if_index: idx, ..Default::default() };
    c.call::<_, SwInterfaceTagAddDelReply>(req, "sw_interface_tag_add_del (del)").await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_index_is_read_as_go_read_it_and_nothing_else_is_accepted() {
        assert_eq!(sw_if_index(&json!({"swIfIndex": 7, "memifSocketId": 2})).ok(), Some(7));
        assert_eq!(sw_if_index(&json!({"swifindex": 3})).ok(), Some(3));
        for bad in [json!({"swIfIndex": -1}), json!({"swIfIndex": 1u64 << 33}), json!({"x": 1}), json!([1])] {
            let e = sw_if_index(&bad).err().map(CniError::from);
            assert_eq!(e.map(|e| e.code), Some(codes::DECODE_FAILURE), "{bad}");
        }
    }
}
