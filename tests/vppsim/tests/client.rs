//! The backend's binary-API client against the simulator: handshake, CRC check, calls, dumps,
//! VPP's error codes, stall and restart.

use std::time::{Duration, Instant};
use userspace_cni_vpp::api::messages::*;
use userspace_cni_vpp::api::{Client, VppError};
use userspace_cni_vpp::ops;
use vppsim::Sim;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

const T: Duration = Duration::from_secs(3);

#[test]
fn connect_check_and_create_a_memif_on_a_vpp_chosen_socket_id() {
    let d = dir();
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        c.check_messages().await.expect("every CRC matches v26.06");
        let path = d.path().join("m.sock").display().to_string();
        let id = ops::add_socket(&mut c, &path).await.expect("add socket");
        assert!(id != 0 && id != u32::MAX, "VPP chose id {id}");
        assert_eq!(ops::socket_ids(&mut c, &path).await.unwrap(), vec![id]);
        let r: MemifCreateV2Reply = c
            .call(MemifCreateV2 { socket_id: id, role: MEMIF_ROLE_API_MASTER, ..Default::default() }, "create")
            .await
            .expect("memif_create_v2");
        let memifs = ops::memifs(&mut c).await.unwrap();
        assert_eq!(memifs.len(), 1);
        // ring_size: the negotiated one, 1 until a peer connects.
        assert_eq!((memifs[0].sw_if_index, memifs[0].socket_id, memifs[0].ring_size), (r.sw_if_index, id, 1));
        assert!(d.path().join("m.sock").exists(), "a master listens on its socket file");
        // Unknown socket id: VPP's INVALID_ARGUMENT.
        let e = c
            .call::<_, MemifCreateV2Reply>(MemifCreateV2 { socket_id: 77, ..Default::default() }, "create")
            .await
            .unwrap_err();
        assert_eq!(e.retval(), Some(-73), "{e}");
        // The socket is in use: -74.
        let e = c
            .call::<_, MemifSocketFilenameAddDelV2Reply>(
                MemifSocketFilenameAddDelV2 { is_add: false, socket_id: id, ..Default::default() },
                "del",
            )
            .await
            .unwrap_err();
        assert_eq!(e.retval(), Some(-74), "{e}");
        ops::delete_memif(&mut c, r.sw_if_index).await.unwrap();
        ops::delete_memif(&mut c, r.sw_if_index).await.expect("deleting twice is tolerated");
        ops::remove_socket_if_unused(&mut c, id).await.unwrap();
        assert!(sim.sockets().is_empty());
        c.close().await;
    });
    let log = sim.log();
    assert!(log.contains(&"control_ping".to_string()) && log.last() == Some(&"sockclnt_delete".to_string()), "{log:?}");
}

#[test]
fn a_changed_crc_names_the_message_and_the_release() {
    let d = dir();
    let sim = Sim::start(d.path());
    sim.set_crc("memif_create_v2", "deadbeef");
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let e = c.check_messages().await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, VppError::CrcMismatch { .. }), "{msg}");
        assert!(msg.contains("memif_create_v2 has CRC deadbeef") && msg.contains("8c7de5f7"), "{msg}");
        assert!(msg.contains("v26.06") && msg.contains("26.06-release"), "{msg}");
        assert_eq!(userspace_cni_api::CniError::from(e).code, 105);
    });
}

#[test]
fn a_stalled_vpp_is_a_bounded_timeout_and_a_dead_one_unreachable() {
    let d = dir();
    let mut sim = Sim::start(d.path());
    sim.set_stall(true);
    rt().block_on(async {
        let t0 = Instant::now();
        let e = Client::connect(&sim.socket(), Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(e, VppError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2), "bounded: {:?}", t0.elapsed());
        assert_eq!(userspace_cni_api::CniError::from(e).code, 11);
    });
    sim.set_stall(false);
    sim.stop();
    rt().block_on(async {
        let e = Client::connect(&sim.socket(), T).await.unwrap_err();
        assert!(matches!(e, VppError::Unreachable { .. }), "{e}");
    });
}

#[test]
fn restart_drops_the_connection_and_the_configuration() {
    let d = dir();
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let bd = BridgeDomainAddDelV2 { bd_id: 7, is_add: true, bd_tag: "x".into(), ..Default::default() };
        c.call::<_, BridgeDomainAddDelV2Reply>(bd.clone(), "bd").await.expect("add bd");
        let e = c.call::<_, BridgeDomainAddDelV2Reply>(bd, "bd").await.unwrap_err();
        assert_eq!(e.retval(), Some(-119));
        sim.restart();
        let e = ops::interfaces(&mut c).await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        let mut c = Client::connect(&sim.socket(), T).await.expect("reconnect");
        let bds: Vec<BridgeDomainDetails> =
            c.dump(BridgeDomainDump { bd_id: u32::MAX, ..Default::default() }, "bd dump").await.unwrap();
        assert!(bds.is_empty(), "state lost: {bds:?}");
    });
}
