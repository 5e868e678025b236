//! The OVSDB JSON-RPC connection (RFC 7047 §4): id-matched requests, echo keepalives, and the wait
//! for ovs-vswitchd to apply a transaction. Never spawns ovs-vsctl, never waits without a deadline.

use super::datum::{as_integer, column};
use super::error::{truncate, OvsdbError};
use super::op::{Mutation, Op, OpResult};
use super::stream::JsonStream;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;

/// The database ovs-vswitchd reads.
pub const OPEN_VSWITCH_DB: &str = "Open_vSwitch";

/// Our `monitor` id for `Open_vSwitch.cur_cfg`; update notifications carry it back.
const CUR_CFG_MONITOR: &str = "uscni-cur-cfg";

const READ_CHUNK: usize = 64 * 1024;

/// One connection to ovsdb-server. Methods take `&mut self`: one request at a time per
/// connection; open several connections for concurrency (ovsdb-server serialises commits).
#[derive(Debug)]
pub struct OvsdbClient {
    endpoint: String,
    stream: UnixStream,
    frames: JsonStream,
    /// Scratch space for socket reads, kept to avoid an allocation per message.
    chunk: Vec<u8>,
    next_id: u64,
    timeout: Duration,
    /// Installed on the first `transact_and_wait` and kept for the connection's life.
    monitoring: bool,
    /// Latest `Open_vSwitch.cur_cfg` seen through the monitor.
    cur_cfg: Option<i64>,
    /// `Interface` rows changed since the monitor was installed (name -> `ofport`, `error` as
    /// the last update carried them): ovs-vswitchd writes them in the transaction that raises
    /// `cur_cfg`, so a port's state is known when the wait ends, without another round trip.
    interfaces: std::collections::HashMap<String, (Value, Value)>,
    /// Set when the stream can no longer be trusted (a write cut by a timeout, bytes that are
    /// not JSON): later requests fail fast instead of reading garbage.
    broken: Option<String>,
}

/// What a read message turned out to be, after notifications and echo were handled.
enum Incoming {
    Reply { id: u64, outcome: Result<Value, (String, String)> },
    Other,
}

impl OvsdbClient {
    /// Connect to ovsdb-server's unix socket; `timeout` bounds the connect and is the default
    /// bound of every later request.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<OvsdbClient, OvsdbError> {
        let endpoint = format!("unix:{}", path.display());
        let started = Instant::now();
        let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(OvsdbError::Connect { endpoint, source }),
            Err(_) => return Err(OvsdbError::ConnectTimeout { endpoint, waited_ms: ms(started.elapsed()) }),
        };
        Ok(OvsdbClient {
            endpoint,
            stream,
            frames: JsonStream::new(),
            chunk: vec![0u8; READ_CHUNK],
            next_id: 1,
            timeout,
            monitoring: false,
            cur_cfg: None,
            interfaces: std::collections::HashMap::new(),
            broken: None,
        })
    }

    /// Connect to an endpoint in OVS's notation; only `unix:<path>` is supported.
    pub async fn connect_endpoint(endpoint: &str, timeout: Duration) -> Result<OvsdbClient, OvsdbError> {
        match endpoint.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Self::connect(Path::new(path), timeout).await,
            _ => Err(OvsdbError::Connect {
                endpoint: endpoint.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "only unix:<path> OVSDB endpoints are supported",
                ),
            }),
        }
    }

    /// `unix:<path>`, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The default bound of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The last `Open_vSwitch.cur_cfg` seen by this connection's monitor, if one is installed.
    pub fn cur_cfg(&self) -> Option<i64> {
        self.cur_cfg
    }

    /// Any JSON-RPC method, bounded by the client's timeout. Returns the `result`.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, OvsdbError> {
        let deadline = Instant::now() + self.timeout;
        self.request(method, params, deadline).await
    }

    /// A round trip (RFC 7047 §4.1.11): proves ovsdb-server is alive and serving.
    pub async fn echo(&mut self) -> Result<(), OvsdbError> {
        let payload = json!(["uscni-echo"]);
        let back = self.call("echo", payload.clone()).await?;
        if back != payload {
            return Err(self.protocol(format!("echo returned {back}")));
        }
        Ok(())
    }

    pub async fn list_dbs(&mut self) -> Result<Vec<String>, OvsdbError> {
        let v = self.call("list_dbs", json!([])).await?;
        let names = v.as_array().ok_or_else(|| OvsdbError::decode("an array of database names", &v))?;
        names.iter().map(|n| n.as_str().map(str::to_string).ok_or_else(|| OvsdbError::decode("a name", n))).collect()
    }

    pub async fn get_schema(&mut self, db: &str) -> Result<Value, OvsdbError> {
        self.call("get_schema", json!([db])).await
    }

    /// Run `ops` as one transaction. A failed operation (or commit, `op_index == ops.len()`)
    /// is `OvsdbError::Transaction` with OVSDB's `error` and `details`.
    pub async fn transact(&mut self, db: &str, ops: Vec<Op>) -> Result<Vec<OpResult>, OvsdbError> {
        // A blocking `wait` op legitimately holds the reply for its own timeout.
        let server_wait = ops.iter().map(Op::server_wait).max().unwrap_or_default();
        let deadline = Instant::now() + self.timeout + server_wait;
        self.transact_until(db, &ops, deadline).await
    }

    /// Run `ops` and return once ovs-vswitchd has applied them: the same transaction increments
    /// `Open_vSwitch.next_cfg` and reads it back, then a monitor on `cur_cfg` is followed until
    /// `cur_cfg >= next_cfg` (`>=`: another client's later increment may be applied together
    /// with ours, so `cur_cfg` can jump past our value). `timeout` bounds the whole call.
    pub async fn transact_and_wait(
        &mut self,
        db: &str,
        ops: Vec<Op>,
        timeout: Duration,
    ) -> Result<Vec<OpResult>, OvsdbError> {
        let started = Instant::now();
        let (results, next_cfg) = self.transact_for_cfg(db, ops, timeout).await?;
        self.wait_cfg(db, next_cfg, timeout.saturating_sub(started.elapsed())).await?;
        Ok(results)
    }

    /// The commit half of `transact_and_wait`: `ops` plus the `next_cfg` increment, with the
    /// `cur_cfg` monitor installed first; returns the results of `ops` and the `next_cfg` to wait
    /// for with `wait_cfg` (on this client, later: the monitor's updates queue meanwhile).
    pub async fn transact_for_cfg(
        &mut self,
        db: &str,
        mut ops: Vec<Op>,
        timeout: Duration,
    ) -> Result<(Vec<OpResult>, i64), OvsdbError> {
        let deadline = Instant::now() + timeout;
        let n = ops.len();
        ops.push(Op::mutate("Open_vSwitch", vec![], vec![Mutation::add("next_cfg", 1)]));
        ops.push(Op::select("Open_vSwitch", vec![], &["next_cfg"]));
        let mut results = if self.monitoring {
            self.transact_until(db, &ops, deadline).await?
        } else {
            // Monitor first, so an update that lands between our commit and the wait is not
            // lost; both requests go out together (ovsdb-server answers a session's requests in
            // order, so the monitor is in place before the commit): one round trip, not two.
            let started = Instant::now();
            let monitor = self.send_request("monitor", cur_cfg_monitor_params(db), deadline, started).await?;
            let transact = self.send_request("transact", transact_params(db, &ops), deadline, started).await?;
            let initial = self.await_reply(monitor, "monitor", deadline, started).await;
            let reply = self.await_reply(transact, "transact", deadline, started).await;
            self.apply_table_updates(&initial?);
            self.monitoring = true;
            self.transaction_results(db, &ops, reply?)?
        };
        let rows = results.get(n).and_then(|r| r.count).unwrap_or(0);
        if rows != 1 {
            return Err(OvsdbError::NotInitialized { endpoint: self.endpoint.clone(), rows });
        }
        let next_cfg = match results.get(n + 1).map(OpResult::rows) {
            Some([row]) => as_integer(column(row, "next_cfg")?)?,
            _ => return Err(self.protocol("select of Open_vSwitch.next_cfg did not return one row".into())),
        };
        results.truncate(n);
        Ok((results, next_cfg))
    }

    /// Wait (bounded) until ovs-vswitchd reports `cur_cfg >= next_cfg`. On a client without the
    /// monitor (a reconnect since the commit) it is installed first; its initial value counts.
    pub async fn wait_cfg(&mut self, db: &str, next_cfg: i64, timeout: Duration) -> Result<(), OvsdbError> {
        let started = Instant::now();
        let deadline = started + timeout;
        if !self.monitoring {
            self.install_cur_cfg_monitor(db, deadline).await?;
        }
        while self.cur_cfg.is_none_or(|c| c < next_cfg) {
            match self.next_incoming(deadline).await {
                Ok(_) => {}
                Err(OvsdbError::Timeout { .. }) => {
                    return Err(OvsdbError::ApplyTimeout {
                        endpoint: self.endpoint.clone(),
                        next_cfg,
                        cur_cfg: self.cur_cfg,
                        waited_ms: ms(started.elapsed()),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Shut the socket down (ovsdb-server then drops the session and its monitors). Dropping the
    /// client closes it too; this just does it at a known point.
    pub async fn close(mut self) -> Result<(), OvsdbError> {
        match tokio::time::timeout(self.timeout, self.stream.shutdown()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(OvsdbError::Io { endpoint: self.endpoint.clone(), source }),
            Err(_) => Err(OvsdbError::Timeout {
                endpoint: self.endpoint.clone(),
                method: "close".into(),
                waited_ms: ms(self.timeout),
            }),
        }
    }

    async fn install_cur_cfg_monitor(&mut self, db: &str, deadline: Instant) -> Result<(), OvsdbError> {
        let initial = self.request("monitor", cur_cfg_monitor_params(db), deadline).await?;
        self.apply_table_updates(&initial);
        self.monitoring = true;
        Ok(())
    }

    async fn transact_until(&mut self, db: &str, ops: &[Op], deadline: Instant) -> Result<Vec<OpResult>, OvsdbError> {
        let reply = self.request("transact", transact_params(db, ops), deadline).await?;
        self.transaction_results(db, ops, reply)
    }

    /// A `transact` reply as one result per op, or the failing op's error.
    fn transaction_results(&mut self, db: &str, ops: &[Op], reply: Value) -> Result<Vec<OpResult>, OvsdbError> {
        let entries = reply.as_array().ok_or_else(|| OvsdbError::decode("an array of operation results", &reply))?;
        // RFC 7047 §4.1.3: an error object at the failing op's index (later entries are null),
        // or one extra trailing error when every op succeeded but the commit failed.
        for (i, entry) in entries.iter().enumerate() {
            if let Some(error) = entry.get("error").filter(|e| !e.is_null()) {
                return Err(OvsdbError::Transaction {
                    endpoint: self.endpoint.clone(),
                    db: db.to_string(),
                    op_index: i,
                    op: ops.get(i).map(Op::name).unwrap_or("commit"),
                    error: text_of(error),
                    details: entry.get("details").map(text_of).unwrap_or_default(),
                });
            }
        }
        if entries.len() < ops.len() {
            return Err(self.protocol(format!("{} results for {} operations", entries.len(), ops.len())));
        }
        entries.iter().take(ops.len()).map(OpResult::from_json).collect()
    }

    /// Send one request and read until its reply; notifications and server requests that arrive
    /// meanwhile are handled, replies to other ids (a request that timed out earlier) dropped.
    async fn request(&mut self, method: &str, params: Value, deadline: Instant) -> Result<Value, OvsdbError> {
        let started = Instant::now();
        let id = self.send_request(method, params, deadline, started).await?;
        self.await_reply(id, method, deadline, started).await
    }

    /// Send a request without waiting for its reply; its id.
    async fn send_request(
        &mut self,
        method: &str,
        params: Value,
        deadline: Instant,
        started: Instant,
    ) -> Result<u64, OvsdbError> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"method": method, "params": params, "id": id});
        self.send(&msg, deadline, method, started).await?;
        Ok(id)
    }

    /// Read until the reply to `id`. Replies to earlier ids that nobody awaits are dropped, so
    /// pipelined requests are awaited in the order they were sent.
    async fn await_reply(
        &mut self,
        id: u64,
        method: &str,
        deadline: Instant,
        started: Instant,
    ) -> Result<Value, OvsdbError> {
        loop {
            let incoming = match self.next_incoming(deadline).await {
                Err(OvsdbError::Timeout { endpoint, .. }) => {
                    return Err(OvsdbError::Timeout {
                        endpoint,
                        method: method.into(),
                        waited_ms: ms(started.elapsed()),
                    })
                }
                other => other?,
            };
            if let Incoming::Reply { id: rid, outcome } = incoming {
                if rid != id {
                    continue;
                }
                return outcome.map_err(|(error, details)| OvsdbError::Rpc {
                    endpoint: self.endpoint.clone(),
                    method: method.into(),
                    error,
                    details,
                });
            }
        }
    }

    async fn send(&mut self, msg: &Value, deadline: Instant, method: &str, started: Instant) -> Result<(), OvsdbError> {
        if let Some(reason) = &self.broken {
            return Err(OvsdbError::Closed { endpoint: self.endpoint.clone(), reason: reason.clone() });
        }
        let mut bytes = serde_json::to_vec(msg).map_err(|e| self.protocol(format!("cannot encode request: {e}")))?;
        bytes.push(b'\n');
        match tokio::time::timeout_at(deadline, self.stream.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(self.io_error(source)),
            Err(_) => {
                // Part of the message may be on the wire; the next request would follow garbage.
                self.broken = Some(format!("a {method} request was cut off mid-write by a timeout"));
                Err(OvsdbError::Timeout {
                    endpoint: self.endpoint.clone(),
                    method: method.into(),
                    waited_ms: ms(started.elapsed()),
                })
            }
        }
    }

    /// Read and classify the next message, answering `echo` and applying monitor updates.
    async fn next_incoming(&mut self, deadline: Instant) -> Result<Incoming, OvsdbError> {
        let msg = self.read_message(deadline).await?;
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        if let Some(method) = msg.get("method").and_then(Value::as_str) {
            let params = msg.get("params").cloned().unwrap_or(Value::Null);
            if id.is_null() {
                // A notification: only our own monitor's updates matter; others are ignored.
                if method == "update" && params.get(0).and_then(Value::as_str) == Some(CUR_CFG_MONITOR) {
                    if let Some(updates) = params.get(1) {
                        self.apply_table_updates(updates);
                    }
                }
                return Ok(Incoming::Other);
            }
            // ovsdb-server's inactivity probe is an `echo` request: answer with the same params
            // or it drops the session.
            let reply = if method == "echo" {
                json!({"id": id, "result": params, "error": null})
            } else {
                json!({"id": id, "result": null, "error": format!("unknown method {method:?}")})
            };
            self.send(&reply, deadline, "echo reply", Instant::now()).await?;
            return Ok(Incoming::Other);
        }
        if msg.get("result").is_none() && msg.get("error").is_none() {
            return Err(self.protocol(format!("neither request nor reply: {}", truncate(&msg.to_string(), 200))));
        }
        // Our ids are numbers; anything else cannot be a reply to us.
        let Some(rid) = id.as_u64() else {
            return Ok(Incoming::Other);
        };
        let outcome = match msg.get("error").filter(|e| !e.is_null()) {
            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
            Some(err) => Err((
                err.get("error").map(text_of).unwrap_or_else(|| text_of(err)),
                err.get("details").map(text_of).unwrap_or_default(),
            )),
        };
        Ok(Incoming::Reply { id: rid, outcome })
    }

    async fn read_message(&mut self, deadline: Instant) -> Result<Value, OvsdbError> {
        if let Some(reason) = &self.broken {
            return Err(OvsdbError::Closed { endpoint: self.endpoint.clone(), reason: reason.clone() });
        }
        let started = Instant::now();
        loop {
            match self.frames.next_value() {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => return Err(self.protocol(e.0)),
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut self.chunk)).await {
                Ok(Ok(0)) => {
                    self.broken = Some("closed by ovsdb-server".into());
                    return Err(OvsdbError::Closed {
                        endpoint: self.endpoint.clone(),
                        reason: "end of stream: ovsdb-server closed the connection or exited".into(),
                    });
                }
                Ok(Ok(n)) => n,
                Ok(Err(source)) => return Err(self.io_error(source)),
                Err(_) => {
                    return Err(OvsdbError::Timeout {
                        endpoint: self.endpoint.clone(),
                        method: "read".into(),
                        waited_ms: ms(started.elapsed()),
                    })
                }
            };
            if let Err(e) = self.frames.push(self.chunk.get(..n).unwrap_or_default()) {
                return Err(self.protocol(e.0));
            }
        }
    }

    /// `<table-updates>` of the cur_cfg monitor: `{"Open_vSwitch": {uuid: {"new": {...}}},
    /// "Interface": {uuid: {"new": {"name": .., "ofport": .., "error": ..}}}}`.
    fn apply_table_updates(&mut self, updates: &Value) {
        if let Some(rows) = updates.get("Open_vSwitch").and_then(Value::as_object) {
            for update in rows.values() {
                if let Some(c) = update.get("new").and_then(|n| n.get("cur_cfg")).and_then(Value::as_i64) {
                    self.cur_cfg = Some(c);
                }
            }
        }
        if let Some(rows) = updates.get("Interface").and_then(Value::as_object) {
            for update in rows.values() {
                match (update.get("new"), update.get("old")) {
                    (Some(new), _) => {
                        if let (Some(name), Some(ofport), Some(error)) =
                            (new.get("name").and_then(Value::as_str), new.get("ofport"), new.get("error"))
                        {
                            self.interfaces.insert(name.to_owned(), (ofport.clone(), error.clone()));
                        }
                    }
                    // Deleted: nothing is known of that name any more.
                    (None, Some(old)) => {
                        if let Some(name) = old.get("name").and_then(Value::as_str) {
                            self.interfaces.remove(name);
                        }
                    }
                    (None, None) => {}
                }
            }
        }
    }

    /// `ofport` and `error` of interface `name` as the monitor last saw them change (none if no
    /// change was seen since it was installed, or without the monitor).
    pub fn seen_interface(&self, name: &str) -> Option<(&Value, &Value)> {
        self.interfaces.get(name).map(|(o, e)| (o, e))
    }

    fn protocol(&mut self, detail: String) -> OvsdbError {
        self.broken = Some(format!("protocol error: {detail}"));
        OvsdbError::Protocol { endpoint: self.endpoint.clone(), detail }
    }

    fn io_error(&mut self, source: std::io::Error) -> OvsdbError {
        self.broken = Some(format!("I/O error: {source}"));
        OvsdbError::Io { endpoint: self.endpoint.clone(), source }
    }
}

/// OVSDB puts error text in strings; anything else is shown as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => truncate(&other.to_string(), 500),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `monitor` params for `Open_vSwitch.cur_cfg` (the wait for ovs-vswitchd), and for the
/// `Interface` rows that change after it is installed (no initial dump: a node's hundreds of
/// interfaces are not read on every ADD).
fn cur_cfg_monitor_params(db: &str) -> Value {
    json!([db, CUR_CFG_MONITOR, {
        "Open_vSwitch": {"columns": ["cur_cfg"]},
        "Interface": {"columns": ["name", "ofport", "error"], "select": {"initial": false}},
    }])
}

/// `transact` params: the database, then the operations.
fn transact_params(db: &str, ops: &[Op]) -> Value {
    let mut params = vec![json!(db)];
    params.extend(ops.iter().map(Op::to_json));
    Value::Array(params)
}
