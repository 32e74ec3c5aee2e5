#!/usr/bin/env bash
# Provides a nats-server >= 2.12 for foldline and prints its path on stdout.
#
# foldline appends with atomic batch publish, which nats-server has from 2.12 on. Debian trixie's package
# (2.10) lacks it and is end of life upstream, with many security fixes after it; Debian forky carries 2.15.
#
# Order of preference:
#   1. $NATS_SERVER_BIN, if set (it must be >= 2.12; anything older is refused, not replaced);
#   2. the copy already fetched into the project's .nats/ folder, if it is >= 2.12 (an older one, fetched by
#      an earlier version of this script, is removed and fetched again);
#   3. a nats-server >= 2.12 on PATH;
#   4. Debian's nats-server package from forky, or from sid when forky has none or the fetch fails
#      ($NATS_SERVER_DEBIAN_SUITE names one suite to use instead), downloaded with apt-get into .nats/ using a
#      private sources list and state folder (the system's apt configuration is not touched) and unpacked with
#      dpkg-deb. It is a static binary and runs on any x86_64/arm64 Linux.
# Anything else stops with a message that says exactly what to install.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.nats"
bin="$dest/pkg/usr/sbin/nats-server"
suites="${NATS_SERVER_DEBIAN_SUITE:-forky sid}"
mirror="${NATS_SERVER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
need="2.12"
why="foldline needs nats-server $need or newer, for atomic batch publish"

log() { printf 'install-nats-server: %s\n' "$*" >&2; }

# The version the binary reports ("2.15.1"), or nothing when it does not run.
version_of() {
  "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p' || true
}

# True when the binary runs and reports a version of at least 2.12.
recent_enough() {
  local v major minor
  v=$(version_of "$1")
  [ -n "$v" ] || return 1
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 12 ]; }
}

# "v2.10.27" or "does not run", for messages.
describe() {
  local v
  v=$(version_of "$1")
  if [ -n "$v" ]; then echo "v$v"; else echo "does not run"; fi
}

if [ -n "${NATS_SERVER_BIN:-}" ]; then
  if recent_enough "$NATS_SERVER_BIN"; then echo "$NATS_SERVER_BIN"; exit 0; fi
  log "NATS_SERVER_BIN=$NATS_SERVER_BIN ($(describe "$NATS_SERVER_BIN")) cannot be used: $why."
  log "Point NATS_SERVER_BIN at a nats-server $need or newer, or unset it to let this script fetch one."
  exit 1
fi
if [ -x "$bin" ]; then
  if recent_enough "$bin"; then echo "$bin"; exit 0; fi
  log "the nats-server in .nats/ ($(describe "$bin")) is too old: $why; removing it to fetch a newer one"
  rm -rf "$dest/pkg"
fi
if on_path=$(command -v nats-server 2>/dev/null); then
  if recent_enough "$on_path"; then echo "$on_path"; exit 0; fi
  log "ignoring the nats-server on PATH ($on_path, $(describe "$on_path")): $why"
fi

explain() {
  log "$1"
  log "$why. Install one of:"
  log "  - on Debian or Ubuntu: the 'nats-server' package of Debian forky or sid (this script fetches it"
  log "    itself when apt-get and dpkg-deb are present and the Debian mirror is reachable; trixie's 2.10 is"
  log "    too old and end of life);"
  log "  - anywhere: a nats-server release binary (v$need.x or newer) from the NATS project, on PATH;"
  log "then run this again, or point NATS_SERVER_BIN at the binary."
  exit 1
}

command -v apt-get >/dev/null 2>&1 || explain "apt-get is not available here."
command -v dpkg-deb >/dev/null 2>&1 || explain "dpkg-deb is not available here."
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || explain "the Debian archive keyring ($keyring) is missing; install the package debian-archive-keyring."

work="$dest/apt"
trap 'rm -rf "$work"' EXIT

# Downloads and unpacks Debian $1's nats-server into $work/pkg; fails, saying why, when the suite has none, it
# cannot be fetched, or it is older than 2.12.
fetch_from() {
  local suite=$1
  rm -rf "$work"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
  printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$arch" "$keyring" "$mirror" "$suite" >"$work/sources.list"
  local apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  log "fetching nats-server from Debian $suite into .nats/: $why, and trixie's 2.10 is end of life"
  # apt-get update only warns when the mirror cannot be reached; the package list is there or it is not.
  if ! apt-get "${apt_opts[@]}" -qq update >&2 || ! compgen -G "$work/lists/*_Packages*" >/dev/null; then
    log "apt-get could not read Debian $suite's package list from $mirror"
    return 1
  fi
  (cd "$work/deb" && apt-get "${apt_opts[@]}" -qq download "nats-server/$suite" >&2) \
    || { log "apt-get could not download nats-server from Debian $suite (the suite may have none)"; return 1; }
  dpkg-deb -x "$work"/deb/nats-server_*.deb "$work/pkg" || { log "the package from Debian $suite could not be unpacked"; return 1; }
  recent_enough "$work/pkg/usr/sbin/nats-server" \
    || { log "Debian $suite's nats-server ($(describe "$work/pkg/usr/sbin/nats-server")) is too old or does not run here"; return 1; }
}

for suite in $suites; do
  if fetch_from "$suite"; then
    rm -rf "$dest/pkg"
    mv "$work/pkg" "$dest/pkg"
    log "installed $("$bin" --version) from Debian $suite"
    echo "$bin"
    exit 0
  fi
done
explain "no nats-server $need or newer could be fetched from Debian ($suites)."
