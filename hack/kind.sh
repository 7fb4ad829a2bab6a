#!/usr/bin/env bash
# kind (sigs.k8s.io/kind) built from its module, for checking kind cluster configs here,
# where no Docker engine runs and so no cluster can be created.
#   kind.sh install        builds $SUKVERSE_CACHE/bin/kind and bin/kind-config-check
#   kind.sh check FILE...  kind's own loader and validation on each FILE; prints a summary
#   kind.sh kind ARGS...   the kind command itself
#
# kind's loader (pkg/internal/apis/config/encoding) is internal to its module's pkg/, so
# kind-config-check is built inside a copy of the module's source (as pkg/sukverse-kind-config,
# Go refuses overlays into the module cache): a main package of a few lines that calls encoding.Load and then the Cluster's Validate, the two steps
# `kind create cluster --config FILE` takes before it creates any node. (`kind create
# cluster` itself loads the file first too, but then stops at the missing provider before
# validating it.)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

export PATH=$PATH:/usr/local/go/bin CGO_ENABLED=0 GOFLAGS=-mod=mod
BIN=$CACHE/bin

checker_source() {
  cat <<'EOF'
// Command sukverse-kind-config loads each kind config file with kind's own loader and
// validates it as `kind create cluster --config FILE` does.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/internal/apis/config/encoding"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-config-check FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		cfg, err := encoding.Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		roles := map[string]int{}
		ports := 0
		for _, node := range cfg.Nodes {
			roles[string(node.Role)]++
			ports += len(node.ExtraPortMappings)
		}
		fmt.Printf("%s: cluster %q, %d control-plane, %d worker, %d port mappings\n",
			path, cfg.Name, roles["control-plane"], roles["worker"], ports)
	}
	if failed {
		os.Exit(1)
	}
}
EOF
}

cmd_install() {
  local stamp=$KIND_VERSION+check1
  if installed kind "$stamp" && [[ -x $BIN/kind && -x $BIN/kind-config-check ]]; then
    return
  fi
  need go "Go is expected at /usr/local/go/bin"
  local dir src=$CACHE/src/kind-$KIND_VERSION
  dir=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') ||
    die "go mod download sigs.k8s.io/kind@$KIND_VERSION failed"
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  mkdir -p "$src/pkg/sukverse-kind-config" "$BIN"
  checker_source >"$src/pkg/sukverse-kind-config/main.go"
  log "go build kind $KIND_VERSION and kind-config-check (in $src)"
  (cd "$src" && nice -n 19 go build -trimpath -ldflags "-s -w" -o "$BIN/kind" . &&
    nice -n 19 go build -trimpath -ldflags "-s -w" -o "$BIN/kind-config-check" \
      ./pkg/sukverse-kind-config) || die "go build of kind $KIND_VERSION failed"
  mark_installed kind "$stamp"
}

case ${1:-} in
  install) cmd_install ;;
  check)
    shift
    (($# > 0)) || usage "kind.sh check FILE..."
    cmd_install
    "$BIN/kind-config-check" "$@"
    ;;
  kind) shift && cmd_install && "$BIN/kind" "$@" ;;
  *) usage "kind.sh install | check FILE... | kind ARGS..." ;;
esac
