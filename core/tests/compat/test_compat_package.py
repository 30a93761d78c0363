"""The ``label_studio_ml`` import package: prelabel-compat's, the stand-in ``prelabel serve
--model-file`` installs without it, ``label_studio_ml.examples.<name>``, and the refusal to run
next to PyPI's stale ``label-studio-ml``."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import prelabel.compat
from prelabel.compat import LabelStudioMLBase, ModelResponse
from prelabel.compat.loader import example_folders, two_label_studio_ml_message
from prelabel.testing.harness.backendprocess import prelabel_command

COMPAT_SRC = Path(__file__).resolve().parents[3] / "compat" / "src"
needs_compat = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import label_studio_ml.api"], capture_output=True).returncode != 0,
    reason='needs prelabel-compat: pip install -e "core[compat]" -e compat',
)


def _python(code: str, cwd: Path | None = None, pythonpath: list[Path] = (), hide_compat: bool = False):
    """Run ``code`` in a fresh interpreter (imports and sys.modules of its own)."""
    prelude = ""
    if hide_compat:  # as if prelabel-compat were not installed
        prelude = (
            f"import sys; sys.path[:] = [p for p in sys.path if not p.rstrip('/').endswith({str(COMPAT_SRC)!r})]\n"
        )
    env_path = ":".join(str(p) for p in pythonpath)
    env = {**os.environ, "PYTHONPATH": env_path} if env_path else dict(os.environ)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@needs_compat
def test_prelabel_compat_provides_upstreams_modules():
    import label_studio_ml
    import label_studio_ml.api
    import label_studio_ml.model
    import label_studio_ml.response
    import label_studio_ml.utils

    assert label_studio_ml.__prelabel_compat__ and label_studio_ml.package_name == "prelabel-compat"
    assert label_studio_ml.model.LabelStudioMLBase is LabelStudioMLBase
    assert label_studio_ml.model.ModelResponse is label_studio_ml.response.ModelResponse is ModelResponse
    assert label_studio_ml.api.init_app is prelabel.compat.api.init_app
    for name in (
        "match_labels",
        "InMemoryLRUDictCache",
        "compare_nested_structures",
        "get_first_tag_keys",
        "is_valid_url",
        "is_preload_needed",
        "get_single_tag_keys",
        "DATA_UNDEFINED_NAME",
    ):
        assert getattr(label_studio_ml.utils, name) is getattr(prelabel.compat.utils, name), name


def test_the_stand_in_without_prelabel_compat(tmp_path):
    """``prelabel serve --model-file`` works with plain ``pip install prelabel``: while a model
    file loads, label_studio_ml.* resolve to prelabel.compat (api included)."""
    model = tmp_path / "model.py"
    model.write_text(
        "from label_studio_ml.model import LabelStudioMLBase\n"
        "from label_studio_ml.api import init_app\n\n"
        "class Mine(LabelStudioMLBase):\n    pass\n"
    )
    run = _python(
        f"""
        import importlib.util, sys
        assert importlib.util.find_spec("label_studio_ml") is None, "prelabel-compat is still visible"
        from prelabel.compat import load_model_file
        backend = load_model_file({str(model)!r})
        import label_studio_ml, prelabel.compat.base, prelabel.compat.api
        assert label_studio_ml.__prelabel_compat__
        assert sys.modules["label_studio_ml.model"] is prelabel.compat.base
        assert sys.modules["label_studio_ml.api"] is prelabel.compat.api
        print(backend.model_class.__name__)
    """,
        hide_compat=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Mine"


def _fake_stale_distribution(where: Path) -> Path:
    """What ``pip install label-studio-ml==1.0.9`` leaves for importlib.metadata to find."""
    info = where / "label_studio_ml-1.0.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: label-studio-ml\nVersion: 1.0.9\n")
    return where


@needs_compat
def test_both_distributions_installed_is_refused_with_what_to_do(tmp_path):
    site = _fake_stale_distribution(tmp_path / "site")
    for code in (
        "import label_studio_ml",
        "from prelabel.compat.api import init_app\nfrom prelabel.compat import LabelStudioMLBase\n"
        "class M(LabelStudioMLBase): pass\ninit_app(M)",
    ):
        run = _python(code, pythonpath=[site])
        assert run.returncode != 0
        assert "label-studio-ml 1.0.9" in run.stderr and "prelabel-compat 0.1.0" in run.stderr, run.stderr
        assert "pip uninstall -y label-studio-ml prelabel-compat" in run.stderr
    model = tmp_path / "model.py"
    model.write_text("from label_studio_ml.model import LabelStudioMLBase\nclass M(LabelStudioMLBase): pass\n")
    serve = subprocess.run(
        [*prelabel_command(), "serve", "--model-file", str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(site), "PRELABEL_HOME": str(tmp_path)},
    )
    assert serve.returncode != 0 and "both label-studio-ml 1.0.9" in serve.stderr, serve.stderr
    assert two_label_studio_ml_message() is None  # this environment has only prelabel-compat


def _upstream_like_checkout(root: Path) -> Path:
    """<root>/label_studio_ml/examples/echo/{model.py,helper.py}: an upstream checkout's layout."""
    example = root / "label_studio_ml" / "examples" / "echo"
    example.mkdir(parents=True)
    (example / "helper.py").write_text("GREETING = 'hi'\n")
    (example / "model.py").write_text(
        textwrap.dedent("""
        from label_studio_ml.model import LabelStudioMLBase
        from helper import GREETING  # a sibling import, as examples do

        class Echo(LabelStudioMLBase):
            def predict(self, tasks, context=None, **kwargs):
                return [{"result": [], "score": 0.5, "greeting": GREETING} for _ in tasks]
    """)
    )
    return example


@needs_compat
def test_examples_import_path_finds_an_upstream_checkout(tmp_path):
    example = _upstream_like_checkout(tmp_path / "checkout")
    # pytest runs an example's tests with the example's folder on sys.path (rootdir insertion)
    run = _python(
        """
        import importlib, label_studio_ml.model
        module = importlib.import_module("label_studio_ml.examples.echo.model")
        assert issubclass(module.Echo, label_studio_ml.model.LabelStudioMLBase)
        print(module.__file__)
    """,
        pythonpath=[example],
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(example / "model.py")
    assert example_folders([str(tmp_path / "checkout")]) == [str(example.parent)]
    assert example_folders([str(example)]) == [str(example.parent)]
    assert example_folders([str(tmp_path)]) == []


@needs_compat
def test_examples_import_path_without_a_checkout_is_a_clear_import_error():
    run = _python("import label_studio_ml.examples.deepgram.model")
    assert (
        run.returncode != 0 and "ModuleNotFoundError: No module named 'label_studio_ml.examples.deepgram'" in run.stderr
    )
