//! Publication of the attachment to the runtime: the CNI result built from the attachment and
//! the step outputs (socket descriptor, host interfaces, IPAM). Consumes only those.

use crate::cni::result::{CniResult, Interface};
use backend_api::{Attachment, Outputs};

/// The 1.1.0-form result: host-side interfaces first, then the sandbox entry
/// `{name: CNI_IFNAME, sandbox: CNI_NETNS, mac?, mtu?, socketPath}` (always present: Multus needs
/// it to write network-status); IPAM addresses point at the sandbox entry.
pub fn cni_result(att: &Attachment, outputs: &Outputs) -> CniResult {
    let mut res = CniResult::default();
    for h in &outputs.host_interfaces {
        res.interfaces.push(Interface { name: h.name.clone(), mac: h.mac.clone(), ..Default::default() });
    }
    let socket = outputs.socket.as_ref();
    res.interfaces.push(Interface {
        name: att.id.ifname.clone(),
        mac: att.mac.clone(),
        mtu: socket.and_then(|s| s.mtu),
        sandbox: att.netns.clone(),
        socket_path: socket.map(|s| s.pod_path.display().to_string()),
        pci_id: None,
    });
    res
}
