//! Runs the data-driven bad-input table (`tests/bad_input/cases.json`, described in its README)
//! through the real binary: each malformed input gets the right CNI code, a message naming the
//! problem, exactly one JSON document on stdout, and no change on disk.

mod support;

use serde_json::Value;
use support::{merge_patch, recording_conf, this_netns, Node, TESTKIT_BIN};

fn fill(s: &str, node: &Node) -> String {
    s.replace("{root}", &node.root.path().display().to_string())
}

fn fill_value(v: &mut Value, node: &Node) {
    match v {
        Value::String(s) => *s = fill(s, node),
        Value::Array(a) => a.iter_mut().for_each(|x| fill_value(x, node)),
        Value::Object(o) => o.values_mut().for_each(|x| fill_value(x, node)),
        _ => {}
    }
}

/// `env_hex`: variables whose values are raw bytes (non-UTF-8), hex-encoded.
fn env_bytes(case: &Value) -> Vec<(String, Vec<u8>)> {
    case["env_hex"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), hex(v.as_str().unwrap_or_default()))).collect())
        .unwrap_or_default()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).filter_map(|i| s.get(i..i + 2)).filter_map(|b| u8::from_str_radix(b, 16).ok()).collect()
}

#[test]
fn bad_input_table() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("bad_input/cases.json")).expect("cases.json is valid JSON");
    assert!(cases.iter().filter(|c| c["code"] != 0).count() >= 40, "the table must hold at least 40 bad inputs");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap_or("?");
        let node = Node::new();
        let mut env: Vec<(String, String)> = vec![
            ("CNI_COMMAND".into(), "ADD".into()),
            ("CNI_CONTAINERID".into(), "3f1c0ffee0ddba11d00dfeedfacecafe".into()),
            ("CNI_IFNAME".into(), "net1".into()),
            ("CNI_NETNS".into(), this_netns()),
            ("CNI_PATH".into(), "/usr/lib/cni".into()),
        ];
        if let Some(over) = case["env"].as_object() {
            for (k, v) in over {
                env.retain(|(ek, _)| ek != k);
                env.push((k.clone(), fill(v.as_str().unwrap_or_default(), &node)));
            }
        }
        if let Some(unset) = case["unset"].as_array() {
            env.retain(|(k, _)| !unset.iter().any(|u| u == k.as_str()));
        }
        let stdin: Vec<u8> = if let Some(s) = case["stdin"].as_str() {
            fill(s, &node).into_bytes()
        } else if let Some(h) = case["stdin_hex"].as_str() {
            hex(h)
        } else if let Some(n) = case["stdin_pad"].as_u64() {
            // A valid config padded with an unknown key up to n bytes.
            let mut conf = recording_conf("1.1.0", "bad-input-net");
            conf["pad"] = Value::String("x".repeat(n as usize));
            conf.to_string().into_bytes()
        } else {
            let mut conf = recording_conf("1.1.0", "bad-input-net");
            let mut patch = case["patch"].clone();
            fill_value(&mut patch, &node);
            if !patch.is_null() {
                merge_patch(&mut conf, &patch);
            }
            conf.to_string().into_bytes()
        };
        // Optional set-up: objects planted on the node, or a first ADD of the same attachment.
        if let Some([path, target]) = case["plant_symlink"].as_array().map(|a| a.as_slice()) {
            let path = node.path(path.as_str().unwrap_or_default());
            std::fs::create_dir_all(path.parent().expect("parent")).expect("plant dir");
            std::os::unix::fs::symlink(target.as_str().unwrap_or_default(), &path).expect("plant symlink");
        }
        if let Some(path) = case["plant_file"].as_str() {
            let path = node.path(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("plant dir");
            std::fs::write(&path, b"planted").expect("plant file");
        }
        if case["before"].as_str() == Some("ADD") {
            let first = node.exec(TESTKIT_BIN, &env, &stdin);
            assert!(first.ok(), "{name}: the first ADD must succeed: {}", first.stdout);
        }
        let before = node.snapshot();
        let run = node.exec_os(TESTKIT_BIN, &env, &env_bytes(case), &stdin);
        let want = case["code"].as_u64().unwrap_or(0);
        if want == 0 {
            if !run.ok() {
                failures.push(format!("{name}: expected success, got {} {}", run.stdout, run.stderr));
                continue;
            }
            let mut del_env = env.clone();
            del_env.retain(|(k, _)| k != "CNI_COMMAND");
            del_env.push(("CNI_COMMAND".into(), "DEL".into()));
            let del = node.exec(TESTKIT_BIN, &del_env, &stdin);
            if !del.ok() {
                failures.push(format!("{name}: DEL after valid ADD failed: {}", del.stdout));
            }
            continue;
        }
        let doc: Value = match serde_json::from_str(&run.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: stdout is not one JSON document ({e}): {:?}", run.stdout));
                continue;
            }
        };
        if run.ok() {
            failures.push(format!("{name}: exit code 0 for an error"));
        }
        if doc["code"].as_u64() != Some(want) {
            failures.push(format!("{name}: expected code {want}, got {doc}"));
            continue;
        }
        let msg = doc["msg"].as_str().unwrap_or_default().to_lowercase();
        for needle in case["msg"].as_array().into_iter().flatten() {
            let needle = needle.as_str().unwrap_or_default().to_lowercase();
            if !msg.contains(&needle) {
                failures.push(format!("{name}: message does not name {needle:?}: {msg}"));
            }
        }
        if doc["cniVersion"].as_str().is_none() {
            failures.push(format!("{name}: error JSON without cniVersion: {doc}"));
        }
        let after = node.snapshot();
        if after != before {
            let added: Vec<_> = after.difference(&before).collect();
            failures.push(format!("{name}: bad input changed the disk: {added:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
