"""Label Studio annotations -> UIE examples, text and document (no model needed)."""

from prelabel_uie_x.converter import (
    chars_inside,
    count_spans,
    document_examples,
    rectangle_pixels,
    split_by_task,
    text_examples,
)
from prelabel_uie_x.ocr import Segment, char_boxes, content, reading_order, span_box
from uie_x_corpus import DOC_CONFIG, NER_CONFIG, ner_task

from prelabel import parse_label_config

NER = parse_label_config(NER_CONFIG).controls[0]
BOXES = parse_label_config(DOC_CONFIG).first({"RectangleLabels"})


def test_text_spans_become_one_example_per_label_with_negatives():
    task = ner_task(1, "张三在北京工作。", [(0, 2, "Person"), (3, 5, "Location")])
    examples = {e["prompt"]: e for e in text_examples(task, NER)}
    assert examples["Person"]["result_list"] == [{"text": "张三", "start": 0, "end": 2}]
    assert examples["Location"]["result_list"] == [{"text": "北京", "start": 3, "end": 5}]
    assert examples["Organization"]["result_list"] == []  # a negative example
    assert all(e["content"] == "张三在北京工作。" and e["task_id"] == 1 for e in examples.values())


def test_the_first_annotation_counts_unknown_labels_and_bad_offsets_dropped():
    # the annotations as job.annotations() hands them: usable ones only, ground truth first
    text = "Alice met Bruno in Paris."
    task = ner_task(2, text, [(0, 5, "Person")])
    good = task["annotations"][0]
    truth = {
        "ground_truth": True,
        "result": [
            {
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": 10, "end": 15, "text": "Bruno", "labels": ["Person"]},
            },
            {
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": 19, "end": 24, "text": "Paris", "labels": ["City"]},
            },  # not a label of the config
            {
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": 19, "end": 99, "labels": ["Location"]},
            },  # outside the text
            {
                "from_name": "other",
                "to_name": "text",
                "type": "labels",
                "value": {"start": 0, "end": 5, "labels": ["Person"]},
            },
        ],
    }
    task["annotations"] = [truth, good]
    examples = {e["prompt"]: e["result_list"] for e in text_examples(task, NER)}
    assert examples == {"Person": [{"text": "Bruno", "start": 10, "end": 15}], "Location": [], "Organization": []}


def test_unannotated_or_textless_tasks_give_nothing():
    assert text_examples({"id": 3, "data": {"text": "x"}, "annotations": []}, NER) == []
    assert (
        text_examples(
            {
                "id": 4,
                "data": {"text": ""},
                "annotations": [
                    {"result": [{"from_name": "label", "value": {"start": 0, "end": 1, "labels": ["Person"]}}]}
                ],
            },
            NER,
        )
        == []
    )


SEGMENTS = [
    Segment(10, 10, 110, 30, "INVOICE"),
    Segment(200, 10, 260, 30, "NO123"),
    Segment(10, 60, 90, 80, "Issued:"),
    Segment(200, 60, 320, 80, "Jan 12, 2024"),
]


def box_task(boxes: dict[str, tuple[float, float, float, float]], width=400, height=100) -> dict:
    result = [
        {
            "id": f"r{i}",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": width,
            "original_height": height,
            "value": {
                "x": 100 * x1 / width,
                "y": 100 * y1 / height,
                "width": 100 * (x2 - x1) / width,
                "height": 100 * (y2 - y1) / height,
                "rotation": 0,
                "rectanglelabels": [label],
            },
        }
        for i, (label, (x1, y1, x2, y2)) in enumerate(boxes.items())
    ]
    return {"id": 9, "data": {"image": "/data/upload/9/inv.png"}, "annotations": [{"result": result}]}


def test_a_box_selects_the_ocr_characters_inside_it():
    task = box_task({"Date": (195, 55, 325, 85)})
    examples = {e["prompt"]: e for e in document_examples(task, BOXES, SEGMENTS, 400, 100, "images/9.jpg")}
    text = content(SEGMENTS)
    assert examples["Date"]["result_list"] == [{"text": "Jan 12, 2024", "start": text.index("Jan"), "end": len(text)}]
    assert examples["Total"]["result_list"] == []
    date = examples["Date"]
    assert date["layout"][0] == [[10, 10, 110, 30], "INVOICE"] and date["image_size"] == [400, 100]
    assert date["image"] == "images/9.jpg" and date["content"] == text


def test_a_box_over_part_of_a_line_takes_the_characters_whose_centres_it_holds():
    # "INVOICE" is 100 px wide, ~14.3 px per character: x 10-55 holds the centres of I, N, V (17, 31, 46)
    task = box_task({"Total": (10, 5, 55, 35)})
    (total,) = [e for e in document_examples(task, BOXES, SEGMENTS, 400, 100, "p") if e["prompt"] == "Total"]
    assert total["result_list"] == [{"text": "INV", "start": 0, "end": 3}]


def test_documents_without_text_or_annotations_give_nothing():
    assert document_examples(box_task({"Date": (0, 0, 10, 10)}), BOXES, [], 400, 100, "p") == []
    unannotated = {"id": 1, "data": {}, "annotations": [{"result": [{"from_name": "transcription", "value": {}}]}]}
    assert document_examples(unannotated, BOXES, SEGMENTS, 400, 100, "p") == []


def test_geometry_helpers():
    assert rectangle_pixels({"x": 10, "y": 20, "width": 50, "height": 25}, 200, 400) == (20, 80, 120, 180)
    boxes = char_boxes([Segment(0, 0, 40, 10, "abcd")])
    assert boxes[1] == (10, 0, 20, 10)
    assert chars_inside(boxes, (12, 0, 38, 10)) == [(1, 4)]
    assert span_box(SEGMENTS, 0, 9) == (10, 10, 260 - 60 / 5 * 3, 30)
    shuffled = [SEGMENTS[3], SEGMENTS[1], SEGMENTS[2], SEGMENTS[0]]
    assert reading_order(shuffled) == SEGMENTS


def test_split_keeps_tasks_whole_and_is_deterministic():
    examples = [
        {"task_id": t, "prompt": p, "result_list": [{"start": 0, "end": 1}] if p == "A" else []}
        for t in range(10)
        for p in ("A", "B")
    ]
    train, dev = split_by_task(examples, 0.2, seed=0)
    assert len(dev) == 4 and len(train) == 16
    assert not {e["task_id"] for e in train} & {e["task_id"] for e in dev}
    assert split_by_task(examples, 0.2, seed=0) == (train, dev)
    assert split_by_task(examples[:6], 0.2, seed=0)[1] == []  # 3 tasks: too few to hold any out
    assert count_spans(examples) == {"A": 10}
