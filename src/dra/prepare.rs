//! Prepare and Unprepare over the core pipeline: each request of a claim for our driver is one
//! attachment (id: claim uid, base request name) whose record holds everything it makes. Prepare
//! plans every request before the first side effect, then attaches each, or, for a request that
//! already has a record, decides with [`again`] whether to re-apply that record in place (kubelet
//! prepares again after a node reboot or its own restart) or to replace it; a failure undoes what
//! this call made. Unprepare tears down every record of the claim.

use super::claim::{plan_claim, ClaimPlan, RequestPlan};
use super::documents;
use super::{ClaimDriver, ClaimRef, PreparedDevice};
use crate::pipeline::{attach, reapply, teardown, Registry};
use crate::plan::{stages::step_names, ClaimName, DraPlan, Plan, Record, RECORD_FORMAT_DRA};
use crate::state::StateDir;
use k8s_openapi::api::resource::v1::ResourceClaim;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use userspace_cni_api::spec::{BridgeConf, IfType, InterfaceSpec, NetType, VhostConf, VhostMode};
use userspace_cni_api::{
    async_trait, codes, Attachment, AttachmentId, Backend, CniError, DraSettings, NodeSettings, PlanRequest, PodRef,
    SharedDir, Verb,
};
use userspace_cni_support::perms::{self, Permissions, PermissionsConf};

/// The engine of every DRA attachment today (KubeVirt's binding knows only the OVS driver).
pub const ENGINE: &str = "ovs-dpdk";
/// The socket's file name in each per-claim dir (the proof of concept's, kept for migration).
pub const SOCKET_FILE: &str = "vhost.sock";

/// Where the claim comes from: the API server in production; tests may give claims directly.
#[async_trait]
pub trait ClaimSource: Send + Sync {
    async fn get(&self, claim: &ClaimRef, deadline: Instant) -> Result<ResourceClaim, String>;
}

/// The `ClaimDriver` of `userspace dra-plugin`.
pub struct PipelineDriver {
    pub settings: NodeSettings,
    pub registry: Arc<Registry>,
    pub claims: Arc<dyn ClaimSource>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What each per-claim socket dir gets: `dra_dir_group`, `dra_dir_mode` and the ACLs for
/// `dra_dir_acl_users` (the shared-dir step applies them through the dir's descriptor).
fn dir_permissions(dra: &DraSettings) -> Result<Permissions, CniError> {
    let mut permissions = perms::resolve(
        Some(&PermissionsConf { group: dra.dir_group.clone(), dir_mode: Some(dra.dir_mode), ..Default::default() }),
        None,
    )
    .map_err(|e| e.context("settings dra_dir_group / dra_dir_mode"))?;
    permissions.dir.acl_users = dra.dir_acl_users.clone();
    Ok(permissions)
}

/// Both ends of a claim's socket must fit `sun_path` (107 bytes and the NUL): OVS connects to the
/// host path, QEMU binds the container path, and either fails later with an error that does not
/// say why. The message names what a DRA operator or the VM's author can shorten, and both
/// lengths (the CNI front-end's message names sharedDir and socketfile instead).
fn check_socket_paths(
    dra: &DraSettings,
    pod_claim: &str,
    request: &str,
    host: &Path,
    container: &Path,
) -> Result<(), CniError> {
    use userspace_cni_support::names::{fits_sun_path, SUN_PATH_LEN};
    let max = SUN_PATH_LEN - 1;
    let (host_len, container_len) = (host.as_os_str().len(), container.as_os_str().len());
    let mut shorten = Vec::new();
    if !fits_sun_path(host) {
        shorten.push(format!("the setting dra_socket_root ({})", dra.socket_root.display()));
    }
    if !fits_sun_path(container) {
        shorten.push(format!("the setting dra_container_root ({})", dra.container_root.display()));
    }
    if shorten.is_empty() {
        return Ok(());
    }
    Err(CniError::invalid_config(format!(
        "the claim's vhost-user socket path is too long: on the host {} is {host_len} bytes \
         (dra_socket_root/<pod uid>_<pod claim name>_<request>/{SOCKET_FILE}), in the container {} is \
         {container_len} bytes (dra_container_root/<pod claim name>/<request>/{SOCKET_FILE}); a unix socket path \
         may have at most {max} bytes: shorten {}, or the pod claim name {pod_claim:?} or the request name \
         {request:?}",
        host.display(),
        container.display(),
        shorten.join(" and ")
    )))
}

/// The record one request of a claim will have: every path, name and document, decided without
/// side effects (the backend validates its part; socket paths are checked against `sun_path`).
pub fn plan_request(
    settings: &NodeSettings,
    backend: &dyn Backend,
    claim: &ClaimPlan,
    req: &RequestPlan,
) -> Result<Record, CniError> {
    let dra = &settings.dra;
    let invalid = |m: String| CniError::invalid_config(m);
    let bridge = dra.bridges.iter().find(|b| b.name == req.device).ok_or_else(|| {
        invalid(format!(
            "claim {}/{}: device {:?} is not a bridge of this node (dra_bridges: {}); the node's ResourceSlice is stale \
             or the settings changed since the allocation",
            claim.claim.namespace,
            claim.claim.name,
            req.device,
            dra.bridges.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let id = AttachmentId::new(claim.claim.uid.clone(), req.base.clone());
    StateDir::check_names_fit(&id).map_err(invalid)?;
    // The claim's name in the pod: from a template, kubelet's annotation; else the claim's own.
    let pod_claim = claim.pod_claim_name.clone().unwrap_or_else(|| claim.claim.name.clone());
    let host_dir = dra.socket_root.join(format!("{}_{}_{}", claim.pod.uid, pod_claim, req.base));
    let container_dir = dra.container_root.join(&pod_claim).join(&req.base);
    let permissions = dir_permissions(dra)?;
    let shared = SharedDir { host: host_dir.clone(), pod: container_dir.clone(), group: None, permissions };
    let attachment = Attachment {
        id: id.clone(),
        network: dra.driver_name.clone(),
        netns: None,
        pod: PodRef {
            namespace: Some(claim.claim.namespace.clone()),
            name: Some(claim.pod.name.clone()),
            uid: Some(claim.pod.uid.clone()),
            infra_container_id: None,
        },
        mac: None,
    };
    let mut raw_host = json!({"mtu": bridge.mtu});
    if let Some(p) = &req.config.policing {
        raw_host["ingressPolicing"] = json!({"rate": p.rate_kbps, "burst": p.burst_kb});
    }
    let host = InterfaceSpec {
        engine: Some(ENGINE.into()),
        iftype: Some(IfType::VhostUser),
        net_type: Some(NetType::Bridge),
        // OVS is the client: QEMU (the VM) serves the socket it creates after Prepare.
        vhost: Some(VhostConf { mode: Some(VhostMode::Client), group: None, socketfile: Some(SOCKET_FILE.into()) }),
        bridge: Some(BridgeConf { bridge_name: Some(bridge.name.clone()), bridge_id: None, vlan_id: req.config.vlan }),
        raw: raw_host,
        ..InterfaceSpec::default()
    };
    let container = InterfaceSpec {
        engine: Some(ENGINE.into()),
        iftype: Some(IfType::VhostUser),
        net_type: Some(NetType::Interface),
        vhost: Some(VhostConf { mode: Some(VhostMode::Server), group: None, socketfile: Some(SOCKET_FILE.into()) }),
        ..InterfaceSpec::default()
    };
    let backend_plan = backend.plan(&PlanRequest {
        attachment: &attachment,
        host: &host,
        container: &container,
        shared_dir: &shared,
        settings,
        // Every claim's socket is `vhost.sock` in its own dir: the OVS port name must come from
        // the attachment (claim uid and request), not from the file name.
        socket_name_from_device_plugin: true,
    })?;
    let socket = backend_plan.socket.as_ref().ok_or_else(|| {
        CniError::new(codes::INTERNAL, format!("engine {ENGINE} planned no socket for a vhost-user device"))
    })?;
    check_socket_paths(dra, &pod_claim, &req.base, &socket.host_path, &socket.pod_path)?;

    let docs = documents::for_request(settings, claim, req, bridge.mtu, &socket.pod_path, &host_dir, &container_dir)?;
    let mut plan = Plan {
        engine: backend.engine().to_owned(),
        shared_dir: Some(shared),
        creates_shared_dir: true,
        short_dir: None,
        backend: backend_plan,
        device_info_file: None,
        device_info_given: false,
        device_info_vhost_mode: Default::default(),
        annotations: None,
        config_file: None,
        ipam: None,
        cni_path: Vec::new(),
        cni_args: None,
        dra: Some(DraPlan {
            driver: dra.driver_name.clone(),
            claim: ClaimName {
                namespace: claim.claim.namespace.clone(),
                name: claim.claim.name.clone(),
                uid: claim.claim.uid.clone(),
            },
            pod_claim_name: claim.pod_claim_name.clone(),
            request: req.request.clone(),
            pool: req.pool.clone(),
            device: req.device.clone(),
            share_id: req.share_id.clone(),
            cdi_device_ids: docs.cdi_device_ids,
            metadata: docs.metadata,
            cdi_specs: docs.cdi_specs,
        }),
        steps: Vec::new(),
    };
    plan.steps = step_names(&plan, backend)?;
    Ok(Record {
        format: RECORD_FORMAT_DRA,
        complete: false,
        created_unix_ms: now_ms(),
        boot_id: settings.current_boot_id(),
        cni_version: "1.1.0".into(),
        attachment,
        // What the attachment was planned from, for `inspect` and humans: the same shape as a
        // CNI config of this network (DEL never reads it back for a DRA record).
        config: json!({
            "cniVersion": "1.1.0",
            "name": dra.driver_name,
            "type": "userspace",
            "host": {"engine": ENGINE, "iftype": "vhostuser", "netType": "bridge",
                     "vhost": {"mode": "client", "socketfile": SOCKET_FILE},
                     "bridge": {"bridgeName": bridge.name, "vlanId": req.config.vlan},
                     "mtu": bridge.mtu},
            "container": {"engine": ENGINE, "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}},
        }),
        plan,
        outputs: None,
    })
}

/// The device kubelet gets for a prepared request.
fn device_of(plan: &DraPlan, base: &str) -> PreparedDevice {
    PreparedDevice {
        request_names: vec![base.to_owned()],
        pool_name: plan.pool.clone(),
        device_name: plan.device.clone(),
        cdi_device_ids: plan.cdi_device_ids.clone(),
        share_id: plan.share_id.clone(),
    }
}

/// The DRA records of a claim on this node (any request).
fn records_of(state: &StateDir, uid: &str) -> Result<Vec<Record>, CniError> {
    let mut out = Vec::new();
    for r in state.list_records()? {
        match r {
            Ok(rec) if rec.is_dra() && rec.attachment.id.container_id == uid => out.push(rec),
            Ok(_) => {}
            // Another attachment's unreadable record is not this claim's problem.
            Err(e) => tracing::warn!(error = %e, "unreadable record skipped"),
        }
    }
    Ok(out)
}

/// What Prepare does with a request that already has a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Again {
    /// Make the recorded attachment hold again, as it was planned (never a cached answer).
    Reapply { note: Option<&'static str> },
    /// Tear the recorded attachment down and attach the new plan.
    Replace { why: &'static str },
}

/// The rule for a request prepared before. A VM may be running on a complete attachment of this
/// boot, so it is re-applied as planned even when the settings changed since (replacing it would
/// delete the socket dir under QEMU); the new settings reach it at its next Prepare in another
/// boot, when nothing can be using it. An interrupted attempt, or a record of an earlier
/// allocation of the claim (another pod, device or request: its Unprepare never came), is
/// replaced.
pub fn again(old: &Record, new: &Record, boot: Option<&str>) -> Again {
    if !old.complete {
        return Again::Replace { why: "an earlier attempt was interrupted" };
    }
    let allocation = |r: &Record| {
        r.plan.dra.as_ref().map(|d| {
            (r.attachment.pod.uid.clone(), d.claim.clone(), d.pod_claim_name.clone(), d.request.clone(), d.pool.clone())
        })
    };
    let device = |r: &Record| r.plan.dra.as_ref().map(|d| (d.device.clone(), d.share_id.clone()));
    if allocation(old) != allocation(new) || device(old) != device(new) {
        return Again::Replace { why: "the record is of an earlier allocation of this claim" };
    }
    if old.plan == new.plan {
        return Again::Reapply { note: None };
    }
    if old.from_another_boot(boot) {
        return Again::Replace { why: "prepared in an earlier boot under other settings" };
    }
    Again::Reapply { note: Some("the settings changed since it was prepared; kept as prepared while its pod may run") }
}

impl PipelineDriver {
    fn state(&self) -> StateDir {
        StateDir::at(&self.settings.state_dir)
    }

    /// One request: attach, or re-apply or replace its earlier record ([`again`]). Returns the
    /// record in effect and whether this call created it (so a later failure of the claim undoes
    /// only those).
    async fn prepare_one(
        &self,
        backend: &dyn Backend,
        new: &Record,
        deadline: Instant,
    ) -> Result<(Record, bool), CniError> {
        let state = self.state();
        let id = &new.attachment.id;
        let budget = deadline.saturating_duration_since(Instant::now()).min(self.settings.timeout());
        let lock = state.lock_attachment(id, budget).await?;
        if let Some(old) = state.read_record(id)? {
            match again(&old, new, self.settings.current_boot_id().as_deref()) {
                Again::Reapply { note } => {
                    let (updated, actions) = reapply(&self.settings, backend, &state, &old, deadline).await?;
                    if let Some(note) = note {
                        tracing::warn!(claim = %id.container_id, request = %id.ifname, "{note}");
                    }
                    if !actions.is_empty() {
                        tracing::info!(claim = %id.container_id, request = %id.ifname, actions = %actions.join("; "), "prepared again");
                    }
                    return Ok((updated, false));
                }
                Again::Replace { why } => {
                    tracing::info!(claim = %id.container_id, request = %id.ifname, "replacing the earlier record: {why}");
                    teardown(Verb::Del, &self.settings, &self.registry, &state, &old).await?;
                }
            }
        }
        match attach(Verb::Add, &self.settings, backend, &state, new, deadline).await {
            Ok(_) => {
                drop(lock);
                Ok((new.clone(), true))
            }
            Err(f) => {
                if f.record_removed {
                    lock.release_and_remove();
                }
                Err(f.error)
            }
        }
    }

    async fn undo_created(&self, created: &[Record]) {
        let state = self.state();
        for rec in created.iter().rev() {
            let Ok(lock) = state.lock_attachment(&rec.attachment.id, self.settings.timeout()).await else { continue };
            // The completed record (with outputs) is what teardown must read.
            let current = match state.read_record(&rec.attachment.id) {
                Ok(Some(r)) => r,
                _ => continue,
            };
            match teardown(Verb::Del, &self.settings, &self.registry, &state, &current).await {
                Ok(()) => lock.release_and_remove(),
                Err(e) => tracing::error!(error = %e, claim = %rec.attachment.id.container_id,
                    "undoing a prepared request failed; its record stays for Unprepare or the reconciler"),
            }
        }
    }

    pub async fn prepare_claim(&self, claim: &ClaimRef, deadline: Instant) -> Result<Vec<PreparedDevice>, CniError> {
        let object = self.claims.get(claim, deadline).await.map_err(|m| CniError::new(codes::TRY_AGAIN_LATER, m))?;
        let planned = plan_claim(&object, &claim.uid, &self.settings.dra.driver_name)
            .map_err(|e| CniError::invalid_config(e.to_string()))?;
        let backend = self.registry.get(ENGINE)?;
        // Every request planned before the first side effect.
        let records = planned
            .requests
            .iter()
            .map(|r| plan_request(&self.settings, backend.as_ref(), &planned, r))
            .collect::<Result<Vec<_>, _>>()?;
        self.state().ensure()?;
        let mut created = Vec::new();
        let mut in_effect = Vec::new();
        for rec in &records {
            match self.prepare_one(backend.as_ref(), rec, deadline).await {
                Ok((effective, made)) => {
                    if made {
                        created.push(rec.clone());
                    }
                    in_effect.push(effective);
                }
                Err(e) => {
                    self.undo_created(&created).await;
                    return Err(e);
                }
            }
        }
        // The answer describes what is in place (a re-applied record keeps its own CDI ids).
        Ok(in_effect
            .iter()
            .filter_map(|r| r.plan.dra.as_ref().map(|d| device_of(d, &r.attachment.id.ifname)))
            .collect())
    }

    pub async fn unprepare_claim(&self, claim: &ClaimRef, deadline: Instant) -> Result<(), CniError> {
        let state = self.state();
        let mut errors = Vec::new();
        for rec in records_of(&state, &claim.uid)? {
            let id = rec.attachment.id.clone();
            let budget = deadline.saturating_duration_since(Instant::now()).min(self.settings.timeout());
            let lock = state.lock_attachment(&id, budget).await?;
            // Re-read under the lock: a concurrent Unprepare may have finished it.
            let Some(current) = state.read_record(&id)? else {
                lock.release_and_remove();
                continue;
            };
            match teardown(Verb::Del, &self.settings, &self.registry, &state, &current).await {
                Ok(()) => lock.release_and_remove(),
                Err(e) => errors.push(format!("request {}: {e}", id.ifname)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CniError::io(errors.join("; ")))
        }
    }
}

#[async_trait]
impl ClaimDriver for PipelineDriver {
    async fn prepare(&self, claim: &ClaimRef, deadline: Instant) -> Result<Vec<PreparedDevice>, String> {
        self.prepare_claim(claim, deadline).await.map_err(|e| format!("claim {}/{}: {e}", claim.namespace, claim.name))
    }

    async fn unprepare(&self, claim: &ClaimRef, deadline: Instant) -> Result<(), String> {
        self.unprepare_claim(claim, deadline)
            .await
            .map_err(|e| format!("claim {}/{}: {e}", claim.namespace, claim.name))
    }
}

/// The host directory of a DRA record's sockets (for the reconciler and tests).
pub fn socket_dir_of(rec: &Record) -> Option<PathBuf> {
    rec.plan.shared_dir.as_ref().map(|d| d.host.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete DRA record of this boot (the format-2 fixture: one OVS client port).
    fn record() -> Record {
        let mut r: Record =
            serde_json::from_str(include_str!("../../tests/fixtures/records/format2-dra-ovs.json")).expect("fixture");
        r.complete = true;
        r.boot_id = Some("boot-a".into());
        r
    }

    fn dra(r: &mut Record) -> &mut DraPlan {
        r.plan.dra.as_mut().expect("a DRA record")
    }

    #[test]
    fn the_same_plan_is_reapplied_in_any_boot() {
        let old = record();
        assert_eq!(again(&old, &old.clone(), Some("boot-a")), Again::Reapply { note: None });
        assert_eq!(again(&old, &old.clone(), Some("boot-b")), Again::Reapply { note: None });
    }

    #[test]
    fn an_interrupted_attempt_is_replaced_even_with_the_same_plan() {
        let mut old = record();
        old.complete = false;
        assert!(matches!(again(&old, &record(), Some("boot-a")), Again::Replace { .. }));
    }

    #[test]
    fn changed_settings_keep_a_running_attachment_of_this_boot_and_reach_it_after_a_reboot() {
        let old = record();
        let mut new = record();
        // A settings change: another metadata dir (the planned documents move with it).
        for f in &mut dra(&mut new).metadata {
            f.root = PathBuf::from("/elsewhere");
        }
        assert!(matches!(again(&old, &new, Some("boot-a")), Again::Reapply { note: Some(_) }));
        assert!(matches!(again(&old, &new, None), Again::Reapply { note: Some(_) }), "an unknown boot is this one");
        assert!(matches!(again(&old, &new, Some("boot-b")), Again::Replace { .. }));
    }

    #[test]
    fn a_record_of_an_earlier_allocation_is_replaced_in_this_boot_too() {
        let old = record();
        let changes: [fn(&mut Record); 4] = [
            |r| r.attachment.pod.uid = Some("another-pod".into()),
            |r| dra(r).device = "br-other".into(),
            |r| dra(r).request = "vhost/other".into(),
            |r| dra(r).share_id = Some("share-2".into()),
        ];
        for change in changes {
            let mut new = record();
            change(&mut new);
            assert!(matches!(again(&old, &new, Some("boot-a")), Again::Replace { .. }), "{new:?}");
        }
    }
}
