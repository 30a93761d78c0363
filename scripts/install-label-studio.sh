#!/usr/bin/env bash
# Install a pinned, headless Label Studio into its own virtualenv (<repo>/.venv-ls).
#
# Label Studio is only needed for end-to-end tests and `make demo`; it pulls in
# ~1 GB of dependencies (Django, pandas, pyarrow, opencv, boto3, ...) that must not
# leak into the project's main environment, hence the separate venv.
#
# Idempotent: when <venv>/bin/label-studio exists and the pinned version is
# installed, it only reports the version and exits 0.
#
# Environment overrides:
#   PRELABEL_LS_VENV        venv path            (default: <repo>/.venv-ls)
#   PRELABEL_LS_VERSION     label-studio version (default: 1.23.2, verified on PyPI)
#   PRELABEL_LS_PYTHON      interpreter for the venv (default: python3)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PRELABEL_LS_VENV:-$REPO_ROOT/.venv-ls}"
LS_VERSION="${PRELABEL_LS_VERSION:-1.23.2}"
PYTHON="${PRELABEL_LS_PYTHON:-python3}"
LS_BIN="$VENV/bin/label-studio"

# Never let anything started from here write ~/.local/share/label-studio.
export LABEL_STUDIO_BASE_DATA_DIR="${LABEL_STUDIO_BASE_DATA_DIR:-$VENV/.ls-scratch}"

log() { printf '[install-label-studio] %s\n' "$*" >&2; }

installed_version() {
    # Read the installed distribution's metadata: running `label-studio --version`
    # would boot Django and create a data directory.
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))' 2>/dev/null || true
}

if [[ -x "$LS_BIN" ]]; then
    current="$(installed_version)"
    if [[ "$current" == "$LS_VERSION" ]]; then
        log "label-studio $current already installed in $VENV (nothing to do)"
        echo "$LS_BIN"
        exit 0
    fi
    log "found label-studio '${current:-unknown}' in $VENV, want $LS_VERSION: reinstalling the pin"
fi

start=$(date +%s)
if command -v uv >/dev/null 2>&1; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV with uv ($PYTHON)"
        uv venv --python "$PYTHON" "$VENV"
    fi
    log "installing label-studio==$LS_VERSION with uv"
    uv pip install --python "$VENV/bin/python" "label-studio==$LS_VERSION"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "uv not found; creating $VENV with $PYTHON -m venv"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing label-studio==$LS_VERSION with pip"
    "$VENV/bin/python" -m pip install --upgrade pip
    "$VENV/bin/python" -m pip install "label-studio==$LS_VERSION"
fi

# Keep the venv out of git even without a .gitignore entry (uv writes this itself,
# python3.11 -m venv does not).
[[ -f "$VENV/.gitignore" ]] || printf '*\n' > "$VENV/.gitignore"

current="$(installed_version)"
if [[ "$current" != "$LS_VERSION" || ! -x "$LS_BIN" ]]; then
    log "ERROR: expected label-studio $LS_VERSION at $LS_BIN, found '${current:-nothing}'"
    exit 1
fi
log "label-studio $current installed in $VENV in $(( $(date +%s) - start )) s"
echo "$LS_BIN"
