#!/usr/bin/env bash
# Throw-away PostgreSQL clusters on loopback, from Debian's postgresql package.
#   postgres.sh install          apt-get install postgresql-$POSTGRES_MAJOR if initdb is missing
#   postgres.sh start DIR PORT   initdb (once) and start a cluster in DIR on 127.0.0.1:PORT; prints the DSN
#   postgres.sh stop DIR
# PostgreSQL refuses to run as root: as root the cluster runs as the system user
# sukverse-pg, which then owns DIR and is granted (by an ACL) search permission
# on those parents of DIR it could not enter, such as pytest's /tmp/pytest-of-root.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

PG_USER=sukverse-pg

# pg_bindir: the directory holding initdb, pg_ctl and postgres (pinned major first).
pg_bindir() {
  local d
  for d in "/usr/lib/postgresql/$POSTGRES_MAJOR/bin" /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb ]] && echo "$d" && return
  done
  return 1
}

cmd_install() {
  local missing=()
  pg_bindir >/dev/null || missing+=("postgresql-$POSTGRES_MAJOR")
  [[ $(id -u) != 0 ]] || command -v setfacl >/dev/null || missing+=(acl)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  local bindir
  bindir=$(pg_bindir) || die "no initdb under /usr/lib/postgresql/*/bin after installing postgresql-$POSTGRES_MAJOR"
  log "PostgreSQL binaries: $bindir ($("$bindir/postgres" --version))"
}

# as_pg COMMAND...: run COMMAND as the cluster's user.
as_pg() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

# hand_to_pg_user DIR: create the cluster's user, let it reach DIR, give it DIR.
hand_to_pg_user() {
  local dir=$1 d='' part parts
  id "$PG_USER" >/dev/null 2>&1 || {
    log "creating system user $PG_USER (PostgreSQL does not run as root)"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  }
  IFS=/ read -ra parts <<<"${dir#/}"
  for part in "${parts[@]:0:${#parts[@]}-1}"; do
    d+=/$part
    runuser -u "$PG_USER" -- test -x "$d" && continue
    command -v setfacl >/dev/null || die "setfacl missing: run 'hack/postgres.sh install' first"
    log "granting $PG_USER search permission on $d"
    setfacl -m "u:$PG_USER:x" "$d"
  done
  chown -R "$PG_USER:" "$dir"
}

cmd_start() {
  [[ $# == 2 && $2 =~ ^[0-9]+$ ]] || usage "postgres.sh start DIR PORT"
  local dir port=$2 bindir
  mkdir -p "$1" && dir=$(cd "$1" && pwd)
  bindir=$(pg_bindir) || die "PostgreSQL is not installed: run 'hack/postgres.sh install' first"
  local dsn="postgresql://postgres@127.0.0.1:$port/postgres"

  [[ $(id -u) != 0 ]] || hand_to_pg_user "$dir"

  if as_pg "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
    log "already running"
    echo "$dsn"
    return
  fi
  want_port "$port"
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    log "initdb $dir/data"
    quietly "$dir/initdb.log" as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
      -E UTF8 --locale=C.UTF-8 --no-sync
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  log "starting PostgreSQL on 127.0.0.1:$port"
  as_pg "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" >/dev/null ||
    die "PostgreSQL did not start, see $dir/postgres.log"
  log "ready after ${SECONDS}s"
  echo "$dsn"
}

cmd_stop() {
  (($# == 1)) || usage "postgres.sh stop DIR"
  local dir bindir
  dir=$(cd "$1" && pwd) || die "no directory $1"
  bindir=$(pg_bindir) || die "PostgreSQL is not installed"
  if as_pg "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
    log "stopping PostgreSQL in $dir"
    as_pg "$bindir/pg_ctl" stop -w -m fast -D "$dir/data" >/dev/null
  else
    log "PostgreSQL is not running in $dir"
  fi
}

case ${1:-} in
  install) cmd_install ;;
  start) shift && cmd_start "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage "postgres.sh install | start DIR PORT | stop DIR" ;;
esac
