//! `userspace inspect [--json]`: the attachments on this node (container, ifname, network, bridge,
//! port, socket, state, netns, age), as a table or JSON. Reads only: never locks for longer than a probe.

use crate::reconcile::survey::{self, bridge_of, human, port_of, Entry, Survey};
use crate::state::StateDir;
use serde_json::{json, Value};
use std::time::SystemTime;

const USAGE: &str = "usage: userspace inspect [--json]
  Lists the attachments recorded on this node: container, ifname, network, bridge, port, socket,
  state (complete | in-progress | orphaned), netns (alive | gone | unknown) and age.
  orphaned: an ADD or DEL was interrupted; the runtime's next DEL or `userspace gc` finishes it.
";

pub fn main(registry: &crate::pipeline::Registry, args: &[String]) -> i32 {
    let mut json_out = false;
    for a in args {
        match a.as_str() {
            "--json" => json_out = true,
            "-h" | "--help" => {
                crate::stdout::out!("{USAGE}");
                return 0;
            }
            other => {
                eprintln!("userspace inspect: unknown argument {other:?}\n{USAGE}");
                return 2;
            }
        }
    }
    let settings = match super::settings_or_exit("inspect", registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let state = StateDir::at(&settings.state_dir);
    let found = match survey::survey(&state, SystemTime::now()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("userspace inspect: {e}");
            return 1;
        }
    };
    if json_out {
        crate::stdout::outln!("{}", to_json(&found));
    } else {
        crate::stdout::out!("{}", table(&found));
    }
    0
}

fn entry_json(e: &Entry) -> Value {
    let r = &e.record;
    let a = &r.attachment;
    let reason = match &e.netns {
        crate::reconcile::netns::NetnsState::Unverifiable(why) => Some(why.clone()),
        _ => None,
    };
    json!({
        "containerId": a.id.container_id,
        "ifname": a.id.ifname,
        "network": a.network,
        "engine": r.plan.engine,
        "bridge": bridge_of(r),
        "port": port_of(r),
        "socket": r.plan.backend.socket.as_ref().map(|s| s.host_path.display().to_string()),
        "podSocket": r.plan.backend.socket.as_ref().map(|s| s.pod_path.display().to_string()),
        "state": e.state.as_str(),
        "netns": a.netns,
        "netnsState": e.netns.as_str(),
        "netnsReason": reason,
        "pod": {"namespace": a.pod.namespace, "name": a.pod.name, "uid": a.pod.uid},
        "ageSeconds": e.age.as_secs(),
        "createdUnixMs": r.created_unix_ms,
        "record": e.path.display().to_string(),
    })
}

/// `{"attachments": [...], "unreadable": [{"record", "error"}]}` (torn records among them).
pub fn to_json(s: &Survey) -> Value {
    let unreadable: Vec<Value> = s
        .unreadable
        .iter()
        .map(|(p, e)| json!({"record": p.display().to_string(), "error": e}))
        .chain(s.torn.iter().map(|(p, e)| {
            json!({"record": p.display().to_string(), "error": format!("torn ({e}): the next `userspace gc` removes it")})
        }))
        .collect();
    json!({
        "attachments": s.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "unreadable": unreadable,
    })
}

/// A fixed-width table; the container id is cut to its first 12 characters as `docker ps` does
/// (`--json` has the full id).
pub fn table(s: &Survey) -> String {
    let header = ["CONTAINER", "IFNAME", "NETWORK", "BRIDGE", "PORT", "SOCKET", "STATE", "NETNS", "AGE"];
    let dash = || "-".to_owned();
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for e in &s.entries {
        let r = &e.record;
        rows.push([
            r.attachment.id.cid12().to_owned(),
            r.attachment.id.ifname.clone(),
            r.attachment.network.clone(),
            bridge_of(r).unwrap_or_else(dash),
            port_of(r).unwrap_or_else(dash),
            r.plan.backend.socket.as_ref().map(|s| s.host_path.display().to_string()).unwrap_or_else(dash),
            e.state.as_str().to_owned(),
            e.netns.as_str().to_owned(),
            human(e.age),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if s.entries.is_empty() {
        out.push_str("(no attachments on this node)\n");
    }
    for (path, err) in &s.unreadable {
        out.push_str(&format!("unreadable record {}: {err}\n", path.display()));
    }
    for (path, err) in &s.torn {
        out.push_str(&format!("torn record {} ({err}): the next `userspace gc` removes it\n", path.display()));
    }
    out
}
