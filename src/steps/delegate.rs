//! Runs a delegated CNI plugin (IPAM) as a runtime does: found in CNI_PATH, CNI_* environment, config
//! on stdin, bounded wait. Never lets a delegate outlive us, wait unbounded, or write to our stdout.

use crate::cni::quoted;
use crate::cni::version::CniVersion;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use userspace_cni_api::{codes, CniError};

/// A delegate's stdout beyond this is not a CNI document (a result is a few KiB); the rest is
/// drained so the delegate never blocks on a full pipe.
const MAX_STDOUT: u64 = 1 << 20;
/// How much of a delegate's stderr is kept for the log and error messages.
const MAX_STDERR: u64 = 64 << 10;
/// After a timeout the delegate has been sent SIGKILL; reaping it takes microseconds, but the
/// wait is still bounded.
const REAP_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    #[error(
        "{key} {} is not a plugin name: {reason}; use the file name of a plugin in CNI_PATH, such as \"host-local\"",
        quoted(.value)
    )]
    InvalidType { key: &'static str, value: String, reason: &'static str },

    #[error(
        "{key} {}: no executable file of that name in CNI_PATH ({}); install the plugin there or fix {key}",
        quoted(.plugin),
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
    )]
    NotFound { key: &'static str, plugin: String, searched: Vec<PathBuf> },

    #[error("{plugin}: cannot start {}: {source}", .binary.display())]
    Spawn { plugin: String, binary: PathBuf, source: std::io::Error },

    #[error("{plugin}: {command}: {what}: {source}")]
    Io { plugin: String, command: &'static str, what: &'static str, source: std::io::Error },

    #[error(
        "{plugin}: {command} did not finish within {waited_ms} ms and was killed; the runtime should retry \
         (the bound is the setting USERSPACE_CNI_TIMEOUT_MS)"
    )]
    Timeout { plugin: String, command: &'static str, waited_ms: u128 },

    /// The delegate's own CNI error: reported with its code and message.
    #[error("{plugin}: {msg}")]
    Reported { plugin: String, code: u32, msg: String, details: String },

    #[error("{plugin}: {command} failed ({status}) without a CNI error on stdout{}", stderr_suffix(.stderr))]
    Failed { plugin: String, command: &'static str, status: String, stderr: String },

    #[error("{plugin}: {command} printed something that is not {expected}: {problem}")]
    BadOutput { plugin: String, command: &'static str, expected: &'static str, problem: String },

    #[error(
        "{plugin} supports CNI versions {} and this plugin {}: none in common; install a {plugin} that \
         speaks one of ours",
        .theirs.join(", "),
        crate::cni::version::SUPPORTED.join(", ")
    )]
    NoCommonVersion { plugin: String, theirs: Vec<String> },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; its stderr: {}", quoted(s))
    }
}

impl From<DelegateError> for CniError {
    fn from(e: DelegateError) -> Self {
        let code = match &e {
            DelegateError::InvalidType { .. } | DelegateError::NotFound { .. } => codes::INVALID_NETCONF,
            DelegateError::Spawn { .. } | DelegateError::Io { .. } | DelegateError::Failed { .. } => codes::IO_FAILURE,
            DelegateError::Timeout { .. } => codes::TRY_AGAIN_LATER,
            DelegateError::BadOutput { .. } => codes::DECODE_FAILURE,
            DelegateError::NoCommonVersion { .. } => codes::INCOMPATIBLE_VERSION,
            DelegateError::Reported { code, .. } => *code,
        };
        let details = match &e {
            DelegateError::Reported { details, .. } => details.clone(),
            _ => String::new(),
        };
        CniError::new(code, e.to_string()).with_details(details)
    }
}

/// The CNI_* variables other than CNI_COMMAND, as the delegate must see them. Unset ones are
/// removed from the inherited environment, so a stray value of ours never reaches the delegate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegateEnv {
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Vec<PathBuf>,
}

/// The delegate must be named by a plain file name: a path (or `..`) would let a config author
/// run any binary on the node as root.
pub fn validate_type(key: &'static str, value: &str) -> Result<(), DelegateError> {
    let invalid = |reason| Err(DelegateError::InvalidType { key, value: value.to_owned(), reason });
    if value.is_empty() {
        return invalid("it is empty");
    }
    if value == "." || value == ".." {
        return invalid("it is a directory name");
    }
    if value.len() > userspace_cni_support::names::MAX_FILE_NAME {
        return invalid("it is longer than 255 bytes");
    }
    if value.contains('/') {
        return invalid("it contains '/' (a path, not a file name)");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return invalid("it contains a character outside [A-Za-z0-9_.-]");
    }
    Ok(())
}

/// A delegate found in CNI_PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    pub plugin: String,
    pub binary: PathBuf,
}

impl Delegate {
    /// The first regular, executable file named `plugin` in the CNI_PATH directories, in order
    /// (libcni's FindInPath, which also takes the first match).
    pub fn find(key: &'static str, plugin: &str, cni_path: &[PathBuf]) -> Result<Delegate, DelegateError> {
        validate_type(key, plugin)?;
        for dir in cni_path {
            let candidate = dir.join(plugin);
            // metadata follows symlinks: distributions install plugins as links.
            if let Ok(m) = std::fs::metadata(&candidate) {
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    return Ok(Delegate { plugin: plugin.to_owned(), binary: candidate });
                }
            }
        }
        Err(DelegateError::NotFound { key, plugin: plugin.to_owned(), searched: cni_path.to_vec() })
    }

    /// Ask the delegate which CNI versions it speaks (`CNI_COMMAND=VERSION`, stdin naming ours).
    pub async fn supported_versions(
        &self,
        ours: CniVersion,
        path: &[PathBuf],
        budget: Duration,
    ) -> Result<Vec<String>, DelegateError> {
        let env = DelegateEnv { path: path.to_vec(), ..DelegateEnv::default() };
        let stdin = serde_json::json!({ "cniVersion": ours.as_str() }).to_string();
        let out = self.run("VERSION", &env, stdin.as_bytes(), budget).await?;
        let bad = |problem: String| DelegateError::BadOutput {
            plugin: self.plugin.clone(),
            command: "VERSION",
            expected: "a CNI version document",
            problem,
        };
        let doc: Value = serde_json::from_slice(&out).map_err(|e| bad(e.to_string()))?;
        let list = doc
            .get("supportedVersions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no supportedVersions array".to_owned()))?;
        Ok(list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    }

    /// The highest version both sides speak (libcni skips versions it does not know).
    pub fn common_version(&self, theirs: &[String]) -> Result<CniVersion, DelegateError> {
        theirs
            .iter()
            .filter_map(|v| CniVersion::parse(v))
            .max()
            .ok_or_else(|| DelegateError::NoCommonVersion { plugin: self.plugin.clone(), theirs: theirs.to_vec() })
    }

    /// Run one command and return its stdout when it exits 0. A non-zero exit is the delegate's
    /// CNI error (its code and message) when stdout holds one.
    pub async fn run(
        &self,
        command: &'static str,
        env: &DelegateEnv,
        stdin: &[u8],
        budget: Duration,
    ) -> Result<Vec<u8>, DelegateError> {
        let started = Instant::now();
        let mut cmd = self.command(command, env);
        let mut child = cmd.spawn().map_err(|source| DelegateError::Spawn {
            plugin: self.plugin.clone(),
            binary: self.binary.clone(),
            source,
        })?;
        let stdin_pipe = child.stdin.take();
        let stdout_pipe = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        let exchange = async {
            let write = async {
                let Some(mut pipe) = stdin_pipe else { return Ok(()) };
                match pipe.write_all(stdin).await {
                    // A delegate that exits without reading stdin (VERSION may) is judged by its
                    // exit status, not by our write.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                }
                // Dropping the pipe closes it: the delegate sees EOF.
            };
            let (written, out, err) =
                tokio::join!(write, read_limited(stdout_pipe, MAX_STDOUT), read_limited(stderr_pipe, MAX_STDERR));
            let status = child.wait().await;
            (written, out, err, status)
        };
        let outcome = tokio::time::timeout(budget, exchange).await;
        let Ok((written, out, err, status)) = outcome else {
            // SIGKILL, then reap; kill_on_drop covers the case where even the reap times out.
            let _ = child.start_kill();
            let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
            let budget_ms = budget.as_millis() as u64;
            tracing::warn!(plugin = %self.plugin, command, budget_ms, "delegate timed out; killed");
            return Err(DelegateError::Timeout {
                plugin: self.plugin.clone(),
                command,
                waited_ms: started.elapsed().as_millis(),
            });
        };
        let io = |what, source| DelegateError::Io { plugin: self.plugin.clone(), command, what, source };
        let status: ExitStatus = status.map_err(|e| io("waiting for it", e))?;
        let stdout = out.map_err(|e| io("reading its stdout", e))?;
        let stderr = String::from_utf8_lossy(&err.unwrap_or_default()).into_owned();
        if !stderr.trim().is_empty() {
            // Delegates log to stderr; it goes to our log, never to our stdout.
            tracing::info!(plugin = %self.plugin, command, stderr = %stderr.trim_end(), "delegate stderr");
        }
        tracing::debug!(
            plugin = %self.plugin,
            command,
            elapsed_us = started.elapsed().as_micros() as u64,
            status = %status,
            "delegate finished"
        );
        if status.success() {
            written.map_err(|e| io("writing its stdin", e))?;
            return Ok(stdout);
        }
        if let Some(e) = self.reported_error(&stdout) {
            return Err(e);
        }
        Err(DelegateError::Failed { plugin: self.plugin.clone(), command, status: status.to_string(), stderr })
    }

    fn command(&self, command: &'static str, env: &DelegateEnv) -> Command {
        let mut cmd = Command::new(&self.binary);
        // The rest of our environment is inherited, as libcni's invoke does (PATH, proxies).
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("CNI_")) {
                cmd.env_remove(k);
            }
        }
        cmd.env("CNI_COMMAND", command);
        let vars = [
            ("CNI_CONTAINERID", env.container_id.as_deref()),
            ("CNI_NETNS", env.netns.as_deref()),
            ("CNI_IFNAME", env.ifname.as_deref()),
            ("CNI_ARGS", env.args.as_deref()),
        ];
        for (k, v) in vars {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        if let Ok(path) = std::env::join_paths(&env.path) {
            cmd.env("CNI_PATH", path);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls (prctl, getppid); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                // The delegate dies with us (DESIGN.md §3.1): a SIGKILL of the plugin must not
                // leave a host-local holding its lock or half-writing a lease. The signal follows
                // the thread that forked; CNI mode runs a current-thread runtime on the main thread.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // We may have died between fork and prctl; then no signal will ever come.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd
    }

    /// The delegate's CNI error document, if stdout holds one (`code` is required; libcni reads
    /// `msg` and `details`).
    fn reported_error(&self, stdout: &[u8]) -> Option<DelegateError> {
        let doc: Value = serde_json::from_slice(stdout).ok()?;
        let code = doc.get("code")?.as_u64().and_then(|c| u32::try_from(c).ok())?;
        let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        // Code 0 is not an error code; keep the message, report a generic failure.
        let code = if code == 0 { codes::IO_FAILURE } else { code };
        Some(DelegateError::Reported { plugin: self.plugin.clone(), code, msg: text("msg"), details: text("details") })
    }
}

/// Read up to `max` bytes, then drain (and drop) the rest so the writer never blocks.
async fn read_limited<R: AsyncRead + Unpin>(pipe: Option<R>, max: u64) -> std::io::Result<Vec<u8>> {
    let Some(pipe) = pipe else { return Ok(Vec::new()) };
    let mut buf = Vec::new();
    let mut limited = pipe.take(max);
    limited.read_to_end(&mut buf).await?;
    let mut rest = limited.into_inner();
    tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
    Ok(buf)
}

/// The stdin a delegate gets: the network config with `cniVersion` set to the negotiated version,
/// `cniVersions` removed (a delegate reads only `cniVersion`), and a `prevResult` (the given one,
/// else the config's own) converted to that version so its shape matches the version it names.
pub fn delegated_config(config: &Value, version: CniVersion, prev_result: Option<&Value>) -> Value {
    let mut doc = config.clone();
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("cniVersion".into(), Value::String(version.as_str().into()));
        obj.remove("cniVersions");
        if let Some(prev) = prev_result {
            obj.insert("prevResult".into(), prev.clone());
        }
        if let Some(prev) = obj.get_mut("prevResult") {
            match crate::cni::result::CniResult::from_json(prev) {
                Ok(r) => *prev = r.to_json(version),
                // Not ours to judge: the delegate reports it if it reads prevResult at all.
                Err(e) => tracing::debug!(error = %e, "prevResult passed to the delegate unconverted"),
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_names_must_be_plain_file_names() {
        for ok in ["host-local", "static", "whereabouts", "dhcp", "a_b.c"] {
            assert!(validate_type("ipam.type", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "/usr/bin/id", "../host-local", "a/b", "host local", "x\0y"] {
            let e = CniError::from(validate_type("ipam.type", bad).unwrap_err());
            assert_eq!(e.code, codes::INVALID_NETCONF, "{bad:?}");
            assert!(e.msg.starts_with("ipam.type"), "{}", e.msg);
        }
    }

    #[test]
    fn missing_plugin_is_code_7_naming_the_path() {
        let e = Delegate::find("ipam.type", "no-such-plugin", &[PathBuf::from("/nonexistent"), PathBuf::from("/x")])
            .unwrap_err();
        let c = CniError::from(e);
        assert_eq!(c.code, codes::INVALID_NETCONF);
        assert!(c.msg.contains("\"no-such-plugin\"") && c.msg.contains("/nonexistent:/x"), "{}", c.msg);
    }

    #[test]
    fn a_directory_is_not_a_plugin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("host-local")).unwrap();
        assert!(Delegate::find("ipam.type", "host-local", &[dir.path().to_path_buf()]).is_err());
    }

    #[test]
    fn common_version_is_the_highest_shared() {
        let d = Delegate { plugin: "p".into(), binary: "/p".into() };
        let hl: Vec<String> =
            ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"].iter().map(|s| s.to_string()).collect();
        assert_eq!(d.common_version(&hl).unwrap(), CniVersion::V100);
        assert_eq!(d.common_version(&["1.1.0".into(), "2.0.0".into()]).unwrap(), CniVersion::V110);
        let c = CniError::from(d.common_version(&["0.1.0".into(), "0.2.0".into()]).unwrap_err());
        assert_eq!(c.code, codes::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn delegated_config_rewrites_the_version_and_converts_prev_result() {
        let conf = json!({
            "cniVersion": "1.1.0", "cniVersions": ["1.1.0"], "name": "n",
            "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}]}
        });
        let d = delegated_config(&conf, CniVersion::V040, None);
        assert_eq!(d["cniVersion"], "0.4.0");
        assert!(d.get("cniVersions").is_none());
        assert_eq!(d["prevResult"]["cniVersion"], "0.4.0");
        assert_eq!(d["prevResult"]["ips"][0]["version"], "4");
        let prev = json!({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.3/24"}]});
        let d = delegated_config(&conf, CniVersion::V100, Some(&prev));
        assert_eq!(d["prevResult"], json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24"}]}));
    }
}
