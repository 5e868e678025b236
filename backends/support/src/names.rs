//! Validators for names and paths that come from a network config or the runtime (DESIGN.md §3.5),
//! shared by the config parser and the backends. Pure functions: they never touch the filesystem.

use crate::confine::{confine, ConfineError, Confined};
use std::path::{Component, Path, PathBuf};
use userspace_cni_api::{codes, CniError};

/// Longest file name most Linux filesystems accept (NAME_MAX).
pub const MAX_FILE_NAME: usize = 255;

/// `sizeof(sockaddr_un.sun_path)` on Linux: the path plus its terminating NUL must fit.
pub const SUN_PATH_LEN: usize = 108;

fn invalid(msg: String) -> CniError {
    CniError::new(codes::INVALID_NETCONF, msg)
}

/// The one character set every name we put into a path or a dataplane object is drawn from.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The first character outside `[A-Za-z0-9_.-]`, for the error message.
fn first_bad_char(value: &str) -> Option<char> {
    value.chars().find(|c| !is_name_char(*c))
}

/// A single file name (e.g. `vhost.socketfile`): `[A-Za-z0-9_.-]+`, at most 255 bytes, not `.` or
/// `..`. The character set excludes `/` and NUL, so the name can never leave its directory.
pub fn validate_file_name(key: &str, value: &str) -> Result<(), CniError> {
    if value.is_empty() {
        return Err(invalid(format!("{key} is empty; expected a file name of [A-Za-z0-9_.-], at most 255 bytes")));
    }
    if value == "." || value == ".." {
        return Err(invalid(format!("{key} {value:?} is not a file name; use a name like \"vhost-net1.sock\"")));
    }
    if value.len() > MAX_FILE_NAME {
        return Err(invalid(format!(
            "{key} is {} bytes long; a file name may have at most {MAX_FILE_NAME} bytes",
            value.len()
        )));
    }
    if let Some(c) = first_bad_char(value) {
        return Err(invalid(format!(
            "{key} {value:?} contains {c:?}; a file name may only contain [A-Za-z0-9_.-] (no '/')"
        )));
    }
    Ok(())
}

/// A dataplane object name (OVS bridge or port, VPP tag): `[A-Za-z0-9_.-]`, non-empty, at most
/// `max_len` bytes. The caller passes its own limit (Linux netdev names are 15 bytes).
pub fn validate_object_name(key: &str, value: &str, max_len: usize) -> Result<(), CniError> {
    if value.is_empty() {
        return Err(invalid(format!("{key} is empty; expected a name of [A-Za-z0-9_.-], at most {max_len} bytes")));
    }
    if value.len() > max_len {
        return Err(invalid(format!(
            "{key} {value:?} is {} bytes long; at most {max_len} bytes are allowed",
            value.len()
        )));
    }
    if let Some(c) = first_bad_char(value) {
        return Err(invalid(format!("{key} {value:?} contains {c:?}; only [A-Za-z0-9_.-] is allowed")));
    }
    Ok(())
}

/// Whether `path` fits `sun_path` with its NUL: the one rule every socket path check applies
/// (each front-end words its refusal for what its user can shorten).
pub fn fits_sun_path(path: &Path) -> bool {
    path.as_os_str().len() < SUN_PATH_LEN
}

/// The final path of a unix socket must fit `sun_path` (107 bytes plus the NUL); a longer path
/// fails at bind/connect time with an error that does not say why, so reject it up front.
pub fn check_sun_path(key: &str, path: &Path) -> Result<(), CniError> {
    let len = path.as_os_str().len();
    if !fits_sun_path(path) {
        return Err(invalid(format!(
            "{key}: socket path {} is {len} bytes long; a unix socket path may have at most {} bytes \
             (sun_path is {SUN_PATH_LEN} bytes with the NUL): choose a shorter sharedDir or socketfile",
            path.display(),
            SUN_PATH_LEN - 1
        )));
    }
    Ok(())
}

/// Longest network name accepted (a DNS name's limit; libcni sets none, but names end up in
/// ownership tags and record files).
pub const MAX_NETWORK_NAME: usize = 253;

/// A network config's `name`: libcni's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), at most 253 bytes.
/// GC and ownership tags match on it, so it must be plain.
pub fn validate_network_name(key: &str, value: &str) -> Result<(), CniError> {
    let accepted = "a name of [A-Za-z0-9_.-] starting with a letter or digit, at most 253 bytes";
    if value.is_empty() {
        return Err(invalid(format!("{key} is empty; expected {accepted}")));
    }
    if value.len() > MAX_NETWORK_NAME {
        return Err(invalid(format!("{key} is {} bytes long; expected {accepted}", value.len())));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(format!("{key} {value:?} must start with a letter or digit; expected {accepted}")));
    }
    if let Some(c) = first_bad_char(value) {
        return Err(invalid(format!("{key} {value:?} contains {c:?}; expected {accepted}")));
    }
    Ok(())
}

/// A MAC address as `xx:xx:xx:xx:xx:xx` (or with `-`), returned in lower case with `:`. Group
/// (multicast) and all-zero addresses are rejected: neither can be an interface's address.
pub fn validate_mac(key: &str, value: &str) -> Result<String, CniError> {
    let bad =
        || invalid(format!("{key} {value:?} is not a MAC address; expected six hex octets like \"02:00:00:00:00:01\""));
    let sep = if value.contains(':') { ':' } else { '-' };
    let mut octets = [0u8; 6];
    let mut n = 0;
    for part in value.split(sep) {
        // from_str_radix alone would accept a sign ("+2"), so check the digits first.
        if n == 6 || part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        octets[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        n += 1;
    }
    if n != 6 {
        return Err(bad());
    }
    if octets[0] & 1 == 1 {
        return Err(invalid(format!(
            "{key} {value:?} is a multicast (group) address; an interface needs a unicast MAC \
             (the lowest bit of the first octet clear, e.g. \"02:00:00:00:00:01\")"
        )));
    }
    if octets == [0u8; 6] {
        return Err(invalid(format!("{key} {value:?} is the all-zero address; give a unicast MAC")));
    }
    Ok(octets.iter().map(|o| format!("{o:02x}")).collect::<Vec<_>>().join(":"))
}

/// `path` without `.` components and duplicate slashes, purely lexically (symlinks are not
/// resolved: that is the job of the code that opens the path, with `O_NOFOLLOW`). `..` is kept,
/// because removing it lexically would be wrong in the presence of symlinks.
pub fn lexical_normal(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// A path given by a config (e.g. `sharedDir`) must be absolute, contain no `..` and no NUL, and
/// lie under one of `roots` (the node setting `setting`): a namespace-scoped NAD author must not
/// make root write anywhere on the node (docs/security.md). A path equal to a root is under it.
/// This decides membership only; the path is then opened below its root without following
/// symlinks (`confine`).
pub fn confine_key(key: &str, path: &Path, roots: &[PathBuf], setting: &str) -> Result<Confined, CniError> {
    let shown = path.display();
    confine(path, roots).map_err(|e| {
        let hint = match e {
            ConfineError::Outside => format!(
                "; allowed roots are {} (node setting {setting}, USERSPACE_CNI_{})",
                show_roots(roots),
                setting.to_ascii_uppercase()
            ),
            _ => format!("; expected an absolute path under {}", show_roots(roots)),
        };
        invalid(format!("{key} {shown:?} {e}{hint}"))
    })
}

/// A path given by a config that must be one of an operator's exact files (`kubeconfig`).
pub fn allow_listed(key: &str, path: &Path, files: &[PathBuf], setting: &str) -> Result<(), CniError> {
    let want = lexical_normal(path);
    let canon = std::fs::canonicalize(path).ok();
    let listed = files.iter().any(|f| {
        lexical_normal(f) == want || canon.as_ref().is_some_and(|c| std::fs::canonicalize(f).is_ok_and(|g| g == *c))
    });
    if path.is_absolute() && listed {
        return Ok(());
    }
    Err(invalid(format!(
        "{key} {:?} is not one of the kubeconfigs this node allows ({}): a network config may only name a \
         kubeconfig the operator listed in the node setting {setting} (USERSPACE_CNI_{})",
        path.display(),
        show_roots(files),
        setting.to_ascii_uppercase()
    )))
}

fn show_roots(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        return "(none configured)".to_string();
    }
    roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_accept_the_name_charset() {
        for ok in ["a", "0958c8871b32-net1", "memif-0958c8871b32-net1.sock", "_x.y-z", "..."] {
            assert!(validate_file_name("vhost.socketfile", ok).is_ok(), "{ok} should be accepted");
        }
        let max = "a".repeat(255);
        assert!(validate_file_name("k", &max).is_ok());
    }

    #[test]
    fn file_names_reject_traversal_separators_and_odd_bytes() {
        let long = "a".repeat(256);
        for bad in ["", ".", "..", "a/b", "/etc", "../x", "a b", "a\0b", "é", "a:b", long.as_str()] {
            let err = validate_file_name("vhost.socketfile", bad).expect_err(bad);
            assert_eq!(err.code, codes::INVALID_NETCONF, "{bad:?}: {err}");
            assert!(err.msg.contains("vhost.socketfile"), "message must name the key: {err}");
        }
    }

    #[test]
    fn object_names_respect_the_callers_limit() {
        assert!(validate_object_name("bridge.bridgeName", "br-4", 15).is_ok());
        assert!(validate_object_name("bridge.bridgeName", "abcdefghijklmno", 15).is_ok());
        let err = validate_object_name("bridge.bridgeName", "abcdefghijklmnop", 15).unwrap_err();
        assert!(err.msg.contains("16 bytes") && err.msg.contains("15"), "{err}");
        for bad in ["", "br 0", "br/0", "br;rm"] {
            assert_eq!(validate_object_name("k", bad, 15).unwrap_err().code, codes::INVALID_NETCONF, "{bad:?}");
        }
    }

    #[test]
    fn network_names_follow_libcni() {
        for ok in ["userspace-ovs-net-1", "a", "0net", "net_1.x-y", &"n".repeat(253)] {
            assert!(validate_network_name("name", ok).is_ok(), "{ok} should be accepted");
        }
        for bad in ["", "-net", ".net", "_net", "net/1", "net 1", "ne\nt", &"n".repeat(254)] {
            let err = validate_network_name("name", bad).expect_err(bad);
            assert_eq!(err.code, codes::INVALID_NETCONF);
            assert!(err.msg.starts_with("name"), "{err}");
        }
    }

    #[test]
    fn sun_path_allows_107_bytes_and_no_more() {
        let ok = format!("/{}", "a".repeat(106));
        assert_eq!(ok.len(), 107);
        assert!(check_sun_path("socket", Path::new(&ok)).is_ok());
        let long = format!("/{}", "a".repeat(107));
        let err = check_sun_path("socket", Path::new(&long)).unwrap_err();
        assert_eq!(err.code, codes::INVALID_NETCONF);
        assert!(err.msg.contains("108 bytes long") && err.msg.contains("shorter sharedDir"), "{err}");
    }

    #[test]
    fn macs_are_normalised_to_lower_case_colons() {
        assert_eq!(validate_mac("mac", "02:AB:cd:00:00:01").unwrap(), "02:ab:cd:00:00:01");
        assert_eq!(validate_mac("mac", "02-AB-CD-00-00-01").unwrap(), "02:ab:cd:00:00:01");
    }

    #[test]
    fn macs_reject_malformed_multicast_and_zero() {
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:00:00:00:00:1",
            "02:00:00:00:00:001",
            "02:00:00:00:00:0g",
            "02:00-00:00:00:01",
            "0200.0000.0001",
            "+2:00:00:00:00:01",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ] {
            let err = validate_mac("runtimeConfig.mac", bad).expect_err(bad);
            assert_eq!(err.code, codes::INVALID_NETCONF);
            assert!(err.msg.contains("runtimeConfig.mac"), "{err}");
        }
    }

    #[test]
    fn config_paths_name_the_key_the_roots_and_the_setting() {
        let roots = vec![PathBuf::from("/var/lib/cni/usrspcni")];
        assert!(confine_key("sharedDir", Path::new("/var/lib/cni/usrspcni/x"), &roots, "shared_roots").is_ok());
        for bad in ["", "relative/dir", "/etc", "/var/lib/cni/usrspcni/../../../etc", "/var/lib/cni/usrspcni/a\0b"] {
            let err = confine_key("sharedDir", Path::new(bad), &roots, "shared_roots").expect_err(bad);
            assert_eq!(err.code, codes::INVALID_NETCONF);
            assert!(err.msg.contains("sharedDir") && err.msg.contains("/var/lib/cni/usrspcni"), "{err}");
        }
        let err = confine_key("sharedDir", Path::new("/etc"), &roots, "shared_roots").unwrap_err();
        assert!(err.msg.contains("shared_roots") && err.msg.contains("USERSPACE_CNI_SHARED_ROOTS"), "{err}");
        let err = confine_key("k", Path::new("/x"), &[], "s").unwrap_err();
        assert!(err.msg.contains("none configured"), "{err}");
    }

    #[test]
    fn kubeconfigs_must_be_listed_exactly() {
        let files = vec![PathBuf::from("/etc/userspace-cni/kubeconfig")];
        assert!(
            allow_listed("kubeconfig", Path::new("/etc/userspace-cni//kubeconfig"), &files, "kubeconfig_files").is_ok()
        );
        for bad in ["/etc/userspace-cni", "/etc/userspace-cni/kubeconfig2", "etc/userspace-cni/kubeconfig", "/tmp/kc"] {
            let err = allow_listed("kubeconfig", Path::new(bad), &files, "kubeconfig_files").expect_err(bad);
            assert_eq!(err.code, codes::INVALID_NETCONF);
            assert!(err.msg.contains("kubeconfig_files"), "{err}");
        }
    }
}
