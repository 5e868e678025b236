#!/usr/bin/env bash
# Build the OCI image with buildah (no Docker engine needed): FROM scratch, the static binary at
# /userspace, entrypoint /userspace, tagged with the crate version, exported to an oci-archive.
# Image storage lives in a temp dir (CONTAINERS_STORAGE_CONF), so the host's is never touched.
#
#   scripts/build-image.sh [--bin PATH] [--out FILE]
#     --bin  the static binary to package (default: build target/x86_64-unknown-linux-musl/release/userspace)
#     --out  the oci-archive to write (default: target/image/userspace-cni-<version>.oci.tar)
# Prints the archive path on the last line of stdout. Push it with e.g.
#   skopeo copy oci-archive:FILE docker://REGISTRY/userspace-cni:<version>
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl
BIN=""; OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in buildah file; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install buildah file)" >&2; exit 1; }
done

PKGID=$(cargo pkgid -p userspace-cni)
VERSION=${PKGID##*[#@]}
NAME=userspace-cni
TAG="localhost/$NAME:$VERSION"
OUT=${OUT:-target/image/$NAME-$VERSION.oci.tar}

if [ -z "$BIN" ]; then
  echo "==> cargo build --release --target $TARGET" >&2
  cargo build --release --target "$TARGET" >&2
  BIN=target/$TARGET/release/userspace
fi
# The image has no libc: a dynamically linked binary would not even start.
if ! file -L "$BIN" | grep -Eq 'statically linked|static-pie linked'; then
  echo "build-image.sh: $BIN is not statically linked: $(file -L "$BIN")" >&2; exit 1
fi

WORK=$(mktemp -d /tmp/uscni-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
CONF
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf"

CTX="$WORK/context"
mkdir -p "$CTX/rootfs/run" "$CTX/rootfs/var"
ln -s ../run "$CTX/rootfs/var/run"
cp "$BIN" "$CTX/userspace"
chmod 0755 "$CTX/userspace"

# Reproducible: every timestamp is the last commit's (or SOURCE_DATE_EPOCH), not the build time.
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
echo "==> buildah bud $TAG" >&2
buildah bud --quiet --format oci --layers=false --timestamp "$EPOCH" \
  --build-arg "VERSION=$VERSION" -f config/image/Containerfile -t "$TAG" "$CTX" >&2

mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
buildah push --quiet "$TAG" "oci-archive:$OUT:$NAME:$VERSION" >&2
echo "image $NAME:$VERSION: $(stat -c %s "$OUT") bytes in $OUT (binary: $(stat -c %s "$BIN") bytes)" >&2
echo "$OUT"
