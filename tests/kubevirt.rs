//! The KubeVirt short socket dir against a real OVS: a pod whose `shared-dir` emptyDir is too deep
//! for `sun_path` gets `<short_socket_dir>/<pod uid>` bind-mounted onto it; both of its interfaces
//! share that mount, packets flow through both, and DEL of one leaves the other's mount working.
//! Bind mounts happen only in a private mount namespace: the outer test re-runs the inner one
//! under `unshare --mount --propagation private`.

mod support;

use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use support::{Netns, Node};
use testlab::{Lab, Testpmd, VhostPort};

#[test]
fn kubevirt_pod_shares_one_short_dir_mount_between_interfaces() {
    support::run_in_private_mount_ns("kubevirt_inner");
}

#[test]
#[ignore = "runs only inside the private mount namespace made by the test above"]
fn kubevirt_inner() {
    let lab = Lab::start("kubevirt").expect("lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let uid = "7d3c1f2a-9b8e-4c5d-a6f7-0123456789ab";
    let long = node.path("kubelet").join("pods").join(uid).join("volumes/kubernetes.io~empty-dir/shared-dir");
    std::fs::create_dir_all(&long).expect("the pod's emptyDir, as kubelet makes it");
    let short = node.path("short").join(uid);
    let pod = Netns::new("kv");
    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vm-a;K8S_POD_UID={uid}");
    let c = json!({
        "cniVersion": "1.1.0", "name": "kv-net", "type": "userspace",
        "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "vhost": {"mode": "client"},
                 "bridge": {"bridgeName": "br-kv"}}
    });
    let env = [("CNI_NETNS", pod.path()), ("CNI_ARGS", args)];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cid = "0c0ffee0000000000000000000000001";
    let mut socks = Vec::new();
    for ifname in ["net1", "net2"] {
        let res = node.cni("ADD", cid, ifname, &c, &env).expect_ok();
        let sb = res["interfaces"].as_array().and_then(|a| a.iter().find(|i| i["sandbox"].is_string()).cloned());
        let sock = PathBuf::from(sb.and_then(|s| s["socketPath"].as_str().map(str::to_owned)).expect("socketPath"));
        assert!(sock.starts_with(&short), "{} is addressed through the short dir {}", sock.display(), short.display());
        assert!(long.join(sock.file_name().expect("name")).as_os_str().len() > 107, "the long path really is too long");
        socks.push(sock);
    }
    assert!(userspace_cni::steps::short_dir::is_mount_point(&short), "short dir mounted");
    // The workloads serve both sockets (OVS is the vhost client): packets cross the bridge.
    let (sent, received) = Testpmd::send_packets(
        &VhostPort::Client(socks[0].clone()),
        &VhostPort::Client(socks[1].clone()),
        32,
        Duration::from_secs(40),
    )
    .expect("testpmd");
    assert_eq!((sent, received), (32, 32));

    node.cni("DEL", cid, "net1", &c, &env).expect_ok();
    assert!(userspace_cni::steps::short_dir::is_mount_point(&short), "net2 still uses the mount");
    std::fs::write(long.join("probe"), b"x").expect("write through the long path");
    assert!(short.join("probe").exists(), "the short dir still aliases the pod's volume");
    std::fs::remove_file(long.join("probe")).expect("remove probe");

    node.cni("DEL", cid, "net2", &c, &env).expect_ok();
    assert!(!userspace_cni::steps::short_dir::is_mount_point(&short), "unmounted with the last interface");
    assert!(!short.exists(), "short dir removed");
    assert!(long.is_dir(), "kubelet's emptyDir is never removed by us");
    let left: Vec<_> = std::fs::read_dir(&long).expect("read").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "no socket left in the pod's volume: {left:?}");
    lab.stop().expect("stop lab");
}
