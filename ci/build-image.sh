#!/usr/bin/env bash
# Build one plugin's image from the repository root: plugins/<plugin>/Dockerfile.
#
#   ci/build-image.sh <plugin> [--variant cpu|gpu] [--base-image IMG] [--tag IMAGE:TAG]
#                              [--wheelhouse DIR | --offline] [--no-ca] [--quiet]
#
#   --variant       torch plugins: gpu (default: PyPI's CUDA torch) or cpu (CPU-only torch);
#                   uie_x: cpu (default) or gpu. `python3 ci/images.py show <plugin>` lists them.
#   --base-image    the FROM image (default python:3.11-slim; CI: local/py311:bookworm)
#   --tag           default ${PRELABEL_REGISTRY:-prelabel}/<repo>:${PRELABEL_TAG:-latest} (the name
#                   compose/<plugin>.yml runs; <repo> is the plugin with dashes: text-classifier),
#                   also tagged :<plugin version> (what deploy/k8s runs)
#   --wheelhouse    install from the wheels in DIR only (no index inside the build): an offline,
#                   air-gapped build. DIR must hold every requirement (make it with --offline once).
#   --offline       make the wheelhouse first (uv pip compile + pip wheel in a container of the
#                   base image, whose Python decides the markers), into
#                   ${PRELABEL_WHEELHOUSE_CACHE:-~/.cache/prelabel/wheelhouse} on this machine, cached by
#                   content, then build from it. Copy that directory to build somewhere offline.
#   --no-ca         do not pass the host CA bundle. By default the bundle pip trusts here is handed
#                   to the build as the secret ca_bundle (for a TLS-intercepting proxy); it is
#                   used for downloads only and never stored in the image.
#
# Needs a Docker engine (DOCKER_HOST) and a client that builds with BuildKit (see ci/docker/lib.sh).
# Builds use the host network (--network host): nothing needs a bridge.
# Prints the build time and the image size; `--quiet` hides the build log unless it fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOG_TAG="build-image"
source ci/docker/lib.sh

plugin=${1:-}
[[ -n $plugin && $plugin != -* ]] || die "usage: ci/build-image.sh <plugin> [options]; plugins: $(python3 ci/images.py list | tr '\n' ' ')"
shift
python3 ci/images.py show "$plugin" >/dev/null 2>&1 || die "no image for '$plugin'; plugins: $(python3 ci/images.py list | tr '\n' ' ')"
variant=""
base_image="python:3.11-slim"
repo="${PRELABEL_REGISTRY:-prelabel}/$(python3 ci/images.py repo "$plugin")"
tag="$repo:${PRELABEL_TAG:-latest}"
wheelhouse=""
offline=0
use_ca=1
quiet=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --variant) variant=${2:?}; shift 2 ;;
        --base-image) base_image=${2:?}; shift 2 ;;
        --tag) tag=${2:?}; shift 2 ;;
        --wheelhouse) wheelhouse=${2:?}; shift 2 ;;
        --offline) offline=1; shift ;;
        --no-ca) use_ca=0; shift ;;
        --quiet) quiet=1; shift ;;
        *) die "unknown option $1" ;;
    esac
done
[[ -n $variant ]] || variant=$(python3 ci/images.py default-variant "$plugin")
python3 ci/images.py requirements "$plugin" --variant "$variant" >/dev/null || exit 2

ca=""
if [[ $use_ca == 1 ]]; then ca=$(host_ca_bundle || true); fi

# -- the wheelhouse (--offline): made in a container of the base image ----------------------
# uv resolves there (with the image's Python, so markers such as python_full_version < "3.11.3"
# come out as they will in the build, and with the environment's overrides, which pip cannot
# apply), then pip fetches exactly that set (sdists built into wheels), plus uv itself and the
# sam2 sdist. The files land on this machine, cached by what they were made from.
make_wheelhouse() {
    local cache=${PRELABEL_WHEELHOUSE_CACHE:-$HOME/.cache/prelabel/wheelhouse}
    local work pyver digest dir
    work=$(mktemp -d)
    python3 ci/images.py requirements "$plugin" --variant "$variant" > "$work/requirements.txt"
    python3 ci/images.py constraints "$plugin" --variant "$variant" > "$work/constraints.txt"
    python3 ci/images.py overrides "$plugin" > "$work/overrides.txt"
    python3 ci/images.py index-args "$plugin" --variant "$variant" > "$work/index-args"
    python3 ci/images.py uv > "$work/uv"
    pyver=$("${DOCKER[@]}" run --rm --network none --entrypoint python3 "$base_image" -c \
            'import platform; print(platform.python_version())') || die "cannot run python3 in $base_image"
    digest=$(cat "$work"/* <(echo "$pyver ${PRELABEL_PIP_ARGS:-}") | sha256sum | cut -c1-16)
    dir=$cache/$plugin-$variant-py$pyver-$digest
    if [[ -f $dir/.complete ]]; then
        log "wheelhouse $dir (cached)"
    else
        log "making wheelhouse $dir in $base_image (torch images: about 3 GB)"
        local start=$SECONDS
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
        local run=("${DOCKER[@]}" run --rm --network host --user "$(id -u):$(id -g)" -e HOME=/tmp
                   -v "$work:/spec:ro" -v "$dir.tmp:/wheelhouse")
        [[ -n $ca ]] && run+=(-v "$ca:/run/secrets/ca_bundle:ro" -e PIP_CERT=/run/secrets/ca_bundle
                               -e SSL_CERT_FILE=/run/secrets/ca_bundle)
        # PRELABEL_PIP_ARGS: extra pip/uv words, e.g. a mirror's --index-url
        "${run[@]}" --entrypoint sh "$base_image" -c '
            set -e
            extra="'"${PRELABEL_PIP_ARGS:-}"'"
            index=$(cat /spec/index-args)
            opts="--disable-pip-version-check --progress-bar off -q"
            python3 -m venv /tmp/uv && /tmp/uv/bin/pip install -q $extra "$(cat /spec/uv)"
            strategy=""; [ -z "$index" ] || strategy="--index-strategy unsafe-best-match"
            override=""; [ ! -s /spec/overrides.txt ] || override="--override /spec/overrides.txt"
            /tmp/uv/bin/uv pip compile -q --no-cache --python python3 --no-header --no-annotate $extra $index $strategy \
                -c /spec/constraints.txt $override /spec/requirements.txt -o /tmp/pinned.txt
            python3 -m pip wheel $opts $extra $index --no-deps --wheel-dir /wheelhouse -r /tmp/pinned.txt
            python3 -m pip download $opts $extra --no-deps -d /wheelhouse "$(cat /spec/uv)"
            if grep -q "^sam2==" /spec/constraints.txt; then
                # source only: the image build compiles it against its torch (ci/docker/install.sh)
                python3 -m pip download $opts $extra --no-deps --no-binary sam2 -d /wheelhouse -c /spec/constraints.txt sam2
            fi' || die "making the wheelhouse failed"
        touch "$dir.tmp/.complete"
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
        log "wheelhouse ready in $((SECONDS - start)) s: $(du -sh "$dir" | cut -f1)"
        # keep one wheelhouse per plugin and variant: the older ones are what it was made from before
        find "$cache" -mindepth 1 -maxdepth 1 -name "$plugin-$variant-py*" ! -name "${dir##*/}" -exec rm -rf {} +
    fi
    rm -rf "$work"
    wheelhouse=$dir
}

pick_docker
"${DOCKER[@]}" version >/dev/null 2>&1 || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}"
if [[ $offline == 1 && -z $wheelhouse ]]; then make_wheelhouse; fi

# -- stage the wheelhouse into the build context (ci/wheelhouse), one build at a time ----------
stage=ci/wheelhouse
exec 9>"$stage/.lock"
flock 9
clear_stage() { find "$stage" -mindepth 1 -maxdepth 1 ! -name README.md ! -name .lock -exec rm -rf {} +; }
trap clear_stage EXIT
clear_stage
if [[ -n $wheelhouse ]]; then
    [[ -d $wheelhouse ]] || die "--wheelhouse $wheelhouse: no such directory"
    ls "$wheelhouse"/*.whl >/dev/null 2>&1 || die "--wheelhouse $wheelhouse holds no wheels"
    # hard links when on one file system (instant), else a copy
    cp -al "$wheelhouse"/. "$stage"/ 2>/dev/null || cp -a "$wheelhouse"/. "$stage"/
fi

build=("${DOCKER[@]}" build --network host -f "plugins/$plugin/Dockerfile" -t "$tag"
       -t "$repo:$(python3 ci/images.py version "$plugin")"
       --build-arg "BASE_IMAGE=$base_image" --build-arg "VARIANT=$variant")
[[ -n $ca ]] && build+=(--secret "id=ca_bundle,src=$ca")
for arg in TORCH_CPU_INDEX PADDLE_GPU_INDEX; do
    [[ -n ${!arg:-} ]] && build+=(--build-arg "$arg=${!arg}")
done
build+=(.)

log "building $tag (variant $variant, base $base_image, $( [[ -n $wheelhouse ]] && echo "wheelhouse $wheelhouse" || echo "package index"))"
start=$SECONDS
if [[ $quiet == 1 ]]; then
    out=$(mktemp)
    if ! BUILDKIT_PROGRESS=plain "${build[@]}" >"$out" 2>&1; then
        tail -n 60 "$out" >&2
        rm -f "$out"
        die "build of $tag failed"
    fi
    rm -f "$out"
else
    BUILDKIT_PROGRESS=plain "${build[@]}"
fi
size=$("${DOCKER[@]}" image inspect -f '{{.Size}}' "$tag")
log "built $tag in $((SECONDS - start)) s, image size $(human_size "$size")"
