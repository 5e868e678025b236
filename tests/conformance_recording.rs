//! The recording fake backend (the test kit's engine `recording`) through the conformance kit,
//! in server mode (it delivers a socket into the shared dir) and client mode. Its dataplane is a
//! JSON file under the node's state dir; "unreachable" is its down switch, and a restart is the
//! switch off and on again (a file-backed dataplane keeps its configuration).

use serde_json::json;
use userspace_cni_api::{async_trait, Backend, BackendPlan};
use userspace_cni_testkit::conformance::{self, Fixture, Harness, HarnessError};
use userspace_cni_testkit::{self as testkit, RecordingBackend};

struct Recording;

fn fake_err(e: std::io::Error) -> HarnessError {
    HarnessError::Failed(format!("recording dataplane switch: {e}"))
}

#[async_trait]
impl Harness for Recording {
    fn backend(&self) -> Box<dyn Backend> {
        Box::new(RecordingBackend)
    }

    fn cases(&self) -> Vec<&'static str> {
        vec!["server", "client"]
    }

    async fn fresh(&self, case: &str) -> Result<Fixture, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("uscni-conf-rec-")
            .tempdir()
            .map_err(|e| HarnessError::Failed(format!("temp dir: {e}")))?;
        let settings = conformance::settings_under(dir.path());
        let attachment = conformance::unique_attachment("conf-rec");
        let shared_dir = conformance::shared_dir_for(&settings, &attachment);
        let host = conformance::spec(json!({
            "engine": "recording", "iftype": "vhostuser", "netType": "bridge",
            "vhost": {"mode": case}, "bridge": {"bridgeName": "br-conf"}
        }))?;
        let container = conformance::spec(json!({"engine": "recording", "iftype": "vhostuser"}))?;
        Ok(Fixture {
            settings,
            attachment,
            host,
            container,
            shared_dir,
            socket_name_from_device_plugin: false,
            guard: Some(Box::new(dir)),
        })
    }

    async fn holdings(&self, fx: &Fixture, plan: &BackendPlan) -> Result<Vec<String>, HarnessError> {
        let dp = testkit::load(&fx.settings.state_dir);
        let id = &fx.attachment.id;
        let mut held: Vec<String> = dp
            .ports
            .iter()
            .filter(|(_, p)| p.container_id == id.container_id && p.ifname == id.ifname)
            .map(|(name, p)| format!("port {name} on {}", p.bridge))
            .collect();
        let bridge = plan.data["bridge"].as_str().unwrap_or_default();
        if dp.bridges.get(bridge).is_some_and(|b| b.owner_network.is_some()) {
            held.push(format!("bridge {bridge} (created by the plugin)"));
        }
        Ok(held)
    }

    async fn restart(&self, fx: &Fixture, _plan: &BackendPlan) -> Result<(), HarnessError> {
        testkit::set_down(&fx.settings.state_dir, true).map_err(fake_err)?;
        testkit::set_down(&fx.settings.state_dir, false).map_err(fake_err)
    }

    async fn set_reachable(&self, fx: &Fixture, up: bool) -> Result<(), HarnessError> {
        testkit::set_down(&fx.settings.state_dir, !up).map_err(fake_err)
    }
}

#[tokio::test]
async fn recording_backend_passes_the_conformance_kit() {
    let report = conformance::run_all(&Recording).await;
    println!("{report}");
    assert!(report.is_ok(), "{report}");
}

/// The recording backend with a broken contract, one flaw per flag.
#[derive(Clone, Copy, Default)]
struct Broken {
    /// Its steps' undo does nothing.
    forgetful: bool,
    /// Its reconciler cannot see: `list_owned` finds nothing and `status` always answers Ok.
    blind: bool,
    /// The harness can make the dataplane unreachable (the default `set_reachable` cannot).
    switchable: bool,
}

struct NoUndo(Box<dyn userspace_cni_api::Step>);

#[async_trait]
impl userspace_cni_api::Step for NoUndo {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    async fn apply(&self, ctx: &mut userspace_cni_api::StepContext) -> Result<(), userspace_cni_api::CniError> {
        self.0.apply(ctx).await
    }

    async fn undo(&self, _ctx: &mut userspace_cni_api::StepContext) -> Result<(), userspace_cni_api::CniError> {
        Ok(())
    }
}

#[async_trait]
impl Backend for Broken {
    fn engine(&self) -> &'static str {
        "broken"
    }
    fn plan(&self, req: &userspace_cni_api::PlanRequest<'_>) -> Result<BackendPlan, userspace_cni_api::CniError> {
        RecordingBackend.plan(req)
    }
    fn steps(&self, plan: &BackendPlan) -> Result<Vec<Box<dyn userspace_cni_api::Step>>, userspace_cni_api::CniError> {
        let steps = RecordingBackend.steps(plan)?;
        if !self.forgetful {
            return Ok(steps);
        }
        Ok(steps.into_iter().map(|s| Box::new(NoUndo(s)) as Box<dyn userspace_cni_api::Step>).collect())
    }
    async fn check(
        &self,
        ctx: &userspace_cni_api::StepContext,
        plan: &BackendPlan,
    ) -> Result<(), userspace_cni_api::CniError> {
        RecordingBackend.check(ctx, plan).await
    }
    async fn list_owned(
        &self,
        settings: &userspace_cni_api::NodeSettings,
        network: &str,
    ) -> Result<Vec<userspace_cni_api::OwnedObject>, userspace_cni_api::CniError> {
        if self.blind {
            return Ok(Vec::new());
        }
        RecordingBackend.list_owned(settings, network).await
    }
    async fn remove_owned(
        &self,
        settings: &userspace_cni_api::NodeSettings,
        obj: &userspace_cni_api::OwnedObject,
    ) -> Result<(), userspace_cni_api::CniError> {
        RecordingBackend.remove_owned(settings, obj).await
    }
    async fn status(&self, settings: &userspace_cni_api::NodeSettings) -> Result<(), userspace_cni_api::CniError> {
        if self.blind {
            return Ok(());
        }
        RecordingBackend.status(settings).await
    }
}

#[async_trait]
impl Harness for Broken {
    fn backend(&self) -> Box<dyn Backend> {
        Box::new(*self)
    }
    fn cases(&self) -> Vec<&'static str> {
        vec!["client"]
    }
    async fn fresh(&self, case: &str) -> Result<Fixture, HarnessError> {
        Recording.fresh(case).await
    }
    async fn holdings(&self, fx: &Fixture, plan: &BackendPlan) -> Result<Vec<String>, HarnessError> {
        Recording.holdings(fx, plan).await
    }
    async fn restart(&self, fx: &Fixture, plan: &BackendPlan) -> Result<(), HarnessError> {
        Recording.restart(fx, plan).await
    }
    async fn set_reachable(&self, fx: &Fixture, up: bool) -> Result<(), HarnessError> {
        if !self.switchable {
            return Err(HarnessError::Unsupported("set_reachable"));
        }
        Recording.set_reachable(fx, up).await
    }
}

/// The kit must catch a backend that breaks the contract, naming what it left.
#[tokio::test]
async fn the_kit_reports_a_backend_whose_undo_leaves_objects_behind() {
    let forgetful = Broken { forgetful: true, ..Broken::default() };
    let report = conformance::apply_then_undo_leaves_nothing(&forgetful).await;
    assert!(!report.is_ok(), "a backend whose undo does nothing passed: {report}");
    let detail = report.failures.iter().map(|f| f.detail.as_str()).collect::<Vec<_>>().join("\n");
    assert!(detail.contains("port ") && detail.contains("bridge br-conf"), "the report names the leftovers: {report}");
    let kills = conformance::kill_at_every_step_boundary_then_teardown_leaves_nothing(&forgetful).await;
    assert!(!kills.is_ok(), "kill check passed a backend whose undo does nothing: {kills}");
    // A harness that cannot make its dataplane unreachable: reported as skipped, never as a pass
    // in disguise.
    let no_effect = conformance::failed_apply_leaves_nothing(&forgetful).await;
    assert!(
        no_effect.skipped.iter().any(|s| s.detail.contains("set_reachable")),
        "the missing set_reachable is reported as skipped: {no_effect}"
    );
}

/// The kit's GC check fails a backend whose `list_owned` cannot find what its ADD made, and one
/// whose `status` answers Ok with the dataplane down, naming both.
#[tokio::test]
async fn the_kit_reports_a_backend_that_gc_and_status_cannot_see() {
    let blind = Broken { blind: true, switchable: true, ..Broken::default() };
    let report = conformance::gc_finds_and_removes_by_tags_and_status_answers(&blind).await;
    assert!(!report.is_ok(), "a blind reconciler passed: {report}");
    let detail = report.failures.iter().map(|f| f.detail.as_str()).collect::<Vec<_>>().join("\n");
    assert!(detail.contains("status answered Ok while the dataplane was unreachable"), "{report}");
    assert!(detail.contains("found nothing owned_by the attachment"), "{report}");
    // Without the flaw the same check passes.
    let sound =
        conformance::gc_finds_and_removes_by_tags_and_status_answers(&Broken { switchable: true, ..Broken::default() })
            .await;
    assert!(sound.is_ok(), "{sound}");
}
