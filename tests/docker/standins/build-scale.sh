#!/usr/bin/env bash
# Build the stand-ins for the load-balancer overlay (loadbalancer/compose.yaml) and print the
# .env lines that select them, like build.sh: HAProxy and Redis from Debian 12's packages on the
# debootstrapped Python base (python-base.sh). Each tag carries a hash of its inputs: an
# unchanged recipe is not rebuilt. Never tagged like an official image (llm-gateway-test/...).
#   haproxy   Debian's haproxy 2.6, laid out like the official image (standins/haproxy/)
#   redis     Debian's redis-server/redis-cli 7.0, laid out like the official image (standins/redis/)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "standins: $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

base=$("$here/python-base.sh")

# $1 name (a directory beside this script). Prints the image's tag, built if missing.
build_standin() {
  local name=$1 tag
  tag="llm-gateway-test/$name:$(echo "$base" | cat - "$here/$name/"* | sha256sum | cut -c1-12)"
  if ! have_image "$tag"; then
    log "building $tag..."
    # The classic builder, as in build.sh (no buildx plugin here).
    DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$base" -t "$tag" "$here/$name" >&2
  fi
  echo "$tag"
}

# Assignments, not `echo "$(...)"`: a failed build must stop the script (set -e).
haproxy=$(build_standin haproxy)
redis=$(build_standin redis)
echo "LOADBALANCER_IMAGE=$haproxy"
echo "LITELLM_REDIS_IMAGE=$redis"
