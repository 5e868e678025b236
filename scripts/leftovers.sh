#!/usr/bin/env bash
# List what killed or failed test runs left behind: uscni-* network namespaces, DPDK runtime dirs
# /var/run/dpdk/uscni-*, /tmp/uscni-* dirs, and ovsdb-server / ovs-vswitchd / dpdk-testpmd /
# etcd / kube-apiserver processes started for them (pidfile or arguments under /tmp/uscni-*, DPDK
# prefix uscni-*; envtest's servers under /tmp/uscni-envtest-*).
# With --clean, remove them: processes by pid (SIGKILL), then netns, then dirs. Never touches
# anything not named uscni-*. Run it when no test is running: live labs look the same.
# Exit status: 0 when nothing is (left) there, 1 when leftovers were found and not cleaned.
set -uo pipefail
clean=0
case "${1:-}" in --clean) clean=1 ;; "") ;; *) echo "usage: $0 [--clean]" >&2; exit 2 ;; esac

alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$s" ] && [ "$s" != Z ]; }

procs=()
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" -gt 1 ] && [ "$pid" != $$ ] || continue
  cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
  case "$cmd" in
    *ovsdb-server*/tmp/uscni-* | *ovs-vswitchd*/tmp/uscni-* | *dpdk-testpmd*--file-prefix=uscni-* | \
      *etcd*/tmp/uscni-envtest-* | *kube-apiserver*/tmp/uscni-envtest-*)
      alive "$pid" && procs+=("$pid") ;;
  esac
done
netns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^uscni-'; ls /run/netns 2>/dev/null | grep '^uscni-')
netns=$(printf '%s\n' $netns | sort -u)
dirs=$(ls -d /var/run/dpdk/uscni-* /tmp/uscni-*/ 2>/dev/null | sed 's:/$::')

found=0
for pid in "${procs[@]}"; do echo "process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"; found=1; done
for n in $netns; do echo "netns $n"; found=1; done
for d in $dirs; do echo "dir $d"; found=1; done
[ $found = 0 ] && { echo "no leftovers"; exit 0; }
[ $clean = 1 ] || exit 1

for pid in "${procs[@]}"; do kill -9 "$pid" 2>/dev/null; done
for pid in "${procs[@]}"; do for _ in $(seq 30); do alive "$pid" || break; sleep 0.1; done; done
for n in $netns; do ip netns del "$n" 2>/dev/null || rm -f "/run/netns/$n"; done
for d in $dirs; do rm -rf "$d"; done
echo "cleaned"
