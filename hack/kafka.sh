#!/usr/bin/env bash
# A single-node KRaft Kafka broker on loopback, from Apache Kafka's jars on Maven Central.
#   kafka.sh install          resolve the broker's jars into $CACHE/kafka-$KAFKA_VERSION/libs
#   kafka.sh start DIR PORT   format (once) and start a broker in DIR on 127.0.0.1:PORT; prints the bootstrap address
#   kafka.sh stop DIR
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
  local dir port=$2
  mkdir -p "$1" && dir=$(cd "$1" && pwd)
  [[ -d $LIBS ]] || die "Kafka is not installed: run 'hack/kafka.sh install' first"
  if pid_alive "$dir/kafka.pid"; then
    log "already running"
    echo "127.0.0.1:$port"
    return
  fi
  want_port "$port"
  local controller_port
  controller_port=$(free_port)
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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
  local java=(java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" -cp "$LIBS/*")
  if [[ ! -f $dir/data/meta.properties ]]; then
    log "formatting storage in $dir/data"
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    quietly "$dir/format.log" "${java[@]}" kafka.tools.StorageTool format -c "$dir/server.properties" --cluster-id="$cluster_id"
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port (controller on $controller_port)"
  "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
  trap 'stop_pid "$dir/kafka.pid" Kafka' EXIT
  kafka_ready() { port_open "$port" && grep -q 'Kafka Server started' "$dir/kafka.log"; }
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
