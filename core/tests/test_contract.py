"""Contract v2: ``supports`` pairs and model_skip applied by core, limits from settings, the
device resolved by core, and the adapter-only hooks behind protocols of their own."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices, Field

from prelabel import Backend, BackendSettings, parse_label_config
from prelabel.backend import capabilities_of, check_declaration
from prelabel.compat.hooks import JobKinds, ProjectVersions, TrainsOnEvents
from prelabel.testing.client import make_runtime

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Video name="video" value="$video"/>
  <RectangleLabels name="boxes" toName="image"><Label value="Car"/></RectangleLabels>
  <RectangleLabels name="skipped" toName="image" model_skip="true"><Label value="Car"/></RectangleLabels>
  <PolygonLabels name="polygons" toName="image"><Label value="Car"/></PolygonLabels>
  <VideoRectangle name="track" toName="video"/>
  <Choices name="wrong_object" toName="video"><Choice value="a"/></Choices>
</View>"""


class LimitSettings(BackendSettings):
    max_batch_size: int = Field(8, ge=1, validation_alias=AliasChoices("acme_max_batch_size", "max_batch_size"))
    device: str = "cpu"


class Acme(Backend):
    backend_id = "acme"
    supports = {
        "RectangleLabels": frozenset({"Image"}),
        "VideoRectangle": frozenset({"Video"}),
        "Choices": frozenset({"Image"}),
    }
    max_batch_size = 8
    max_concurrency = 1
    Settings = LimitSettings

    def setup(self, device):
        self.device = device

    def predict(self, tasks, ctx):
        return [None] * len(tasks)


def test_core_applies_the_supports_pairs_and_model_skip():
    controls = Acme.__new__(Acme).supported_controls(parse_label_config(CONFIG))
    # polygons: not declared; skipped: model_skip; wrong_object: Choices only on Image
    assert [c.name for c in controls] == ["boxes", "track"]


def test_limits_come_from_settings_and_capabilities_report_them(monkeypatch):
    monkeypatch.setenv("ACME_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("MAX_CONCURRENCY", "5")
    backend = Acme()
    assert (backend.limits.max_batch_size, backend.limits.max_concurrency) == (3, 5)
    caps = capabilities_of(type(backend), backend.limits)
    assert caps["max_batch_size"] == 3 and caps["max_concurrency"] == 5
    assert caps["supports"] == {"Choices": ["Image"], "RectangleLabels": ["Image"], "VideoRectangle": ["Video"]}
    # the class keeps its defaults: another instance, other settings, other limits
    assert Acme.max_batch_size == 8 and capabilities_of(Acme)["max_batch_size"] == 8
    assert Acme(LimitSettings(acme_max_batch_size=2)).limits.max_batch_size == 2


def test_the_predictor_splits_by_the_limit_in_force(tmp_path):
    seen = []

    class Recording(Acme):
        backend_id = "recording"

        def predict(self, tasks, ctx):
            seen.append(len(tasks))
            return [None] * len(tasks)

    from prelabel.testing.client import serve_in_process

    rt = make_runtime(Recording, tmp_path / "home", {"max_batch_size": 2})
    with serve_in_process(rt) as client:
        tasks = [{"id": i, "data": {"image": f"http://127.0.0.1:9/{i}.png", "video": "v"}} for i in range(5)]
        resp = client.post("/predict", json={"tasks": tasks, "label_config": CONFIG})
        assert resp.status_code == 200, resp.text
    rt.close()
    assert seen == [2, 2, 1]


def test_core_resolves_the_device_and_passes_it_to_setup(tmp_path):
    rt = make_runtime(Acme, tmp_path / "home", {"device": "cpu"})
    rt.start()
    assert rt.backend.device == "cpu" and rt.device == "cpu"
    rt.close()

    class NoDevice(Acme):
        backend_id = "no_device"
        Settings = BackendSettings

    rt = make_runtime(NoDevice, tmp_path / "home2")
    rt.start()
    assert rt.backend.device is None
    rt.close()


def test_adapter_hooks_are_protocols_a_plain_backend_does_not_implement(tmp_path):
    from prelabel.compat.adapter import LabelStudioMLAdapter

    backend = Acme()
    assert not isinstance(backend, (ProjectVersions, JobKinds, TrainsOnEvents))
    for name in ("project_version", "job_handlers", "train_on_event"):
        assert not hasattr(Backend, name)
        assert callable(getattr(LabelStudioMLAdapter, name))
    rt = make_runtime(Acme, tmp_path / "home")
    assert set(rt.job_handlers) == {"predict"}
    rt.close()


def test_backend_has_a_small_public_surface():
    public = sorted(
        n
        for n, v in vars(Backend).items()
        if not n.startswith("_")
        and not isinstance(v, type)
        and (callable(v) or isinstance(v, (classmethod, staticmethod)))
    )
    hooks = {
        "preflight",
        "doctor",
        "setup",
        "model_version",
        "health",
        "supported_controls",
        "predict",
        "fit",
        "add_routes",
    }
    assert set(public) == hooks, public


@pytest.mark.parametrize("bad", [{}, {"Choices": set()}])
def test_a_declaration_without_pairs_is_refused(bad):
    class Bad(Acme):
        supports = bad

    with pytest.raises(TypeError, match="supports"):
        check_declaration(Bad)


def test_job_annotations_are_the_usable_ones_ground_truth_first(tmp_path):
    from prelabel import Job, JobContext
    from prelabel.testing.reference import ReferenceBackend

    good = {"id": 1, "result": [{"from_name": "sentiment", "value": {"choices": ["positive"]}}]}
    truth = {"id": 2, "ground_truth": True, "result": good["result"]}
    cancelled = {"id": 3, "was_cancelled": True, "result": good["result"]}
    empty = {"id": 4, "result": []}
    tasks = [
        {"id": 10, "data": {}, "annotations": [cancelled, good, truth, empty]},
        {"id": 11, "data": {}, "annotations": [cancelled, empty]},
    ]
    rt = make_runtime(ReferenceBackend, tmp_path / "home")
    job = JobContext(Job(id="j1", kind="train", project="1", params={"tasks": tasks}), rt.jobs, rt)
    pairs = job.annotations()
    rt.close()
    assert [(task["id"], [a["id"] for a in anns]) for task, anns in pairs] == [(10, [2, 1])]


@pytest.mark.parametrize("how", ["runtime", "app"])
def test_main_thread_imports_happen_in_the_main_thread_before_setup(tmp_path, monkeypatch, how):
    import sys
    import threading

    (tmp_path / "framework_probe.py").write_text("import threading\nIMPORTED_IN = threading.current_thread().name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "framework_probe", raising=False)
    seen = {}

    class Framework(Acme):
        main_thread_imports = ("framework_probe",)

        def setup(self, device=None):
            seen["setup_in"] = threading.current_thread().name
            seen["imported"] = "framework_probe" in sys.modules

    rt = make_runtime(Framework, tmp_path / "home")
    if how == "runtime":
        rt.start_in_background().join(30)
    else:
        from prelabel.testing.client import serve_in_process

        with serve_in_process(rt):
            pass
    assert seen == {"setup_in": "prelabel-setup", "imported": True}
    assert sys.modules["framework_probe"].IMPORTED_IN != "prelabel-setup"
    rt.close()


def test_every_standard_conformance_test_says_what_to_fix():
    from prelabel.testing.conformance import STANDARD_TESTS

    silent = [name for name, test in STANDARD_TESTS.items() if not (test.__doc__ or "").strip()]
    assert not silent, f"standard tests without a docstring that says what to fix: {silent}"
