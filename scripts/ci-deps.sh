#!/usr/bin/env bash
# Install the system packages the example apps and their tests need:
#   - golang-go + golang-github-gin-gonic-gin-dev: examples/go-gin, built offline
#     GOPATH-style (GO111MODULE=off GOPATH=$PWD/gopath:/usr/share/gocode).
#   - python3: examples/python and the sd_notify receiver used by tests.
#   - systemd (for systemd-socket-activate): tests pass a listening socket at fd 3.
# Idempotent: does nothing when everything is already present.
set -euo pipefail

need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/gin-gonic/gin ] || need+=(golang-github-gin-gonic-gin-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)

if [ ${#need[@]} -eq 0 ]; then
  echo "ci-deps: all present (go, gin, python3, systemd-socket-activate)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "ci-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
