//! A concurrency storm against a real OVS: 8 workers, 1008 ADD/DEL operations on distinct pods that
//! share one plugin-created bridge, so the last DEL of the bridge keeps racing the next ADD.
//! Zero errors, every added port on the bridge, and nothing left at the end.

mod support;

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::Node;
use testlab::Lab;

const WORKERS: usize = 8;
const ROUNDS: usize = 63; // 8 workers × 63 rounds × (ADD + DEL) = 1008 operations

#[test]
fn storm_of_1008_add_del_on_one_bridge_has_no_error_and_no_leak() {
    let lab = Arc::new(Lab::start("storm").expect("lab"));
    let node = Arc::new(Node::for_ovs(&lab.db_socket(), lab.sock_dir()));
    let conf = json!({
        "cniVersion": "1.1.0", "name": "storm-net", "type": "userspace",
        "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "vhost": {"mode": "client"},
                 "bridge": {"bridgeName": "br-storm"}}
    });
    let ops = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (lab, node, conf, ops, errors) = (lab.clone(), node.clone(), conf.clone(), ops.clone(), errors.clone());
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    // Distinct first 12 characters per pod: w and r lead the id.
                    let cid = format!("s{w}r{r:03}0000000000000000");
                    let port = format!("{}-net1", &cid[..12]);
                    let add = node.cni("ADD", &cid, "net1", &conf, &[]);
                    ops.fetch_add(1, Ordering::Relaxed);
                    if !add.ok() {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(format!("ADD {cid}: {}", add.stdout));
                        continue;
                    }
                    // The port our ADD reported must be on the bridge now (not dropped by a
                    // racing bridge deletion).
                    match lab.ports("br-storm") {
                        Ok(p) if p.contains(&port) => {}
                        other => errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!("after ADD {cid}: port {port} not on br-storm: {other:?}")),
                    }
                    let del = node.cni("DEL", &cid, "net1", &conf, &[]);
                    ops.fetch_add(1, Ordering::Relaxed);
                    if !del.ok() {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(format!("DEL {cid}: {}", del.stdout));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        errors.is_empty(),
        "{} errors in the storm, e.g.:\n{}",
        errors.len(),
        errors[..errors.len().min(10)].join("\n")
    );
    assert_eq!(ops.load(Ordering::Relaxed), WORKERS * ROUNDS * 2);
    assert!(!lab.bridges().expect("bridges").iter().any(|b| b == "br-storm"), "the bridge went with the last port");
    let left = node.leftovers();
    assert!(left.is_empty(), "files left: {left:?}");
    let ifaces = lab.vsctl(&["--bare", "--columns=name", "list", "Interface"]).expect("interfaces");
    assert!(ifaces.trim().is_empty(), "interfaces left in OVS: {ifaces}");
    drop(node);
    match Arc::try_unwrap(lab) {
        Ok(lab) => lab.stop().expect("stop lab"),
        Err(_) => panic!("lab still shared"),
    }
}
