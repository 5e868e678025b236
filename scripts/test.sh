#!/usr/bin/env bash
# The whole test suite (README's second command): set-up, lint, every test against the real lab
# (private OVS-DPDK, host-local, testpmd, network namespaces), then checks on the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "==> fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features testkit -- -D warnings

echo "==> tests (in a private mount namespace: bind mounts never reach the host)"
unshare --mount --propagation private -- cargo test --workspace --features testkit -- --test-threads=2

echo "==> release binary"
cargo build --release
BIN=target/release/userspace
if grep -q USERSPACE_CNI_FAILPOINT "$BIN"; then
  echo "FAIL: the release binary carries failpoints"; exit 1
fi
CNI_COMMAND=VERSION "$BIN" </dev/null | tee /dev/stderr | grep -q '"supportedVersions":\["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"\]'
for engine in ovs-dpdk vpp; do
  "$BIN" backends | grep -q "^$engine " || { echo "FAIL: backend $engine missing from the release binary"; exit 1; }
done
ls -l "$BIN"
echo "==> all checks passed"
