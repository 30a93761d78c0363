"""Random-weight YOLO models built offline from ultralytics' model yaml files, for tests.

A random detection head scores every box near zero, so nothing would be detected: raising
the final class bias of the head makes chosen classes fire with a known score, at chosen
scales of the head (so different classes win at different anchors).
"""

from __future__ import annotations

import math
from pathlib import Path

ALL = (0, 1, 2)  # the head's scales: strides 8, 16, 32
# base yaml, class names, {class index: (score it fires with, scales where it fires)}
SPECS = {
    "yolo11n.pt": ("yolo11n.yaml", ["car", "person", "dog"], {0: (0.99995, (0, 1)), 2: (0.73, (2,))}),
    "yolo11n-seg.pt": ("yolo11n-seg.yaml", ["car", "person", "dog"], {0: (0.99995, ALL)}),
    "yolo11n-pose.pt": ("yolo11n-pose.yaml", ["person"], {0: (0.99995, ALL)}),
    "yolo11n-obb.pt": ("yolo11n-obb.yaml", ["plane", "ship"], {0: (0.99995, ALL)}),
    "yolo11n-cls.pt": ("yolo11n-cls.yaml", ["cat", "dog", "bird"], {}),
}


def build(base_yaml: str, names: list[str], fire: dict[int, tuple[float, tuple[int, ...]]], path: Path) -> Path:
    """Build ``base_yaml`` with ``len(names)`` classes and random weights, save it to ``path``."""
    import torch
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    spec = yaml_model_load(base_yaml)
    spec["nc"] = len(names)
    spec.pop("yaml_file", None)
    # the file name carries the scale ("n") that ultralytics reads from it
    cfg = path.parent / f"{Path(base_yaml).stem}-{path.stem}.yaml"
    cfg.write_text(yaml.safe_dump(spec))
    torch.manual_seed(0)
    model = YOLO(str(cfg))
    model.model.names = dict(enumerate(names))
    head = model.model.model[-1]
    if model.task != "classify":
        with torch.no_grad():
            for scale, branch in enumerate(head.cv3):  # the class branch of each detection scale
                last = branch[-1] if isinstance(branch, torch.nn.Sequential) else branch
                last.bias.fill_(-20.0)
                for cls, (score, scales) in fire.items():
                    if scale in scales:
                        last.bias[cls] = math.log(score / (1 - score))
            if model.task == "segment":  # random prototypes give specks; make each mask fill its box
                proto = head.proto.cv3
                proto.conv.weight.zero_()
                proto.bn.weight.zero_()
                proto.bn.bias.fill_(2.0)
                for branch in head.cv4:
                    branch[-1].weight.zero_()
                    branch[-1].bias.fill_(1.0)
    cfg.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


def build_all(root: Path) -> Path:
    """Every default weights file of the plugin, under ``root`` (a MODEL_ROOT)."""
    for name, (base, names, fire) in SPECS.items():
        build(base, names, fire, root / name)
    return root
