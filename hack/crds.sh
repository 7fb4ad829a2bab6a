#!/usr/bin/env bash
# The third-party CustomResourceDefinitions the Sukverse charts use, at pinned versions,
# as their projects publish or generate them; never written by hand.
#   crds.sh install             fetch or generate them into $CACHE/crds/<name>-<version>/, one file per CRD
#   crds.sh apply KUBECONFIG    server-side apply them all and wait until each is Established
#   crds.sh path [NAME]         print their directories (NAME: cloudnative-pg, strimzi or prometheus-operator)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

BIN=$CACHE/bin
export PATH=$PATH:/usr/local/go/bin CGO_ENABLED=0 GOFLAGS=-mod=mod

NAMES=(cloudnative-pg strimzi prometheus-operator)
declare -A VERSION=(
  [cloudnative-pg]=$CNPG_VERSION
  [strimzi]=$STRIMZI_VERSION
  [prometheus-operator]=$PROMETHEUS_OPERATOR_VERSION
)
crd_dir() { echo "$CACHE/crds/$1-${VERSION[$1]}"; }

# go_mod_dir MODULE@VERSION: the module's directory in Go's module cache (downloaded once).
go_mod_dir() {
  go mod download -json "$1" | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j.get("Dir") or sys.exit(j.get("Error")))' ||
    die "cannot download $1 from the Go module proxy"
}

# check_crds DIR GROUPS KIND...: every file in DIR holds exactly one CustomResourceDefinition with
# a served version, of one of GROUPS (comma-separated), and each KIND has one; dies otherwise.
check_crds() {
  python3 - "$@" <<'EOF' || die "unexpected CustomResourceDefinitions in $1 (see above)"
import pathlib, sys
import yaml

directory, groups, kinds = pathlib.Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:]
found, errors = {}, []
files = sorted(directory.glob("*.yaml"))
for path in files:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    if len(docs) != 1:
        errors.append(f"{path.name}: {len(docs)} documents, expected one")
        continue
    doc = docs[0]
    spec = doc.get("spec") or {}
    if doc.get("apiVersion") != "apiextensions.k8s.io/v1" or doc.get("kind") != "CustomResourceDefinition":
        errors.append(f"{path.name}: {doc.get('apiVersion')} {doc.get('kind')}, not a CustomResourceDefinition")
    elif spec.get("group") not in groups:
        errors.append(f"{path.name}: group {spec.get('group')}, expected {' or '.join(groups)}")
    elif not any(v.get("served") for v in spec.get("versions", [])):
        errors.append(f"{path.name}: no served version")
    else:
        found[spec["names"]["kind"]] = path.name
missing = [k for k in kinds if k not in found]
if missing:
    errors.append(f"kinds missing: {' '.join(missing)} (found: {' '.join(sorted(found)) or 'none'})")
for error in errors:
    print(f"[crds] {directory}: {error}", file=sys.stderr)
sys.exit(1 if errors or not files else 0)
EOF
}

# publish NAME TMPDIR: move a checked TMPDIR into place as NAME's directory and stamp it.
publish() {
  local dir
  dir=$(crd_dir "$1")
  rm -rf "$dir" && mv "$2" "$dir"
  mark_installed "crds-$1" "${VERSION[$1]}"
  local files=("$dir"/*.yaml)
  log "${#files[@]} $1 ${VERSION[$1]} CRDs in $dir"
}

# up_to_date NAME: true when NAME's CRDs are installed at the pinned version.
up_to_date() { installed "crds-$1" "${VERSION[$1]}" && [[ -d $(crd_dir "$1") ]]; }

# CloudNativePG commits its controller-gen output to config/crd/bases; only those files are
# taken (not its release manifest with the operator, webhooks and RBAC).
install_cloudnative_pg() {
  up_to_date cloudnative-pg && return
  local src tmp
  src=$(go_mod_dir "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION")
  tmp=$(crd_dir cloudnative-pg).tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  cp "$src"/config/crd/bases/postgresql.cnpg.io_*.yaml "$tmp/"
  chmod u+w "$tmp"/*.yaml
  check_crds "$tmp" postgresql.cnpg.io Cluster Backup ScheduledBackup Pooler Database
  publish cloudnative-pg "$tmp"
}

# java_21: a java of release 21 or later (Strimzi's crd-generator needs it): $JAVA21_HOME, else
# the newest JDK under /usr/lib/jvm or /opt.
java_21() {
  local java major best='' best_major=0
  for java in ${JAVA21_HOME:+"$JAVA21_HOME/bin/java"} /usr/lib/jvm/*/bin/java /opt/*/bin/java; do
    [[ -x $java ]] || continue
    major=$("$java" -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')
    ((${major:-0} >= 21 && ${major:-0} > best_major)) || continue
    best=$java best_major=$major
    [[ -n ${JAVA21_HOME:-} ]] && break
  done
  [[ -n $best ]] || die "Strimzi's crd-generator needs Java 21+: set JAVA21_HOME or install a JDK under /usr/lib/jvm"
  echo "$best"
}

# Strimzi's own build (api/pom.xml) runs io.strimzi.crdgenerator.CrdGenerator over the
# io.strimzi:api classes; the same arguments here: kafka.strimzi.io/v1 served and stored,
# its labels, one file per CRD named as in Strimzi's install/cluster-operator.
STRIMZI_CRDS=(
  kafka.Kafka=040-Crd-kafka.yaml
  connect.KafkaConnect=041-Crd-kafkaconnect.yaml
  podset.StrimziPodSet=042-Crd-strimzipodset.yaml
  topic.KafkaTopic=043-Crd-kafkatopic.yaml
  user.KafkaUser=044-Crd-kafkauser.yaml
  nodepool.KafkaNodePool=045-Crd-kafkanodepool.yaml
  bridge.KafkaBridge=046-Crd-kafkabridge.yaml
  connector.KafkaConnector=047-Crd-kafkaconnector.yaml
  mirrormaker2.KafkaMirrorMaker2=048-Crd-kafkamirrormaker2.yaml
  rebalance.KafkaRebalance=049-Crd-kafkarebalance.yaml
)
install_strimzi() {
  up_to_date strimzi && return
  need mvn "install Maven"
  local java src=$CACHE/src/strimzi-crd-generator-$STRIMZI_VERSION tmp c args=()
  java=$(java_21)
  mkdir -p "$src"
  cat >"$src/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sukverse</groupId>
  <artifactId>strimzi-crd-generator</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$STRIMZI_VERSION</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$STRIMZI_VERSION</version></dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
  </plugin></plugins></build>
</project>
EOF
  log "resolving io.strimzi:api and crd-generator $STRIMZI_VERSION from Maven Central"
  rm -rf "$src/libs"
  quietly "$src/mvn.log" nice -n 19 mvn -B -f "$src/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$src/libs"
  tmp=$(crd_dir strimzi).tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  for c in "${STRIMZI_CRDS[@]}"; do args+=("io.strimzi.api.kafka.model.${c%%=*}=$tmp/${c#*=}"); done
  log "generating Strimzi $STRIMZI_VERSION CRDs with $java"
  quietly "$src/crd-generator.log" nice -n 19 "$java" -cp "$src/libs/*" io.strimzi.crdgenerator.CrdGenerator \
    --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
    --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml "${args[@]}"
  ((${#STRIMZI_CRDS[@]} == $(find "$tmp" -name '*.yaml' | wc -l))) || die "crd-generator did not write every CRD (log: $src/crd-generator.log)"
  check_crds "$tmp" kafka.strimzi.io,core.strimzi.io Kafka KafkaNodePool KafkaTopic KafkaUser KafkaConnect \
    KafkaConnector KafkaBridge KafkaMirrorMaker2 KafkaRebalance StrimziPodSet
  publish strimzi "$tmp"
}

# controller-gen, built from its Go module (once per pinned version).
install_controller_gen() {
  installed controller-gen "$CONTROLLER_TOOLS_VERSION" && [[ -x $BIN/controller-gen ]] && return
  local src=$CACHE/src/controller-tools-$CONTROLLER_TOOLS_VERSION
  mkdir -p "$src" "$BIN"
  [[ -f $src/go.mod ]] ||
    printf 'module sukverse.local/build/controller-tools\ngo 1.26\nrequire sigs.k8s.io/controller-tools %s\n' \
      "$CONTROLLER_TOOLS_VERSION" >"$src/go.mod"
  log "go build sigs.k8s.io/controller-tools/cmd/controller-gen $CONTROLLER_TOOLS_VERSION (in $src)"
  (cd "$src" && nice -n 19 go build -trimpath -ldflags "-s -w" -o "$BIN/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen) ||
    die "go build controller-gen failed"
  mark_installed controller-gen "$CONTROLLER_TOOLS_VERSION"
}

# The prometheus-operator Makefile's generate-crds: controller-gen crd:crdVersions=v1 over the
# monitoring API's v1 package, then append-operator-version.sh's version annotation.
install_prometheus_operator() {
  up_to_date prometheus-operator && return
  need go "Go is expected at /usr/local/go/bin"
  install_controller_gen
  local mod src=$CACHE/src/prometheus-operator-monitoring-$PROMETHEUS_OPERATOR_VERSION tmp
  mod=$(go_mod_dir "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@$PROMETHEUS_OPERATOR_VERSION")
  if [[ ! -f $src/go.mod ]]; then
    # A writable copy: the module cache is read-only and controller-gen loads the packages with go list.
    rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$mod" "$src" && chmod -R u+w "$src"
  fi
  tmp=$(crd_dir prometheus-operator).tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  log "generating monitoring.coreos.com/v1 CRDs with controller-gen $CONTROLLER_TOOLS_VERSION"
  (cd "$src" && quietly "$src/controller-gen.log" nice -n 19 "$BIN/controller-gen" crd:crdVersions=v1 paths=./v1/. "output:crd:dir=$tmp")
  sed -i "/^    controller-gen.kubebuilder.io.version.*/a\\    operator.prometheus.io/version: ${PROMETHEUS_OPERATOR_VERSION#v}" "$tmp"/*.yaml
  check_crds "$tmp" monitoring.coreos.com ServiceMonitor PrometheusRule PodMonitor Probe Prometheus Alertmanager ThanosRuler
  publish prometheus-operator "$tmp"
}

cmd_install() {
  (($# == 0)) || usage "crds.sh install"
  need python3
  python3 -c 'import yaml' 2>/dev/null || die "python3 needs PyYAML to check the CRDs"
  install_cloudnative_pg
  install_strimzi
  install_prometheus_operator
  log "installed after ${SECONDS}s: cloudnative-pg $CNPG_VERSION, strimzi $STRIMZI_VERSION, prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
}

cmd_path() {
  local name
  if (($# == 1)); then
    [[ -n ${VERSION[$1]:-} ]] || usage "crds.sh path [${NAMES[*]}]"
    crd_dir "$1"
    return
  fi
  (($# == 0)) || usage "crds.sh path [NAME]"
  for name in "${NAMES[@]}"; do crd_dir "$name"; done
}

cmd_apply() {
  (($# == 1)) || usage "crds.sh apply KUBECONFIG"
  local kubeconfig=$1 name dir applied=() crds
  [[ -f $kubeconfig ]] || die "no kubeconfig at $kubeconfig"
  [[ -x $BIN/kubectl ]] || die "kubectl missing in $BIN: run 'hack/kube.sh install' first"
  for name in "${NAMES[@]}"; do
    dir=$(crd_dir "$name")
    up_to_date "$name" || die "$name ${VERSION[$name]} CRDs missing: run 'hack/crds.sh install' first"
    # Server-side: several are larger than the 256 kB last-applied annotation client-side apply writes.
    crds=$("$BIN/kubectl" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts \
      --field-manager sukverse-crds -o name -f "$dir") || die "applying $dir failed"
    mapfile -t -O "${#applied[@]}" applied <<<"$crds"
  done
  "$BIN/kubectl" --kubeconfig "$kubeconfig" wait --for condition=Established --timeout 60s "${applied[@]}" >/dev/null ||
    die "CRDs not Established within 60s"
  log "${#applied[@]} CRDs applied and Established after ${SECONDS}s"
  echo "${#applied[@]} CRDs Established: cloudnative-pg $CNPG_VERSION, strimzi $STRIMZI_VERSION, prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
}

case ${1:-} in
  install) shift && cmd_install "$@" ;;
  apply) shift && cmd_apply "$@" ;;
  path) shift && cmd_path "$@" ;;
  *) usage "crds.sh install | apply KUBECONFIG | path [NAME]" ;;
esac
