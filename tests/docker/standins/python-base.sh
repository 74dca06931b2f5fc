#!/usr/bin/env bash
# The Python base stand-in: a debootstrap of Debian 12, the release python:3.11-slim-bookworm is
# built on, imported as an image. Prints its tag; the tag carries this file's hash, so an
# unchanged recipe is never rebuilt (the debootstrap takes 3-5 min).
set -euo pipefail
suite=bookworm
base="llm-gateway-test/debian-python:$suite-$(sha256sum < "$0" | cut -c1-12)"
if docker image inspect "$base" >/dev/null 2>&1; then echo "$base"; exit 0; fi
command -v debootstrap >/dev/null || { echo "standins: apt-get install -y debootstrap" >&2; exit 1; }
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "standins: debootstrap $suite (first time ~3-5 min)..." >&2
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,wget \
  "$suite" "$rootfs" http://deb.debian.org/debian >&2
# What the official python image offers that litellm/Dockerfile uses: `python`, and pip
# installing into the system interpreter (Debian's PEP 668 marker refuses that otherwise). pip
# trusts its own certifi bundle, so the image carries this machine's CA bundle and PIP_CERT.
ln -sf python3 "$rootfs/usr/bin/python"
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$base" >&2
echo "$base"
