//! What the simulated VPP does with each request, modelled on the v26.06 handlers (memif_api.c,
//! memif.c, vhost_user_api.c, l2_api.c, interface_api.c) including their return codes.

use crate::sim::{BridgeDomain, IfKind, Interface, Memif, Shared, State, Vhost};
use serde_json::{json, Map, Value};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

const INVALID_SW_IF_INDEX: i32 = -2;
const NO_SUCH_ENTRY: i32 = -6;
const INVALID_VALUE: i32 = -7;
const SYSCALL_ERROR_1: i32 = -11;
const SYSCALL_ERROR_2: i32 = -12;
const SYSCALL_ERROR_4: i32 = -14;
const ADDRESS_NOT_FOUND_FOR_INTERFACE: i32 = -60;
const SUBIF_ALREADY_EXISTS: i32 = -68;
const INVALID_ARGUMENT: i32 = -73;
const UNEXPECTED_INTF_STATE: i32 = -74;
const IF_ALREADY_EXISTS: i32 = -79;
const ADDRESS_IN_USE: i32 = -105;
const ENTRY_ALREADY_EXISTS: i32 = -116;
const BD_ALREADY_EXISTS: i32 = -119;
const BD_IN_USE: i32 = -120;
const BD_NOT_MODIFIABLE: i32 = -121;
const BD_ID_EXCEED_MAX: i32 = -122;
const DUPLICATE_IF_ADDRESS: i32 = -127;
const L2_BD_ID_MAX: u32 = (1 << 24) - 1;

type Out = Vec<(String, Map<String, Value>)>;

fn u32_of(v: &Map<String, Value>, k: &str) -> u32 {
    v.get(k).and_then(|x| x.as_u64()).unwrap_or(0) as u32
}
fn bool_of(v: &Map<String, Value>, k: &str) -> bool {
    v.get(k).and_then(|x| x.as_bool()).unwrap_or(false)
}
fn str_of<'a>(v: &'a Map<String, Value>, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}
fn bytes_of(v: &Map<String, Value>, k: &str) -> Vec<u8> {
    v.get(k).and_then(|x| x.as_array()).into_iter().flatten().map(|b| b.as_u64().unwrap_or(0) as u8).collect()
}

fn reply(name: &str, rv: i32, extra: Value) -> Out {
    let mut m = extra.as_object().cloned().unwrap_or_default();
    m.insert("retval".into(), json!(rv));
    vec![(format!("{name}_reply"), m)]
}

pub(crate) fn handle(st: &mut State, shared: &Shared, name: &str, req: &Map<String, Value>) -> Out {
    match name {
        // VPP's handler leaves the reply's client_index 0 (REPLY_MACRO2 fills context only).
        "control_ping" => vec![(
            "control_ping_reply".into(),
            json!({"retval": 0, "client_index": 0, "vpe_pid": st.pid}).as_object().cloned().unwrap_or_default(),
        )],
        "show_version" => reply(
            name,
            0,
            json!({"program": "vpe", "version": shared.version, "build_date": "simulated", "build_directory": "/vppsim"}),
        ),
        "get_first_msg_id" => {
            // "<module>_<file crc>": we answer for the modules we know by name only.
            let want = str_of(req, "name");
            let module = want.rsplit_once('_').map(|(m, _)| m).unwrap_or(want);
            let first = shared
                .api
                .modules
                .iter()
                .find(|(m, _)| m == module)
                .and_then(|(_, msgs)| msgs.first())
                .and_then(|n| shared.ids.get(n));
            match first {
                Some(id) => reply(name, 0, json!({"first_msg_id": id})),
                None => reply(name, INVALID_VALUE, json!({})),
            }
        }
        "memif_socket_filename_add_del_v2" => socket_add_del(st, req),
        "memif_socket_filename_dump" => st
            .sockets
            .iter()
            .map(|(id, f)| {
                let m = json!({"socket_id": id, "socket_filename": f});
                ("memif_socket_filename_details".to_string(), m.as_object().cloned().unwrap_or_default())
            })
            .collect(),
        "memif_create_v2" => memif_create(st, req),
        "memif_delete" => {
            let idx = u32_of(req, "sw_if_index");
            if !st.memifs.contains_key(&idx) {
                return reply(name, INVALID_SW_IF_INDEX, json!({}));
            }
            delete_memif(st, idx);
            reply(name, 0, json!({}))
        }
        "memif_dump" => st
            .memifs
            .values()
            .filter_map(|m| {
                let i = st.interfaces.get(&m.sw_if_index)?;
                // send_memif_details reports `mif->run`, the values negotiated with a peer: 1 << 0
                // and 0 until one connects (none ever does here), not what the create asked for.
                let v = json!({
                    "sw_if_index": m.sw_if_index, "hw_addr": i.mac.to_vec(), "id": m.id, "role": m.role,
                    "mode": m.mode, "zero_copy": m.zero_copy, "socket_id": m.socket_id, "ring_size": 1,
                    "buffer_size": 0, "flags": if i.admin_up { 1 } else { 0 }, "if_name": i.name,
                });
                Some(("memif_details".to_string(), v.as_object().cloned().unwrap_or_default()))
            })
            .collect(),
        "sw_interface_set_flags" => {
            let idx = u32_of(req, "sw_if_index");
            match st.interfaces.get_mut(&idx) {
                Some(i) => {
                    i.admin_up = u32_of(req, "flags") & 1 != 0;
                    reply(name, 0, json!({}))
                }
                None => reply(name, INVALID_SW_IF_INDEX, json!({})),
            }
        }
        "sw_interface_tag_add_del" => {
            let idx = u32_of(req, "sw_if_index");
            let Some(i) = st.interfaces.get_mut(&idx) else { return reply(name, INVALID_SW_IF_INDEX, json!({})) };
            if bool_of(req, "is_add") {
                let tag = str_of(req, "tag");
                if tag.is_empty() {
                    return reply(name, INVALID_VALUE, json!({}));
                }
                i.tag = tag.to_owned();
            } else {
                i.tag.clear();
            }
            reply(name, 0, json!({}))
        }
        "sw_interface_dump" => {
            let idx = u32_of(req, "sw_if_index");
            let filter = bool_of(req, "name_filter_valid").then(|| str_of(req, "name_filter").to_owned());
            st.interfaces
                .values()
                .filter(|i| match &filter {
                    Some(f) => i.name.contains(f.as_str()),
                    None => idx == u32::MAX || i.sw_if_index == idx,
                })
                .map(|i| {
                    let dev = match i.kind {
                        IfKind::Local => "local",
                        IfKind::Memif => "memif",
                        IfKind::Vhost => "vhost-user",
                    };
                    let v = json!({
                        "sw_if_index": i.sw_if_index, "sup_sw_if_index": i.sw_if_index, "l2_address": i.mac.to_vec(),
                        "flags": if i.admin_up { 1 } else { 0 }, "type": 0, "link_duplex": 0, "link_speed": 0,
                        "link_mtu": 9000, "mtu": [9000, 0, 0, 0], "interface_name": i.name,
                        "interface_dev_type": dev, "tag": i.tag,
                    });
                    ("sw_interface_details".to_string(), v.as_object().cloned().unwrap_or_default())
                })
                .collect()
        }
        "sw_interface_add_del_address" => address_add_del(st, req),
        "ip_address_dump" => {
            let idx = u32_of(req, "sw_if_index");
            let af = u8::from(bool_of(req, "is_ipv6"));
            st.interfaces
                .get(&idx)
                .map(|i| i.addresses.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|(a, _, _)| *a == af)
                .map(|(a, b, len)| {
                    let v = json!({"sw_if_index": idx, "prefix": {"address": {"af": a, "un": b.to_vec()}, "len": len}});
                    ("ip_address_details".to_string(), v.as_object().cloned().unwrap_or_default())
                })
                .collect()
        }
        "bridge_domain_add_del_v2" => bd_add_del(st, req),
        "bridge_domain_dump" => {
            let id = u32_of(req, "bd_id");
            st.bds
                .values()
                .filter(|b| id == u32::MAX || b.bd_id == id)
                .map(|b| {
                    let members: Vec<Value> =
                        b.members.iter().map(|m| json!({"context": 0, "sw_if_index": m, "shg": 0})).collect();
                    let v = json!({
                        "bd_id": b.bd_id, "flood": b.flood, "uu_flood": b.uu_flood, "forward": b.forward,
                        "learn": b.learn, "arp_term": false, "arp_ufwd": false, "mac_age": 0, "bd_tag": b.tag,
                        "bvi_sw_if_index": u32::MAX, "uu_fwd_sw_if_index": u32::MAX, "sw_if_details": members,
                    });
                    ("bridge_domain_details".to_string(), v.as_object().cloned().unwrap_or_default())
                })
                .collect()
        }
        "sw_interface_set_l2_bridge" => l2_bridge(st, req),
        "create_vhost_user_if_v2" => vhost_create(st, req),
        "delete_vhost_user_if" => {
            let idx = u32_of(req, "sw_if_index");
            let Some(v) = st.vhosts.remove(&idx) else { return reply(name, INVALID_SW_IF_INDEX, json!({})) };
            if st.vhost_listeners.remove(&idx).is_some() {
                // VPP unlinks its server socket when the interface goes.
                let _ = std::fs::remove_file(&v.sock_filename);
            }
            remove_interface(st, idx);
            reply(name, 0, json!({}))
        }
        "sw_interface_vhost_user_dump" => {
            let idx = u32_of(req, "sw_if_index");
            st.vhosts
                .values()
                .filter(|v| idx == u32::MAX || v.sw_if_index == idx)
                .filter_map(|v| {
                    let i = st.interfaces.get(&v.sw_if_index)?;
                    let d = json!({
                        "sw_if_index": v.sw_if_index, "interface_name": i.name, "virtio_net_hdr_sz": 12,
                        "features_first_32": 0, "features_last_32": 0, "is_server": v.is_server,
                        "sock_filename": v.sock_filename, "num_regions": 0, "sock_errno": 0,
                    });
                    Some(("sw_interface_vhost_user_details".to_string(), d.as_object().cloned().unwrap_or_default()))
                })
                .collect()
        }
        // Anything else the table lists but we do not model: VPP would answer; we say unimplemented.
        other if other.ends_with("_dump") => Vec::new(),
        other => reply(other, -9, json!({})),
    }
}

fn new_interface(st: &mut State, name: String, kind: IfKind, tag: String) -> u32 {
    // The last freed index first (VPP's pool), else a new one.
    let idx = st.free_indices.pop().unwrap_or_else(|| {
        st.next_index += 1;
        st.next_index - 1
    });
    let r = st.random();
    let mac = [0x02, 0xfe, (r >> 24) as u8, (r >> 16) as u8, (r >> 8) as u8, r as u8];
    st.interfaces.insert(
        idx,
        Interface { sw_if_index: idx, name, kind, tag, admin_up: false, mac, addresses: Vec::new(), bd: None },
    );
    idx
}

/// Deleting an interface takes it out of its bridge domain and drops its addresses.
fn remove_interface(st: &mut State, idx: u32) {
    if let Some(i) = st.interfaces.remove(&idx) {
        if let Some(bd) = i.bd.and_then(|b| st.bds.get_mut(&b)) {
            bd.members.retain(|m| *m != idx);
        }
        st.free_indices.push(idx);
    }
}

/// `memif_get_unused_socket_id` (memif.c): a step of `random_u32` (x' = 1664525x + 1013904223)
/// from a static seed that starts at 0, then a walk around that value (+0, +1, -2, +3, ...) while
/// the id is taken; ~0 is skipped. The seed keeps the walk's last value for the next call.
fn unused_socket_id(st: &mut State) -> u32 {
    for _ in 0..1 << 10 {
        st.socket_seed = st.socket_seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        for i in 0..1i32 << 10 {
            // seed += (2 * (i % 2) - 1) * i, in C's int arithmetic wrapped into the u32
            st.socket_seed = st.socket_seed.wrapping_add(((2 * (i % 2) - 1) * i) as u32);
            if st.socket_seed == u32::MAX {
                continue;
            }
            if !st.sockets.contains_key(&st.socket_seed) {
                return st.socket_seed;
            }
        }
    }
    u32::MAX
}

/// `memif_socket_filename_add_del_v2` and `memif_socket_filename_add_del` (memif_api.c, memif.c).
fn socket_add_del(st: &mut State, req: &Map<String, Value>) -> Out {
    let name = "memif_socket_filename_add_del_v2";
    let mut id = u32_of(req, "socket_id");
    let is_add = bool_of(req, "is_add");
    let file = str_of(req, "socket_filename").to_owned();
    if id == 0 {
        return reply(name, INVALID_ARGUMENT, json!({"socket_id": id}));
    }
    if is_add && id == u32::MAX {
        id = unused_socket_id(st);
    }
    if id == u32::MAX {
        // "socket id is not specified" (or no unused one was found)
        return reply(name, INVALID_ARGUMENT, json!({"socket_id": id}));
    }
    if !is_add {
        if !st.sockets.contains_key(&id) {
            return reply(name, INVALID_ARGUMENT, json!({"socket_id": id}));
        }
        if st.memifs.values().any(|m| m.socket_id == id) {
            return reply(name, UNEXPECTED_INTF_STATE, json!({"socket_id": id}));
        }
        st.sockets.remove(&id);
        return reply(name, 0, json!({"socket_id": id}));
    }
    if file.is_empty() {
        return reply(name, INVALID_ARGUMENT, json!({"socket_id": id}));
    }
    // An absolute path or a socket prefix is taken as it is: nothing checks that its directory
    // exists (the memif create that listens or connects on it fails later instead). A relative
    // name goes under the runtime dir, whose subdirectories VPP creates.
    let full = if file.starts_with("abstract:") || file.starts_with('/') {
        file
    } else {
        let full = st.runtime_dir.join(&file);
        if let Some(dir) = full.parent() {
            if std::fs::create_dir_all(dir).is_err() {
                return reply(name, SYSCALL_ERROR_1, json!({"socket_id": id}));
            }
        }
        full.display().to_string()
    };
    if let Some(existing) = st.sockets.get(&id) {
        let rv = if *existing == full { 0 } else { ENTRY_ALREADY_EXISTS };
        return reply(name, rv, json!({"socket_id": id}));
    }
    st.sockets.insert(id, full);
    reply(name, 0, json!({"socket_id": id}))
}

/// A listening AF_UNIX socket like clib_socket_init's: a file path, or `abstract:<name>[,netns_name=<ns>]`.
fn listen_on(spec: &str, seqpacket: bool) -> Result<OwnedFd, String> {
    if let Some(rest) = spec.strip_prefix("abstract:") {
        let mut parts = rest.split(',');
        let name = parts.next().unwrap_or("").to_owned();
        let netns = parts.find_map(|p| p.strip_prefix("netns_name=")).map(|n| {
            if n.starts_with('/') {
                n.to_owned()
            } else {
                format!("/var/run/netns/{n}")
            }
        });
        // setns affects only the calling thread: bind in a short-lived one.
        let h = std::thread::spawn(move || -> Result<OwnedFd, String> {
            if let Some(ns) = netns {
                let f = std::fs::File::open(&ns).map_err(|e| format!("open({ns}): {e}"))?;
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid fd we own, affecting this thread only.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(format!("setns({ns}): {}", std::io::Error::last_os_error()));
                }
            }
            bind_raw(&[&[0u8][..], name.as_bytes()].concat(), seqpacket)
        });
        return h.join().map_err(|_| "bind thread panicked".to_string())?;
    }
    bind_raw(spec.as_bytes(), seqpacket)
}

fn bind_raw(path: &[u8], seqpacket: bool) -> Result<OwnedFd, String> {
    let ty = if seqpacket { libc::SOCK_SEQPACKET } else { libc::SOCK_STREAM };
    // SAFETY: plain socket(2); the fd is owned immediately.
    let fd = unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err("path too long".into());
    }
    for (i, b) in path.iter().enumerate() {
        addr.sun_path[i] = *b as libc::c_char;
    }
    let is_abstract = path.first() == Some(&0);
    let len = std::mem::size_of::<libc::sa_family_t>() + path.len() + usize::from(!is_abstract);
    // SAFETY: addr is a valid sockaddr_un and len does not exceed its size.
    let rc = unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len as libc::socklen_t) };
    if rc != 0 {
        return Err(format!("bind: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: listen on the bound socket.
    if unsafe { libc::listen(fd, 5) } != 0 {
        return Err(format!("listen: {}", std::io::Error::last_os_error()));
    }
    Ok(owned)
}

/// `memif_create_v2` (memif_api.c) and `memif_create_if` (memif.c), checks in VPP's order.
fn memif_create(st: &mut State, req: &Map<String, Value>) -> Out {
    let name = "memif_create_v2";
    // The reply carries `args.sw_if_index`: 0 unless the interface got as far as registering.
    let fail = |rv, idx: u32| reply(name, rv, json!({"sw_if_index": idx}));
    let socket_id = u32_of(req, "socket_id");
    let id = u32_of(req, "id");
    let is_master = u32_of(req, "role") == 0;
    let mode = u32_of(req, "mode");
    let mut ring_size = u32_of(req, "ring_size");
    if ring_size == 0 {
        ring_size = 1024;
    }
    if !ring_size.is_power_of_two() {
        return fail(INVALID_ARGUMENT, 0);
    }
    let Some(file) = st.sockets.get(&socket_id).cloned() else { return fail(INVALID_ARGUMENT, 0) };
    let users: Vec<&Memif> = st.memifs.values().filter(|m| m.socket_id == socket_id).collect();
    if let Some(first) = users.first() {
        // A socket file is either a listener or a client, never both; ids are unique on it.
        if (first.role == 0) != is_master || users.iter().any(|m| m.id == id) {
            return fail(SUBIF_ALREADY_EXISTS, 0);
        }
    }
    if mode > 1 {
        // memif_create_if answers "unsupported interface mode" and then runs memif_delete_if on
        // the half-made interface (no hw interface, ref_cnt 0): v26.06 dies with SIGSEGV there.
        st.crashed = Some(format!("memif_create_v2 with mode {mode}: SIGSEGV in memif_delete_if"));
        return Vec::new();
    }
    let first_user = users.is_empty();
    if is_master && first_user && !file.starts_with("abstract:") {
        // clib_socket_init (server): stat() the path; a socket nobody listens on is unlinked,
        // anything else ("File ... already exists", "Active listener") fails the create with
        // SYSCALL_ERROR_4, as does a bind in a missing directory. VPP's own probe is a
        // SOCK_STREAM connect, which a live memif (SOCK_SEQPACKET) listener refuses with
        // EPROTOTYPE, not ECONNREFUSED: that too counts as active.
        if let Ok(m) = std::fs::metadata(&file) {
            let stale = m.file_type().is_socket()
                && matches!(
                    std::os::unix::net::UnixStream::connect(&file),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
                );
            if !stale {
                return fail(SYSCALL_ERROR_4, 0);
            }
            let _ = std::fs::remove_file(&file);
        }
    }
    let listener = if is_master && first_user {
        match listen_on(&file, true) {
            Ok(fd) => Some(fd),
            // The interface was registered and is deleted again: its index was handed out
            // and freed (so the next create gets it back).
            Err(_) => return fail(SYSCALL_ERROR_4, st.free_indices.last().copied().unwrap_or(st.next_index)),
        }
    } else {
        None
    };
    if let Some(fd) = listener {
        st.memif_listeners.insert(socket_id, fd);
    }
    let idx = new_interface(st, format!("memif{socket_id}/{id}"), IfKind::Memif, String::new());
    let mut buffer_size = u32_of(req, "buffer_size") as u16;
    if buffer_size == 0 {
        buffer_size = 2048;
    }
    let role = if is_master { 0 } else { 1 };
    let zero_copy = !is_master && !bool_of(req, "no_zero_copy");
    st.memifs.insert(idx, Memif { sw_if_index: idx, socket_id, id, role, mode, ring_size, buffer_size, zero_copy });
    reply(name, 0, json!({"sw_if_index": idx}))
}

fn delete_memif(st: &mut State, idx: u32) {
    if let Some(m) = st.memifs.remove(&idx) {
        if !st.memifs.values().any(|x| x.socket_id == m.socket_id) {
            // The last user closes the listener; like VPP, the file stays behind.
            st.memif_listeners.remove(&m.socket_id);
        }
    }
    remove_interface(st, idx);
}

/// Whether `a` lies in `b`/`len` (ip4_destination_matches_route and its ip6 twin).
fn in_prefix(a: &[u8; 16], b: &[u8; 16], len: u8) -> bool {
    let bits = usize::from(len);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole.min(16)] != b[..whole.min(16)] {
        return false;
    }
    if rest == 0 || whole >= 16 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// `sw_interface_add_del_address` (ip4_add_del_interface_address_internal and the ip6 one). On
/// add, VPP refuses a prefix that overlaps one on any interface of the same FIB table (all of them
/// here: the simulator has only table 0), except another address of the same length on the same
/// interface: ADDRESS_IN_USE for IPv4 (a duplicate included), DUPLICATE_IF_ADDRESS for IPv6.
fn address_add_del(st: &mut State, req: &Map<String, Value>) -> Out {
    let name = "sw_interface_add_del_address";
    let idx = u32_of(req, "sw_if_index");
    if !st.interfaces.contains_key(&idx) {
        return reply(name, INVALID_SW_IF_INDEX, json!({}));
    }
    let prefix = req.get("prefix").and_then(|p| p.as_object()).cloned().unwrap_or_default();
    let len = u32_of(&prefix, "len") as u8;
    let addr = prefix.get("address").and_then(|a| a.as_object()).cloned().unwrap_or_default();
    let af = u32_of(&addr, "af") as u8;
    let mut un = [0u8; 16];
    for (d, s) in un.iter_mut().zip(bytes_of(&addr, "un")) {
        *d = s;
    }
    let entry = (af, un, len);
    if bool_of(req, "is_add") && !bool_of(req, "del_all") {
        for i in st.interfaces.values() {
            for (_, x, xlen) in i.addresses.iter().filter(|(xaf, _, _)| *xaf == af) {
                if !(in_prefix(&un, x, *xlen) || in_prefix(x, &un, len)) {
                    continue;
                }
                // an interface may have more than one address from the same prefix
                if i.sw_if_index == idx && *xlen == len && *x != un {
                    continue;
                }
                let rv = if af == 0 { ADDRESS_IN_USE } else { DUPLICATE_IF_ADDRESS };
                return reply(name, rv, json!({}));
            }
        }
    }
    let Some(i) = st.interfaces.get_mut(&idx) else { return reply(name, INVALID_SW_IF_INDEX, json!({})) };
    if bool_of(req, "del_all") {
        i.addresses.clear();
        return reply(name, 0, json!({}));
    }
    if bool_of(req, "is_add") {
        i.addresses.push(entry);
    } else {
        let before = i.addresses.len();
        i.addresses.retain(|a| *a != entry);
        if before == i.addresses.len() {
            return reply(name, ADDRESS_NOT_FOUND_FOR_INTERFACE, json!({}));
        }
    }
    reply(name, 0, json!({}))
}

fn bd_add_del(st: &mut State, req: &Map<String, Value>) -> Out {
    let name = "bridge_domain_add_del_v2";
    let mut id = u32_of(req, "bd_id");
    if bool_of(req, "is_add") {
        if id == u32::MAX {
            id = (1..L2_BD_ID_MAX).find(|i| !st.bds.contains_key(i)).unwrap_or(u32::MAX);
        }
        // bd_add_del: domain 0 (VPP's default, at index 0) exists, so adding it is "exists".
        if id == 0 {
            return reply(name, BD_ALREADY_EXISTS, json!({"bd_id": id}));
        }
        if id > L2_BD_ID_MAX {
            return reply(name, BD_ID_EXCEED_MAX, json!({"bd_id": id}));
        }
        if st.bds.contains_key(&id) {
            return reply(name, BD_ALREADY_EXISTS, json!({"bd_id": id}));
        }
        st.bds.insert(
            id,
            BridgeDomain {
                bd_id: id,
                tag: str_of(req, "bd_tag").to_owned(),
                flood: bool_of(req, "flood"),
                uu_flood: bool_of(req, "uu_flood"),
                forward: bool_of(req, "forward"),
                learn: bool_of(req, "learn"),
                members: Vec::new(),
            },
        );
        return reply(name, 0, json!({"bd_id": id}));
    }
    if id == 0 {
        return reply(name, BD_NOT_MODIFIABLE, json!({"bd_id": id}));
    }
    match st.bds.get(&id) {
        None => reply(name, NO_SUCH_ENTRY, json!({"bd_id": id})),
        Some(b) if !b.members.is_empty() => reply(name, BD_IN_USE, json!({"bd_id": id})),
        Some(_) => {
            st.bds.remove(&id);
            reply(name, 0, json!({"bd_id": id}))
        }
    }
}

fn l2_bridge(st: &mut State, req: &Map<String, Value>) -> Out {
    let name = "sw_interface_set_l2_bridge";
    let idx = u32_of(req, "rx_sw_if_index");
    let bd_id = u32_of(req, "bd_id");
    let Some(prev) = st.interfaces.get(&idx).map(|i| i.bd) else { return reply(name, INVALID_SW_IF_INDEX, json!({})) };
    if let Some(b) = prev.and_then(|p| st.bds.get_mut(&p)) {
        b.members.retain(|m| *m != idx);
    }
    if !bool_of(req, "enable") {
        if let Some(i) = st.interfaces.get_mut(&idx) {
            i.bd = None;
        }
        return reply(name, 0, json!({}));
    }
    if bd_id > L2_BD_ID_MAX {
        return reply(name, BD_ID_EXCEED_MAX, json!({}));
    }
    // bd_find_or_add_bd_index: attaching to an unknown domain creates it (untagged).
    let bd = st.bds.entry(bd_id).or_insert_with(|| BridgeDomain {
        bd_id,
        tag: String::new(),
        flood: true,
        uu_flood: true,
        forward: true,
        learn: true,
        members: Vec::new(),
    });
    bd.members.push(idx);
    if let Some(i) = st.interfaces.get_mut(&idx) {
        i.bd = Some(bd_id);
    }
    reply(name, 0, json!({}))
}

fn vhost_create(st: &mut State, req: &Map<String, Value>) -> Out {
    let name = "create_vhost_user_if_v2";
    let fail = |rv| reply(name, rv, json!({"sw_if_index": u32::MAX}));
    let file = str_of(req, "sock_filename").to_owned();
    let is_server = bool_of(req, "is_server");
    if file.is_empty() {
        return fail(INVALID_ARGUMENT);
    }
    if st.vhosts.values().any(|v| v.sock_filename == file) {
        return fail(IF_ALREADY_EXISTS);
    }
    let listener = if is_server {
        // vhost_user_init_server_sock: unlink() whatever is at the path (a regular file is
        // replaced; a directory stays and makes the bind fail), then bind: SYSCALL_ERROR_2 when
        // that fails (a missing directory).
        let _ = std::fs::remove_file(&file);
        match listen_on(&file, false) {
            Ok(fd) => Some(fd),
            Err(_) => return fail(SYSCALL_ERROR_2),
        }
    } else {
        None
    };
    let n = (0..).find(|n| !st.interfaces.values().any(|i| i.name == format!("VirtualEthernet0/0/{n}"))).unwrap_or(0);
    let idx = new_interface(st, format!("VirtualEthernet0/0/{n}"), IfKind::Vhost, str_of(req, "tag").to_owned());
    if let Some(fd) = listener {
        st.vhost_listeners.insert(idx, fd);
    }
    st.vhosts.insert(idx, Vhost { sw_if_index: idx, sock_filename: file, is_server });
    reply(name, 0, json!({"sw_if_index": idx}))
}
