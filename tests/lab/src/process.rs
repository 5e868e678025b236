//! Process plumbing for the fixture: commands with a timeout, pid liveness, signals by pid,
//! unique `uscni-` names. Never signals anything but a checked pid (no kill by name, no pid <= 1).

use crate::error::LabError;
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every netns, DPDK file prefix and temp dir the fixture makes starts with this, so a CI
/// clean-up (`scripts/leftovers.sh`) can find leftovers of a killed test run.
pub const PREFIX: &str = "uscni-";

/// How often bounded waits look again. Short: DPDK and OVS state changes are sub-second.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `program args...` as one line, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` to completion within `timeout` (killed and reaped if it overruns). Output pipes
/// are drained by threads and collected with a bound too: a daemon that `--detach`es keeps the
/// parent's stderr, so waiting for EOF could otherwise hang — give such commands files instead.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, LabError> {
    let what = describe(cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| LabError::io(format!("spawn `{what}`"), e))?;
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    for (is_out, pipe) in [
        (true, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        (false, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ] {
        if let Some(mut pipe) = pipe {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((is_out, String::from_utf8_lossy(&buf).into_owned()));
            });
        }
    }
    drop(tx);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout { what: format!("`{what}`"), waited_ms: ms(started.elapsed()) });
            }
            Err(e) => return Err(LabError::io(format!("wait for `{what}`"), e)),
        }
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let drain_until = Instant::now() + Duration::from_secs(2);
    for _ in 0..2 {
        match rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
            Ok((true, s)) => stdout = s,
            Ok((false, s)) => stderr = s,
            Err(_) => break,
        }
    }
    Ok(Output { status, stdout, stderr })
}

/// `run`, and a non-zero exit is an error carrying stderr.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<Output, LabError> {
    let what = describe(cmd);
    let out = run(cmd, timeout)?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: what,
            status: out.status.to_string(),
            stderr: format!("{}{}", out.stderr.trim_end(), out.stdout.trim_end()),
        });
    }
    Ok(out)
}

/// A plain command helper: `program args...`.
pub fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Have `cmd`'s child SIGKILLed when the thread that spawns it ends (the test thread, which
/// outlives the child's handle), so a killed test leaves no busy-polling testpmd or plugin.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether `pid` is a running process. A zombie counts as dead: detached OVS daemons are
/// reparented to PID 1, which on some machines (this project's VMs) reaps only about once a
/// second, so `kill(pid, 0)` would report an exited daemon alive for up to a second.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if !matches!(state, Some("Z") | Some("X") | None) {
        return true;
    }
    // A SIGKILLed multi-threaded daemon (ovs-vswitchd with its DPDK threads) shows a zombie
    // leader while its other threads are still exiting and its pidfile lock is still held: a
    // restart then fails with "already running". It is dead once the leader is its only task.
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count() > 1).unwrap_or(false)
}

/// The process's command line, arguments joined with spaces (empty if it is gone).
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| b.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Send `sig` to exactly `pid`; refuses pid <= 1 (0 and -1 would signal groups or everything).
pub fn signal(pid: i32, sig: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a positive pid has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Poll until `pid` is dead or `timeout` passes; returns whether it died.
pub fn wait_dead(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pid_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// A pid from an OVS `--pidfile`.
pub fn read_pidfile(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok().filter(|p| *p > 1)
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A short suffix unique on this machine for a while: pid, a per-process counter, clock bits.
/// Callers still create their objects exclusively and retry on a collision.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{:x}{:x}{:03x}", std::process::id(), n, (t >> 10) & 0xfff)
}

/// Keep `[a-z0-9]` (lower-cased) and turn the rest into `-`, at most `max` characters: names
/// end up in netns names, DPDK prefixes and socket paths (108-byte `sun_path`).
pub fn sanitize(name: &str, max: usize) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(max).collect();
    if s.is_empty() {
        "lab".into()
    } else {
        s
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
