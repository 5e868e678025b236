//! The OVSDB client against a real ovsdb-server (and ovs-vswitchd-dpdk) started by the test, and
//! against fake peers for broken sockets. Never touches the host's OVS; every lab is private.

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use testlab::Lab;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use userspace_cni_api::{codes, CniError};
use userspace_cni_ovs_dpdk::ovsdb::datum::{
    as_optional_integer, as_optional_string, as_string_map, as_uuid, as_uuid_set, column, set, string_map,
};
use userspace_cni_ovs_dpdk::ovsdb::{
    check_count, named_uuid, row, Condition, Mutation, Op, OvsdbClient, OvsdbError, WaitUntil, OPEN_VSWITCH_DB,
};

const T: Duration = Duration::from_secs(5);

async fn client(lab: &Lab) -> OvsdbClient {
    match OvsdbClient::connect(&lab.db_socket(), T).await {
        Ok(c) => c,
        Err(e) => panic!("connect to {}: {e}", lab.db_socket().display()),
    }
}

/// Insert a bridge (named-uuid) with one port and interface, attached to Open_vSwitch.
fn add_bridge_ops(bridge: &str, port: &str, iface_type: &str) -> Vec<Op> {
    vec![
        Op::comment(format!("test: add {bridge}")),
        Op::insert_named("Interface", "iface", row([("name", json!(port)), ("type", json!(iface_type))])),
        Op::insert_named("Port", "port", row([("name", json!(port)), ("interfaces", set([named_uuid("iface")]))])),
        Op::insert_named(
            "Bridge",
            "br",
            row([
                ("name", json!(bridge)),
                ("datapath_type", json!("netdev")),
                ("ports", set([named_uuid("port")])),
                ("external_ids", string_map([("owner", "userspace-cni"), ("test", bridge)])),
            ]),
        ),
        Op::mutate("Open_vSwitch", vec![], vec![Mutation::insert("bridges", set([named_uuid("br")]))]),
    ]
}

#[tokio::test]
async fn insert_bridge_with_named_uuid_attach_and_select_it_back() {
    let lab = Lab::start_db_only("ovsdb-ins").expect("lab");
    let mut c = client(&lab).await;
    let ops = add_bridge_ops("br-a", "pa", "internal");
    let res = c.transact(OPEN_VSWITCH_DB, ops.clone()).await.expect("transact");
    assert_eq!(res.len(), ops.len(), "one result per op: {res:?}");
    let br_uuid = res[3].uuid.clone().expect("insert returns the row's uuid");
    check_count(OPEN_VSWITCH_DB, &ops, &res, 4, 1).expect("mutate Open_vSwitch matched its one row");

    let sel = Op::select(
        "Bridge",
        vec![Condition::eq("name", json!("br-a"))],
        &["_uuid", "name", "datapath_type", "ports", "external_ids"],
    );
    let res = c.transact(OPEN_VSWITCH_DB, vec![sel]).await.expect("select");
    let rows = res[0].rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(as_uuid(column(r, "_uuid").unwrap()).unwrap(), br_uuid);
    assert_eq!(column(r, "datapath_type").unwrap(), "netdev");
    // A one-element set comes back as the bare atom `["uuid", ..]`: the reader takes both forms.
    let ports = column(r, "ports").unwrap();
    assert_eq!(ports.get(0), Some(&json!("uuid")), "OVSDB's compact one-element set: {ports}");
    assert_eq!(as_uuid_set(ports).unwrap().len(), 1);
    let ids = as_string_map(column(r, "external_ids").unwrap()).unwrap();
    assert_eq!(ids.get("owner").map(String::as_str), Some("userspace-cni"));

    // An independent reader agrees.
    assert_eq!(lab.bridges().expect("ovs-vsctl"), vec!["br-a"]);
    assert_eq!(lab.ports("br-a").expect("ovs-vsctl"), vec!["pa"]);
    c.close().await.expect("close");
}

#[tokio::test]
async fn port_insert_whose_bridge_mutate_matches_nothing_commits_and_is_garbage_collected() {
    let lab = Lab::start_db_only("ovsdb-cnt").expect("lab");
    let mut c = client(&lab).await;
    let ops = vec![
        Op::insert_named("Interface", "iface", row([("name", json!("ghost")), ("type", json!("dpdkvhostuser"))])),
        Op::insert_named("Port", "port", row([("name", json!("ghost")), ("interfaces", set([named_uuid("iface")]))])),
        Op::mutate(
            "Bridge",
            vec![Condition::eq("name", json!("no-such-bridge"))],
            vec![Mutation::insert("ports", set([named_uuid("port")]))],
        ),
    ];
    let res = c.transact(OPEN_VSWITCH_DB, ops.clone()).await.expect("the transaction commits");
    assert_eq!(res[2].count, Some(0), "mutate matched no row: {res:?}");
    let err = check_count(OPEN_VSWITCH_DB, &ops, &res, 2, 1).unwrap_err();
    assert!(matches!(err, OvsdbError::CountMismatch { found: 0, expected: 1, .. }), "{err}");
    assert_eq!(CniError::from(err).code, codes::IO_FAILURE);
    let res = c
        .transact(OPEN_VSWITCH_DB, vec![Op::select("Port", vec![Condition::eq("name", json!("ghost"))], &["name"])])
        .await
        .expect("select");
    assert!(res[0].rows().is_empty(), "unreferenced Port rows are garbage-collected: {:?}", res[0].rows());
}

#[tokio::test]
async fn wait_op_that_times_out_is_a_transaction_error() {
    let lab = Lab::start_db_only("ovsdb-wait").expect("lab");
    let mut c = client(&lab).await;
    let wait = Op::wait(
        "Bridge",
        vec![Condition::eq("name", json!("br-never"))],
        &["name"],
        WaitUntil::Equal,
        vec![row([("name", json!("br-never"))])],
        Duration::from_millis(100),
    );
    let t = Instant::now();
    let err = c.transact(OPEN_VSWITCH_DB, vec![wait, Op::comment("never reached")]).await.unwrap_err();
    let waited = t.elapsed();
    match &err {
        OvsdbError::Transaction { op_index: 0, op, error, .. } => {
            assert_eq!(*op, "wait");
            assert_eq!(error, "timed out");
        }
        other => panic!("expected a wait timeout, got {other:?}"),
    }
    assert!(waited >= Duration::from_millis(90) && waited < T, "ovsdb-server held the wait {waited:?}");
    let cni = CniError::from(err);
    assert_eq!(cni.code, codes::IO_FAILURE);
    assert!(cni.details.contains("timed out"), "{cni:?}");
    // The connection is still usable after a failed transaction.
    c.echo().await.expect("echo after a failed transaction");
}

#[tokio::test]
async fn commit_failure_is_reported_at_the_index_after_the_last_op_with_ovsdb_text() {
    let lab = Lab::start_db_only("ovsdb-commit").expect("lab");
    let mut c = client(&lab).await;
    // Two bridges with one name violate Bridge's index: every op succeeds, the commit fails.
    let ops = vec![
        Op::insert_named("Bridge", "a", row([("name", json!("dup"))])),
        Op::insert_named("Bridge", "b", row([("name", json!("dup"))])),
        Op::mutate("Open_vSwitch", vec![], vec![Mutation::insert("bridges", set([named_uuid("a"), named_uuid("b")]))]),
    ];
    let err = c.transact(OPEN_VSWITCH_DB, ops).await.unwrap_err();
    match &err {
        OvsdbError::Transaction { op_index: 3, op, error, details, .. } => {
            assert_eq!(*op, "commit");
            assert_eq!(error, "constraint violation");
            assert!(details.contains("dup"), "details name the duplicate: {details}");
        }
        other => panic!("expected a commit error, got {other:?}"),
    }
    let cni = CniError::from(err);
    assert_eq!(cni.code, codes::IO_FAILURE);
    assert!(cni.details.starts_with("constraint violation: "), "{cni:?}");
}

#[tokio::test]
async fn rpc_errors_and_unknown_columns_carry_ovsdb_text_and_code_5() {
    let lab = Lab::start_db_only("ovsdb-rpc").expect("lab");
    let mut c = client(&lab).await;
    let dbs = c.list_dbs().await.expect("list_dbs");
    assert!(dbs.iter().any(|d| d == OPEN_VSWITCH_DB), "{dbs:?}");
    let schema = c.get_schema(OPEN_VSWITCH_DB).await.expect("get_schema");
    assert_eq!(schema["name"], "Open_vSwitch");
    let err = c.get_schema("NoSuchDb").await.unwrap_err();
    assert!(matches!(&err, OvsdbError::Rpc { error, .. } if error == "unknown database"), "{err:?}");
    assert_eq!(CniError::from(err).code, codes::IO_FAILURE);
    let bad = Op::select("Bridge", vec![], &["no_such_column"]);
    let err = c.transact(OPEN_VSWITCH_DB, vec![bad]).await.unwrap_err();
    assert!(matches!(&err, OvsdbError::Transaction { op_index: 0, .. }), "{err:?}");
    assert_eq!(CniError::from(err).code, codes::IO_FAILURE);
}

#[tokio::test]
async fn concurrent_transactions_on_separate_connections_all_commit() {
    let lab = Lab::start_db_only("ovsdb-conc").expect("lab");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let sock = lab.db_socket();
        tasks.spawn(async move {
            let mut c = OvsdbClient::connect(&sock, T).await?;
            let ops = add_bridge_ops(&format!("br-c{i}"), &format!("p{i}"), "internal");
            c.transact(OPEN_VSWITCH_DB, ops).await
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("transaction");
        ok += 1;
    }
    assert_eq!(ok, 8);
    let mut c = client(&lab).await;
    let res = c.transact(OPEN_VSWITCH_DB, vec![Op::select("Open_vSwitch", vec![], &["bridges"])]).await.unwrap();
    let bridges = as_uuid_set(column(&res[0].rows()[0], "bridges").unwrap()).unwrap();
    assert_eq!(bridges.len(), 8, "every bridge attached");
    assert_eq!(lab.bridges().unwrap().len(), 8);
}

#[tokio::test]
async fn missing_socket_is_try_again_and_fast() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let err = OvsdbClient::connect(&dir.path().join("db.sock"), T).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(500), "took {:?}", t.elapsed());
    assert!(matches!(err, OvsdbError::Connect { .. }), "{err:?}");
    let cni = CniError::from(err);
    assert_eq!(cni.code, codes::TRY_AGAIN_LATER);
    assert!(cni.msg.contains("db.sock"), "names the endpoint: {}", cni.msg);
    let err = OvsdbClient::connect_endpoint("tcp:127.0.0.1:6640", T).await.unwrap_err();
    assert!(matches!(err, OvsdbError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn path_that_is_not_a_socket_and_stale_socket_are_try_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.sock");
    std::fs::write(&file, b"not a socket").unwrap();
    let err = OvsdbClient::connect(&file, T).await.unwrap_err();
    assert_eq!(CniError::from(err).code, codes::TRY_AGAIN_LATER);
    // A socket whose server is gone (ovsdb-server killed): connection refused.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = OvsdbClient::connect(&stale, T).await.unwrap_err();
    assert_eq!(CniError::from(err).code, codes::TRY_AGAIN_LATER);
}

/// A fake ovsdb-server: accepts one connection and hands it to `serve`.
fn fake_server<F, Fut>(dir: &Path, serve: F) -> std::path::PathBuf
where
    F: FnOnce(tokio::net::UnixStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let path = dir.join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        if let Ok((s, _)) = listener.accept().await {
            serve(s).await;
        }
    });
    path
}

#[tokio::test]
async fn peer_that_closes_is_try_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_server(dir.path(), |s| async move { drop(s) });
    let mut c = OvsdbClient::connect(&path, T).await.unwrap();
    let err = c.echo().await.unwrap_err();
    assert!(matches!(err, OvsdbError::Closed { .. } | OvsdbError::Io { .. }), "{err:?}");
    assert_eq!(CniError::from(err).code, codes::TRY_AGAIN_LATER);
    let err = c.echo().await.unwrap_err();
    assert_eq!(CniError::from(err).code, codes::TRY_AGAIN_LATER, "a closed connection stays closed");
}

#[tokio::test]
async fn peer_that_never_answers_times_out_with_waited_ms() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_server(dir.path(), |s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let mut c = OvsdbClient::connect(&path, Duration::from_millis(200)).await.unwrap();
    let t = Instant::now();
    let err = c.transact(OPEN_VSWITCH_DB, vec![Op::comment("x")]).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "bounded: {:?}", t.elapsed());
    match &err {
        OvsdbError::Timeout { method, waited_ms, .. } => {
            assert_eq!(method, "transact");
            assert!(*waited_ms >= 190, "{waited_ms}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_timeout());
    assert_eq!(CniError::from(err).code, codes::TRY_AGAIN_LATER);
}

#[tokio::test]
async fn garbage_from_peer_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_server(dir.path(), |mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut c = OvsdbClient::connect(&path, T).await.unwrap();
    let err = c.echo().await.unwrap_err();
    assert!(matches!(err, OvsdbError::Protocol { .. }), "{err:?}");
    assert_eq!(CniError::from(err).code, codes::IO_FAILURE);
    let t = Instant::now();
    assert!(c.echo().await.is_err(), "a desynchronised stream is not read again");
    assert!(t.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn server_echo_is_answered_stray_messages_ignored_and_fragments_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<Value>();
    let path = fake_server(dir.path(), |s| async move {
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        // Our client ends each request with a newline; a fake may read line by line.
        let req: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        let id = req["id"].clone();
        // Keepalive request, a notification for a monitor nobody asked for, a stale reply.
        w.write_all(br#"{"method":"echo","params":["ka",1],"id":"echo"}"#).await.unwrap();
        w.write_all(
            br#"{"method":"update","params":["someone-else",{}],"id":null}{"id":999,"result":[],"error":null}"#,
        )
        .await
        .unwrap();
        let echo_reply: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        let _ = tx.send(echo_reply);
        // The real reply in fragments split inside a string and a number.
        let reply = serde_json::to_vec(&json!({"id": id, "result": [{"count": 12345}], "error": null})).unwrap();
        for part in reply.chunks(7) {
            w.write_all(part).await.unwrap();
            w.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let mut c = OvsdbClient::connect(&path, T).await.unwrap();
    let res = c
        .transact(OPEN_VSWITCH_DB, vec![Op::mutate("Bridge", vec![], vec![Mutation::add("x", 1)])])
        .await
        .expect("reply after the keepalive");
    assert_eq!(res[0].count, Some(12345));
    let echo_reply = rx.await.unwrap();
    assert_eq!(echo_reply, json!({"id": "echo", "result": ["ka", 1], "error": null}));
}

#[tokio::test]
async fn transact_and_wait_without_vswitchd_times_out_with_code_11() {
    let lab = Lab::start_db_only("ovsdb-nowait").expect("lab");
    let mut c = client(&lab).await;
    let t = Instant::now();
    let err = c
        .transact_and_wait(OPEN_VSWITCH_DB, add_bridge_ops("br-w", "pw", "internal"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "bounded: {:?}", t.elapsed());
    match &err {
        OvsdbError::ApplyTimeout { waited_ms, next_cfg, .. } => {
            assert!(*waited_ms >= 290, "{waited_ms}");
            assert_eq!(*next_cfg, 1);
        }
        other => panic!("expected an apply timeout, got {other:?}"),
    }
    let cni = CniError::from(err);
    assert_eq!(cni.code, codes::TRY_AGAIN_LATER);
    assert!(cni.msg.contains("ms"), "{}", cni.msg);
    // The transaction itself committed; only vswitchd's acknowledgement is missing.
    assert_eq!(lab.bridges().unwrap(), vec!["br-w"]);
}

#[tokio::test]
async fn transact_and_wait_returns_once_vswitchd_applied_and_ofport_is_readable() {
    let lab = Lab::shared("ovsdb-client").expect("lab with ovs-vswitchd-dpdk");
    let mut c = client(&lab).await;
    let t = Instant::now();
    let res = c
        .transact_and_wait(OPEN_VSWITCH_DB, add_bridge_ops("br-v", "vhu-v", "dpdkvhostuser"), T)
        .await
        .expect("vswitchd applies the new bridge and port");
    let add = t.elapsed();
    assert_eq!(res.len(), 5, "only the caller's results are returned");
    check_count(OPEN_VSWITCH_DB, &add_bridge_ops("br-v", "vhu-v", "dpdkvhostuser"), &res, 4, 1).unwrap();
    // When the wait ends, the monitor has carried vswitchd's transaction: a valid ofport and no
    // error, without a read (the port step's settle relies on it and reads only when missing).
    let (seen_ofport, seen_error) = c.seen_interface("vhu-v").expect("the monitor saw the interface change");
    let seen_ofport = as_optional_integer(seen_ofport).unwrap();
    assert!(seen_ofport.is_some_and(|p| p > 0), "{seen_ofport:?}");
    assert_eq!(as_optional_string(seen_error).unwrap(), None, "{seen_error:?}");

    let res = c
        .transact(
            OPEN_VSWITCH_DB,
            vec![
                Op::select("Interface", vec![Condition::eq("name", json!("vhu-v"))], &["ofport", "error"]),
                Op::select("Open_vSwitch", vec![], &["cur_cfg", "next_cfg"]),
            ],
        )
        .await
        .unwrap();
    let iface = &res[0].rows()[0];
    let ofport = as_optional_integer(column(iface, "ofport").unwrap()).unwrap();
    assert!(ofport.is_some_and(|p| p > 0), "vswitchd assigned an ofport before cur_cfg caught up: {iface:?}");
    assert_eq!(ofport, seen_ofport, "the monitor's ofport is OVSDB's");
    assert_eq!(as_optional_string(column(iface, "error").unwrap()).unwrap(), None, "{iface:?}");
    let cfg = &res[1].rows()[0];
    assert!(cfg["cur_cfg"].as_i64() >= cfg["next_cfg"].as_i64(), "{cfg:?}");
    assert!(lab.sock_dir().join("vhu-v").exists(), "vswitchd created the server-mode socket");

    // Same connection, monitor reused: remove the bridge and wait again.
    let t = Instant::now();
    let br = c
        .transact(OPEN_VSWITCH_DB, vec![Op::select("Bridge", vec![Condition::eq("name", json!("br-v"))], &["_uuid"])])
        .await
        .unwrap();
    let uuid = as_uuid(column(&br[0].rows()[0], "_uuid").unwrap()).unwrap();
    c.transact_and_wait(
        OPEN_VSWITCH_DB,
        vec![Op::mutate("Open_vSwitch", vec![], vec![Mutation::delete("bridges", set([uuid.to_json()]))])],
        T,
    )
    .await
    .expect("delete applied");
    let del = t.elapsed();
    assert!(!lab.bridges().unwrap().contains(&"br-v".to_string()));
    assert!(!lab.sock_dir().join("vhu-v").exists(), "vswitchd removed the socket of the deleted port");
    eprintln!("TIMING transact_and_wait add bridge+vhost port {add:?}, delete {del:?}");
}

#[tokio::test]
async fn empty_transact_and_wait_proves_vswitchd_is_alive() {
    let lab = Lab::shared("ovsdb-client").expect("lab with ovs-vswitchd-dpdk");
    let mut c = client(&lab).await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        c.transact_and_wait(OPEN_VSWITCH_DB, vec![], T).await.expect("vswitchd acknowledges");
        samples.push(t.elapsed());
    }
    assert!(c.cur_cfg().is_some());
    samples.sort();
    eprintln!("TIMING empty transact_and_wait median {:?} (of {:?})", samples[2], samples);
}
