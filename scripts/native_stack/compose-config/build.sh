#!/usr/bin/env bash
# Builds the compose-config tool into the repository's cache and prints the binary's path.
# A no-op when the binary was built from the same sources with the same Go toolchain: a stamp
# beside the binary holds a hash of go.mod, go.sum, the *.go files and `go version`.
#
# Usage: scripts/native_stack/compose-config/build.sh            # -> .cache/bin/compose-config
# Env:   COMPOSE_CONFIG_BIN  where to put the binary (default: <repo>/.cache/bin/compose-config)
#        GO                  the go command (default: go)
# Needs only the Go module proxy (GOFLAGS=-mod=mod lets `go build` fetch and record modules).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
bin="${COMPOSE_CONFIG_BIN:-$repo/.cache/bin/compose-config}"
stamp="$bin.stamp"
go_cmd="${GO:-go}"

if ! command -v "$go_cmd" >/dev/null 2>&1; then
  echo "build.sh: '$go_cmd' not found; install Go >= 1.26 to build compose-config" >&2
  exit 127
fi

# Hash the inputs in a fixed order so the stamp is stable across runs.
want="$(
  cd "$here"
  {
    "$go_cmd" version
    for f in build.sh go.mod go.sum $(LC_ALL=C ls ./*.go); do
      [ -f "$f" ] && { echo "== $f"; cat "$f"; }
    done
  } | sha256sum | cut -d' ' -f1
)"

if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$(dirname "$bin")"
# Build to a temporary name and rename, so an interrupted build never leaves a half-written
# binary that a later run would trust.
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" CGO_ENABLED=0 "$go_cmd" build -trimpath -buildvcs=false -o "$tmp" .) >&2
mv -f "$tmp" "$bin"
printf '%s\n' "$want" > "$stamp"
echo "$bin"
