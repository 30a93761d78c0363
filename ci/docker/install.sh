#!/bin/sh
# Runs inside a plugin's image build (see plugins/<name>/Dockerfile), from the build's copy of
# the repository at /build, into the virtualenv $VIRTUAL_ENV (/opt/prelabel).
#
#   install.sh deps <image>   third-party packages, pinned as ci/images.py says (the big layer;
#                             it depends only on pyproject.toml and constraint files)
#   install.sh app <image>    core and the plugin(s) from /build, without dependencies or network
#
# `deps` installs with uv, as scripts/make-env.sh makes the test environments: the same
# resolver, constraints and overrides (ci/envs/<env>.overrides, which pip cannot apply). uv
# lives in a throwaway virtualenv and is not in the image. Package sources: a wheelhouse
# bind-mounted at /wheelhouse (ci/build-image.sh --wheelhouse/--offline: no index at all), else
# PyPI (plus the variant's extra index). A CA bundle passed as the build secret ca_bundle (never
# stored in the image) is trusted for those downloads, for networks whose proxy re-signs TLS.
set -eu

step=${1:?usage: install.sh deps|app <image>}
image=${2:?usage: install.sh deps|app <image>}
variant=${VARIANT:-}
images="python3 /build/ci/images.py --root /build"

if [ "$step" = deps ]; then
    python3 -m venv "$VIRTUAL_ENV"
    if [ -s /run/secrets/ca_bundle ]; then
        export PIP_CERT=/run/secrets/ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle
    fi
    $images requirements "$image" --variant "$variant" > /tmp/requirements.txt
    $images constraints "$image" --variant "$variant" > /tmp/constraints.txt
    $images overrides "$image" > /tmp/overrides.txt
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then
        echo "[install] $image ($variant): from the wheelhouse, no index" >&2
        source_args="--no-index --find-links /wheelhouse"
        index_args=""
    else
        echo "[install] $image ($variant): from the package index" >&2
        source_args=""
        index_args="$($images index-args "$image" --variant "$variant" \
            --torch-cpu-index "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" \
            --paddle-gpu-index "${PADDLE_GPU_INDEX:-https://www.paddlepaddle.org.cn/packages/stable/cu126/}")"
        # an extra index (CPU torch, GPU paddle) carries some other packages too: pick the best
        # version across both, as pip does, rather than uv's first-index default
        if [ -n "$index_args" ]; then index_args="$index_args --index-strategy unsafe-best-match"; fi
    fi
    python3 -m venv /tmp/uv
    # shellcheck disable=SC2086  # *_args are lists of words
    /tmp/uv/bin/pip install -q $source_args "$($images uv)"
    uv="/tmp/uv/bin/uv pip install --python $VIRTUAL_ENV/bin/python --no-cache --compile-bytecode"
    override=""
    if [ -s /tmp/overrides.txt ]; then override="--override /tmp/overrides.txt"; fi
    # shellcheck disable=SC2086
    $uv $source_args $index_args -c /tmp/constraints.txt $override -r /tmp/requirements.txt
    if $images show "$image" | grep -q '"sam2": true'; then
        # sam2 is source only; built against the torch just installed (ci/envs/vision.post.sh).
        # Its requirements are already installed (ci/images.py SAM2_RUNTIME), hence --no-deps.
        # shellcheck disable=SC2086
        SAM2_BUILD_CUDA=0 $uv $source_args --no-build-isolation --no-deps -c /tmp/constraints.txt sam2
    fi
    headless=$(pip show opencv-python-headless 2>/dev/null | sed -n 's/^Version: //p')
    if [ -n "$headless" ] && pip show opencv-python >/dev/null 2>&1; then
        # ultralytics and rapidocr pull opencv-python, whose cv2 needs X11 libraries (libxcb, libGL)
        # that a slim image lacks; label-studio-sdk pulls opencv-python-headless. Both write cv2/:
        # the headless one is written last, so cv2 imports without a display stack.
        # shellcheck disable=SC2086
        $uv $source_args $index_args --no-deps --reinstall-package opencv-python-headless \
            "opencv-python-headless==$headless"
    fi
    rm -rf /tmp/uv /tmp/requirements.txt /tmp/constraints.txt /tmp/overrides.txt
elif [ "$step" = app ]; then
    set -- /build/core
    for plugin in $($images plugins "$image"); do
        set -- "$@" "/build/plugins/$plugin"
    done
    pip install --no-index --no-deps --no-build-isolation "$@"
    # Requirements replaced by an override (ci/envs/<env>.overrides) are reported as broken:
    # those, and only those, are accepted.
    names=$($images overrides "$image" | sed -E 's/^([A-Za-z0-9._-]+).*/\1/' | paste -sd '|' -)
    if ! report=$(pip check 2>&1); then
        rest=$(printf '%s\n' "$report" | { if [ -n "$names" ]; then grep -viE "has requirement ($names)[^A-Za-z0-9._-]"; else cat; fi; } || true)
        if [ -n "$rest" ]; then
            printf '%s\n' "$rest" >&2
            exit 1
        fi
        printf 'pip check: only overridden requirements differ:\n%s\n' "$report" >&2
    else
        echo "$report"
    fi
    install -m 0755 /build/ci/docker/healthcheck.py /usr/local/bin/prelabel-healthcheck
    prelabel plugins
    rm -rf /build
else
    echo "install.sh: unknown step $step" >&2
    exit 2
fi
