//! Is an attachment's network namespace still there? Alive, provably gone, or unverifiable; a
//! missing or unreadable namespace directory is never taken as "every pod is gone".

use crate::steps::netns::is_netns;
use serde::Serialize;
use std::io::ErrorKind;
use std::path::Path;

/// What the reconciler knows about a recorded `CNI_NETNS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum NetnsState {
    /// Still a network namespace (nsfs).
    Alive,
    /// The directory that held it is there and readable, and the file is gone.
    Gone,
    /// Cannot tell, and so must not reap: why.
    Unverifiable(String),
}

impl NetnsState {
    pub fn as_str(&self) -> &'static str {
        match self {
            NetnsState::Alive => "alive",
            NetnsState::Gone => "gone",
            NetnsState::Unverifiable(_) => "unknown",
        }
    }
}

/// Probe a recorded netns path.
///
/// - `/proc/<pid>/ns/net`: gone when procfs is mounted (`/proc/self` exists) and the path is not.
/// - anything else (`/run/netns/<name>`, `/var/run/netns/cni-…`): gone only when its directory
///   exists, can be listed, and no longer holds the file. A directory that is missing or cannot
///   be read is what a reconciler container without the host's `/run/netns` mount sees: every
///   pod would look dead.
/// - a file that exists but is not nsfs is unverifiable too: runtimes unmount *and* unlink, so
///   this is what a mount that did not propagate into our mount namespace looks like.
pub fn probe(netns: Option<&str>) -> NetnsState {
    let Some(netns) = netns else {
        return NetnsState::Unverifiable("the record names no CNI_NETNS".into());
    };
    let path = Path::new(netns);
    if !path.is_absolute() {
        return NetnsState::Unverifiable(format!("CNI_NETNS {netns} is not an absolute path"));
    }
    if path.starts_with("/proc") {
        if !Path::new("/proc/self").exists() {
            return NetnsState::Unverifiable("/proc is not mounted here".into());
        }
    } else {
        let Some(dir) = path.parent() else {
            return NetnsState::Unverifiable(format!("{netns} has no parent directory"));
        };
        match std::fs::read_dir(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return NetnsState::Unverifiable(format!(
                    "the netns directory {} does not exist here (is the host's {} mounted into this container?)",
                    dir.display(),
                    dir.display()
                ))
            }
            Err(e) => {
                return NetnsState::Unverifiable(format!("cannot list the netns directory {}: {e}", dir.display()))
            }
        }
    }
    match is_netns(path) {
        Ok(true) => NetnsState::Alive,
        Ok(false) => NetnsState::Unverifiable(format!(
            "{netns} exists but is not a network namespace (a mount that did not propagate here?)"
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => NetnsState::Gone,
        Err(e) => NetnsState::Unverifiable(format!("cannot inspect {netns}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_is_alive() {
        let me = format!("/proc/{}/ns/net", std::process::id());
        assert_eq!(probe(Some(&me)), NetnsState::Alive);
    }

    #[test]
    fn a_missing_file_in_an_existing_dir_is_gone() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("cni-0000");
        assert_eq!(probe(p.to_str()), NetnsState::Gone);
    }

    #[test]
    fn a_missing_dir_is_never_gone() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("netns-not-mounted").join("cni-0000");
        assert!(matches!(probe(p.to_str()), NetnsState::Unverifiable(r) if r.contains("does not exist")));
    }

    #[test]
    fn a_plain_file_is_not_proof_of_anything() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("cni-0000");
        std::fs::write(&p, b"").expect("file");
        assert!(matches!(probe(p.to_str()), NetnsState::Unverifiable(_)));
    }

    #[test]
    fn a_dead_process_namespace_is_gone() {
        // pid_max is at most 2^22: this pid cannot exist.
        assert_eq!(probe(Some("/proc/99999999/ns/net")), NetnsState::Gone);
        assert!(matches!(probe(None), NetnsState::Unverifiable(_)));
        assert!(matches!(probe(Some("run/netns/x")), NetnsState::Unverifiable(_)));
    }
}
