#!/usr/bin/env bash
# Install what tests/distributed/test_hosts.py needs to make its test hosts (network namespaces,
# tests/distributed/netns_hosts.sh): iproute2's `ip` and util-linux's nsenter and unshare. Does
# nothing when they are there already. Needs root (or sudo) and the Debian package mirrors.
set -euo pipefail

if ! command -v ip >/dev/null || ! command -v nsenter >/dev/null || ! command -v unshare >/dev/null; then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends iproute2 util-linux
fi
ip -V
