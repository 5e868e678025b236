//! A private OVS-DPDK for tests: ovsdb-server + ovs-vswitchd-dpdk in a `/tmp/uscni-*` dir and netns.
//! Never installs anything or signals a process it did not start; always cleans up on drop.

use crate::error::LabError;
use crate::process::{
    cmdline, command, ms, pid_alive, read_pidfile, run, run_ok, sanitize, signal, tail, unique_suffix, wait_dead, POLL,
    PREFIX,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The DPDK build of vswitchd. `/usr/sbin/ovs-vswitchd` is the non-DPDK build and rejects
/// `dpdkvhostuser*` interface types.
pub const VSWITCHD_DPDK: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// Where DPDK keeps per-process runtime files, one dir per `--file-prefix`.
pub const DPDK_RUN_DIR: &str = "/var/run/dpdk";

/// No hugepages: `--no-huge` needs `--legacy-mem` or vswitchd aborts; `-m 512` is the memory
/// DPDK may take from ordinary pages; `--no-pci` because there is no NIC; `--no-telemetry` so
/// several labs do not fight over the telemetry socket.
const DPDK_EXTRA: &str = "--no-huge --legacy-mem -m 512 --no-pci --no-telemetry";
/// µs a PMD thread may sleep when idle. Without it every vswitchd busy-polls a core at 100 %,
/// and several labs plus testpmd on a 2-core machine starve each other.
pub const PMD_MAXSLEEP_US: u32 = 1000;

const CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// `ovs-vsctl --timeout`: it waits for vswitchd to apply each change (unless `--no-wait`).
const VSCTL_TIMEOUT_S: u64 = 10;
const DPDK_INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// `ovs-appctl exit` makes a daemon exit in ~150 ms; beyond this it gets SIGKILL.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
const KILL_TIMEOUT: Duration = Duration::from_secs(3);

/// How a lab is started. `Default` is what tests use (`Lab::start`): `pmd-maxsleep` set so
/// several labs and testpmd share a 2-core machine. Benchmarks use `LabOptions::busy_pmd()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabOptions {
    /// `other_config:pmd-maxsleep` in µs; `None` leaves OVS's default PMD, which busy-polls its
    /// core at 100 % and applies changes fastest (one lab per machine, lab/README.md).
    pub pmd_maxsleep_us: Option<u32>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions { pmd_maxsleep_us: Some(PMD_MAXSLEEP_US) }
    }
}

impl LabOptions {
    /// OVS's default busy-polling PMD (no `pmd-maxsleep`): for benchmarks, one lab at a time.
    pub fn busy_pmd() -> Self {
        LabOptions { pmd_maxsleep_us: None }
    }
}

/// A running private OVS. Dropping it stops everything and removes every file, the netns and
/// the DPDK runtime dir; `stop()` does the same and reports errors.
#[derive(Debug)]
pub struct Lab {
    name: String,
    stem: String,
    dir: PathBuf,
    netns: Option<String>,
    /// Each daemon's files are `<dir>/<program>.{pid,ctl,log,stderr}`.
    ovsdb_pid: Option<i32>,
    /// `false` for `start_db_only` labs.
    with_vswitchd: bool,
    vswitchd_pid: Option<i32>,
    stopped: bool,
}

impl Lab {
    /// ovsdb-server + ovs-vswitchd-dpdk, DPDK initialised, no bridges. `name` (sanitised, at most
    /// 12 characters) appears in the dir, netns and DPDK prefix to tell labs apart.
    pub fn start(name: &str) -> Result<Lab, LabError> {
        Self::start_with(name, &LabOptions::default())
    }

    /// `start` with explicit options, e.g. `LabOptions::busy_pmd()` for benchmarks.
    pub fn start_with(name: &str, options: &LabOptions) -> Result<Lab, LabError> {
        Self::create(name, true, options)
    }

    /// Only ovsdb-server with an initialised `Open_vSwitch` database: enough for OVSDB protocol
    /// tests, and nothing ever applies `next_cfg` (so waits for vswitchd time out).
    pub fn start_db_only(name: &str) -> Result<Lab, LabError> {
        Self::create(name, false, &LabOptions::default())
    }

    /// A lab shared by the tests of one test binary that run at the same time (DESIGN.md §3.7:
    /// one lab per test binary). It stops when the last user drops its `Arc`; a later call
    /// starts a new one. Tests that restart or kill OVS must use `start` instead.
    pub fn shared(name: &str) -> Result<Arc<Lab>, LabError> {
        static SHARED: OnceLock<Mutex<HashMap<String, Weak<Lab>>>> = OnceLock::new();
        let map = SHARED.get_or_init(|| Mutex::new(HashMap::new()));
        // A test that panicked while holding the lock poisons it; the map is still consistent.
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lab) = map.get(name).and_then(Weak::upgrade) {
            return Ok(lab);
        }
        let lab = Arc::new(Lab::start(name)?);
        map.insert(name.to_string(), Arc::downgrade(&lab));
        Ok(lab)
    }

    fn create(name: &str, with_vswitchd: bool, options: &LabOptions) -> Result<Lab, LabError> {
        let short = sanitize(name, 12);
        let mut made = None;
        for _ in 0..32 {
            let stem = format!("{PREFIX}{short}-{}", unique_suffix());
            let dir = Path::new("/tmp").join(&stem);
            if Path::new("/run/netns").join(&stem).exists() || Path::new(DPDK_RUN_DIR).join(&stem).exists() {
                continue;
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    made = Some((stem, dir));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(LabError::io(format!("create {}", dir.display()), e)),
            }
        }
        let Some((stem, dir)) = made else {
            return Err(LabError::failed("create lab dir", "no unused /tmp/uscni-* name after 32 tries"));
        };
        let mut lab = Lab {
            name: name.to_string(),
            stem,
            dir,
            netns: None,
            ovsdb_pid: None,
            with_vswitchd,
            vswitchd_pid: None,
            stopped: false,
        };
        // On error `lab` drops here and tears down whatever part was made.
        lab.boot(options)?;
        Ok(lab)
    }

    fn boot(&mut self, options: &LabOptions) -> Result<(), LabError> {
        let db = self.dir.join("conf.db");
        run_ok(Command::new("ovsdb-tool").arg("create").arg(&db).arg(VSWITCH_SCHEMA), CMD_TIMEOUT)?;
        self.start_ovsdb()?;
        self.vsctl(&["--no-wait", "init"])?;
        if !self.with_vswitchd {
            return Ok(());
        }
        let extra = format!("other_config:dpdk-extra=\"{DPDK_EXTRA} --file-prefix={}\"", self.stem);
        let maxsleep = options.pmd_maxsleep_us.map(|us| format!("other_config:pmd-maxsleep={us}"));
        // The lcore/PMD masks pin vswitchd's main thread to core 0 and its PMD to core 1, as on
        // the 2-core CI machines; `per-port-memory` sizes mempools per port, which fits in the
        // 512 MiB DPDK gets. `vhost-sock-dir` stays unset: OVS reads it as a path *relative to*
        // its rundir, and the default (the rundir = the lab dir) is what we want.
        let mut set = vec![
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            "other_config:dpdk-init=true",
            "other_config:dpdk-lcore-mask=0x1",
            "other_config:pmd-cpu-mask=0x2",
            "other_config:per-port-memory=true",
            &extra,
        ];
        if let Some(m) = &maxsleep {
            set.push(m);
        }
        self.vsctl(&set)?;
        run_ok(&mut command("ip", ["netns", "add", &self.stem]), CMD_TIMEOUT)?;
        self.netns = Some(self.stem.clone());
        self.start_vswitchd()
    }

    /// A command with OVS_RUNDIR/DBDIR/LOGDIR in the lab dir, so nothing touches the host's OVS.
    fn ovs_cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("OVS_RUNDIR", &self.dir).env("OVS_DBDIR", &self.dir).env("OVS_LOGDIR", &self.dir);
        c
    }

    fn file(&self, program: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{program}.{ext}"))
    }

    /// Run an OVS daemon with `--detach`: the parent returns once the daemon is ready. Its
    /// output goes to a file: a detached OVS daemon keeps writing to the stderr it inherited.
    fn run_detached(&self, mut cmd: Command, program: &str) -> Result<i32, LabError> {
        let stderr_path = self.file(program, "stderr");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .map_err(|e| LabError::io(format!("open {}", stderr_path.display()), e))?;
        let err = out.try_clone().map_err(|e| LabError::io("dup stderr file", e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let what = crate::process::describe(&cmd);
        let mut child = cmd.spawn().map_err(|e| LabError::io(format!("spawn `{what}`"), e))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if started.elapsed() < CMD_TIMEOUT => std::thread::sleep(POLL),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LabError::NotReady {
                        what: program.to_string(),
                        waited_ms: ms(started.elapsed()),
                        log: self.file(program, "log"),
                        detail: tail(&self.file(program, "log"), 20),
                    });
                }
                Err(e) => return Err(LabError::io(format!("wait for `{what}`"), e)),
            }
        };
        let pid = read_pidfile(&self.file(program, "pid"));
        match (status.success(), pid) {
            (true, Some(pid)) => Ok(pid),
            _ => Err(LabError::NotReady {
                what: format!("{program} ({status})"),
                waited_ms: ms(started.elapsed()),
                log: self.file(program, "log"),
                detail: format!("{}\n{}", tail(&stderr_path, 10), tail(&self.file(program, "log"), 20)),
            }),
        }
    }

    /// Start ovsdb-server on the lab's database (again, after `kill_ovsdb`).
    pub fn start_ovsdb(&mut self) -> Result<(), LabError> {
        if self.ovsdb_pid.is_some_and(pid_alive) {
            return Err(LabError::failed("start ovsdb-server", "already running"));
        }
        let mut c = self.ovs_cmd("ovsdb-server");
        c.arg(self.dir.join("conf.db"))
            .arg(format!("--remote=punix:{}", self.db_socket().display()))
            .arg(format!("--pidfile={}", self.file("ovsdb-server", "pid").display()))
            .arg(format!("--unixctl={}", self.file("ovsdb-server", "ctl").display()))
            .arg(format!("--log-file={}", self.file("ovsdb-server", "log").display()))
            .arg("--detach");
        let pid = self.run_detached(c, "ovsdb-server")?;
        self.ovsdb_pid = Some(pid);
        Ok(())
    }

    /// Start ovs-vswitchd-dpdk in the lab's netns and wait (bounded) for `dpdk_initialized`.
    pub fn start_vswitchd(&mut self) -> Result<(), LabError> {
        let Some(ns) = self.netns.clone().filter(|_| self.with_vswitchd) else {
            return Err(LabError::failed("start ovs-vswitchd", "this lab was started with start_db_only"));
        };
        if self.vswitchd_pid.is_some_and(pid_alive) {
            return Err(LabError::failed("start ovs-vswitchd", "already running"));
        }
        // The column outlives vswitchd: after a restart a stale `true` must not count as ready.
        self.vsctl(&["--no-wait", "set", "Open_vSwitch", ".", "dpdk_initialized=false"])?;
        let mut c = self.ovs_cmd("ip");
        c.args(["netns", "exec", &ns, VSWITCHD_DPDK])
            .arg(self.db_endpoint())
            .arg(format!("--pidfile={}", self.file("ovs-vswitchd", "pid").display()))
            .arg(format!("--unixctl={}", self.file("ovs-vswitchd", "ctl").display()))
            .arg(format!("--log-file={}", self.file("ovs-vswitchd", "log").display()))
            .arg("--detach");
        let pid = self.run_detached(c, "ovs-vswitchd")?;
        self.vswitchd_pid = Some(pid);
        let started = Instant::now();
        loop {
            let not_ready = |detail: String| LabError::NotReady {
                what: "ovs-vswitchd-dpdk (dpdk_initialized)".into(),
                waited_ms: ms(started.elapsed()),
                log: self.file("ovs-vswitchd", "log"),
                detail,
            };
            if !pid_alive(pid) {
                return Err(not_ready(format!(
                    "process {pid} exited\n{}",
                    tail(&self.file("ovs-vswitchd", "log"), 25)
                )));
            }
            if self.vsctl(&["get", "Open_vSwitch", ".", "dpdk_initialized"])? == "true" {
                return Ok(());
            }
            if started.elapsed() > DPDK_INIT_TIMEOUT {
                return Err(not_ready(tail(&self.file("ovs-vswitchd", "log"), 25)));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Graceful stop (`ovs-appctl exit`) and start of vswitchd; bridges and ports stay in OVSDB
    /// and the new vswitchd recreates them (server-mode sockets included).
    pub fn restart_vswitchd(&mut self) -> Result<(), LabError> {
        self.stop_vswitchd()?;
        self.start_vswitchd()
    }

    /// `ovs-appctl exit`, then SIGKILL if it lingers.
    pub fn stop_vswitchd(&mut self) -> Result<(), LabError> {
        let pid = self.vswitchd_pid.take();
        self.stop_daemon("ovs-vswitchd", pid)
    }

    /// SIGKILL vswitchd: a crash. Its sockets and DPDK files stay behind as after a real crash.
    pub fn kill_vswitchd(&mut self) -> Result<(), LabError> {
        let pid = self.vswitchd_pid.take();
        self.kill_daemon("ovs-vswitchd", pid)
    }

    /// SIGKILL ovsdb-server: clients then see a stale socket (connection refused) until
    /// `start_ovsdb`. The database file survives.
    pub fn kill_ovsdb(&mut self) -> Result<(), LabError> {
        let pid = self.ovsdb_pid.take();
        self.kill_daemon("ovsdb-server", pid)
    }

    /// Stop ovsdb-server gracefully (`ovs-appctl exit`); `start_ovsdb` brings it back.
    pub fn stop_ovsdb(&mut self) -> Result<(), LabError> {
        let pid = self.ovsdb_pid.take();
        self.stop_daemon("ovsdb-server", pid)
    }

    /// Whether `pid`'s command line names this lab's dir: the guard against signalling a
    /// recycled pid that now belongs to someone else.
    fn is_ours(&self, pid: i32) -> bool {
        cmdline(pid).contains(&*self.dir.to_string_lossy())
    }

    fn stop_daemon(&self, program: &str, pid: Option<i32>) -> Result<(), LabError> {
        let Some(pid) = pid.filter(|p| pid_alive(*p)) else {
            return Ok(());
        };
        // Errors are ignored: a daemon that cannot answer `exit` gets SIGKILL below.
        let _ = run(
            self.ovs_cmd("ovs-appctl").args(["--timeout=3", "-t"]).arg(self.file(program, "ctl")).arg("exit"),
            EXIT_TIMEOUT,
        );
        if wait_dead(pid, EXIT_TIMEOUT) {
            return Ok(());
        }
        self.kill_daemon(program, Some(pid))
    }

    fn kill_daemon(&self, program: &str, pid: Option<i32>) -> Result<(), LabError> {
        let Some(pid) = pid.filter(|p| pid_alive(*p)) else {
            return Ok(());
        };
        if !self.is_ours(pid) {
            return Err(LabError::failed(
                format!("kill {program}"),
                format!("pid {pid} no longer runs this lab's {program}; not signalled"),
            ));
        }
        signal(pid, libc::SIGKILL);
        if wait_dead(pid, KILL_TIMEOUT) {
            Ok(())
        } else {
            Err(LabError::Timeout {
                what: format!("{program} (pid {pid}) to die after SIGKILL"),
                waited_ms: ms(KILL_TIMEOUT),
            })
        }
    }

    /// Stop and remove everything; errors are collected, every part is tried.
    pub fn stop(mut self) -> Result<(), LabError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        if self.stopped {
            return Ok(());
        }
        let mut errors = Vec::new();
        if let Err(e) = self.stop_vswitchd() {
            errors.push(e.to_string());
        }
        if let Err(e) = self.stop_ovsdb() {
            errors.push(e.to_string());
        }
        if let Some(ns) = self.netns.take() {
            if Path::new("/run/netns").join(&ns).exists() {
                if let Err(e) = run_ok(&mut command("ip", ["netns", "del", &ns]), CMD_TIMEOUT) {
                    errors.push(e.to_string());
                }
            }
        }
        let dpdk = self.dpdk_run_dir();
        if dpdk.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dpdk) {
                errors.push(format!("remove {}: {e}", dpdk.display()));
            }
        }
        if std::env::var_os("USCNI_LAB_KEEP").is_some() {
            eprintln!("lab {}: USCNI_LAB_KEEP set, leaving {}", self.name, self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("remove {}: {e}", self.dir.display()));
            }
        }
        self.stopped = true;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::failed(format!("stop lab {}", self.stem), errors.join("; ")))
        }
    }

    /// The name given to `start`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab dir: OVS_RUNDIR, OVS_DBDIR and OVS_LOGDIR of both daemons.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `dpdkvhostuser` (server-mode) ports get their sockets: OVS's rundir, the lab dir.
    pub fn sock_dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_socket(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    /// `unix:<db socket>`, the form of the setting `USERSPACE_CNI_OVSDB`.
    pub fn db_endpoint(&self) -> String {
        format!("unix:{}", self.db_socket().display())
    }

    /// The netns vswitchd runs in (`None` for `start_db_only` labs).
    pub fn netns_name(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// DPDK's `--file-prefix` for this lab's vswitchd.
    pub fn dpdk_prefix(&self) -> &str {
        &self.stem
    }

    pub fn dpdk_run_dir(&self) -> PathBuf {
        Path::new(DPDK_RUN_DIR).join(&self.stem)
    }

    pub fn ovsdb_pid(&self) -> Option<i32> {
        self.ovsdb_pid
    }

    pub fn vswitchd_pid(&self) -> Option<i32> {
        self.vswitchd_pid
    }

    pub fn vswitchd_log(&self) -> PathBuf {
        self.file("ovs-vswitchd", "log")
    }

    pub fn ovsdb_log(&self) -> PathBuf {
        self.file("ovsdb-server", "log")
    }

    /// `ovs-vsctl --db=unix:<lab> --timeout=10 <args>`; stdout without the trailing newline.
    /// Without `--no-wait` in `args`, ovs-vsctl waits for vswitchd to apply the change.
    pub fn vsctl(&self, args: &[&str]) -> Result<String, LabError> {
        let mut c = self.ovs_cmd("ovs-vsctl");
        c.arg(format!("--db={}", self.db_endpoint())).arg(format!("--timeout={VSCTL_TIMEOUT_S}")).args(args);
        let out = run_ok(&mut c, Duration::from_secs(VSCTL_TIMEOUT_S + 2))?;
        Ok(out.stdout.trim_end().to_string())
    }

    pub fn bridges(&self) -> Result<Vec<String>, LabError> {
        Ok(lines(&self.vsctl(&["list-br"])?))
    }

    pub fn ports(&self, bridge: &str) -> Result<Vec<String>, LabError> {
        Ok(lines(&self.vsctl(&["list-ports", bridge])?))
    }

    /// One column of an Interface as ovs-vsctl prints it (`1`, `[]`, `"text"`).
    pub fn interface_column(&self, name: &str, column: &str) -> Result<String, LabError> {
        self.vsctl(&["get", "Interface", name, column])
    }

    /// A bridge on the userspace datapath (`system` bridges need the kernel module).
    pub fn add_netdev_bridge(&self, bridge: &str) -> Result<(), LabError> {
        self.vsctl(&["add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev"]).map(drop)
    }

    /// A `dpdkvhostuser` port (OVS serves the socket); returns the socket path after checking
    /// that vswitchd created it (ovs-vsctl exits 0 even when a port failed).
    pub fn add_vhostuser_port(&self, bridge: &str, port: &str) -> Result<PathBuf, LabError> {
        self.vsctl(&["add-port", bridge, port, "--", "set", "Interface", port, "type=dpdkvhostuser"])?;
        self.check_port_up(port)?;
        let sock = self.sock_dir().join(port);
        if !sock.exists() {
            return Err(LabError::failed(format!("port {port}"), format!("no socket at {}", sock.display())));
        }
        Ok(sock)
    }

    /// A `dpdkvhostuserclient` port: OVS connects to `server_path` (and retries every second
    /// until someone serves it).
    pub fn add_vhostuserclient_port(&self, bridge: &str, port: &str, server_path: &Path) -> Result<(), LabError> {
        let opt = format!("options:vhost-server-path=\"{}\"", server_path.display());
        self.vsctl(&["add-port", bridge, port, "--", "set", "Interface", port, "type=dpdkvhostuserclient", &opt])?;
        self.check_port_up(port)
    }

    fn check_port_up(&self, port: &str) -> Result<(), LabError> {
        let error = self.interface_column(port, "error")?;
        let ofport = self.interface_column(port, "ofport")?;
        if error != "[]" || ofport.parse::<i64>().map_or(true, |p| p <= 0) {
            return Err(LabError::failed(format!("port {port}"), format!("error={error} ofport={ofport}")));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("lab {}: teardown failed: {e}", self.name);
        }
    }
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}
