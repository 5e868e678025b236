//! Device-info files (Network Plumbing WG spec 1.1.0) through the real binaries: the document
//! and its mode for vhost-user client and server (testkit) and memif (VPP simulator), a file a
//! device plugin wrote as the input that decides the socket's place, CHECK, removal only of our
//! own file, and the KubeVirt contract against a real OVS: the fields KubeVirt's network-info
//! reads (deviceInfo vhost-user path/mode, mac, mtu) agree with the port OVS really has.
#![cfg(feature = "testkit")]

mod support;

use support::sandbox;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::{recording_conf, Node, PLUGIN_BIN};
use userspace_cni_testkit as testkit;

const CID: &str = "d1ce0000000000000000000000000001";
const CID12: &str = "d1ce00000000";

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

fn with_devinfo(mut c: Value, file: &Path) -> Value {
    c["runtimeConfig"] = json!({"CNIDeviceInfoFile": file.display().to_string()});
    c
}

#[test]
fn vhost_user_client_and_server_documents_have_the_spec_shape_and_mode_0444() {
    // (host side, what the workload must be)
    for (host, workload) in [("server", "client"), ("client", "server")] {
        let node = Node::new();
        let file = node.path(&format!("devinfo/cni/ns-pod-{host}-net1-device.json"));
        let mut c = with_devinfo(recording_conf("1.1.0", "di-net"), &file);
        c["host"]["vhost"]["mode"] = json!(host);
        c["container"]["vhost"]["mode"] = json!(workload);
        let res = node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
        let doc = read_json(&file);
        let sock = sandbox(&res)["socketPath"].clone();
        assert_eq!(
            doc,
            json!({"type": "vhost-user", "version": "1.1.0", "vhost-user": {"mode": workload, "path": sock}}),
            "host {host}: the document states the workload's side and the result's socketPath"
        );
        assert_eq!(mode_of(&file), 0o444, "host {host}: read-only");
        assert_eq!(mode_of(file.parent().expect("dir")), 0o700, "host {host}: the dir we made is private");
        let leftovers: Vec<_> = std::fs::read_dir(file.parent().expect("dir")).expect("dir").flatten().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
        node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
        assert!(!file.exists(), "host {host}: our file goes with DEL");
    }
}

#[test]
fn memif_document_has_role_mode_and_path() {
    let dir = tempfile::Builder::new().prefix("uscni-vppsim-").tempdir().expect("sim dir");
    let sim = vppsim::Sim::start(dir.path());
    let mut node = Node::new();
    node.bin = PLUGIN_BIN;
    node.overrides.push(("USERSPACE_CNI_VPP_API_SOCKET".into(), sim.socket().display().to_string()));
    let file = node.path("devinfo/memif.json");
    let c = with_devinfo(
        json!({
            "cniVersion": "1.1.0", "name": "di-memif", "type": "userspace",
            "host": {"engine": "vpp", "iftype": "memif", "netType": "bridge",
                     "memif": {"role": "master", "mode": "ip"}, "bridge": {"bridgeId": 7}},
            "container": {"engine": "vpp", "iftype": "memif", "netType": "interface"}
        }),
        &file,
    );
    let res = node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    let doc = read_json(&file);
    assert_eq!(
        doc,
        json!({"type": "memif", "version": "1.1.0",
               "memif": {"role": "slave", "mode": "ip", "path": sandbox(&res)["socketPath"]}}),
        "VPP is the master: the workload is the slave, same mode"
    );
    assert_eq!(mode_of(&file), 0o444);
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
    assert!(!file.exists());
}

/// A device plugin's file, as it writes it before the runtime calls the plugin.
fn plant_given(file: &Path, mode: &str, path: &str) {
    std::fs::create_dir_all(file.parent().expect("dir")).expect("devinfo dir");
    let doc = json!({"type": "vhost-user", "version": "1.1.0", "vhost-user": {"mode": mode, "path": path}});
    std::fs::write(file, doc.to_string()).expect("plant device-info");
}

fn given_node() -> Node {
    let mut node = Node::new();
    let dp = node.path("dp/{deviceID}").display().to_string();
    node.overrides.push(("USERSPACE_CNI_DEVICE_HOST_DIR".into(), dp));
    node
}

#[test]
fn a_file_a_device_plugin_wrote_decides_where_the_socket_goes() {
    let node = given_node();
    let file = node.path("devinfo/given.json");
    plant_given(&file, "server", "/var/run/vhost-dp/sock7");
    let before = std::fs::read(&file).expect("given");
    let mut c = with_devinfo(recording_conf("1.1.0", "di-given"), &file);
    c["runtimeConfig"]["deviceID"] = json!("dev7");
    // The host mode is left to the file: the workload serves, so the host is the client.
    c["host"]["vhost"] = json!({});
    c["container"]["vhost"] = json!({});
    let res = node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    assert_eq!(sandbox(&res)["socketPath"], "/var/run/vhost-dp/sock7", "the file's path is the result's: {res}");
    let dp = testkit::load(&node.state_dir());
    assert!(dp.ports.contains_key("sock7"), "the backend used the file's socket name: {dp:?}");
    assert!(node.path("dp/dev7").is_dir(), "the socket lives in the device's host dir");
    assert_eq!(std::fs::read(&file).expect("given"), before, "an input is never rewritten");
    let mut check = c.clone();
    check["prevResult"] = res.clone();
    node.cni("CHECK", CID, "net1", &check, &[]).expect_ok();
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
    assert_eq!(std::fs::read(&file).expect("given"), before, "nor removed: the device plugin owns it");
    assert!(testkit::load(&node.state_dir()).ports.is_empty());
}

#[test]
fn a_file_that_cannot_be_honoured_fails_at_validation_naming_both_paths() {
    let node = given_node();
    let file = node.path("devinfo/given.json");
    plant_given(&file, "server", "/var/run/vhost-dp/sock7");
    let base = || {
        let mut c = with_devinfo(recording_conf("1.1.0", "di-bad"), &file);
        c["runtimeConfig"]["deviceID"] = json!("dev7");
        c["host"]["vhost"] = json!({});
        c["container"]["vhost"] = json!({});
        c
    };
    // (what is wrong, config, code, what the message must name)
    type Case = (&'static str, Value, u64, Vec<String>);
    let cases: Vec<Case> = vec![
        (
            "another socket name",
            {
                let mut c = base();
                c["host"]["vhost"]["socketfile"] = json!("mysock");
                c
            },
            7,
            vec!["/var/run/vhost-dp/sock7".into(), "/var/run/vhost-dp/mysock".into()],
        ),
        (
            "the same mode on both ends",
            {
                let mut c = base();
                c["host"]["vhost"]["mode"] = json!("server");
                c
            },
            2,
            vec!["server".into(), "mode".into()],
        ),
        (
            "no deviceID",
            {
                let mut c = base();
                c["runtimeConfig"]["deviceID"] = Value::Null;
                c
            },
            7,
            vec!["deviceID".into(), "/var/run/vhost-dp/sock7".into()],
        ),
    ];
    for (what, c, code, needles) in cases {
        let before = node.snapshot();
        let msg = node.cni("ADD", CID, "net1", &c, &[]).expect_err(code);
        for n in needles {
            assert!(msg.contains(&n), "{what}: message must name {n:?}: {msg}");
        }
        assert_eq!(node.snapshot(), before, "{what}: nothing changed");
    }
    // A node without the setting cannot know where the device's dir is on the host.
    let bare = Node::new();
    let bare_file = bare.path("devinfo/given.json");
    plant_given(&bare_file, "server", "/var/run/vhost-dp/sock7");
    let mut c = base();
    c["runtimeConfig"]["CNIDeviceInfoFile"] = json!(bare_file.display().to_string());
    let before = bare.snapshot();
    let msg = bare.cni("ADD", CID, "net1", &c, &[]).expect_err(7);
    assert!(msg.contains("device_host_dir") && msg.contains(&bare_file.display().to_string()), "{msg}");
    assert_eq!(bare.snapshot(), before);
    // A device plugin's file of another type (SR-IOV's pci) on a vhost-user network.
    std::fs::write(&file, r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:00.1"}}"#).expect("pci");
    let msg = node.cni("ADD", CID, "net1", &base(), &[]).expect_err(2);
    assert!(msg.contains("\"pci\"") && msg.contains("vhost-user"), "{msg}");
    std::fs::write(&file, "not json").expect("junk");
    let msg = node.cni("ADD", CID, "net1", &base(), &[]).expect_err(7);
    assert!(msg.contains(&file.display().to_string()), "{msg}");
}

#[test]
fn check_verifies_the_file_and_del_removes_only_what_we_wrote() {
    let node = Node::new();
    let file = node.path("devinfo/check.json");
    let mut c = with_devinfo(recording_conf("1.1.0", "di-check"), &file);
    c["host"]["vhost"]["mode"] = json!("client");
    c["container"]["vhost"]["mode"] = json!("server");
    let res = node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    let mut check = c.clone();
    check["prevResult"] = res;
    node.cni("CHECK", CID, "net1", &check, &[]).expect_ok();
    // Something else rewrote it: CHECK says so, and DEL leaves that file alone.
    std::fs::remove_file(&file).expect("rm");
    plant_given(&file, "client", "/elsewhere/sock");
    let msg = node.cni("CHECK", CID, "net1", &check, &[]).expect_err(5);
    assert!(msg.contains(&file.display().to_string()) && msg.contains("/elsewhere/sock"), "{msg}");
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
    assert!(file.exists(), "not our document: kept");
    std::fs::remove_file(&file).expect("rm");
    node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    std::fs::remove_file(&file).expect("rm");
    let msg = node.cni("CHECK", CID, "net1", &check, &[]).expect_err(5);
    assert!(msg.contains("missing"), "{msg}");
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
}

/// The KubeVirt contract against a real OVS, with the NAD of config/kubernetes/examples/kubevirt/
/// (cniVersion 1.1.0, client mode, capabilities mac, deviceID and CNIDeviceInfoFile) as Multus
/// would call it, read the way KubeVirt builds network-info: deviceInfo.vhost-user.path and .mode
/// from the device-info file, mac and mtu from the CNI result. Each must agree with the port OVS
/// actually has.
#[test]
fn kubevirt_reads_what_ovs_really_has() {
    let lab = testlab::Lab::shared("devinfo").expect("start the private OVS-DPDK lab");
    let node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let file = node.path("devinfo/cni/kubevirt-vm-a-net1-device.json");
    let nad = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kubernetes/examples/kubevirt/nad.yaml");
    let doc: Value =
        yaml_serde::from_str(&std::fs::read_to_string(&nad).unwrap_or_else(|e| panic!("{}: {e}", nad.display())))
            .expect("NAD YAML");
    let mut c: Value = serde_json::from_str(doc["spec"]["config"].as_str().expect("spec.config")).expect("config JSON");
    for cap in ["mac", "deviceID", "CNIDeviceInfoFile"] {
        assert_eq!(c["capabilities"][cap], true, "the example NAD asks Multus for {cap}");
    }
    // Annotation mode has its own tests (k8s_*.rs); this one has no API server.
    if let Some(o) = c.as_object_mut() {
        o.remove("kubeconfig");
    }
    c["host"]["bridge"]["bridgeName"] = json!("br-kv-di");
    c["host"]["mtu"] = json!(9000);
    // What Multus adds for the VMI's interface (its macAddress, the device-info path).
    c["runtimeConfig"] = json!({"mac": "02:00:00:0a:0b:0c", "CNIDeviceInfoFile": file.display().to_string()});
    let res = node.cni("ADD", CID, "net1", &c, &[]).expect_ok();
    let info = read_json(&file);
    let sb = sandbox(&res);
    // What KubeVirt's network binding takes from network-info.
    let (path, mode) =
        (info["vhost-user"]["path"].as_str().expect("path"), info["vhost-user"]["mode"].as_str().expect("mode"));
    let (mac, mtu) = (sb["mac"].as_str().expect("mac in the result"), sb["mtu"].as_u64().expect("mtu in the result"));
    assert_eq!(path, sb["socketPath"], "device-info and result name one socket");
    assert_eq!(mac, "02:00:00:0a:0b:0c", "the requested MAC is reported");
    let port = format!("{CID12}-net1");
    let ty = lab.interface_column(&port, "type").expect("type");
    assert_eq!(ty, "dpdkvhostuserclient", "OVS connects as the client");
    assert_eq!(mode, "server", "so the VM (QEMU) must be the vhost-user server");
    let opts = lab.interface_column(&port, "options").expect("options");
    assert!(opts.contains(&format!("vhost-server-path=\"{path}\"")), "OVS connects to the path the VM is told: {opts}");
    let mtu_request = lab.interface_column(&port, "mtu_request").expect("mtu_request");
    assert_eq!(mtu_request.trim(), mtu.to_string(), "the MTU the VM is told is the one OVS was asked for");
    node.cni("DEL", CID, "net1", &c, &[]).expect_ok();
    assert!(!file.exists(), "device-info removed with the port");
    assert!(!lab.bridges().expect("bridges").iter().any(|b| b == "br-kv-di"));
}

fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The network config inside an example NAD.
fn nad_config(name: &str) -> Value {
    let doc: Value = yaml_serde::from_str(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = doc["spec"]["config"].as_str().unwrap_or_else(|| panic!("{name}: no spec.config"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: spec.config is not JSON: {e}"))
}

#[test]
fn the_examples_pass_the_plugins_validation() {
    let settings = userspace_cni_api::NodeSettings::default();
    let list: Value = serde_json::from_str(&example("no-kubernetes.conflist")).expect("conflist JSON");
    let mut configs = vec![("device-plugin-vhost.yaml".to_owned(), nad_config("device-plugin-vhost.yaml"))];
    for p in list["plugins"].as_array().expect("plugins") {
        let mut c = p.clone();
        c["cniVersion"] = list["cniVersion"].clone();
        c["name"] = list["name"].clone();
        configs.push(("no-kubernetes.conflist".into(), c));
    }
    for (file, c) in configs {
        let nc = userspace_cni::netconf::parse(c.to_string().as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        nc.validate(&settings).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let pod: Value = yaml_serde::from_str(&example("annotations-pod.yaml")).expect("pod YAML");
    let vol = pod["spec"]["volumes"].as_array().and_then(|v| v.iter().find(|v| v["name"] == "shared-dir")).cloned();
    let host = vol.and_then(|v| v["hostPath"]["path"].as_str().map(std::path::PathBuf::from)).expect("hostPath");
    assert!(
        settings.shared_roots.iter().any(|r| host.starts_with(r)),
        "{} must be under the default shared_roots",
        host.display()
    );
}

/// config/examples/device-plugin-vhost.yaml against a real OVS: the device plugin's file decides
/// where OVS connects and is left as it was; the port is named `<cid12>-<ifname>`.
#[test]
fn device_plugin_example_against_ovs() {
    let lab = testlab::Lab::shared("devinfo").expect("start the private OVS-DPDK lab");
    let mut node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    node.overrides.push(("USERSPACE_CNI_DEVICE_HOST_DIR".into(), node.path("dp/{deviceID}").display().to_string()));
    let file = node.path("devinfo/cni/ns-pod-net1-device.json");
    plant_given(&file, "server", "/var/run/vhost-dp/dev-a1.sock");
    let before = std::fs::read(&file).expect("given");
    let mut c = nad_config("device-plugin-vhost.yaml");
    c["host"]["bridge"]["bridgeName"] = json!("br-di-dp");
    c["runtimeConfig"] = json!({"deviceID": "dev-a1", "CNIDeviceInfoFile": file.display().to_string()});
    let cid = "e1a0000000000000000000000000000e";
    let res = node.cni("ADD", cid, "net1", &c, &[]).expect_ok();
    assert_eq!(sandbox(&res)["socketPath"], "/var/run/vhost-dp/dev-a1.sock");
    // The port is named by the attachment, not by the device plugin's socket name.
    let port = "e1a000000000-net1";
    assert_eq!(lab.interface_column(port, "type").expect("type"), "dpdkvhostuserclient", "the pod serves");
    let opts = lab.interface_column(port, "options").expect("options");
    let host = node.path("dp/dev-a1/dev-a1.sock");
    assert!(opts.contains(&host.display().to_string()), "OVS connects in the device's host dir: {opts}");
    node.cni("DEL", cid, "net1", &c, &[]).expect_ok();
    assert_eq!(std::fs::read(&file).expect("given"), before, "the device plugin's file is untouched");
    assert!(!lab.bridges().expect("bridges").iter().any(|b| b == "br-di-dp"));
}

/// An attachment that is DELeted when the test ends, also when it fails half-way, so a failed
/// run leaves no port on the shared lab's bridge for the next test to trip over.
struct Attached<'a> {
    node: &'a Node,
    cid: &'static str,
    conf: Value,
    result: Value,
    deleted: bool,
}

impl<'a> Attached<'a> {
    fn add(node: &'a Node, cid: &'static str, conf: Value) -> Attached<'a> {
        let result = node.cni("ADD", cid, "net1", &conf, &[]).expect_ok();
        Attached { node, cid, conf, result, deleted: false }
    }

    fn del(mut self) {
        self.deleted = true;
        self.node.cni("DEL", self.cid, "net1", &self.conf, &[]).expect_ok();
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = self.node.cni("DEL", self.cid, "net1", &self.conf, &[]);
        }
    }
}

/// The OVS config of a device plugin's network (config/examples/device-plugin-vhost.yaml) on
/// `bridge`, as Multus calls it for `deviceID` with the device-info file at `file`.
fn device_plugin_conf(bridge: &str, file: &Path, device_id: &str) -> Value {
    let mut c = nad_config("device-plugin-vhost.yaml");
    c["host"]["bridge"]["bridgeName"] = json!(bridge);
    c["runtimeConfig"] = json!({"deviceID": device_id, "CNIDeviceInfoFile": file.display().to_string()});
    c
}

/// A node whose device plugin keeps device `<id>`'s socket dir at `<root>/vdp/vhost-phy0_<id>`,
/// as virtio-device-plugin's `<baseDir>/<resourceName>_<deviceID>`.
fn virtio_dp_node(lab: &testlab::Lab) -> Node {
    let mut node = Node::for_ovs(&lab.db_socket(), lab.sock_dir());
    let dir = node.path("vdp/vhost-phy0_{deviceID}").display().to_string();
    node.overrides.push(("USERSPACE_CNI_DEVICE_HOST_DIR".into(), dir));
    node
}

fn send_32(from: testlab::VhostPort, to: testlab::VhostPort) -> (u64, u64) {
    testlab::Testpmd::send_packets(&from, &to, 32, std::time::Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("testpmd from {from:?} to {to:?}: {e}"))
}

/// virtio-device-plugin names every device's socket `vhost.sock`, each in the device's own dir.
/// The OVS port names must not come from that name (OVS port names are node-wide): each port is
/// `<cid12>-<ifname>`, the socket keeps the device plugin's name in the device's dir. Pod A's
/// file makes OVS the client (testpmd serves the socket), pod B's makes OVS the server (the
/// socket OVS creates under the port's name is delivered as `vhost.sock`); packets cross both.
#[test]
fn two_pods_whose_device_plugin_names_every_socket_vhost_sock_both_attach_and_forward_packets() {
    use testlab::VhostPort;
    let lab = testlab::Lab::shared("devinfo").expect("start the private OVS-DPDK lab");
    let node = virtio_dp_node(&lab);
    let (cid_a, cid_b) = ("a5000000000000000000000000000001", "b5000000000000000000000000000002");
    let (port_a, port_b) = ("a50000000000-net1", "b50000000000-net1");
    let (file_a, file_b) = (node.path("devinfo/cni/pod-a-net1.json"), node.path("devinfo/cni/pod-b-net1.json"));
    // As the spec's text reads mode (the workload's side): A's workload serves, B's connects.
    plant_given(&file_a, "server", "/var/run/virtio-dp/vhost-phy0_0/vhost.sock");
    plant_given(&file_b, "client", "/var/run/virtio-dp/vhost-phy0_1/vhost.sock");
    let given = (std::fs::read(&file_a).expect("a"), std::fs::read(&file_b).expect("b"));
    let a = Attached::add(&node, cid_a, device_plugin_conf("br-di-vs", &file_a, "0"));
    let b = Attached::add(&node, cid_b, device_plugin_conf("br-di-vs", &file_b, "1"));
    assert_eq!(sandbox(&a.result)["socketPath"], "/var/run/virtio-dp/vhost-phy0_0/vhost.sock", "{}", a.result);
    assert_eq!(sandbox(&b.result)["socketPath"], "/var/run/virtio-dp/vhost-phy0_1/vhost.sock", "{}", b.result);
    let ports = lab.ports("br-di-vs").expect("ports");
    assert_eq!(ports, vec![port_a.to_owned(), port_b.to_owned()], "one port per attachment, named by cid and ifname");
    let (host_a, host_b) = (node.path("vdp/vhost-phy0_0/vhost.sock"), node.path("vdp/vhost-phy0_1/vhost.sock"));
    assert_eq!(lab.interface_column(port_a, "type").expect("type"), "dpdkvhostuserclient");
    let opts = lab.interface_column(port_a, "options").expect("options");
    assert!(opts.contains(&format!("vhost-server-path=\"{}\"", host_a.display())), "A: OVS connects to {opts}");
    assert_eq!(lab.interface_column(port_b, "type").expect("type"), "dpdkvhostuser");
    use std::os::unix::fs::FileTypeExt;
    let ft = std::fs::symlink_metadata(&host_b).unwrap_or_else(|e| panic!("{}: {e}", host_b.display())).file_type();
    assert!(ft.is_socket(), "B: OVS's socket delivered as the device plugin's {}", host_b.display());
    assert!(!lab.sock_dir().join(port_b).exists(), "B: moved out of OVS's dir");
    let (sent, received) = send_32(VhostPort::Server(host_b.clone()), VhostPort::Client(host_a.clone()));
    assert_eq!((sent, received), (32, 32), "32 packets from B's vhost.sock to A's vhost.sock, all received");
    a.del();
    b.del();
    assert!(!lab.bridges().expect("bridges").iter().any(|br| br == "br-di-vs"), "our bridge went with the last port");
    assert!(!host_b.exists() && !lab.sock_dir().join(port_b).exists(), "B's socket removed in both places");
    assert_eq!((std::fs::read(&file_a).expect("a"), std::fs::read(&file_b).expect("b")), given, "inputs untouched");
    let records: Vec<_> =
        std::fs::read_dir(node.state_dir()).expect("state").flatten().map(|e| e.file_name()).collect();
    assert!(
        !records.iter().any(|n| n.to_string_lossy().ends_with(".json")),
        "no attachment record is left: {records:?}"
    );
}

/// testpmd as a reader of a device-info file that states `mode` from the side `side` names:
/// where OVS serves, it connects; where OVS connects, it serves (`server=1`).
fn reader_port(mode: &str, side: &str, path: std::path::PathBuf) -> testlab::VhostPort {
    let workload_is_client = (mode == "client") == (side == "workload");
    match workload_is_client {
        true => testlab::VhostPort::Server(path),
        false => testlab::VhostPort::Client(path),
    }
}

/// `deviceInfoVhostMode` chooses whose side `vhost-user.mode` states, for the device plugin's
/// file we read and the file we write. For each convention: pod A's device plugin file says
/// "OVS connects" in that convention (`server` from the workload's side, `client` from the host
/// port's, as virtio-device-plugin writes it), so A's port is a client-mode port and A's
/// testpmd serves; pod B gets a server-mode port and a file we write in that convention, and
/// B's testpmd reads it in that convention to know it must connect. Packets prove both ports
/// connect; CHECK and DEL recognise the file we wrote.
#[test]
fn both_device_info_mode_conventions_connect_with_testpmd_on_the_pod_side() {
    let lab = testlab::Lab::shared("devinfo").expect("start the private OVS-DPDK lab");
    // (deviceInfoVhostMode or absent, the device plugin's word for "OVS connects", what we write
    // for a server-mode port)
    for (key, dp_mode, written) in [(None, "server", "client"), (Some("host"), "client", "server")] {
        let side = key.unwrap_or("workload");
        let node = virtio_dp_node(&lab);
        let bridge = format!("br-di-{side}");
        let file_a = node.path("devinfo/cni/pod-a-net1.json");
        plant_given(&file_a, dp_mode, "/var/run/virtio-dp/vhost-phy0_0/vhost.sock");
        let mut conf_a = device_plugin_conf(&bridge, &file_a, "0");
        let file_b = node.path("devinfo/cni/pod-b-net1.json");
        let mut conf_b = device_plugin_conf(&bridge, &file_b, "1");
        conf_b["host"]["vhost"] = json!({"mode": "server"});
        if let Some(k) = key {
            conf_a["deviceInfoVhostMode"] = json!(k);
            conf_b["deviceInfoVhostMode"] = json!(k);
        }
        let a = Attached::add(&node, "c5000000000000000000000000000001", conf_a);
        let b = Attached::add(&node, "d5000000000000000000000000000002", conf_b);
        let ty = lab.interface_column("c50000000000-net1", "type").expect("type");
        assert_eq!(ty, "dpdkvhostuserclient", "{side}: the device plugin's {dp_mode:?} means OVS connects");
        let doc = read_json(&file_b);
        assert_eq!(doc["vhost-user"]["mode"], written, "{side}: the file we write for a dpdkvhostuser port: {doc}");
        let path_b = doc["vhost-user"]["path"].as_str().expect("path").to_owned();
        assert_eq!(path_b, sandbox(&b.result)["socketPath"], "{side}: the file names the result's socket");
        let mut check = b.conf.clone();
        check["prevResult"] = b.result.clone();
        node.cni("CHECK", b.cid, "net1", &check, &[]).expect_ok();
        let host_a = node.path("vdp/vhost-phy0_0/vhost.sock");
        let to = reader_port(dp_mode, side, host_a);
        let from = reader_port(written, side, path_b.into());
        assert!(matches!(to, testlab::VhostPort::Client(_)), "{side}: A's testpmd serves: {to:?}");
        assert!(matches!(from, testlab::VhostPort::Server(_)), "{side}: B's testpmd connects: {from:?}");
        let (sent, received) = send_32(from, to);
        assert_eq!((sent, received), (32, 32), "{side}: 32 packets from B to A, all received");
        a.del();
        b.del();
        assert!(!file_b.exists(), "{side}: DEL removed the file it wrote in this convention");
        assert!(file_a.exists(), "{side}: the device plugin's file stays");
        assert!(!lab.bridges().expect("bridges").contains(&bridge), "{side}: bridge gone");
    }
}
