#!/usr/bin/env bash
# A real Kubernetes control plane without nodes: etcd + kube-apiserver on loopback.
#   kube.sh install      build etcd, kube-apiserver, kube-controller-manager, kubectl and helm into $CACHE/bin
#   kube.sh start DIR    certificates, etcd, kube-apiserver and kube-controller-manager (garbage
#                        collection, namespace deletion, service accounts) in DIR; prints the kubeconfig path
#   kube.sh stop DIR
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

BIN=$CACHE/bin
export PATH=$PATH:/usr/local/go/bin CGO_ENABLED=0 GOFLAGS=-mod=mod

# go_build SRCDIR GOMOD LDFLAGS OUT PACKAGE...: build PACKAGEs to OUT (a file,
# or $BIN/ for several) from a throw-away module in SRCDIR whose go.mod is GOMOD.
go_build() {
  local src=$1 gomod=$2 ldflags=$3 out=$4
  shift 4
  mkdir -p "$src" "$BIN"
  [[ -f $src/go.mod ]] || printf '%s\n' "$gomod" >"$src/go.mod"
  log "go build $* (in $src; takes minutes on a cold cache)"
  (cd "$src" && nice -n 19 go build -trimpath -ldflags "-s -w $ldflags" -o "$out" "$@") \
    || die "go build $* failed"
}

# The k8s.io/kubernetes module requires its staging modules at v0.0.0 and maps
# them to ./staging with replace directives, which only apply inside its own
# repository: map each of them to its published release instead.
kube_gomod() {
  local mod
  mod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])') ||
    die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy"
  echo "module sukverse.local/build/kubernetes"
  echo "go 1.26"
  echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
  grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$mod" | awk -v v="$KUBE_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
}

KUBE_COMMANDS=(kube-apiserver kube-controller-manager kubectl)

# Builds the commands of KUBE_COMMANDS that are missing, or all of them when the
# pinned version changed, in one go build so that they share its work.
install_kube() {
  local c packages=()
  for c in "${KUBE_COMMANDS[@]}"; do
    installed kubernetes "$KUBERNETES_VERSION" && [[ -x $BIN/$c ]] && continue
    packages+=("k8s.io/kubernetes/cmd/$c")
  done
  ((${#packages[@]})) || return 0
  local v=${KUBERNETES_VERSION#v} ldflags='' p gomod
  gomod=$(kube_gomod)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=${v%%.*}"
    ldflags+=" -X $p.gitMinor=$(cut -d. -f2 <<<"$v") -X $p.gitTreeState=clean"
  done
  go_build "$CACHE/src/kubernetes-$KUBERNETES_VERSION" "$gomod" "$ldflags" "$BIN/" "${packages[@]}"
  mark_installed kubernetes "$KUBERNETES_VERSION"
}

install_etcd() {
  installed etcd "$ETCD_VERSION" && [[ -x $BIN/etcd ]] && return
  go_build "$CACHE/src/etcd-$ETCD_VERSION" \
    "$(printf 'module sukverse.local/build/etcd\ngo 1.26\nrequire go.etcd.io/etcd/server/v3 %s' "$ETCD_VERSION")" "" "$BIN/etcd" \
    go.etcd.io/etcd/server/v3
  mark_installed etcd "$ETCD_VERSION"
}

install_helm() {
  installed helm "$HELM_VERSION" && [[ -x $BIN/helm ]] && return
  local p=helm.sh/helm/v4/internal/version
  go_build "$CACHE/src/helm-$HELM_VERSION" \
    "$(printf 'module sukverse.local/build/helm\ngo 1.26\nrequire helm.sh/helm/v4 %s' "$HELM_VERSION")" \
    "-X $p.version=$HELM_VERSION -X $p.metadata= -X $p.gitTreeState=clean" "$BIN/helm" \
    helm.sh/helm/v4/cmd/helm
  mark_installed helm "$HELM_VERSION"
}

cmd_install() {
  need go "Go is expected at /usr/local/go/bin"
  install_etcd
  install_helm
  install_kube
  log "installed in $BIN after ${SECONDS}s: $("$BIN/etcd" --version | head -1), kube-apiserver $("$BIN/kube-apiserver" --version | cut -d' ' -f2), helm $("$BIN/helm" version --short)"
}

# pki DIR: CA, apiserver serving cert, service-account key pair, admin client cert.
pki() {
  local d=$1/pki
  [[ -f $d/controller-manager.crt ]] && return
  need openssl
  log "generating certificates in $d"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=sukverse-ca \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=sukverse-admin" -keyout admin.key -out admin.csr
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out admin.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=system:kube-controller-manager -keyout controller-manager.key -out controller-manager.csr
    openssl x509 -req -in controller-manager.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out controller-manager.crt
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
  ) >/dev/null 2>"$d/openssl.log" || die "openssl failed, see $d/openssl.log"
}

cmd_start() {
  (($# == 1)) || usage "kube.sh start DIR"
  local dir
  mkdir -p "$1" && dir=$(cd "$1" && pwd)
  local kubeconfig=$dir/kubeconfig
  [[ -x $BIN/kube-apiserver && -x $BIN/etcd ]] || die "binaries missing in $BIN: run 'hack/kube.sh install' first"
  if pid_alive "$dir/kube-apiserver.pid"; then
    log "already running"
    echo "$kubeconfig"
    return
  fi
  pki "$dir"
  # Ports are chosen once per DIR so that etcd's stored member URLs stay valid.
  [[ -f $dir/ports.env ]] || printf 'ETCD_PORT=%s\nPEER_PORT=%s\nAPI_PORT=%s\n' \
    "$(free_port)" "$(free_port)" "$(free_port)" >"$dir/ports.env"
  # shellcheck source=/dev/null
  . "$dir/ports.env"
  pid_alive "$dir/etcd.pid" || want_port "$ETCD_PORT"
  want_port "$API_PORT"
  trap 'cmd_stop "$dir"' EXIT

  if ! pid_alive "$dir/etcd.pid"; then
    log "starting etcd on 127.0.0.1:$ETCD_PORT"
    "$BIN/etcd" --name sukverse --data-dir "$dir/etcd" --log-level warn --unsafe-no-fsync \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
      --initial-cluster "sukverse=http://127.0.0.1:$PEER_PORT" --listen-metrics-urls "" \
      >"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"
  fi
  wait_ready "$dir/etcd.pid" 30 "etcd (log: $dir/etcd.log)" curl -sf "http://127.0.0.1:$ETCD_PORT/health" -o /dev/null

  log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
  local p=$dir/pki
  "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --cert-dir "$p" --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" --authorization-mode RBAC --allow-privileged \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    >"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"

  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sukverse
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$p/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$p/admin.crt", client-key: "$p/admin.key"}
contexts:
- name: sukverse
  context: {cluster: sukverse, user: admin, namespace: default}
current-context: sukverse
EOF
  wait_ready "$dir/kube-apiserver.pid" 60 "kube-apiserver (log: $dir/kube-apiserver.log)" \
    curl -sf --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" "https://127.0.0.1:$API_PORT/readyz" -o /dev/null
  start_controller_manager "$dir"
  trap - EXIT
  log "ready after ${SECONDS}s; export KUBECONFIG=$kubeconfig"
  echo "$kubeconfig"
}

# The controllers a test needs of a cluster without nodes: owner references garbage-collected,
# namespaces really deleted, each namespace's default ServiceAccount made.
start_controller_manager() {
  local dir=$1 p=$1/pki
  [[ -x $BIN/kube-controller-manager ]] || die "kube-controller-manager missing in $BIN: run 'hack/kube.sh install'"
  # shellcheck source=/dev/null
  . "$dir/ports.env"
  cat >"$dir/controller-manager.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sukverse
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$p/ca.crt"}
users:
- name: controller-manager
  user: {client-certificate: "$p/controller-manager.crt", client-key: "$p/controller-manager.key"}
contexts:
- name: sukverse
  context: {cluster: sukverse, user: controller-manager}
current-context: sukverse
EOF
  log "starting kube-controller-manager"
  "$BIN/kube-controller-manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false --use-service-account-credentials \
    --controllers garbage-collector-controller,namespace-controller,serviceaccount-controller \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --concurrent-gc-syncs 5 --concurrent-namespace-syncs 5 \
    >"$dir/kube-controller-manager.log" 2>&1 &
  echo $! >"$dir/kube-controller-manager.pid"
  sleep 1
  pid_alive "$dir/kube-controller-manager.pid" || die "kube-controller-manager exited (log: $dir/kube-controller-manager.log)"
}

cmd_stop() {
  (($# == 1)) || usage "kube.sh stop DIR"
  stop_pid "$1/kube-controller-manager.pid" kube-controller-manager
  stop_pid "$1/kube-apiserver.pid" kube-apiserver
  stop_pid "$1/etcd.pid" etcd
}

case ${1:-} in
  install) cmd_install ;;
  start) shift && cmd_start "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage "kube.sh install | start DIR | stop DIR" ;;
esac
