#!/usr/bin/env bash
# Start a private OVS-DPDK lab for humans and the demo, set up exactly as the Rust fixture
# (tests/lab): ovsdb-server and ovs-vswitchd-dpdk with OVS_RUNDIR/DBDIR/LOGDIR in $LAB_DIR,
# vswitchd in network namespace $LAB_NS, DPDK without hugepages, idle PMD allowed to sleep.
# Installs nothing (scripts/setup.sh does). Prints the OVSDB socket path on stdout; everything
# else goes to stderr. Stop it with scripts/lab-down.sh (same LAB_DIR/LAB_NS).
#   LAB_DIR  default /tmp/uscni-lab  (must be a /tmp/uscni-* dir: scripts/leftovers.sh finds it)
#   LAB_NS   default uscni-lab       (netns name and DPDK --file-prefix; must start with uscni-)
#   LAB_PMD_MAXSLEEP  default 1000 µs; 0 = busy-polling PMD (benchmarks)
set -euo pipefail
LAB_DIR=${LAB_DIR:-/tmp/uscni-lab}
LAB_NS=${LAB_NS:-uscni-lab}
LAB_PMD_MAXSLEEP=${LAB_PMD_MAXSLEEP:-1000}
here=$(cd "$(dirname "$0")" && pwd)
case "$LAB_DIR" in /tmp/uscni-*) ;; *) echo "LAB_DIR must be /tmp/uscni-*: got $LAB_DIR" >&2; exit 2 ;; esac
case "$LAB_NS" in uscni-*) ;; *) echo "LAB_NS must start with uscni-: got $LAB_NS" >&2; exit 2 ;; esac
# Call the DPDK build by path: /usr/sbin/ovs-vswitchd is the non-DPDK build and rejects
# dpdkvhostuser* interface types.
VSWITCHD=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
for f in "$VSWITCHD" "$SCHEMA"; do
  [ -e "$f" ] || { echo "missing $f: install openvswitch-switch-dpdk (scripts/setup.sh)" >&2; exit 1; }
done
if [ -e "$LAB_DIR/ovsdb-server.pid" ] || ip netns list | grep -w "$LAB_NS" >/dev/null; then
  echo "a lab already exists at $LAB_DIR / netns $LAB_NS: run scripts/lab-down.sh first" >&2; exit 1
fi
trap 'echo "lab-up failed; removing the partial lab" >&2; LAB_DIR=$LAB_DIR LAB_NS=$LAB_NS "$here/lab-down.sh" >&2' ERR

mkdir -p "$LAB_DIR"
export OVS_RUNDIR=$LAB_DIR OVS_DBDIR=$LAB_DIR OVS_LOGDIR=$LAB_DIR
DB=unix:$LAB_DIR/db.sock
vsctl() { ovs-vsctl --db="$DB" --timeout=10 "$@"; }

ovsdb-tool create "$LAB_DIR/conf.db" "$SCHEMA"
ovsdb-server "$LAB_DIR/conf.db" --remote="punix:$LAB_DIR/db.sock" --pidfile="$LAB_DIR/ovsdb-server.pid" \
  --unixctl="$LAB_DIR/ovsdb-server.ctl" --log-file="$LAB_DIR/ovsdb-server.log" --detach \
  >>"$LAB_DIR/ovsdb-server.stderr" 2>&1
vsctl --no-wait init
# --no-huge needs --legacy-mem (else vswitchd aborts); per-port-memory fits the 512 MiB.
# vhost-sock-dir stays unset: OVS reads it relative to its rundir, whose default is $LAB_DIR.
vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
  other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 other_config:per-port-memory=true \
  other_config:pmd-maxsleep="$LAB_PMD_MAXSLEEP" \
  other_config:dpdk-extra="\"--no-huge --legacy-mem -m 512 --no-pci --no-telemetry --file-prefix=$LAB_NS\"" \
  dpdk_initialized=false
# The userspace datapath creates tap devices: keep them in a netns of their own.
ip netns add "$LAB_NS"
# A detached vswitchd keeps writing to the stderr it inherited: give it a file.
ip netns exec "$LAB_NS" "$VSWITCHD" "$DB" --pidfile="$LAB_DIR/ovs-vswitchd.pid" \
  --unixctl="$LAB_DIR/ovs-vswitchd.ctl" --log-file="$LAB_DIR/ovs-vswitchd.log" --detach \
  >>"$LAB_DIR/ovs-vswitchd.stderr" 2>&1
pid=$(cat "$LAB_DIR/ovs-vswitchd.pid")
for _ in $(seq 300); do
  [ "$(vsctl get Open_vSwitch . dpdk_initialized)" = true ] && break
  kill -0 "$pid" 2>/dev/null || { echo "ovs-vswitchd exited:" >&2; tail -20 "$LAB_DIR/ovs-vswitchd.log" >&2; false; }
  sleep 0.1
done
[ "$(vsctl get Open_vSwitch . dpdk_initialized)" = true ] || { echo "DPDK not initialised after 30 s" >&2; false; }
trap - ERR
cat >&2 <<MSG
lab up: $("$VSWITCHD" --version | head -1) with $(vsctl get Open_vSwitch . dpdk_version), netns $LAB_NS
  export USERSPACE_CNI_OVSDB=unix:$LAB_DIR/db.sock USERSPACE_CNI_OVS_SOCK_DIR=$LAB_DIR
  ovs-vsctl --db=unix:$LAB_DIR/db.sock add-br br0 -- set bridge br0 datapath_type=netdev
  stop: LAB_DIR=$LAB_DIR LAB_NS=$LAB_NS $here/lab-down.sh
MSG
echo "$LAB_DIR/db.sock"
