#!/usr/bin/env bash
# Test one package in its own environment, as `make test` does for all of them:
#
#   ci/test-package.sh core              core/tests and the repository's tests/ in .venv
#   ci/test-package.sh <plugin>          plugins/<plugin>/tests in the plugin's environment:
#                                        .venv-<env> when plugins/<plugin>/ENV names one
#                                        (scripts/make-env.sh), else .venv
#
# The GitHub Actions matrix (.github/workflows/ci.yml) runs this once per changed package
# (ci/changed-packages.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
package=${1:?usage: ci/test-package.sh core|<plugin> [pytest args]}
shift
pytest_args=(-m pytest -p no:cacheprovider -q)

if [[ $package == core ]]; then
    scripts/bootstrap.sh
    exec .venv/bin/python "${pytest_args[@]}" core/tests tests "$@"
fi
[[ -f plugins/$package/pyproject.toml ]] || { echo "no package plugins/$package" >&2; exit 2; }
if [[ -f plugins/$package/ENV ]]; then
    env=$(cat "plugins/$package/ENV")
    scripts/bootstrap.sh --no-ls
    scripts/make-env.sh "$env"
    exec ".venv-$env/bin/python" "${pytest_args[@]}" "plugins/$package/tests" "$@"
fi
scripts/bootstrap.sh
exec .venv/bin/python "${pytest_args[@]}" "plugins/$package/tests" "$@"
