from prelabel_sam3 import Sam3Backend
from sam3_configs import MASKS
from sam3_media import image_tasks

from prelabel.testing import BackendConformanceTests

# MODEL_ROOT (a tiny random SAM 3) and the model settings come from conftest


class TestSam3Conformance(BackendConformanceTests):
    backend_class = Sam3Backend
    label_config = MASKS
    tasks = image_tasks(3)
