//! The simulator answers as a VPP v26.06 built from source did (issue 16's list): memif_details'
//! negotiated ring and buffer sizes and zero_copy, the fixed sequence of socket ids VPP picks, a
//! freed sw_if_index reused at once, the socket-filename, memif-listener, vhost-user server,
//! bridge-domain 0 and address codes, control_ping_reply's client_index, and the crash that
//! memif mode 2 (inject-punt) causes.

use std::path::Path;
use std::time::Duration;
use userspace_cni_vpp::api::messages::*;
use userspace_cni_vpp::api::{Client, VppError};
use userspace_cni_vpp::ops;
use vppsim::Sim;

const T: Duration = Duration::from_secs(3);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

async fn memif(c: &mut Client, socket_id: u32, role: u32, mode: u32) -> Result<u32, VppError> {
    let req = MemifCreateV2 { socket_id, role, mode, ring_size: 2048, buffer_size: 4096, ..Default::default() };
    let r: MemifCreateV2Reply = c.call(req, "memif_create_v2").await?;
    Ok(r.sw_if_index)
}

async fn add_socket_id(c: &mut Client, socket_id: u32, filename: &str) -> Result<u32, VppError> {
    let req =
        MemifSocketFilenameAddDelV2 { is_add: true, socket_id, socket_filename: filename.into(), ..Default::default() };
    let r: MemifSocketFilenameAddDelV2Reply = c.call(req, "memif_socket_filename_add_del_v2").await?;
    Ok(r.socket_id)
}

async fn vhost(c: &mut Client, file: &Path, is_server: bool) -> Result<u32, VppError> {
    let req = CreateVhostUserIfV2 { is_server, sock_filename: path(file), ..Default::default() };
    let r: CreateVhostUserIfV2Reply = c.call(req, "create_vhost_user_if_v2").await?;
    Ok(r.sw_if_index)
}

/// x' = 1664525·x + 1013904223 mod 2^32, from 0.
fn lcg(n: usize) -> Vec<u32> {
    let mut x = 0u32;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x
        })
        .collect()
}

#[test]
fn memif_details_report_the_negotiated_ring_and_buffer_sizes_and_zero_copy_for_a_slave() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let m = ops::add_socket(&mut c, &path(&d.path().join("m.sock"))).await.expect("master socket");
        let s = ops::add_socket(&mut c, &path(&d.path().join("s.sock"))).await.expect("slave socket");
        let master = memif(&mut c, m, MEMIF_ROLE_API_MASTER, 0).await.expect("master");
        let slave = memif(&mut c, s, MEMIF_ROLE_API_SLAVE, 0).await.expect("slave");
        let req =
            MemifCreateV2 { socket_id: s, id: 1, role: MEMIF_ROLE_API_SLAVE, no_zero_copy: true, ..Default::default() };
        let copying = c.call::<_, MemifCreateV2Reply>(req, "create").await.expect("slave, no zero copy").sw_if_index;
        let got: Vec<(u32, u32, u16, bool)> = ops::memifs(&mut c)
            .await
            .expect("memif_dump")
            .into_iter()
            .map(|x| (x.sw_if_index, x.ring_size, x.buffer_size, x.zero_copy))
            .collect();
        // Asked for 2048 slots of 4096 bytes: VPP reports `run` (1 << 0, 0) until a peer connects.
        assert_eq!(
            got,
            vec![(master, 1, 0, false), (slave, 1, 0, true), (copying, 1, 0, false)],
            "(sw_if_index, ring_size, buffer_size, zero_copy) from memif_dump"
        );
        let kept: Vec<(u32, u16)> = sim.memifs().iter().map(|x| (x.ring_size, x.buffer_size)).collect();
        assert_eq!(kept, vec![(2048, 4096), (2048, 4096), (1024, 2048)], "the configured values are kept");
        c.close().await;
    });
}

#[test]
fn vpp_chosen_socket_ids_follow_vpps_fixed_sequence_again_after_a_restart() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    let want = lcg(3);
    assert_eq!(want, vec![1013904223, 1196435762, 3519870697], "the sequence issue 16 lists");
    let ids = |n: usize| {
        rt().block_on(async {
            let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
            let mut out = Vec::new();
            for i in 0..n {
                out.push(ops::add_socket(&mut c, &path(&d.path().join(format!("{i}.sock")))).await.expect("add"));
            }
            c.close().await;
            out
        })
    };
    assert_eq!(ids(3), want, "the first ids VPP picks");
    sim.restart();
    assert_eq!(ids(3), want, "the same after a restart (a static seed of 0)");
    sim.restart();
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        // The next value taken: VPP looks around it (+0, +1, -2, ...), so +1.
        let first = want[0];
        assert_eq!(add_socket_id(&mut c, first, &path(&d.path().join("x.sock"))).await.expect("explicit id"), first);
        let got = ops::add_socket(&mut c, &path(&d.path().join("y.sock"))).await.expect("VPP-chosen id");
        assert_eq!(got, first + 1, "a taken value is walked around");
        // A deleted id is not handed out again: the seed moved on.
        ops::remove_socket_if_unused(&mut c, got).await.expect("delete");
        let next = ops::add_socket(&mut c, &path(&d.path().join("z.sock"))).await.expect("VPP-chosen id");
        let expect = (first + 1).wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        assert_eq!(next, expect, "the LCG continues from the walk's last value");
        c.close().await;
    });
}

#[test]
fn a_deleted_interfaces_sw_if_index_is_reused_by_the_next_create() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let s = ops::add_socket(&mut c, &path(&d.path().join("m.sock"))).await.expect("socket");
        let a = memif(&mut c, s, MEMIF_ROLE_API_MASTER, 0).await.expect("a");
        let req = MemifCreateV2 { socket_id: s, id: 1, ..Default::default() };
        let b = c.call::<_, MemifCreateV2Reply>(req, "b").await.expect("b").sw_if_index;
        let v = vhost(&mut c, &d.path().join("v.sock"), true).await.expect("vhost");
        assert_eq!((a, b, v), (1, 2, 3), "fresh indexes count up from local0's 0");
        ops::delete_memif(&mut c, a).await.expect("delete a");
        ops::delete_vhost(&mut c, v).await.expect("delete v");
        // The last freed index first (VPP's pool), whatever the kind of interface.
        let w = vhost(&mut c, &d.path().join("w.sock"), true).await.expect("w");
        assert_eq!(w, v, "the vhost-user interface takes the index freed last");
        let req = MemifCreateV2 { socket_id: s, id: 2, ..Default::default() };
        let m = c.call::<_, MemifCreateV2Reply>(req, "m").await.expect("m").sw_if_index;
        assert_eq!(m, a, "the memif takes the index freed before it");
        let req = MemifCreateV2 { socket_id: s, id: 3, ..Default::default() };
        let n = c.call::<_, MemifCreateV2Reply>(req, "n").await.expect("n").sw_if_index;
        assert_eq!(n, 4, "nothing freed: a new index");
        let tags: Vec<(u32, String)> =
            ops::interfaces(&mut c).await.expect("dump").into_iter().map(|i| (i.sw_if_index, i.tag)).collect();
        assert!(tags.iter().all(|(_, t)| t.is_empty()), "a reused index carries no old tag: {tags:?}");
        c.close().await;
    });
}

#[test]
fn a_socket_filename_in_a_missing_directory_is_registered_and_the_master_create_fails() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let file = d.path().join("missing/m.sock");
        let id = ops::add_socket(&mut c, &path(&file)).await.expect("VPP does not look at the directory");
        assert_eq!(sim.sockets().get(&id), Some(&path(&file)));
        let e = memif(&mut c, id, MEMIF_ROLE_API_MASTER, 0).await.expect_err("no directory to bind in");
        assert_eq!(e.retval(), Some(-14), "SYSCALL_ERROR_4: {e}");
        assert!(sim.memifs().is_empty(), "{:?}", sim.memifs());
        // A slave only connects later (memif-process): its create succeeds.
        let s = memif(&mut c, id, MEMIF_ROLE_API_SLAVE, 0).await.expect("slave on the same socket");
        ops::delete_memif(&mut c, s).await.expect("delete");
        c.close().await;
    });
}

#[test]
fn a_memif_master_over_a_regular_file_is_syscall_error_4_and_the_file_stays() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    let file = d.path().join("m.sock");
    std::fs::write(&file, b"not a socket").expect("regular file");
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let id = ops::add_socket(&mut c, &path(&file)).await.expect("socket");
        let e = memif(&mut c, id, MEMIF_ROLE_API_MASTER, 0).await.expect_err("a regular file is in the way");
        assert_eq!(e.retval(), Some(-14), "SYSCALL_ERROR_4: {e}");
        assert_eq!(std::fs::read(&file).expect("still there"), b"not a socket");
        // A socket file nobody listens on is replaced.
        std::fs::remove_file(&file).expect("rm");
        drop(std::os::unix::net::UnixListener::bind(&file).expect("stale socket"));
        let m = memif(&mut c, id, MEMIF_ROLE_API_MASTER, 0).await.expect("a stale socket is unlinked");
        // A second socket id on the same file finds VPP's own live listener there.
        let id2 = ops::add_socket(&mut c, &path(&file)).await.expect("second id");
        let e = memif(&mut c, id2, MEMIF_ROLE_API_MASTER, 0).await.expect_err("active listener");
        assert_eq!(e.retval(), Some(-14), "{e}");
        ops::delete_memif(&mut c, m).await.expect("delete");
        c.close().await;
    });
    assert!(sim.memifs().is_empty());
}

#[test]
fn a_vhost_user_server_replaces_a_regular_file_and_fails_in_a_missing_directory() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    let file = d.path().join("v.sock");
    std::fs::write(&file, b"not a socket").expect("regular file");
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let v = vhost(&mut c, &file, true).await.expect("VPP unlinks whatever is at the path");
        use std::os::unix::fs::FileTypeExt;
        let ft = std::fs::symlink_metadata(&file).expect("socket").file_type();
        assert!(ft.is_socket(), "the file was replaced by VPP's listener: {ft:?}");
        let e = vhost(&mut c, &d.path().join("missing/v.sock"), true).await.expect_err("no directory");
        assert_eq!(e.retval(), Some(-12), "SYSCALL_ERROR_2 (bind): {e}");
        let client = vhost(&mut c, &d.path().join("missing/c.sock"), false).await.expect("a client connects later");
        ops::delete_vhost(&mut c, v).await.expect("delete");
        ops::delete_vhost(&mut c, client).await.expect("delete");
        c.close().await;
    });
    assert!(sim.vhosts().is_empty());
}

#[test]
fn bridge_domain_0_exists_so_adding_it_is_already_exists_and_deleting_it_not_modifiable() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        for (is_add, want) in [(true, -119), (false, -121)] {
            let req = BridgeDomainAddDelV2 { bd_id: 0, is_add, ..Default::default() };
            let e = c.call::<_, BridgeDomainAddDelV2Reply>(req, "bd 0").await.expect_err("bd 0");
            assert_eq!(e.retval(), Some(want), "is_add {is_add}: {e}");
        }
        c.close().await;
    });
    assert!(sim.bridge_domains().is_empty());
}

#[test]
fn a_duplicate_or_overlapping_ipv4_address_is_address_in_use() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    let prefix = |s: &str| userspace_cni_vpp::steps::parse_prefix(s).expect("prefix");
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let a = vhost(&mut c, &d.path().join("a"), true).await.expect("a");
        let b = vhost(&mut c, &d.path().join("b"), true).await.expect("b");
        ops::add_address(&mut c, a, &prefix("10.1.0.2/24")).await.expect("first address");
        ops::add_address(&mut c, a, &prefix("10.1.0.3/24")).await.expect("same prefix, same interface");
        for (idx, p, want) in [
            (a, "10.1.0.2/24", -105),
            (b, "10.1.0.2/24", -105),
            (b, "10.1.0.9/24", -105),
            (b, "10.1.0.0/16", -105),
            (a, "10.1.0.4/25", -105),
        ] {
            let e = ops::add_address(&mut c, idx, &prefix(p)).await.expect_err(p);
            assert_eq!(e.retval(), Some(want), "{p} on {idx}: {e}");
            assert!(e.to_string().contains("ADDRESS_IN_USE"), "the name is in the error text: {e}");
        }
        ops::add_address(&mut c, b, &prefix("10.2.0.2/24")).await.expect("another subnet");
        ops::add_address(&mut c, a, &prefix("fd00::2/64")).await.expect("v6");
        let e = ops::add_address(&mut c, b, &prefix("fd00::3/64")).await.expect_err("v6 overlap");
        assert_eq!(e.retval(), Some(-127), "IPv6 says DUPLICATE_IF_ADDRESS: {e}");
        c.close().await;
    });
    let n: Vec<usize> = sim.interfaces().iter().map(|i| i.addresses.len()).collect();
    assert_eq!(n, vec![3, 1], "only the accepted addresses");
}

#[test]
fn control_ping_reply_has_client_index_0() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let r: ControlPingReply = c.call(ControlPing::default(), "control_ping").await.expect("ping");
        assert_eq!((r.retval, r.client_index), (0, 0), "{r:?}");
        assert!(r.vpe_pid > 0, "{r:?}");
        c.close().await;
    });
}

#[test]
fn memif_mode_2_crashes_vpp_which_comes_back_empty() {
    let d = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(d.path());
    rt().block_on(async {
        let mut c = Client::connect(&sim.socket(), T).await.expect("connect");
        let bd = BridgeDomainAddDelV2 { bd_id: 4, is_add: true, ..Default::default() };
        c.call::<_, BridgeDomainAddDelV2Reply>(bd, "bd").await.expect("bd");
        let id = ops::add_socket(&mut c, &path(&d.path().join("p.sock"))).await.expect("socket");
        let e = memif(&mut c, id, MEMIF_ROLE_API_MASTER, MEMIF_MODE_API_PUNT_INJECT).await.expect_err("crash");
        assert!(e.is_unavailable(), "no answer, the connection drops: {e}");
        let mut c = Client::connect(&sim.socket(), T).await.expect("VPP is back");
        let bds: Vec<BridgeDomainDetails> =
            c.dump(BridgeDomainDump { bd_id: u32::MAX, ..Default::default() }, "bd dump").await.expect("dump");
        assert!(bds.is_empty() && sim.sockets().is_empty(), "configuration lost: {bds:?} {:?}", sim.sockets());
        c.close().await;
    });
    assert!(sim.log().iter().any(|l| l.starts_with("crash: memif_create_v2 with mode 2")), "{:?}", sim.log());
}
