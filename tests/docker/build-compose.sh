#!/usr/bin/env bash
# Build Docker Compose v2 from the Go module proxy (no other source of it is reachable here) and
# install it as the docker CLI plugin. Cached by version: a second run only links the binary.
# `go install ...@version` is refused (compose's go.mod has replace/exclude directives), so the
# module is downloaded and built as the main module.
set -euo pipefail

version="${COMPOSE_VERSION:-v2.40.3}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway/compose-$version"
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

if [ ! -x "$cache/docker-compose" ]; then
  command -v go >/dev/null || { echo "build-compose: Go is required" >&2; exit 1; }
  echo "compose $version: building from the Go module proxy (first time ~12 min on 2 cores)..." >&2
  src=$(go mod download -json "github.com/docker/compose/v2@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { echo "build-compose: module download gave no source directory" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp -r "$src/." "$work/" && chmod -R u+w "$work"
  mkdir -p "$cache"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
      -o "$cache/docker-compose.tmp" ./cmd)
  mv -f "$cache/docker-compose.tmp" "$cache/docker-compose"
fi
mkdir -p "$plugin_dir"
ln -sf "$cache/docker-compose" "$plugin_dir/docker-compose"
echo "compose $version: $cache/docker-compose" >&2
