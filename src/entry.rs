//! The process entry: CNI mode (CNI_COMMAND set: env + stdin → one JSON document on stdout, one
//! exit code) or the operator CLI. Catches panics so the runtime still gets a CNI error. The only
//! module that writes to stdout.

use crate::cni::env::CniEnv;
use crate::cni::error::{error_json, error_version};
use crate::cni::version::{self, CniVersion};
use crate::netconf::{self, NetConf};
use crate::pipeline::Registry;
use crate::verbs::{self, Invocation};
use crate::{logging, settings};
use std::io::{Read, Write};
use userspace_cni_api::{codes, BackendRegistration, CniError, Verb};

/// Stdin larger than this is refused (a network config is a few KiB).
const MAX_STDIN: u64 = 1 << 20;

/// Run the binary; returns the process exit code. `extra` adds backends that are not in the
/// inventory (only the test binary passes one).
pub fn main(extra: &[&'static BackendRegistration]) -> i32 {
    if std::env::var_os("CNI_COMMAND").is_none() {
        // SIGPIPE stays ignored (Rust's default) here too: the DRA plugin and `gc --every`
        // runs write to sockets whose peer may leave (a restarted ovsdb-server, kubelet dropping
        // a connection) and must see EPIPE, not die of it. A CLI piped into `head` still ends
        // as Unix tools do: `stdout::write` raises SIGPIPE when stdout's reader is gone.
        let mut args = std::env::args_os().skip(1);
        if args.next().is_some_and(|a| a == "dra-plugin") {
            let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
            return dra_plugin(Registry::linked().with_extra(extra), &rest);
        }
        return crate::cli::main(Registry::linked().with_extra(extra));
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut stdin);
    let read_ok = read.is_ok();
    // Quiet the default panic message on stderr: the panic becomes a CNI error below.
    std::panic::set_hook(Box::new(|info| eprintln!("userspace-cni: {info}")));
    let outcome = std::panic::catch_unwind(|| cni_mode(&stdin, read_ok, extra));
    let (doc, code) = match outcome {
        Ok(Ok(Some(doc))) => (Some(doc), 0),
        Ok(Ok(None)) => (None, 0),
        Ok(Err(e)) => (Some(error_json(&e, &error_version(&stdin))), 1),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let e = CniError::new(codes::INTERNAL, format!("internal error (a bug in userspace-cni): {what}"));
            (Some(error_json(&e, &error_version(&stdin))), 1)
        }
    };
    if let Some(doc) = doc {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut out, &doc);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
    code
}

/// The DRA front-end (`userspace dra-plugin`), a long-running kubelet plugin.
#[cfg(feature = "kubernetes")]
fn dra_plugin(registry: Registry, args: &[String]) -> i32 {
    crate::dra::run::main(registry, args)
}

#[cfg(not(feature = "kubernetes"))]
fn dra_plugin(_registry: Registry, _args: &[String]) -> i32 {
    eprintln!("userspace dra-plugin: this binary was built without the `kubernetes` feature");
    2
}

fn cni_mode(
    stdin: &[u8],
    read_ok: bool,
    extra: &[&'static BackendRegistration],
) -> Result<Option<serde_json::Value>, CniError> {
    let env = CniEnv::from_process_env()?;
    userspace_cni_api::failpoint::set_verb(env.command);
    if env.command == Verb::Version {
        return Ok(Some(version::version_response(stdin)));
    }
    if !read_ok {
        return Err(CniError::io("cannot read the network config from stdin"));
    }
    if stdin.len() as u64 > MAX_STDIN {
        return Err(CniError::invalid_config(format!("network config on stdin is larger than {MAX_STDIN} bytes")));
    }
    let conf: NetConf = netconf::parse(stdin)?;
    let version: CniVersion = version::negotiate(&conf.raw)?;
    let registry = Registry::linked().with_extra(extra);
    let settings = settings::load(registry.registrations())?;
    conf.validate(&settings)?;
    logging::init(conf.log_level, conf.log_file.as_deref(), &settings.log_roots);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::io(format!("cannot start the async runtime: {e}")))?;
    let inv = Invocation { env: &env, stdin, settings: &settings, registry: &registry };
    let span = tracing::info_span!(
        "cni",
        verb = env.command.as_str(),
        cid = env.container_id.as_deref().unwrap_or(""),
        ifname = env.ifname.as_deref().unwrap_or("")
    );
    let _g = span.enter();
    let started = std::time::Instant::now();
    let result = runtime.block_on(verbs::run(&inv, &conf, version));
    match &result {
        Ok(_) => tracing::info!(elapsed_us = started.elapsed().as_micros() as u64, "done"),
        Err(e) => {
            tracing::error!(elapsed_us = started.elapsed().as_micros() as u64, code = e.code, msg = %e.msg, "failed")
        }
    }
    result
}
