//! State-dir bookkeeping with no record: a lock file or a temp file whose `<cid>_<ifname>.json` is
//! gone (a process killed between taking the lock and creating the record, or after removing it).
//! Removed only under that attachment's lock, never while anyone holds it.

use super::StateDir;
use std::path::PathBuf;
use std::time::Duration;
use userspace_cni_api::{AttachmentId, CniError, ErrorList};

/// The stem `<cid>_<ifname>` of a state file name, if it is an attachment's lock or temp file.
fn stem_of(name: &str) -> Option<&str> {
    if name == "node.lock" {
        return None;
    }
    if let Some(stem) = name.strip_suffix(".lock") {
        return Some(stem);
    }
    name.strip_prefix('.').and_then(|n| n.strip_suffix(".json.tmp"))
}

/// Any id whose file stem is `stem`: the split point does not matter, because every state file
/// of an attachment is named by the stem alone.
fn id_of(stem: &str) -> Option<AttachmentId> {
    let (cid, ifname) = stem.rsplit_once('_')?;
    Some(AttachmentId::new(cid, ifname))
}

/// Remove (or, with `dry_run`, list) lock and temp files that belong to no record.
pub(super) async fn sweep_state_files(state: &StateDir, dry_run: bool) -> (Vec<PathBuf>, ErrorList) {
    let mut removed = Vec::new();
    let mut errors = ErrorList::default();
    let entries = match std::fs::read_dir(state.root()) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (removed, errors),
        Err(e) => {
            errors.push(CniError::io(format!("cannot list state dir {}: {e}", state.root().display())));
            return (removed, errors);
        }
    };
    let mut stems: Vec<String> =
        entries.flatten().filter_map(|e| e.file_name().to_str().and_then(stem_of).map(str::to_owned)).collect();
    stems.sort();
    stems.dedup();
    for stem in stems {
        let Some(id) = id_of(&stem) else { continue };
        if state.record_path(&id).exists() {
            continue;
        }
        let files: Vec<PathBuf> = [format!("{stem}.lock"), format!(".{stem}.json.tmp")]
            .into_iter()
            .map(|n| state.root().join(n))
            .filter(|p| p.exists())
            .collect();
        if dry_run {
            if state.lock_is_free(&id) {
                removed.extend(files);
            }
            continue;
        }
        // Held: an ADD is between its lock and its record, or a DEL is finishing. Theirs.
        let Ok(lock) = state.lock_attachment(&id, Duration::ZERO).await else { continue };
        if state.record_path(&id).exists() {
            continue;
        }
        match state.remove_record(&id) {
            Ok(()) => {
                lock.release_and_remove();
                removed.extend(files);
            }
            Err(e) => errors.push(CniError::from(e).context("removing a stray temp file")),
        }
    }
    (removed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_attachment_lock_and_temp_files_have_stems() {
        assert_eq!(stem_of("abc_net1.lock"), Some("abc_net1"));
        assert_eq!(stem_of(".abc_net1.json.tmp"), Some("abc_net1"));
        assert_eq!(stem_of("node.lock"), None);
        assert_eq!(stem_of("abc_net1.json"), None);
        assert_eq!(stem_of("reconciler.heartbeat"), None);
        let id = id_of("a_b_net_1").expect("id");
        assert_eq!(id.file_stem(), "a_b_net_1");
    }

    #[tokio::test]
    async fn stray_files_go_and_records_keep_theirs() {
        let dir = tempfile::tempdir().expect("tmp");
        let state = StateDir::at(dir.path());
        for f in ["stray_net1.lock", ".stray_net1.json.tmp", "kept_net1.lock", "kept_net1.json", "node.lock"] {
            std::fs::write(dir.path().join(f), b"{}").expect("write");
        }
        let (listed, errors) = sweep_state_files(&state, true).await;
        assert!(errors.is_empty());
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(dir.path().join("stray_net1.lock").exists(), "a dry run removes nothing");
        let (removed, errors) = sweep_state_files(&state, false).await;
        assert!(errors.is_empty());
        assert_eq!(removed.len(), 2, "{removed:?}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, ["kept_net1.json", "kept_net1.lock", "node.lock"]);
    }
}
