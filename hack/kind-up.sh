#!/usr/bin/env bash
# The whole platform on a local kind cluster, for a developer with Docker, kind, kubectl and
# helm on PATH and the internet within reach (this is not a test tier: nothing here runs in CI).
#   kind-up.sh up      kind cluster (k8s/kind-cluster.yaml), the Strimzi and CloudNativePG
#                      operators from their own published charts, the image built and loaded,
#                      Sukverse installed with k8s/values-dev.yaml and values-kind.yaml, and a
#                      sample cohort applied; the APIs answer on 127.0.0.1:8000-8005
#   kind-up.sh down    deletes the kind cluster
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

ROOT=$(cd "$HACK_DIR/.." && pwd)
CLUSTER=sukverse
NAMESPACE=sukverse
IMAGE=sukverse:dev

# cnpg_chart_version: the cloudnative-pg chart whose appVersion is the pinned CNPG_VERSION.
cnpg_chart_version() {
  helm search repo cnpg/cloudnative-pg --versions -o json |
    python3 -c 'import json, sys
want = sys.argv[1].lstrip("v")
found = [c["version"] for c in json.load(sys.stdin) if c["app_version"].lstrip("v") == want]
print(found[0] if found else "")' "$CNPG_VERSION"
}

cmd_up() {
  local tool version
  for tool in docker kind kubectl helm; do need "$tool"; done
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info)"
  if kind get clusters | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists"
  else
    kind create cluster --config "$ROOT/k8s/kind-cluster.yaml"
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null

  log "Strimzi $STRIMZI_VERSION (its chart, watching every namespace)"
  helm upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
    --version "$STRIMZI_VERSION" --namespace strimzi --create-namespace \
    --set watchAnyNamespace=true --wait --timeout 10m

  helm repo add cnpg https://cloudnative-pg.github.io/charts --force-update >/dev/null
  version=$(cnpg_chart_version)
  [[ -n $version ]] || die "no cloudnative-pg chart has appVersion $CNPG_VERSION (helm search repo cnpg --versions)"
  log "CloudNativePG $CNPG_VERSION (chart $version)"
  helm upgrade --install cnpg cnpg/cloudnative-pg --version "$version" \
    --namespace cnpg-system --create-namespace --wait --timeout 10m

  log "building $IMAGE and loading it into the kind nodes"
  docker build -t "$IMAGE" "$ROOT"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  log "installing Sukverse into namespace $NAMESPACE (Kafka and PostgreSQL start first: minutes)"
  helm upgrade --install sukverse "$ROOT/charts/sukverse" --namespace "$NAMESPACE" --create-namespace \
    -f "$ROOT/k8s/values-dev.yaml" -f "$ROOT/k8s/values-kind.yaml" \
    --set global.image.tag=dev --set global.image.pullPolicy=Never --wait --timeout 20m
  kubectl apply --namespace "$NAMESPACE" -f "$ROOT/k8s/samples/small-cohort.yaml"
  log "ready: the APIs answer on 127.0.0.1:8000-8005; kubectl get cohorts -n $NAMESPACE"
}

cmd_down() {
  need kind
  kind delete cluster --name "$CLUSTER"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  *) usage "kind-up.sh up | down" ;;
esac
