from grounding_sam_configs import BOXES_AND_MASKS
from grounding_sam_media import image_tasks
from prelabel_grounding_sam import GroundingSamBackend

from prelabel.testing import BackendConformanceTests

# MODEL_ROOT (random Grounding DINO and SAM 2 weights) and the model settings come from conftest


class TestGroundingSamConformance(BackendConformanceTests):
    backend_class = GroundingSamBackend
    label_config = BOXES_AND_MASKS
    tasks = image_tasks(3)
