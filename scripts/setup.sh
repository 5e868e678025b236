#!/usr/bin/env bash
# Install what the demo and the tests need on a Debian 12 machine (as root): Debian's OVS-DPDK,
# DPDK (testpmd), the reference CNI plugins (host-local). Skips what is already installed.
set -euo pipefail
PKGS="openvswitch-switch-dpdk dpdk dpdk-dev containernetworking-plugins iproute2 util-linux procps"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "==> installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
test -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
command -v dpdk-testpmd >/dev/null
test -x /usr/lib/cni/host-local
