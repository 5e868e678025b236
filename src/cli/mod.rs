//! The operator CLI (the binary run by hand, without CNI_COMMAND): a dispatcher over one module
//! per command. Prints for humans (or `--json`) on stdout; never runs in CNI mode.

pub mod adopt;
pub mod doctor;
pub mod forget;
pub mod gc;
pub mod inspect;
pub mod install;

use crate::pipeline::Registry;

const USAGE: &str = "userspace: a CNI plugin for userspace (DPDK) interfaces.
Run by a container runtime with CNI_COMMAND set; by hand:
  userspace backends [--json]   list the dataplane engines built into this binary
  userspace version             print the plugin version and the CNI versions it speaks
  userspace install [DIR] [--settings PATH]
                                copy this binary to DIR (default /opt/cni/bin) atomically
  userspace inspect [--json]    list the attachments on this node and their state
  userspace gc [--dry-run] [--every DURATION] [--grace DURATION] [--json] [--kubeconfig PATH]
                                the node reconciler: remove attachments whose pod is gone, repair
                                live ones after a dataplane restart, label the node while one is down
  userspace gc --check-heartbeat DURATION
                                exit 0 if a reconciler pass completed within DURATION
  userspace forget CONTAINER_ID [IFNAME]
                                drop an attachment whose dataplane is gone for good (pod stuck
                                Terminating, DEL answering 11): generic clean-up and the record
  userspace adopt [--dry-run] [--json]
                                take over the upstream plugin's attachments after an upgrade
  userspace doctor [--json] [--engine ENGINE]
                                check OVS/VPP, DPDK, hugepages, dirs and CNI_PATH plugins
  userspace dra-plugin          run as kubelet's DRA plugin for KubeVirt vhost-user NICs
                                (docs/kubevirt-dra.md)
";

/// The node settings for command `cmd`, or its exit code (2) after saying why on stderr.
fn settings_or_exit(cmd: &str, registry: &Registry) -> Result<userspace_cni_api::NodeSettings, i32> {
    crate::settings::load(registry.registrations()).map_err(|e| {
        eprintln!("userspace {cmd}: {e}");
        2
    })
}

/// The async runtime of command `cmd`, or its exit code (1). Current-thread: an IPAM delegate gets
/// PR_SET_PDEATHSIG from the thread that forks it, which must live as long as the process
/// (steps/delegate.rs).
fn runtime_or_exit(cmd: &str) -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        eprintln!("userspace {cmd}: cannot start the async runtime: {e}");
        1
    })
}

pub fn main(registry: Registry) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    match args.first().map(String::as_str) {
        Some("backends") => {
            if json {
                let list: Vec<_> = registry
                    .registrations()
                    .iter()
                    .map(|r| serde_json::json!({"engine": r.engine, "description": r.description}))
                    .collect();
                crate::stdout::outln!("{}", serde_json::Value::Array(list));
            } else {
                for r in registry.registrations() {
                    crate::stdout::outln!("{:<10} {}", r.engine, r.description);
                }
            }
            0
        }
        Some("install") => install::main(&args[1..]),
        Some("inspect") => inspect::main(&registry, &args[1..]),
        Some("gc") => gc::main(&registry, &args[1..]),
        Some("doctor") => doctor::main(&registry, &args[1..]),
        Some("adopt") => adopt::main(&registry, &args[1..]),
        Some("forget") => forget::main(&registry, &args[1..]),
        Some("version") | Some("--version") => {
            crate::stdout::outln!(
                "userspace-cni {} (CNI {})",
                env!("CARGO_PKG_VERSION"),
                crate::cni::version::SUPPORTED.join(", ")
            );
            0
        }
        Some("help") | Some("--help") | Some("-h") | None => {
            crate::stdout::out!("{USAGE}");
            if args.is_empty() {
                2
            } else {
                0
            }
        }
        Some(other) => {
            eprintln!("userspace: unknown command {other:?}\n{USAGE}");
            2
        }
    }
}
