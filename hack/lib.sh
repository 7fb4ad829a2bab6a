# shellcheck shell=bash
# Shared helpers for the hack/*.sh scripts; sourced, never run.
# Logs go to stderr so that `start` can print its one useful line
# (a DSN, a bootstrap address, a kubeconfig path) on stdout.
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env source-path=SCRIPTDIR
. "$HACK_DIR/versions.env"
CACHE=${SUKVERSE_CACHE:-$HOME/.cache/sukverse}
mkdir -p "$CACHE"
SCRIPT=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$SCRIPT" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$SCRIPT" "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH${2:+ ($2)}"; }

# free_port: an unused TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_open PORT: true when something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# want_port PORT: die when something already listens on 127.0.0.1:PORT.
want_port() { ! port_open "$1" || die "127.0.0.1:$1 is already in use"; }

# wait_ready PIDFILE SECONDS WHAT COMMAND...: retry COMMAND every 0.2s until it
# succeeds; die when the process in PIDFILE exits or after SECONDS.
wait_ready() {
  local pidfile=$1 limit=$2 what=$3 deadline=$((SECONDS + $2))
  shift 3
  until "$@"; do
    pid_alive "$pidfile" || die "$what exited"
    ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

# pid_alive PIDFILE: true when PIDFILE names a running process.
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE NAME: SIGTERM, wait up to 30s, then SIGKILL; removes PIDFILE.
stop_pid() {
  local pidfile=$1 name=$2 pid i
  if ! pid_alive "$pidfile"; then
    log "$name is not running"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill "$pid"
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop within 30s, killing it"
    kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

# quietly LOGFILE COMMAND...: run COMMAND with its output in LOGFILE; when it
# fails, show the end of LOGFILE and die.
quietly() {
  local logfile=$1
  shift
  mkdir -p "$(dirname "$logfile")"
  "$@" >"$logfile" 2>&1 && return
  tail -n 30 "$logfile" >&2
  die "'$*' failed, whole output in $logfile"
}

# apt_install PACKAGE...: install Debian packages (needs root) without starting
# their services: there is no init system, so a policy-rc.d forbids it.
apt_install() {
  [[ $(id -u) == 0 ]] || die "installing $* needs root (apt-get)"
  need apt-get
  log "apt-get install $* (output in $CACHE/logs/apt.log)"
  quietly "$CACHE/logs/apt.log" _apt_install "$@"
}
_apt_install() (
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"
)

# go_build SRCDIR GOMOD LDFLAGS OUT PACKAGE...: build PACKAGEs (stripped, with LDFLAGS)
# to OUT (a file, or $CACHE/bin/ for several) from a throw-away module in SRCDIR whose
# go.mod is GOMOD, written once. Go itself is the caller's: PATH, CGO_ENABLED, GOFLAGS.
go_build() {
  local src=$1 gomod=$2 ldflags=$3 out=$4
  shift 4
  mkdir -p "$src" "$CACHE/bin"
  [[ -f $src/go.mod ]] || printf '%s\n' "$gomod" >"$src/go.mod"
  log "go build $* (in $src; takes minutes on a cold cache)"
  (cd "$src" && nice -n 19 go build -trimpath -ldflags "-s -w $ldflags" -o "$out" "$@") \
    || die "go build $* failed"
}

# installed NAME VERSION: true when NAME was installed at VERSION (see mark_installed).
installed() { [[ -f $CACHE/stamps/$1 && $(cat "$CACHE/stamps/$1") == "$2" ]]; }
mark_installed() { mkdir -p "$CACHE/stamps" && echo "$2" >"$CACHE/stamps/$1"; }

# usage TEXT: print TEXT and exit 2.
usage() { printf 'usage: %s\n' "$*" >&2; exit 2; }
