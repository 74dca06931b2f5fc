#!/usr/bin/env bash
# Build the collector natively from otel-collector/builder-config.yaml with the OpenTelemetry
# Collector Builder, through the Go module proxy. Cached by the manifest's hash: a second run
# (or another clone on the same machine) only copies the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=otel-collector/builder-config.yaml
out=otel-collector/_build/otelcol
version=$(sed -n 's/^  version: *\([0-9.]*\).*/\1/p' "$manifest" | head -n1)
[ -n "$version" ] || { echo "build-collector: no dist.version in $manifest" >&2; exit 1; }
command -v go >/dev/null || { echo "build-collector: Go is required (https://go.dev/dl)" >&2; exit 1; }

key=$(cat "$manifest" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway/otelcol-$version-$key"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"  # a newer Go comes from the module proxy only if go.mod needs it

if [ -x "$cache/otelcol" ]; then
  if ! cmp -s "$cache/otelcol" "$out" 2>/dev/null; then
    install -D -m 0755 "$cache/otelcol" "$out"
  fi
  echo "collector $version: cached ($cache)"
  exit 0
fi

echo "collector $version: building (first time takes a few minutes)..."
mkdir -p "$cache/tools"
GOBIN="$cache/tools" go install "go.opentelemetry.io/collector/cmd/builder@v$version"
rm -rf otel-collector/_build
(cd otel-collector && "$cache/tools/builder" --config builder-config.yaml)
install -m 0755 "$out" "$cache/otelcol"
"$out" --version
