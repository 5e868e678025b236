//! The VPP binary-API client: socket framing, the `sockclnt_create` handshake and its message
//! table, request/reply matched by `context`, dumps ended by `control_ping`, `sockclnt_delete`
//! on close. Every wait is bounded by the client's timeout; never trusts a length from the wire.

use super::error::VppError;
use super::messages::{
    ControlPing, ControlPingReply, MessageTableEntry, ShowVersion, ShowVersionReply, SockclntDelete,
    SockclntDeleteReply, USED,
};
use super::wire::{Reader, Writer};
use super::{Message, Reply, Request};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// memclnt's ids are fixed (1..28 in memclnt.api.json order); every other id comes from the table.
pub const SOCKCLNT_CREATE_ID: u16 = 15;
pub const SOCKCLNT_CREATE_REPLY_ID: u16 = 16;

/// The message table of a large VPP is ~3000 entries of 66 bytes; nothing we read comes close
/// to this, so a bigger `data_len` means a broken stream, not a message to allocate for.
const MAX_FRAME: usize = 16 << 20;

/// Name the client registers with (VPP shows it in `show api clients`); at most 63 bytes.
const CLIENT_NAME: &str = "userspace-cni";

pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    client_index: u32,
    table: HashMap<String, u16>,
    next_context: u32,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("path", &self.path).field("client_index", &self.client_index).finish()
    }
}

/// The 16-byte frame header: `q` (u64, ignored), `data_len` (u32 BE), `gc_mark` (u32, ignored).
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + msg.len());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(msg);
    out
}

impl Client {
    /// Connect and register (`sockclnt_create`), all within `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Client, VppError> {
        let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(VppError::Unreachable { path: path.to_owned(), source }),
            Err(_) => {
                return Err(VppError::Timeout {
                    path: path.to_owned(),
                    what: "connect".into(),
                    waited_ms: timeout.as_millis() as u64,
                })
            }
        };
        let mut c =
            Client { stream, path: path.to_owned(), client_index: 0, table: HashMap::new(), next_context: 1, timeout };
        let deadline = Instant::now() + timeout;
        // sockclnt_create: id, context, name[64]; no client_index (VPP has none for us yet).
        let mut w = Writer::new();
        w.u16(SOCKCLNT_CREATE_ID);
        let context = c.context();
        w.u32(context);
        w.fixed_string("name", CLIENT_NAME, 64)
            .map_err(|source| VppError::Encode { what: "sockclnt_create".into(), source })?;
        c.send(&w.buf, "sockclnt_create", deadline).await?;
        loop {
            let msg = c.recv("sockclnt_create_reply", deadline).await?;
            let mut r = Reader::new(&msg);
            let malformed = |source| VppError::Malformed { what: "sockclnt_create_reply".into(), source };
            if r.u16("_vl_msg_id").map_err(malformed)? != SOCKCLNT_CREATE_REPLY_ID {
                continue;
            }
            let _client_index = r.u32("client_index").map_err(malformed)?;
            if r.u32("context").map_err(malformed)? != context {
                continue;
            }
            let response = r.i32("response").map_err(malformed)?;
            let index = r.u32("index").map_err(malformed)?;
            let count = r.u16("count").map_err(malformed)?;
            if response != 0 {
                return Err(VppError::Handshake { response });
            }
            for _ in 0..count {
                let e = MessageTableEntry::decode(&mut r).map_err(malformed)?;
                c.table.insert(e.name, e.index);
            }
            c.client_index = index;
            return Ok(c);
        }
    }

    /// Every bound after this one uses `timeout` (the verb's remaining budget, usually).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every message the backend uses must be in VPP's table with our CRC; a missing name is a
    /// plugin that is not loaded, a name with another CRC is another VPP release.
    pub async fn check_messages(&mut self) -> Result<(), VppError> {
        let mut problems = Vec::new();
        for (name, crc) in USED {
            if self.table.contains_key(&format!("{name}_{crc}")) {
                continue;
            }
            let prefix = format!("{name}_");
            let theirs: Vec<&str> = self
                .table
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|rest| rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect();
            problems.push(match theirs.first() {
                Some(other) => format!("{name} has CRC {other} in this VPP, {crc} in ours"),
                None => format!("{name} ({crc}) is not in VPP's message table (plugin not loaded?)"),
            });
        }
        if problems.is_empty() {
            return Ok(());
        }
        // Name the running version when VPP still understands show_version the way we do.
        let running = match self.call::<_, ShowVersionReply>(ShowVersion::default(), "show_version").await {
            Ok(v) => format!(" (running {})", v.version),
            Err(_) => String::new(),
        };
        Err(VppError::CrcMismatch { path: self.path.clone(), running, problems })
    }

    fn context(&mut self) -> u32 {
        let c = self.next_context;
        // Non-zero always: vpp_papi treats context 0 as an unsolicited event.
        self.next_context = self.next_context.wrapping_add(1).max(1);
        c
    }

    fn id_of<M: Message>(&self) -> Result<u16, VppError> {
        self.table.get(&M::name_crc()).copied().ok_or_else(|| VppError::CrcMismatch {
            path: self.path.clone(),
            running: String::new(),
            problems: vec![format!("{} ({}) is not in VPP's message table", M::NAME, M::CRC)],
        })
    }

    async fn send(&mut self, msg: &[u8], what: &str, deadline: Instant) -> Result<(), VppError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.stream.write_all(&frame(msg))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(VppError::Io { path: self.path.clone(), what: what.into(), source }),
            Err(_) => Err(self.timeout_error(what)),
        }
    }

    fn timeout_error(&self, what: &str) -> VppError {
        VppError::Timeout { path: self.path.clone(), what: what.into(), waited_ms: self.timeout.as_millis() as u64 }
    }

    /// One whole message (frame header stripped).
    async fn recv(&mut self, what: &str, deadline: Instant) -> Result<Vec<u8>, VppError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, read_frame(&mut self.stream)).await {
            Ok(Ok(Some(msg))) => Ok(msg),
            Ok(Ok(None)) => Err(VppError::Closed { path: self.path.clone(), what: what.into() }),
            Ok(Err(FrameError::Io(source))) => Err(VppError::Io { path: self.path.clone(), what: what.into(), source }),
            Ok(Err(FrameError::TooLarge(len))) => Err(VppError::FrameTooLarge { len }),
            Err(_) => Err(self.timeout_error(what)),
        }
    }

    /// Send a request and wait for its reply (same context); a non-zero retval is an error.
    pub async fn call<Q: Request, R: Reply>(&mut self, req: Q, what: &str) -> Result<R, VppError> {
        let r: R = self.call_raw(req, what).await?;
        match r.retval() {
            0 => Ok(r),
            rv => Err(VppError::Retval { what: what.into(), rv }),
        }
    }

    /// Like `call`, but the reply is returned whatever its retval (the caller decides).
    pub async fn call_raw<Q: Request, R: Reply>(&mut self, mut req: Q, what: &str) -> Result<R, VppError> {
        let (req_id, rep_id) = (self.id_of::<Q>()?, self.id_of::<R>()?);
        let context = self.context();
        req.set_header(self.client_index, context);
        let msg = req.encode(req_id).map_err(|source| VppError::Encode { what: what.into(), source })?;
        let deadline = Instant::now() + self.timeout;
        self.send(&msg, what, deadline).await?;
        loop {
            let msg = self.recv(what, deadline).await?;
            if !matches(&msg, rep_id, context) {
                // A late reply to an earlier, timed-out request, or an event: not ours.
                continue;
            }
            return R::decode(&msg).map_err(|source| VppError::Malformed { what: R::NAME.into(), source });
        }
    }

    /// A dump: the request, then `control_ping` with the same context; every details message
    /// with that context arrives before the ping's reply (VPP handles a connection in order).
    pub async fn dump<Q: Request, D: Message>(&mut self, mut req: Q, what: &str) -> Result<Vec<D>, VppError> {
        let (req_id, det_id) = (self.id_of::<Q>()?, self.id_of::<D>()?);
        let (ping_id, pong_id) = (self.id_of::<ControlPing>()?, self.id_of::<ControlPingReply>()?);
        let context = self.context();
        req.set_header(self.client_index, context);
        let enc =
            |what: &str, r: Result<Vec<u8>, _>| r.map_err(|source| VppError::Encode { what: what.into(), source });
        let mut out = enc(what, req.encode(req_id))?;
        let mut ping = ControlPing::default();
        ping.set_header(self.client_index, context);
        let ping = enc("control_ping", ping.encode(ping_id))?;
        // One write for both frames: VPP reads a byte stream and splits it itself.
        let mut both = frame(&out);
        both.extend_from_slice(&frame(&ping));
        out.clear();
        let deadline = Instant::now() + self.timeout;
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.stream.write_all(&both)).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(VppError::Io { path: self.path.clone(), what: what.into(), source }),
            Err(_) => return Err(self.timeout_error(what)),
        }
        let mut details = Vec::new();
        loop {
            let msg = self.recv(what, deadline).await?;
            if matches(&msg, pong_id, context) {
                return Ok(details);
            }
            if matches(&msg, det_id, context) {
                details.push(D::decode(&msg).map_err(|source| VppError::Malformed { what: D::NAME.into(), source })?);
            }
        }
    }

    /// `sockclnt_delete`, then close. Best effort and bounded: VPP also frees the registration
    /// when the socket closes, so a lost reply changes nothing.
    pub async fn close(mut self) {
        let req = SockclntDelete { index: self.client_index, ..Default::default() };
        self.timeout = self.timeout.min(Duration::from_millis(500));
        if let Err(e) = self.call_raw::<_, SockclntDeleteReply>(req, "sockclnt_delete").await {
            tracing::debug!(error = %e, "sockclnt_delete");
        }
        let _ = self.stream.shutdown().await;
    }
}

/// Whether a reply/details message has `id` and `context` (both right after the id).
fn matches(msg: &[u8], id: u16, context: u32) -> bool {
    msg.len() >= 6
        && u16::from_be_bytes([msg[0], msg[1]]) == id
        && u32::from_be_bytes([msg[2], msg[3], msg[4], msg[5]]) == context
}

enum FrameError {
    Io(std::io::Error),
    TooLarge(usize),
}

/// Read one frame: 16-byte header, then exactly `data_len` bytes (the stream may split or
/// join frames arbitrarily). `None` on a clean end of stream before a header.
async fn read_frame(s: &mut UnixStream) -> Result<Option<Vec<u8>>, FrameError> {
    let mut hdr = [0u8; 16];
    match s.read_exact(&mut hdr).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = u32::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut msg = vec![0u8; len];
    match s.read_exact(&mut msg).await {
        Ok(_) => Ok(Some(msg)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(FrameError::Io(e)),
    }
}
