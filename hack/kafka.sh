#!/usr/bin/env bash
# A single-node KRaft Kafka broker on loopback, from Apache Kafka's jars on Maven Central.
#   kafka.sh install          resolve the broker's jars into $CACHE/kafka-$KAFKA_VERSION/libs
#   kafka.sh start DIR PORT   format (once) and start a broker in DIR on 127.0.0.1:PORT; prints the bootstrap address
#   kafka.sh stop DIR
# With KAFKA_SASL_PORT=PORT and KAFKA_SCRAM_USERS=name=password,... in the environment of
# `start`, the broker also listens with SASL_PLAINTEXT (SCRAM-SHA-512) on 127.0.0.1:PORT,
# the users' credentials are written when the storage is formatted, and ACLs are enforced
# (StandardAuthorizer, no ACL means no access) for all but the PLAINTEXT and controller
# listeners' User:ANONYMOUS, a super user.
# Topics are not auto-created. Kafka's tools are on the same class path, e.g.
#   java -cp "$CACHE/kafka-$KAFKA_VERSION/libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server ... --create ...
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

HOME_DIR=$CACHE/kafka-$KAFKA_VERSION
LIBS=$HOME_DIR/libs

cmd_install() {
  if installed kafka "$KAFKA_VERSION" && [[ -d $LIBS ]]; then
    log "Kafka $KAFKA_VERSION is installed in $LIBS"
    return
  fi
  need java "install a JDK 17+"
  need mvn "install Maven"
  mkdir -p "$HOME_DIR"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sukverse</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
  </plugin></plugins></build>
</project>
EOF
  cat >"$HOME_DIR/log4j2.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  quietly "$HOME_DIR/mvn.log" nice -n 19 mvn -B -f "$HOME_DIR/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS"
  mark_installed kafka "$KAFKA_VERSION"
  local jars=("$LIBS"/*.jar)
  log "installed ${#jars[@]} jars in $LIBS after ${SECONDS}s"
}

cmd_start() {
  [[ $# == 2 && $2 =~ ^[0-9]+$ ]] || usage "kafka.sh start DIR PORT"
  local dir port=$2 sasl_port=${KAFKA_SASL_PORT:-} users=${KAFKA_SCRAM_USERS:-}
  mkdir -p "$1" && dir=$(cd "$1" && pwd)
  [[ -d $LIBS ]] || die "Kafka is not installed: run 'hack/kafka.sh install' first"
  local scram=() user
  if [[ -n $sasl_port || -n $users ]]; then
    [[ $sasl_port =~ ^[0-9]+$ && -n $users ]] ||
      die "KAFKA_SASL_PORT (a port) and KAFKA_SCRAM_USERS (name=password,...) go together"
    local -a pairs
    IFS=, read -r -a pairs <<<"$users"
    for user in "${pairs[@]}"; do
      [[ $user =~ ^[A-Za-z0-9._-]+=[A-Za-z0-9._~+/-]+$ ]] ||
        die "KAFKA_SCRAM_USERS: '${user%%=*}' is not name=password (letters, digits and ._~+/- only)"
      scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
    done
  fi
  if pid_alive "$dir/kafka.pid"; then
    log "already running"
    echo "127.0.0.1:$port"
    return
  fi
  want_port "$port"
  [[ -z $sasl_port ]] || want_port "$sasl_port"
  local controller_port
  controller_port=$(free_port)
  local listeners="PLAINTEXT://127.0.0.1:$port" protocols=PLAINTEXT:PLAINTEXT
  if [[ -n $sasl_port ]]; then
    listeners+=",SASL_PLAINTEXT://127.0.0.1:$sasl_port"
    protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listeners,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
EOF
  if [[ -n $sasl_port ]]; then
    # SCRAM users on their own listener, held to their ACLs; the PLAINTEXT and CONTROLLER
    # listeners' clients (the broker itself, tests, tools) are User:ANONYMOUS, a super user.
    cat >>"$dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS
EOF
  fi
  local java=(java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" -cp "$LIBS/*")
  if [[ ! -f $dir/data/meta.properties ]]; then
    log "formatting storage in $dir/data${scram:+ with $((${#scram[@]} / 2)) SCRAM-SHA-512 users}"
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    quietly "$dir/format.log" "${java[@]}" kafka.tools.StorageTool format -c "$dir/server.properties" \
      --cluster-id="$cluster_id" "${scram[@]}"
  elif ((${#scram[@]})); then
    log "storage in $dir/data was formatted before: its SCRAM users are those of then"
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port${sasl_port:+, SASL_PLAINTEXT on $sasl_port} (controller on $controller_port)"
  "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
  trap 'stop_pid "$dir/kafka.pid" Kafka' EXIT
  kafka_ready() {
    port_open "$port" && { [[ -z $sasl_port ]] || port_open "$sasl_port"; } &&
      grep -q 'Kafka Server started' "$dir/kafka.log"
  }
  wait_ready "$dir/kafka.pid" 60 "Kafka (log: $dir/kafka.log)" kafka_ready
  trap - EXIT
  log "ready after ${SECONDS}s"
  echo "127.0.0.1:$port"
}

cmd_stop() {
  (($# == 1)) || usage "kafka.sh stop DIR"
  stop_pid "$1/kafka.pid" Kafka
}

case ${1:-} in
  install) cmd_install ;;
  start) shift && cmd_start "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage "kafka.sh install | start DIR PORT | stop DIR" ;;
esac
