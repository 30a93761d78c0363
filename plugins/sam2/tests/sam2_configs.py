"""Label configs the sam2 backend is used with."""

IMAGE_BRUSH = """<View>
  <Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image" smart="true">
    <Label value="Car" smart="true"/>
    <Label value="Person" smart="true"/>
  </KeyPointLabels>
  <RectangleLabels name="rect" toName="image" smart="true">
    <Label value="Car"/>
    <Label value="Person"/>
  </RectangleLabels>
  <BrushLabels name="label" toName="image">
    <Label value="Car"/>
    <Label value="Person"/>
  </BrushLabels>
</View>"""

IMAGE_POLYGON = IMAGE_BRUSH.replace("BrushLabels", "PolygonLabels")

# seed 002's config: the clicks are labelled positive/negative, the mask's label is its own
POSITIVE_NEGATIVE = """<View>
  <Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image">
    <Label value="positive" background="green"/>
    <Label value="negative" background="red"/>
  </KeyPointLabels>
  <RectangleLabels name="rect" toName="image">
    <Label value="box"/>
  </RectangleLabels>
  <BrushLabels name="label" toName="image">
    <Label value="athlete" background="red"/>
  </BrushLabels>
</View>"""

VIDEO = """<View>
  <Labels name="videoLabels" toName="video">
    <Label value="Car"/>
    <Label value="Person"/>
  </Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video" max_frames_to_track="3"/>
</View>"""

# upstream's SAM 2 image config (label-studio-ml-backend's segment_anything_2_image README),
# the one the labeling-UI bodies in prelabel/testing/data/ui/ were captured with
UPSTREAM_SAM2_IMAGE = """<View>
  <Image name="image" value="$image" zoom="true" zoomControl="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="defect" background="#FFA39E"/>
  </BrushLabels>
  <KeyPointLabels name="tag2" toName="image" smart="true">
    <Label value="defect" smart="true" background="#000000" showInline="true"/>
  </KeyPointLabels>
  <RectangleLabels name="tag3" toName="image" smart="true">
    <Label value="defect" background="#000000" showInline="true"/>
  </RectangleLabels>
</View>"""

# clicks labelled Foreground/Background: the UI sends a Background click alone
FOREGROUND_BACKGROUND = """<View>
  <Image name="image" value="$image"/>
  <KeyPointLabels name="tag2" toName="image" smart="true">
    <Label value="Foreground" smart="true"/>
    <Label value="Background" smart="true"/>
  </KeyPointLabels>
  <BrushLabels name="tag" toName="image">
    <Label value="defect"/>
  </BrushLabels>
</View>"""
