#!/usr/bin/env bash
# Create or update .venv-<name> from ci/envs/<name>.txt (uv pip install arguments, one per line).
# Idempotent: nothing is reinstalled unless that file or a pyproject changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name=${1:?usage: scripts/make-env.sh <env name, see ci/envs/>}
spec=ci/envs/$name.txt
[[ -f $spec ]] || { echo "no $spec" >&2; exit 2; }
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
venv=.venv-$name
[[ -x $venv/bin/python ]] || uv venv -q -p 3.11 "$venv"
stamp=$venv/.prelabel-installed
post=ci/envs/$name.post.sh
digest=$(cat "$spec" core/pyproject.toml plugins/*/pyproject.toml ci/envs/*.constraints ci/envs/*.overrides ci/envs/*.post.sh 2>/dev/null | sha256sum | cut -c1-16)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$digest" ]]; then
    # Each line is split into words, so "-c ci/envs/x.constraints" is two arguments.
    read -ra args <<< "$(grep -vE '^\s*(#|$)' "$spec" | tr '\n' ' ')"
    echo "[make-env] $venv: uv pip install ${args[*]}" >&2
    start=$(date +%s)
    VIRTUAL_ENV=$venv uv pip install -q "${args[@]}"
    # What install arguments cannot express (a source build against the torch just installed)
    # goes in ci/envs/<name>.post.sh, run afterwards with VIRTUAL_ENV set.
    if [[ -f $post ]]; then VIRTUAL_ENV=$venv bash "$post"; fi
    echo "$digest" > "$stamp"
    echo "[make-env] $venv ready in $(( $(date +%s) - start )) s" >&2
fi
