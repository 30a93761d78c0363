"""A library of label configs for tests, named by what they label."""

TEXT_CHOICES = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="neutral"/>
  </Choices>
</View>"""

TEXT_CHOICES_MULTIPLE = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="sports"/>
    <Choice value="politics"/>
    <Choice value="tech"/>
  </Choices>
</View>"""

TEXT_NER = """<View>
  <Labels name="label" toName="text">
    <Label value="Person" predicted_values="PER,person"/>
    <Label value="Organization" predicted_values="ORG"/>
    <Label value="Location" predicted_values="LOC,GPE"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""

TEXT_TEXTAREA = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="label" toName="text" editable="true"/>
</View>"""

IMAGE_RECTANGLES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="Car" predicted_values="car,truck"/>
    <Label value="Person" predicted_values="person"/>
  </RectangleLabels>
</View>"""

IMAGE_POLYGONS = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="label" toName="image">
    <Label value="Car"/>
    <Label value="Person"/>
  </PolygonLabels>
</View>"""

IMAGE_BRUSH = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="label" toName="image">
    <Label value="Car"/>
    <Label value="Person"/>
  </BrushLabels>
</View>"""

IMAGE_KEYPOINTS = """<View>
  <Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image">
    <Label value="nose"/>
    <Label value="left_eye"/>
  </KeyPointLabels>
</View>"""

IMAGE_CHOICES = """<View>
  <Image name="image" value="$image"/>
  <Choices name="class" toName="image">
    <Choice value="cat"/>
    <Choice value="dog"/>
  </Choices>
</View>"""

VIDEO_RECTANGLES = """<View>
  <Labels name="videoLabels" toName="video">
    <Label value="Car"/>
    <Label value="Person"/>
  </Labels>
  <Video name="video" value="$video"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""

AUDIO_RATING = """<View>
  <Audio name="audio" value="$audio"/>
  <Rating name="rating" toName="audio"/>
</View>"""

# Every control an LLM backend can fill, on one Text (not in ALL: no single backend fills it all)
TEXT_LLM_ALL_KINDS = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="pos" hint="praise"/><Choice value="neg"/></Choices>
  <Choices name="topics" toName="text" choice="multiple"><Choice value="a"/><Choice value="b"/></Choices>
  <Labels name="ner" toName="text"><Label value="Person" predicted_values="PER"/></Labels>
  <TextArea name="summary" toName="text" placeholder="one sentence"/>
  <TextArea name="prompt" toName="text"/>
  <Rating name="stars" toName="text" maxRating="10"/>
  <Number name="year" toName="text" min="1900" max="2100"/>
  <Taxonomy name="tax" toName="text">
    <Choice value="Animal"><Choice value="Cat"/><Choice value="Dog"/></Choice>
    <Choice value="Plant"/>
  </Taxonomy>
</View>"""

INVALID_XML = "<View><Text name='text' value='$text'/"

ALL = {
    "text_choices": TEXT_CHOICES,
    "text_choices_multiple": TEXT_CHOICES_MULTIPLE,
    "text_ner": TEXT_NER,
    "text_textarea": TEXT_TEXTAREA,
    "image_rectangles": IMAGE_RECTANGLES,
    "image_polygons": IMAGE_POLYGONS,
    "image_brush": IMAGE_BRUSH,
    "image_keypoints": IMAGE_KEYPOINTS,
    "image_choices": IMAGE_CHOICES,
    "video_rectangles": VIDEO_RECTANGLES,
    "audio_rating": AUDIO_RATING,
}


def annotated_text_tasks(label_config: str, texts: list[str]) -> list[dict]:
    """Export-format tasks of ``texts`` annotated for every Choices, Labels, TextArea and
    Rating control on a Text object of ``label_config`` (labels in turn; a span is the first
    word): training data for a conformance suite's ``training_tasks``."""
    from prelabel.labelconfig import parse_label_config

    config = parse_label_config(label_config)
    out = []
    for i, text in enumerate(texts):
        result = []
        for c in config.controls:
            obj = c.objects[0] if c.objects else None
            if obj is None or obj.tag != "Text" or c.name == "prompt":
                continue
            base = {"from_name": c.name, "to_name": obj.name, "type": c.type}
            if c.tag == "Choices" and c.labels:
                result.append({**base, "value": {"choices": [c.labels[i % len(c.labels)]]}})
            elif c.tag == "Labels" and c.labels:
                word = text.split()[0]
                result.append(
                    {
                        **base,
                        "value": {"start": 0, "end": len(word), "text": word, "labels": [c.labels[i % len(c.labels)]]},
                    }
                )
            elif c.tag == "TextArea":
                result.append({**base, "value": {"text": [f"about {text.split()[-1]}"]}})
            elif c.tag == "Rating":
                result.append({**base, "value": {"rating": 1 + i % 3}})
        out.append(
            {
                "id": i + 1,
                "data": {config.controls[0].objects[0].data_key: text},
                "annotations": [{"id": i + 1, "result": result}],
            }
        )
    return out
