//! `dpdk-testpmd` on OVS vhost-user ports and the packet check built on two (lab/vhost-check.sh).
//! Never leaves a testpmd, its `/var/run/dpdk/uscni-*` dir or its logs behind, even on panic.

use crate::error::LabError;
use crate::lab::DPDK_RUN_DIR;
use crate::process::{die_with_parent, ms, signal, tail, unique_suffix, POLL, PREFIX};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TESTPMD: &str = "dpdk-testpmd";
/// testpmd's MAX_PKT_BURST: `--burst` above this is refused.
pub const MAX_BURST: u32 = 512;
/// testpmd prints this when auto-start begins forwarding with its one port configured and
/// started (for `server=1`, only after OVS connected).
const FORWARDING: &str = "rxonly packet forwarding - ports=1 ";
/// A vdev that failed to probe (e.g. nothing serves the socket): testpmd does not exit, it
/// forwards on zero ports, so this must be caught from the log.
const NO_PORT: &str = "No probed ethernet devices";
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Packet tests take the CPU (testpmd busy-polls core 0): they run one at a time on the machine.
const SERIAL_LOCK: &str = "/tmp/uscni-testpmd.lock";

/// An OVS vhost-user port as testpmd meets it. The mode is **OVS's**, as in the port type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VhostPort {
    /// `dpdkvhostuser`: OVS serves the socket at this path; testpmd connects to it.
    Server(PathBuf),
    /// `dpdkvhostuserclient`: OVS connects to this path (`options:vhost-server-path`), retrying
    /// about once a second; testpmd serves it (`server=1` in the vdev).
    Client(PathBuf),
}

impl VhostPort {
    pub fn path(&self) -> &Path {
        match self {
            VhostPort::Server(p) | VhostPort::Client(p) => p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Count what arrives (`rxonly`).
    Receive,
    /// Send exactly one burst of `burst` packets at start (`--tx-first`), then only receive.
    Send { burst: u32 },
}

/// Spawn an argv as it is.
fn direct(argv: &[String]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

/// The final "Accumulated forward statistics" of a testpmd that was stopped with SIGINT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// One running testpmd. Dropping it kills the process and removes its files.
#[derive(Debug)]
pub struct Testpmd {
    child: Option<Child>,
    prefix: String,
    workdir: PathBuf,
    log: PathBuf,
    port: VhostPort,
}

impl Testpmd {
    /// Prove packets flow through OVS, as lab/vhost-check.sh: a testpmd on `client_sock` (the
    /// path a `dpdkvhostuserclient` port connects to) counts, a testpmd on `server_sock` (the
    /// socket of a `dpdkvhostuser` port) sends one burst of `n`. Returns (sent, received).
    pub fn packets_flow(
        server_sock: &Path,
        client_sock: &Path,
        n: u32,
        timeout: Duration,
    ) -> Result<(u64, u64), LabError> {
        Self::send_packets(
            &VhostPort::Server(server_sock.to_path_buf()),
            &VhostPort::Client(client_sock.to_path_buf()),
            n,
            timeout,
        )
    }

    /// Send one burst of `n` packets into OVS on `from` and count what comes out of `to`, for
    /// any pair of modes. The bridge must forward between them (NORMAL floods the unknown
    /// destination MAC). `timeout` bounds start-up and delivery; stopping adds at most 2×10 s.
    /// Returns (sent, received); comparing them is the caller's business.
    pub fn send_packets(from: &VhostPort, to: &VhostPort, n: u32, timeout: Duration) -> Result<(u64, u64), LabError> {
        Self::send_packets_wrapped(from, to, n, timeout, &direct)
    }

    /// [`Testpmd::send_packets`] with the receiver started through `wrap_to` (its argv in, the
    /// command to spawn out): e.g. in a container's mount namespace, as a VM's QEMU would run.
    pub fn send_packets_wrapped(
        from: &VhostPort,
        to: &VhostPort,
        n: u32,
        timeout: Duration,
        wrap_to: &dyn Fn(&[String]) -> Command,
    ) -> Result<(u64, u64), LabError> {
        if n == 0 || n > MAX_BURST {
            return Err(LabError::failed("testpmd", format!("burst {n} outside 1..={MAX_BURST}")));
        }
        let _serial = SerialLock::acquire(timeout + Duration::from_secs(120))?;
        let deadline = Instant::now() + timeout;
        // The receiver must be forwarding before the burst: OVS drops packets for a vhost port
        // whose frontend is not running yet, and the sender sends exactly once.
        let mut rx = Testpmd::spawn_wrapped(to, Role::Receive, wrap_to)?;
        rx.wait_forwarding(left(deadline))?;
        let mut tx = Testpmd::spawn(from, Role::Send { burst: n })?;
        tx.wait_forwarding(left(deadline))?;
        rx.wait_rx(u64::from(n), left(deadline));
        let sent = tx.stop()?.tx_packets;
        let received = rx.stop()?.rx_packets;
        Ok((sent, received))
    }

    /// Start testpmd on `port` with the flags of lab/README.md: no hugepages, 64 MiB, no PCI,
    /// both lcores on CPU 0, its own `uscni-tp-*` file prefix, stats every second (without a
    /// stats period testpmd exits at once on empty stdin).
    pub fn spawn(port: &VhostPort, role: Role) -> Result<Testpmd, LabError> {
        Self::spawn_wrapped(port, role, &direct)
    }

    /// [`Testpmd::spawn`] through `wrap` (testpmd's argv in, the command to spawn out). The
    /// wrapper must end by exec-ing the argv, so the child's pid is testpmd's (stop signals it).
    pub fn spawn_wrapped(
        port: &VhostPort,
        role: Role,
        wrap: &dyn Fn(&[String]) -> Command,
    ) -> Result<Testpmd, LabError> {
        let path = port.path().to_str().ok_or_else(|| LabError::failed("testpmd", "socket path is not UTF-8"))?;
        // The vdev string is a comma-separated key=value list: a comma in the path would split it.
        if path.contains(',') {
            return Err(LabError::failed("testpmd", format!("socket path {path:?} contains a comma")));
        }
        let mut made = None;
        for _ in 0..32 {
            let prefix = format!("{PREFIX}tp-{}", unique_suffix());
            let workdir = Path::new("/tmp").join(&prefix);
            if Path::new(DPDK_RUN_DIR).join(&prefix).exists() {
                continue;
            }
            match std::fs::create_dir(&workdir) {
                Ok(()) => {
                    made = Some((prefix, workdir));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(LabError::io(format!("create {}", workdir.display()), e)),
            }
        }
        let Some((prefix, workdir)) = made else {
            return Err(LabError::failed("testpmd", "no unused /tmp/uscni-tp-* name"));
        };
        let log = workdir.join("testpmd.log");
        let mut me = Testpmd { child: None, prefix, workdir, log, port: port.clone() };
        let out = File::create(&me.log).map_err(|e| LabError::io(format!("create {}", me.log.display()), e))?;
        let err = out.try_clone().map_err(|e| LabError::io("dup testpmd log", e))?;
        let server = if matches!(port, VhostPort::Client(_)) { ",server=1" } else { "" };
        let mut argv: Vec<String> =
            [TESTPMD, "--no-huge", "-m", "64", "--no-pci", "--no-telemetry", "--lcores=0@0,1@0"]
                .map(String::from)
                .into();
        argv.push(format!("--file-prefix={}", me.prefix));
        argv.push(format!("--vdev=net_virtio_user0,path={path}{server}"));
        argv.extend(
            ["--", "--forward-mode=rxonly", "--auto-start", "--stats-period=1", "--total-num-mbufs=2048"]
                .map(String::from),
        );
        if let Role::Send { burst } = role {
            argv.push("--tx-first".into());
            argv.push(format!("--burst={burst}"));
        }
        let mut cmd = wrap(&argv);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // If the test process is killed, its testpmd dies with it instead of busy-polling a
        // core forever.
        die_with_parent(&mut cmd);
        me.child = Some(cmd.spawn().map_err(|e| LabError::io(format!("spawn {TESTPMD}"), e))?);
        Ok(me)
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// This testpmd's DPDK `--file-prefix` (`uscni-tp-*`).
    pub fn dpdk_prefix(&self) -> &str {
        &self.prefix
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything testpmd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until testpmd forwards. For `VhostPort::Client` this includes OVS connecting, which
    /// it retries about once a second.
    pub fn wait_forwarding(&mut self, timeout: Duration) -> Result<(), LabError> {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(FORWARDING) {
                return Ok(());
            }
            let exited = self.child.as_mut().map(|c| c.try_wait().ok().flatten().is_some()).unwrap_or(true);
            if exited || log.contains(NO_PORT) || started.elapsed() >= timeout {
                return Err(LabError::NotReady {
                    what: format!(
                        "{TESTPMD} on {} ({})",
                        self.port.path().display(),
                        if exited || log.contains(NO_PORT) { "no port" } else { "still starting" }
                    ),
                    waited_ms: ms(started.elapsed()),
                    log: self.log.clone(),
                    detail: tail(&self.log, 25),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The highest RX-packets count in the periodic statistics so far.
    pub fn live_rx_packets(&self) -> u64 {
        self.log().lines().filter_map(|l| counter(l, "RX-packets:")).max().unwrap_or(0)
    }

    /// Wait (bounded) until at least `n` packets were received; returns whether they were.
    pub fn wait_rx(&mut self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.live_rx_packets() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT (testpmd then prints its final statistics and exits), bounded; parse the
    /// "Accumulated forward statistics" block.
    pub fn stop(mut self) -> Result<Counters, LabError> {
        let Some(mut child) = self.child.take() else {
            return Err(LabError::failed("testpmd", "not running"));
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            signal(pid, libc::SIGINT);
        }
        let started = Instant::now();
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if started.elapsed() < STOP_TIMEOUT => std::thread::sleep(POLL),
                _ => break false,
            }
        };
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::Timeout {
                what: format!("{TESTPMD} to exit after SIGINT"),
                waited_ms: ms(STOP_TIMEOUT),
            });
        }
        let log = self.log();
        parse_final_counters(&log).ok_or_else(|| LabError::NotReady {
            what: format!("{TESTPMD} final statistics"),
            waited_ms: ms(started.elapsed()),
            log: self.log.clone(),
            detail: tail(&self.log, 25),
        })
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Our own child: kill(2) by its pid, then reap.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(Path::new(DPDK_RUN_DIR).join(&self.prefix));
        let _ = std::fs::remove_dir_all(&self.workdir);
        // As vhost-user server, testpmd created the socket; it stays after exit.
        if let VhostPort::Client(p) = &self.port {
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(p).map(|m| m.file_type().is_socket()).unwrap_or(false) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// `RX-packets: 32 ...` → 32.
fn counter(line: &str, key: &str) -> Option<u64> {
    let (_, rest) = line.split_once(key)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The counters in the two lines after "Accumulated forward statistics".
pub fn parse_final_counters(log: &str) -> Option<Counters> {
    let mut lines = log.lines().skip_while(|l| !l.contains("Accumulated forward statistics"));
    lines.next()?;
    let block: Vec<&str> = lines.take(3).collect();
    Some(Counters {
        rx_packets: block.iter().find_map(|l| counter(l, "RX-packets:"))?,
        tx_packets: block.iter().find_map(|l| counter(l, "TX-packets:"))?,
    })
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A machine-wide lock (flock) so packet tests of any test binary run one at a time.
struct SerialLock(#[allow(dead_code)] File);

impl SerialLock {
    fn acquire(timeout: Duration) -> Result<SerialLock, LabError> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(SERIAL_LOCK)
            .map_err(|e| LabError::io(format!("open {SERIAL_LOCK}"), e))?;
        let started = Instant::now();
        loop {
            // SAFETY: flock(2) on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(SerialLock(f));
            }
            if started.elapsed() >= timeout {
                return Err(LabError::Timeout { what: format!("lock {SERIAL_LOCK}"), waited_ms: ms(timeout) });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_counters_parse_from_testpmd_output() {
        let log = "  RX-packets: 5 RX-missed: 0\n\
            +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++\n\
            \x20 RX-packets: 32             RX-dropped: 0             RX-total: 32\n\
            \x20 TX-packets: 7              TX-dropped: 0             TX-total: 7\n";
        assert_eq!(parse_final_counters(log), Some(Counters { rx_packets: 32, tx_packets: 7 }));
        assert_eq!(parse_final_counters("RX-packets: 1"), None);
        assert_eq!(counter("  RX-packets: 32         RX-missed: 0", "RX-packets:"), Some(32));
    }
}
