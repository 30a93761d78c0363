#!/usr/bin/env bash
# Create (or update) the development environment: .venv with core and the light plugins,
# Label Studio in .venv-ls (for end-to-end tests and the demo), and redis-server.
# Idempotent: a second run only checks what is there. Usage: scripts/bootstrap.sh [--no-ls] [--no-redis]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WITH_LS=1
WITH_REDIS=1
for arg in "$@"; do
    case "$arg" in
        --no-ls) WITH_LS=0 ;;
        --no-redis) WITH_REDIS=0 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
    log "installing uv (fast, reproducible installs)"
    python3 -m pip install -q uv
fi

# The light packages share one environment; heavy model plugins (torch, paddle) get their own
# (they name it in plugins/<name>/ENV). Every plugin without an ENV file is light, a plugin just
# made by `prelabel new` included; openai_compatible is light too (only its llama.cpp tests
# need .venv-llamacpp).
LIGHT_PLUGINS="openai_compatible"
for dir in plugins/*/; do
    [[ -f "${dir}ENV" ]] || LIGHT_PLUGINS+=" $(basename "$dir")"
done
# compat: prelabel's label_studio_ml package (compat/), for upstream models and their tests
args=(-e "core[llm,redis,testing,compat]" -e compat)
for p in $LIGHT_PLUGINS; do
    [[ -f "plugins/$p/pyproject.toml" ]] && args+=(-e "plugins/$p")
done

[[ -x .venv/bin/python ]] || uv venv -q -p 3.11 .venv
stamp=.venv/.prelabel-installed
# this script is part of the digest: a package added to the install line below is installed
sources=$(cat core/pyproject.toml compat/pyproject.toml plugins/*/pyproject.toml scripts/bootstrap.sh 2>/dev/null \
    | sha256sum | cut -c1-16)
if [[ ! -f $stamp || "$(cat $stamp)" != "$sources" ]]; then
    log "installing ${args[*]}"
    VIRTUAL_ENV=.venv uv pip install -q "${args[@]}" ruff pytest pytest-timeout schemathesis kubernetes-validate playwright==1.65.2
    echo "$sources" > $stamp
fi

if [[ $WITH_REDIS == 1 ]] && ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (apt)"
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        log "not root: install redis-server yourself (sudo apt-get install redis-server)"
    fi
fi

# wrk drives bench/server_overhead.py (make bench)
if ! command -v wrk >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    log "installing wrk (apt) for the server benchmark"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || log "wrk not installed"
fi

# The browser tests drive Debian's chromium with Playwright (never `playwright install`, which
# downloads a browser build); fonts-wqy-microhei renders the Chinese text the OCR tests read.
if [[ $(id -u) == 0 ]] && { ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi microhei; }; then
    log "installing chromium and fonts-wqy-microhei (apt) for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null \
        || log "chromium not installed: the browser tests will skip"
elif ! command -v chromium >/dev/null 2>&1; then
    log "not root: install chromium yourself (sudo apt-get install chromium fonts-wqy-microhei); browser tests skip"
fi

# docker-compose validates the compose files in tests/deploy (no engine needed for that)
if ! command -v docker-compose >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    log "installing docker-compose (apt) to validate compose files"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null || log "docker-compose not installed"
fi

if [[ $WITH_LS == 1 ]]; then
    scripts/install-label-studio.sh >/dev/null
fi
log "ready: .venv$( [[ $WITH_LS == 1 ]] && echo ', .venv-ls' )"
