//! Golden bytes from an independent oracle: for every message the backend sends or parses,
//! vpp_papi (VPP's own Python client, PyPI `vpp-papi`, loading the same .api.json files) packs
//! the same field values, and the bytes must equal ours; our decoder must read vpp_papi's bytes
//! back to the same value. Needs python3 with vpp_papi (scripts/setup.sh installs it).

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use userspace_cni_vpp::api::messages::*;
use userspace_cni_vpp::api::Message;

const ID: u16 = 1000;

type Check = Box<dyn Fn(&[u8]) -> Result<(), String>>;

struct Case {
    name: &'static str,
    papi: Value,
    ours: Vec<u8>,
    /// Decode vpp_papi's bytes with our decoder: equal to the value we encoded?
    roundtrip: Check,
}

fn case<M: Message + PartialEq + std::fmt::Debug + Clone + 'static>(m: M, mut papi: Value) -> Case {
    papi["_vl_msg_id"] = json!(ID);
    let ours = m.encode(ID).unwrap_or_else(|e| panic!("{}: {e}", M::NAME));
    let expected = m.clone();
    Case {
        name: M::NAME,
        papi,
        ours,
        roundtrip: Box::new(move |b| match M::decode(b) {
            Ok(d) if d == expected => Ok(()),
            Ok(d) => Err(format!("decoded {d:?}, expected {expected:?}")),
            Err(e) => Err(e.to_string()),
        }),
    }
}

fn ip4(a: [u8; 4], len: u8) -> Prefix {
    let mut un = [0u8; 16];
    un[..4].copy_from_slice(&a);
    Prefix { address: Address { af: ADDRESS_IP4, un }, len }
}

fn cases() -> Vec<Case> {
    let mac = [0x02, 0xfe, 0x12, 0x34, 0x56, 0x78];
    let v6: std::net::Ipv6Addr = "2001:db8::7".parse().expect("v6");
    vec![
        case(
            SockclntCreate { context: 124, name: "userspace-cni".into() },
            json!({"context": 124, "name": "userspace-cni"}),
        ),
        case(
            SockclntCreateReply {
                client_index: 0,
                context: 124,
                response: 0,
                index: 0x8000_0003,
                message_table: vec![
                    MessageTableEntry { index: 15, name: "sockclnt_create_455fb9c4".into() },
                    MessageTableEntry { index: 901, name: "memif_create_v2_8c7de5f7".into() },
                ],
            },
            json!({"client_index": 0, "context": 124, "response": 0, "index": 0x8000_0003u32, "count": 2,
                   "message_table": [{"index": 15, "name": "sockclnt_create_455fb9c4"},
                                     {"index": 901, "name": "memif_create_v2_8c7de5f7"}]}),
        ),
        case(
            SockclntDelete { client_index: 0x8000_0003, context: 9, index: 0x8000_0003 },
            json!({"client_index": 0x8000_0003u32, "context": 9, "index": 0x8000_0003u32}),
        ),
        case(SockclntDeleteReply { context: 9, response: 1 }, json!({"context": 9, "response": 1})),
        case(
            ControlPing { client_index: 0x8000_0000, context: 7 },
            json!({"client_index": 0x8000_0000u32, "context": 7}),
        ),
        case(
            ControlPingReply { context: 7, retval: 0, client_index: 0x8000_0000, vpe_pid: 4242 },
            json!({"context": 7, "retval": 0, "client_index": 0x8000_0000u32, "vpe_pid": 4242}),
        ),
        case(ShowVersion { client_index: 1, context: 2 }, json!({"client_index": 1, "context": 2})),
        case(
            ShowVersionReply {
                context: 2,
                retval: 0,
                program: "vpe".into(),
                version: "26.06-release".into(),
                build_date: "today".into(),
                build_directory: "/w".into(),
            },
            json!({"context": 2, "retval": 0, "program": "vpe", "version": "26.06-release", "build_date": "today", "build_directory": "/w"}),
        ),
        case(
            MemifSocketFilenameAddDelV2 {
                client_index: 1,
                context: 3,
                is_add: true,
                socket_id: u32::MAX,
                socket_filename: "/var/lib/cni/usrspcni/0123456789ab/memif-0123456789ab-net1.sock".into(),
            },
            json!({"client_index": 1, "context": 3, "is_add": true, "socket_id": u32::MAX,
                   "socket_filename": "/var/lib/cni/usrspcni/0123456789ab/memif-0123456789ab-net1.sock"}),
        ),
        case(
            MemifSocketFilenameAddDelV2 {
                client_index: 1,
                context: 4,
                is_add: false,
                socket_id: 77,
                socket_filename: String::new(),
            },
            json!({"client_index": 1, "context": 4, "is_add": false, "socket_id": 77, "socket_filename": ""}),
        ),
        case(
            MemifSocketFilenameAddDelV2Reply { context: 3, retval: 0, socket_id: 0x1234_5678 },
            json!({"context": 3, "retval": 0, "socket_id": 0x1234_5678}),
        ),
        case(MemifSocketFilenameDump { client_index: 1, context: 5 }, json!({"client_index": 1, "context": 5})),
        case(
            MemifSocketFilenameDetails {
                context: 5,
                socket_id: 9,
                socket_filename: "abstract:memif-x.sock,netns_name=/proc/1/ns/net".into(),
            },
            json!({"context": 5, "socket_id": 9, "socket_filename": "abstract:memif-x.sock,netns_name=/proc/1/ns/net"}),
        ),
        case(
            MemifCreateV2 {
                client_index: 1,
                context: 6,
                role: MEMIF_ROLE_API_SLAVE,
                mode: MEMIF_MODE_API_IP,
                rx_queues: 2,
                tx_queues: 3,
                id: 0,
                socket_id: 9,
                ring_size: 2048,
                buffer_size: 4096,
                no_zero_copy: true,
                use_dma: false,
                hw_addr: mac,
                secret: "s3cret".into(),
            },
            json!({"client_index": 1, "context": 6, "role": 1, "mode": 1, "rx_queues": 2, "tx_queues": 3, "id": 0,
                   "socket_id": 9, "ring_size": 2048, "buffer_size": 4096, "no_zero_copy": true, "use_dma": false,
                   "hw_addr": "02:fe:12:34:56:78", "secret": "s3cret"}),
        ),
        case(
            MemifCreateV2Reply { context: 6, retval: -73, sw_if_index: u32::MAX },
            json!({"context": 6, "retval": -73, "sw_if_index": u32::MAX}),
        ),
        case(
            MemifDelete { client_index: 1, context: 8, sw_if_index: 4 },
            json!({"client_index": 1, "context": 8, "sw_if_index": 4}),
        ),
        case(MemifDeleteReply { context: 8, retval: -2 }, json!({"context": 8, "retval": -2})),
        case(MemifDump { client_index: 1, context: 10 }, json!({"client_index": 1, "context": 10})),
        case(
            MemifDetails {
                context: 10,
                sw_if_index: 4,
                hw_addr: mac,
                id: 0,
                role: 0,
                mode: 0,
                zero_copy: false,
                socket_id: 9,
                ring_size: 1024,
                buffer_size: 2048,
                flags: IF_STATUS_API_FLAG_ADMIN_UP,
                if_name: "memif9/0".into(),
            },
            json!({"context": 10, "sw_if_index": 4, "hw_addr": "02:fe:12:34:56:78", "id": 0, "role": 0, "mode": 0,
                   "zero_copy": false, "socket_id": 9, "ring_size": 1024, "buffer_size": 2048, "flags": 1, "if_name": "memif9/0"}),
        ),
        case(
            SwInterfaceSetFlags { client_index: 1, context: 11, sw_if_index: 4, flags: IF_STATUS_API_FLAG_ADMIN_UP },
            json!({"client_index": 1, "context": 11, "sw_if_index": 4, "flags": 1}),
        ),
        case(SwInterfaceSetFlagsReply { context: 11, retval: 0 }, json!({"context": 11, "retval": 0})),
        case(
            SwInterfaceTagAddDel {
                client_index: 1,
                context: 12,
                is_add: true,
                sw_if_index: 4,
                tag: "uscni:0123456789ab:0123456789abcdef01234567:net1".into(),
            },
            json!({"client_index": 1, "context": 12, "is_add": true, "sw_if_index": 4,
                   "tag": "uscni:0123456789ab:0123456789abcdef01234567:net1"}),
        ),
        case(SwInterfaceTagAddDelReply { context: 12, retval: 0 }, json!({"context": 12, "retval": 0})),
        case(
            SwInterfaceDump {
                client_index: 1,
                context: 13,
                sw_if_index: u32::MAX,
                name_filter_valid: true,
                name_filter: "memif".into(),
            },
            json!({"client_index": 1, "context": 13, "sw_if_index": u32::MAX, "name_filter_valid": true, "name_filter": "memif"}),
        ),
        case(
            SwInterfaceDetails {
                context: 13,
                sw_if_index: 4,
                sup_sw_if_index: 4,
                l2_address: mac,
                flags: 3,
                r#type: 0,
                link_duplex: 2,
                link_speed: 10_000_000,
                link_mtu: 9000,
                mtu: [9000, 1500, 0, 0],
                sub_id: 0,
                sub_number_of_tags: 0,
                sub_outer_vlan_id: 0,
                sub_inner_vlan_id: 0,
                sub_if_flags: 0,
                vtr_op: 0,
                vtr_push_dot1q: 0,
                vtr_tag1: 0,
                vtr_tag2: 0,
                outer_tag: 0,
                b_dmac: [0; 6],
                b_smac: [0; 6],
                b_vlanid: 0,
                i_sid: 0,
                interface_name: "memif9/0".into(),
                interface_dev_type: "memif".into(),
                tag: "uscni:x".into(),
            },
            json!({"context": 13, "sw_if_index": 4, "sup_sw_if_index": 4, "l2_address": "02:fe:12:34:56:78", "flags": 3,
                   "type": 0, "link_duplex": 2, "link_speed": 10_000_000, "link_mtu": 9000, "mtu": [9000, 1500, 0, 0],
                   "sub_id": 0, "sub_number_of_tags": 0, "sub_outer_vlan_id": 0, "sub_inner_vlan_id": 0, "sub_if_flags": 0,
                   "vtr_op": 0, "vtr_push_dot1q": 0, "vtr_tag1": 0, "vtr_tag2": 0, "outer_tag": 0,
                   "b_dmac": "00:00:00:00:00:00", "b_smac": "00:00:00:00:00:00", "b_vlanid": 0, "i_sid": 0,
                   "interface_name": "memif9/0", "interface_dev_type": "memif", "tag": "uscni:x"}),
        ),
        case(
            SwInterfaceAddDelAddress {
                client_index: 1,
                context: 14,
                sw_if_index: 4,
                is_add: true,
                del_all: false,
                prefix: ip4([10, 0, 0, 1], 24),
            },
            json!({"client_index": 1, "context": 14, "sw_if_index": 4, "is_add": true, "del_all": false, "prefix": "10.0.0.1/24"}),
        ),
        case(SwInterfaceAddDelAddressReply { context: 14, retval: -60 }, json!({"context": 14, "retval": -60})),
        case(
            IpAddressDump { client_index: 1, context: 15, sw_if_index: 4, is_ipv6: true },
            json!({"client_index": 1, "context": 15, "sw_if_index": 4, "is_ipv6": true}),
        ),
        case(
            IpAddressDetails {
                context: 15,
                sw_if_index: 4,
                prefix: Prefix { address: Address { af: ADDRESS_IP6, un: v6.octets() }, len: 64 },
            },
            json!({"context": 15, "sw_if_index": 4, "prefix": "2001:db8::7/64"}),
        ),
        case(
            BridgeDomainAddDelV2 {
                client_index: 1,
                context: 16,
                bd_id: 4,
                flood: true,
                uu_flood: true,
                forward: true,
                learn: true,
                arp_term: false,
                arp_ufwd: false,
                mac_age: 0,
                bd_tag: "uscni:0123456789ab".into(),
                is_add: true,
            },
            json!({"client_index": 1, "context": 16, "bd_id": 4, "flood": true, "uu_flood": true, "forward": true, "learn": true,
                   "arp_term": false, "arp_ufwd": false, "mac_age": 0, "bd_tag": "uscni:0123456789ab", "is_add": true}),
        ),
        case(
            BridgeDomainAddDelV2Reply { context: 16, retval: -119, bd_id: 4 },
            json!({"context": 16, "retval": -119, "bd_id": 4}),
        ),
        case(
            BridgeDomainDump { client_index: 1, context: 17, bd_id: 4, sw_if_index: u32::MAX },
            json!({"client_index": 1, "context": 17, "bd_id": 4, "sw_if_index": u32::MAX}),
        ),
        case(
            BridgeDomainDetails {
                context: 17,
                bd_id: 4,
                flood: true,
                uu_flood: true,
                forward: true,
                learn: true,
                arp_term: false,
                arp_ufwd: false,
                mac_age: 0,
                bd_tag: "uscni:0123456789ab".into(),
                bvi_sw_if_index: u32::MAX,
                uu_fwd_sw_if_index: u32::MAX,
                sw_if_details: vec![
                    BridgeDomainSwIf { context: 0, sw_if_index: 4, shg: 0 },
                    BridgeDomainSwIf { context: 0, sw_if_index: 9, shg: 1 },
                ],
            },
            json!({"context": 17, "bd_id": 4, "flood": true, "uu_flood": true, "forward": true, "learn": true, "arp_term": false,
                   "arp_ufwd": false, "mac_age": 0, "bd_tag": "uscni:0123456789ab", "bvi_sw_if_index": u32::MAX,
                   "uu_fwd_sw_if_index": u32::MAX, "n_sw_ifs": 2,
                   "sw_if_details": [{"context": 0, "sw_if_index": 4, "shg": 0}, {"context": 0, "sw_if_index": 9, "shg": 1}]}),
        ),
        case(
            SwInterfaceSetL2Bridge {
                client_index: 1,
                context: 18,
                rx_sw_if_index: 4,
                bd_id: 4,
                port_type: L2_API_PORT_TYPE_NORMAL,
                shg: 0,
                enable: true,
            },
            json!({"client_index": 1, "context": 18, "rx_sw_if_index": 4, "bd_id": 4, "port_type": 0, "shg": 0, "enable": true}),
        ),
        case(SwInterfaceSetL2BridgeReply { context: 18, retval: 0 }, json!({"context": 18, "retval": 0})),
        case(
            CreateVhostUserIfV2 {
                client_index: 1,
                context: 19,
                is_server: true,
                sock_filename: "/var/lib/cni/usrspcni/0123456789ab/0123456789ab-net1".into(),
                renumber: false,
                disable_mrg_rxbuf: false,
                disable_indirect_desc: false,
                enable_gso: false,
                enable_packed: false,
                enable_event_idx: false,
                custom_dev_instance: 0,
                use_custom_mac: true,
                mac_address: mac,
                tag: "uscni:t".into(),
            },
            json!({"client_index": 1, "context": 19, "is_server": true, "sock_filename": "/var/lib/cni/usrspcni/0123456789ab/0123456789ab-net1",
                   "renumber": false, "disable_mrg_rxbuf": false, "disable_indirect_desc": false, "enable_gso": false,
                   "enable_packed": false, "enable_event_idx": false, "custom_dev_instance": 0, "use_custom_mac": true,
                   "mac_address": "02:fe:12:34:56:78", "tag": "uscni:t"}),
        ),
        case(
            CreateVhostUserIfV2Reply { context: 19, retval: 0, sw_if_index: 5 },
            json!({"context": 19, "retval": 0, "sw_if_index": 5}),
        ),
        case(
            DeleteVhostUserIf { client_index: 1, context: 20, sw_if_index: 5 },
            json!({"client_index": 1, "context": 20, "sw_if_index": 5}),
        ),
        case(DeleteVhostUserIfReply { context: 20, retval: 0 }, json!({"context": 20, "retval": 0})),
        case(
            SwInterfaceVhostUserDump { client_index: 1, context: 21, sw_if_index: u32::MAX },
            json!({"client_index": 1, "context": 21, "sw_if_index": u32::MAX}),
        ),
        case(
            SwInterfaceVhostUserDetails {
                context: 21,
                sw_if_index: 5,
                interface_name: "VirtualEthernet0/0/0".into(),
                virtio_net_hdr_sz: 12,
                features_first_32: 0x1000_8000,
                features_last_32: 1,
                is_server: true,
                sock_filename: "/s/0123456789ab-net1".into(),
                num_regions: 2,
                sock_errno: -111,
            },
            json!({"context": 21, "sw_if_index": 5, "interface_name": "VirtualEthernet0/0/0", "virtio_net_hdr_sz": 12,
                   "features_first_32": 0x1000_8000, "features_last_32": 1, "is_server": true,
                   "sock_filename": "/s/0123456789ab-net1", "num_regions": 2, "sock_errno": -111}),
        ),
    ]
}

#[test]
fn every_message_we_send_or_parse_matches_vpp_papi_byte_for_byte() {
    let cases = cases();
    let covered: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    for (name, _) in USED {
        assert!(covered.contains(name), "no golden case for {name}");
    }
    let apidir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("api");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/papi_golden.py");
    let input = json!({
        "apidir": apidir,
        "cases": cases.iter().map(|c| json!({"msg": c.name, "fields": c.papi})).collect::<Vec<_>>(),
    });
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed (scripts/setup.sh)");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "vpp_papi oracle failed (install it with `pip install vpp-papi`, see scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: Value = serde_json::from_slice(&out.stdout).expect("oracle output");
    let hex = res["hex"].as_array().expect("hex list");
    assert_eq!(hex.len(), cases.len());
    for (c, h) in cases.iter().zip(hex) {
        let papi = decode_hex(h.as_str().expect("hex"));
        assert_eq!(hex_of(&c.ours), hex_of(&papi), "{}: our bytes (left) differ from vpp_papi's (right)", c.name);
        (c.roundtrip)(&papi).unwrap_or_else(|e| panic!("{}: decoding vpp_papi's bytes: {e}", c.name));
    }
    eprintln!("{} messages match vpp_papi {}", cases.len(), res["papi"]);
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// The generated file is what the generator makes from the committed .api.json files.
#[test]
fn generated_messages_are_up_to_date() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/vpp-gen-messages.py"))
        .arg("--check")
        .output()
        .expect("python3 must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
