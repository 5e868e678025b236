//! The OVS-DPDK backend through the conformance kit, against a real private OVS-DPDK (tests/lab)
//! in client and server mode. One lab for the binary, owned here rather than shared: the kit
//! restarts ovs-vswitchd (OVSDB kept: server-mode sockets come back in OVS's dir and are
//! re-delivered by the repair) and stops ovsdb-server to make the dataplane unreachable. Every
//! fixture has its own bridge; the lab and its files go when the test ends, also on failure.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use testlab::Lab;
use userspace_cni_api::{async_trait, Backend, BackendPlan, Typed};
use userspace_cni_ovs_dpdk::{settings as ovs_settings, ENGINE};
use userspace_cni_testkit::conformance::{self, Fixture, Harness, HarnessError};

struct Ovs {
    lab: Mutex<Lab>,
    next: AtomicU32,
}

impl Ovs {
    fn lab(&self) -> std::sync::MutexGuard<'_, Lab> {
        // A panic elsewhere cannot leave the lab half-changed: every call below is one command.
        self.lab.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lab_err(what: &str) -> impl FnOnce(testlab::LabError) -> HarnessError + '_ {
    move |e| HarnessError::Failed(format!("{what}: {e}"))
}

/// `(name, external_ids)` of every row of `table`, from `ovs-vsctl --format=json list`.
fn rows(lab: &Lab, table: &str) -> Result<Vec<(String, Value)>, HarnessError> {
    let out = lab.vsctl(&["--format=json", "--columns=name,external_ids", "list", table]).map_err(lab_err("list"))?;
    let doc: Value = serde_json::from_str(&out).map_err(|e| HarnessError::Failed(format!("ovs-vsctl json: {e}")))?;
    let data = doc["data"].as_array().cloned().unwrap_or_default();
    Ok(data
        .into_iter()
        .map(|r| {
            let name = r[0].as_str().unwrap_or_default().to_owned();
            // external_ids: ["map", [[k, v], ...]]
            let ids: serde_json::Map<String, Value> = r[1][1]
                .as_array()
                .map(|kv| kv.iter().filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].clone()))).collect())
                .unwrap_or_default();
            (name, Value::Object(ids))
        })
        .collect())
}

#[async_trait]
impl Harness for Ovs {
    fn backend(&self) -> Box<dyn Backend> {
        Box::new(Typed(userspace_cni_ovs_dpdk::OvsDpdkBackend))
    }

    fn cases(&self) -> Vec<&'static str> {
        vec!["client", "server"]
    }

    async fn fresh(&self, case: &str) -> Result<Fixture, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("uscni-conf-ovs-")
            .tempdir()
            .map_err(|e| HarnessError::Failed(format!("temp dir: {e}")))?;
        let mut settings = conformance::settings_under(dir.path());
        {
            let lab = self.lab();
            settings.set_engine(ENGINE, &ovs_settings::OVSDB, lab.db_endpoint());
            settings.set_engine(ENGINE, &ovs_settings::SOCK_DIR, lab.sock_dir().to_string_lossy());
        }
        // The plugin's default: a port waits for ovs-vswitchd to apply it, which takes longer
        // than the kit's short default on a vswitchd that just reconnected to its database.
        settings.timeout_ms = 10_000;
        settings.deadline_ms = 30_000;
        let attachment = conformance::unique_attachment("conf-ovs");
        let shared_dir = conformance::shared_dir_for(&settings, &attachment);
        let bridge = format!("brk{}", self.next.fetch_add(1, Ordering::Relaxed));
        let host = json!({
            "engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
            "vhost": {"mode": case}, "bridge": {"bridgeName": bridge}
        });
        let container = json!({"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface"});
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

    async fn holdings(&self, fx: &Fixture, plan: &BackendPlan) -> Result<Vec<String>, HarnessError> {
        let lab = self.lab();
        let cid = fx.attachment.id.container_id.as_str();
        let mut held: Vec<String> = rows(&lab, "Port")?
            .into_iter()
            .filter(|(_, ids)| ids["userspace-cni/container-id"] == cid)
            .map(|(name, _)| format!("port {name}"))
            .collect();
        let bridge = plan.data["bridge"].as_str().unwrap_or_default();
        // Each fixture names its own bridge: one still there is the attachment's.
        held.extend(rows(&lab, "Bridge")?.into_iter().filter(|(n, _)| n == bridge).map(|(n, _)| format!("bridge {n}")));
        let port = plan.data["port"].as_str().unwrap_or_default();
        let in_ovs_dir = lab.sock_dir().join(port);
        if !port.is_empty() && std::fs::symlink_metadata(&in_ovs_dir).is_ok() {
            let port_row = rows(&lab, "Port")?.into_iter().any(|(name, _)| name == port);
            if port_row || !vswitchd_removes(&lab, &self.next, &in_ovs_dir)? {
                held.push(format!("socket {} in OVS's dir", in_ovs_dir.display()));
            }
        }
        Ok(held)
    }

    async fn restart(&self, _fx: &Fixture, plan: &BackendPlan) -> Result<(), HarnessError> {
        let mut lab = self.lab();
        lab.restart_vswitchd().map_err(lab_err("restart ovs-vswitchd"))?;
        if plan.data["host_mode"] != "server" {
            return Ok(());
        }
        // The new vswitchd re-creates a server-mode port's socket in its dir once it has applied
        // the database; the repair looks for it there.
        let sock = lab.sock_dir().join(plan.data["port"].as_str().unwrap_or_default());
        let started = Instant::now();
        while !sock.exists() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(HarnessError::Failed(format!(
                    "ovs-vswitchd did not re-create {} within 30 s",
                    sock.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    async fn set_reachable(&self, _fx: &Fixture, up: bool) -> Result<(), HarnessError> {
        let mut lab = self.lab();
        if up {
            lab.start_ovsdb().map_err(lab_err("start ovsdb-server"))?;
            // Back only once ovs-vswitchd has reconnected and applied the database again: a
            // change made without --no-wait returns when vswitchd has applied it.
            let mark = format!("external_ids:conformance-mark={}", self.next.fetch_add(1, Ordering::Relaxed));
            lab.vsctl(&["set", "Open_vSwitch", ".", &mark]).map(drop).map_err(lab_err("wait for ovs-vswitchd"))
        } else {
            lab.stop_ovsdb().map_err(lab_err("stop ovsdb-server"))
        }
    }
}

/// A server-mode socket with no port left is still vswitchd's to remove: DEL does not wait for
/// vswitchd, which may create the socket of a port added by an ADD killed mid-step only after
/// DEL removed the port from OVSDB (and unlinked what was there), and unlinks it again when it
/// applies the removal. Held only if it outlives vswitchd catching up (a change without
/// --no-wait returns once vswitchd applied it) plus a bounded grace for its deferred unlink.
fn vswitchd_removes(lab: &Lab, next: &AtomicU32, sock: &std::path::Path) -> Result<bool, HarnessError> {
    let mark = format!("external_ids:conformance-mark={}", next.fetch_add(1, Ordering::Relaxed));
    lab.vsctl(&["set", "Open_vSwitch", ".", &mark]).map_err(lab_err("wait for ovs-vswitchd"))?;
    let started = Instant::now();
    while std::fs::symlink_metadata(sock).is_ok() {
        if started.elapsed() > Duration::from_secs(5) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(true)
}

#[tokio::test]
async fn ovs_dpdk_backend_passes_the_conformance_kit_against_a_real_ovs() {
    let lab = Lab::start("conformance").expect("own lab: the kit restarts ovs-vswitchd and stops ovsdb-server");
    let harness = Ovs { lab: Mutex::new(lab), next: AtomicU32::new(1) };
    let report = conformance::run_all(&harness).await;
    println!("{report}");
    assert!(report.is_ok(), "{report}");
}
