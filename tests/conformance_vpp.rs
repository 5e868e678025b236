//! The VPP backend through the conformance kit, against the VPP simulator (tests/vppsim): a
//! memif master and a memif slave on a bridge domain, and a server-mode vhost-user interface.
//! One simulator for the binary; every fixture has its own bridge domain and sockets. A restart
//! is the simulator's (configuration lost, socket files left); "unreachable" is a stalled VPP,
//! which answers nothing, so every request runs into the node's short timeout.

use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use userspace_cni_api::{async_trait, Backend, BackendPlan, Typed};
use userspace_cni_testkit::conformance::{self, Fixture, Harness, HarnessError};
use vppsim::Sim;

struct Vpp {
    sim: Sim,
    next_bd: AtomicU32,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Harness for Vpp {
    fn backend(&self) -> Box<dyn Backend> {
        Box::new(Typed(userspace_cni_vpp::VppBackend))
    }

    fn cases(&self) -> Vec<&'static str> {
        vec!["memif-master", "memif-slave", "vhost-server"]
    }

    async fn fresh(&self, case: &str) -> Result<Fixture, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("uscni-conf-vpp-")
            .tempdir()
            .map_err(|e| HarnessError::Failed(format!("temp dir: {e}")))?;
        let mut settings = conformance::settings_under(dir.path());
        settings.set_engine(
            userspace_cni_vpp::ENGINE,
            &userspace_cni_vpp::settings::API_SOCKET,
            self.sim.socket().to_string_lossy(),
        );
        // A stalled VPP is found out after one timeout per request.
        settings.timeout_ms = 500;
        let attachment = conformance::unique_attachment("conf-vpp");
        let shared_dir = conformance::shared_dir_for(&settings, &attachment);
        let bd = self.next_bd.fetch_add(1, Ordering::Relaxed);
        let host = match case {
            "memif-master" | "memif-slave" => json!({
                "engine": "vpp", "iftype": "memif", "netType": "bridge",
                "memif": {"role": case.trim_start_matches("memif-"), "mode": "ethernet"},
                "bridge": {"bridgeId": bd}
            }),
            _ => json!({"engine": "vpp", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}}),
        };
        let container = json!({"engine": "vpp", "iftype": host["iftype"], "netType": "interface"});
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

    async fn holdings(&self, _fx: &Fixture, plan: &BackendPlan) -> Result<Vec<String>, HarnessError> {
        let tag = plan.data["tag"].as_str().unwrap_or_default();
        let bd_tag = plan.data["bd_tag"].as_str().unwrap_or_default();
        let bd_id = plan.data["net"]["bd_id"].as_u64();
        let socket = match &plan.data["iface"]["socket"] {
            serde_json::Value::String(s) => s.clone(),
            _ => String::new(),
        };
        let mut held: Vec<String> = self
            .sim
            .interfaces()
            .into_iter()
            .filter(|i| !tag.is_empty() && i.tag == tag)
            .map(|i| format!("interface {} (sw_if_index {})", i.name, i.sw_if_index))
            .collect();
        held.extend(
            self.sim
                .sockets()
                .into_iter()
                .filter(|(id, f)| *id != 0 && !socket.is_empty() && *f == socket)
                .map(|(id, f)| format!("memif socket id {id} ({f})")),
        );
        held.extend(
            self.sim
                .bridge_domains()
                .into_iter()
                .filter(|b| Some(u64::from(b.bd_id)) == bd_id && (b.tag == bd_tag || !b.members.is_empty()))
                .map(|b| format!("bridge domain {} tagged {:?} with members {:?}", b.bd_id, b.tag, b.members)),
        );
        Ok(held)
    }

    async fn restart(&self, _fx: &Fixture, _plan: &BackendPlan) -> Result<(), HarnessError> {
        self.sim.restart();
        Ok(())
    }

    async fn set_reachable(&self, _fx: &Fixture, up: bool) -> Result<(), HarnessError> {
        self.sim.set_stall(!up);
        Ok(())
    }
}

#[tokio::test]
async fn vpp_backend_passes_the_conformance_kit_against_the_simulator() {
    let dir = tempfile::Builder::new().prefix("uscni-conf-vppsim-").tempdir().expect("simulator dir");
    let harness = Vpp { sim: Sim::start(dir.path()), next_bd: AtomicU32::new(100), _dir: dir };
    let report = conformance::run_all(&harness).await;
    println!("{report}");
    assert!(report.is_ok(), "{report}");
}
