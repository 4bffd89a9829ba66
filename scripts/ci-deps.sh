#!/usr/bin/env bash
# System packages the example apps and the tests need (npm test runs this first):
#   - golang-go + golang-github-gin-gonic-gin-dev: examples/go-gin, built offline
#     GOPATH-style (GO111MODULE=off GOPATH=$PWD/gopath:/usr/share/gocode).
#   - python3: examples/python and the sd_notify receiver used by tests.
#   - systemd (systemd-socket-activate): tests pass a listening socket at fd 3.
#   - tmux: the hr init wizard is tested through a real pseudo-terminal.
#   - gunicorn, python3-flask, python3-fastapi, python3-uvicorn: `hr init` on Flask, gunicorn and
#     FastAPI apps, run under hr dev and hr serve (no `uvicorn` command: `python3 -m uvicorn`).
#   - qemu-user-static + libc6-arm64-cross: the linux-arm64 release binary runs under
#     qemu-aarch64-static -L /usr/aarch64-linux-gnu (test/e2e/arm64.test.ts).
#   - musl: /lib/ld-musl-x86_64.so.1 for the linux-x64-musl release binary.
#   - shellcheck, curl, wget: install.sh is linted and run with each downloader.
# Idempotent: does nothing when everything is present. Without root (and no sudo) it
# only warns: the tests that need a missing tool skip themselves and say why.
set -euo pipefail

need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/gin-gonic/gin ] || need+=(golang-github-gin-gonic-gin-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ -x /usr/bin/gunicorn ] || need+=(gunicorn)
[ -d /usr/lib/python3/dist-packages/flask ] || need+=(python3-flask)
[ -d /usr/lib/python3/dist-packages/fastapi ] || need+=(python3-fastapi)
[ -d /usr/lib/python3/dist-packages/uvicorn ] || need+=(python3-uvicorn)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
[ -e /lib/ld-musl-x86_64.so.1 ] || [ "$(uname -m)" != x86_64 ] || need+=(musl)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v wget >/dev/null 2>&1 || need+=(wget)

if [ ${#need[@]} -eq 0 ]; then
  echo "ci-deps: all present (go, gin, python3, systemd-socket-activate, tmux, setpriv, gunicorn, flask, fastapi, uvicorn, qemu-aarch64-static, arm64 libc, musl, shellcheck, curl, wget)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ci-deps: missing ${need[*]} and not root: install them with apt-get, or the tests that need them are skipped" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-deps: missing ${need[*]} and no apt-get: install them by hand, or the tests that need them are skipped" >&2
  exit 0
fi
echo "ci-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
