//! Small file primitives the publication steps share for files in dirs a pod may write to: a
//! fresh temp file that never follows a planted link. Never renames or replaces anything itself.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Create `tmp` exclusively (`O_EXCL`, `O_NOFOLLOW`: a link planted at that name fails instead of
/// redirecting the write), write `bytes`, fsync. On any failure the half-written file is removed.
/// The caller removes a stale `tmp` first and then renames or links it into place.
pub fn write_exclusive(tmp: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let write = || -> std::io::Result<()> {
        let mut f =
            OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })
}
