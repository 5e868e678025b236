#!/usr/bin/env python3
"""The second benchmark harness (issue 15): ADD/DEL latency of the release binary driven as
README's "Performance" section tells a user (a new process per verb, env + stdin, as a runtime
does), against the upstream Go plugin's OVS command sequence replayed as separate `ovs-vsctl` /
`ovs-ofctl` processes, alternating on one private OVS-DPDK lab. Written apart from
benches/latency.rs on purpose: a claim must hold outside the Rust harness.

Builds nothing (`--bin`, default the shipped static binary,
target/x86_64-unknown-linux-musl/release/userspace: `cargo build --release --target
x86_64-unknown-linux-musl`; docs/performance.md says why), never writes outside its own temp
dirs (/tmp/uscni-harness-*), and stops its lab on exit, failure, Ctrl-C or SIGTERM. Standard
library only. Needs root and the lab packages (scripts/setup.sh); strace for the fsync counts.

  sudo python3 benches/harness.py                   # 100 rounds + 64-ADD wave + profiles
  python3 benches/harness.py --smoke                # 5 rounds, no wave (CI)
  python3 benches/harness.py --no-fsync --bin B     # USERSPACE_CNI_TEST_NO_FSYNC=1 (failpoints build)

Exits 1 if an operation failed or the lab or node was left with bridges, ports or files.
Targets are printed, never asserted.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IFNAME = "net1"
NETWORK = "bench-net"
# Every process is bounded; a benchmark op that overruns is an error, not a hang.
OP_TIMEOUT = 30
CHECK_TIMEOUT = 15
MAX_ERRORS = 20
# One bridge per side, so neither meets the other's ports; anchors keep them existing.
BR_OURS, BR_UP = "brh-o-exist", "brh-u-exist"
BR_OURS_WAVE, BR_UP_WAVE = "brh-o-wave", "brh-u-wave"
# src/pipeline/executor.rs at logLevel debug: `step{step="vhost-port" verb="ADD" op="apply"}: elapsed_us=2034 ok=true`.
STEP_RE = re.compile(r'step\{step="?([\w-]+)"? verb="?(\w+)"? op="?(\w+)"?\}: elapsed_us=(\d+) ok=(\w+)')
# The verb's own total (src/main's `done`): wall minus this is process start and exit.
DONE_RE = re.compile(r'cni\{verb="?(\w+)"?[^}]*\}: done elapsed_us=(\d+)')
IN_VERB, PROCESS = "(in the verb, outside steps)", "(process start and exit)"
FSYNC_CALLS = ("fsync", "fdatasync", "sync_file_range")


class Failed(Exception):
    """An operation failed (exit code, timeout, bad output)."""


def cid(kind, i):
    # 64 hex; the first 12 (the port name's prefix) are unique per (kind, i).
    return "%04x%08x%s" % (kind & 0xFFFF, i, "0" * 52)


def pct(values, p):
    """Nearest-rank percentile (as benches/latency.rs), in ms."""
    if not values:
        return float("nan")
    v = sorted(values)
    rank = -(-p * len(v) // 100)  # ceil
    return v[min(max(int(rank), 1), len(v)) - 1] * 1000.0


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def run(argv, env=None, stdin=None, timeout=OP_TIMEOUT):
    """Spawn to exit, timed; output read by communicate (pipes: the outputs are small)."""
    t = time.perf_counter()
    try:
        p = subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed("%s: killed after %d s" % (argv[0], timeout))
    except OSError as e:
        raise Failed("spawn %s: %s" % (argv[0], e))
    return time.perf_counter() - t, p


class Lab:
    """A private OVS-DPDK via scripts/lab-up.sh. Busy-polling PMD by default, as a benchmark
    should run (lab/README.md); lab-up.sh's own default lets the PMD sleep up to 1000 us."""

    def __init__(self, pmd_maxsleep):
        tag = "h%d" % os.getpid()
        self.dir = "/tmp/uscni-harness-lab-%s" % tag
        self.ns = "uscni-%s" % tag
        self.env = dict(os.environ, LAB_DIR=self.dir, LAB_NS=self.ns, LAB_PMD_MAXSLEEP=str(pmd_maxsleep))
        self.db = "unix:%s/db.sock" % self.dir
        self.started = False

    def up(self):
        self.started = True  # from here on, lab-down runs even if lab-up fails half-way
        p = subprocess.run([os.path.join(REPO, "scripts/lab-up.sh")], env=self.env,
                           capture_output=True, text=True, timeout=90)
        if p.returncode != 0:
            raise Failed("lab-up.sh: exit %d: %s" % (p.returncode, p.stderr.strip()[-2000:]))

    def down(self):
        if self.started:
            subprocess.run([os.path.join(REPO, "scripts/lab-down.sh")], env=self.env,
                           capture_output=True, timeout=60)
            self.started = False

    def vsctl(self, *args):
        _, p = run(["ovs-vsctl", "--db=" + self.db, "--timeout=10"] + list(args), timeout=CHECK_TIMEOUT)
        if p.returncode != 0:
            raise Failed("ovs-vsctl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace").strip()))
        return p.stdout.decode(errors="replace")

    def bridges(self):
        return self.vsctl("list-br").split()

    def ports(self, bridge):
        return self.vsctl("list-ports", bridge).split()


class Ours:
    """The shipped binary, env + stdin, as a runtime executes it."""

    def __init__(self, binary, lab, node, netns, no_fsync, vlan):
        self.binary = binary
        self.vlan = vlan
        self.node = node
        p = lambda rel: os.path.join(node, rel)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "USERSPACE_CNI_CONFIG": p("userspace.toml"),
            "USERSPACE_CNI_STATE_DIR": p("state"),
            "USERSPACE_CNI_SHARED_DIR": p("shared"),
            "USERSPACE_CNI_SHORT_SOCKET_DIR": p("short"),
            "USERSPACE_CNI_KUBELET_ROOT": p("kubelet"),
            "USERSPACE_CNI_OVSDB": lab.db,
            "USERSPACE_CNI_OVS_SOCK_DIR": lab.dir,
            "USERSPACE_CNI_SHARED_ROOTS": p("shared"),
            "USERSPACE_CNI_LOG_ROOTS": p("log"),
            "CNI_IFNAME": IFNAME,
            "CNI_NETNS": "/run/netns/" + netns,
            "CNI_PATH": "/usr/lib/cni",
        }
        if no_fsync:
            self.env["USERSPACE_CNI_TEST_NO_FSYNC"] = "1"
        self.log = p("log/steps.log")

    def conf(self, bridge, debug):
        c = {
            "cniVersion": "1.1.0", "name": NETWORK, "type": "userspace",
            "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
                     "vhost": {"mode": "client"}, "bridge": {"bridgeName": bridge}},
            "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface"},
        }
        if self.vlan:
            # README's example config sets `vlanId` (100); benches/latency.rs sets none.
            c["host"]["bridge"]["vlanId"] = self.vlan
        if debug:
            c["logLevel"] = "debug"
            c["logFile"] = self.log
        return json.dumps(c).encode()

    def call(self, verb, bridge, c, debug=False, wrap=()):
        env = dict(self.env, CNI_COMMAND=verb, CNI_CONTAINERID=c)
        d, p = run(list(wrap) + [self.binary], env=env, stdin=self.conf(bridge, debug))
        if p.returncode != 0:
            raise Failed("%s %s: exit %d: %s %s" % (verb, c[:12], p.returncode,
                         p.stdout.decode(errors="replace").strip(), p.stderr.decode(errors="replace").strip()))
        if verb == "ADD":
            try:
                res = json.loads(p.stdout)
            except ValueError as e:
                raise Failed("ADD result is not JSON (%s): %r" % (e, p.stdout[:500]))
            if not any("socketPath" in i for i in res.get("interfaces", [])):
                raise Failed("ADD result without a socketPath: %r" % p.stdout[:500])
        return d

    def add(self, bridge, c, **kw):
        return self.call("ADD", bridge, c, **kw)

    def delete(self, bridge, c, **kw):
        return self.call("DEL", bridge, c, **kw)


class Upstream:
    """The upstream Go plugin's OVS commands (cniovs/cniovs.go, ovsctrl.go), one process each,
    in its order, host vhost mode client, netType bridge; the same sequence benches/latency.rs
    replays, including the in-process shared-dir mkdir and removal."""

    def __init__(self, lab, shared):
        self.lab = lab
        self.shared = shared
        # OVS_RUNDIR: `ovs-ofctl <bridge>` finds <rundir>/<bridge>.mgmt, as upstream's did.
        self.env = dict(os.environ, OVS_RUNDIR=lab.dir, OVS_DBDIR=lab.dir, OVS_LOGDIR=lab.dir)

    def cli(self, program, *args, wrap=()):
        argv = list(wrap) + [program] + (["--db=" + self.lab.db] if program == "ovs-vsctl" else []) + list(args)
        _, p = run(argv, env=self.env)
        if p.returncode != 0:
            raise Failed("%s %s: exit %d: %s" % (program, " ".join(args), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()))
        return p.stdout

    def add(self, bridge, c, wrap=()):
        t = time.perf_counter()
        if not self.cli("ovs-vsctl", "--bare", "--columns=name", "find", "bridge", "name=" + bridge, wrap=wrap):
            self.cli("ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev", wrap=wrap)
            self.cli("ovs-ofctl", "add-flow", bridge, "actions=NORMAL", wrap=wrap)
        sock = "%s-%s" % (c[:12], IFNAME)
        d = os.path.join(self.shared, c[:12])
        os.makedirs(d, mode=0o750, exist_ok=True)
        self.cli("ovs-vsctl", "add-port", bridge, sock, "--", "set", "Interface", sock,
                 "type=dpdkvhostuserclient", "options:vhost-server-path=%s/%s" % (d, sock), wrap=wrap)
        self.cli("ovs-vsctl", "--bare", "--columns=mac", "find", "port", "name=" + sock, wrap=wrap)
        return time.perf_counter() - t

    def delete(self, bridge, c, wrap=()):
        t = time.perf_counter()
        sock = "%s-%s" % (c[:12], IFNAME)
        self.cli("ovs-vsctl", "--if-exists", "del-port", bridge, sock, wrap=wrap)
        d = os.path.join(self.shared, c[:12])
        for n in os.listdir(d):
            if n.startswith(sock):
                os.remove(os.path.join(d, n))
        os.rmdir(d)
        if not self.cli("ovs-vsctl", "list-ports", bridge, wrap=wrap).strip():
            self.cli("ovs-vsctl", "del-br", bridge, wrap=wrap)
        return time.perf_counter() - t


class Errors:
    def __init__(self):
        self.list = []

    def add(self, what, e):
        self.list.append("%s: %s" % (what, e))
        if len(self.list) >= MAX_ERRORS:
            raise Failed("%d operations failed; stopping" % len(self.list))

    def attempt(self, what, f, *a, **kw):
        try:
            return f(*a, **kw)
        except Failed as e:
            self.add(what, e)
            return None


def latency(args, ours, up, errors):
    """ADD (bridge exists) and DEL (bridge stays), per side, alternating who goes first each
    round. --interleave side: ours ADD+DEL then upstream's ADD+DEL (benches/latency.rs's order);
    --interleave verb: ours ADD, upstream ADD, ours DEL, upstream DEL (ADD follows the other
    side's ADD rather than one's own or the other's DEL)."""
    s = {"ours": {"ADD": [], "DEL": []}, "upstream": {"ADD": [], "DEL": []}}
    sides = {"ours": (ours, BR_OURS, 0xB0), "upstream": (up, BR_UP, 0xB1)}
    for i in range(args.warmup + args.rounds):
        order = ["ours", "upstream"] if i % 2 == 0 else ["upstream", "ours"]
        if args.interleave == "side":
            plan = [(w, v) for w in order for v in ("ADD", "DEL")]
        else:
            plan = [(w, v) for v in ("ADD", "DEL") for w in order]
        for who, verb in plan:
            impl, br, kind = sides[who]
            f = impl.add if verb == "ADD" else impl.delete
            d = errors.attempt("%s %s round %d" % (who, verb, i), f, br, cid(kind, i))
            if d is not None and i >= args.warmup:
                s[who][verb].append(d)
    return s


def wave(n, op):
    """n operations released at once; wall from the release to the last exit."""
    barrier = threading.Barrier(n + 1)
    out = [None] * n

    def worker(i):
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            out[i] = (Failed("barrier broken"), time.perf_counter())
            return
        try:
            out[i] = (op(i), time.perf_counter())
        except Failed as e:
            out[i] = (e, time.perf_counter())

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(timeout=60)
    released = time.perf_counter()
    for t in threads:
        t.join(timeout=OP_TIMEOUT * 8)
    res = {"wall": 0.0, "errors": 0, "first_errors": []}
    for o in out:
        if o is None:
            o = (Failed("thread did not finish"), time.perf_counter())
        r, end = o
        res["wall"] = max(res["wall"], end - released)
        if isinstance(r, Failed):
            res["errors"] += 1
            if len(res["first_errors"]) < 3:
                res["first_errors"].append(str(r))
    return res


def waves(args, lab, ours, up, errors):
    n = args.wave
    out = {}
    errors.attempt("ours: wave anchor", ours.add, BR_OURS_WAVE, cid(0xA0, 1))
    errors.attempt("upstream: wave anchor", up.add, BR_UP_WAVE, cid(0xA1, 1))
    for who, impl, br, kind in (("ours", ours, BR_OURS_WAVE, 0xD0), ("upstream", up, BR_UP_WAVE, 0xD1)):
        ids = [cid(kind, i) for i in range(n)]
        a = wave(n, lambda i: impl.add(br, ids[i]))
        ports = len(lab.ports(br))
        if ports != n + 1:
            errors.add("%s: after the ADD wave" % who, "%s has %d ports, expected %d" % (br, ports, n + 1))
        d = wave(n, lambda i: impl.delete(br, ids[i]))
        ports = len(lab.ports(br))
        if ports != 1:
            errors.add("%s: after the DEL wave" % who, "%s has %d ports, expected 1" % (br, ports))
        for verb, r in (("ADD", a), ("DEL", d)):
            for e in r["first_errors"]:
                errors.add("%s %s wave" % (who, verb), e)
        out[who] = {"ADD": a, "DEL": d}
    return out


def add_steps(steps, text, verb, wall):
    """Fold one run's debug log into `steps` (name -> seconds): ADD's steps apply, DEL's undo.
    What no step accounts for is split in two: set-up, the record's creation and planning (in
    the verb) and the process's start and exit (its wall minus the plugin's own `done`)."""
    op = "apply" if verb == "ADD" else "undo"
    inside = 0.0
    for m in STEP_RE.finditer(text):
        name, v, o, us, _ok = m.groups()
        if v == verb and o == op:
            steps.setdefault(name, []).append(int(us) / 1e6)
            inside += int(us) / 1e6
    for m in DONE_RE.finditer(text):
        if m.group(1) == verb:
            total = int(m.group(2)) / 1e6
            steps.setdefault(IN_VERB, []).append(max(total - inside, 0.0))
            steps.setdefault(PROCESS, []).append(max(wall - total, 0.0))


def step_profile(args, ours, errors):
    """Each step's share of an ADD (and of a DEL): a separate pass at logLevel debug (logging
    costs a little, so the latency rounds run without it). The share is of the verb's wall time
    (spawn to exit). Returns {verb: (walls, steps)}."""
    out = {"ADD": ([], {}), "DEL": ([], {})}
    try:
        os.remove(ours.log)
    except OSError:
        pass
    for i in range(args.profile_runs):
        c = cid(0xE0, i)
        for verb, f in (("ADD", ours.add), ("DEL", ours.delete)):
            before = os.path.getsize(ours.log) if os.path.exists(ours.log) else 0
            d = errors.attempt("profile %s %d" % (verb, i), f, BR_OURS, c, debug=True)
            if d is None:
                continue
            with open(ours.log, errors="replace") as fh:
                fh.seek(before)
                text = fh.read()
            out[verb][0].append(d)
            add_steps(out[verb][1], text, verb, d)
    return out


def strace_counts(path):
    """Calls per syscall from `strace -c -o path`."""
    counts = dict.fromkeys(FSYNC_CALLS, 0)
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if parts and parts[-1] in counts and len(parts) >= 5:
                    counts[parts[-1]] += int(parts[3])
    except (OSError, ValueError):
        pass
    return counts


def fsyncs(args, ours, up, node, errors):
    """fsync-family calls per verb (strace -f -c on a few runs, each traced alone); the
    upstream column counts its CLI processes only (ovsdb-server's own writes are outside)."""
    strace = shutil.which("strace")
    if not strace:
        return None
    out = {}
    tmp = os.path.join(node, "strace.out")
    for who, impl, br, kind in (("ours", ours, BR_OURS, 0xE8), ("upstream", up, BR_UP, 0xE9)):
        per = {"ADD": [], "DEL": []}
        for i in range(args.strace_runs):
            c = cid(kind, i)
            for verb in ("ADD", "DEL"):
                # Upstream runs several processes per verb: -A appends each one's table; summed.
                wrap = [strace, "-f", "-c", "-A", "-o", tmp, "-e", "trace=" + ",".join(FSYNC_CALLS)]
                try:
                    os.remove(tmp)
                except OSError:
                    pass
                f = impl.add if verb == "ADD" else impl.delete
                if errors.attempt("strace %s %s" % (who, verb), f, br, c, wrap=wrap) is not None:
                    per[verb].append(sum(strace_counts(tmp).values()))
        out[who] = per
    try:
        os.remove(tmp)
    except OSError:
        pass
    return out


def leftovers(lab, node):
    out = []
    try:
        b = lab.bridges()
        if b:
            out.append("OVS bridges: %s" % b)
            for br in b:
                lab.vsctl("--if-exists", "del-br", br)
        for table in ("Port", "Interface"):
            rows = lab.vsctl("--bare", "--columns=name", "list", table).split()
            if rows:
                out.append("OVS %s rows: %s" % (table, " ".join(rows)))
    except Failed as e:
        out.append("cannot list OVS: %s" % e)
    allowed = {"userspace.toml", "state", "state/node.lock", "shared", "upstream-shared", "log", "log/steps.log"}
    for root, dirs, files in os.walk(node):
        for n in dirs + files:
            rel = os.path.relpath(os.path.join(root, n), node)
            if rel not in allowed:
                out.append("node: " + os.path.join(node, rel))
    return out


def wait_for_load(limit, max_wait):
    """Poll the 1-minute load average until it is below `limit`, for at most max_wait s."""
    deadline = time.monotonic() + max_wait
    while True:
        try:
            one = float(loadavg().split()[0])
        except ValueError:
            return
        if one < limit or time.monotonic() >= deadline:
            return
        time.sleep(5)


def has_no_fsync_switch(binary):
    """A failpoints build carries the switch's name; a release build compiles it out."""
    try:
        with open(binary, "rb") as f:
            return b"USERSPACE_CNI_TEST_NO_FSYNC" in f.read()
    except OSError:
        return False


def report(args, res):
    p = print
    lat = res["latency"]
    p()
    p("%-26s %5s | %-24s | %-24s | %s" % ("case (ms)", "runs", "ours p50 / p90 / p99",
                                           "upstream p50 / p90 / p99", "ours/up p50"))
    p("-" * 100)
    for verb, name in (("ADD", "ADD, bridge exists"), ("DEL", "DEL, bridge stays")):
        o, u = lat["ours"][verb], lat["upstream"][verb]
        p("%-26s %5d | %7.2f %7.2f %8.2f | %7.2f %7.2f %8.2f | %.3f" % (
            name, len(o), pct(o, 50), pct(o, 90), pct(o, 99), pct(u, 50), pct(u, 90), pct(u, 99),
            pct(o, 50) / pct(u, 50)))
    if res.get("waves"):
        p()
        for verb in ("ADD", "DEL"):
            o, u = res["waves"]["ours"][verb], res["waves"]["upstream"][verb]
            p("%d concurrent %s, one bridge: ours %.1f ms (%d errors), upstream %.1f ms (%d errors), ratio %.3f" % (
                args.wave, verb, o["wall"] * 1000, o["errors"], u["wall"] * 1000, u["errors"], o["wall"] / u["wall"]))
    for verb, key in (("ADD", "profile"), ("DEL", "profile_del")):
        walls, steps = res.get(key) or ([], {})
        if not walls:
            continue
        total = statistics.median(walls)
        p()
        p("each step's share of %s %s (logLevel debug, %d runs, medians; wall %.2f ms spawn to exit):" % (
            "an" if verb == "ADD" else "a", verb, len(walls), total * 1000))
        # Medians of parts need not add up to the median wall.
        for name, v in sorted(steps.items(), key=lambda kv: kv[0].startswith("(")):
            if not v:
                continue
            m = statistics.median(v)
            p("  %-30s %6.2f ms  %5.1f %%   (min %.2f, max %.2f)" % (name, m * 1000, 100 * m / total,
                                                                     min(v) * 1000, max(v) * 1000))
    fs = res.get("fsyncs")
    p()
    if fs is None:
        p("fsyncs per verb: strace not installed (scripts/setup.sh installs it)")
    else:
        for who in ("ours", "upstream"):
            p("fsyncs per verb (%s, %s): ADD %s, DEL %s" % (
                who, "+".join(FSYNC_CALLS), fs[who]["ADD"], fs[who]["DEL"]))
    o, u = lat["ours"], lat["upstream"]
    p()
    p("targets (measured, not asserted): ADD p50 ratio %.3f (<= 0.3), DEL p50 ratio %.3f (<= 0.3), "
      "ADD p50 %.2f ms (<= 4)" % (pct(o["ADD"], 50) / pct(u["ADD"], 50), pct(o["DEL"], 50) / pct(u["DEL"], 50),
                                  pct(o["ADD"], 50)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target/x86_64-unknown-linux-musl/release/userspace"),
                    help="the plugin binary (default: the shipped static musl build)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--wave", type=int, default=64, help="concurrent ADDs in the wave (0: none)")
    ap.add_argument("--smoke", action="store_true", help="5 rounds, no wave, short profiles (CI)")
    ap.add_argument("--no-fsync", action="store_true", help="USERSPACE_CNI_TEST_NO_FSYNC=1 (failpoints builds)")
    ap.add_argument("--interleave", choices=("side", "verb"), default="side")
    ap.add_argument("--profile-runs", type=int, default=20)
    ap.add_argument("--strace-runs", type=int, default=3)
    ap.add_argument("--wait-load", type=float, default=0.0, help="wait until the 1-min load is below this")
    ap.add_argument("--wait-max", type=int, default=180)
    ap.add_argument("--pmd-maxsleep", type=int, default=0,
                    help="other_config:pmd-maxsleep in us (0: busy PMD; lab-up.sh's default is 1000)")
    ap.add_argument("--vlan", type=int, default=0,
                    help="host.bridge.vlanId of ours (README's example has 100; default none, as latency.rs)")
    ap.add_argument("--json", help="also write the raw results (seconds) here")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.wave, args.profile_runs, args.strace_runs = 5, 0, 3, 1
    args.warmup = 1 if args.smoke else 3
    if os.geteuid() != 0:
        sys.exit("harness: needs root (private OVS-DPDK, network namespaces)")
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        sys.exit("harness: %s is not an executable: build it first (cargo build --release --target "
                 "x86_64-unknown-linux-musl, or pass --bin target/release/userspace)" % binary)
    if args.no_fsync and not has_no_fsync_switch(binary):
        sys.exit("harness: --no-fsync needs a build with the failpoints feature "
                 "(cargo build --release --features failpoints); %s has no USERSPACE_CNI_TEST_NO_FSYNC" % binary)

    # SIGTERM ends like Ctrl-C: through the finally below, which stops the lab.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.wait_load:
        wait_for_load(args.wait_load, args.wait_max)
    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    print("userspace-cni harness (%s): %d rounds, interleave %s, wave %d, vlanId %s, fsync %s" % (
        "smoke" if args.smoke else "full", args.rounds, args.interleave, args.wave, args.vlan or "none",
        "off (USERSPACE_CNI_TEST_NO_FSYNC=1)" if args.no_fsync else "as built"))
    print("plugin: %s" % binary)
    print("date: %s; machine: %d CPUs; load average at start: %s" % (
        started.strftime("%Y-%m-%d %H:%M:%S UTC"), os.cpu_count() or 0, load_before))

    lab = Lab(args.pmd_maxsleep)
    netns = "uscni-hpod-%d" % os.getpid()
    node = tempfile.mkdtemp(prefix="uscni-harness-node-", dir="/tmp")
    netns_made = False
    errors = Errors()
    res = {}
    ok = False
    try:
        lab.up()
        subprocess.run(["ip", "netns", "add", netns], check=True, timeout=CHECK_TIMEOUT)
        netns_made = True
        # Only the baseline's dir: the plugin makes (and checks the modes of) its own.
        os.makedirs(os.path.join(node, "upstream-shared"))
        open(os.path.join(node, "userspace.toml"), "w").close()
        print("lab: %s (pmd-maxsleep %d us%s); node: %s" % (
            lab.dir, args.pmd_maxsleep, ": busy-polling PMD" if args.pmd_maxsleep == 0 else "", node))
        ours = Ours(binary, lab, node, netns, args.no_fsync, args.vlan)
        up = Upstream(lab, os.path.join(node, "upstream-shared"))
        try:
            # Anchors keep the "existing" bridges alive through every round.
            ours.add(BR_OURS, cid(0xA0, 0))
            up.add(BR_UP, cid(0xA1, 0))
            res["latency"] = latency(args, ours, up, errors)
            if args.wave:
                res["waves"] = waves(args, lab, ours, up, errors)
            prof = step_profile(args, ours, errors)
            res["profile"], res["profile_del"] = prof["ADD"], prof["DEL"]
            res["fsyncs"] = fsyncs(args, ours, up, node, errors)
        except Failed as e:
            errors.list.append(str(e))
        finally:
            for br, c in ((BR_OURS, cid(0xA0, 0)), (BR_OURS_WAVE, cid(0xA0, 1))):
                if br in lab.bridges():
                    errors.attempt("ours: anchor DEL", ours.delete, br, c)
            for br, c in ((BR_UP, cid(0xA1, 0)), (BR_UP_WAVE, cid(0xA1, 1))):
                if br in lab.bridges():
                    errors.attempt("upstream: anchor DEL", up.delete, br, c)
        left = leftovers(lab, node)
        if "latency" in res:
            report(args, res)
        print()
        print("load average at the end: %s" % loadavg())
        for e in errors.list:
            print("FAILED: " + e)
        for l in left:
            print("LEFTOVER: " + l)
        ok = "latency" in res and not errors.list and not left
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"date": started.isoformat(), "cpus": os.cpu_count(), "load_before": load_before,
                           "load_after": loadavg(), "bin": binary, "no_fsync": args.no_fsync,
                           "pmd_maxsleep": args.pmd_maxsleep, "vlan": args.vlan, "rounds": args.rounds,
                           "interleave": args.interleave, "errors": errors.list, "leftovers": left,
                           **res}, f)
    except Failed as e:
        print("harness: error: %s" % e)
    except KeyboardInterrupt:
        print("harness: interrupted; cleaning up")
    finally:
        # A second Ctrl-C must not cut the teardown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        lab.down()
        if netns_made:
            subprocess.run(["ip", "netns", "del", netns], timeout=CHECK_TIMEOUT)
        shutil.rmtree(node, ignore_errors=True)
    if not ok:
        print("harness: FAILED (operations errored, state was left behind, or interrupted)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
