"""``label_studio_ml.utils`` helpers and ``preload_task_data`` with upstream's semantics (what
upstream's example and unit tests rely on), written as our own cases."""

import copy
import io
from unittest import mock

import pytest
from PIL import Image

from prelabel.compat import LabelStudioMLBase
from prelabel.compat.utils import (
    InMemoryLRUDictCache,
    compare_nested_structures,
    get_first_tag_keys,
    get_image_size,
    is_preload_needed,
    is_valid_url,
    match_labels,
)
from prelabel.testing import configs


class Plain(LabelStudioMLBase):
    pass


def test_match_labels_picks_the_most_similar_label_per_line():
    labels = ["sports", "politics", "technology"]
    assert match_labels("tech", labels) == ["technology"]
    assert match_labels("Sport\npolitic\ntechnologies", labels) == ["sports", "politics", "technology"]
    assert match_labels("", labels) == []  # no line, no label
    assert match_labels("zzz", ["ab", "cd"]) == ["ab"]  # equal (zero) similarity: the first label


def test_in_memory_lru_dict_cache():
    cache = InMemoryLRUDictCache(capacity=2)
    assert cache.get("a") is None and "a" not in cache
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)  # evicts b, the least recently used
    assert "b" not in cache and "a" in cache and "c" in cache
    cache.put("a", 10)  # an update counts as use, and keeps the size
    cache.put("d", 4)
    assert list(cache.cache) == ["a", "d"] and cache.get("a") == 10
    assert str(cache) == str(cache.cache)
    assert InMemoryLRUDictCache().capacity == 1


def test_compare_nested_structures_allows_float_noise_only():
    expected = {"results": [{"score": 0.5, "result": [{"value": {"x": 10.0, "labels": ["A"]}}]}]}
    noisy = copy.deepcopy(expected)
    noisy["results"][0]["result"][0]["value"]["x"] = 10.0000001
    compare_nested_structures(noisy, expected)
    compare_nested_structures([1.0, 2.0], [1.05, 2.0], rel=0.1)
    noisy["results"][0]["result"][0]["value"]["labels"] = ["B"]
    with pytest.raises(AssertionError, match=r"Mismatch at \.results\[0\]\.result\[0\]\.value\.labels\[0\]"):
        compare_nested_structures(noisy, expected)
    with pytest.raises(AssertionError, match=r"Keys mismatch at \.results\[0\]"):
        compare_nested_structures({"results": [{}]}, {"results": [{"a": 1}]})
    with pytest.raises(AssertionError, match="List size mismatch"):
        compare_nested_structures([1], [1, 2])
    with pytest.raises(AssertionError, match="Mismatch at"):
        compare_nested_structures(1.0, 1.1)


def test_get_first_tag_keys():
    config = """<View><Image name="img" value="$image"/><Text name="text" value="$text"/>
      <Choices name="mood" toName="text"><Choice value="a"/></Choices>
      <RectangleLabels name="box" toName="img"><Label value="car"/></RectangleLabels>
      <Choices name="kind" toName="img"><Choice value="b"/></Choices></View>"""
    parsed = Plain(project_id="keys", label_config=config).parsed_label_config
    from_name, info = get_first_tag_keys(parsed, "Choices", "Image")
    assert from_name == "kind" and info["to_name"] == ["img"] and info["labels"] == ["b"]
    assert get_first_tag_keys(parsed, "Choices", "Text")[0] == "mood"
    assert get_first_tag_keys(parsed, "Labels", "Text") == (None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://example.com/a.png", True),
        ("https://example.com", True),
        ("ftp://host/x", True),
        ("s3://bucket/key", True),
        ("/data/upload/1/a.png", False),
        ("c:\\test.jpg", False),
        ("just text", False),
        ("http://", False),
        ("http://[::1", False),
        (None, False),
        (7, False),
    ],
)
def test_is_valid_url(value, expected):
    assert is_valid_url(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://bucket/test/1.jpg", True),
        ("gs://bucket/test/1.jpg", True),
        ("azure-blob://c/1.jpg", True),
        ("/data/local-files?d=test", True),
        ("/upload/123.jpg", True),
        ("upload/1/a.png", True),
        ("/data/upload/1/a.png", True),
        ("https://host/a.png", True),
        ("ftp://host/a.png", True),
        ("this is text", False),
        ("/data/other", False),
        (7, False),
        (None, False),
    ],
)
def test_is_preload_needed(value, expected):
    assert is_preload_needed(value) is expected


def test_is_preload_needed_for_an_existing_local_path(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert is_preload_needed(str(tmp_path / "a.txt")) and not is_preload_needed(str(tmp_path / "b.txt"))


@pytest.fixture
def model():
    return Plain(project_id="preload", label_config=configs.TEXT_CHOICES)


def test_preload_task_data_of_none_is_none(model):
    """Upstream returns None for None (prelabel's earlier default to task['data'] recursed
    forever on a None inside the data)."""
    assert model.preload_task_data({"id": 1, "data": {"text": None}}, None) is None
    data = {"text": "x", "null": None, "nested": {"deeper": [None, 1]}}
    assert model.preload_task_data({"id": 1, "data": data}, copy.deepcopy(data)) == data


def test_preload_task_data_reads_every_file_reference_recursively(model):
    url = "s3://bucket/test/1.jpg"
    task = {
        "id": 9,
        "data": {
            "root": {"url": url, "urls": [url, url], "text": "plain"},
            "int": 3,
            "float": 1.5,
            "bool": False,
            "null": None,
        },
    }
    # what upstream's tests patch: the class attribute through label_studio_ml.model, and open()
    with (
        mock.patch.object(LabelStudioMLBase, "get_local_path", return_value="/cache/file") as local,
        mock.patch("builtins.open", mock.mock_open(read_data="body")) as opened,
    ):
        result = model.preload_task_data(task, copy.deepcopy(task["data"]))
        paths = model.preload_task_data(task, copy.deepcopy(task["data"]), read_file=False)
    assert result == {
        "root": {"url": "body", "urls": ["body", "body"], "text": "plain"},
        "int": 3,
        "float": 1.5,
        "bool": False,
        "null": None,
    }
    assert paths["root"] == {"url": "/cache/file", "urls": ["/cache/file"] * 2, "text": "plain"}
    local.assert_called_with(url=url, task_id=9)
    assert local.call_count == 6
    opened.assert_called_with("/cache/file", "r")
    assert opened.call_count == 3


def test_get_image_size_is_the_size_as_displayed(tmp_path):
    plain, turned = tmp_path / "plain.jpg", tmp_path / "turned.jpg"
    Image.new("RGB", (40, 20)).save(plain)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    buf = io.BytesIO()
    Image.new("RGB", (40, 20)).save(buf, "JPEG", exif=exif)
    turned.write_bytes(buf.getvalue())
    assert get_image_size(str(plain)) == (40, 20)
    assert get_image_size(str(turned)) == (20, 40)
