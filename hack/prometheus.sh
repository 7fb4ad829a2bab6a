#!/usr/bin/env bash
# Prometheus on loopback, from Debian's prometheus package (its service is never started).
#   prometheus.sh install                  apt-get install prometheus if /usr/bin/prometheus is missing
#   prometheus.sh start DIR PORT CONFIG    run it with CONFIG and its data in DIR on 127.0.0.1:PORT; prints its URL
#   prometheus.sh stop DIR
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

PROMETHEUS=/usr/bin/prometheus

cmd_install() {
  [[ -x $PROMETHEUS ]] || apt_install "$PROMETHEUS_DEB"
  [[ -x $PROMETHEUS ]] || die "$PROMETHEUS missing after installing $PROMETHEUS_DEB"
  log "$($PROMETHEUS --version 2>&1 | head -1)"
}

cmd_start() {
  [[ $# == 3 && $2 =~ ^[0-9]+$ ]] || usage "prometheus.sh start DIR PORT CONFIG"
  local dir port=$2 config url=http://127.0.0.1:$2
  mkdir -p "$1" && dir=$(cd "$1" && pwd)
  [[ -f $3 ]] || die "no config file $3"
  config=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
  [[ -x $PROMETHEUS ]] || die "Prometheus is not installed: run 'hack/prometheus.sh install' first"
  if pid_alive "$dir/prometheus.pid"; then
    log "already running"
    echo "$url"
    return
  fi
  want_port "$port"
  log "starting Prometheus on $url with $config"
  "$PROMETHEUS" --config.file "$config" --storage.tsdb.path "$dir/data" \
    --web.listen-address "127.0.0.1:$port" --web.enable-lifecycle \
    >"$dir/prometheus.log" 2>&1 &
  echo $! >"$dir/prometheus.pid"
  trap 'stop_pid "$dir/prometheus.pid" Prometheus' EXIT
  wait_ready "$dir/prometheus.pid" 30 "Prometheus (log: $dir/prometheus.log)" curl -sf "$url/-/ready" -o /dev/null
  trap - EXIT
  log "ready after ${SECONDS}s"
  echo "$url"
}

cmd_stop() {
  (($# == 1)) || usage "prometheus.sh stop DIR"
  stop_pid "$1/prometheus.pid" Prometheus
}

case ${1:-} in
  install) cmd_install ;;
  start) shift && cmd_start "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage "prometheus.sh install | start DIR PORT CONFIG | stop DIR" ;;
esac
