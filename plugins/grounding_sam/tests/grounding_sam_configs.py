"""Label configs the grounding_sam backend is used with."""

BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car" predicted_values="truck,red car"/>
    <Label value="Person" hint="pedestrian"/>
  </RectangleLabels>
</View>"""

BOXES_AND_MASKS = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Car" predicted_values="truck"/>
    <Label value="Person"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Car" predicted_values="truck"/>
    <Label value="Person"/>
  </BrushLabels>
</View>"""

POLYGONS = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="poly" toName="image">
    <Label value="Car"/>
    <Label value="Person"/>
  </PolygonLabels>
</View>"""

# seed 002's interactive config: a typed prompt, masks labelled athlete/referee
PROMPT_BRUSH = """<View>
  <Image name="image" value="$image"/>
  <TextArea name="prompt" toName="image" editable="true" rows="2" showSubmitButton="true"/>
  <BrushLabels name="label" toName="image">
    <Label value="athlete" background="red"/>
    <Label value="referee" background="blue"/>
  </BrushLabels>
</View>"""
