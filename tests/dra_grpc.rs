//! kubelet's side of the DRA plugin through the real sockets: `dra::server::serve` with a scripted
//! driver in a temp kubelet root, driven by the fake kubelet (registration, batches with kubelet's
//! checks), socket hygiene at start and shutdown, and CDI ids resolved and mounted the way a
//! runtime does.
#![cfg(all(feature = "kubernetes", feature = "testkit"))]

#[path = "support/fake_kubelet.rs"]
mod fake_kubelet;
mod support;

use async_trait::async_trait;
use fake_kubelet::{container_command, resolve_cdi, FakeKubelet};
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use userspace_cni::dra::probe::{probe, ProbeError};
use userspace_cni::dra::server::{serve, PluginSockets, ServerError, SocketError};
use userspace_cni::dra::{ClaimDriver, ClaimRef, PreparedDevice};

const DRIVER: &str = "ovsdpdk.k8snetworkplumbingwg.io";
const REGISTER_WITHIN: Duration = Duration::from_secs(10);

/// What the scripted driver does for one claim UID.
#[derive(Clone, Default)]
struct Script {
    delay: Duration,
    error: Option<String>,
    /// Answer this device instead of a well-formed one.
    device: Option<PreparedDevice>,
    panic: bool,
}

/// One driver call as the driver saw it.
#[derive(Debug, Clone)]
struct Call {
    verb: &'static str,
    uid: String,
    /// The time the driver was given (its deadline less the call's start).
    given: Duration,
}

#[derive(Default)]
struct ScriptedDriver {
    scripts: BTreeMap<String, Script>,
    calls: Mutex<Vec<Call>>,
}

impl ScriptedDriver {
    fn with(scripts: &[(&str, Script)]) -> Arc<Self> {
        Arc::new(ScriptedDriver {
            scripts: scripts.iter().map(|(uid, s)| (uid.to_string(), s.clone())).collect(),
            calls: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    async fn play(&self, verb: &'static str, claim: &ClaimRef, deadline: Instant) -> Result<(), String> {
        let given = deadline.saturating_duration_since(Instant::now());
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(Call { verb, uid: claim.uid.clone(), given });
        }
        let script = self.scripts.get(&claim.uid).cloned().unwrap_or_default();
        tokio::time::sleep(script.delay).await;
        assert!(!script.panic, "scripted driver panic for claim {}", claim.uid);
        script.error.map_or(Ok(()), Err)
    }
}

fn device_for(claim: &ClaimRef) -> PreparedDevice {
    PreparedDevice {
        request_names: vec!["vhost".into()],
        pool_name: "node-1".into(),
        device_name: "br-dpdk0".into(),
        cdi_device_ids: vec![format!("k8snetworkplumbingwg.io/ovsdpdk={}", claim.uid)],
        share_id: Some(format!("share-{}", claim.uid)),
    }
}

#[async_trait]
impl ClaimDriver for ScriptedDriver {
    async fn prepare(&self, claim: &ClaimRef, deadline: Instant) -> Result<Vec<PreparedDevice>, String> {
        self.play("prepare", claim, deadline).await?;
        let scripted = self.scripts.get(&claim.uid).and_then(|s| s.device.clone());
        Ok(vec![scripted.unwrap_or_else(|| device_for(claim))])
    }

    async fn unprepare(&self, claim: &ClaimRef, deadline: Instant) -> Result<(), String> {
        self.play("unprepare", claim, deadline).await
    }
}

fn claim(uid: &str) -> ClaimRef {
    ClaimRef { namespace: "vms".into(), name: format!("claim-{uid}"), uid: uid.into() }
}

/// A plugin serving in a temp kubelet root; stopping it (or dropping it) ends `serve`.
struct Plugin {
    root: tempfile::TempDir,
    sockets: PluginSockets,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Plugin {
    fn start(driver: Arc<ScriptedDriver>) -> Plugin {
        let root = tempfile::tempdir().expect("temp kubelet root");
        Self::start_in(root, driver)
    }

    fn start_in(root: tempfile::TempDir, driver: Arc<ScriptedDriver>) -> Plugin {
        let sockets = PluginSockets::new(root.path(), DRIVER);
        let (stop, stopped) = oneshot::channel::<()>();
        let for_task = sockets.clone();
        let task = tokio::spawn(async move {
            serve(driver, DRIVER, &for_task, async move {
                let _ = stopped.await;
            })
            .await
        });
        Plugin { root, sockets, stop: Some(stop), task }
    }

    fn registry(&self) -> PathBuf {
        self.root.path().join("plugins_registry")
    }

    async fn kubelet(&self) -> FakeKubelet {
        FakeKubelet::register(&self.registry(), REGISTER_WITHIN).await.expect("the fake kubelet registers the plugin")
    }

    async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve returns within 10 s of shutdown")
            .expect("serve does not panic")
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // A failed assertion must not leave a server running on the temp dir.
        self.task.abort();
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[tokio::test]
async fn registration_tells_kubelet_the_type_name_endpoint_and_v1() {
    let plugin = Plugin::start(ScriptedDriver::with(&[]));
    let kubelet = plugin.kubelet().await;
    assert_eq!(kubelet.registration_socket, plugin.sockets.registration);
    assert_eq!(kubelet.driver, DRIVER);
    assert_eq!(kubelet.endpoint, plugin.sockets.service);
    assert_eq!(kubelet.supported_versions, vec!["v1.DRAPlugin".to_string()]);
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn one_bad_claim_never_fails_the_others() {
    let bad = Script {
        error: Some("claim vms/claim-b: no allocation for our driver; reallocate it".into()),
        ..Script::default()
    };
    let driver = ScriptedDriver::with(&[("b", bad)]);
    let plugin = Plugin::start(Arc::clone(&driver));
    let mut kubelet = plugin.kubelet().await;

    let answers = kubelet.prepare(&[claim("a"), claim("b"), claim("c")]).await;
    for uid in ["a", "c"] {
        let devices = answers[uid].as_ref().unwrap_or_else(|e| panic!("claim {uid} failed: {e}"));
        assert_eq!(devices.len(), 1, "claim {uid}: {devices:?}");
        assert_eq!(devices[0].cdi_device_ids, vec![format!("k8snetworkplumbingwg.io/ovsdpdk={uid}")]);
        assert_eq!(devices[0].share_id.as_deref(), Some(format!("share-{uid}").as_str()));
        assert_eq!((devices[0].pool_name.as_str(), devices[0].device_name.as_str()), ("node-1", "br-dpdk0"));
    }
    assert_eq!(answers["b"], Err("claim vms/claim-b: no allocation for our driver; reallocate it".into()));
    let order: Vec<String> = driver.calls().into_iter().map(|c| c.uid).collect();
    assert_eq!(order, ["a", "b", "c"], "claims run sequentially in request order");
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn driver_mistakes_become_that_claims_error_and_nothing_more() {
    let unqualified = PreparedDevice { cdi_device_ids: vec!["claim-d".into()], ..device_for(&claim("d")) };
    let driver = ScriptedDriver::with(&[
        ("p", Script { panic: true, ..Script::default() }),
        ("e", Script { error: Some("  ".into()), ..Script::default() }),
        ("d", Script { device: Some(unqualified), ..Script::default() }),
    ]);
    let plugin = Plugin::start(Arc::clone(&driver));
    let mut kubelet = plugin.kubelet().await;

    let answers = kubelet.prepare(&[claim("p"), claim("e"), claim("d"), claim("ok")]).await;
    let error = |uid: &str| answers[uid].clone().expect_err(uid);
    assert!(error("p").contains("panicked"), "{}", error("p"));
    assert!(error("e").contains("without a message"), "kubelet would read an empty error as success: {}", error("e"));
    assert!(error("d").contains("not a fully qualified"), "{}", error("d"));
    assert!(answers["ok"].is_ok(), "{:?}", answers["ok"]);
    plugin.stop().await.expect("clean shutdown after a driver panic");
}

#[tokio::test]
async fn a_slow_claim_overruns_only_its_share() {
    let slow = Script { delay: Duration::from_secs(6), ..Script::default() };
    let driver = ScriptedDriver::with(&[("b", slow)]);
    let plugin = Plugin::start(Arc::clone(&driver));
    let mut kubelet = plugin.kubelet().await;
    kubelet.call_timeout = Duration::from_secs(3);

    let started = Instant::now();
    let answers = kubelet.prepare(&[claim("a"), claim("b"), claim("c")]).await;
    let took = started.elapsed();

    assert!(took < Duration::from_secs(3), "the batch answered within kubelet's deadline, took {took:?}");
    assert!(answers["a"].is_ok(), "a: {:?}", answers["a"]);
    assert!(answers["c"].is_ok(), "c ran after the overrun, in the time left: {:?}", answers["c"]);
    let error = answers["b"].as_ref().expect_err("b overran its share");
    assert!(error.contains("share of kubelet's deadline"), "b's error says why: {error}");

    let calls = driver.calls();
    let given: BTreeMap<&str, Duration> = calls.iter().map(|c| (c.uid.as_str(), c.given)).collect();
    // About 2.85 s for three claims: a gets a third; a used almost none of it, so b gets half of
    // what is left (more than a third), and c gets what b did not overrun into.
    assert!(given["a"] < Duration::from_millis(1000), "a's share is a third: {given:?}");
    assert!(given["b"] > Duration::from_millis(1200), "a's unused time went to b: {given:?}");
    assert!(given["c"] > Duration::from_millis(1000), "c kept its share after b's overrun: {given:?}");
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_duplicate_uid_is_prepared_once_and_answered_once() {
    let driver = ScriptedDriver::with(&[]);
    let plugin = Plugin::start(Arc::clone(&driver));
    let mut kubelet = plugin.kubelet().await;

    let answers = kubelet.prepare(&[claim("a"), claim("a"), claim("b")]).await;
    assert_eq!(answers.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert!(answers.values().all(Result::is_ok), "{answers:?}");
    let order: Vec<String> = driver.calls().into_iter().map(|c| c.uid).collect();
    assert_eq!(order, ["a", "b"], "a was prepared once");
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn unprepare_answers_every_claim_with_its_own_error() {
    let bad = Script { error: Some("port vhu-b is busy; retry".into()), ..Script::default() };
    let driver = ScriptedDriver::with(&[("b", bad)]);
    let plugin = Plugin::start(Arc::clone(&driver));
    let mut kubelet = plugin.kubelet().await;

    let answers = kubelet.unprepare(&[claim("a"), claim("b"), claim("c")]).await;
    assert_eq!(answers["a"], Ok(()));
    assert_eq!(answers["b"], Err("port vhu-b is busy; retry".into()));
    assert_eq!(answers["c"], Ok(()));
    assert!(driver.calls().iter().all(|c| c.verb == "unprepare"), "{:?}", driver.calls());
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn stale_sockets_of_a_previous_instance_are_replaced() {
    let root = tempfile::tempdir().expect("temp kubelet root");
    let sockets = PluginSockets::new(root.path(), DRIVER);
    for path in [&sockets.registration, &sockets.service] {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        // Bound and dropped without unlinking: what a SIGKILLed instance leaves.
        drop(std::os::unix::net::UnixListener::bind(path).expect("bind a stale socket"));
        assert!(is_socket(path));
    }
    let plugin = Plugin::start_in(root, ScriptedDriver::with(&[]));
    let mut kubelet = plugin.kubelet().await;
    assert!(kubelet.prepare(&[claim("a")]).await["a"].is_ok());
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_live_instance_is_not_displaced() {
    let first = Plugin::start(ScriptedDriver::with(&[]));
    let _kubelet = first.kubelet().await;
    // The same root: a second plugin for the same driver.
    let sockets = first.sockets.clone();
    let result = serve(ScriptedDriver::with(&[]), DRIVER, &sockets, async {}).await;
    match result {
        Err(ServerError::Socket(SocketError::InUse { path })) => assert_eq!(path, sockets.service),
        other => panic!("a second instance must be refused, got {other:?}"),
    }
    assert!(is_socket(&sockets.service) && is_socket(&sockets.registration), "the first instance's sockets stay");
    first.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_file_or_symlink_at_a_socket_path_is_refused_and_left_alone() {
    // A regular file where the registration socket goes.
    let root = tempfile::tempdir().expect("temp kubelet root");
    let sockets = PluginSockets::new(root.path(), DRIVER);
    std::fs::create_dir_all(sockets.registration.parent().expect("parent")).expect("mkdir");
    std::fs::write(&sockets.registration, b"someone's data").expect("plant a file");
    let result = serve(ScriptedDriver::with(&[]), DRIVER, &sockets, async {}).await;
    match result {
        Err(ServerError::Socket(SocketError::NotASocket { path, .. })) => assert_eq!(path, sockets.registration),
        other => panic!("a regular file must be refused, got {other:?}"),
    }
    assert_eq!(std::fs::read(&sockets.registration).expect("the file is still there"), b"someone's data");
    assert!(!sockets.service.exists(), "the service socket bound first was removed again");

    // A symlink to a decoy socket outside the kubelet root, where the service socket goes.
    let root = tempfile::tempdir().expect("temp kubelet root");
    let outside = tempfile::tempdir().expect("decoy dir");
    let decoy = outside.path().join("decoy.sock");
    drop(std::os::unix::net::UnixListener::bind(&decoy).expect("bind the decoy"));
    let sockets = PluginSockets::new(root.path(), DRIVER);
    std::fs::create_dir_all(sockets.service.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(&decoy, &sockets.service).expect("plant a symlink");
    let result = serve(ScriptedDriver::with(&[]), DRIVER, &sockets, async {}).await;
    match result {
        Err(ServerError::Socket(SocketError::NotASocket { path, found })) => {
            assert_eq!(path, sockets.service);
            assert_eq!(found, "a symlink");
        }
        other => panic!("a symlink must be refused, got {other:?}"),
    }
    assert!(std::fs::symlink_metadata(&sockets.service).is_ok_and(|m| m.file_type().is_symlink()), "symlink kept");
    assert!(is_socket(&decoy), "the decoy the symlink points to was not touched");
    assert!(!sockets.registration.exists(), "nothing was bound");
}

#[tokio::test]
async fn shutdown_removes_both_sockets() {
    let mut plugin = Plugin::start(ScriptedDriver::with(&[]));
    let _kubelet = plugin.kubelet().await;
    let sockets = plugin.sockets.clone();
    assert!(is_socket(&sockets.registration) && is_socket(&sockets.service));
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("dir").permissions());
    assert_eq!(mode(&plugin.registry()) & 0o777, 0o750, "created parent dirs are 0750");
    assert_eq!(mode(&plugin.root.path().join("plugins").join(DRIVER)) & 0o777, 0o750);
    assert_eq!(mode(&sockets.service) & 0o777, 0o600, "only root (kubelet) may connect");
    // Keep the root past stop(), which consumes the plugin.
    let root = std::mem::replace(&mut plugin.root, tempfile::tempdir().expect("placeholder"));
    plugin.stop().await.expect("clean shutdown");
    assert!(!sockets.registration.exists(), "registration socket removed (kubelet deregisters)");
    assert!(!sockets.service.exists(), "service socket removed");
    assert!(root.path().join("plugins_registry").is_dir(), "the dirs stay; only our sockets go");
}

fn unshare_missing() -> bool {
    let found = std::process::Command::new("unshare").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: `unshare` (util-linux) is not installed; the CDI mount test needs it");
    }
    !found
}

#[test]
fn cdi_mounts_appear_in_the_container_and_not_on_the_host() {
    if unshare_missing() {
        return;
    }
    let host = tempfile::tempdir().expect("host dir");
    let metadata = host.path().join("metadata.json");
    std::fs::write(&metadata, br#"{"mtu":1500}"#).expect("metadata file");
    let socket_dir = host.path().join("sockets");
    std::fs::create_dir(&socket_dir).expect("socket dir");
    std::fs::write(socket_dir.join("marker"), b"dir-bound").expect("marker");

    // A unique container root, so a leak onto the host's /run would be unambiguous.
    let unique = format!("userspace-cni-test-{}", std::process::id());
    let meta_target = format!("/var/run/{unique}/attrs/ovsdpdk-metadata.json");
    let dir_target = format!("/var/run/{unique}/vhu");
    let cdi = tempfile::tempdir().expect("CDI dir");
    let spec = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "k8snetworkplumbingwg.io/ovsdpdk",
        "devices": [
            {"name": "claim-a", "containerEdits": {"mounts": [
                {"hostPath": metadata, "containerPath": meta_target, "options": ["ro", "bind"]},
                {"hostPath": socket_dir, "containerPath": dir_target, "options": ["rw", "bind"]}
            ]}},
            {"name": "claim-z", "containerEdits": {"mounts": [
                {"hostPath": "/nonexistent", "containerPath": "/run/never"}
            ]}}
        ]
    });
    std::fs::write(cdi.path().join("k8snetworkplumbingwg.io-ovsdpdk-claim-a.json"), spec.to_string()).expect("spec");
    std::fs::write(cdi.path().join("ignored.json.tmp"), "not a spec").expect("temp file");

    let ids = vec!["k8snetworkplumbingwg.io/ovsdpdk=claim-a".to_string()];
    let mounts = resolve_cdi(cdi.path(), &ids).expect("the id resolves");
    assert_eq!(mounts.len(), 2, "only claim-a's mounts: {mounts:?}");
    assert_eq!(mounts[0].container_path, Path::new(&dir_target), "parents first: {mounts:?}");
    assert!(resolve_cdi(cdi.path(), &["k8snetworkplumbingwg.io/ovsdpdk=claim-b".into()]).is_err());

    let script = format!(
        "cat {meta_target}; echo; cat {dir_target}/marker; echo; if echo x > {meta_target} 2>/dev/null; then echo writable; \
         else echo read-only; fi; echo y > {dir_target}/from-container"
    );
    let output = container_command(&mounts, "sh", &["-c", &script])
        .expect("a command")
        .output()
        .expect("run the container command");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "{\"mtu\":1500}\ndir-bound\nread-only\n");
    assert_eq!(std::fs::read(socket_dir.join("from-container")).expect("written through the rw bind"), b"y\n");
    assert_eq!(std::fs::read(&metadata).expect("metadata"), br#"{"mtu":1500}"#, "the ro source is unchanged");
    assert!(!Path::new(&format!("/run/{unique}")).exists(), "nothing appeared on the host's /run");
}

#[test]
fn the_fake_runtime_refuses_targets_outside_its_private_run() {
    let host = tempfile::tempdir().expect("host dir");
    let mount = fake_kubelet::Mount {
        host_path: host.path().to_path_buf(),
        container_path: PathBuf::from("/etc/escaped"),
        options: vec![],
    };
    assert!(container_command(std::slice::from_ref(&mount), "true", &[]).is_err());
    let dotdot = fake_kubelet::Mount { container_path: PathBuf::from("/run/../etc/x"), ..mount };
    assert!(container_command(&[dotdot], "true", &[]).is_err());
}

/// The shipped binary as `userspace dra-plugin`, its own process, with no API server (it logs
/// that and serves on): peers that connect and hang up before the plugin writes its first frame
/// (kubelet restarting, a probe) give the plugin EPIPE on a socket, which must not kill it. A CI
/// run once lost the plugin under a batch to signal 13 (the CLI then restored SIGPIPE's default).
#[test]
fn the_plugin_process_outlives_peers_that_hang_up() {
    use std::io::Write;
    let node = support::Node::new();
    let env = support::dra_plugin::settings_env(&node, "br-x=1500", &node.path("no-kubeconfig"), "node-a");
    let plugin = support::dra_plugin::Plugin::start(&node, &env, "plugin.log");
    let sockets = PluginSockets::new(&node.path("kubelet"), DRIVER);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let registry = node.path("kubelet/plugins_registry");
    if let Err(e) = rt.block_on(FakeKubelet::register(&registry, REGISTER_WITHIN)) {
        panic!("registration: {e}\n{}", plugin.report());
    }
    // HTTP/2's connection preface and an empty SETTINGS frame, then gone.
    let hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    for round in 0..300 {
        for socket in [&sockets.registration, &sockets.service] {
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) {
                let _ = s.write_all(if round % 2 == 0 { &hello[..] } else { &hello[..24] });
            }
        }
    }
    let again = rt.block_on(FakeKubelet::register(&registry, REGISTER_WITHIN));
    assert!(
        plugin.is_running() && again.is_ok(),
        "the plugin died or stopped answering: {:?}\n{}",
        again.err(),
        plugin.report()
    );
}

#[tokio::test]
async fn the_probe_answers_while_a_batch_runs_and_names_a_foreign_plugin() {
    let slow = Script { delay: Duration::from_secs(4), ..Script::default() };
    let plugin = Plugin::start(ScriptedDriver::with(&[("slow", slow)]));
    let mut kubelet = plugin.kubelet().await;
    let batch = tokio::spawn(async move { kubelet.prepare(&[claim("slow")]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The batch holds the batch lock for 4 s; the probe's empty batch does not wait for it.
    let started = Instant::now();
    probe(&plugin.sockets, DRIVER, Duration::from_secs(2)).await.expect("live while a batch runs");
    assert!(!batch.is_finished(), "the probe ran beside the batch, not after it ({:?})", started.elapsed());
    let answers = tokio::time::timeout(Duration::from_secs(20), batch).await.expect("batch ends").expect("no panic");
    assert!(answers["slow"].is_ok(), "{:?}", answers["slow"]);

    match probe(&plugin.sockets, "other.example.com", Duration::from_secs(2)).await {
        Err(ProbeError::Mismatch { found_name, .. }) => assert_eq!(found_name, DRIVER),
        other => panic!("another driver's name is not this plugin: {other:?}"),
    }
    plugin.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_probe_fails_on_a_gone_plugin_and_on_one_that_accepts_but_never_answers() {
    let plugin = Plugin::start(ScriptedDriver::with(&[]));
    let _ = plugin.kubelet().await;
    let sockets = plugin.sockets.clone();
    let root = tempfile::tempdir().expect("temp dir");
    plugin.stop().await.expect("clean shutdown");
    match probe(&sockets, DRIVER, Duration::from_secs(2)).await {
        Err(ProbeError::Failed { reason, .. }) => assert!(reason.contains("cannot connect"), "{reason}"),
        other => panic!("a stopped plugin is not live: {other:?}"),
    }

    // A hung runtime: the kernel still accepts connections, nobody answers.
    let hung = PluginSockets::new(root.path(), DRIVER);
    let mut listeners = Vec::new();
    for path in [&hung.registration, &hung.service] {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        listeners.push(std::os::unix::net::UnixListener::bind(path).expect("bind"));
    }
    let started = Instant::now();
    match probe(&hung, DRIVER, Duration::from_millis(800)).await {
        Err(ProbeError::Timeout { what, .. }) => assert!(what.starts_with("GetInfo"), "{what}"),
        other => panic!("a plugin that never answers is not live: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "the probe is bounded: {:?}", started.elapsed());
    drop(listeners);
}

#[test]
fn the_shipped_probe_exits_0_for_the_running_plugin_and_1_without_it() {
    let node = support::Node::new();
    let env = support::dra_plugin::settings_env(&node, "br-x=1500", &node.path("no-kubeconfig"), "node-a");
    let probe = |env: &[(String, String)]| {
        let mut cmd = std::process::Command::new(support::PLUGIN_BIN);
        cmd.args(["dra-plugin", "--probe"]).env_clear().envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.output().expect("run the probe")
    };
    let before = probe(&env);
    assert_eq!(before.status.code(), Some(1), "no plugin yet: {before:?}");
    let stderr = String::from_utf8_lossy(&before.stderr);
    assert!(stderr.contains("not live") && stderr.contains("plugins_registry"), "says which socket: {stderr}");
    assert!(before.stdout.is_empty(), "nothing on stdout");

    let mut plugin = support::dra_plugin::Plugin::start(&node, &env, "plugin.log");
    let registry = node.path("kubelet/plugins_registry");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(FakeKubelet::register(&registry, REGISTER_WITHIN)) {
        panic!("registration: {e}\n{}", plugin.report());
    }
    let live = probe(&env);
    assert_eq!(live.status.code(), Some(0), "{live:?}\n{}", plugin.report());
    assert!(live.stdout.is_empty() && live.stderr.is_empty(), "a live probe is silent: {live:?}");
    plugin.stop();
}
