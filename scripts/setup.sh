#!/usr/bin/env bash
# Install what the demo and the tests need on a Debian 12 machine (as root): Debian's OVS-DPDK,
# DPDK (testpmd), the reference CNI plugins (host-local), and what builds and runs the static
# binary and its image (musl-tools, buildah, podman, skopeo, umoci, runc, the musl Rust target),
# busybox-static (the root filesystem of the CDI test's podman container), and strace (the
# benchmarks count the plugin's fsyncs per verb with it).
# Skips what is already installed.
set -euo pipefail
PKGS="openvswitch-switch-dpdk dpdk dpdk-dev containernetworking-plugins iproute2 util-linux procps
  musl-tools buildah podman skopeo umoci runc file openssl curl xz-utils busybox-static strace"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing="$missing $p"
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
# The static release binary and its OCI image (tests/packaging.rs, scripts/build-image.sh).
rustup target list --installed | grep -x x86_64-unknown-linux-musl >/dev/null || rustup target add x86_64-unknown-linux-musl
# VPP's own Python client: the independent oracle of the VPP backend's tests (golden bytes, a
# client against the simulator). 2.4.2 loads the v26.06 .api.json files.
python3 -c 'import vpp_papi' 2>/dev/null || python3 -m pip install --quiet vpp-papi==2.4.2 \
  || python3 -m pip install --quiet --break-system-packages vpp-papi==2.4.2
python3 -c 'import vpp_papi'
# A real kube-apiserver, etcd and kubectl for the Kubernetes tests (tests/k8s_rbac.rs), from the
# team's envtest folder beside the repository (start.sh needs openssl and curl, install.sh xz).
# Without the folder those tests print "skipped: no envtest" and pass.
ENVTEST_SCRIPTS="$(cd "$(dirname "$0")/.." && pwd)/../shared/envtest"
if [ -f "$ENVTEST_SCRIPTS/install.sh" ]; then
  bash "$ENVTEST_SCRIPTS/install.sh" "${ENVTEST_DIR:-/opt/envtest}" >/dev/null
else
  echo "==> no $ENVTEST_SCRIPTS: the tests against a real kube-apiserver will be skipped"
fi
