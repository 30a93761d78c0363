"""Synthetic annotated data: NER sentences (English and Chinese) and invoice images with
rendered text, in Label Studio's export format."""

from __future__ import annotations

import base64
import functools
import io
import random

from prelabel.testing.client import wait_job as client_wait_job

PEOPLE = ["Alice", "Bruno", "Chen", "Dmitri", "Elena", "Farah", "Goran", "Hana", "Ivan", "Julia", "Kofi", "Lena"]
PLACES = ["Paris", "Berlin", "Lagos", "Oslo", "Quito", "Rome", "Seoul", "Tunis", "Vienna", "Zagreb"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ZH_PEOPLE = ["张三", "李四", "王五", "赵六"]
ZH_PLACES = ["北京", "上海", "广州", "深圳"]
TEMPLATES = [
    "{p} works at {o} in {c}.",
    "{p} moved to {c} to join {o}.",
    "In {c}, {p} founded {o}.",
    "{o} hired {p} in {c} last year.",
]
LABELS = {"p": "Person", "o": "Organization", "c": "Location"}

NER_CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="Person"/>
    <Label value="Organization"/>
    <Label value="Location"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""

DOC_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Date"/>
    <Label value="Total"/>
  </RectangleLabels>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true" required="true"
            maxSubmissions="1" rows="3" placeholder="Recognized Text" displayMode="region-list"/>
</View>"""


def vocabulary_words() -> list[str]:
    """Whole words of the NER sentences, for the tiny UIE's vocabulary."""
    words = {
        w
        for t in TEMPLATES
        for w in t.replace("{p}", " ")
        .replace("{o}", " ")
        .replace("{c}", " ")
        .replace(".", " ")
        .replace(",", " ")
        .split()
    }
    return sorted(words | set(PEOPLE) | set(PLACES) | set(ORGS))


def sentence(rng: random.Random, chinese: bool = False) -> tuple[str, list[tuple[int, int, str]]]:
    """A sentence and its (start, end, label) spans."""
    if chinese:
        values = {"p": rng.choice(ZH_PEOPLE), "c": rng.choice(ZH_PLACES)}
        template = rng.choice(["{p}在{c}工作。", "昨天{p}去了{c}。"])
    else:
        values = {"p": rng.choice(PEOPLE), "o": rng.choice(ORGS), "c": rng.choice(PLACES)}
        template = rng.choice(TEMPLATES)
    text, spans, pos = "", [], 0
    while pos < len(template):
        if template[pos] == "{":
            key = template[pos + 1]
            spans.append((len(text), len(text) + len(values[key]), LABELS[key]))
            text += values[key]
            pos += 3
        else:
            text += template[pos]
            pos += 1
    return text, spans


def ner_task(task_id: int, text: str, spans: list[tuple[int, int, str]]) -> dict:
    result = [
        {
            "id": f"r{task_id}-{i}",
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]},
        }
        for i, (s, e, label) in enumerate(spans)
    ]
    return {"id": task_id, "data": {"text": text}, "annotations": [{"id": task_id, "result": result}]}


def ner_tasks(n: int, seed: int = 0, chinese_every: int = 4) -> list[dict]:
    rng = random.Random(seed)
    return [ner_task(i + 1, *sentence(rng, chinese=chinese_every > 0 and i % chinese_every == 0)) for i in range(n)]


# -- documents ------------------------------------------------------------------------------
def invoice(seed: int) -> tuple[bytes, dict[str, tuple[str, tuple[int, int, int, int]]], tuple[int, int]]:
    """A PNG invoice with keys on the left and values well apart on the right, and the values'
    (text, pixel box) by label."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    font = ImageFont.load_default(size=22)
    width, height = 480, 260
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    # a tiny random model learns fields it can tell apart by their tokens (a month name, a
    # currency), not yet by reading the key in front of them
    values = {
        "Date": f"{rng.choice(MONTHS)} {rng.randint(10, 28)}, 2024",
        "Total": f"{rng.randint(10, 999)}.{rng.randint(10, 99)} EUR",
    }
    keys = {"Date": "Issued:", "Total": "Amount:"}
    rows = [
        ("INVOICE", f"NO{rng.randint(100, 999)}"),
        (keys["Date"], values["Date"]),
        (keys["Total"], values["Total"]),
        ("Vendor:", rng.choice(ORGS)),
    ]
    rows = rows[:1] + rng.sample(rows[1:], 3)  # the field order changes between invoices
    fields = {}
    for i, (key, value) in enumerate(rows):
        y = 25 + i * 58
        draw.text((24, y), key, fill="black", font=font)
        draw.text((250, y), value, fill="black", font=font)
        label = {v: k for k, v in keys.items()}.get(key)
        if label is not None:
            fields[label] = (value, tuple(int(v) for v in draw.textbbox((250, y), value, font=font)))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue(), fields, (width, height)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def invoice_task(task_id: int, seed: int, pad: int = 4) -> dict:
    """An invoice task annotated with a box (and its transcription) per field."""
    png, fields, (width, height) = invoice(seed)
    result = []
    for label, (text, (x1, y1, x2, y2)) in fields.items():
        geometry = {
            "x": 100 * (x1 - pad) / width,
            "y": 100 * (y1 - pad) / height,
            "width": 100 * (x2 - x1 + 2 * pad) / width,
            "height": 100 * (y2 - y1 + 2 * pad) / height,
            "rotation": 0,
        }
        rid = f"b{task_id}-{label}"
        common = {
            "id": rid,
            "to_name": "image",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
        }
        result.append(
            {
                **common,
                "from_name": "label",
                "type": "rectanglelabels",
                "value": {**geometry, "rectanglelabels": [label]},
            }
        )
        result.append(
            {**common, "from_name": "transcription", "type": "textarea", "value": {**geometry, "text": [text]}}
        )
    return {"id": task_id, "data": {"image": data_uri(png)}, "annotations": [{"id": task_id, "result": result}]}


def corpus_lines() -> list[str]:
    """Texts the UIE-X sentencepiece model is trained on: sentences and the invoices' fixed
    words. Dates and amounts are left out, so their digits split into pieces (as a real
    vocabulary splits numbers it has not seen)."""
    rng = random.Random(5)
    lines = [sentence(rng, chinese=i % 4 == 0)[0] for i in range(40)]
    return (
        lines
        + ["INVOICE", "Issued:", "Amount:", "Vendor:", "EUR", "2024", *MONTHS, *ORGS] * 5
        + [f"NO{i}" for i in range(100, 1000, 7)]
    )


# training a tiny model on 2 shared cores takes a while
wait_job = functools.partial(client_wait_job, timeout=240.0)
