"""uie_x's document path in a real Label Studio, with rapidocr's real OCR models.

OCR: the PP-OCRv4 detection and recognition models inside the ``rapidocr-onnxruntime`` wheel
(Apache-2.0). The page is rendered here in English and Chinese with Debian's
``fonts-wqy-microhei`` (apt; GPL-2 with font embedding exception / Apache-2.0). Extraction:
a random tiny UIE-X (no UIE-X checkpoint is on PyPI), so which fields it marks is arbitrary,
but every box it returns is drawn around OCR lines: the boxes must sit on the rendered lines,
in what Label Studio stored and in what Chromium draws. Training through Label Studio's Train
button is the last test.

The page is uploaded to Label Studio; the backend (``prelabel serve uie_x``, a real process)
fetches it from ``/data/upload/`` with a personal access token."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from uie_x_corpus import DOC_CONFIG

from prelabel.testing.harness.backendprocess import BackendProcess
from prelabel.testing.harness.lsproject import (
    check_predictions,
    connect_backend,
    retrieve_predictions,
    stored_predictions,
    upload_files,
)

pytestmark = pytest.mark.e2e

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
# the English rows in the words of corpus.invoice (which the tiny model's vocabulary knows)
LINES = ["INVOICE NO4711", "Issued: March 15, 2024", "Amount: 350.20 EUR", "日期：2024年3月15日", "金额：350元"]
W, H = 520, 320


def render_page() -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """A white page with LINES in black; the pixel box of each line's ink."""
    from PIL import Image, ImageDraw, ImageFont

    if not FONT.is_file():
        pytest.skip(f"needs {FONT}: apt-get install fonts-wqy-microhei")
    font = ImageFont.truetype(str(FONT), 30)
    page = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(page)
    boxes = []
    for i, line in enumerate(LINES):
        xy = (30, 20 + 58 * i)
        draw.text(xy, line, fill="black", font=font)
        boxes.append(tuple(int(v) for v in draw.textbbox(xy, line, font=font)))
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue(), boxes


def pixel_box(region: dict) -> tuple[float, float, float, float]:
    v, w, h = region["value"], region["original_width"], region["original_height"]
    return v["x"] * w / 100, v["y"] * h / 100, (v["x"] + v["width"]) * w / 100, (v["y"] + v["height"]) * h / 100


def on_lines(box, lines, margin: float = 12) -> bool:
    """The box lies on the rendered lines it overlaps (OCR boxes pad the ink by a few pixels)."""
    x1, y1, x2, y2 = box
    hit = [b for b in lines if b[3] >= y1 and b[1] <= y2]
    if not hit:
        return False
    return (
        y1 >= min(b[1] for b in hit) - margin
        and y2 <= max(b[3] for b in hit) + margin
        and x1 >= min(b[0] for b in hit) - margin
        and x2 <= max(b[2] for b in hit) + margin
    )


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from prelabel.testing.harness.lsproject import label_studio as start

    try:
        with start(tmp_path_factory.mktemp("label-studio")) as server:
            yield server
    except LookupError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def e2e_uiex(paddle_home, tmp_path_factory):
    """The tiny UIE-X with span heads that score every token sigmoid(1) = 0.73: it marks
    spans on every CPU (random heads scored near the threshold, and on some CPUs marked none)."""
    from uie_x_corpus import corpus_lines
    from uie_x_tinymodels import build_uiex

    return build_uiex(tmp_path_factory.mktemp("models") / "tiny-uie-x-e2e", corpus_lines(), span_logit=1.0)


@pytest.fixture(scope="module")
def uie_x(label_studio, e2e_uiex, tmp_path_factory):
    home = tmp_path_factory.mktemp("uie-home")
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "UIE_TASK_PATH": str(e2e_uiex),
        "UIE_MODEL": "uie-x-base",
        "UIE_MAX_SEQ_LEN": "128",
        "PPNLP_HOME": str(home / "paddlenlp"),
        "UIE_POSITION_PROB": "0.05",  # the trained version must still mark something after 10 steps
        # a short fine-tune for the training test (CPU), long enough that the new version marks
        # the trained fields (its empty predictions would not be stored)
        "UIE_MAX_STEPS": "30",
        "UIE_VAL_SPLIT": "0",
        "UIE_LEARNING_RATE": "1e-2",
    }
    backend = BackendProcess("uie_x", home=home, env=env).start(timeout=300)  # paddle loads slowly
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def document(label_studio, uie_x):
    png, lines = render_page()
    project = label_studio.client().projects.create(title="uie-x-document", label_config=DOC_CONFIG)
    ml = connect_backend(label_studio, project.id, uie_x.url, title="uie_x")
    (task,) = upload_files(label_studio, project.id, [("invoice.png", png, "image/png")])
    retrieve_predictions(label_studio, project.id)
    return project.id, ml, task, png, lines


def test_rapidocr_reads_english_and_chinese_through_label_studio(document, uie_x):
    _, _, task, _, lines = document
    with uie_x.http(timeout=120) as http:
        resp = http.post("/v1/extract", json={"image": task["data"]["image"], "schema": ["Date"], "include_ocr": True})
    assert resp.status_code == 200, resp.text
    read = [line["text"].replace(" ", "") for line in resp.json()["ocr"]]
    for rendered in LINES:
        assert rendered.replace(" ", "").replace("：", ":") in [r.replace("：", ":") for r in read], (rendered, read)


def test_stored_boxes_sit_on_the_text_lines(label_studio, document):
    pid, ml, task, _, lines = document
    by_task = check_predictions(
        stored_predictions(label_studio, pid),
        [task["id"]],
        ml["model_version"],
        DOC_CONFIG,
        image_sizes={task["id"]: (W, H)},
    )
    boxes = [pixel_box(r) for r in by_task[task["id"]]["result"] if r["type"] == "rectanglelabels"]
    assert boxes, "the tiny UIE-X (every token a span at 0.73) marks nothing on a page of text"
    off = [b for b in boxes if not on_lines(b, lines)]
    assert not off, f"boxes off the text lines {lines}: {off}"


def test_the_browser_draws_the_boxes_on_the_text(label_studio, document):
    pytest.importorskip("playwright", reason="pip install playwright (and apt-get install chromium)")
    from prelabel.testing.harness.browser import INSTALL_HINT, LabelStudioBrowser, artifact_dir, changed, find_chromium

    if find_chromium() is None:
        pytest.skip(INSTALL_HINT)
    pid, _, task, png, lines = document
    bare = label_studio.client().projects.create(title="uie-x-baseline", label_config=DOC_CONFIG)
    (plain,) = upload_files(label_studio, bare.id, [("invoice.png", png, "image/png")])
    with (
        LabelStudioBrowser(label_studio, artifact_dir("uie-x-document", fresh=True)) as browser,
        browser.keep_on_failure("document"),
    ):
        before = browser.open_task(bare.id, plain["id"]).image("plain")
        after = browser.open_task(pid, task["id"]).image("predicted")
        drawn = after.media_mask(changed(before.pixels, after.pixels))
        assert drawn.any(), "nothing drawn over the page"
        rows = np.zeros(H, bool)
        for _, y1, _, y2 in lines:
            rows[max(0, y1 - 12) : y2 + 12] = True
        ys = np.nonzero(drawn)[0]
        assert rows[ys].mean() >= 0.95, "what is drawn lies on the text lines"


def test_start_training_in_label_studio_serves_a_new_version(label_studio, uie_x):
    """Box annotations (with their transcription) saved in Label Studio, its Train button
    (START_TRAINING to /webhook), a fine-tuning job that exports them and OCRs the uploaded
    pages, and a new version that Retrieve Predictions stores."""
    import time

    import httpx

    png, lines = render_page()
    project = label_studio.client().projects.create(title="uie-x-train", label_config=DOC_CONFIG)
    ml = connect_backend(label_studio, project.id, uie_x.url, title="uie_x")
    tasks = upload_files(label_studio, project.id, [("page-1.png", png, "image/png"), ("page-2.png", png, "image/png")])
    headers = label_studio.auth_headers("legacy")
    fields = {"Date": (LINES[1], lines[1]), "Total": (LINES[2], lines[2])}
    for task in tasks:
        result = []
        for label, (text, (x1, y1, x2, y2)) in fields.items():
            geometry = {
                "x": 100 * (x1 - 4) / W,
                "y": 100 * (y1 - 4) / H,
                "width": 100 * (x2 - x1 + 8) / W,
                "height": 100 * (y2 - y1 + 8) / H,
                "rotation": 0,
            }
            common = {
                "id": f"{task['id']}-{label}",
                "to_name": "image",
                "original_width": W,
                "original_height": H,
                "image_rotation": 0,
            }
            result += [
                {
                    **common,
                    "from_name": "label",
                    "type": "rectanglelabels",
                    "value": {**geometry, "rectanglelabels": [label]},
                },
                {**common, "from_name": "transcription", "type": "textarea", "value": {**geometry, "text": [text]}},
            ]
        resp = httpx.post(
            f"{label_studio.url}/api/tasks/{task['id']}/annotations",
            headers=headers,
            timeout=60,
            json={"result": result},
        )
        assert resp.status_code == 201, resp.text
    since = time.time() - 1
    resp = httpx.post(f"{label_studio.url}/api/ml/{ml['id']}/train", headers=headers, timeout=120, json={})
    assert resp.status_code == 200, resp.text
    job = uie_x.wait_new_job(project.id, kind="train", since=since, timeout=900)
    assert job["status"] == "succeeded", job
    with httpx.Client(timeout=60) as http:
        record = http.get(f"{label_studio.url}/api/ml/{ml['id']}", headers=headers).json()  # re-reads /setup
    assert record["model_version"] != ml["model_version"]
    retrieve_predictions(label_studio, project.id)
    # the tiny model, fine-tuned for a few CPU steps, may or may not mark the fields yet; what
    # it marks is stored as the new version, and it has no empty prediction stored either way
    with uie_x.http(timeout=120) as http:
        answer = http.post(
            "/predict", json={"tasks": tasks, "project": str(project.id), "label_config": DOC_CONFIG}
        ).json()
    assert answer["model_version"] == record["model_version"], answer
    stored = stored_predictions(label_studio, project.id)
    assert all(p["result"] for p in stored), "an empty prediction was stored"
    if stored:
        check_predictions(
            stored,
            sorted({p["task"] for p in stored}),
            record["model_version"],
            DOC_CONFIG,
            image_sizes={t["id"]: (W, H) for t in tasks},
        )
