#!/usr/bin/env bash
# Make a Docker engine and Compose v2 answer, for the Docker tests (`make engine`, run by
# `make test`), then build the stand-in images they use (cached). When no engine answers and this
# is root: install Debian's docker.io if missing, start dockerd, build Compose from the Go module
# proxy (tests/docker/build-compose.sh). Outside CI an engine that cannot be had is one line and
# exit 0 (the Docker tests then skip); under CI=true it fails the run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway"
unavailable() {
  if [ "${CI:-}" = true ]; then echo "engine: $* (required under CI)" >&2; exit 1; fi
  echo "engine: $*; the Docker tests will be skipped" >&2
  exit 0
}

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || unavailable "no Docker engine answers, and only root can start one here"
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || unavailable "no dockerd, and no apt-get to install docker.io"
    echo "engine: installing Debian's docker.io and debootstrap..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap; } \
      >"$cache-apt.log" 2>&1 || unavailable "apt-get install docker.io failed (see $cache-apt.log)"
  fi
  mkdir -p "$cache"
  echo "engine: starting dockerd (log: $cache/dockerd.log)" >&2
  nohup dockerd >"$cache/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || unavailable "dockerd did not answer within 60 s (see $cache/dockerd.log)"
fi
# Debian's haproxy: tests/compose checks loadbalancer/haproxy.cfg with `haproxy -c`.
if ! command -v haproxy >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "engine: installing Debian's haproxy (for haproxy -c)..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; } \
    >"$cache-apt-haproxy.log" 2>&1 || echo "engine: apt-get install haproxy failed (see $cache-apt-haproxy.log)" >&2
fi
docker compose version >/dev/null 2>&1 || "$here/build-compose.sh" \
  || unavailable "docker compose v2 is missing and could not be built"
echo "engine: Docker $(docker version --format '{{.Server.Version}}'), $(docker compose version)" >&2
"$here/standins/build.sh" >/dev/null || unavailable "the stand-in images could not be built"
