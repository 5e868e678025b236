#!/usr/bin/env bash
# Stop the lab started by scripts/lab-up.sh (same LAB_DIR/LAB_NS) and remove everything it made:
# daemons (ovs-appctl exit, then SIGKILL by pid, never by name), the netns, the DPDK runtime dir
# and LAB_DIR. Safe to run twice, and on a half-started lab.
set -uo pipefail
LAB_DIR=${LAB_DIR:-/tmp/uscni-lab}
LAB_NS=${LAB_NS:-uscni-lab}
case "$LAB_DIR" in /tmp/uscni-*) ;; *) echo "LAB_DIR must be /tmp/uscni-*: got $LAB_DIR" >&2; exit 2 ;; esac
case "$LAB_NS" in uscni-*) ;; *) echo "LAB_NS must start with uscni-: got $LAB_NS" >&2; exit 2 ;; esac

# Alive and not a zombie: exited daemons are reparented to PID 1, which may reap them late.
alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$s" ] && [ "$s" != Z ]; }

for d in ovs-vswitchd ovsdb-server; do
  pid=$(cat "$LAB_DIR/$d.pid" 2>/dev/null) || continue
  [ "$pid" -gt 1 ] 2>/dev/null || continue
  # Only a process that still runs *this* lab's daemon (pids get reused).
  alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$LAB_DIR" || continue
  OVS_RUNDIR=$LAB_DIR ovs-appctl --timeout=3 -t "$LAB_DIR/$d.ctl" exit >/dev/null 2>&1
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then echo "$d ($pid) ignored exit: SIGKILL" >&2; kill -9 "$pid"; fi
done
ip netns del "$LAB_NS" 2>/dev/null
rm -rf "/var/run/dpdk/$LAB_NS" "$LAB_DIR"
echo "lab down: $LAB_DIR, netns $LAB_NS" >&2
true
