//! Publication of the attachment to the runtime: the CNI result built from the attachment and
//! the step outputs (socket descriptor, host interfaces, IPAM). Consumes only those.

use crate::cni::result::{CniResult, Interface, IpConfig};
use userspace_cni_api::{Attachment, CniError, Outputs};

/// The 1.1.0-form result: host-side interfaces first, then the sandbox entry
/// `{name: CNI_IFNAME, sandbox: CNI_NETNS, mac?, mtu?, socketPath}` (always present: Multus needs
/// it to write network-status); IPAM addresses point at the sandbox entry, with their gateways,
/// and the IPAM routes and DNS are copied.
pub fn cni_result(att: &Attachment, outputs: &Outputs) -> Result<CniResult, CniError> {
    let mut res = CniResult::default();
    for h in &outputs.host_interfaces {
        res.interfaces.push(Interface { name: h.name.clone(), mac: h.mac.clone(), ..Default::default() });
    }
    let sandbox = res.interfaces.len();
    let socket = outputs.socket.as_ref();
    res.interfaces.push(Interface {
        name: att.id.ifname.clone(),
        mac: att.mac.clone(),
        mtu: socket.and_then(|s| s.mtu),
        sandbox: att.netns.clone(),
        socket_path: socket.map(|s| s.pod_path.display().to_string()),
        pci_id: None,
    });
    if let Some(ipam) = &outputs.ipam {
        // Stored by the IPAM step in 1.1.0 form; re-read through the same validation.
        let ipam = CniResult::from_json(ipam).map_err(|e| CniError::from(e).context("the IPAM result"))?;
        // The delegate's own interface indices (if any) refer to its result, not ours.
        res.ips.extend(ipam.ips.into_iter().map(|ip| IpConfig { interface: Some(sandbox), ..ip }));
        res.routes.extend(ipam.routes);
        res.dns = ipam.dns;
    }
    Ok(res)
}
