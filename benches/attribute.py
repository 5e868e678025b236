#!/usr/bin/env python3
"""The attribution of docs/performance.md (issue 15, "Attribute first"): both harnesses, each
with several builds, several full runs each, interleaved (build A, B, C, then A, B, C again) so
a load change hits every build alike. Prints min/median/max of each p50 and the load of each run.

  python3 benches/attribute.py --build parent=/path/a --build now=target/release/userspace \\
      --build nofsync=/path/failpoints-build:nofsync --bench-exe <cargo bench --no-run's latency>

A build spec is NAME=PATH, with `:nofsync` to run it with USERSPACE_CNI_TEST_NO_FSYNC=1 (a
failpoints build). Builds nothing; every run is a harness's own (own lab, own temp dirs), and
each raw output is kept under --out. Standard library only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# benches/latency.rs's table: `1 ADD, bridge exists   200 |  p50  p90  p99 |  p50  p90  p99 | ...`
ROW = re.compile(r"^(\d) (ADD|DEL), ([\w ,]+?)\s+\d+ \|\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) \|\s+([\d.]+)")
WAVE = re.compile(r"^5 (\d+) concurrent (ADD|DEL), bridge (?:exists|stays)\s+\d+ \|\s+([\d.]+)\s+(\d+)\s+[\d.]+ \|\s+([\d.]+)")
STEP = re.compile(r"^  (\S[^\d]*?)\s+([\d.]+) ms\s+([\d.]+) %")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def settle(limit, max_wait):
    """Wait until the 1-minute load is below `limit` (a 64-process wave raises it for minutes)."""
    import time
    deadline = time.monotonic() + max_wait
    while float(loadavg()) >= limit and time.monotonic() < deadline:
        time.sleep(5)


def run_harness(out, name, path, nofsync, rounds, extra):
    j = os.path.join(out, "harness-%s.json" % name)
    argv = [sys.executable, os.path.join(HERE, "harness.py"), "--bin", path, "--rounds", str(rounds), "--json", j]
    argv += ["--no-fsync"] if nofsync else []
    argv += extra
    p = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    with open(os.path.join(out, "harness-%s.txt" % name), "w") as f:
        f.write(p.stdout + p.stderr)
    try:
        with open(j) as f:
            r = json.load(f)
    except (OSError, ValueError):
        return None
    ms = lambda v: statistics.median(v) * 1000 if v else float("nan")
    lat = r.get("latency") or {}
    res = {"ok": p.returncode == 0, "load": r["load_before"].split()[0]}
    for who in ("ours", "upstream"):
        for verb in ("ADD", "DEL"):
            # The harness prints nearest-rank p50; the median of an even count differs by < 1 sample.
            v = sorted(lat.get(who, {}).get(verb, []))
            res["%s %s" % (who, verb)] = v[max((len(v) + 1) // 2, 1) - 1] * 1000 if v else float("nan")
    w = r.get("waves") or {}
    for who in ("ours", "upstream"):
        if who in w:
            res["%s wave" % who] = w[who]["ADD"]["wall"] * 1000
    res["steps"] = {k: ms(v) for k, v in ((r.get("profile") or [[], {}])[1]).items()}
    return res


def run_bench(out, name, exe, path, nofsync, env_extra):
    env = dict(os.environ, BENCH_PLUGIN=path, **env_extra)
    if nofsync:
        env["BENCH_NO_FSYNC"] = "1"
    load = loadavg()
    p = subprocess.run([exe, "--bench"], capture_output=True, text=True, timeout=1800, env=env)
    with open(os.path.join(out, "bench-%s.txt" % name), "w") as f:
        f.write(p.stdout + p.stderr)
    res = {"ok": p.returncode == 0, "load": load, "steps": {}}
    in_steps = False
    for line in p.stdout.splitlines():
        m = ROW.match(line)
        if m and m.group(3) in ("bridge exists", "bridge stays"):
            res["ours %s" % m.group(2)] = float(m.group(4))
            res["upstream %s" % m.group(2)] = float(m.group(7))
        m = WAVE.match(line)
        if m and m.group(2) == "ADD":
            res["ours wave"] = float(m.group(3))
            res["upstream wave"] = float(m.group(5))
        if line.startswith("each step's share"):
            in_steps = True
            continue
        if in_steps:
            m = STEP.match(line)
            if m:
                res["steps"][m.group(1).strip()] = float(m.group(2))
            else:
                in_steps = False
    return res


def summary(title, results):
    print()
    print(title)
    keys = ["ours ADD", "upstream ADD", "ours DEL", "upstream DEL", "ours wave", "upstream wave"]
    print("  %-10s %-5s %s" % ("build", "runs", " | ".join("%-21s" % k for k in keys)))
    for name, runs in results.items():
        runs = [r for r in runs if r]
        cells = []
        for k in keys:
            v = [r[k] for r in runs if k in r]
            cells.append("%6.2f %6.2f %6.2f  " % (min(v), statistics.median(v), max(v)) if v else "%-21s" % "-")
        print("  %-10s %-5d %s" % (name, len(runs), " | ".join(cells)))
        print("  %-10s       loads at start: %s; all ok: %s" % (
            "", " ".join(r["load"] for r in runs), all(r["ok"] for r in runs)))
        steps = {}
        for r in runs:
            for s, v in r["steps"].items():
                steps.setdefault(s, []).append(v)
        if steps:
            print("  %-10s       ADD steps (median of the runs' medians, ms): %s" % (
                "", ", ".join("%s %.2f" % (s, statistics.median(v)) for s, v in steps.items())))
    print("  (each cell: min / median / max over the runs of that run's p50, ms; waves: wall ms)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="append", required=True, help="NAME=PATH[:nofsync]")
    ap.add_argument("--bench-exe", help="the latency bench executable (cargo bench --bench latency --no-run)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--out", default="/tmp/userspace-cni-attribution")
    ap.add_argument("--settle", type=float, default=0.0, help="before each run, wait for a load below this")
    ap.add_argument("--settle-max", type=int, default=60, help="... for at most this many seconds")
    ap.add_argument("--harness-arg", action="append", default=[], help="passed to harness.py")
    args = ap.parse_args()
    builds = []
    for b in args.build:
        name, _, spec = b.partition("=")
        path, _, flag = spec.partition(":")
        builds.append((name, os.path.abspath(path), flag == "nofsync"))
    os.makedirs(args.out, exist_ok=True)
    h = {n: [] for n, _, _ in builds}
    c = {n: [] for n, _, _ in builds}
    for i in range(args.runs):
        for name, path, nofsync in builds:
            if args.settle:
                settle(args.settle, args.settle_max)
            print("run %d %s: harness (load %s)" % (i + 1, name, loadavg()), flush=True)
            h[name].append(run_harness(args.out, "%s-%d" % (name, i + 1), path, nofsync, args.rounds, args.harness_arg))
            if args.bench_exe:
                if args.settle:
                    settle(args.settle, args.settle_max)
                print("run %d %s: cargo bench harness (load %s)" % (i + 1, name, loadavg()), flush=True)
                c[name].append(run_bench(args.out, "%s-%d" % (name, i + 1), args.bench_exe, path, nofsync, {}))
    summary("benches/harness.py (python, %d rounds per run)" % args.rounds, h)
    if args.bench_exe:
        summary("benches/latency.rs (cargo bench --bench latency)", c)
    print("raw outputs: %s" % args.out)


if __name__ == "__main__":
    main()
