"""The sam2 backend's environment variables, and where the model config and checkpoint are.

Nothing here imports torch or sam2: ``preflight`` runs these checks before anything loads.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices, Field

from prelabel import BackendSettings, CoreSettings, resolve_under

INSTALL_SAM2 = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 (after torch)"
SIZE_WORDS = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}
SIZE_ALIASES = {
    "tiny": "t",
    "t": "t",
    "small": "s",
    "s": "s",
    "base+": "b+",
    "base_plus": "b+",
    "base-plus": "b+",
    "b+": "b+",
    "large": "l",
    "l": "l",
}
RELEASE_DIRS = {"sam2.1": "092824", "sam2": "072824"}  # Meta's download folders of the two releases
_CONFIG_NAME = re.compile(r"^(sam2(?:\.1)?)_hiera_(t|s|b\+|l)(?:\.yaml)?$")


class Sam2Settings(BackendSettings):
    """MODEL_CONFIG, MODEL_CHECKPOINT, MODEL_ROOT, DEVICE and the SAM2_* variables (see README)."""

    model_config_name: str = Field(
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        alias="MODEL_CONFIG",
        description="SAM 2 model config: tiny, small, base+, large, or sam2's config name "
        "(configs/sam2.1/sam2.1_hiera_t.yaml, sam2_hiera_l.yaml...).",
    )
    model_checkpoint: str | None = Field(
        None,
        description="Checkpoint file: absolute, or relative to MODEL_ROOT. Default: the config's "
        "release name (sam2.1_hiera_large.pt...).",
    )
    model_root: Path | None = Field(None, description="Directory of checkpoints. Default: $PRELABEL_HOME/weights.")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, mps.")
    sam2_image_size: int | None = Field(
        None,
        ge=64,
        multiple_of=32,
        description="Model input size (the config's is 1024); smaller is faster on CPU, coarser masks.",
    )
    sam2_embedding_cache_size: int = Field(
        16, ge=0, description="Image embeddings kept per process (about 16 MB each at 1024); 0 turns the cache off."
    )
    sam2_embedding_dir: Path | None = Field(
        None,
        description="Directory of the on-disk embedding cache (the embed job fills it; share it between "
        "replicas on one volume). Default: $PRELABEL_HOME/embeddings/<backend>.",
    )
    sam2_embedding_disk_mb: int = Field(
        8192,
        ge=0,
        description="Bound of the on-disk embedding cache in MB (least recently used files go "
        "first; about 16 MB an image at 1024, 1 MB at 256); 0 turns it off.",
    )
    sam2_multimask: bool = Field(True, description="Ask for three masks and keep the best by predicted IoU.")
    sam2_polygon_tolerance: float = Field(
        1.5, ge=0, description="PolygonLabels: largest distance in pixels between the mask outline and the polygon."
    )
    # core reads max_concurrency (Backend.limits); SAM2_MAX_CONCURRENCY is its environment name
    max_concurrency: int = Field(
        2,
        ge=1,
        validation_alias=AliasChoices("sam2_max_concurrency", "max_concurrency"),
        description="Requests predicted at once per process (SAM2_MAX_CONCURRENCY).",
    )
    max_frames_to_track: int = Field(10, ge=1, description="Video: frames propagated after the prompted frame.")
    sam2_track_max_frames: int = Field(
        300, ge=1, description="SAM events: most frames one track event follows the object through, each way."
    )

    def checkpoint_root(self, core: CoreSettings) -> Path:
        return Path(self.model_root) if self.model_root else core.prelabel_home / "weights"

    def embedding_root(self, core: CoreSettings, backend_id: str) -> Path:
        if self.sam2_embedding_dir:
            return Path(self.sam2_embedding_dir)
        return core.prelabel_home / "embeddings" / backend_id


@dataclass(frozen=True)
class ModelFiles:
    """The config sam2's hydra loads and the checkpoint file, resolved from the settings."""

    config: str  # e.g. configs/sam2.1/sam2.1_hiera_l.yaml, relative to the sam2 package
    checkpoint: Path
    release: str  # sam2 or sam2.1
    checkpoint_name: str  # the release's file name for this size

    @property
    def download_url(self) -> str:
        return f"https://dl.fbaipublicfiles.com/segment_anything_2/{RELEASE_DIRS[self.release]}/{self.checkpoint_name}"

    @property
    def hub_repo(self) -> str:
        size = self.checkpoint_name.split("_hiera_")[1].removesuffix(".pt").replace("_", "-")
        return f"facebook/{self.release}-hiera-{size}"


def resolve_config(value: str) -> tuple[str, str, str]:
    """``large`` / ``sam2.1_hiera_l.yaml`` / ``configs/sam2.1/sam2.1_hiera_l.yaml`` ->
    (hydra config name, release, the release's checkpoint file name)."""
    raw = value.strip()
    alias = SIZE_ALIASES.get(raw.lower())
    if alias:
        release, size = "sam2.1", alias
    else:
        match = _CONFIG_NAME.match(raw.replace("\\", "/").rsplit("/", 1)[-1])
        if not match:
            raise ValueError(
                f"MODEL_CONFIG={value!r} is not a SAM 2 config: use tiny, small, base+ or large, or a "
                "config name such as configs/sam2.1/sam2.1_hiera_t.yaml"
            )
        release, size = match.groups()
    return (f"configs/{release}/{release}_hiera_{size}.yaml", release, f"{release}_hiera_{SIZE_WORDS[size]}.pt")


def model_files(settings: Sam2Settings, core: CoreSettings) -> ModelFiles:
    """Resolve MODEL_CONFIG and MODEL_CHECKPOINT; ValueError with the fix when they are wrong."""
    config, release, name = resolve_config(settings.model_config_name)
    root = settings.checkpoint_root(core)
    raw = (settings.model_checkpoint or name).strip()
    if Path(raw).expanduser().is_absolute():
        path = Path(raw).expanduser()  # an operator's absolute path is taken as given
    else:
        path = resolve_under(root, raw, "MODEL_CHECKPOINT")  # relative: never outside MODEL_ROOT
    return ModelFiles(config=config, checkpoint=path, release=release, checkpoint_name=name)


def check_installed() -> None:
    if importlib.util.find_spec("sam2") is None:
        raise ValueError(f"the sam2 package is not installed: {INSTALL_SAM2}")


def check_model_files(settings: Sam2Settings, core: CoreSettings) -> ModelFiles:
    """The resolved files, or ValueError saying where users get the checkpoint."""
    files = model_files(settings, core)
    if not files.checkpoint.is_file():
        raise ValueError(
            f"the SAM 2 checkpoint {files.checkpoint} does not exist. Download {files.checkpoint_name} from "
            f"{files.download_url} (or the Hugging Face repo {files.hub_repo}) into "
            f"{settings.checkpoint_root(core)}, or set MODEL_CHECKPOINT to its path "
            f"(MODEL_CONFIG={settings.model_config_name!r} needs a {files.release} checkpoint of the same size)"
        )
    return files
