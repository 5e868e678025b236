//! Upstream's defaults for the two sides of an interface: the host's documented defaults and a
//! container side that mirrors the host. Pure data in, data out; never rejects anything.

use userspace_cni_api::spec::{IfType, MemifMode, MemifRole, VhostMode};
use userspace_cni_api::InterfaceSpec;

/// The upstream plugin's host-side vhost-user default (OVS `dpdkvhostuser`); kept for compatibility,
/// although OVS deprecates it (the backend warns).
pub const HOST_VHOST_MODE: VhostMode = VhostMode::Server;
pub const HOST_MEMIF_ROLE: MemifRole = MemifRole::Master;
pub const MEMIF_MODE: MemifMode = MemifMode::Ethernet;

/// Fill what the config left out, for the interface type each side ends up with:
/// - host: vhost mode `server`; memif role `master`, mode `ethernet`;
/// - container: engine and iftype from the host; vhost mode and memif role the inverse of the
///   host's; memif mode the host's (both ends of a memif must agree);
/// - the socket file name is one file seen from two sides, so the container's is always the host's
///   (upstream overwrote it the same way; a different value is logged and replaced).
pub fn apply(host: &mut InterfaceSpec, container: &mut InterfaceSpec) {
    match host.iftype {
        Some(IfType::VhostUser) => {
            host.vhost.get_or_insert_default().mode.get_or_insert(HOST_VHOST_MODE);
        }
        Some(IfType::Memif) => {
            let memif = host.memif.get_or_insert_default();
            memif.role.get_or_insert(HOST_MEMIF_ROLE);
            memif.mode.get_or_insert(MEMIF_MODE);
        }
        None => {}
    }

    if container.engine.is_none() {
        container.engine.clone_from(&host.engine);
    }
    if container.iftype.is_none() {
        container.iftype = host.iftype;
    }
    match container.iftype {
        Some(IfType::VhostUser) => {
            let host_vhost = host.vhost.clone().unwrap_or_default();
            let vhost = container.vhost.get_or_insert_default();
            vhost.mode.get_or_insert(host_vhost.mode.unwrap_or(HOST_VHOST_MODE).inverse());
            if vhost.socketfile.is_some() && vhost.socketfile != host_vhost.socketfile {
                tracing::warn!(
                    container = ?vhost.socketfile,
                    host = ?host_vhost.socketfile,
                    "container.vhost.socketfile ignored: the socket is named by host.vhost.socketfile"
                );
            }
            vhost.socketfile = host_vhost.socketfile;
        }
        Some(IfType::Memif) => {
            let host_memif = host.memif.clone().unwrap_or_default();
            let memif = container.memif.get_or_insert_default();
            memif.role.get_or_insert(host_memif.role.unwrap_or(HOST_MEMIF_ROLE).inverse());
            memif.mode.get_or_insert(host_memif.mode.unwrap_or(MEMIF_MODE));
            if memif.socketfile.is_some() && memif.socketfile != host_memif.socketfile {
                tracing::warn!(
                    container = ?memif.socketfile,
                    host = ?host_memif.socketfile,
                    "container.memif.socketfile ignored: the socket is named by host.memif.socketfile"
                );
            }
            memif.socketfile = host_memif.socketfile;
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use userspace_cni_api::spec::{MemifConf, VhostConf};

    fn spec(engine: &str, iftype: IfType) -> InterfaceSpec {
        InterfaceSpec { engine: Some(engine.into()), iftype: Some(iftype), ..Default::default() }
    }

    #[test]
    fn an_empty_container_mirrors_a_vhost_host() {
        let mut host = spec("ovs-dpdk", IfType::VhostUser);
        let mut container = InterfaceSpec::default();
        apply(&mut host, &mut container);
        assert_eq!(host.vhost.as_ref().and_then(|v| v.mode), Some(VhostMode::Server));
        assert_eq!(container.engine.as_deref(), Some("ovs-dpdk"));
        assert_eq!(container.iftype, Some(IfType::VhostUser));
        assert_eq!(container.vhost, Some(VhostConf { mode: Some(VhostMode::Client), group: None, socketfile: None }));
    }

    #[test]
    fn container_vhost_mode_is_the_inverse_of_an_explicit_host_mode() {
        let mut host = spec("ovs-dpdk", IfType::VhostUser);
        host.vhost =
            Some(VhostConf { mode: Some(VhostMode::Client), socketfile: Some("sock1".into()), ..Default::default() });
        let mut container = InterfaceSpec::default();
        apply(&mut host, &mut container);
        let v = container.vhost.unwrap();
        assert_eq!(v.mode, Some(VhostMode::Server));
        assert_eq!(v.socketfile.as_deref(), Some("sock1"));
    }

    #[test]
    fn memif_defaults_on_both_sides() {
        let mut host = spec("vpp", IfType::Memif);
        let mut container = InterfaceSpec::default();
        apply(&mut host, &mut container);
        assert_eq!(
            host.memif,
            Some(MemifConf { role: Some(MemifRole::Master), mode: Some(MemifMode::Ethernet), socketfile: None })
        );
        assert_eq!(
            container.memif,
            Some(MemifConf { role: Some(MemifRole::Slave), mode: Some(MemifMode::Ethernet), socketfile: None })
        );
    }

    #[test]
    fn memif_container_follows_an_explicit_host_role_and_mode() {
        let mut host = spec("vpp", IfType::Memif);
        host.memif = Some(MemifConf {
            role: Some(MemifRole::Slave),
            mode: Some(MemifMode::Ip),
            socketfile: Some("m.sock".into()),
        });
        let mut container = InterfaceSpec { memif: Some(MemifConf::default()), ..Default::default() };
        apply(&mut host, &mut container);
        assert_eq!(
            container.memif,
            Some(MemifConf {
                role: Some(MemifRole::Master),
                mode: Some(MemifMode::Ip),
                socketfile: Some("m.sock".into())
            })
        );
    }

    #[test]
    fn explicit_container_values_are_kept_except_the_socket_name() {
        let mut host = spec("ovs-dpdk", IfType::VhostUser);
        let mut container = spec("vpp", IfType::VhostUser);
        container.vhost = Some(VhostConf {
            mode: Some(VhostMode::Server),
            group: Some("qemu".into()),
            socketfile: Some("other".into()),
        });
        apply(&mut host, &mut container);
        assert_eq!(container.engine.as_deref(), Some("vpp"));
        let v = container.vhost.unwrap();
        assert_eq!((v.mode, v.group.as_deref(), v.socketfile), (Some(VhostMode::Server), Some("qemu"), None));
    }

    #[test]
    fn nothing_is_invented_without_an_iftype() {
        let mut host = InterfaceSpec::default();
        let mut container = InterfaceSpec::default();
        apply(&mut host, &mut container);
        assert_eq!((host, container), (InterfaceSpec::default(), InterfaceSpec::default()));
    }
}
