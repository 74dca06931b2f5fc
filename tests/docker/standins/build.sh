#!/usr/bin/env bash
# Build the stand-in images the Docker tests need, for the images no registry here serves, and
# print the .env lines that select them. Each tag carries a hash of its inputs: an unchanged
# input is not rebuilt. Never tagged like an official image (llm-gateway-test/...).
#   python base     debootstrap of Debian 12 (the release python:3.11-slim-bookworm is built on)
#   collector       the natively built otel-collector/_build/otelcol, laid out like the contrib image
#   clickhouse      chdb behind scripts/native_stack/chdb_server/ (tests/docker/README.md)
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
# What the entrypoint imports: the adapter package and the schema files' helpers.
mapfile -t ch_sources < <(cd "$repo" && ls scripts/__init__.py scripts/native_stack/__init__.py \
  scripts/native_stack/chdb_server/*.py scripts/clickhouse_schema/*.py)
ch_inputs=("$here/clickhouse/"* "$repo/scripts/native_stack/chdb-requirements.txt" \
  "${ch_sources[@]/#/$repo/}")
clickhouse="llm-gateway-test/clickhouse-chdb:$(echo "$base" | cat - "${ch_inputs[@]}" | sha256sum | cut -c1-12)"
if ! have_image "$clickhouse"; then
  ctx=$(mktemp -d)
  cp "$here/clickhouse/"* "$ctx/"
  cp "$repo/scripts/native_stack/chdb-requirements.txt" "$ctx/requirements.txt"
  for src in "${ch_sources[@]}"; do
    mkdir -p "$ctx/$(dirname "$src")"
    cp "$repo/$src" "$ctx/$src"
  done
  log "building $clickhouse..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$base" -t "$clickhouse" "$ctx" >&2
  rm -rf "$ctx"
fi

# --- AgentOps stand-in (its collector's OTLP receiver with HS256 verification) -----------------
fa_sources=(scripts/native_stack/http_double.py tests/doubles/fake_agentops.py tests/doubles/otlp_receiver.py)
fa_inputs=("$here/fake-agentops/"* "${fa_sources[@]/#/$repo/}")
fake_agentops="llm-gateway-test/fake-agentops:$(echo "$base" | cat - "${fa_inputs[@]}" | sha256sum | cut -c1-12)"
if ! have_image "$fake_agentops"; then
  ctx=$(mktemp -d)
  cp "$here/fake-agentops/"* "$ctx/"
  for src in "${fa_sources[@]}"; do
    mkdir -p "$ctx/$(dirname "$src")"
    cp "$repo/$src" "$ctx/$src"
  done
  # Regular packages, so no `tests` package installed in the image can shadow them.
  touch "$ctx/scripts/__init__.py" "$ctx/scripts/native_stack/__init__.py" \
    "$ctx/tests/__init__.py" "$ctx/tests/doubles/__init__.py"
  log "building $fake_agentops..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$base" -t "$fake_agentops" "$ctx" >&2
  rm -rf "$ctx"
fi

# HAProxy and Redis for the load-balancer overlay (prints its own .env lines).
"$here/build-scale.sh"
echo "LITELLM_BASE_IMAGE=$base"
echo "FAKE_AGENTOPS_IMAGE=$fake_agentops"
echo "OTEL_COLLECTOR_IMAGE=$collector"
echo "CLICKHOUSE_IMAGE=$clickhouse"
