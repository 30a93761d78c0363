from prelabel_uie_x import UieBackend
from uie_x_corpus import NER_CONFIG, ner_tasks

from prelabel.testing import BackendConformanceTests

# UIE_TASK_PATH (a tiny random UIE) comes from conftest; short windows and a few steps keep it fast
FAST = {"uie_max_seq_len": 64, "uie_epochs": 1, "uie_max_steps": 3, "uie_train_batch_size": 8}


class TestUieConformance(BackendConformanceTests):
    backend_class = UieBackend
    label_config = NER_CONFIG
    tasks = [
        {"id": 1, "data": {"text": "Alice works at Acme in Paris."}},
        {"id": 2, "data": {"text": "张三在北京工作。"}},
        {"id": 3, "data": {"text": "Hooli hired Kofi in Oslo last year."}},
    ]
    settings = FAST
    training_tasks = ner_tasks(6)
