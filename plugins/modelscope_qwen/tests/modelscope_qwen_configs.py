"""Label configs the modelscope_qwen tests share (the seed project's, and a classification)."""

CLASSIFICATION = """<View>
  <Text name="text" value="$text"/>
  <Choices name="category" toName="text">
    <Choice value="技术文档"/>
    <Choice value="业务需求"/>
    <Choice value="错误报告"/>
  </Choices>
</View>"""


def textarea_config(obj: str, control: str, placeholder: str) -> str:
    return (
        f'<View>\n  <Text name="{obj}" value="${obj}"/>\n'
        f'  <TextArea name="{control}" toName="{obj}" placeholder="{placeholder}"/>\n</View>'
    )


CODE_COMMENT = textarea_config("code", "comment", "为代码添加注释...")
TEXT_ANALYSIS = textarea_config("text", "analysis", "分析文本内容...")
TECH_QA = textarea_config("question", "answer", "提供技术解答...")
ERROR_LOG = textarea_config("error_log", "solution", "错误分析和解决方案...")
