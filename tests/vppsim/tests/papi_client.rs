//! vpp_papi (VPP's own Python client, an independent implementation of the socket transport and
//! the message layouts) against the simulator: connect, dumps, a memif create, bridge domain,
//! addresses and VPP's error codes. Needs python3 with vpp_papi (scripts/setup.sh installs it).

use serde_json::Value;
use std::process::Command;
use vppsim::Sim;

#[test]
fn vpp_papi_talks_to_the_simulator() {
    let dir = std::env::temp_dir().join(format!("vppsim-papi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let sim = Sim::start(&dir);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../backends/vpp/tests/papi_client.py");
    let memif = dir.join("papi.sock");
    let out = Command::new("python3")
        .arg(&script)
        .arg(vppsim::api_dir())
        .arg(sim.socket())
        .arg(&memif)
        .output()
        .expect("python3 must be installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "vpp_papi client failed (needs `pip install vpp-papi`, see scripts/setup.sh): {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON from the client");
    assert_eq!(r["version"], "26.06-release");
    let sid = r["socket_id"].as_u64().expect("socket id");
    let idx = r["sw_if_index"].as_u64().expect("sw_if_index");
    assert_eq!(r["memifs"], serde_json::json!([[idx, sid, 0, format!("memif{sid}/0")]]));
    let ifs = r["interfaces"].as_array().expect("interfaces");
    assert!(ifs.iter().any(|i| i[0] == idx && i[2] == "papi-tag" && i[3] == 1), "tag and admin up: {ifs:?}");
    assert!(ifs.iter().any(|i| i[1] == "local0"), "local0 is always there: {ifs:?}");
    assert_eq!(r["bd_members"], serde_json::json!([idx]));
    assert_eq!(r["addresses"], serde_json::json!(["10.9.0.1/24"]));
    assert_eq!(r["bd0_retval"], -119, "bridge domain 0 (VPP's default) already exists");
    assert_eq!(r["second_delete_retval"], -2, "an unknown sw_if_index");
    let log = sim.log();
    assert_eq!(log.first().map(String::as_str), Some("sockclnt_create"));
    assert!(log.contains(&"control_ping".to_string()), "papi ends dumps with control_ping: {log:?}");
    assert_eq!(log.last().map(String::as_str), Some("sockclnt_delete"), "{log:?}");
    assert!(sim.memifs().is_empty());
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
