//! The VPP backend: memif and vhost-user interfaces, bridge domains and addresses, driven through
//! VPP's binary API over its unix socket. Never hard-codes a message id or trusts a stored index.

pub mod adopt;
pub mod api;
pub mod config;
mod conn;
pub mod ops;
pub mod repair;
pub mod settings;
pub mod steps;
pub mod tags;

use crate::api::messages::{
    BridgeDomainDetails, BridgeDomainDump, ControlPing, ControlPingReply, IF_STATUS_API_FLAG_ADMIN_UP,
};
use crate::api::{Client, VppError};
use crate::config::{Iface, Net, VppPlan};
use crate::conn::vpp_err;
use userspace_cni_api::spec::VhostMode;
use userspace_cni_api::{
    async_trait, codes, AttachmentId, Backend, BackendRegistration, CniError, NodeSettings, OwnedObject, PlanRequest,
    Planned, Repair, SocketDescriptor, SocketKind, Step, StepContext, Typed, TypedBackend,
};

pub use api::messages::{VPP_COMMIT, VPP_RELEASE};

pub const ENGINE: &str = "vpp";

pub struct VppBackend;

/// The socket the workload opens, stated from its side (VPP master → workload slave).
fn socket_descriptor(req: &PlanRequest<'_>, plan: &VppPlan) -> Option<SocketDescriptor> {
    let (kind, mode, memif_mode, file) = match &plan.iface {
        // An abstract socket has no file; the memif step publishes `@name` itself.
        Iface::Memif(m) if m.abstract_name.is_some() => return None,
        Iface::Memif(m) => (
            SocketKind::Memif,
            m.role.inverse().as_str(),
            Some(m.mode.as_str().to_owned()),
            std::path::PathBuf::from(&m.socket),
        ),
        Iface::VhostUser(v) => (SocketKind::VhostUser, v.mode.inverse().as_str(), None, v.socket.clone()),
    };
    let name = file.file_name().map(std::path::PathBuf::from).unwrap_or_default();
    Some(SocketDescriptor {
        kind,
        workload_mode: mode.into(),
        memif_mode,
        host_path: file.clone(),
        pod_path: req.shared_dir.pod.join(name),
        mac: req.attachment.mac.clone(),
        mtu: None,
    })
}

/// Connect for a verb outside ADD/DEL (CHECK, GC, STATUS).
async fn connect(settings: &NodeSettings) -> Result<Client, VppError> {
    conn::connect(settings, settings.timeout()).await
}

/// `sw_if_index`es of the interfaces tagged `tag`, with what kind of interface each is.
async fn tagged_kinds(c: &mut Client, tag: &str) -> Result<Vec<(u32, &'static str)>, VppError> {
    let mine: Vec<u32> = ops::tagged(c, tag).await?.into_iter().map(|i| i.sw_if_index).collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let memifs: Vec<u32> = ops::memifs(c).await?.into_iter().map(|m| m.sw_if_index).collect();
    let vhosts: Vec<u32> = ops::vhosts(c).await?.into_iter().map(|v| v.sw_if_index).collect();
    Ok(mine
        .into_iter()
        .map(|i| {
            let kind = if memifs.contains(&i) {
                "memif"
            } else if vhosts.contains(&i) {
                "vhost-user"
            } else {
                "interface"
            };
            (i, kind)
        })
        .collect())
}

#[async_trait]
impl TypedBackend for VppBackend {
    type Plan = VppPlan;

    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn plan(&self, req: &PlanRequest<'_>) -> Result<Planned<VppPlan>, CniError> {
        let plan = config::plan(req)?;
        let socket = socket_descriptor(req, &plan);
        let uses_shared_dir = socket.is_some();
        Ok(Planned { plan, socket, uses_shared_dir })
    }

    fn steps(&self, plan: &VppPlan) -> Result<Vec<Box<dyn Step>>, CniError> {
        Ok(steps::for_plan(plan))
    }

    async fn check(&self, ctx: &StepContext, plan: &VppPlan) -> Result<(), CniError> {
        let mut c = conn::connect(&ctx.settings, ctx.wait_budget()).await.map_err(vpp_err("CHECK"))?;
        let r = check_plan(&mut c, plan).await;
        c.close().await;
        r
    }

    async fn list_owned(&self, settings: &NodeSettings, network: &str) -> Result<Vec<OwnedObject>, CniError> {
        let mut c = connect(settings).await.map_err(vpp_err("listing our VPP interfaces"))?;
        let digest = tags::network_digest(network);
        let all = ops::interfaces(&mut c).await.map_err(vpp_err("listing our VPP interfaces"));
        c.close().await;
        let mut out = Vec::new();
        for i in all? {
            let Some(t) = tags::parse(&i.tag) else { continue };
            if t.network != digest {
                continue;
            }
            out.push(OwnedObject {
                // A VPP tag holds only a digest of the container id (see `tags`): the id says so.
                id: AttachmentId::new(
                    format!("{}{}", tags::DIGEST_ID_PREFIX, t.attachment),
                    t.ifname.unwrap_or_default(),
                ),
                network: network.to_owned(),
                kind: "interface".into(),
                name: i.tag,
            });
        }
        Ok(out)
    }

    fn owned_by(&self, obj: &OwnedObject, id: &AttachmentId) -> bool {
        tags::parse(&obj.name)
            .is_some_and(|t| t.attachment == tags::attachment_digest(&obj.network, &id.container_id, &id.ifname))
    }

    async fn remove_owned(&self, settings: &NodeSettings, obj: &OwnedObject) -> Result<(), CniError> {
        let mut c = connect(settings).await.map_err(vpp_err("GC"))?;
        let r = remove_tagged(&mut c, &obj.name).await.map_err(vpp_err("GC: deleting a tagged VPP interface"));
        c.close().await;
        r
    }

    async fn status(&self, settings: &NodeSettings) -> Result<(), CniError> {
        let unavailable = |e: VppError| CniError::new(codes::NOT_AVAILABLE, e.to_string());
        let mut c = connect(settings).await.map_err(unavailable)?;
        let r = c.call::<_, ControlPingReply>(ControlPing::default(), "control_ping").await.map_err(unavailable);
        c.close().await;
        r.map(|_| ())
    }

    /// `userspace doctor`: VPP answers a control ping on its API socket.
    async fn doctor(&self, settings: &NodeSettings, required: bool) -> userspace_cni_api::Diagnosis {
        use userspace_cni_api::DoctorCheck;
        let socket = settings::VppSettings::from_node(settings).api_socket;
        let present = socket.exists();
        let endpoint = Some(format!("the VPP API socket ({})", socket.display()));
        let check = if !present && !required {
            DoctorCheck::skip("VPP API", format!("{} absent: VPP not checked", socket.display()))
        } else {
            match self.status(settings).await {
                Ok(()) => DoctorCheck::pass("VPP API", format!("{} answers", socket.display())),
                Err(e) => DoctorCheck::fail(
                    "VPP API",
                    e.msg,
                    format!("start VPP with its api socket at {}, or set vpp_api_socket", socket.display()),
                ),
            }
        };
        userspace_cni_api::Diagnosis { present, endpoint, checks: vec![check], hugepages_not_needed: None }
    }

    /// After a VPP restart: re-create what the record names (see `repair`).
    async fn repair(&self, ctx: &mut StepContext, plan: &VppPlan) -> Result<Repair, CniError> {
        repair::repair(ctx, plan).await
    }

    /// An upstream plugin's interface, named by its state file's `swIfIndex` (see `adopt`).
    async fn adopt(
        &self,
        settings: &NodeSettings,
        _attachment: &userspace_cni_api::Attachment,
        plan: &VppPlan,
        legacy: &serde_json::Value,
        dry_run: bool,
    ) -> Result<userspace_cni_api::Adoption, CniError> {
        adopt::adopt(settings, plan, legacy, dry_run).await
    }
}

/// Delete every interface tagged `tag` (memif or vhost-user) and, for a memif, its socket
/// filename when nothing else uses it.
async fn remove_tagged(c: &mut Client, tag: &str) -> Result<(), VppError> {
    let memif_socket: std::collections::HashMap<u32, u32> =
        ops::memifs(c).await?.into_iter().map(|m| (m.sw_if_index, m.socket_id)).collect();
    for (idx, kind) in tagged_kinds(c, tag).await? {
        match kind {
            "memif" => {
                ops::delete_memif(c, idx).await?;
                if let Some(id) = memif_socket.get(&idx) {
                    ops::remove_socket_if_unused(c, *id).await?;
                }
            }
            "vhost-user" => ops::delete_vhost(c, idx).await?,
            _ => tracing::warn!(sw_if_index = idx, tag, "tagged VPP interface is neither memif nor vhost-user; left"),
        }
    }
    Ok(())
}

async fn check_plan(c: &mut Client, p: &VppPlan) -> Result<(), CniError> {
    let err = |e: VppError| CniError::from(e).context("CHECK");
    let ifaces = ops::tagged(c, &p.tag).await.map_err(&err)?;
    let Some(iface) = ifaces.first() else {
        return Err(CniError::io(format!("the VPP interface tagged {} is missing", p.tag)));
    };
    let idx = iface.sw_if_index;
    if iface.flags & IF_STATUS_API_FLAG_ADMIN_UP == 0 {
        return Err(CniError::io(format!("VPP interface {} is administratively down", iface.interface_name)));
    }
    match &p.iface {
        Iface::Memif(m) => {
            let ids = ops::socket_ids(c, &m.socket).await.map_err(&err)?;
            let memif = ops::memifs(c).await.map_err(&err)?.into_iter().find(|x| x.sw_if_index == idx);
            match memif {
                Some(x) if ids.contains(&x.socket_id) => {}
                Some(_) => {
                    return Err(CniError::io(format!("memif {} is not on socket {}", iface.interface_name, m.socket)))
                }
                None => return Err(CniError::io(format!("VPP interface {} is not a memif", iface.interface_name))),
            }
        }
        Iface::VhostUser(v) => {
            let want = v.socket.to_string_lossy();
            let vh = ops::vhosts(c).await.map_err(&err)?.into_iter().find(|x| x.sw_if_index == idx);
            match vh {
                Some(x) if x.sock_filename == want && x.is_server == (v.mode == VhostMode::Server) => {}
                Some(x) => {
                    return Err(CniError::io(format!(
                        "vhost-user {} has socket {} (server {}), expected {want} (server {})",
                        iface.interface_name,
                        x.sock_filename,
                        x.is_server,
                        v.mode == VhostMode::Server
                    )))
                }
                None => return Err(CniError::io(format!("VPP interface {} is not vhost-user", iface.interface_name))),
            }
        }
    }
    if let Net::Bridge { bd_id } = p.net {
        let bds: Vec<BridgeDomainDetails> = c
            .dump(BridgeDomainDump { bd_id, sw_if_index: ops::ALL, ..Default::default() }, "bridge_domain_dump")
            .await
            .map_err(&err)?;
        if !bds.iter().any(|b| b.bd_id == bd_id && b.sw_if_details.iter().any(|m| m.sw_if_index == idx)) {
            return Err(CniError::io(format!(
                "VPP interface {} is not in bridge domain {bd_id}",
                iface.interface_name
            )));
        }
    }
    Ok(())
}

fn make() -> Box<dyn Backend> {
    Box::new(Typed(VppBackend))
}

userspace_cni_api::inventory::submit! {
    BackendRegistration {
        engine: ENGINE,
        description: "VPP: memif and vhost-user interfaces over VPP's binary API (built for VPP v26.06)",
        make,
        settings: settings::SETTINGS,
    }
}
