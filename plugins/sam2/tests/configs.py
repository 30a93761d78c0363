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
