#!/usr/bin/env bash
# Build the llama-cpp-python wheel once and keep it in a wheel cache, so later environment builds
# install it in seconds instead of compiling llama.cpp again (about 6 min on 2 quiet cores).
# PyPI ships llama-cpp-python 0.3.36 as an sdist only. Prints the wheel's path.
# Usage: scripts/build-llama-wheel.sh            (cache: $PRELABEL_WHEEL_CACHE or ~/.cache/prelabel/wheels)
set -euo pipefail
version=${LLAMA_CPP_VERSION:-0.3.36}
cache=${PRELABEL_WHEEL_CACHE:-$HOME/.cache/prelabel/wheels}
mkdir -p "$cache"
found=$(ls "$cache"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -n1 || true)
if [[ -n $found ]]; then echo "$found"; exit 0; fi

command -v cmake >/dev/null 2>&1 || { echo "[llama-wheel] needs cmake and a C++ compiler (apt-get install cmake g++)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
uv venv -q -p 3.11 "$work/venv"
VIRTUAL_ENV=$work/venv uv pip install -q pip
start=$(date +%s)
# CPU build; examples, tests and the llama.cpp tools are not needed by the Python server.
# GGML_NATIVE=OFF: AVX2/FMA code that runs on any current x86-64 machine, so a wheel cached on
# one CI runner works on the next (a native build may use instructions another CPU lacks).
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"}
echo "[llama-wheel] building llama-cpp-python==$version (CMAKE_ARGS=$CMAKE_ARGS, -j$CMAKE_BUILD_PARALLEL_LEVEL)" >&2
# --no-cache-dir: pip's own wheel cache does not key on CMAKE_ARGS; this script's cache is the cache
"$work/venv/bin/python" -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$version" -w "$work/out" >&2
built=$(ls "$work"/out/llama_cpp_python-*.whl)
cp "$built" "$cache/.partial.whl" && mv "$cache/.partial.whl" "$cache/$(basename "$built")"  # never half a wheel
echo "[llama-wheel] built in $(( $(date +%s) - start )) s" >&2
ls "$cache"/llama_cpp_python-"$version"-*.whl | head -n1
