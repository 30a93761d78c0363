"""Document images: rendered invoices OCR'd by rapidocr, boxes from UIE-X with the text of each
box in a per-region TextArea, and fine-tuning UIE-X from box annotations."""

import base64
import io

import pytest
from PIL import Image
from prelabel_uie_x import UieBackend
from uie_x_corpus import DOC_CONFIG, data_uri, invoice, invoice_task, wait_job

from prelabel import parse_label_config
from prelabel.testing.client import make_runtime, per_task_results, serve_in_process

# OCR detection at a 320-pixel short side (736 by default) is ~3x faster on these small pages
DOCS = {
    "uie_max_seq_len": 128,
    "uie_epochs": 1000,
    "uie_max_steps": 300,
    "uie_learning_rate": 2e-3,
    "uie_train_batch_size": 8,
    "uie_val_split": 0,
    "uie_ocr_side_len": 320,
}
PROJECT = "21.1700000000"
CONFIG = parse_label_config(DOC_CONFIG)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def same_text(ocr: str, rendered: str) -> bool:
    return ocr.replace(" ", "") == rendered.replace(" ", "")  # OCR may drop spaces


def pixel_box(region) -> tuple[float, float, float, float]:
    v, w, h = region["value"], region["original_width"], region["original_height"]
    return v["x"] * w / 100, v["y"] * h / 100, (v["x"] + v["width"]) * w / 100, (v["y"] + v["height"]) * h / 100


def predict(client, tasks):
    resp = client.post("/predict", json={"tasks": tasks, "project": PROJECT, "label_config": DOC_CONFIG})
    assert resp.status_code == 200, resp.text
    return per_task_results(resp.json())


@pytest.fixture(scope="module")
def client(tiny_uiex, tmp_path_factory):
    rt = make_runtime(
        UieBackend,
        tmp_path_factory.mktemp("docs") / "home",
        {"uie_task_path": str(tiny_uiex), "uie_model": "uie-x-base", **DOCS},
    )
    with serve_in_process(rt) as c:
        yield c
    rt.close()


def test_rapidocr_reads_the_rendered_invoice(client):
    png, fields, _ = invoice(3)
    segments = client.app.state.runtime.backend.ocr(Image.open(io.BytesIO(png)))
    texts = [s.text for s in segments]
    assert "INVOICE" in texts and "Issued:" in texts
    for value, box in fields.values():
        found = [s for s in segments if same_text(s.text, value)]
        assert found, (value, texts)
        assert iou((found[0].x1, found[0].y1, found[0].x2, found[0].y2), box) > 0.5


def test_random_uie_x_boxes_are_valid_and_carry_their_text(client):
    """Before training the boxes are junk, but every one is a valid region of the config."""
    results = predict(client, [invoice_task(100, seed=100), invoice_task(101, seed=101)])
    assert all("error" not in r for r in results)
    regions = [region for r in results for region in r["result"]]
    boxes = [g for g in regions if g["type"] == "rectanglelabels"]
    assert boxes, "the random model should mark something"
    for r in results:
        assert not CONFIG.interface.validate_prediction(r, return_errors=True)
    texts = {g["id"]: g["value"]["text"][0] for g in regions if g["type"] == "textarea"}
    for box in boxes:
        v = box["value"]
        assert v["rectanglelabels"][0] in ("Date", "Total")
        assert 0 <= v["x"] and v["x"] + v["width"] <= 100.001 and 0 <= v["y"] and v["y"] + v["height"] <= 100.001
        assert texts[box["id"]], "each box has its text in the per-region TextArea"


def test_a_page_that_is_not_an_image_fails_alone(client):
    tasks = [invoice_task(110, seed=110), {"id": 111, "data": {"image": data_uri(b"not a png")}}]
    results = predict(client, tasks)
    assert "error" not in results[0]
    assert results[1]["result"] == [] and "not a decodable image" in results[1]["error"]


def test_fine_tuning_on_boxes_learns_the_fields(client):
    """Box annotations -> OCR'd examples -> fine-tuned UIE-X -> Taskflow finds the annotated
    fields again, with their text. (Generalizing to unseen documents needs a pretrained
    UIE-X; test_finetune shows a tiny UIE generalizing on text.)"""
    tasks = [invoice_task(i, seed=i) for i in range(8)]
    resp = client.post("/train", json={"annotations": tasks, "project": PROJECT, "label_config": DOC_CONFIG})
    job = wait_job(client, resp.json()["job"])
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["family"] == "UIEX" and result["spans"] == {"Date": 8, "Total": 8}
    assert result["evaluated_on"] == "train" and result["f1"] >= 0.9, result
    for seed in (0, 5):
        _, fields, _ = invoice(seed)
        (predicted,) = predict(client, [invoice_task(300 + seed, seed=seed)])
        assert predicted["model_version"] == result["model_version"]
        assert not CONFIG.interface.validate_prediction(predicted, return_errors=True)
        regions = predicted["result"]
        texts = {g["id"]: g["value"]["text"][0] for g in regions if g["type"] == "textarea"}
        for label, (value, box) in fields.items():
            found = [g for g in regions if g["type"] == "rectanglelabels" and g["value"]["rectanglelabels"] == [label]]
            assert len(found) == 1, (label, regions)
            assert iou(pixel_box(found[0]), box) > 0.5
            assert same_text(texts[found[0]["id"]], value)


def test_an_exif_rotated_scan_is_read_and_boxed_as_the_browser_shows_it(client):
    """A page photographed in portrait (pixels stored turned, EXIF orientation 6): OCR reads
    the displayed page, and the boxes are those of the upright page, in percent of the
    displayed size (before core applied the orientation, uie_x read the page sideways)."""
    from prelabel.testing.images import exif_rotated

    png, _, (width, height) = invoice(120)
    upright = invoice_task(120, seed=120)
    turned = {"id": 121, "data": {"image": "data:image/jpeg;base64," + base64.b64encode(exif_rotated(png, 6)).decode()}}
    want, got = predict(client, [upright, turned])
    assert "error" not in got, got.get("error")
    boxes = [r for r in got["result"] if r["type"] == "rectanglelabels"]
    assert boxes, "the random model marks something on the upright page, so it must on the turned one"
    assert all((r["original_width"], r["original_height"]) == (width, height) for r in got["result"])

    def texts(item):
        return sorted(r["value"]["text"][0].replace(" ", "") for r in item["result"] if r["type"] == "textarea")

    assert texts(got) == texts(want)  # the same lines read
    expected = [pixel_box(b) for b in want["result"] if b["type"] == "rectanglelabels"]
    for box in boxes:
        assert max(iou(pixel_box(box), other) for other in expected) > 0.7, "the box is not on the upright text"
