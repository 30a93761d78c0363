# shellcheck shell=bash disable=SC2034  # DOCKER is read by the scripts that source this
# Shared by ci/build-image.sh and ci/docker-smoke.sh (sourced, bash).

log() { printf '[%s] %s\n' "${LOG_TAG:-docker}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The docker client to build with, in $DOCKER (an array), and BuildKit switched on.
# The Dockerfiles need BuildKit (RUN --mount). A client with the buildx plugin builds with it;
# a 20.10 client (Debian's docker.io) has BuildKit built in behind DOCKER_BUILDKIT=1; a newer
# client without buildx has neither, so it is skipped for an older one on PATH.
pick_docker() {
    [[ -n ${DOCKER_BIN:-} ]] && { DOCKER=("$DOCKER_BIN"); export DOCKER_BUILDKIT=1; return; }
    local candidate major
    for candidate in $(type -ap docker) /usr/bin/docker; do
        [[ -x $candidate ]] || continue
        if "$candidate" buildx version >/dev/null 2>&1; then
            DOCKER=("$candidate"); export DOCKER_BUILDKIT=1; return
        fi
        major=$("$candidate" --version 2>/dev/null | sed -nE 's/^Docker version ([0-9]+)\..*/\1/p')
        if [[ -n $major && $major -lt 23 ]]; then
            DOCKER=("$candidate"); export DOCKER_BUILDKIT=1; return
        fi
    done
    die "no docker client that can build with BuildKit: install the buildx plugin (docker-buildx-plugin), or Debian's docker.io (20.10); or set DOCKER_BIN"
}

# The host's CA bundle (what pip on this machine trusts), if any: handed to builds as a secret.
host_ca_bundle() {
    local f
    for f in "${PRELABEL_CA_BUNDLE:-}" "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" \
             /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        [[ -n $f && -s $f ]] && { printf '%s\n' "$f"; return 0; }
    done
    return 1
}

# Bytes -> "1.23 GB".
human_size() { awk -v b="$1" 'BEGIN { printf "%.2f GB", b / 1e9 }'; }
