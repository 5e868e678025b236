//! The operator CLI (the binary run by hand, without CNI_COMMAND): a dispatcher over one module
//! per command. Prints for humans (or `--json`) on stdout; never runs in CNI mode.

use crate::verbs::Registry;

const USAGE: &str = "userspace: a CNI plugin for userspace (DPDK) interfaces.
Run by a container runtime with CNI_COMMAND set; by hand:
  userspace backends [--json]   list the dataplane engines built into this binary
  userspace version             print the plugin version and the CNI versions it speaks
";

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
                println!("{}", serde_json::Value::Array(list));
            } else {
                for r in registry.registrations() {
                    println!("{:<10} {}", r.engine, r.description);
                }
            }
            0
        }
        Some("version") | Some("--version") => {
            println!("userspace-cni {} (CNI {})", env!("CARGO_PKG_VERSION"), crate::cni::version::SUPPORTED.join(", "));
            0
        }
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
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
