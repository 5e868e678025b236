#!/usr/bin/env bash
# The demo (README's first command): on a fresh Debian 12 machine, as root, it installs what it
# needs, builds the plugin, starts a private OVS-DPDK lab, runs CNI ADD for two "pods" (network
# namespaces), proves with two dpdk-testpmd instances that packets flow through the two
# vhost-user ports our ADD created, runs DEL, shows that nothing is left, and stops the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(mktemp -d /tmp/uscni-demo.XXXXXX)
export LAB_DIR=$ROOT/ovs LAB_NS=uscni-demo-$$
PODS=(uscni-demo-pod-a-$$ uscni-demo-pod-b-$$)
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  for p in "${TX:-}" "${RX:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null; done
  wait 2>/dev/null
  for ns in "${PODS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  ./scripts/lab-down.sh >/dev/null 2>&1
  rm -rf /var/run/dpdk/uscni-demo-tx-$$ /var/run/dpdk/uscni-demo-rx-$$ "$ROOT"
}
trap cleanup EXIT

step "1/7 installing packages (Debian's openvswitch-switch-dpdk, dpdk, dpdk-dev, containernetworking-plugins)"
./scripts/setup.sh

step "2/7 building the plugin (release)"
cargo build --release --quiet
BIN=$PWD/target/release/userspace
ls -l "$BIN"

step "3/7 starting a private OVS-DPDK (ovsdb-server + ovs-vswitchd-dpdk, no hugepages) in $LAB_DIR"
./scripts/lab-up.sh
DB=$LAB_DIR/db.sock

# Node settings for the plugin: everything under the demo's temp root.
export USERSPACE_CNI_CONFIG=$ROOT/userspace.toml
cat > "$USERSPACE_CNI_CONFIG" <<TOML
state_dir = "$ROOT/state"
shared_dir = "$ROOT/shared"
ovsdb = "unix:$DB"
ovs_sock_dir = "$LAB_DIR"
allowed_roots = ["$ROOT/shared"]
TOML
NETCONF='{
  "cniVersion": "1.1.0", "name": "demo-net", "type": "userspace",
  "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
           "vhost": {"mode": "client"}, "bridge": {"bridgeName": "br-demo"}},
  "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface"}
}'
cni() { # verb pod-index
  CNI_COMMAND=$1 CNI_CONTAINERID=demo-pod-$2-0123456789 CNI_IFNAME=net1 \
  CNI_NETNS=/run/netns/${PODS[$2]} CNI_PATH=/usr/lib/cni "$BIN" <<<"$NETCONF"
}

step "4/7 CNI ADD for two pods (network namespaces ${PODS[*]})"
for i in 0 1; do
  ip netns add "${PODS[$i]}"
  echo "--- ADD pod $i:"
  cni ADD $i | tee "$ROOT/result-$i.json" | python3 -m json.tool
done
SOCK_A=$(python3 -c 'import json,sys; print([i["socketPath"] for i in json.load(open(sys.argv[1]))["interfaces"] if "sandbox" in i][0])' "$ROOT/result-0.json")
SOCK_B=$(python3 -c 'import json,sys; print([i["socketPath"] for i in json.load(open(sys.argv[1]))["interfaces"] if "sandbox" in i][0])' "$ROOT/result-1.json")
echo "--- OVS now has:"
ovs-vsctl --db="unix:$DB" show

step "5/7 packets: testpmd in pod B counts, testpmd in pod A sends one burst of 32"
EAL="--no-huge -m 64 --no-pci --no-telemetry --lcores=0@0,1@0"
APP="--forward-mode=rxonly --auto-start --stats-period=1 --total-num-mbufs=2048"
# Host vhost.mode "client": OVS connects to sockets the workloads serve (server=1).
ip netns exec "${PODS[1]}" timeout -s INT 60 dpdk-testpmd $EAL --file-prefix=uscni-demo-rx-$$ \
  --vdev=net_virtio_user1,path=$SOCK_B,server=1 -- $APP > "$ROOT/rx.log" 2>&1 & RX=$!
for _ in $(seq 200); do grep -q '^Port 0: ' "$ROOT/rx.log" && break; sleep 0.1; done
ip netns exec "${PODS[0]}" timeout -s INT 60 dpdk-testpmd $EAL --file-prefix=uscni-demo-tx-$$ \
  --vdev=net_virtio_user0,path=$SOCK_A,server=1 -- $APP --tx-first --burst=32 > "$ROOT/tx.log" 2>&1 & TX=$!
for _ in $(seq 300); do grep -q "RX-packets: 32 " "$ROOT/rx.log" && break; sleep 0.1; done
kill -INT $TX $RX 2>/dev/null; wait $TX $RX 2>/dev/null || true; TX= RX=
SENT=$(grep -A2 'Accumulated forward' "$ROOT/tx.log" | sed -n 's/.*TX-packets: *\([0-9]*\).*/\1/p')
RECV=$(grep -A1 'Accumulated forward' "$ROOT/rx.log" | sed -n 's/.*RX-packets: *\([0-9]*\).*/\1/p')
echo "sent=${SENT:-0} received=${RECV:-0} (expected 32 and 32)"
[ "${SENT:-0}" = 32 ] && [ "${RECV:-0}" = 32 ] || { echo "FAIL: packets did not flow"; exit 1; }

step "6/7 CNI DEL for both pods"
for i in 0 1; do cni DEL $i && echo "DEL pod $i: ok"; done

step "7/7 checking that nothing is left"
LEFT=$(ovs-vsctl --db="unix:$DB" list-br; find "$ROOT/state" "$ROOT/shared" -mindepth 1 ! -name node.lock 2>/dev/null)
if [ -n "$LEFT" ]; then echo "FAIL: left behind:"; echo "$LEFT"; exit 1; fi
echo "OVS bridges: none; attachment records: none; shared dirs: none"
echo; echo "demo passed: ADD -> 32/32 packets through the created vhost-user ports -> DEL -> nothing left"
