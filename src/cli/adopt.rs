//! `userspace adopt [--dry-run] [--json]`: after an in-place upgrade from the upstream plugin,
//! turn each of its state files into our attachment record (docs/upgrading.md). The rest of the
//! record comes from libcni's result cache; the backend verifies and tags the dataplane object.
//! Files it cannot adopt are reported and left alone: the runtime's DEL still removes them.

use crate::cni::args::CniArgs;
use crate::legacy::{self, cache, LegacyFile};
use crate::netconf;
use crate::pipeline::{attachment_of, AttachRequest, Registry};
use crate::state::StateDir;
use serde_json::{json, Value};
use std::path::PathBuf;
use userspace_cni_api::{Adoption, AttachmentId, CniError, NodeSettings};

const USAGE: &str = "usage: userspace adopt [--dry-run] [--json]
  After replacing the upstream userspace-cni-network-plugin binary with this one: for every
  upstream state file <shared_dir>/data/local-<cid12>-<ifname>.json, find the attachment in
  libcni's cache (setting cni_cache_dirs), check that the OVS port it names is on the config's
  bridge and untagged, tag it, write our record and remove the state file. GC, CHECK and the
  reconciler then treat the pod as any other. --dry-run changes nothing and says what it would
  do. Exits 1 if any file was not adopted (those are still removed by the runtime's DEL).
  CNI_PATH (default /opt/cni/bin) locates the IPAM plugin, as for the runtime's calls.
";

/// One state file's outcome, for the report.
struct Line {
    file: PathBuf,
    adopted: bool,
    /// `adopted` | `would-adopt` | `already-adopted` | `skipped` | `failed`.
    outcome: &'static str,
    attachment: Option<(String, String, String)>,
    detail: String,
}

pub fn main(registry: &Registry, args: &[String]) -> i32 {
    let (mut dry_run, mut json_out) = (false, false);
    for a in args {
        match a.as_str() {
            "--dry-run" => dry_run = true,
            "--json" => json_out = true,
            "-h" | "--help" => {
                crate::stdout::out!("{USAGE}");
                return 0;
            }
            other => {
                eprintln!("userspace adopt: unknown argument {other:?}\n{USAGE}");
                return 2;
            }
        }
    }
    let settings = match super::settings_or_exit("adopt", registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::runtime_or_exit("adopt") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let files = match legacy::list(&settings) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("userspace adopt: {e}");
            return 1;
        }
    };
    let cni_path: Vec<PathBuf> = std::env::var("CNI_PATH")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/opt/cni/bin".into())
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    let mut lines = Vec::new();
    for file in files {
        let line = match file {
            Ok(f) => runtime.block_on(adopt_one(registry, &settings, &cni_path, &f, dry_run)),
            Err(e) => Line {
                file: PathBuf::new(),
                adopted: false,
                outcome: "failed",
                attachment: None,
                detail: e.to_string(),
            },
        };
        lines.push(line);
    }
    let failed = lines.iter().filter(|l| !l.adopted).count();
    let summary = format!(
        "{} upstream state file(s): {} {}, {failed} not adopted",
        lines.len(),
        lines.len() - failed,
        if dry_run { "would be adopted" } else { "adopted" }
    );
    if json_out {
        let list: Vec<Value> = lines
            .iter()
            .map(|l| {
                let (cid, ifname, network) = l.attachment.clone().unwrap_or_default();
                json!({"file": l.file, "outcome": l.outcome, "containerId": cid, "ifname": ifname,
                       "network": network, "detail": l.detail})
            })
            .collect();
        crate::stdout::outln!(
            "{}",
            json!({"dryRun": dry_run, "files": list, "notAdopted": failed, "summary": summary})
        );
    } else {
        for l in &lines {
            let who = l.attachment.as_ref().map(|(c, i, n)| format!(" {c}/{i} (network {n})")).unwrap_or_default();
            crate::stdout::outln!("{:<15} {}{who}: {}", l.outcome, l.file.display(), l.detail);
        }
        crate::stdout::outln!("{summary}");
    }
    i32::from(failed > 0)
}

async fn adopt_one(
    registry: &Registry,
    settings: &NodeSettings,
    cni_path: &[PathBuf],
    file: &LegacyFile,
    dry_run: bool,
) -> Line {
    let mut line =
        Line { file: file.path.clone(), adopted: false, outcome: "skipped", attachment: None, detail: String::new() };
    let entries = match cache::find(&settings.cni_cache_dirs, &file.cid12, &file.ifname) {
        Ok(e) => e,
        Err(e) => {
            line.outcome = "failed";
            line.detail = e.to_string();
            return line;
        }
    };
    let entry = match entries.as_slice() {
        [one] => one,
        [] => {
            line.detail = format!(
                "no libcni cache entry for container {}* ifname {} of a userspace network in {:?}; left for the \
                 runtime's DEL",
                file.cid12, file.ifname, settings.cni_cache_dirs
            );
            return line;
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|e| e.container_id.as_str()).collect();
            line.detail = format!("several cache entries match ({ids:?}); adopt by hand or let DEL remove it");
            return line;
        }
    };
    line.attachment = Some((entry.container_id.clone(), entry.if_name.clone(), entry.network_name.clone()));
    match adopt_entry(registry, settings, cni_path, file, entry, dry_run).await {
        Ok((outcome, adopted, detail)) => {
            line.outcome = outcome;
            line.adopted = adopted;
            line.detail = detail;
        }
        Err(e) => {
            line.outcome = "failed";
            line.detail = format!("code {}: {}", e.code, e.msg);
        }
    }
    line
}

/// Plan, verify, tag and record one attachment found in the cache, under its lock.
async fn adopt_entry(
    registry: &Registry,
    settings: &NodeSettings,
    cni_path: &[PathBuf],
    file: &LegacyFile,
    entry: &cache::CacheEntry,
    dry_run: bool,
) -> Result<(&'static str, bool, String), CniError> {
    let conf = netconf::from_value(entry.config.clone())?;
    conf.validate(settings)?;
    // Runtimes pass IgnoreUnknown; a cache without it must not make adoption fail on extra keys.
    let text = entry.cni_args_text();
    let args = CniArgs::parse(&text).or_else(|_| CniArgs::parse(&format!("IgnoreUnknown=1;{text}")))?;
    let state = StateDir::at(&settings.state_dir);
    let id = AttachmentId::new(entry.container_id.clone(), entry.if_name.clone());
    let att = attachment_of(id.clone(), entry.netns.clone(), &args, &conf)?;
    let req = AttachRequest { settings, conf: &conf, attachment: &att, cni_path, cni_args: &args };
    if state.read_record(&id)?.is_some() {
        // Adopted before, interrupted before the state file went.
        if !dry_run {
            legacy::remove(&file.path)?;
        }
        return Ok(("already-adopted", true, "a record exists; the state file is removed".into()));
    }
    let lock = if dry_run {
        None
    } else {
        state.ensure()?;
        Some(state.lock_attachment(&id, settings.timeout()).await?)
    };
    let (record, adoption) = crate::pipeline::adopt::adopt_legacy(&req, registry, file, dry_run).await?;
    let result = match adoption {
        Adoption::Adopted { object, already } => {
            if dry_run {
                Ok(("would-adopt", true, format!("{object} matches; it would be tagged and recorded")))
            } else {
                state.create_record(&record)?;
                legacy::remove(&file.path)?;
                let how = if already { "was already tagged" } else { "tagged" };
                Ok(("adopted", true, format!("{object} {how}; record written")))
            }
        }
        Adoption::Missing { object } => {
            Ok(("skipped", false, format!("{object} does not exist; left for the runtime's DEL")))
        }
        Adoption::Mismatch { object, reason } => Ok(("skipped", false, format!("{object} left alone: {reason}"))),
    };
    if let Some(lock) = lock {
        if result.as_ref().is_ok_and(|r| r.1) {
            drop(lock);
        } else {
            lock.release_and_remove();
        }
    }
    result
}
