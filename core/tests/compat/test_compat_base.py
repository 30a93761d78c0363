"""prelabel.compat's upstream API on its own, the model-file loader, and a real
``label_studio_ml`` package (a fake one on sys.path) whose subclasses are accepted too."""

import sys
import textwrap
import time
from pathlib import Path

import pytest

import prelabel.compat.base
from prelabel.backend import capabilities_of
from prelabel.compat import LabelStudioMLBase, ModelResponse, PredictionValue, adapt, is_model_class, load_model_file
from prelabel.compat.loader import upstream_installed
from prelabel.compat.utils import get_choice, get_single_tag_keys, is_preload_needed, is_skipped
from prelabel.plugins import PluginError, load_backend_class
from prelabel.testing import configs, make_runtime, serve_in_process

MODELS = Path(__file__).parent / "models"


class Plain(LabelStudioMLBase):
    pass


def test_standalone_instance_has_upstreams_behaviour():
    """Instantiated directly (a model author's unit test): values live in this process."""
    model = Plain(project_id="standalone-1", label_config=configs.TEXT_CHOICES)
    assert model.model_version == "0.0.1"
    assert model.label_config == configs.TEXT_CHOICES
    assert model.parsed_label_config["sentiment"]["labels"] == ["positive", "negative", "neutral"]
    assert model.get_first_tag_occurence("Choices", "Text") == ("sentiment", "text", "text")
    model.set("counter", "1")
    again = Plain(project_id="standalone-1", label_config=configs.TEXT_CHOICES)
    assert again.get("counter") == "1" and again.has("counter") and not again.has("other")
    assert Plain(project_id="standalone-2").get("counter") is None
    model.set_extra_params({"threshold": 0.5})
    assert model.extra_params == {"threshold": 0.5}
    assert model.predict([{"id": 1, "data": {"text": "x"}}]) == []
    assert model.process_event("PROJECT_UPDATED", {}, None, {}) is None


@pytest.mark.parametrize(
    "before, after",
    [("0.0.1", "0.1.0"), ("SklearnTextClassifier-v0.0.1", "SklearnTextClassifier-v0.1.0"), ("1.9.3-rc", "1.10.0-rc")],
)
def test_bump_model_version(before, after):
    model = Plain(project_id=f"bump-{before}")
    model.set("model_version", before)
    assert model.bump_model_version() == after
    assert model.model_version == after


def test_bump_without_semver_says_what_to_do():
    model = Plain(project_id="bump-none")
    model.set("model_version", "latest")
    with pytest.raises(ValueError, match="set one with self.set"):
        model.bump_model_version()


def test_build_label_map_uses_predicted_values_then_names():
    model = Plain(project_id="labels", label_config=configs.IMAGE_RECTANGLES)
    assert model.build_label_map("label", ["car", "truck", "person", "airplane"]) == {
        "car": "Car",
        "truck": "Car",
        "person": "Person",
    }
    choices = Plain(project_id="labels2", label_config=configs.TEXT_CHOICES)
    assert choices.build_label_map("sentiment", ["NEUTRAL", "negative", "other"]) == {
        "negative": "negative",
        "neutral": "neutral",
    }


def test_model_response():
    response = ModelResponse(
        predictions=[{"result": [], "score": 0.5}, [PredictionValue(result=[], model_version="mine")]]
    )
    assert isinstance(response.predictions[0], PredictionValue)
    assert not response.has_model_version()
    response.set_version("v7")
    assert response.model_version == "v7"
    assert response.predictions[0].model_version == "v7"
    assert response.predictions[1][0].model_version == "mine"


def test_utils():
    assert all(
        is_preload_needed(u)
        for u in (
            "/data/upload/1/a.png",
            "upload/1/a.png",
            "s3://b/k.png",
            "https://x/y.png",
            "/data/local-files/?d=a/b.png",
        )
    )
    assert not any(is_preload_needed(u) for u in ("some text", "/data/other", 7))
    parsed = Plain(project_id="utils", label_config=configs.TEXT_CHOICES).parsed_label_config
    assert get_single_tag_keys(parsed, "Choices", "Text") == (
        "sentiment",
        "text",
        "text",
        ["positive", "negative", "neutral"],
    )
    with pytest.raises(AssertionError, match="Labels"):
        get_single_tag_keys(parsed, "Labels", "Text")
    task = {"annotations": [{"result": [{"value": {"choices": ["neutral"]}}], "was_cancelled": False}]}
    assert get_choice(task) == "neutral" and not is_skipped(task)
    assert is_skipped({"annotations": [{"was_cancelled": True}]})


def test_adapted_class_declaration():
    backend = load_model_file(str(MODELS / "scaffold_model.py"))
    assert backend.backend_id == "new_model" and backend.title == "NewModel"
    assert backend.default_port == 9090 and backend.trainable
    assert capabilities_of(backend)["control_tags"]  # every tag label-studio-sdk knows
    assert not adapt(Plain).trainable  # fit() not overridden
    with pytest.raises(TypeError, match="LabelStudioMLBase"):
        adapt(dict)
    assert not is_model_class(LabelStudioMLBase) and is_model_class(Plain)


def test_upstream_imports_resolve_to_prelabel_without_the_package():
    load_model_file(str(MODELS / "scaffold_model.py"))
    if upstream_installed():
        pytest.skip("the real label_studio_ml is installed here")
    import label_studio_ml.model
    import label_studio_ml.response

    assert label_studio_ml.model.LabelStudioMLBase is LabelStudioMLBase
    assert label_studio_ml.response.ModelResponse is ModelResponse
    # prelabel-compat's package re-exports prelabel.compat; the stand-in (without it) is
    # prelabel.compat's modules themselves (test_compat_package.py tests both)
    assert sys.modules["label_studio_ml.model"] is prelabel.compat.base or label_studio_ml.__prelabel_compat__


def test_loader_errors_say_what_to_fix(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        load_model_file(str(tmp_path / "missing.py"))
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(PluginError, match="defines no subclass of LabelStudioMLBase"):
        load_model_file(str(tmp_path / "empty.py"))
    (tmp_path / "two.py").write_text(
        textwrap.dedent("""
        from label_studio_ml.model import LabelStudioMLBase

        class First(LabelStudioMLBase):
            pass

        class Second(LabelStudioMLBase):
            pass
    """)
    )
    with pytest.raises(PluginError, match=r"several model classes \(First, Second\)"):
        load_model_file(str(tmp_path / "two.py"))
    assert load_model_file(f"{tmp_path / 'two.py'}:Second").model_class.__name__ == "Second"
    with pytest.raises(PluginError, match="has no class Third"):
        load_model_file(f"{tmp_path / 'two.py'}:Third")
    (tmp_path / "needs.py").write_text("import no_such_module_for_prelabel\n")
    with pytest.raises(PluginError, match="install the model's requirements"):
        load_model_file(str(tmp_path / "needs.py"))
    # the plugin resolver (prelabel serve, doctor, worker processes) takes model files too
    assert load_backend_class(f"{tmp_path / 'two.py'}:First").model_class.__name__ == "First"


@pytest.fixture
def real_upstream_package(tmp_path, monkeypatch):
    """A stand-in for an installed label-studio-ml 2.x: its own base class and CACHE."""
    package = tmp_path / "site" / "label_studio_ml"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(
        textwrap.dedent("""
        CACHE = {}

        class LabelStudioMLBase:
            INITIAL_MODEL_VERSION = "0.0.1"

            def __init__(self, project_id=None, label_config=None):
                self.project_id = project_id or ""
                if label_config is not None:
                    self.use_label_config(label_config)
                if not self.get("model_version"):
                    self.set("model_version", self.INITIAL_MODEL_VERSION)
                self.setup()

            def setup(self):
                pass

            def use_label_config(self, label_config):
                if self.get("label_config") != label_config:
                    self.set("label_config", label_config)

            def get(self, key):
                return CACHE.get((self.project_id, key))

            def set(self, key, value):
                CACHE[(self.project_id, key)] = value

            def has(self, key):
                return (self.project_id, key) in CACHE

            def get_local_path(self, url, project_dir=None, ls_host=None, ls_access_token=None, task_id=None):
                raise RuntimeError("upstream's downloader must not be used")

            @property
            def model_version(self):
                return self.get("model_version")

            def predict(self, tasks, context=None, **kwargs):
                return []

            def fit(self, event, data, **kwargs):
                pass
    """)
    )
    (package / "response.py").write_text(
        textwrap.dedent("""
        class ModelResponse:
            def __init__(self, predictions, model_version=None):
                self.predictions = predictions
                self.model_version = model_version
    """)
    )
    (tmp_path / "upstream_model.py").write_text(
        textwrap.dedent("""
        from label_studio_ml.model import LabelStudioMLBase
        from label_studio_ml.response import ModelResponse

        class UpstreamModel(LabelStudioMLBase):
            def setup(self):
                self.set("model_version", "up-1.0.0")

            def predict(self, tasks, context=None, **kwargs):
                return ModelResponse(predictions=[{"result": [], "score": 1.0} for _ in tasks])

            def fit(self, event, data, **kwargs):
                self.set("last_event", event)
                self.set("model_version", "up-2.0.0")
    """)
    )
    saved = {k: v for k, v in sys.modules.items() if k == "label_studio_ml" or k.startswith("label_studio_ml.")}
    for key in saved:
        del sys.modules[key]
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield tmp_path / "upstream_model.py"
    for key in [k for k in sys.modules if k == "label_studio_ml" or k.startswith("label_studio_ml.")]:
        del sys.modules[key]
    sys.modules.update(saved)


def test_subclasses_of_an_installed_label_studio_ml_are_accepted(real_upstream_package, tmp_path):
    backend_class = load_model_file(str(real_upstream_package))
    assert upstream_installed()
    fake_upstream = sys.modules["label_studio_ml.model"]
    assert fake_upstream.__file__.startswith(str(tmp_path))  # the package was left alone
    assert backend_class.trainable
    runtime = make_runtime(backend_class, tmp_path / "home")
    with serve_in_process(runtime) as client:
        setup = client.post("/setup", json={"project": "3.1", "schema": configs.TEXT_CHOICES})
        assert setup.json()["model_version"] == "up-1.0.0"
        results = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "3.1"}).json()
        # its one task has no region: Label Studio is given nothing to store for it
        assert results == {"results": [[]], "model_version": "up-1.0.0"}
        job_id = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}}).json()["job"]
        deadline = time.monotonic() + 30
        while client.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.02)  # polling the job's state
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        assert client.post("/setup", json={"project": "3.1", "schema": configs.TEXT_CHOICES}).json() == {
            "model_version": "up-2.0.0"
        }
    # get/set went to prelabel's state store, not upstream's process-local CACHE
    assert fake_upstream.CACHE == {}
    assert runtime.state.get("label_studio_ml:3", "last_event") == "START_TRAINING"
    assert runtime.state.get("label_studio_ml:3", "label_config") == configs.TEXT_CHOICES
    runtime.close()
