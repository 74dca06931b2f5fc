#!/usr/bin/env bash
# Build the stand-in images the Docker tests need, for the images no registry here serves, and
# print the .env lines that select them. Each tag carries a hash of its inputs: an unchanged
# input is not rebuilt. Never tagged like an official image (llm-gateway-test/...).
#   python base     debootstrap of Debian 12 (the release python:3.11-slim-bookworm is built on)
#   collector       the natively built otel-collector/_build/otelcol, laid out like the contrib image
#   clickhouse      chdb behind tests/support/chdb_http_adapter.py (tests/docker/README.md)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
log() { echo "standins: $*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-12; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
# The classic builder: BuildKit through the docker CLI needs the buildx plugin, which no
# registry here serves (compose builds the stack itself with its own BuildKit client).

# --- Python base (gateway image base, fake upstream, ClickHouse stand-in) ----------------------
base=$("$here/python-base.sh")

# --- Collector ---------------------------------------------------------------------------------
"$repo/scripts/build-collector.sh" >&2
version=$(sed -n 's/^  version: *\([0-9.]*\).*/\1/p' "$repo/otel-collector/builder-config.yaml" | head -n1)
collector="llm-gateway-test/otelcol:$version-$(hash_of "$repo/otel-collector/_build/otelcol" "$here/otelcol/Dockerfile")"
if ! have_image "$collector"; then
  ctx=$(mktemp -d)
  cp "$here/otelcol/Dockerfile" "$repo/otel-collector/_build/otelcol" "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q -t "$collector" "$ctx" >&2
  rm -rf "$ctx"
fi

# --- ClickHouse (chdb) -------------------------------------------------------------------------
ch_inputs=("$here/clickhouse/"* "$repo/tests/support/chdb-requirements.txt" \
  "$repo/tests/support/chdb_http_adapter.py" "$repo/tests/support/schema.py")
clickhouse="llm-gateway-test/clickhouse-chdb:$(echo "$base" | cat - "${ch_inputs[@]}" | sha256sum | cut -c1-12)"
if ! have_image "$clickhouse"; then
  ctx=$(mktemp -d)
  cp "$here/clickhouse/"* "$ctx/"
  cp "$repo/tests/support/chdb-requirements.txt" "$ctx/requirements.txt"
  mkdir -p "$ctx/support"
  cp "$repo/tests/support/chdb_http_adapter.py" "$repo/tests/support/schema.py" "$ctx/support/"
  touch "$ctx/support/__init__.py"
  log "building $clickhouse..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$base" -t "$clickhouse" "$ctx" >&2
  rm -rf "$ctx"
fi

# --- AgentOps stand-in (its collector's OTLP receiver with HS256 verification) -----------------
fa_inputs=("$here/fake-agentops/"* "$repo/tests/support/fake_agentops.py" "$repo/tests/support/fake_langfuse.py" "$repo/tests/support/otlp.py")
fake_agentops="llm-gateway-test/fake-agentops:$(echo "$base" | cat - "${fa_inputs[@]}" | sha256sum | cut -c1-12)"
if ! have_image "$fake_agentops"; then
  ctx=$(mktemp -d)
  cp "$here/fake-agentops/"* "$ctx/"
  mkdir -p "$ctx/support"
  cp "$repo/tests/support/fake_agentops.py" "$repo/tests/support/fake_langfuse.py" \
     "$repo/tests/support/otlp.py" "$ctx/support/"
  touch "$ctx/support/__init__.py"
  log "building $fake_agentops..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$base" -t "$fake_agentops" "$ctx" >&2
  rm -rf "$ctx"
fi

echo "LITELLM_BASE_IMAGE=$base"
echo "FAKE_AGENTOPS_IMAGE=$fake_agentops"
echo "OTEL_COLLECTOR_IMAGE=$collector"
echo "CLICKHOUSE_IMAGE=$clickhouse"
