//! `userspace doctor [--json] [--engine ENGINE]...`: can this node serve attachments? OVSDB, DPDK,
//! ovs-vswitchd, vhost-sock-dir, hugepages, the VPP API, state and socket dir permissions,
//! records, and the CNI_PATH plugins with their versions; each ✔/✘ with a hint. Changes nothing.

use crate::cni::version::CniVersion;
use crate::pipeline::Registry;
use crate::reconcile::survey::{self, AttachmentState};
use crate::state::StateDir;
use crate::steps::delegate::Delegate;
use serde::Serialize;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use userspace_cni_api::NodeSettings;
use userspace_cni_ovs_dpdk::lifecycle::{self as ovs, OvsFacts};
use userspace_cni_ovs_dpdk::settings::OvsSettings;
use userspace_cni_vpp::settings::VppSettings;

const USAGE: &str = "usage: userspace doctor [--json] [--engine ENGINE]...
  Checks that this node can serve userspace-cni attachments; exits 1 if any check fails.
  --engine ENGINE   require this dataplane (ovs-dpdk, vpp); by default every dataplane whose
                    socket exists is checked, and at least one must exist
  --json            {\"ok\": bool, \"checks\": [{\"check\", \"status\": pass|fail|skip, \"detail\", \"hint\"}]}
";

/// Where runtimes look for CNI plugins when CNI_PATH is not set (the DaemonSet's mount).
const DEFAULT_CNI_PATH: &str = "/opt/cni/bin";
/// IPAM plugins worth reporting when present, whether or not a record uses them.
const KNOWN_IPAM: &[&str] = &["host-local", "static", "whereabouts", "dhcp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn pass(check: &str, detail: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Pass, detail: detail.into(), hint: None }
    }
    fn fail(check: &str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Fail, detail: detail.into(), hint: Some(hint.into()) }
    }
    fn skip(check: &str, detail: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Skip, detail: detail.into(), hint: None }
    }
}

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
    // Each engine's endpoints as its backend reads them (its `[engines.<engine>]` table).
    let (ovs_s, vpp_s) = (OvsSettings::from_node(settings), VppSettings::from_node(settings));
    let ovs_socket = ovs_s.ovsdb_socket();
    let want = |engine: &str, present: bool| {
        if engines.is_empty() {
            present
        } else {
            engines.iter().any(|e| e == engine)
        }
    };
    let ovs_present = ovs_socket.as_deref().is_some_and(Path::exists);
    let vpp_present = vpp_s.api_socket.exists();
    let mut facts = None;
    if want(userspace_cni_ovs_dpdk::ENGINE, ovs_present) {
        let (c, f) = ovs_checks(settings).await;
        checks.extend(c);
        facts = f;
    } else {
        checks.push(Check::skip("OVSDB", format!("{} absent: OVS-DPDK not checked", ovs_s.ovsdb)));
    }
    if want(userspace_cni_vpp::ENGINE, vpp_present) {
        checks.push(vpp_check(registry, settings).await);
    } else {
        checks.push(Check::skip("VPP API", format!("{} absent: VPP not checked", vpp_s.api_socket.display())));
    }
    if engines.is_empty() && !ovs_present && !vpp_present {
        checks.push(Check::fail(
            "dataplane",
            format!(
                "neither the OVSDB socket ({}) nor the VPP API socket ({}) exists",
                ovs_s.ovsdb,
                vpp_s.api_socket.display()
            ),
            "start OVS-DPDK or VPP on this node, or point the settings ovsdb / vpp_api_socket at their sockets",
        ));
    }
    checks.push(hugepages_check(facts.as_ref()));
    checks.push(state_dir_check(&settings.state_dir));
    checks.push(socket_dir_check("shared dir base", "shared_dir", &settings.shared_dir));
    checks.push(socket_dir_check("short socket dir", "short_socket_dir", &settings.short_socket_dir));
    let state = StateDir::at(&settings.state_dir);
    let found = survey::survey(&state, SystemTime::now());
    checks.push(records_check(&found));
    checks.extend(cni_path_checks(settings, found.as_ref().ok()).await);
    checks
}

async fn ovs_checks(settings: &NodeSettings) -> (Vec<Check>, Option<OvsFacts>) {
    let mut out = Vec::new();
    let ovsdb = OvsSettings::from_node(settings).ovsdb;
    let (mut client, facts) = match ovs::facts(settings, settings.timeout()).await {
        Ok(x) => x,
        Err(e) => {
            out.push(Check::fail(
                "OVSDB",
                e.msg,
                format!(
                    "start ovsdb-server (systemctl start openvswitch-switch) or set ovsdb in the settings file; now: {ovsdb}"
                ),
            ));
            return (out, None);
        }
    };
    out.push(Check::pass(
        "OVSDB",
        format!("{ovsdb} answers (OVS {})", facts.ovs_version.as_deref().unwrap_or("version unknown")),
    ));
    if facts.dpdk_initialized == Some(true) {
        out.push(Check::pass(
            "DPDK initialised",
            format!("DPDK {}", facts.dpdk_version.as_deref().unwrap_or("version unknown")),
        ));
    } else {
        out.push(Check::fail(
            "DPDK initialised",
            "ovs-vswitchd has not initialised DPDK (Open_vSwitch dpdk_initialized is not true)",
            "ovs-vsctl set Open_vSwitch . other_config:dpdk-init=true, run the DPDK build \
             (update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk) and \
             restart ovs-vswitchd; its log says why DPDK failed",
        ));
    }
    match ovs::vswitchd_applies(&mut client, settings.timeout()).await {
        Ok(()) => out.push(Check::pass("ovs-vswitchd", "applies OVSDB changes")),
        Err(e) => {
            out.push(Check::fail("ovs-vswitchd", e.msg, "start ovs-vswitchd; ADD waits for it to apply each port"))
        }
    }
    out.push(vhost_sock_dir_check(settings, &facts));
    (out, Some(facts))
}

/// Server-mode ports: OVS creates the socket in its vhost-sock-dir and the plugin renames it
/// from `ovs_sock_dir`, so the two must be the same directory.
fn vhost_sock_dir_check(settings: &NodeSettings, facts: &OvsFacts) -> Check {
    let name = "vhost-sock-dir";
    let ours = &OvsSettings::from_node(settings).sock_dir;
    let Some(theirs) = facts.vhost_sock_dir(settings) else {
        return Check::skip(name, "the OVSDB endpoint is not a unix socket: OVS's rundir is unknown");
    };
    match std::fs::metadata(ours) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Check::fail(
                name,
                format!("ovs_sock_dir {} is not a directory", ours.display()),
                format!("set ovs_sock_dir = \"{}\" in the settings file", theirs.display()),
            )
        }
    }
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(ours) == canon(&theirs) {
        Check::pass(name, format!("OVS creates server-mode sockets in {} = ovs_sock_dir", theirs.display()))
    } else {
        Check::fail(
            name,
            format!("OVS creates server-mode sockets in {}, but ovs_sock_dir is {}", theirs.display(), ours.display()),
            format!(
                "set ovs_sock_dir = \"{}\" in the settings file (or use host vhost.mode client, which needs neither)",
                theirs.display()
            ),
        )
    }
}

async fn vpp_check(registry: &Registry, settings: &NodeSettings) -> Check {
    let name = "VPP API";
    let backend = match registry.get(userspace_cni_vpp::ENGINE) {
        Ok(b) => b,
        Err(e) => return Check::fail(name, e.msg, "this binary was built without the VPP engine"),
    };
    let socket = VppSettings::from_node(settings).api_socket;
    match backend.status(settings).await {
        Ok(()) => Check::pass(name, format!("{} answers", socket.display())),
        Err(e) => Check::fail(
            name,
            e.msg,
            format!("start VPP with its api socket at {}, or set vpp_api_socket", socket.display()),
        ),
    }
}

/// `HugePages_Total`/`HugePages_Free` of /proc/meminfo (host-wide, also inside a container),
/// which DPDK needs unless it runs with `--no-huge` (OVS's `dpdk-extra`, as in test labs). The
/// hugetlbfs mount is shown but not required: a reconciler container sees its own mounts, not
/// the host's where DPDK runs.
fn hugepages_check(facts: Option<&OvsFacts>) -> Check {
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
    if facts.is_some_and(OvsFacts::no_huge) {
        return Check::pass(name, format!("not needed: OVS runs DPDK with --no-huge ({have})"));
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
