#!/usr/bin/env bash
# Jaeger v2, the trace backend, on loopback: OTLP in, traces kept in memory, its query API out.
#   jaeger.sh install      build Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger) into $CACHE/bin/jaeger
#   jaeger.sh start DIR    write DIR/config.yaml (every listener on a free 127.0.0.1 port) and run it;
#                          prints "OTLP_HTTP_URL QUERY_URL"
#   jaeger.sh stop DIR
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

BIN=$CACHE/bin
export PATH=$PATH:/usr/local/go/bin CGO_ENABLED=0 GOFLAGS=-mod=mod

# The jaeger module's replace directives only apply inside its own repository: repeat
# those that name another module version (it has one, for github.com/Shopify/sarama).
jaeger_gomod() {
  local mod
  mod=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])') ||
    die "cannot download github.com/jaegertracing/jaeger@$JAEGER_VERSION from the Go module proxy"
  echo "module sukverse.local/build/jaeger"
  echo "go 1.26"
  echo "require github.com/jaegertracing/jaeger $JAEGER_VERSION"
  go mod edit -json "$mod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if not new.get("Version"):
        sys.exit("replace of %s by a directory" % old["Path"])
    print("replace", old["Path"], *([old["Version"]] if old.get("Version") else []), "=>", new["Path"], new["Version"])
' || die "cannot carry over the replace directives of $mod"
}

cmd_install() {
  need go "Go is expected at /usr/local/go/bin"
  if ! installed jaeger "$JAEGER_VERSION" || [[ ! -x $BIN/jaeger ]]; then
    local gomod p=github.com/jaegertracing/jaeger/internal/version
    gomod=$(jaeger_gomod)
    go_build "$CACHE/src/jaeger-$JAEGER_VERSION" "$gomod" "-X $p.latestVersion=$JAEGER_V2_VERSION" "$BIN/jaeger" \
      github.com/jaegertracing/jaeger/cmd/jaeger
    mark_installed jaeger "$JAEGER_VERSION"
  fi
  log "installed in $BIN after ${SECONDS}s: jaeger $("$BIN/jaeger" version 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["gitVersion"])')"
}

# jaeger_config: Jaeger v2's configuration (an OpenTelemetry Collector's) for the ports of
# ports.env: OTLP over HTTP and gRPC into a memory store, the query API over HTTP and gRPC,
# all on 127.0.0.1. Nothing else listens: no metrics server of its own (level none), and
# neither health check, zpages, pprof, expvar nor remote sampling is configured.
jaeger_config() {
  cat <<EOF
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    # Its own spans would go to an OTLP exporter's default, localhost:4317.
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:$QUERY_HTTP_PORT
    grpc:
      endpoint: 127.0.0.1:$QUERY_GRPC_PORT

receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$OTLP_HTTP_PORT
      grpc:
        endpoint: 127.0.0.1:$OTLP_GRPC_PORT

processors:
  batch:

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
}

# jaeger_ready OTLP_URL QUERY_URL: the query API answers and the OTLP/HTTP receiver (the
# last thing the collector starts) takes an empty export.
jaeger_ready() {
  curl -sf "$2/api/services" -o /dev/null &&
    curl -sf -H 'Content-Type: application/json' -d '{}' "$1/v1/traces" -o /dev/null
}

cmd_start() {
  (($# == 1)) || usage "jaeger.sh start DIR"
  local dir
  mkdir -p "$1" && dir=$(cd "$1" && pwd)
  [[ -x $BIN/jaeger ]] || die "Jaeger is not installed: run 'hack/jaeger.sh install' first"
  # Ports are chosen once per DIR, so that a restart keeps its URLs.
  [[ -f $dir/ports.env ]] || printf 'OTLP_HTTP_PORT=%s\nOTLP_GRPC_PORT=%s\nQUERY_HTTP_PORT=%s\nQUERY_GRPC_PORT=%s\n' \
    "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" >"$dir/ports.env"
  # shellcheck source=/dev/null
  . "$dir/ports.env"
  local otlp=http://127.0.0.1:$OTLP_HTTP_PORT query=http://127.0.0.1:$QUERY_HTTP_PORT port
  if pid_alive "$dir/jaeger.pid"; then
    log "already running"
    echo "$otlp $query"
    return
  fi
  for port in "$OTLP_HTTP_PORT" "$OTLP_GRPC_PORT" "$QUERY_HTTP_PORT" "$QUERY_GRPC_PORT"; do
    want_port "$port"
  done
  jaeger_config >"$dir/config.yaml"
  log "starting Jaeger: OTLP on $otlp and 127.0.0.1:$OTLP_GRPC_PORT (gRPC), query on $query and 127.0.0.1:$QUERY_GRPC_PORT (gRPC)"
  "$BIN/jaeger" --config "$dir/config.yaml" >"$dir/jaeger.log" 2>&1 &
  echo $! >"$dir/jaeger.pid"
  trap 'stop_pid "$dir/jaeger.pid" Jaeger' EXIT
  wait_ready "$dir/jaeger.pid" 30 "Jaeger (log: $dir/jaeger.log)" jaeger_ready "$otlp" "$query"
  trap - EXIT
  log "ready after ${SECONDS}s"
  echo "$otlp $query"
}

cmd_stop() {
  (($# == 1)) || usage "jaeger.sh stop DIR"
  stop_pid "$1/jaeger.pid" Jaeger
}

case ${1:-} in
  install) cmd_install ;;
  start) shift && cmd_start "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage "jaeger.sh install | start DIR | stop DIR" ;;
esac
