# Run by scripts/make-env.sh vision after vision.txt is installed (VIRTUAL_ENV is set).
# sam2 (plugins sam2 and grounding_sam) is on PyPI as source only and must build against the
# torch installed above, without build isolation, which uv pip install arguments cannot say
# for one package. SAM2_BUILD_CUDA=0 skips its optional CUDA extension (hole filling of masks).
set -euo pipefail
SAM2_BUILD_CUDA=0 uv pip install -q --no-build-isolation -c ci/envs/vision.constraints sam2==1.1.0
