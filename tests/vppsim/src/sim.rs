//! The simulator's server: accept loop, one thread per client connection reading VPP frames from
//! a byte stream, the message table (name_crc → id) built from the `.api.json` files, and the
//! controls tests use (restart, stop, stall, wrong CRC).

use crate::codec::Api;
use crate::handlers;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfKind {
    Local,
    Memif,
    Vhost,
}

#[derive(Debug, Clone)]
pub struct Interface {
    pub sw_if_index: u32,
    pub name: String,
    pub kind: IfKind,
    pub tag: String,
    pub admin_up: bool,
    pub mac: [u8; 6],
    /// (address family, 16 address bytes, prefix length)
    pub addresses: Vec<(u8, [u8; 16], u8)>,
    pub bd: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Memif {
    pub sw_if_index: u32,
    pub socket_id: u32,
    pub id: u32,
    pub role: u32,
    pub mode: u32,
    /// What the create asked for (0 taken as VPP's defaults, 1024 and 2048). `memif_dump`
    /// reports the negotiated values instead, which stay 1 and 0 until a peer connects (VPP's
    /// `mif->run`); no peer ever connects to the simulator.
    pub ring_size: u32,
    pub buffer_size: u16,
    /// VPP sets MEMIF_IF_FLAG_ZERO_COPY only for a slave created without `no_zero_copy`.
    pub zero_copy: bool,
}

#[derive(Debug, Clone)]
pub struct Vhost {
    pub sw_if_index: u32,
    pub sock_filename: String,
    pub is_server: bool,
}

#[derive(Debug, Clone)]
pub struct BridgeDomain {
    pub bd_id: u32,
    pub tag: String,
    pub flood: bool,
    pub uu_flood: bool,
    pub forward: bool,
    pub learn: bool,
    pub members: Vec<u32>,
}

/// VPP's in-memory configuration; lost on restart.
pub struct State {
    pub interfaces: BTreeMap<u32, Interface>,
    pub memifs: BTreeMap<u32, Memif>,
    /// memif socket id → filename (id 0 is VPP's default socket).
    pub sockets: BTreeMap<u32, String>,
    pub vhosts: BTreeMap<u32, Vhost>,
    pub bds: BTreeMap<u32, BridgeDomain>,
    pub(crate) next_index: u32,
    /// Freed sw_if_indexes, most recent last: VPP's pools hand out the last freed element
    /// first (`_pool_get` pops `free_indices`), so a deleted interface's index is reused by the
    /// very next create.
    pub(crate) free_indices: Vec<u32>,
    /// `memif_get_unused_socket_id`'s `static u32 seed = 0`: the ids VPP picks are the same
    /// sequence after every start.
    pub(crate) socket_seed: u32,
    /// Set by a handler when the request would crash VPP (SIGSEGV): the server then drops
    /// every connection and comes back empty, as VPP restarted by its supervisor does.
    pub(crate) crashed: Option<String>,
    pub(crate) memif_listeners: HashMap<u32, OwnedFd>,
    pub(crate) vhost_listeners: HashMap<u32, OwnedFd>,
    pub(crate) rng: u64,
    pub pid: u32,
    pub(crate) runtime_dir: PathBuf,
}

impl State {
    fn new(runtime_dir: PathBuf, epoch: u64) -> State {
        let mut interfaces = BTreeMap::new();
        interfaces.insert(
            0,
            Interface {
                sw_if_index: 0,
                name: "local0".into(),
                kind: IfKind::Local,
                tag: String::new(),
                admin_up: false,
                mac: [0; 6],
                addresses: Vec::new(),
                bd: None,
            },
        );
        let mut sockets = BTreeMap::new();
        sockets.insert(0, runtime_dir.join("memif.sock").display().to_string());
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        State {
            interfaces,
            memifs: BTreeMap::new(),
            sockets,
            vhosts: BTreeMap::new(),
            bds: BTreeMap::new(),
            next_index: 1,
            free_indices: Vec::new(),
            socket_seed: 0,
            crashed: None,
            memif_listeners: HashMap::new(),
            vhost_listeners: HashMap::new(),
            rng: seed | 1,
            pid: 40_000 + epoch as u32,
            runtime_dir,
        }
    }

    /// For MAC addresses (VPP seeds those from the clock).
    pub(crate) fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 16) as u32
    }
}

/// Controls and shared data of a running simulator.
pub(crate) struct Shared {
    pub api: Api,
    /// message name → id
    pub ids: HashMap<String, u16>,
    pub names: HashMap<u16, String>,
    pub crc_override: Mutex<HashMap<String, String>>,
    pub state: Mutex<State>,
    pub stall: AtomicBool,
    pub epoch: AtomicU64,
    pub down: AtomicBool,
    pub stopped: AtomicBool,
    pub log: Mutex<Vec<String>>,
    pub next_client: AtomicU32,
    pub socket: PathBuf,
    pub runtime_dir: PathBuf,
    pub version: String,
}

pub struct Sim {
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

/// Module order for message ids: memclnt is fixed at 1..28; the rest get blocks in the order
/// VPP registers them, which differs between builds (so clients must use the table).
const MODULE_ORDER: &[&str] = &["memclnt", "vlib", "vpe", "interface", "ip", "l2", "vhost_user", "memif"];

impl Sim {
    /// Start a simulator with its API socket at `dir/api.sock` (memif's runtime dir `dir/run`).
    pub fn start(dir: &Path) -> Sim {
        let api = Api::load(&crate::api_dir()).unwrap_or_else(|e| panic!("loading the .api.json files: {e}"));
        let mut ids = HashMap::new();
        let mut names = HashMap::new();
        let mut next: u16 = 1;
        let mut order: Vec<&(String, Vec<String>)> = api.modules.iter().collect();
        order.sort_by_key(|(m, _)| MODULE_ORDER.iter().position(|x| x == m).unwrap_or(usize::MAX));
        for (module, msgs) in order {
            if module != "memclnt" && next < 29 {
                // A gap like a plugin that registered and has no messages here.
                next = 40;
            }
            for m in msgs {
                ids.insert(m.clone(), next);
                names.insert(next, m.clone());
                next += 1;
            }
            next += 3;
        }
        let runtime_dir = dir.join("run");
        let _ = std::fs::create_dir_all(&runtime_dir);
        let shared = Arc::new(Shared {
            api,
            ids,
            names,
            crc_override: Mutex::new(HashMap::new()),
            state: Mutex::new(State::new(runtime_dir.clone(), 0)),
            stall: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            down: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            next_client: AtomicU32::new(0),
            socket: dir.join("api.sock"),
            runtime_dir,
            version: "26.06-release".into(),
        });
        let mut sim = Sim { shared, accept: None };
        sim.listen();
        sim
    }

    fn listen(&mut self) {
        let _ = std::fs::remove_file(&self.shared.socket);
        let listener = UnixListener::bind(&self.shared.socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", self.shared.socket.display()));
        let _ = listener.set_nonblocking(true);
        self.shared.down.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.accept = Some(std::thread::spawn(move || accept_loop(listener, shared)));
    }

    pub fn socket(&self) -> PathBuf {
        self.shared.socket.clone()
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.shared.runtime_dir.clone()
    }

    /// The message id this simulator gives `name`.
    pub fn msg_id(&self, name: &str) -> Option<u16> {
        self.shared.ids.get(name).copied()
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn memifs(&self) -> Vec<Memif> {
        self.state().memifs.values().cloned().collect()
    }

    pub fn vhosts(&self) -> Vec<Vhost> {
        self.state().vhosts.values().cloned().collect()
    }

    pub fn interfaces(&self) -> Vec<Interface> {
        self.state().interfaces.values().filter(|i| i.kind != IfKind::Local).cloned().collect()
    }

    pub fn bridge_domains(&self) -> Vec<BridgeDomain> {
        self.state().bds.values().cloned().collect()
    }

    /// memif socket filenames other than VPP's default (id 0).
    pub fn sockets(&self) -> BTreeMap<u32, String> {
        self.state().sockets.iter().filter(|(id, _)| **id != 0).map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Names of the messages received so far, in order (and `crash: <why>` where a request
    /// crashed VPP).
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Answer nothing (VPP wedged) until set back.
    pub fn set_stall(&self, on: bool) {
        self.shared.stall.store(on, Ordering::SeqCst);
    }

    /// Advertise `crc` for message `name` in the table (another VPP release's definition).
    pub fn set_crc(&self, name: &str, crc: &str) {
        if let Ok(mut m) = self.shared.crc_override.lock() {
            m.insert(name.to_owned(), crc.to_owned());
        }
    }

    /// VPP crashed and came back: connections dropped, configuration lost, memif/vhost socket
    /// files left behind (a killed process unlinks nothing).
    pub fn restart(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        let mut st = self.state();
        *st = State::new(self.shared.runtime_dir.clone(), epoch);
    }

    /// VPP is gone: the API socket refuses connections until `start_again`.
    pub fn stop(&mut self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.shared.socket);
    }

    /// VPP started again after `stop`, with empty configuration.
    pub fn start_again(&mut self) {
        self.restart();
        self.listen();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.stop();
        let mut st = self.state();
        st.memif_listeners.clear();
        st.vhost_listeners.clear();
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        if shared.down.load(Ordering::SeqCst) || shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                std::thread::spawn(move || connection(stream, shared));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Per-connection state: the registration index `sockclnt_create` handed out.
pub(crate) struct Client {
    pub index: Option<u32>,
}

fn connection(mut stream: UnixStream, shared: Arc<Shared>) {
    let epoch = shared.epoch.load(Ordering::SeqCst);
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut client = Client { index: None };
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        if shared.epoch.load(Ordering::SeqCst) != epoch {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            // A restart that happened while we were blocked in read(): this connection belongs
            // to the VPP that died, so nothing it sent is answered.
            Ok(_) if shared.epoch.load(Ordering::SeqCst) != epoch => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => return,
        }
        // A byte stream: frames may be split or joined.
        while buf.len() >= 16 {
            let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
            if buf.len() < 16 + len {
                break;
            }
            let msg: Vec<u8> = buf[16..16 + len].to_vec();
            buf.drain(..16 + len);
            match handle(&shared, &mut client, &msg) {
                Handled::Replies(replies) => {
                    for r in replies {
                        if stream.write_all(&r).is_err() {
                            return;
                        }
                    }
                }
                Handled::ReplyAndClose(replies) => {
                    for r in replies {
                        let _ = stream.write_all(&r);
                    }
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}

enum Handled {
    Replies(Vec<Vec<u8>>),
    ReplyAndClose(Vec<Vec<u8>>),
}

/// VPP's frame header: `q` (a pointer in VPP, garbage to clients), `data_len`, `gc_mark`.
fn frame(msg: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + msg.len());
    out.extend_from_slice(&0x7f3a_1c00_0040_u64.to_be_bytes());
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&0x5eed_u32.to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn handle(shared: &Shared, client: &mut Client, msg: &[u8]) -> Handled {
    let none = Handled::Replies(Vec::new());
    if msg.len() < 2 {
        return none;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let Some(name) = shared.names.get(&id).cloned() else {
        // VPP logs "no handler for msg id" and drops it.
        return none;
    };
    if let Ok(mut l) = shared.log.lock() {
        l.push(name.clone());
    }
    let Ok(req) = shared.api.decode(&name, msg) else {
        // Shorter than its definition: VPP drops it without a reply.
        return none;
    };
    if shared.stall.load(Ordering::SeqCst) {
        return none;
    }
    let encode = |reply: &str, v: &Map<String, Value>| -> Option<Vec<u8>> {
        let id = *shared.ids.get(reply)?;
        shared.api.encode(reply, id, v).ok().map(frame)
    };
    if name == "sockclnt_create" {
        let n = shared.next_client.fetch_add(1, Ordering::SeqCst);
        let index = 0x8000_0000 | n;
        client.index = Some(index);
        let overrides = shared.crc_override.lock().map(|m| m.clone()).unwrap_or_default();
        let mut table: Vec<(u16, String)> = shared
            .ids
            .iter()
            .filter_map(|(n, id)| {
                let crc = overrides.get(n).cloned().or_else(|| shared.api.messages.get(n).map(|d| d.crc.clone()))?;
                Some((*id, format!("{n}_{crc}")))
            })
            .collect();
        // VPP's table comes in hash order: never sorted.
        table.sort_by_key(|(id, _)| (id.wrapping_mul(40503), *id));
        let entries: Vec<Value> = table.into_iter().map(|(i, n)| json!({"index": i, "name": n})).collect();
        let mut r = Map::new();
        r.insert("client_index".into(), json!(0));
        r.insert("context".into(), req.get("context").cloned().unwrap_or(json!(0)));
        r.insert("response".into(), json!(0));
        r.insert("index".into(), json!(index));
        r.insert("message_table".into(), Value::Array(entries));
        return Handled::Replies(encode("sockclnt_create_reply", &r).into_iter().collect());
    }
    // Every other request names its registration; VPP cannot answer an unknown one.
    let ci = req.get("client_index").and_then(|v| v.as_u64()).map(|v| v as u32);
    if ci.is_none() || ci != client.index {
        return none;
    }
    let context = req.get("context").cloned().unwrap_or(json!(0));
    if name == "sockclnt_delete" {
        let ok = req.get("index").and_then(|v| v.as_u64()).map(|v| v as u32) == client.index;
        let mut r = Map::new();
        r.insert("context".into(), context);
        r.insert("response".into(), json!(if ok { 1 } else { -1 }));
        let out: Vec<Vec<u8>> = encode("sockclnt_delete_reply", &r).into_iter().collect();
        return if ok { Handled::ReplyAndClose(out) } else { Handled::Replies(out) };
    }
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    let replies = handlers::handle(&mut st, shared, &name, &req);
    if let Some(why) = st.crashed.take() {
        // VPP died (SIGSEGV) and its supervisor started it again: the request is never
        // answered, every connection drops, the configuration is gone.
        let epoch = shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        *st = State::new(shared.runtime_dir.clone(), epoch);
        if let Ok(mut l) = shared.log.lock() {
            l.push(format!("crash: {why}"));
        }
        return Handled::ReplyAndClose(Vec::new());
    }
    drop(st);
    Handled::Replies(
        replies
            .into_iter()
            .filter_map(|(reply, mut v)| {
                v.insert("context".into(), context.clone());
                encode(&reply, &v)
            })
            .collect(),
    )
}
