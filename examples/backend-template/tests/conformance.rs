//! The template backend through the conformance kit: every fixture a fresh node under a temp
//! dir. A restart wipes the dataplane's bridges (the template dataplane keeps no configuration
//! across restarts, like VPP); "unreachable" is its `down` file.

use serde_json::json;
use userspace_cni_api::{async_trait, Backend, BackendPlan, Typed};
use userspace_cni_backend_template::{root, TemplateBackend, ENGINE, ROOT};
use userspace_cni_testkit::conformance::{self, Fixture, Harness, HarnessError};

struct Template;

fn failed(what: &'static str) -> impl FnOnce(std::io::Error) -> HarnessError {
    move |e| HarnessError::Failed(format!("{what}: {e}"))
}

#[async_trait]
impl Harness for Template {
    fn backend(&self) -> Box<dyn Backend> {
        Box::new(Typed(TemplateBackend))
    }

    fn cases(&self) -> Vec<&'static str> {
        vec!["client"]
    }

    async fn fresh(&self, _case: &str) -> Result<Fixture, HarnessError> {
        let dir = tempfile::Builder::new().prefix("uscni-conf-tpl-").tempdir().map_err(failed("temp dir"))?;
        let mut settings = conformance::settings_under(dir.path());
        // The backend's own setting, as `[engines.template] root = ...` would set it.
        settings.set_engine(ENGINE, &ROOT, dir.path().join("template").to_string_lossy());
        let attachment = conformance::unique_attachment("conf-template");
        let shared_dir = conformance::shared_dir_for(&settings, &attachment);
        let host = json!({"engine": "template", "iftype": "vhostuser", "netType": "bridge",
                          "vhost": {"mode": "client"}, "bridge": {"bridgeName": "br-tpl"}});
        let container = json!({"engine": "template", "iftype": "vhostuser", "netType": "interface"});
        Ok(Fixture {
            settings,
            attachment,
            host: conformance::spec(host)?,
            container: conformance::spec(container)?,
            shared_dir,
            socket_name_from_device_plugin: false,
            guard: Some(Box::new(dir)),
        })
    }

    /// Every file under the dataplane root except the `down` switch: a fresh node's root holds
    /// nothing, so anything there is the attachment's.
    async fn holdings(&self, fx: &Fixture, _plan: &BackendPlan) -> Result<Vec<String>, HarnessError> {
        let mut held = Vec::new();
        let mut todo = vec![root(&fx.settings).join("bridges")];
        while let Some(dir) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            held.push(format!("dir {}", dir.display()));
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                } else {
                    held.push(format!("file {}", e.path().display()));
                }
            }
        }
        // The empty `bridges` dir itself is not an object.
        held.retain(|h| *h != format!("dir {}", root(&fx.settings).join("bridges").display()));
        Ok(held)
    }

    async fn restart(&self, fx: &Fixture, _plan: &BackendPlan) -> Result<(), HarnessError> {
        match std::fs::remove_dir_all(root(&fx.settings).join("bridges")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed("wipe the dataplane")(e)),
            _ => Ok(()),
        }
    }

    async fn set_reachable(&self, fx: &Fixture, up: bool) -> Result<(), HarnessError> {
        let down = root(&fx.settings).join("down");
        if up {
            return match std::fs::remove_file(&down) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed("remove the down file")(e)),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(root(&fx.settings)).map_err(failed("dataplane root"))?;
        std::fs::write(&down, b"").map_err(failed("write the down file"))
    }
}

#[tokio::test]
async fn template_backend_passes_the_conformance_kit() {
    let report = conformance::run_all(&Template).await;
    println!("{report}");
    assert!(report.is_ok(), "{report}");
    assert!(report.skipped.is_empty(), "every part of every check applies to the template: {report}");
}
