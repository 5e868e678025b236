//! `userspace doctor [--json] [--engine ENGINE]...`: can this node serve attachments? Each linked
//! engine's own checks (`Backend::doctor`: OVSDB, DPDK, ovs-vswitchd, vhost-sock-dir; the VPP
//! API), hugepages, state and socket dir permissions, records, and the CNI_PATH plugins with their
//! versions; each ✔/✘ with a hint. Changes nothing.

use crate::cni::version::CniVersion;
use crate::pipeline::Registry;
use crate::reconcile::survey::{self, AttachmentState};
use crate::state::StateDir;
use crate::steps::delegate::Delegate;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use userspace_cni_api::{CheckStatus as Status, DoctorCheck as Check, NodeSettings};

const USAGE: &str = "usage: userspace doctor [--json] [--engine ENGINE]...
  Checks that this node can serve userspace-cni attachments; exits 1 if any check fails.
  --engine ENGINE   require this dataplane (one that `userspace backends` lists); by default
                    every dataplane whose socket exists is checked, and at least one must exist
  --json            {\"ok\": bool, \"checks\": [{\"check\", \"status\": pass|fail|skip, \"detail\", \"hint\"}]}
";

/// Where runtimes look for CNI plugins when CNI_PATH is not set (the DaemonSet's mount).
const DEFAULT_CNI_PATH: &str = "/opt/cni/bin";
/// IPAM plugins worth reporting when present, whether or not a record uses them.
const KNOWN_IPAM: &[&str] = &["host-local", "static", "whereabouts", "dhcp"];

pub fn main(registry: &Registry, args: &[String]) -> i32 {
    let mut json_out = false;
    let mut engines: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json_out = true,
            "--engine" => match it.next() {
                Some(e) => engines.push(e.clone()),
                None => {
                    eprintln!("userspace doctor: --engine needs a value\n{USAGE}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                crate::stdout::out!("{USAGE}");
                return 0;
            }
            other => {
                eprintln!("userspace doctor: unknown argument {other:?}\n{USAGE}");
                return 2;
            }
        }
    }
    for e in &engines {
        if !registry.engines().contains(&e.as_str()) {
            eprintln!(
                "userspace doctor: --engine {e:?} is not built into this binary ({})",
                registry.engines().join(", ")
            );
            return 2;
        }
    }
    let checks = match crate::settings::load(registry.registrations()) {
        Ok(settings) => {
            let mut checks = vec![Check::pass("settings", settings_source())];
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => checks.extend(rt.block_on(run(registry, &settings, &engines))),
                Err(e) => checks.push(Check::fail("runtime", e.to_string(), "this is a bug; report it")),
            }
            checks
        }
        Err(e) => vec![Check::fail(
            "settings",
            e.to_string(),
            format!("fix the settings file or the {}_* variables", crate::settings::ENV_PREFIX),
        )],
    };
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if json_out {
        crate::stdout::outln!("{}", serde_json::json!({"ok": ok, "checks": checks}));
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Pass => "✔",
                Status::Fail => "✘",
                Status::Skip => "-",
            };
            crate::stdout::outln!("{mark} {}: {}", c.check, c.detail);
            if let Some(h) = &c.hint {
                crate::stdout::outln!("    hint: {h}");
            }
        }
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        if ok {
            crate::stdout::outln!("userspace doctor: all {} checks passed", checks.len());
        } else {
            crate::stdout::outln!("userspace doctor: {failed} of {} checks failed", checks.len());
        }
    }
    if ok {
        0
    } else {
        1
    }
}

fn settings_source() -> String {
    let file = std::env::var(crate::settings::CONFIG_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| crate::settings::DEFAULT_CONFIG_FILE.into());
    if Path::new(&file).exists() {
        format!("loaded {file} (and any {}_* variables)", crate::settings::ENV_PREFIX)
    } else {
        format!("{file} absent: built-in defaults (and any {}_* variables)", crate::settings::ENV_PREFIX)
    }
}

/// Every check after the settings, in the order an operator fixes things.
pub async fn run(registry: &Registry, settings: &NodeSettings, engines: &[String]) -> Vec<Check> {
    let mut checks = Vec::new();
    let (mut present, mut endpoints, mut names, mut no_huge) = (false, Vec::new(), Vec::new(), None);
    for reg in registry.registrations() {
        // Without --engine, each engine checks itself if its endpoint exists (and says so if not).
        let required = engines.iter().any(|e| e == reg.engine);
        let d = (reg.make)().doctor(settings, required).await;
        present |= d.present;
        if let Some(e) = d.endpoint {
            endpoints.push(e);
            names.push(reg.engine);
        }
        no_huge = no_huge.or(d.hugepages_not_needed);
        checks.extend(d.checks);
    }
    if engines.is_empty() && !present {
        let detail = match endpoints.as_slice() {
            [] => "no engine linked into this binary has an endpoint to check".to_owned(),
            [one] => format!("{one} does not exist"),
            [a, b] => format!("neither {a} nor {b} exists"),
            many => format!("none of {} exists", many.join(", ")),
        };
        checks.push(Check::fail(
            "dataplane",
            detail,
            format!(
                "start a dataplane on this node ({}), or point its endpoint setting ([engines.<engine>]) at its socket",
                names.join(", ")
            ),
        ));
    }
    checks.push(hugepages_check(no_huge.as_deref()));
    checks.push(state_dir_check(&settings.state_dir));
    checks.push(socket_dir_check("shared dir base", "shared_dir", &settings.shared_dir));
    checks.push(socket_dir_check("short socket dir", "short_socket_dir", &settings.short_socket_dir));
    let state = StateDir::at(&settings.state_dir);
    let found = survey::survey(&state, SystemTime::now());
    checks.push(records_check(&found));
    checks.extend(cni_path_checks(settings, found.as_ref().ok()).await);
    checks
}

/// `HugePages_Total`/`HugePages_Free` of /proc/meminfo (host-wide, also inside a container),
/// which DPDK needs unless it runs with `--no-huge` (OVS's `dpdk-extra`, as in test labs). The
/// hugetlbfs mount is shown but not required: a reconciler container sees its own mounts, not
/// the host's where DPDK runs. `not_needed`: an engine's reason why its dataplane needs none.
fn hugepages_check(not_needed: Option<&str>) -> Check {
    let name = "hugepages";
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |k: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.trim_start_matches(':').split_whitespace().next()))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (total, free, size_kb) = (field("HugePages_Total"), field("HugePages_Free"), field("Hugepagesize"));
    let mounted = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"));
    let have = format!(
        "{total} reserved, {free} free, {size_kb} kB each; hugetlbfs {} in this mount namespace",
        if mounted { "mounted" } else { "not mounted" }
    );
    if let Some(why) = not_needed {
        return Check::pass(name, format!("not needed: {why} ({have})"));
    }
    if total > 0 {
        Check::pass(name, have)
    } else {
        Check::fail(
            name,
            have,
            "reserve hugepages (sysctl vm.nr_hugepages=1024, or hugepagesz=1G hugepages=N on the kernel command line) \
             and mount hugetlbfs on the host (mount -t hugetlbfs nodev /dev/hugepages); DPDK and vhost-user VMs need them",
        )
    }
}

fn state_dir_check(dir: &Path) -> Check {
    let name = "state dir";
    match std::fs::symlink_metadata(dir) {
        Err(_) => match dir.parent().map(std::fs::metadata) {
            Some(Ok(m)) if m.is_dir() => {
                Check::pass(name, format!("{} absent: the first ADD creates it (0700)", dir.display()))
            }
            _ => Check::fail(
                name,
                format!("{} and its parent do not exist", dir.display()),
                format!("create it: install -d -m 0700 {}", dir.display()),
            ),
        },
        Ok(m) if !m.is_dir() => Check::fail(
            name,
            format!("{} is not a directory (a symlink or a file)", dir.display()),
            "remove it, or point state_dir at a directory",
        ),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if mode & 0o077 != 0 {
                Check::fail(
                    name,
                    format!("{} is mode {mode:o}; records hold network configs", dir.display()),
                    format!("chmod 0700 {} (ADD refuses it otherwise)", dir.display()),
                )
            } else if m.uid() != me {
                Check::fail(
                    name,
                    format!("{} belongs to uid {}, not to us (uid {me})", dir.display(), m.uid()),
                    format!("chown root {}", dir.display()),
                )
            } else {
                Check::pass(name, format!("{} mode {mode:o}", dir.display()))
            }
        }
    }
}

/// A base the plugin creates per-pod directories (and sockets) in, as root: a world-writable one
/// would let anyone plant a symlink where the plugin writes.
fn socket_dir_check(name: &str, key: &str, dir: &Path) -> Check {
    match std::fs::symlink_metadata(dir) {
        Err(_) => Check::pass(name, format!("{} absent: created by the first ADD that needs it", dir.display())),
        Ok(m) if !m.is_dir() => Check::fail(
            name,
            format!("{key} {} is not a directory (a symlink or a file)", dir.display()),
            format!("remove it, or point {key} at a directory"),
        ),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o002 != 0 {
                Check::fail(
                    name,
                    format!("{key} {} is world-writable (mode {mode:o})", dir.display()),
                    format!("chmod o-w {}", dir.display()),
                )
            } else {
                Check::pass(name, format!("{} mode {mode:o}", dir.display()))
            }
        }
    }
}

fn records_check(found: &Result<survey::Survey, crate::state::StateError>) -> Check {
    let name = "records";
    let s = match found {
        Ok(s) => s,
        Err(e) => return Check::fail(name, e.to_string(), "check the state dir's permissions"),
    };
    let count = |st: AttachmentState| s.entries.iter().filter(|e| e.state == st).count();
    let detail = format!(
        "{} attachments: {} complete, {} in progress, {} orphaned",
        s.entries.len(),
        count(AttachmentState::Complete),
        count(AttachmentState::InProgress),
        count(AttachmentState::Orphaned)
    );
    if let Some((path, why)) = s.unreadable.first() {
        return Check::fail(
            name,
            format!("{detail}; {} unreadable, e.g. {}: {why}", s.unreadable.len(), path.display()),
            "read it, clean up what it names by hand, then move it out of the state dir",
        );
    }
    Check::pass(name, detail)
}

fn cni_path() -> Vec<PathBuf> {
    let raw = std::env::var("CNI_PATH").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_CNI_PATH.into());
    std::env::split_paths(&raw).filter(|p| !p.as_os_str().is_empty()).collect()
}

async fn versions(d: &Delegate, path: &[PathBuf], settings: &NodeSettings) -> Result<String, String> {
    d.supported_versions(CniVersion::LATEST, path, settings.timeout())
        .await
        .map(|v| v.join(", "))
        .map_err(|e| e.to_string())
}

/// This plugin where the runtime execs it, the IPAM plugins that recorded attachments need for
/// their DEL (from each record's own CNI_PATH), and the well-known IPAM plugins present.
async fn cni_path_checks(settings: &NodeSettings, found: Option<&survey::Survey>) -> Vec<Check> {
    let mut out = Vec::new();
    let path = cni_path();
    let shown = std::env::join_paths(&path).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    match Delegate::find("CNI_PATH", "userspace", &path) {
        Ok(d) => match versions(&d, &path, settings).await {
            Ok(v) => out.push(Check::pass("plugin", format!("{} speaks CNI {v}", d.binary.display()))),
            Err(e) => out.push(Check::fail("plugin", e, "reinstall it: userspace install /opt/cni/bin")),
        },
        Err(_) => out.push(Check::fail(
            "plugin",
            format!("no executable userspace in CNI_PATH ({shown})"),
            "install it: userspace install /opt/cni/bin (or set CNI_PATH to the runtime's plugin dir)",
        )),
    }
    let mut needed: BTreeSet<(String, Vec<PathBuf>)> = BTreeSet::new();
    for e in found.map(|s| s.entries.as_slice()).unwrap_or_default() {
        let plan = &e.record.plan;
        if let Ok(Some(t)) = crate::steps::ipam::plugin_type(plan.ipam.as_ref()) {
            if plan.steps.iter().any(|s| s == "ipam") {
                needed.insert((t.to_owned(), plan.cni_path.clone()));
            }
        }
    }
    for (plugin, rec_path) in &needed {
        let name = format!("IPAM {plugin}");
        match Delegate::find("ipam.type", plugin, rec_path) {
            Ok(d) => match versions(&d, rec_path, settings).await {
                Ok(v) => out.push(Check::pass(
                    &name,
                    format!("{} speaks CNI {v} (recorded attachments use it)", d.binary.display()),
                )),
                Err(e) => {
                    out.push(Check::fail(&name, e, "the DEL of recorded attachments runs it: repair or reinstall it"))
                }
            },
            Err(e) => out.push(Check::fail(
                &name,
                e.to_string(),
                "the DEL of recorded attachments needs it in the CNI_PATH they were added with: reinstall it there",
            )),
        }
    }
    let mut present = Vec::new();
    for plugin in KNOWN_IPAM {
        if needed.iter().any(|(p, _)| p == plugin) {
            continue;
        }
        if let Ok(d) = Delegate::find("ipam.type", plugin, &path) {
            match versions(&d, &path, settings).await {
                Ok(v) => present.push(format!("{plugin} (CNI {v})")),
                Err(e) => out.push(Check::fail(&format!("IPAM {plugin}"), e, "repair or remove it")),
            }
        }
    }
    if present.is_empty() {
        out.push(Check::skip("IPAM plugins", format!("none of {} in CNI_PATH ({shown})", KNOWN_IPAM.join(", "))));
    } else {
        out.push(Check::pass("IPAM plugins", present.join("; ")));
    }
    out
}
