//! `userspace gc [--dry-run] [--every DURATION] [--grace DURATION] [--json]` and
//! `userspace gc --check-heartbeat DURATION`: runs the node reconciler once or every DURATION until
//! SIGTERM/SIGINT. Never reaps on its own judgement: `crate::reconcile` decides.

use crate::pipeline::Registry;
use crate::reconcile::node_mark::NodeMarker;
use crate::reconcile::pods::{ApiClaims, ApiPods, ClaimOracle, NoClaims, NoKubernetes, PodOracle};
use crate::reconcile::repair::RepairOutcome;
use crate::reconcile::{heartbeat, Action, Keep, Options, Reconciler, Report, DEFAULT_GRACE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: userspace gc [--dry-run] [--every DURATION] [--grace DURATION] [--json]
       userspace gc --check-heartbeat DURATION
  Removes attachments whose pod is gone: its netns is no longer a network namespace (a missing
  netns directory proves nothing), its record is older than --grace (default 5m), and nobody holds
  its lock. Each is torn down as DEL would (dataplane, sockets, dirs, mounts, IPAM DEL). Also
  removes lock and temp files that belong to no record.
  Repairs attachments of live pods after a dataplane restart: re-delivers server-mode sockets OVS
  re-created in its own dir, re-creates ports, bridges and VPP interfaces a restart dropped (same
  names and tags). Skips attachments whose lock is held; stops trying an engine that is down.
  --dry-run          report what would be removed or repaired; change nothing
  --every DURATION   run a pass every DURATION until SIGTERM or SIGINT (e.g. 60s, 5m)
  --grace DURATION   keep records younger than this (default 5m)
  --json             one JSON report per pass
  --kubernetes auto|in-cluster|off
                     also ask the API server whether a dead netns's pod is gone (auto: in-cluster
                     when KUBERNETES_SERVICE_HOST is set and this build has Kubernetes support)
                     and label this node (NODE_NAME) userspace-cni.io/<engine>-unavailable=true
                     while an engine with attachments here cannot be reached
  --kubeconfig PATH  use these credentials instead of the in-cluster account (implies API access)
  --check-heartbeat DURATION
                     exit 0 if a pass completed within DURATION (the DaemonSet's liveness probe)
  DURATION: a number with ms, s, m, h or d (a bare number is seconds).
";

/// The shortest `--every`: a pass lists the state dir and probes every netns; more often than
/// this is a busy loop, not reconciliation.
const MIN_EVERY: Duration = Duration::from_millis(100);
/// How often the wait between passes looks at the stop flag: bounds the reaction to SIGTERM.
const STOP_POLL: Duration = Duration::from_millis(50);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// SIGTERM (kubelet stopping the pod) and SIGINT end the `--every` loop after the current
/// attachment; a handler (not a blocked mask) so delegates we exec start with default signals.
fn install_stop_handlers() -> Result<(), String> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with only sa_sigaction set is valid; the handler performs
        // one atomic store, which is async-signal-safe.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as *const () as usize;
            // Interrupted system calls restart: the flag, not EINTR, ends the loop.
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(format!("cannot install a handler for signal {sig}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub dry_run: bool,
    pub every: Option<Duration>,
    pub grace: Duration,
    pub json: bool,
    pub check_heartbeat: Option<Duration>,
    pub kubernetes: KubeMode,
    /// `--kubeconfig PATH`: reach the API server with these credentials instead of the in-cluster
    /// account (a reconciler run outside the cluster, or a test's fake API server).
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// Whether the reconciler asks the API server too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeMode {
    Auto,
    InCluster,
    Off,
}

impl KubeMode {
    fn enabled(self) -> bool {
        match self {
            KubeMode::Off => false,
            KubeMode::InCluster => true,
            KubeMode::Auto => crate::k8s::BUILT && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        }
    }
}

/// `90`, `500ms`, `60s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 60s, 5m, 500ms)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m, h or d")),
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("{s:?} is too long"))
}

/// `None` for `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut out = Args {
        dry_run: false,
        every: None,
        grace: DEFAULT_GRACE,
        json: false,
        check_heartbeat: None,
        kubernetes: KubeMode::Auto,
        kubeconfig: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<Duration, String> {
            let v = inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{name} needs a DURATION"))?;
            parse_duration(&v).map_err(|e| format!("{name}: {e}"))
        };
        match flag {
            "--dry-run" => out.dry_run = true,
            "--json" => out.json = true,
            "--every" => {
                let d = value("--every")?;
                if d < MIN_EVERY {
                    return Err(format!("--every must be at least {} ms", MIN_EVERY.as_millis()));
                }
                out.every = Some(d);
            }
            "--grace" => out.grace = value("--grace")?,
            "--check-heartbeat" => out.check_heartbeat = Some(value("--check-heartbeat")?),
            "--kubeconfig" => {
                let v = inline.clone().or_else(|| it.next().cloned()).ok_or("--kubeconfig needs a PATH")?;
                out.kubeconfig = Some(v.into());
            }
            "--kubernetes" => {
                let v = inline.clone().or_else(|| it.next().cloned()).unwrap_or_default();
                out.kubernetes = match v.as_str() {
                    "auto" => KubeMode::Auto,
                    "in-cluster" => KubeMode::InCluster,
                    "off" => KubeMode::Off,
                    other => return Err(format!("--kubernetes {other:?}: use auto, in-cluster or off")),
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if out.check_heartbeat.is_some() && (out.every.is_some() || out.dry_run) {
        return Err("--check-heartbeat only reads the heartbeat; it takes no other option but --json".into());
    }
    Ok(Some(out))
}

pub fn main(registry: &Registry, args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            crate::stdout::out!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("userspace gc: {e}\n{USAGE}");
            return 2;
        }
    };
    let settings = match super::settings_or_exit("gc", registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(max_age) = args.check_heartbeat {
        return match heartbeat::check(&settings.state_dir, max_age) {
            Ok(age) => {
                crate::stdout::outln!("reconciler heartbeat {}s old (limit {}s)", age.as_secs(), max_age.as_secs());
                0
            }
            Err(e) => {
                eprintln!("userspace gc: {e}");
                1
            }
        };
    }
    crate::logging::init(None, None, &[]);
    if args.every.is_some() {
        if let Err(e) = install_stop_handlers() {
            eprintln!("userspace gc: {e}");
            return 1;
        }
    }
    let runtime = match super::runtime_or_exit("gc") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (access, with_api) = match &args.kubeconfig {
        // The operator's file: no allow-list, file references allowed, but no credential plugin
        // (kube would run it blocking, past every bound of a pass): k8s/kubeconfig.rs.
        Some(path) => (crate::k8s::ApiAccess::OperatorKubeconfig { path: path.clone() }, true),
        None => (crate::k8s::ApiAccess::InCluster, args.kubernetes.enabled()),
    };
    let api = ApiPods { access: access.clone(), timeout: settings.timeout() };
    let pods: &dyn PodOracle = if with_api { &api } else { &NoKubernetes };
    // Without a usable name no DRA claim can be proved gone: they are all kept.
    let node = crate::settings::node_name(&settings).unwrap_or_else(|e| {
        tracing::warn!("{e}; DRA attachments are kept");
        None
    });
    let api_claims = ApiClaims { access: access.clone(), timeout: settings.timeout(), node };
    let claims: &dyn ClaimOracle = if with_api { &api_claims } else { &NoClaims };
    let marker = if with_api {
        NodeMarker::from_env(access, settings.timeout())
    } else {
        tracing::debug!("no Kubernetes access: node marking is off");
        None
    };
    let reconciler = Reconciler {
        settings: &settings,
        registry,
        pods,
        claims,
        options: Options { grace: args.grace, dry_run: args.dry_run },
        node_marker: marker.as_ref(),
    };
    loop {
        let report = runtime.block_on(reconciler.pass(&stop_requested));
        print_report(&report, args.json);
        let Some(every) = args.every else {
            return if report.errors.is_empty() { 0 } else { 1 };
        };
        let next = Instant::now() + every;
        while Instant::now() < next {
            if stop_requested() {
                return 0;
            }
            std::thread::sleep(STOP_POLL.min(next.saturating_duration_since(Instant::now())));
        }
        if stop_requested() {
            return 0;
        }
    }
}

fn print_report(r: &Report, json: bool) {
    if json {
        match serde_json::to_string(r) {
            Ok(s) => crate::stdout::outln!("{s}"),
            Err(e) => eprintln!("userspace gc: cannot encode the report: {e}"),
        }
        return;
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    for o in &r.attachments {
        let who = format!(
            "{}/{} (network {}, netns {})",
            o.container_id,
            o.ifname,
            o.network,
            o.netns.as_deref().unwrap_or("-")
        );
        match &o.action {
            Action::Reaped | Action::WouldReap => {
                crate::stdout::outln!("{verb} {who}: netns gone, {}s old", o.age_seconds)
            }
            Action::Failed { error } => crate::stdout::outln!("FAILED to remove {who}: {error}"),
            // Live pods are the normal case: one summary line covers them.
            Action::Kept { why: Keep::NetnsAlive } => {}
            Action::Kept { why } => crate::stdout::outln!("kept {who}: {why}"),
        }
    }
    for f in &r.swept_files {
        crate::stdout::outln!("{verb} stray state file {}", f.display());
    }
    for p in &r.repairs {
        let who = format!("{}/{} (network {}, {})", p.container_id, p.ifname, p.network, p.engine);
        match &p.outcome {
            RepairOutcome::Repaired { actions } => crate::stdout::outln!("repaired {who}: {}", actions.join("; ")),
            RepairOutcome::WouldRepair { actions } => {
                crate::stdout::outln!("would repair {who}: {}", actions.join("; "))
            }
            RepairOutcome::Failed { error, .. } => crate::stdout::outln!("FAILED to repair {who}: {error}"),
            RepairOutcome::Skipped { why } => crate::stdout::outln!("did not repair {who}: {why}"),
            // Healthy is the normal case: the summary line counts it.
            RepairOutcome::Healthy => {}
        }
    }
    let kept = r.attachments.iter().filter(|o| matches!(o.action, Action::Kept { .. })).count();
    crate::stdout::outln!(
        "gc pass{}: {} attachments, {} {verb}, {kept} kept, {} stray files, {} errors{}",
        if r.dry_run { " (dry run)" } else { "" },
        r.attachments.len(),
        r.reaped(),
        r.swept_files.len(),
        r.errors.len(),
        if r.interrupted { ", interrupted by a stop signal" } else { "" }
    );
    if !r.repairs.is_empty() {
        let count = |f: fn(&RepairOutcome) -> bool| r.repairs.iter().filter(|p| f(&p.outcome)).count();
        crate::stdout::outln!(
            "repair{}: {} live attachments, {} {}, {} healthy, {} failed, {} skipped",
            if r.dry_run { " (dry run)" } else { "" },
            r.repairs.len(),
            count(|o| matches!(o, RepairOutcome::Repaired { .. } | RepairOutcome::WouldRepair { .. })),
            if r.dry_run { "would be repaired" } else { "repaired" },
            count(|o| matches!(o, RepairOutcome::Healthy)),
            count(|o| matches!(o, RepairOutcome::Failed { .. })),
            count(|o| matches!(o, RepairOutcome::Skipped { .. })),
        );
    }
    if let Some(m) = &r.node_mark {
        let verb = if r.dry_run { "would label" } else { "labelled" };
        for k in &m.set {
            crate::stdout::outln!("{verb} node {} {k}=true", m.node);
        }
        let verb = if r.dry_run { "would remove" } else { "removed" };
        for k in &m.removed {
            crate::stdout::outln!("{verb} label {k} from node {}", m.node);
        }
        if let Some(e) = &m.error {
            // Never an error of the pass: the reconciler's own work is done; the next pass retries.
            eprintln!("userspace gc: node marking: {e}");
        }
    }
    for e in &r.errors {
        eprintln!("userspace gc: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in ["", "s", "-1s", "1.5s", "10x", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_daemonset_forms_parse() {
        let a = parse_args(&s(&["--every", "60s"])).unwrap().unwrap();
        assert_eq!(a.every, Some(Duration::from_secs(60)));
        assert_eq!(a.grace, DEFAULT_GRACE);
        let a = parse_args(&s(&["--check-heartbeat", "180s"])).unwrap().unwrap();
        assert_eq!(a.check_heartbeat, Some(Duration::from_secs(180)));
        let a = parse_args(&s(&["--dry-run", "--grace=0s", "--json"])).unwrap().unwrap();
        assert!(a.dry_run && a.json && a.grace.is_zero());
        assert!(parse_args(&s(&["--every", "0s"])).is_err());
        assert!(parse_args(&s(&["--every"])).is_err());
        assert!(parse_args(&s(&["--bogus"])).is_err());
        assert!(parse_args(&s(&["--check-heartbeat", "1m", "--every", "1m"])).is_err());
        assert_eq!(parse_args(&s(&["--help"])), Ok(None));
        assert_eq!(parse_args(&s(&["--kubernetes", "off"])).unwrap().unwrap().kubernetes, KubeMode::Off);
        assert!(parse_args(&s(&["--kubernetes=maybe"])).is_err());
    }
}
