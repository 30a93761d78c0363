#!/bin/sh
# Runs inside a plugin's image build (see plugins/<name>/Dockerfile), from the build's copy of
# the repository at /build, into the virtualenv $VIRTUAL_ENV (/opt/prelabel).
#
#   install.sh deps <image>   third-party packages, pinned as ci/images.py says (the big layer;
#                             it depends only on pyproject.toml and constraint files)
#   install.sh app <image>    core and the plugin(s) from /build, without dependencies or network
#
# Package sources for `deps`: a wheelhouse bind-mounted at /wheelhouse (ci/build-image.sh
# --wheelhouse: an offline build, no index at all), else PyPI (plus the variant's extra index).
# A CA bundle passed as the build secret ca_bundle (never stored in the image) is trusted for
# those downloads, for networks whose proxy re-signs TLS.
set -eu

step=${1:?usage: install.sh deps|app <image>}
image=${2:?usage: install.sh deps|app <image>}
variant=${VARIANT:-}
images="python3 /build/ci/images.py --root /build"

if [ "$step" = deps ]; then
    python3 -m venv "$VIRTUAL_ENV"
    if [ -s /run/secrets/ca_bundle ]; then
        export PIP_CERT=/run/secrets/ca_bundle
    fi
    $images requirements "$image" --variant "$variant" > /tmp/requirements.txt
    $images constraints "$image" --variant "$variant" > /tmp/constraints.txt
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then
        echo "[install] $image ($variant): from the wheelhouse, no index" >&2
        source_args="--no-index --find-links /wheelhouse"
    else
        echo "[install] $image ($variant): from the package index" >&2
        source_args="$($images index-args "$image" --variant "$variant" \
            --torch-cpu-index "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" \
            --paddle-gpu-index "${PADDLE_GPU_INDEX:-https://www.paddlepaddle.org.cn/packages/stable/cu126/}")"
    fi
    # shellcheck disable=SC2086  # source_args is a list of words
    pip install $source_args -c /tmp/constraints.txt -r /tmp/requirements.txt
    if $images show "$image" | grep -q '"sam2": true'; then
        # sam2 is source only; built against the torch just installed (ci/envs/vision.post.sh).
        # Its requirements are already installed (ci/images.py SAM2_RUNTIME), hence --no-deps.
        # shellcheck disable=SC2086
        SAM2_BUILD_CUDA=0 pip install $source_args --no-build-isolation --no-deps -c /tmp/constraints.txt sam2
    fi
    headless=$(pip show opencv-python-headless 2>/dev/null | sed -n 's/^Version: //p')
    if [ -n "$headless" ] && pip show opencv-python >/dev/null 2>&1; then
        # ultralytics and rapidocr pull opencv-python, whose cv2 needs X11 libraries (libxcb, libGL)
        # that a slim image lacks; label-studio-sdk pulls opencv-python-headless. Both write cv2/:
        # the headless one is written last, so cv2 imports without a display stack.
        # shellcheck disable=SC2086
        pip install $source_args --force-reinstall --no-deps "opencv-python-headless==$headless"
    fi
    rm -f /tmp/requirements.txt /tmp/constraints.txt
elif [ "$step" = app ]; then
    set -- /build/core
    for plugin in $($images plugins "$image"); do
        set -- "$@" "/build/plugins/$plugin"
    done
    pip install --no-index --no-deps --no-build-isolation "$@"
    pip check
    install -m 0755 /build/ci/docker/healthcheck.py /usr/local/bin/prelabel-healthcheck
    prelabel plugins
    rm -rf /build
else
    echo "install.sh: unknown step $step" >&2
    exit 2
fi
