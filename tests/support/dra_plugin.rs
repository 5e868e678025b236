//! The DRA plugin (`userspace dra-plugin`, the shipped binary) as its own process, as a
//! DaemonSet runs it: its settings under a test node, its log, its death and its stop.

use super::{Node, PLUGIN_BIN};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The node's settings plus the DRA plugin's: its dirs under the node, `bridges`
/// (`name=mtu,...`), its kubeconfig and the node's name.
pub fn settings_env(node: &Node, bridges: &str, kubeconfig: &Path, node_name: &str) -> Vec<(String, String)> {
    let mut env = node.settings_env();
    for (k, v) in [
        ("DRA_SOCKET_ROOT", node.path("dra").display().to_string()),
        ("DRA_METADATA_DIR", node.path("meta").display().to_string()),
        ("CDI_DIR", node.path("cdi").display().to_string()),
        ("DRA_BRIDGES", bridges.to_owned()),
        ("DRA_KUBECONFIG", kubeconfig.display().to_string()),
        ("NODE_NAME", node_name.to_owned()),
    ] {
        env.push((format!("USERSPACE_CNI_{k}"), v));
    }
    env
}

/// The plugin's process; SIGKILLed when dropped (and if the test process dies).
pub struct Plugin {
    child: Option<Child>,
    log: PathBuf,
}

impl Plugin {
    pub fn start(node: &Node, env: &[(String, String)], log_name: &str) -> Plugin {
        let log = node.path(log_name);
        let out = std::fs::File::create(&log).expect("plugin log");
        let err = out.try_clone().expect("dup log");
        let mut cmd = Command::new(PLUGIN_BIN);
        cmd.arg("dra-plugin").env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        testlab::process::die_with_parent(&mut cmd);
        Plugin { child: Some(cmd.spawn().expect("spawn userspace dra-plugin")), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process's state and its log: what a failed call is explained by.
    pub fn report(&self) -> String {
        format!("plugin process {}; its log:\n{}", self.state(), self.log())
    }

    /// Whether the process still runs (its zombie not reaped counts as exited).
    pub fn is_running(&self) -> bool {
        self.state().starts_with("running")
    }

    /// Running, or exited with its wait status (read from the zombie's `/proc/<pid>/stat`
    /// without reaping it).
    fn state(&self) -> String {
        match &self.child {
            None => "not running (reaped)".to_owned(),
            Some(c) => {
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
                let fields: Vec<&str> =
                    stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
                match fields.first() {
                    Some(&"Z") => {
                        let status: i32 = fields.last().and_then(|f| f.parse().ok()).unwrap_or(-1);
                        format!("exited: exit code {}, signal {}", (status >> 8) & 0xff, status & 0x7f)
                    }
                    Some(state) => format!("running (state {state})"),
                    None => "gone".to_owned(),
                }
            }
        }
    }

    /// SIGKILL, as the OOM killer or a node crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait (bounded) for the process to end by itself (a failpoint's SIGKILL); its wait status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(started.elapsed() < limit, "the plugin did not exit within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and a bounded wait for a clean exit (kubelet's DaemonSet rollout).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill();
    }
}
