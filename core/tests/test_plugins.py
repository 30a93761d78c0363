import types

import pluggy
import pytest

import prelabel
from prelabel import Backend, hookimpl
from prelabel.backend import check_declaration
from prelabel.plugins import PluginError, collect_backends, load_backend_class, make_plugin_manager
from prelabel.testing.reference import ReferenceBackend


def plugin(*classes):
    @hookimpl
    def register_backends(register):
        for cls in classes:
            register(cls)

    return types.SimpleNamespace(register_backends=register_backends)


class Other(Backend):
    backend_id = "other"
    supports = {"Labels": frozenset({"Text"})}


def test_register_and_collect():
    pm = make_plugin_manager(load_entrypoints=False, plugins=[plugin(ReferenceBackend), plugin(Other)])
    registry = collect_backends(pm)
    assert set(registry.backends) == {"reference", "other"}
    assert load_backend_class("reference", pm) is ReferenceBackend


def test_duplicate_backend_ids_are_refused():
    class Impostor(ReferenceBackend):
        pass

    pm = make_plugin_manager(load_entrypoints=False, plugins=[plugin(ReferenceBackend), plugin(Impostor)])
    with pytest.raises(PluginError, match="registered twice"):
        collect_backends(pm)


def test_invalid_registrations_are_refused():
    pm = make_plugin_manager(load_entrypoints=False, plugins=[plugin(dict)])
    with pytest.raises(PluginError, match="not a prelabel.Backend"):
        collect_backends(pm)

    class NoTags(Backend):
        backend_id = "no_tags"

    with pytest.raises(TypeError, match="supports"):
        collect_backends(make_plugin_manager(load_entrypoints=False, plugins=[plugin(NoTags)]))

    class Untrainable(Other):
        backend_id = "claims_training"
        trainable = True

    with pytest.raises(TypeError, match="fit"):
        check_declaration(Untrainable)


def test_misspelt_hooks_are_caught():
    @hookimpl
    def register_backend(register):  # missing "s"
        pass

    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager(load_entrypoints=False, plugins=[types.SimpleNamespace(register_backend=register_backend)])


def test_allowlist_limits_entry_points(monkeypatch):
    monkeypatch.setenv("PRELABEL_PLUGINS", "no_such_plugin")
    assert collect_backends(make_plugin_manager()).backends == {}


def test_import_path_specs():
    assert load_backend_class("prelabel.testing.reference:ReferenceBackend") is ReferenceBackend
    with pytest.raises(PluginError, match="not a prelabel.Backend"):
        load_backend_class("prelabel.testing.reference:WORD")
    with pytest.raises(PluginError, match="no backend named 'nope'.*pip install prelabel-nope"):
        load_backend_class("nope", make_plugin_manager(load_entrypoints=False))


def test_public_api_is_pinned():
    assert sorted(prelabel.__all__) == sorted(
        [
            "Backend",
            "BackendSettings",
            "ControlInfo",
            "CoreSettings",
            "Job",
            "JobCancelled",
            "JobContext",
            "LabelConfigError",
            "LruCache",
            "MediaError",
            "MediaFetcher",
            "ObjectInfo",
            "ParsedConfig",
            "PathEscapeError",
            "PluginError",
            "PredictContext",
            "Prediction",
            "Project",
            "Task",
            "TaskError",
            "exif_orientation",
            "hookimpl",
            "image_array",
            "lookup_counter",
            "make_plugin_manager",
            "open_image",
            "parse_label_config",
            "resolve_under",
            "__version__",
        ]
    )
    for name in prelabel.__all__:
        assert hasattr(prelabel, name)


def test_public_modules_are_pinned():
    import prelabel.regions
    import prelabel.sam_events
    import prelabel.testing

    assert prelabel.PUBLIC_MODULES == ("prelabel.regions", "prelabel.testing", "prelabel.llm", "prelabel.sam_events")
    assert sorted(prelabel.regions.__all__) == [
        "brush",
        "choices",
        "find_spans",
        "keypoint",
        "mask_to_rle",
        "number",
        "polygon",
        "rating",
        "rectangle",
        "region_id",
        "rle_to_mask",
        "rotated_rectangle",
        "span",
        "taxonomy",
        "textarea",
        "video_rectangle",
    ]
    assert sorted(prelabel.testing.__all__) == [
        "BackendConformanceTests",
        "configs",
        "data_uri",
        "make_runtime",
        "per_task_results",
        "png_bytes",
        "serve_in_process",
    ]
    assert sorted(prelabel.sam_events.__all__) == [
        "Prompts",
        "SamEventBackend",
        "SamRequest",
        "TrackPlan",
        "TrackSessions",
        "bitmask_value",
        "capabilities_value",
        "dispatch_sam_event",
    ]
    for module in (prelabel.regions, prelabel.testing, prelabel.sam_events):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_hookspec_is_documented():
    from prelabel import hookspecs

    for name in ("register_backends", "register_commands"):
        assert getattr(hookspecs, name).__doc__.strip()
