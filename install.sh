#!/bin/sh
# hr installer: downloads the hr binary for this machine, verifies it against SHA256SUMS, installs it.
#
#   curl -fsSL https://github.com/hr-reloader/hr/releases/latest/download/install.sh | sh
#
# Environment:
#   HR_VERSION            a version to install, e.g. 0.1.0 (default: the latest release)
#   HR_INSTALL_DIR        where to put hr (default: ~/.local/bin)
#   HR_INSTALL_BASE_URL   where releases live (default: https://github.com/hr-reloader/hr/releases);
#                         assets are read from BASE/download/vVERSION/ or BASE/latest/download/
#   HR_INSTALL_TARGET     skip detection: linux-x64, linux-x64-baseline, linux-arm64,
#                         linux-x64-musl or linux-arm64-musl
# Needs: curl or wget, tar, gzip, and sha256sum (or shasum). Linux only.
set -eu

BASE_URL="${HR_INSTALL_BASE_URL:-https://github.com/hr-reloader/hr/releases}"
BASE_URL="${BASE_URL%/}"
INSTALL_DIR="${HR_INSTALL_DIR:-${HOME:-}/.local/bin}"
VERSION="${HR_VERSION:-}"
VERSION="${VERSION#v}"

say() { printf 'hr-install: %s\n' "$*"; }
fail() {
	printf 'hr-install: error: %s\n' "$*" >&2
	exit 1
}

# --- where are we -----------------------------------------------------------------------------
os="$(uname -s)"
case "$os" in
Linux) ;;
Darwin) fail "hr is Linux-only today; there is no macOS build (yet). On macOS, run hr in a Linux container or VM." ;;
MINGW* | MSYS* | CYGWIN* | Windows_NT) fail "hr is Linux-only today; there is no Windows build. On Windows, use WSL 2 and run this installer inside it." ;;
*) fail "hr is Linux-only today; this system is $os." ;;
esac

detect_target() {
	case "$(uname -m)" in
	x86_64 | amd64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) fail "no hr build for the $(uname -m) CPU architecture; builds exist for x86_64 and aarch64." ;;
	esac
	libc=glibc
	if getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
		libc=glibc
	elif (ldd --version 2>&1 || true) | grep -qi musl; then
		libc=musl
	elif ls /lib/ld-musl-*.so.1 >/dev/null 2>&1; then
		libc=musl
	fi
	if [ "$libc" = musl ]; then
		echo "linux-$arch-musl"
	elif [ "$arch" = x64 ] && ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
		echo "linux-x64-baseline"
	else
		echo "linux-$arch"
	fi
}

if [ -n "${HR_INSTALL_TARGET:-}" ]; then
	case "$HR_INSTALL_TARGET" in
	linux-x64 | linux-x64-baseline | linux-arm64 | linux-x64-musl | linux-arm64-musl) target="$HR_INSTALL_TARGET" ;;
	*) fail "HR_INSTALL_TARGET=$HR_INSTALL_TARGET is not a target; use linux-x64, linux-x64-baseline, linux-arm64, linux-x64-musl or linux-arm64-musl." ;;
	esac
else
	target="$(detect_target)"
fi

# --- tools ------------------------------------------------------------------------------------
if command -v curl >/dev/null 2>&1; then
	download() { curl -fsSL --proto '=https,http' --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
	download() { wget -q -O "$2" "$1"; }
else
	fail "neither curl nor wget is installed; install one (e.g. apt-get install curl), or download the release by hand: $BASE_URL"
fi
if command -v sha256sum >/dev/null 2>&1; then
	sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
	sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
	fail "no sha256sum or shasum to verify the download with; install coreutils."
fi
command -v tar >/dev/null 2>&1 || fail "tar is not installed."
command -v gzip >/dev/null 2>&1 || fail "gzip is not installed."

# --- download and verify ----------------------------------------------------------------------
tmp="$(mktemp -d 2>/dev/null || mktemp -d -t hr-install)"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

if [ -n "$VERSION" ]; then
	from="$BASE_URL/download/v$VERSION"
else
	from="$BASE_URL/latest/download"
fi
download "$from/SHA256SUMS" "$tmp/SHA256SUMS" || fail "could not download $from/SHA256SUMS${VERSION:+ (is $VERSION a released version?)}"

# The asset is the line of SHA256SUMS that names this target: "<sha256>  hr-<version>-<target>.tar.gz".
line="$(grep -E "^[0-9a-f]{64}  hr-[^ ]+-$target\\.tar\\.gz\$" "$tmp/SHA256SUMS" | head -n 1 || true)"
[ -n "$line" ] || fail "$from/SHA256SUMS lists no asset for $target."
expected="${line%% *}"
asset="${line##* }"
case "$asset" in
*/* | .*) fail "SHA256SUMS names an unexpected file: $asset" ;;
esac

say "downloading $from/$asset"
download "$from/$asset" "$tmp/$asset" || fail "could not download $from/$asset"
actual="$(sha256 "$tmp/$asset")"
if [ "$actual" != "$expected" ]; then
	fail "checksum mismatch for $asset: expected $expected (SHA256SUMS), got $actual. Nothing was installed. Try again; if it persists, report it."
fi
say "verified sha256 $actual"

mkdir -p "$tmp/x"
tar -xzf "$tmp/$asset" -C "$tmp/x" hr || fail "$asset does not hold an hr binary."

# --- install ----------------------------------------------------------------------------------
[ -n "$INSTALL_DIR" ] || fail "no install directory: set HR_INSTALL_DIR (HOME is not set)."
mkdir -p "$INSTALL_DIR" || fail "cannot create $INSTALL_DIR; set HR_INSTALL_DIR to a directory you can write."
chmod 755 "$tmp/x/hr"
# Copy next to the target, then rename: a running hr is never overwritten in place.
cp "$tmp/x/hr" "$INSTALL_DIR/.hr.new.$$" || fail "cannot write to $INSTALL_DIR; set HR_INSTALL_DIR to a directory you can write."
mv -f "$INSTALL_DIR/.hr.new.$$" "$INSTALL_DIR/hr"
installed="$("$INSTALL_DIR/hr" --version 2>&1 || true)"
say "installed ${installed:-hr} ($target) to $INSTALL_DIR/hr"

case ":${PATH:-}:" in
*":$INSTALL_DIR:"*) say "$INSTALL_DIR is on your PATH: run 'hr --version'." ;;
*)
	say "$INSTALL_DIR is not on your PATH. Add it, e.g.:"
	say "  echo 'export PATH=\"$INSTALL_DIR:\$PATH\"' >> ~/.profile && . ~/.profile"
	;;
esac
if [ "${target%-musl}" != "$target" ]; then
	say "musl builds need the C++ runtime: on Alpine, apk add libstdc++ libgcc"
fi
