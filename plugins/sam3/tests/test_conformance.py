from prelabel_sam3 import Sam3Backend

from prelabel.testing import BackendConformanceTests

from .configs import MASKS
from .media import image_tasks

# MODEL_ROOT (a tiny random SAM 3) and the model settings come from conftest


class TestSam3Conformance(BackendConformanceTests):
    backend_class = Sam3Backend
    label_config = MASKS
    tasks = image_tasks(3)
