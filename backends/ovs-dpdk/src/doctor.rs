//! `userspace doctor`'s OVS-DPDK checks (`Backend::doctor`): OVSDB answers, DPDK is initialised,
//! ovs-vswitchd applies changes, and OVS's vhost-sock-dir is `ovs_sock_dir`. Read only.

use crate::lifecycle::{self, OvsFacts};
use crate::settings::OvsSettings;
use std::path::Path;
use userspace_cni_api::{Diagnosis, DoctorCheck, NodeSettings};

/// The checks, or one skipped line when OVS is absent and was not asked for.
pub async fn diagnose(settings: &NodeSettings, required: bool) -> Diagnosis {
    let ovs = OvsSettings::from_node(settings);
    let present = ovs.ovsdb_socket().as_deref().is_some_and(Path::exists);
    let endpoint = Some(format!("the OVSDB socket ({})", ovs.ovsdb));
    if !present && !required {
        let checks = vec![DoctorCheck::skip("OVSDB", format!("{} absent: OVS-DPDK not checked", ovs.ovsdb))];
        return Diagnosis { present, endpoint, checks, hugepages_not_needed: None };
    }
    let (checks, facts) = checks(settings, &ovs).await;
    let hugepages_not_needed = facts.filter(OvsFacts::no_huge).map(|_| "OVS runs DPDK with --no-huge".to_owned());
    Diagnosis { present, endpoint, checks, hugepages_not_needed }
}

async fn checks(settings: &NodeSettings, ovs: &OvsSettings) -> (Vec<DoctorCheck>, Option<OvsFacts>) {
    let mut out = Vec::new();
    let (mut client, facts) = match lifecycle::facts(settings, settings.timeout()).await {
        Ok(x) => x,
        Err(e) => {
            out.push(DoctorCheck::fail(
                "OVSDB",
                e.msg,
                format!(
                    "start ovsdb-server (systemctl start openvswitch-switch) or set ovsdb in the settings file; now: {}",
                    ovs.ovsdb
                ),
            ));
            return (out, None);
        }
    };
    out.push(DoctorCheck::pass(
        "OVSDB",
        format!("{} answers (OVS {})", ovs.ovsdb, facts.ovs_version.as_deref().unwrap_or("version unknown")),
    ));
    if facts.dpdk_initialized == Some(true) {
        out.push(DoctorCheck::pass(
            "DPDK initialised",
            format!("DPDK {}", facts.dpdk_version.as_deref().unwrap_or("version unknown")),
        ));
    } else {
        out.push(DoctorCheck::fail(
            "DPDK initialised",
            "ovs-vswitchd has not initialised DPDK (Open_vSwitch dpdk_initialized is not true)",
            "ovs-vsctl set Open_vSwitch . other_config:dpdk-init=true, run the DPDK build \
             (update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk) and \
             restart ovs-vswitchd; its log says why DPDK failed",
        ));
    }
    match lifecycle::vswitchd_applies(&mut client, settings.timeout()).await {
        Ok(()) => out.push(DoctorCheck::pass("ovs-vswitchd", "applies OVSDB changes")),
        Err(e) => out.push(DoctorCheck::fail(
            "ovs-vswitchd",
            e.msg,
            "start ovs-vswitchd; ADD waits for it to apply each port",
        )),
    }
    out.push(vhost_sock_dir_check(settings, ovs, &facts));
    (out, Some(facts))
}

/// Server-mode ports: OVS creates the socket in its vhost-sock-dir and the plugin renames it
/// from `ovs_sock_dir`, so the two must be the same directory.
fn vhost_sock_dir_check(settings: &NodeSettings, ovs: &OvsSettings, facts: &OvsFacts) -> DoctorCheck {
    let name = "vhost-sock-dir";
    let ours = &ovs.sock_dir;
    let Some(theirs) = facts.vhost_sock_dir(settings) else {
        return DoctorCheck::skip(name, "the OVSDB endpoint is not a unix socket: OVS's rundir is unknown");
    };
    match std::fs::metadata(ours) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return DoctorCheck::fail(
                name,
                format!("ovs_sock_dir {} is not a directory", ours.display()),
                format!("set ovs_sock_dir = \"{}\" in the settings file", theirs.display()),
            )
        }
    }
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(ours) == canon(&theirs) {
        DoctorCheck::pass(name, format!("OVS creates server-mode sockets in {} = ovs_sock_dir", theirs.display()))
    } else {
        DoctorCheck::fail(
            name,
            format!("OVS creates server-mode sockets in {}, but ovs_sock_dir is {}", theirs.display(), ours.display()),
            format!(
                "set ovs_sock_dir = \"{}\" in the settings file (or use host vhost.mode client, which needs neither)",
                theirs.display()
            ),
        )
    }
}
