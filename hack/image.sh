#!/usr/bin/env bash
# The container image of every service and the operator (the repository's Dockerfile),
# built with buildah and run with podman, all storage under $SUKVERSE_CACHE/containers.
#
#   image.sh install        buildah, podman, debootstrap (Debian); the Debian base image made
#                           by debootstrap and the uv image the build stage copies uv from
#   image.sh build [TAG]    buildah bud of the Dockerfile; prints the image name
#   image.sh run IMAGE PORT [ARGS...]
#                           podman run, detached, as uid 10001 with a read-only root
#                           filesystem (tmpfs /tmp), no capabilities, the host's network and
#                           SUKVERSE_PORT=PORT; ARGS replace the CMD; prints the container id
#   image.sh rootfs IMAGE   the image's root filesystem, mounted (a buildah working container
#                           kept for the last image asked for); prints its directory
#   image.sh stop ID        stops and removes a container that `run` started
#   image.sh buildah|podman ARGS...   the tool on the cache's storage
#
# No registry is reachable here, so the base is Debian's own packages (debootstrap) and uv
# is the binary the Makefile installed from PyPI; real users keep the Dockerfile's defaults.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

STORAGE=$CACHE/containers
BASE_IMAGE=localhost/sukverse-base:$DEBIAN_BASE_SUITE-$DEBIAN_BASE_REVISION
UV_VERSION=$(sed -n 's/^UV_VERSION := //p' "$HACK_DIR/../Makefile")
UV_IMAGE=localhost/sukverse-uv:$UV_VERSION
IMAGE=localhost/sukverse

# As root, kernel overlayfs works on this machine's disk (no vfs needed). RUN steps use
# chroot isolation: no cgroup or network set-up, the host's network (PyPI) as it is.
# Containers run with runc, not crun: crun refuses this machine's hybrid cgroup layout
# ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"). Both
# runtimes fail to raise rlimits here ("setrlimit RLIMIT_NOFILE: Operation not permitted":
# no CAP_SYS_RESOURCE), so `run` asks for limits no higher than this shell's.
# TMPDIR holds buildah's RUN --mount=type=cache directories (uv's download cache).
storage_flags=(--root "$STORAGE/storage" --runroot "$STORAGE/run" --storage-driver overlay)
export TMPDIR=$STORAGE/tmp
mkdir -p "$TMPDIR"
bah() { buildah "${storage_flags[@]}" "$@"; }
pod() {
  podman "${storage_flags[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}
has_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

install_tools() {
  local tool missing=()
  for tool in buildah podman debootstrap runc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  mkdir -p "$STORAGE/storage" "$STORAGE/run"
}

# The base: Debian minbase with what the final stage needs, nothing to build with.
install_base() {
  if installed image-base "$BASE_IMAGE" && has_image "$BASE_IMAGE"; then
    return
  fi
  local root=$CACHE/src/debian-$DEBIAN_BASE_SUITE-$DEBIAN_BASE_REVISION container mnt
  rm -rf "$root"
  log "debootstrap $DEBIAN_BASE_SUITE (minbase + $DEBIAN_BASE_PACKAGES) into $root"
  quietly "$CACHE/logs/debootstrap.log" nice -n 19 debootstrap --variant=minbase \
    --include="$DEBIAN_BASE_PACKAGES" "$DEBIAN_BASE_SUITE" "$root" "$DEBIAN_MIRROR"
  # What an image never uses: package lists and archives, docs, man pages, translations.
  rm -rf "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/cache/apt/* "${root:?}"/var/log/* \
    "${root:?}"/usr/share/doc/* "${root:?}"/usr/share/man/* "${root:?}"/usr/share/info/* \
    "${root:?}"/usr/share/locale/* "${root:?}"/dev/* "${root:?}"/tmp/* "${root:?}"/run/*
  container=$(bah from scratch)
  mnt=$(bah mount "$container")
  tar -C "$root" -cf - . | tar -C "$mnt" -xpf -
  bah umount "$container" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash \
    --label org.opencontainers.image.title="Debian $DEBIAN_BASE_SUITE minbase + $DEBIAN_BASE_PACKAGES" \
    --label org.opencontainers.image.base.name="debootstrap:$DEBIAN_BASE_SUITE" "$container"
  bah commit --rm --quiet "$container" "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  mark_installed image-base "$BASE_IMAGE"
  log "base image $BASE_IMAGE"
}

# uv, laid out as its upstream image is (/uv, /uvx), from the binary installed from PyPI.
install_uv_image() {
  if installed image-uv "$UV_IMAGE" && has_image "$UV_IMAGE"; then
    return
  fi
  local venv=$CACHE/uv-$UV_VERSION container
  if [[ ! -x $venv/bin/uv ]]; then
    log "installing uv $UV_VERSION into $venv"
    quietly "$CACHE/logs/uv.log" python3 -m venv "$venv"
    quietly "$CACHE/logs/uv.log" "$venv/bin/pip" install --quiet "uv==$UV_VERSION"
  fi
  container=$(bah from scratch)
  bah copy --quiet "$container" "$venv/bin/uv" "$venv/bin/uvx" / >/dev/null
  bah commit --rm --quiet "$container" "$UV_IMAGE" >/dev/null
  mark_installed image-uv "$UV_IMAGE"
}

cmd_install() {
  install_tools
  install_base
  install_uv_image
}

cmd_build() {
  local tag=${1:-dev} repo
  repo=$(cd "$HACK_DIR/.." && pwd)
  if ! has_image "$BASE_IMAGE" || ! has_image "$UV_IMAGE"; then
    die "run '$0 install' first"
  fi
  local -a secret=()
  # The build stage reaches PyPI through whatever certificate authority this machine trusts.
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    secret=(--secret "id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt")
  fi
  log "buildah bud $IMAGE:$tag (output in $CACHE/logs/image-build.log)"
  BUILDAH_ISOLATION=chroot quietly "$CACHE/logs/image-build.log" nice -n 19 \
    buildah "${storage_flags[@]}" bud --layers --network host "${secret[@]}" \
    --build-arg BASE="$BASE_IMAGE" --build-arg UV_IMAGE="$UV_IMAGE" \
    --label org.opencontainers.image.revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" \
    -f "$repo/Dockerfile" -t "$IMAGE:$tag" "$repo"
  # buildah 1.28 leaves a working container behind for the stage that only names UV_IMAGE.
  local leftover
  for leftover in $(bah containers --filter ancestor="$UV_IMAGE" --format '{{.ContainerID}}'); do
    bah rm "$leftover" >/dev/null
  done
  echo "$IMAGE:$tag"
}

cmd_run() {
  (($# >= 2)) || usage "image.sh run IMAGE PORT [ARGS...]"
  local image=$1 port=$2
  shift 2
  local nofile
  nofile=$(ulimit -Sn)
  pod run --detach --read-only --user 10001:10001 --network host --cap-drop all \
    --security-opt no-new-privileges --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096 \
    --env SUKVERSE_PORT="$port" "$image" "$@"
}

cmd_rootfs() {
  (($# == 1)) || usage "image.sh rootfs IMAGE"
  local id name old
  id=$(bah inspect --type image --format '{{.FromImageID}}' "$1")
  name=sukverse-rootfs-${id:0:12}
  # One working container per image asked for, mounted (overlay: no copy); older ones go.
  for old in $(bah containers --filter name=sukverse-rootfs- --format '{{.ContainerName}}'); do
    [[ $old == "$name" ]] || bah rm "$old" >/dev/null
  done
  bah inspect --type container "$name" >/dev/null 2>&1 ||
    bah from --pull-never --name "$name" "$1" >/dev/null
  bah mount "$name"
}

case ${1:-} in
  install) cmd_install ;;
  build) shift && cmd_install && cmd_build "$@" ;;
  run) shift && cmd_run "$@" ;;
  rootfs) shift && cmd_rootfs "$@" ;;
  stop) (($# == 2)) || usage "image.sh stop ID"; pod rm --force --time 10 "$2" >/dev/null ;;
  buildah) shift && bah "$@" ;;
  podman) shift && pod "$@" ;;
  *) usage "image.sh install | build [TAG] | run IMAGE PORT [ARGS...] | rootfs IMAGE | stop ID | buildah|podman ARGS..." ;;
esac
