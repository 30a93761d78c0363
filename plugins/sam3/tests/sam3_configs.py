"""Label configs the sam3 backend fills."""

# every label is a prompt: its value, its predicted_values synonyms, or its hint for a coded name
MASKS = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Car" predicted_values="truck,automobile"/>
    <Label value="Person"/>
    <Label value="cls_3" hint="traffic light"/>
  </BrushLabels>
</View>"""

POLYGONS = MASKS.replace("BrushLabels", "PolygonLabels").replace('name="mask"', 'name="poly"')

BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" model_score_threshold="0.99">
    <Label value="Car"/>
    <Label value="Person"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image" model_score_threshold="0.2">
    <Label value="Car"/>
    <Label value="Person" prompt="pedestrian"/>
  </BrushLabels>
</View>"""

# upstream's SAM image config, as the browser capture used it (names tag, tag2, tag3)
SMART = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="defect" background="#FF0000"/>
  </BrushLabels>
  <KeyPointLabels name="tag2" toName="image" smart="true">
    <Label value="defect" smart="true" background="#000000" showInline="true"/>
  </KeyPointLabels>
  <RectangleLabels name="tag3" toName="image" smart="true">
    <Label value="defect" background="#000000" showInline="true"/>
  </RectangleLabels>
</View>"""

SMART_BOXES_ONLY = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" smart="true">
    <Label value="Car"/>
    <Label value="Person"/>
  </RectangleLabels>
</View>"""

VIDEO = """<View>
  <Labels name="videoLabels" toName="video">
    <Label value="Car"/>
    <Label value="Person"/>
  </Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video" max_frames_to_track="2"/>
</View>"""
