from prelabel_sam2 import Sam2Backend
from sam2_configs import IMAGE_BRUSH
from sam2_media import image_uri

from prelabel.testing import BackendConformanceTests

# MODEL_ROOT (a random-weight checkpoint), MODEL_CONFIG and SAM2_IMAGE_SIZE come from conftest


class TestSam2Conformance(BackendConformanceTests):
    backend_class = Sam2Backend
    label_config = IMAGE_BRUSH
    tasks = [{"id": i, "data": {"image": image_uri(i)}} for i in range(1, 4)]
