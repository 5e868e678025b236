//! The one fault-injection facility (DESIGN.md §3.7), shared by the executor, the recording fake
//! backend and the real backends. `USERSPACE_CNI_FAILPOINT=<verb>:<step>:<phase>:<action>` with
//! phase `before|during|after|undo` and action `error|kill|pause`; several may be joined with `,`.
//! `pause` lets a test change the world between two syscalls of ours (a pod swapping an entry):
//! the process creates `$USERSPACE_CNI_FAILPOINT_SYNC/<verb>-<step>-<phase>.paused`, waits (at
//! most 30 s) for `<same>.go` to appear, then goes on.
//! Compiled in only with the `failpoints` feature: release builds carry none of it.

use crate::error::CniError;
use crate::Verb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Before,
    During,
    After,
    /// Before the step's undo runs (tests an undo that itself fails).
    Undo,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
            Phase::Undo => "undo",
        }
    }
}

#[cfg(feature = "failpoints")]
mod imp {
    use super::*;
    use std::sync::{Mutex, OnceLock};

    pub const ENV: &str = "USERSPACE_CNI_FAILPOINT";
    pub const SYNC_ENV: &str = "USERSPACE_CNI_FAILPOINT_SYNC";

    /// Announce the pause and wait, bounded, for the test's go-ahead.
    fn pause(verb: Verb, step: &str, phase: Phase) {
        let Ok(dir) = std::env::var(SYNC_ENV) else { return };
        let stem = format!("{}/{}-{}-{}", dir, verb.as_str(), step, phase.as_str());
        let _ = std::fs::write(format!("{stem}.paused"), b"");
        let go = std::path::PathBuf::from(format!("{stem}.go"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !go.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    static VERB: OnceLock<Verb> = OnceLock::new();
    /// A failure injected in-process (the conformance kit): `(step, phase)`, any verb.
    static INJECTED: Mutex<Option<(String, Phase)>> = Mutex::new(None);

    pub fn inject(at: Option<(&str, Phase)>) {
        let mut g = INJECTED.lock().unwrap_or_else(|p| p.into_inner());
        *g = at.map(|(s, p)| (s.to_owned(), p));
    }

    fn injected(step: &str, phase: Phase) -> bool {
        let g = INJECTED.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().is_some_and(|(s, p)| s == step && *p == phase)
    }

    pub fn set_verb(verb: Verb) {
        let _ = VERB.set(verb);
    }

    pub fn hit(step: &str, phase: Phase) -> Result<(), CniError> {
        if injected(step, phase) {
            return Err(CniError::io(format!("failpoint {step}:{}: injected error", phase.as_str())));
        }
        let Some(verb) = VERB.get() else { return Ok(()) };
        let Ok(spec) = std::env::var(ENV) else { return Ok(()) };
        for one in spec.split(',') {
            let parts: Vec<&str> = one.trim().split(':').collect();
            if parts.len() != 4 {
                continue;
            }
            if !parts[0].eq_ignore_ascii_case(verb.as_str()) || parts[1] != step || parts[2] != phase.as_str() {
                continue;
            }
            match parts[3] {
                "pause" => {
                    pause(*verb, step, phase);
                    continue;
                }
                "kill" => {
                    tracing::warn!(step, phase = phase.as_str(), "failpoint: SIGKILL");
                    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
                    unsafe {
                        libc::kill(libc::getpid(), libc::SIGKILL);
                    }
                    // SIGKILL cannot be caught; this is never reached.
                    std::process::abort();
                }
                _ => {
                    return Err(CniError::io(format!(
                        "failpoint {}:{}:{}: injected error",
                        verb.as_str(),
                        step,
                        phase.as_str()
                    )))
                }
            }
        }
        Ok(())
    }
}

#[cfg(not(feature = "failpoints"))]
mod imp {
    use super::*;

    #[inline(always)]
    pub fn set_verb(_verb: Verb) {}

    #[inline(always)]
    pub fn inject(_at: Option<(&str, Phase)>) {}

    #[inline(always)]
    pub fn hit(_step: &str, _phase: Phase) -> Result<(), CniError> {
        Ok(())
    }
}

/// Record which verb this process runs, so failpoints can match on it.
pub fn set_verb(verb: Verb) {
    imp::set_verb(verb)
}

/// A failpoint: returns an injected error, kills the process, or (normally) does nothing.
pub fn hit(step: &str, phase: Phase) -> Result<(), CniError> {
    imp::hit(step, phase)
}

/// Make `hit(step, phase)` return an injected error in this process, whatever the verb, until
/// replaced or cleared with `None` (the conformance kit; the environment variable is the way to
/// reach another process). Without the `failpoints` feature it does nothing.
pub fn inject(at: Option<(&str, Phase)>) {
    imp::inject(at)
}

/// Whether this build carries failpoints (CI checks the release binary does not).
pub const ENABLED: bool = cfg!(feature = "failpoints");
