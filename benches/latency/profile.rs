//! The two profiles printed under the latency table (issue 15): each step's share of an ADD, from
//! the plugin's own per-step `elapsed_us` at logLevel debug (a pass of its own: logging costs a
//! little), and the fsync-family calls per verb, counted by `strace -f -c` on a few runs.

use super::{cid, Errors, Ours};
use std::path::Path;
use std::time::Duration;

/// What strace counts as a durability barrier of the state dir.
const FSYNC_CALLS: &str = "fsync,fdatasync,sync_file_range";

pub(crate) struct StepShares {
    /// Spawn-to-exit time of each profiled ADD.
    walls: Vec<Duration>,
    /// Per step, in pipeline order: its `elapsed_us` in each ADD.
    steps: Vec<(String, Vec<Duration>)>,
}

/// `step{step="NAME" verb="VERB" op="OP"}: elapsed_us=N ok=B` (src/pipeline/executor.rs at
/// logLevel debug; the quotes are tracing's for string fields) -> (NAME, VERB, OP, N).
fn parse_step(line: &str) -> Option<(&str, &str, &str, u64)> {
    let (_, rest) = line.split_once("step{step=")?;
    let (name, rest) = rest.split_once(" verb=")?;
    let (verb, rest) = rest.split_once(" op=")?;
    let (op, rest) = rest.split_once("}: elapsed_us=")?;
    let us = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((unquote(name), unquote(verb), unquote(op), us))
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"')
}

/// The verb's own total: `cni{verb="ADD" ...}: done elapsed_us=N`.
fn parse_done(line: &str) -> Option<u64> {
    let (head, rest) = line.split_once("}: done elapsed_us=")?;
    if !head.contains("cni{verb=\"ADD\"") {
        return None;
    }
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// What no step accounts for: set-up, the record's creation and planning (inside the verb), and
/// the process's start and exit (its wall minus the verb's own total).
const IN_VERB: &str = "(in the verb, outside steps)";
const PROCESS: &str = "(process start and exit)";

/// ADD then DEL `runs` times on `bridge` at logLevel debug into `log`; keeps the ADD steps.
pub(crate) fn step_shares(ours: &Ours, bridge: &str, log: &Path, runs: usize, errors: &mut Errors) -> StepShares {
    let mut s = StepShares { walls: Vec::new(), steps: Vec::new() };
    let (mut in_verb, mut process) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let id = cid(0xe0, i as u32);
        let before = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
        let wall = match ours.add_logged(bridge, &id, log) {
            Ok(d) => d,
            Err(e) => {
                errors.add("profile ADD", e);
                continue;
            }
        };
        s.walls.push(wall);
        let mut inside = Duration::ZERO;
        let text = std::fs::read(log).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(before..).unwrap_or_default());
        for (name, _, _, us) in new.lines().filter_map(parse_step).filter(|(_, v, o, _)| *v == "ADD" && *o == "apply") {
            let d = Duration::from_micros(us);
            inside += d;
            match s.steps.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(d),
                None => s.steps.push((name.to_string(), vec![d])),
            }
        }
        if let Some(total) = new.lines().find_map(parse_done).map(Duration::from_micros) {
            in_verb.push(total.saturating_sub(inside));
            process.push(wall.saturating_sub(total));
        }
        if let Err(e) = ours.del_logged(bridge, &id, log) {
            errors.add("profile DEL", e);
        }
    }
    for (name, v) in [(IN_VERB, in_verb), (PROCESS, process)] {
        if !v.is_empty() {
            s.steps.push((name.to_string(), v));
        }
    }
    s
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

impl StepShares {
    pub(crate) fn print(&self) {
        if self.walls.is_empty() {
            return;
        }
        let wall = median(&self.walls);
        let share = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
        println!();
        println!(
            "each step's share of an ADD, bridge exists (logLevel debug, {} runs, medians; wall {:.2} ms spawn to exit):",
            self.walls.len(),
            wall.as_secs_f64() * 1000.0
        );
        // Medians of parts need not add up to the median wall.
        for (name, v) in &self.steps {
            let m = median(v);
            let (lo, hi) = (v.iter().min().copied().unwrap_or_default(), v.iter().max().copied().unwrap_or_default());
            println!(
                "  {name:<30} {:>6.2} ms {:>5.1} %   (min {:.2}, max {:.2})",
                m.as_secs_f64() * 1000.0,
                share(m),
                lo.as_secs_f64() * 1000.0,
                hi.as_secs_f64() * 1000.0
            );
        }
    }
}

/// fsync-family calls of each of `runs` ADDs and DELs, or None without strace.
pub(crate) fn fsyncs(ours: &Ours, bridge: &str, out: &Path, runs: usize, errors: &mut Errors) -> Option<[Vec<u64>; 2]> {
    let strace = ["/usr/bin/strace", "/bin/strace"].into_iter().find(|p| Path::new(p).exists())?;
    let out_s = out.display().to_string();
    let wrap = [strace, "-f", "-c", "-o", &out_s, "-e", &format!("trace={FSYNC_CALLS}")].map(str::to_string);
    let mut counts: [Vec<u64>; 2] = Default::default();
    for i in 0..runs {
        let id = cid(0xe8, i as u32);
        for (k, verb) in ["ADD", "DEL"].into_iter().enumerate() {
            let _ = std::fs::remove_file(out);
            match ours.call_wrapped(&wrap, verb, bridge, &id) {
                Ok(_) => counts[k].push(count_calls(out)),
                Err(e) => errors.add(&format!("strace {verb}"), e),
            }
        }
    }
    let _ = std::fs::remove_file(out);
    Some(counts)
}

/// The summed `calls` column of an `strace -c` table (rows: % time, seconds, usecs/call, calls,
/// [errors], syscall); 0 when nothing was called (strace then prints no row).
fn count_calls(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f.last()?;
            (f.len() >= 5 && FSYNC_CALLS.split(',').any(|c| c == *name)).then(|| f[3].parse::<u64>().ok()).flatten()
        })
        .sum()
}

pub(crate) fn print_fsyncs(counts: &Option<[Vec<u64>; 2]>) {
    match counts {
        None => println!("fsyncs per verb: strace not installed (scripts/setup.sh installs it)"),
        Some([add, del]) => {
            println!("fsyncs per verb ({FSYNC_CALLS}, one count per traced run): ADD {add:?}, DEL {del:?}")
        }
    }
}
