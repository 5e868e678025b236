//! POSIX ACLs for a socket directory: the numeric uids a setting lists, checked; the two ACLs a
//! directory gets for them, encoded in the kernel's xattr format; and writing them with
//! `fsetxattr` on a held directory descriptor. Never shells out to `setfacl`, never acts on a path.
//!
//! The format (`include/uapi/linux/posix_acl_xattr.h`): a little-endian `u32` version (2), then
//! 8-byte entries `{tag: u16, perm: u16, id: u32}` sorted by tag, then id. An ACL with named
//! entries must also hold `USER_OBJ`, `GROUP_OBJ`, `MASK` and `OTHER`; the kernel refuses it
//! (`EINVAL`) otherwise. A named entry is effective only as far as the mask allows.
//!
//! What a default ACL can and cannot do for a unix socket (measured on Linux 6.18, ext4 and
//! tmpfs, and read in `net/unix/af_unix.c`): `bind(2)` applies the binder's umask to the mode
//! itself (`unix_bind_bsd`), before the filesystem applies the parent's default ACL, and the
//! default ACL's `MASK` is then cut to the umasked group bits. A socket bound with umask 022 gets
//! mask `r-x`, so a listed user's `rw-` is effectively `r--` and `connect(2)` is `EACCES`; with
//! umask 002 or 007 (libvirt starts QEMU with 002) the mask stays `rwx` and the user connects.

use std::io;
use std::os::fd::RawFd;

/// The xattr holding a file's access ACL.
pub const ACCESS_XATTR: &str = "system.posix_acl_access";
/// The xattr holding a directory's default ACL (what files created in it start with).
pub const DEFAULT_XATTR: &str = "system.posix_acl_default";
/// `POSIX_ACL_XATTR_VERSION`.
pub const VERSION: u32 = 2;

pub const USER_OBJ: u16 = 0x01;
pub const USER: u16 = 0x02;
pub const GROUP_OBJ: u16 = 0x04;
pub const GROUP: u16 = 0x08;
pub const MASK: u16 = 0x10;
pub const OTHER: u16 = 0x20;
/// The id of an entry that names no one (`ACL_UNDEFINED_ID`).
pub const UNDEFINED_ID: u32 = u32::MAX;

pub const READ: u16 = 4;
pub const WRITE: u16 = 2;
pub const EXECUTE: u16 = 1;

/// What a listed user gets on the directory itself: search, to reach the socket by its path.
/// Not read (nothing needs to list it) and not write (a client must not replace the server's
/// socket).
pub const DIR_PERM: u16 = EXECUTE;
/// What a listed user gets on every file created in the directory: `connect(2)` needs write
/// permission on the socket; read is what `setfacl u:<uid>:rw` users expect and grants nothing
/// more on a socket.
pub const FILE_PERM: u16 = READ | WRITE;

/// The most uids a setting may list: a few OVS users, not a user database. Each is two entries
/// (access and default), far below what any filesystem stores in one xattr.
pub const MAX_USERS: usize = 32;

/// One ACL entry. The field order is the kernel's sort order (tag, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub tag: u16,
    pub id: u32,
    pub perm: u16,
}

/// An ACL, its entries in the order the kernel requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl(Vec<Entry>);

impl Acl {
    /// The ACL a file of `mode` has with `named` users added (uid, perm): the owner, group and
    /// other entries from the mode's bits, and the mask as the union of the group entry and
    /// every named entry, so each named entry is effective as given and the owning group gets
    /// nothing it did not have.
    pub fn from_mode(mode: u32, named: &[(u32, u16)]) -> Acl {
        let bits = |shift: u32| ((mode >> shift) & 0o7) as u16;
        let group = bits(3);
        let mask = named.iter().fold(group, |m, (_, p)| m | (p & 0o7));
        let mut entries = vec![
            Entry { tag: USER_OBJ, id: UNDEFINED_ID, perm: bits(6) },
            Entry { tag: GROUP_OBJ, id: UNDEFINED_ID, perm: group },
            Entry { tag: MASK, id: UNDEFINED_ID, perm: mask },
            Entry { tag: OTHER, id: UNDEFINED_ID, perm: bits(0) },
        ];
        entries.extend(named.iter().map(|(uid, perm)| Entry { tag: USER, id: *uid, perm: perm & 0o7 }));
        entries.sort();
        Acl(entries)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    /// The `system.posix_acl_*` value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.0.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            out.extend_from_slice(&e.tag.to_le_bytes());
            out.extend_from_slice(&e.perm.to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }
}

/// The two ACLs a socket dir of `mode` gets for `uids`: the access ACL (each may search the
/// dir) and the default ACL (each may read and write every file created in it, within the
/// creator's umask: see the module header). The default's owner, group and other entries are
/// the dir's own bits, so a file made there gets no more than the dir grants.
pub fn for_socket_dir(mode: u32, uids: &[u32]) -> (Acl, Acl) {
    let named = |perm: u16| uids.iter().map(|u| (*u, perm)).collect::<Vec<_>>();
    (Acl::from_mode(mode, &named(DIR_PERM)), Acl::from_mode(mode, &named(FILE_PERM)))
}

/// Write `acl` as the xattr `name` of the directory open at `fd`. The descriptor must be a
/// real open one (`O_RDONLY | O_DIRECTORY`): `fsetxattr` on an `O_PATH` descriptor is `EBADF`.
pub fn write(fd: RawFd, name: &str, acl: &Acl) -> io::Result<()> {
    let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let value = acl.encode();
    // SAFETY: a valid descriptor, a NUL-terminated name, `value` readable for its length.
    let rc = unsafe { libc::fsetxattr(fd, cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The filesystem type of the file open at `fd`, by name where it is a common one, for a
/// message that tells an operator where ACLs are missing.
pub fn filesystem_name(fd: RawFd) -> String {
    // SAFETY: `st` is plain data the kernel fills; `fd` is a valid descriptor.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return "of unknown type".into();
    }
    // f_type is signed on some targets; the magic numbers are 32-bit.
    let magic = st.f_type as u32;
    let name = match magic {
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0xef53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x794c_7630 => "overlayfs",
        0x6969 => "nfs",
        0x4d44 => "vfat",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x7371_7368 => "squashfs",
        _ => return format!("of type 0x{magic:x}"),
    };
    format!("{name} (0x{magic:x})")
}

/// Why a uid in a list was refused: each says what to write instead.
pub const WHY_FORMAT: &str = "numeric uids from 1 to 4294967294, digits only without a leading 0 \
     (a TOML array such as [4242], ':'-separated in the environment)";
pub const WHY_NAME: &str = "numeric uids: names are not looked up, because the DRA plugin runs in an image \
     without the node's /etc/passwd; give the number `id -u <name>` prints on the node";
pub const WHY_RANGE: &str = "uids from 1 to 4294967294 (4294967295 is (uid_t)-1, which names no user)";
pub const WHY_ROOT: &str =
    "uids other than 0: root passes every permission check without an ACL (remove it from the list)";
pub const WHY_DUPLICATE: &str = "each uid once (this one is listed twice)";
pub const WHY_TOO_MANY: &str = "at most 32 uids (a few OVS users, not a user database)";

/// One uid as written: `Err` says why not (one of the `WHY_*` texts).
pub fn parse_uid(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        let name_like = s.bytes().any(|b| b.is_ascii_alphabetic())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        return Err(if name_like { WHY_NAME } else { WHY_FORMAT });
    }
    if s == "0" {
        return Err(WHY_ROOT);
    }
    if s.starts_with('0') {
        // "0107": octal to some readers, decimal to others. Neither guess is safe for an ACL.
        return Err(WHY_FORMAT);
    }
    match s.parse::<u32>() {
        Ok(n) if n != UNDEFINED_ID => Ok(n),
        _ => Err(WHY_RANGE),
    }
}

/// A list of uids as written: each checked, none twice, at most `MAX_USERS`. `Err` holds the
/// item at fault (shown as given) and why.
pub fn parse_uids<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<u32>, (String, &'static str)> {
    let mut out: Vec<u32> = Vec::new();
    for item in items {
        let uid = parse_uid(item).map_err(|why| (item.to_owned(), why))?;
        if out.contains(&uid) {
            return Err((item.to_owned(), WHY_DUPLICATE));
        }
        if out.len() == MAX_USERS {
            return Err((item.to_owned(), WHY_TOO_MANY));
        }
        out.push(uid);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u16, id: u32, perm: u16) -> Entry {
        Entry { tag, id, perm }
    }

    #[test]
    fn the_encoding_is_the_kernels_byte_for_byte() {
        // A 2770 dir with user 4242 given search: version 2, then user::rwx, user:4242:--x,
        // group::rwx, mask::rwx, other::---, each {tag, perm, id} little-endian.
        let acl = Acl::from_mode(0o2770, &[(4242, EXECUTE)]);
        let expected: Vec<u8> = [
            &[2, 0, 0, 0][..],
            &[0x01, 0, 7, 0, 0xff, 0xff, 0xff, 0xff],
            &[0x02, 0, 1, 0, 0x92, 0x10, 0, 0],
            &[0x04, 0, 7, 0, 0xff, 0xff, 0xff, 0xff],
            &[0x10, 0, 7, 0, 0xff, 0xff, 0xff, 0xff],
            &[0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        assert_eq!(acl.encode(), expected);
    }

    #[test]
    fn entries_sort_by_tag_then_id_whatever_the_list_order() {
        let acl = Acl::from_mode(0o750, &[(5000, FILE_PERM), (107, FILE_PERM), (4242, FILE_PERM)]);
        let order: Vec<(u16, u32)> = acl.entries().iter().map(|x| (x.tag, x.id)).collect();
        assert_eq!(
            order,
            [
                (USER_OBJ, UNDEFINED_ID),
                (USER, 107),
                (USER, 4242),
                (USER, 5000),
                (GROUP_OBJ, UNDEFINED_ID),
                (MASK, UNDEFINED_ID),
                (OTHER, UNDEFINED_ID)
            ]
        );
    }

    #[test]
    fn the_mask_lets_named_entries_through_and_the_group_keeps_its_bits() {
        // Group r-x, a named rw-: the mask must be rwx for rw- to be effective; the owning
        // group's own entry stays r-x, so it gains nothing (its effective rights are GROUP_OBJ
        // AND MASK).
        let acl = Acl::from_mode(0o2750, &[(4242, FILE_PERM)]);
        assert!(acl.entries().contains(&e(MASK, UNDEFINED_ID, 0o7)), "{acl:?}");
        assert!(acl.entries().contains(&e(GROUP_OBJ, UNDEFINED_ID, 0o5)), "{acl:?}");
        // No group bits and a search-only user: the mask is exactly --x.
        let acl = Acl::from_mode(0o700, &[(4242, EXECUTE)]);
        assert!(acl.entries().contains(&e(MASK, UNDEFINED_ID, 0o1)), "{acl:?}");
        // Nothing named: the mask is the group bits (the ACL equals the mode).
        let acl = Acl::from_mode(0o750, &[]);
        assert!(acl.entries().contains(&e(MASK, UNDEFINED_ID, 0o5)), "{acl:?}");
        // Stray high bits of a perm never reach the kernel.
        let acl = Acl::from_mode(0o700, &[(1, 0o17)]);
        assert!(acl.entries().contains(&e(USER, 1, 0o7)), "{acl:?}");
    }

    #[test]
    fn a_socket_dir_gets_search_on_itself_and_rw_on_what_is_created_in_it() {
        let (access, default) = for_socket_dir(0o2770, &[4242, 1000]);
        let named =
            |acl: &Acl| acl.entries().iter().filter(|x| x.tag == USER).map(|x| (x.id, x.perm)).collect::<Vec<_>>();
        assert_eq!(named(&access), [(1000, EXECUTE), (4242, EXECUTE)]);
        assert_eq!(named(&default), [(1000, READ | WRITE), (4242, READ | WRITE)]);
        for acl in [&access, &default] {
            assert!(acl.entries().contains(&e(OTHER, UNDEFINED_ID, 0)), "others get nothing: {acl:?}");
            assert!(acl.entries().contains(&e(USER_OBJ, UNDEFINED_ID, 0o7)), "{acl:?}");
        }
    }

    #[test]
    fn uids_are_numbers_and_every_refusal_says_what_to_write() {
        assert_eq!(parse_uids(["4242", "1000", "107"]), Ok(vec![4242, 1000, 107]));
        assert_eq!(parse_uids([]), Ok(vec![]));
        assert_eq!(parse_uid("4294967294"), Ok(4_294_967_294));
        for (bad, why) in [
            ("0", WHY_ROOT),
            ("-1", WHY_FORMAT),
            ("+4242", WHY_FORMAT),
            (" 4242", WHY_FORMAT),
            ("4242 ", WHY_FORMAT),
            ("", WHY_FORMAT),
            ("0107", WHY_FORMAT),
            ("1e3", WHY_NAME),
            ("4294967295", WHY_RANGE),
            ("4294967296", WHY_RANGE),
            ("99999999999999999999999", WHY_RANGE),
            ("openvswitch", WHY_NAME),
            ("../etc/passwd", WHY_FORMAT),
            ("ovs/user", WHY_FORMAT),
            ("42\u{0}42", WHY_FORMAT),
            ("4242\n", WHY_FORMAT),
            ("\u{661}\u{662}", WHY_FORMAT),
        ] {
            assert_eq!(parse_uid(bad), Err(why), "{bad:?}");
        }
        assert_eq!(parse_uids(["4242", "107", "4242"]), Err(("4242".to_string(), WHY_DUPLICATE)));
        let many: Vec<String> = (1..=MAX_USERS as u32 + 1).map(|n| n.to_string()).collect();
        assert_eq!(parse_uids(many.iter().map(String::as_str)), Err(("33".to_string(), WHY_TOO_MANY)));
        // Every refusal names the remedy, not only the fault.
        for why in [WHY_FORMAT, WHY_NAME, WHY_RANGE, WHY_ROOT, WHY_DUPLICATE, WHY_TOO_MANY] {
            assert!(why.contains("uid"), "{why}");
        }
    }
}
