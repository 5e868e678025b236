//! The artifact that ships: the static (musl) release binary and the OCI image built from it by
//! `scripts/build-image.sh`. Every test execs that same file; the image test runs it with podman.
//!
//! Slow: builds the release binary for x86_64-unknown-linux-musl (needs the rustup target and
//! Debian's musl-tools) and the image (buildah, podman, skopeo, runc; `scripts/setup.sh` installs
//! them). Measurements are printed: `cargo test --test packaging -- --nocapture`.

use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-linux-musl";
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const ENGINES: &[&str] = &["ovs-dpdk", "vpp"];
const CNI_VERSIONS: &str = r#""supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]"#;
/// Bounds that catch a regression by an order of magnitude, not noise (measured: see README).
const MAX_BINARY_BYTES: u64 = 24 << 20;
const MAX_VERSION_MEDIAN: Duration = Duration::from_millis(20);
/// The flags that work on these machines (lab/PACKAGING.md): runc, not crun; explicit limits,
/// as root here lacks CAP_SYS_RESOURCE; no network, whose default leaves iptables chains behind.
const PODMAN_RUN: &[&str] = &[
    "--runtime",
    "runc",
    "run",
    "--rm",
    "--network=none",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
];

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The static release binary, built once per test process with cargo's own incremental build
/// (a no-op when it is up to date).
fn artifact() -> &'static Path {
    static ARTIFACT: OnceLock<PathBuf> = OnceLock::new();
    ARTIFACT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = run(Command::new(cargo).current_dir(MANIFEST_DIR).args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--bin",
            "userspace",
            "--message-format=json-render-diagnostics",
        ]));
        let stderr = text(&out.stderr);
        if !out.status.success() {
            let hint = if stderr.contains("target may not be installed") {
                format!("the Rust target is missing: rustup target add {TARGET}")
            } else if stderr.contains("musl-gcc") || stderr.contains("x86_64-linux-musl-gcc") {
                "ring needs a musl C compiler: apt-get install musl-tools".into()
            } else {
                "see the build output".into()
            };
            panic!("cannot build the static release binary ({hint}):\n{stderr}");
        }
        let exe = text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "userspace")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo reported no userspace executable:\n{stderr}"));
        assert!(exe.to_string_lossy().contains(TARGET), "{} is not the {TARGET} build", exe.display());
        exe
    })
}

fn version_call(bin: &Path) -> Output {
    run(Command::new(bin).env_clear().env("CNI_COMMAND", "VERSION"))
}

fn assert_answers_version(bin: &Path) {
    let out = version_call(bin);
    let stdout = text(&out.stdout);
    assert!(out.status.success() && stdout.contains(CNI_VERSIONS), "{}: VERSION gave {stdout}", bin.display());
}

#[test]
fn the_artifact_is_statically_linked_and_carries_every_backend() {
    let bin = artifact();
    let file = ok(Command::new("file").arg("-L").arg(bin));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "the shipped binary must not depend on the host's libc: {file}"
    );
    let ldd = run(Command::new("ldd").arg(bin));
    let ldd_all = format!("{}{}", text(&ldd.stdout), text(&ldd.stderr));
    assert!(
        ldd_all.contains("statically linked") || ldd_all.contains("not a dynamic executable"),
        "ldd finds shared libraries: {ldd_all}"
    );

    // An unreferenced backend crate's registration can be dropped at link time (LTO): ask the
    // artifact itself.
    let list: Value = serde_json::from_str(&ok(Command::new(bin).arg("backends").arg("--json"))).expect("JSON");
    let engines: Vec<&str> = list.as_array().expect("a list").iter().filter_map(|b| b["engine"].as_str()).collect();
    for want in ENGINES {
        assert!(engines.contains(want), "backend {want} is missing from the artifact: {engines:?}");
    }
    let bytes = std::fs::read(bin).unwrap();
    assert!(
        !bytes.windows(b"USERSPACE_CNI_FAILPOINT".len()).any(|w| w == b"USERSPACE_CNI_FAILPOINT"),
        "the release artifact carries failpoints"
    );
    assert!(ok(Command::new(bin).arg("version")).contains(VERSION));
}

#[test]
fn the_artifact_is_small_and_answers_version_fast() {
    let bin = artifact();
    let size = std::fs::metadata(bin).unwrap().len();
    assert_answers_version(bin);
    // Warm the page cache, then time whole process runs as a runtime makes them.
    for _ in 0..20 {
        version_call(bin);
    }
    let mut times: Vec<Duration> = (0..300)
        .map(|_| {
            let t = Instant::now();
            let out = version_call(bin);
            let elapsed = t.elapsed();
            assert!(out.status.success());
            elapsed
        })
        .collect();
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    let (median, p95) = (pct(50), pct(95));
    eprintln!(
        "packaging: static binary {} bytes ({:.1} MiB); CNI_COMMAND=VERSION start to exit over {} runs: \
         median {:.2} ms, p95 {:.2} ms, min {:.2} ms",
        size,
        size as f64 / (1 << 20) as f64,
        times.len(),
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    assert!(size <= MAX_BINARY_BYTES, "the binary grew to {size} bytes (bound {MAX_BINARY_BYTES})");
    assert!(median <= MAX_VERSION_MEDIAN, "VERSION takes {median:?} (bound {MAX_VERSION_MEDIAN:?})");
}

#[test]
fn install_of_the_artifact_is_idempotent_and_keeps_settings() {
    let bin = artifact();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("opt/cni/bin");
    std::fs::create_dir_all(&dir).unwrap();
    let settings = t.path().join("etc/userspace-cni/userspace.toml");

    let first = ok(Command::new(bin).arg("install").arg(&dir).arg("--settings").arg(&settings));
    let installed = dir.join("userspace");
    assert!(first.contains(&format!("installed {}", installed.display())), "{first}");
    assert!(first.contains("wrote the settings file"), "{first}");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(bin).unwrap(), "installed copy differs");
    let meta = std::fs::metadata(&installed).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_answers_version(&installed);

    std::fs::write(&settings, "timeout_ms = 5000\n").unwrap();
    let second = ok(Command::new(bin).arg("install").arg(&dir).arg("--settings").arg(&settings));
    assert!(second.contains("unchanged") && second.contains("nothing written"), "{second}");
    assert!(second.contains("exists: left as is"), "{second}");
    assert_eq!(std::fs::metadata(&installed).unwrap().ino(), meta.ino(), "an unchanged binary is not rewritten");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "timeout_ms = 5000\n");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["userspace"], "nothing but the binary in the bin dir");

    // The installed copy installs itself too (an upgrade run from the host).
    let again = ok(Command::new(&installed).arg("install").arg(&dir));
    assert!(again.contains("unchanged"), "{again}");

    let missing = run(Command::new(bin).arg("install").arg(t.path().join("nope")));
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("does not exist"), "{}", text(&missing.stderr));
    assert!(missing.stdout.is_empty(), "errors go to stderr");
    let usage = run(Command::new(bin).args(["install", "--force"]));
    assert_eq!(usage.status.code(), Some(2));
}

fn need(tool: &str) {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: the image tests need buildah, podman, skopeo and runc \
         (apt-get install musl-tools buildah podman skopeo umoci runc; scripts/setup.sh does it)"
    );
}

/// podman with its storage, runtime state and temp files under `root`, never the host's.
fn podman(root: &Path) -> Command {
    let conf = root.join("storage.conf");
    if !conf.exists() {
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/storage\"\nrunroot = \"{0}/run\"\n",
            root.display()
        );
        std::fs::write(&conf, storage).unwrap();
        let engine = format!("[engine]\ntmp_dir = \"{}/tmp\"\nevents_logger = \"none\"\n", root.display());
        std::fs::write(root.join("containers.conf"), engine).unwrap();
    }
    let mut c = Command::new("timeout");
    c.args(["300", "podman"])
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("CONTAINERS_CONF", root.join("containers.conf"));
    c
}

#[test]
fn the_image_installs_an_identical_binary_that_answers_version() {
    for tool in ["buildah", "podman", "skopeo", "runc", "file"] {
        need(tool);
    }
    let bin = artifact();
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("userspace-cni.oci.tar");
    let started = Instant::now();
    let script = Path::new(MANIFEST_DIR).join("scripts/build-image.sh");
    let printed = ok(Command::new(&script).arg("--bin").arg(bin).arg("--out").arg(&archive));
    let build_time = started.elapsed();
    assert_eq!(printed.lines().last(), Some(archive.to_str().unwrap()), "the script prints the archive path");

    // The image's own description: entrypoint, version label, the tag in the archive.
    let config: Value = serde_json::from_str(&ok(Command::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci-archive:{}", archive.display()))))
    .expect("image config JSON");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/userspace"]), "{config}");
    assert_eq!(config["config"]["Labels"]["org.opencontainers.image.version"], VERSION, "{config}");
    let raw: Value = serde_json::from_str(&ok(Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .arg(format!("oci-archive:{}", archive.display()))))
    .expect("manifest JSON");
    let layers = raw["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "FROM scratch + one COPY context: one layer\n{raw}");
    let archive_bytes = std::fs::metadata(&archive).unwrap().len();
    let layer_bytes = layers[0]["size"].as_u64().unwrap_or(0);
    eprintln!(
        "packaging: image userspace-cni:{VERSION}: oci-archive {archive_bytes} bytes ({:.1} MiB), compressed \
         layer {layer_bytes} bytes; built in {:.1} s",
        archive_bytes as f64 / (1 << 20) as f64,
        build_time.as_secs_f64()
    );

    // Run it as the DaemonSet's init container does, with a temp dir as the host's CNI bin dir.
    let state = t.path().join("podman");
    std::fs::create_dir_all(&state).unwrap();
    let host_bin = t.path().join("host-cni-bin");
    std::fs::create_dir(&host_bin).unwrap();
    let image = format!("oci-archive:{}", archive.display());
    let install = |extra_volume: &str, dir: &str| {
        let out = run(podman(&state)
            .args(PODMAN_RUN)
            .arg("-v")
            .arg(format!("{}:/host/opt/cni/bin", host_bin.display()))
            .args(if extra_volume.is_empty() { vec![] } else { vec!["-v", extra_volume] })
            .arg(&image)
            .args(["install", dir]));
        assert!(
            out.status.success(),
            "podman run of the image failed ({})\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let started = Instant::now();
    let first = install("", "/host/opt/cni/bin");
    let run_time = started.elapsed();
    assert!(first.contains("installed /host/opt/cni/bin/userspace"), "{first}");
    let installed = host_bin.join("userspace");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(bin).unwrap(), "installed binary differs");
    assert_eq!(std::fs::metadata(&installed).unwrap().permissions().mode() & 0o7777, 0o755);
    assert_answers_version(&installed);

    let second = install("", "/host/opt/cni/bin");
    assert!(second.contains("unchanged"), "a second install writes nothing: {second}");

    // /var/run is /run in the image, as on the host: a record's /var/run/netns/... path resolves.
    let probe = t.path().join("probe");
    std::fs::create_dir(&probe).unwrap();
    let via_symlink = install(&format!("{}:/run/probe", probe.display()), "/var/run/probe");
    assert!(via_symlink.contains("installed /var/run/probe/userspace"), "{via_symlink}");
    assert!(probe.join("userspace").is_file(), "/var/run/probe did not reach the /run/probe mount");
    eprintln!("packaging: podman run of the image (install): {:.2} s", run_time.as_secs_f64());
}
