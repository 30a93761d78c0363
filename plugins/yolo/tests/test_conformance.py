from prelabel_yolo import YoloBackend
from yolo_media import image_tasks, rectangle_tasks

from prelabel.testing import BackendConformanceTests, configs

# MODEL_ROOT (random-weight models) comes from conftest; small images and 1 epoch keep it fast
FAST = {"yolo_imgsz": 64, "yolo_max_det": 5, "yolo_epochs": 1, "yolo_train_batch": 4}


class TestYoloConformance(BackendConformanceTests):
    backend_class = YoloBackend
    label_config = configs.IMAGE_RECTANGLES
    tasks = image_tasks(3)
    settings = FAST
    training_tasks = rectangle_tasks(6)
