//! The lab fixture against the real OVS-DPDK and testpmd: packets flow between vhost-user ports
//! in every mode pair, restarts work, and stopping leaves nothing behind. Never uses the host OVS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testlab::{pid_alive, Lab, LabError, Role, Testpmd, VhostPort};

const FLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// What a stopped lab must not leave: its netns, its DPDK dir, its temp dir, live daemons.
struct Traces {
    netns: PathBuf,
    dpdk: PathBuf,
    dir: PathBuf,
    pids: Vec<i32>,
}

impl Traces {
    fn of(lab: &Lab) -> Traces {
        Traces {
            netns: Path::new("/run/netns").join(lab.netns_name().unwrap_or("<none>")),
            dpdk: lab.dpdk_run_dir(),
            dir: lab.dir().to_path_buf(),
            pids: lab.ovsdb_pid().into_iter().chain(lab.vswitchd_pid()).collect(),
        }
    }

    fn assert_gone(&self) {
        assert!(!self.netns.exists(), "netns left behind: {}", self.netns.display());
        assert!(!self.dpdk.exists(), "DPDK runtime dir left behind: {}", self.dpdk.display());
        assert!(!self.dir.exists(), "lab dir left behind: {}", self.dir.display());
        for pid in &self.pids {
            assert!(!pid_alive(*pid), "daemon pid {pid} still running: {}", testlab::process::cmdline(*pid));
        }
    }
}

#[test]
fn lab_forwards_32_of_32_packets_and_stop_leaves_nothing() -> Result<(), LabError> {
    let t = Instant::now();
    let lab = Lab::start("smoke")?;
    let start = t.elapsed();
    let traces = Traces::of(&lab);
    assert_eq!(traces.pids.len(), 2, "both daemons have pids");
    assert!(traces.netns.exists() && traces.dpdk.exists(), "lab made its netns and DPDK dir");
    assert_eq!(lab.vsctl(&["get", "Open_vSwitch", ".", "other_config:pmd-maxsleep"])?, "\"1000\"");

    lab.add_netdev_bridge("br-smoke")?;
    let server_sock = lab.add_vhostuser_port("br-smoke", "vhu0")?;
    let client_sock = lab.dir().join("vhuc1.sock");
    lab.add_vhostuserclient_port("br-smoke", "vhuc1", &client_sock)?;
    assert_eq!(lab.bridges()?, vec!["br-smoke"]);
    assert_eq!(lab.ports("br-smoke")?, vec!["vhu0", "vhuc1"]);
    assert_eq!(lab.interface_column("vhuc1", "type")?, "dpdkvhostuserclient");
    assert_eq!(server_sock.parent(), Some(lab.sock_dir()), "dpdkvhostuser sockets land in the lab dir");

    let t = Instant::now();
    let (sent, received) = Testpmd::packets_flow(&server_sock, &client_sock, 32, FLOW_TIMEOUT)?;
    let check = t.elapsed();
    assert_eq!((sent, received), (32, 32), "sent/received through OVS; vswitchd log {}", lab.vswitchd_log().display());

    let t = Instant::now();
    lab.stop()?;
    let stop = t.elapsed();
    traces.assert_gone();
    eprintln!("TIMING lab start {start:?}, packet check {check:?}, lab stop {stop:?}");
    Ok(())
}

#[test]
fn packets_flow_in_every_mode_pair() -> Result<(), LabError> {
    let lab = Lab::start("modes")?;
    lab.add_netdev_bridge("br-modes")?;
    let s1 = VhostPort::Server(lab.add_vhostuser_port("br-modes", "s1")?);
    let s2 = VhostPort::Server(lab.add_vhostuser_port("br-modes", "s2")?);
    let c1 = VhostPort::Client(lab.dir().join("c1.sock"));
    let c2 = VhostPort::Client(lab.dir().join("c2.sock"));
    lab.add_vhostuserclient_port("br-modes", "c1", c1.path())?;
    lab.add_vhostuserclient_port("br-modes", "c2", c2.path())?;
    for (from, to) in [(&c1, &s1), (&s1, &s2), (&c1, &c2)] {
        let t = Instant::now();
        let got = Testpmd::send_packets(from, to, 16, FLOW_TIMEOUT)?;
        eprintln!("TIMING {from:?} -> {to:?}: {:?}", t.elapsed());
        assert_eq!(got, (16, 16), "{from:?} -> {to:?}");
    }
    // A test that fails midway drops its Testpmd: the process and its files must go with it.
    let mut rx = Testpmd::spawn(&c2, Role::Receive)?;
    rx.wait_forwarding(FLOW_TIMEOUT)?;
    let (pid, dpdk, log) =
        (rx.pid(), Path::new(testlab::DPDK_RUN_DIR).join(rx.dpdk_prefix()), rx.log_path().to_owned());
    assert!(pid.is_some_and(pid_alive) && dpdk.exists() && log.exists() && c2.path().exists());
    drop(rx);
    assert!(pid.is_some_and(|p| !pid_alive(p)), "testpmd killed on drop");
    assert!(!dpdk.exists() && !log.exists(), "testpmd files removed on drop");
    assert!(!c2.path().exists(), "the socket testpmd served is removed on drop");
    Ok(())
}

#[test]
fn restarted_vswitchd_recreates_ports_and_killed_ovsdb_comes_back() -> Result<(), LabError> {
    let mut lab = Lab::start("restart")?;
    lab.add_netdev_bridge("br-r")?;
    let sock = lab.add_vhostuser_port("br-r", "vhr")?;
    let old = lab.vswitchd_pid();
    let t = Instant::now();
    lab.restart_vswitchd()?;
    eprintln!("TIMING vswitchd restart {:?}", t.elapsed());
    assert_ne!(lab.vswitchd_pid(), old, "a new vswitchd runs");
    assert!(old.is_some_and(|p| !pid_alive(p)), "the old vswitchd is gone");
    // ovs-vsctl without --no-wait waits for the new vswitchd to apply the change.
    lab.vsctl(&["set", "Bridge", "br-r", "external_ids:probe=1"])?;
    assert!(sock.exists(), "vswitchd recreated the server-mode socket after restart");
    assert_eq!(lab.interface_column("vhr", "error")?, "[]");

    let old_db = lab.ovsdb_pid();
    lab.kill_ovsdb()?;
    assert!(old_db.is_some_and(|p| !pid_alive(p)));
    assert!(lab.vsctl(&["list-br"]).is_err(), "ovs-vsctl fails while ovsdb-server is down");
    lab.start_ovsdb()?;
    assert_eq!(lab.bridges()?, vec!["br-r"], "the database survived the kill");
    let traces = Traces::of(&lab);
    drop(lab);
    traces.assert_gone();
    Ok(())
}

#[test]
fn db_only_lab_has_no_vswitchd_and_cleans_up() -> Result<(), LabError> {
    let lab = Lab::start_db_only("dbonly")?;
    assert!(lab.vswitchd_pid().is_none() && lab.netns_name().is_none());
    assert_eq!(lab.vsctl(&["--no-wait", "add-br", "b0"])?, "");
    assert_eq!(lab.bridges()?, vec!["b0"]);
    let traces = Traces::of(&lab);
    lab.stop()?;
    traces.assert_gone();
    Ok(())
}

#[test]
fn testpmd_on_a_missing_socket_fails_fast_and_cleans_up() -> Result<(), LabError> {
    let missing = VhostPort::Server(PathBuf::from("/tmp/uscni-does-not-exist.sock"));
    let t = Instant::now();
    let mut tp = Testpmd::spawn(&missing, Role::Receive)?;
    let dpdk = Path::new(testlab::DPDK_RUN_DIR).join(tp.dpdk_prefix());
    let err = tp.wait_forwarding(Duration::from_secs(20));
    assert!(matches!(err, Err(LabError::NotReady { .. })), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "no port is detected early, took {:?}", t.elapsed());
    drop(tp);
    assert!(!dpdk.exists(), "DPDK dir removed: {}", dpdk.display());
    Ok(())
}
