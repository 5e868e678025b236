#!/usr/bin/env bash
# The whole test suite (README's second command): set-up, lint, every test against the real lab
# (private OVS-DPDK, host-local, testpmd, network namespaces, the VPP simulator, a fake Kubernetes
# API server, a real kube-apiserver where ../shared/envtest is installed), checks on the release
# binary, and short smoke runs of the benchmark and the fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Daemons of a test killed midway double-fork away from it: sweep them whatever happens.
trap './scripts/leftovers.sh --clean >/dev/null 2>&1 || true' EXIT

echo "==> fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features testkit -- -D warnings

echo "==> tests (in a private mount namespace: bind mounts never reach the host)"
LOG=$(mktemp /tmp/userspace-cni-test-log.XXXXXX)
# Each test that needs a real kube-apiserver (envtest) writes "ran NAME" or "skipped NAME" here.
USCNI_ENVTEST_TALLY=$(mktemp /tmp/userspace-cni-envtest-tally.XXXXXX)
export USCNI_ENVTEST_TALLY
unshare --mount --propagation private -- cargo test --workspace --features testkit -- --test-threads=2 2>&1 | tee "$LOG"

# A plain `cargo test` silently skips the test binaries that need the testkit feature; here every
# test file of the workspace must have run (a binary that did not is a hole in CI, not a pass).
not_run=""
for f in tests/*.rs backends/*/tests/*.rs examples/*/tests/*.rs; do
  name=$(basename "$f")
  grep "Running tests/$name (" "$LOG" >/dev/null || not_run="$not_run $f"
done
if [ -n "$not_run" ]; then
  echo "FAIL: these test binaries did not run:$not_run"; exit 1
fi
echo "every test binary ran ($(ls tests/*.rs backends/*/tests/*.rs examples/*/tests/*.rs | wc -l) files)"
envtest_ran=$(grep -c '^ran ' "$USCNI_ENVTEST_TALLY" || true)
envtest_skipped=$(grep -c '^skipped ' "$USCNI_ENVTEST_TALLY" || true)
rm -f "$USCNI_ENVTEST_TALLY"
if [ "$envtest_skipped" -gt 0 ]; then
  echo "skipped: no envtest: $envtest_skipped tests that need a real kube-apiserver did not run (see ../shared/envtest/README.md or set ENVTEST_DIR)"
fi

echo "==> release binary"
cargo build --release
BIN=target/release/userspace
if grep -q USERSPACE_CNI_FAILPOINT "$BIN"; then
  echo "FAIL: the release binary carries failpoints"; exit 1
fi
# No `tee /dev/stderr`: when stderr is a log file, opening /dev/stderr truncates it (CI's log
# lost everything before this line). grep without -q reads to the end, so no writer meets a
# closed pipe.
version=$(CNI_COMMAND=VERSION "$BIN" </dev/null)
echo "$version"
echo "$version" | grep '"supportedVersions":\["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"\]' >/dev/null \
  || { echo "FAIL: VERSION does not list the five CNI versions"; exit 1; }
for engine in ovs-dpdk vpp; do
  "$BIN" backends | grep "^$engine " >/dev/null || { echo "FAIL: backend $engine missing from the release binary"; exit 1; }
done
ls -l "$BIN"

echo "==> benchmark smoke (the full run: cargo bench --bench latency)"
cargo bench --bench latency -- --smoke
echo "==> second harness smoke (the full run: python3 benches/harness.py; docs/performance.md)"
python3 benches/harness.py --smoke --bin "$BIN"

echo "==> fuzz smoke: 60 s of the config parser (the 10-minute campaign is in README)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
FUZZLOG=$(mktemp /tmp/userspace-cni-fuzz-log.XXXXXX)
if ! (cd fuzz && cargo fuzz run netconf --sanitizer none -- -max_total_time=60 -rss_limit_mb=2048) >"$FUZZLOG" 2>&1; then
  tail -60 "$FUZZLOG"; echo "FAIL: the fuzzer found a crash (see above)"; exit 1
fi
grep -a '^Done ' "$FUZZLOG"
rm -f "$FUZZLOG"

echo "==> a third backend linked with one feature (docs/backend-authors.md, section 6)"
# Last: it rebuilds target/debug/userspace with the template backend linked in.
cargo build --quiet --features template-backend --bin userspace
target/debug/userspace backends | grep "^template " >/dev/null \
  || { echo "FAIL: --features template-backend does not link the template backend"; exit 1; }
target/debug/userspace backends | awk '{print $1}' | tr '\n' ' '; echo

echo "==> all checks passed"
echo "$envtest_ran tests ran against a real kube-apiserver ($envtest_skipped skipped: no envtest)"
# One summary line over every test binary of the suite, last (CI reads the closing line).
awk '/^test result:/ {p += $4; f += $6} END {printf "%d passed, %d failed\n", p, f}' "$LOG"
rm -f "$LOG"
