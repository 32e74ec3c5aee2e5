#!/usr/bin/env bash
# Provides a nats-server >= 2.10 for foldline and prints its path on stdout.
#
# Order of preference:
#   1. $NATS_SERVER_BIN, if set (it must be >= 2.10);
#   2. the copy already fetched into the project's .nats/ folder;
#   3. a nats-server >= 2.10 on PATH;
#   4. Debian trixie's nats-server package, downloaded with apt-get into .nats/ using a private
#      sources list and state folder (the system's apt configuration is not touched) and unpacked
#      with dpkg-deb. It is a static binary and runs on any x86_64/arm64 Linux.
# Anything else stops with a message that says exactly what to install.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.nats"
bin="$dest/pkg/usr/sbin/nats-server"
suite="${NATS_SERVER_DEBIAN_SUITE:-trixie}"
mirror="${NATS_SERVER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf 'install-nats-server: %s\n' "$*" >&2; }

# True when the binary runs and reports a version of at least 2.10.
recent_enough() {
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p') || return 1
  [ -n "$v" ] || return 1
  local major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

if [ -n "${NATS_SERVER_BIN:-}" ]; then
  if recent_enough "$NATS_SERVER_BIN"; then echo "$NATS_SERVER_BIN"; exit 0; fi
  log "NATS_SERVER_BIN=$NATS_SERVER_BIN is not a runnable nats-server >= 2.10"; exit 1
fi
if [ -x "$bin" ] && recent_enough "$bin"; then echo "$bin"; exit 0; fi
if on_path=$(command -v nats-server 2>/dev/null) && recent_enough "$on_path"; then echo "$on_path"; exit 0; fi

explain() {
  log "$1"
  log "foldline needs nats-server 2.10 or newer. Install one of:"
  log "  - on Debian or Ubuntu: the 'nats-server' package of Debian trixie or newer (this script fetches it"
  log "    itself when apt-get and dpkg-deb are present and the Debian mirror is reachable);"
  log "  - anywhere: a nats-server release binary (v2.10.x or newer) from the NATS project, on PATH;"
  log "then run this again, or point NATS_SERVER_BIN at the binary."
  exit 1
}

command -v apt-get >/dev/null 2>&1 || explain "apt-get is not available here."
command -v dpkg-deb >/dev/null 2>&1 || explain "dpkg-deb is not available here."
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || explain "the Debian archive keyring ($keyring) is missing; install the package debian-archive-keyring."

work="$dest/apt"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$arch" "$keyring" "$mirror" "$suite" >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
log "fetching nats-server from Debian $suite into .nats/"
apt-get "${apt_opts[@]}" -qq update >&2 || explain "apt-get could not read Debian $suite's package list from $mirror."
(cd "$work/deb" && apt-get "${apt_opts[@]}" -qq download "nats-server/$suite" >&2) \
  || explain "apt-get could not download nats-server from Debian $suite."
rm -rf "$dest/pkg"
dpkg-deb -x "$work"/deb/nats-server_*.deb "$dest/pkg"
rm -rf "$work"
recent_enough "$bin" || explain "the downloaded nats-server does not run here."
log "installed $("$bin" --version)"
echo "$bin"
