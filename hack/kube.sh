#!/usr/bin/env bash
# A real Kubernetes control plane on loopback: etcd + kube-apiserver, and on demand nodes simulated by kwok.
#   kube.sh install      build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#                        helm and kwok (with kwok's default "fast" stages) into $CACHE/bin
#   kube.sh start DIR    certificates, etcd, kube-apiserver and kube-controller-manager (garbage
#                        collection, namespace deletion, service accounts) in DIR; prints the kubeconfig path
#   kube.sh nodes DIR [COUNT]
#                        on a started DIR: kube-scheduler, kwok, COUNT (3) fake Nodes, and the
#                        controller-manager's workload controllers, so Deployments, StatefulSets and Jobs
#                        get Pods that become Running and Ready (Jobs' Pods Succeeded); prints the kubeconfig path
#   kube.sh stop DIR     stops all of them
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

BIN=$CACHE/bin
export PATH=$PATH:/usr/local/go/bin CGO_ENABLED=0 GOFLAGS=-mod=mod

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

KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

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

KWOK_STAGES=$CACHE/kwok-$KWOK_VERSION/stages.yaml

# kwok_stages DIR: the Stage files of the kustomization in DIR, following its resources
# (files and other kustomization directories) in order.
kwok_stages() {
  local dir=$1 r
  while read -r r; do
    if [[ -d $dir/$r ]]; then kwok_stages "$dir/$r"; else echo "$dir/$r"; fi
  done < <(sed -n '/^resources:/,/^[^ -]/s/^- *//p' "$dir/kustomization.yaml")
}

# The kwok controller, and the stages kwokctl gives it by default: the module's
# kustomize/stage/fast (node initialize, heartbeat with lease; pod ready, complete, delete).
install_kwok() {
  installed kwok "$KWOK_VERSION" && [[ -x $BIN/kwok && -f $KWOK_STAGES ]] && return
  go_build "$CACHE/src/kwok-$KWOK_VERSION" \
    "$(printf 'module sukverse.local/build/kwok\ngo 1.26\nrequire sigs.k8s.io/kwok %s' "$KWOK_VERSION")" "" "$BIN/kwok" \
    sigs.k8s.io/kwok/cmd/kwok
  local mod f stages=()
  mod=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') ||
    die "cannot download sigs.k8s.io/kwok@$KWOK_VERSION from the Go module proxy"
  mapfile -t stages < <(kwok_stages "$mod/kustomize/stage/fast")
  ((${#stages[@]})) || die "no stages in $mod/kustomize/stage/fast"
  mkdir -p "$(dirname "$KWOK_STAGES")"
  for f in "${stages[@]}"; do
    grep -q '^kind: Stage$' "$f" || die "$f is not a kwok Stage"
    printf -- '---\n# sigs.k8s.io/kwok@%s/%s\n' "$KWOK_VERSION" "${f#"$mod"/}" && cat "$f"
  done >"$KWOK_STAGES.tmp"
  mv "$KWOK_STAGES.tmp" "$KWOK_STAGES"
  log "kwok stages in $KWOK_STAGES: ${stages[*]##*/}"
  mark_installed kwok "$KWOK_VERSION"
}

cmd_install() {
  need go "Go is expected at /usr/local/go/bin"
  install_etcd
  install_helm
  install_kube
  install_kwok
  log "installed in $BIN after ${SECONDS}s: $("$BIN/etcd" --version | head -1), kube-apiserver $("$BIN/kube-apiserver" --version | cut -d' ' -f2), helm $("$BIN/helm" version --short), kwok $KWOK_VERSION"
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

# component_kubeconfig DIR NAME: DIR/NAME.kubeconfig, authenticating with pki/NAME.crt.
component_kubeconfig() {
  local dir=$1 name=$2 p=$1/pki
  # shellcheck source=/dev/null
  . "$dir/ports.env"
  cat >"$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sukverse
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$p/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$p/$name.crt", client-key: "$p/$name.key"}
contexts:
- name: sukverse
  context: {cluster: sukverse, user: $name}
current-context: sukverse
EOF
}

# The controllers a test needs of a cluster without nodes: owner references garbage-collected,
# namespaces really deleted, each namespace's default ServiceAccount made.
BASE_CONTROLLERS=garbage-collector-controller,namespace-controller,serviceaccount-controller
# With nodes (kube.sh nodes), also those that turn workloads into Pods, Services into endpoints,
# keep PodDisruptionBudgets' status, and lift the not-ready taint the API server puts on a new Node
# once kwok reports it Ready (node-lifecycle).
WORKLOAD_CONTROLLERS=$BASE_CONTROLLERS,node-lifecycle-controller
WORKLOAD_CONTROLLERS+=,deployment-controller,replicaset-controller,statefulset-controller
WORKLOAD_CONTROLLERS+=,daemonset-controller,job-controller,cronjob-controller,ttl-after-finished-controller
WORKLOAD_CONTROLLERS+=,endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller
WORKLOAD_CONTROLLERS+=,disruption-controller,pod-garbage-collector-controller

# start_controller_manager DIR [CONTROLLERS]: kube-controller-manager running CONTROLLERS
# (BASE_CONTROLLERS unless given), which DIR/kube-controller-manager.controllers remembers.
start_controller_manager() {
  local dir=$1 p=$1/pki controllers=${2:-$BASE_CONTROLLERS}
  [[ -x $BIN/kube-controller-manager ]] || die "kube-controller-manager missing in $BIN: run 'hack/kube.sh install'"
  component_kubeconfig "$dir" controller-manager
  log "starting kube-controller-manager"
  "$BIN/kube-controller-manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false --use-service-account-credentials \
    --controllers "$controllers" \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --concurrent-gc-syncs 5 --concurrent-namespace-syncs 5 \
    >"$dir/kube-controller-manager.log" 2>&1 &
  echo $! >"$dir/kube-controller-manager.pid"
  echo "$controllers" >"$dir/kube-controller-manager.controllers"
  sleep 1
  pid_alive "$dir/kube-controller-manager.pid" || die "kube-controller-manager exited (log: $dir/kube-controller-manager.log)"
}

# scheduler_cert DIR: kube-scheduler's client certificate; RBAC's bootstrap roles grant
# system:kube-scheduler what it needs.
scheduler_cert() {
  local d=$1/pki
  [[ -f $d/scheduler.crt ]] && return
  (
    cd "$d"
    openssl req -newkey rsa:2048 -nodes -subj /CN=system:kube-scheduler -keyout scheduler.key -out scheduler.csr
    openssl x509 -req -in scheduler.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out scheduler.crt
  ) >/dev/null 2>"$d/openssl.log" || die "openssl failed, see $d/openssl.log"
}

# fake_nodes COUNT: COUNT Nodes that kwok manages (its annotation), shaped like kwokctl's node
# template (without addresses: there is nothing to reach).
fake_nodes() {
  local i
  for ((i = 0; i < $1; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    beta.kubernetes.io/arch: amd64
    beta.kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
spec:
  podCIDR: 10.244.$i.0/24
  podCIDRs: [10.244.$i.0/24]
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo: {architecture: amd64, operatingSystem: linux}
EOF
  done
}

cmd_nodes() {
  [[ ($# == 1 || $# == 2) && ${2:-3} =~ ^[1-9][0-9]*$ ]] || usage "kube.sh nodes DIR [COUNT]"
  local dir count=${2:-3} c
  if ! dir=$(cd "$1" 2>/dev/null && pwd) || ! pid_alive "$dir/kube-apiserver.pid"; then
    die "no control plane running in $1: run 'hack/kube.sh start $1' first"
  fi
  for c in kube-scheduler kwok kubectl; do
    [[ -x $BIN/$c ]] || die "$c missing in $BIN: run 'hack/kube.sh install'"
  done
  [[ -f $KWOK_STAGES ]] || die "kwok stages missing: run 'hack/kube.sh install'"
  local kubectl=("$BIN/kubectl" --kubeconfig "$dir/kubeconfig")
  # shellcheck source=/dev/null
  . "$dir/ports.env"
  if [[ -z ${SCHEDULER_PORT:-} ]]; then
    SCHEDULER_PORT=$(free_port)
    echo "SCHEDULER_PORT=$SCHEDULER_PORT" >>"$dir/ports.env"
  fi

  if [[ $(cat "$dir/kube-controller-manager.controllers" 2>/dev/null) != "$WORKLOAD_CONTROLLERS" ]] ||
    ! pid_alive "$dir/kube-controller-manager.pid"; then
    stop_pid "$dir/kube-controller-manager.pid" kube-controller-manager
    start_controller_manager "$dir" "$WORKLOAD_CONTROLLERS"
  fi

  if ! pid_alive "$dir/kube-scheduler.pid"; then
    want_port "$SCHEDULER_PORT"
    scheduler_cert "$dir"
    component_kubeconfig "$dir" scheduler
    log "starting kube-scheduler (healthz on https://127.0.0.1:$SCHEDULER_PORT)"
    "$BIN/kube-scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
      --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$dir/pki/scheduler-serving" \
      --leader-elect=false >"$dir/kube-scheduler.log" 2>&1 &
    echo $! >"$dir/kube-scheduler.pid"
  fi
  wait_ready "$dir/kube-scheduler.pid" 30 "kube-scheduler (log: $dir/kube-scheduler.log)" \
    curl -skf "https://127.0.0.1:$SCHEDULER_PORT/healthz" -o /dev/null

  if ! pid_alive "$dir/kwok.pid"; then
    log "starting kwok for the Nodes annotated kwok.x-k8s.io/node=fake"
    # KWOK_WORKDIR: not ~/.kwok, whose kwok.yaml kwok would load as well.
    KWOK_WORKDIR=$dir/kwok "$BIN/kwok" --kubeconfig "$dir/kubeconfig" --config "$KWOK_STAGES" \
      --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
      --node-lease-duration-seconds 40 --cidr 10.244.0.0/16 \
      >"$dir/kwok.log" 2>&1 &
    echo $! >"$dir/kwok.pid"
  fi

  fake_nodes "$count" | "${kubectl[@]}" apply --server-side --field-manager sukverse-nodes -f - >/dev/null ||
    die "creating $count Nodes failed"
  local deadline=$((SECONDS + 60))
  until "${kubectl[@]}" wait --for condition=Ready node -l type=kwok --timeout 5s >/dev/null 2>&1; do
    pid_alive "$dir/kwok.pid" || die "kwok exited (log: $dir/kwok.log)"
    ((SECONDS < deadline)) || die "Nodes not Ready within 60s (log: $dir/kwok.log)"
  done
  log "$count kwok Nodes Ready after ${SECONDS}s"
  echo "$dir/kubeconfig"
}

cmd_stop() {
  (($# == 1)) || usage "kube.sh stop DIR"
  stop_pid "$1/kwok.pid" kwok
  stop_pid "$1/kube-scheduler.pid" kube-scheduler
  stop_pid "$1/kube-controller-manager.pid" kube-controller-manager
  stop_pid "$1/kube-apiserver.pid" kube-apiserver
  stop_pid "$1/etcd.pid" etcd
}

case ${1:-} in
  install) cmd_install ;;
  start) shift && cmd_start "$@" ;;
  nodes) shift && cmd_nodes "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage "kube.sh install | start DIR | nodes DIR [COUNT] | stop DIR" ;;
esac
