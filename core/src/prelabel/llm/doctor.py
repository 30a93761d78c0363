"""``prelabel doctor`` for LLM backends: is the configured model offered, and does one real
labeling call with the backend's actual parameters work?"""

from __future__ import annotations

import asyncio
import time

from prelabel.labelconfig import parse_label_config
from prelabel.llm import errors
from prelabel.llm.answer import extract_json, to_regions
from prelabel.llm.engine import LLMEngine, require_openai
from prelabel.llm.prompt import build_messages
from prelabel.llm.schema import task_spec
from prelabel.llm.settings import LLMSettings

CHECK_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""
CHECK_TEXT = "I love this product: it works perfectly and arrived a day early."


def _offered(models: list[str], settings: LLMSettings) -> tuple[bool, str]:
    var, model = settings.env_name("model"), settings.model
    shown = ", ".join(models[:30]) + (f" (and {len(models) - 30} more)" if len(models) > 30 else "")
    if model in models:
        return True, f"{model} is offered at {settings.base_url} ({len(models)} models)"
    return False, (
        f"{var}={model!r} is not offered at {settings.base_url} (retired, misspelt, or not enabled for "
        f"this key); models on offer: {shown or 'none'}: set {var} to one of them"
    )


async def _label(engine: LLMEngine) -> str:
    config = parse_label_config(CHECK_CONFIG)
    spec = task_spec(config)
    messages = build_messages(spec, {"text": CHECK_TEXT}, engine.settings.llm_prompt, engine.settings.llm_system_prompt)
    started = time.perf_counter()
    outcome = await engine.ask(messages, spec.schema, extract_json)
    seconds = time.perf_counter() - started
    result, problems = to_regions(spec, outcome.value, {"text": CHECK_TEXT})
    u = outcome.usage
    how = (
        f"response_format {engine.response_format}, thinking {'on' if engine.thinking else 'off'}, "
        f"tokens {u.prompt_tokens}+{u.completion_tokens} (reasoning {u.reasoning_tokens}), "
        f"{seconds * 1000:.0f} ms"
    )
    if not result:
        why = "; ".join(problems) or f"the answer {outcome.value!r} fills no control"
        raise errors.LLMError(
            f"{engine.settings.model} answered a sentiment task without a usable label ({why}; {how})", "malformed"
        )
    return f"{engine.settings.model} labeled a sentiment task {result[0]['value']['choices']} ({how})"


def run_checks(settings: LLMSettings) -> list[tuple[str, bool, str]]:
    """Rows for the doctor table: ``model`` (GET /models) and ``labeling call``."""
    try:
        require_openai()
    except ImportError as exc:
        return [("openai SDK", False, str(exc))]
    engine = LLMEngine(settings)

    async def checks() -> list[tuple[str, bool, str]]:
        rows: list[tuple[str, bool, str]] = []
        try:
            try:
                rows.append(("model", *_offered(await engine.list_models(), settings)))
            except errors.LLMError as exc:
                if exc.kind != "not_found":  # a server without GET /models: the call below tells
                    return [("model", False, str(exc))]
                rows.append(
                    (
                        "model",
                        True,
                        f"{settings.base_url} has no model list (GET /models: 404); the labeling call checks the model",
                    )
                )
            if not rows[-1][1]:
                return rows
            try:
                rows.append(("labeling call", True, await _label(engine)))
            except errors.LLMError as exc:
                rows.append(("labeling call", False, str(exc)))
            return rows
        finally:
            await engine.aclose()

    return asyncio.run(checks())
