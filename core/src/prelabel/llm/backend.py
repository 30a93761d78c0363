"""LLMBackend: the Backend every OpenAI-compatible plugin subclasses.

A plugin declares its id, port, title and a :class:`~prelabel.llm.settings.LLMSettings`
subclass; this class does the rest: supported controls, prompts, concurrent calls through
the engine, mapping answers to regions, and one actionable error per failed task.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, ClassVar

from prelabel.backend import Backend, PredictContext, Prediction, Task, TaskError
from prelabel.labelconfig import ControlInfo, ParsedConfig
from prelabel.llm import errors
from prelabel.llm.answer import extract_json, to_regions
from prelabel.llm.engine import LLMEngine, require_openai
from prelabel.llm.prompt import DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPLATES, PROMPT_FORMAT, build_messages
from prelabel.llm.schema import CONTROL_TAGS, OBJECT_TAGS, TaskSpec, can_fill, task_spec
from prelabel.llm.settings import LLMSettings
from prelabel.settings import CoreSettings

PROMPT_STATE_KEY = "llm_prompt"


class LLMBackend(Backend):
    """Choices, Labels (spans), TextArea, Rating, Number and Taxonomy on Text, by an LLM."""

    supports: ClassVar[dict[str, frozenset[str]]] = {tag: OBJECT_TAGS for tag in CONTROL_TAGS}
    # one batch per request: concurrency comes from the engine's semaphore (MAX_CONCURRENT)
    max_batch_size: ClassVar[int] = 10_000
    Settings: ClassVar[type[LLMSettings]] = LLMSettings
    settings: LLMSettings

    @classmethod
    def preflight(cls, settings: LLMSettings, core: CoreSettings) -> None:  # noqa: ARG003
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def setup(self, device: str | None) -> None:
        require_openai()
        registry = self.metrics.registry if getattr(self, "metrics", None) is not None else None
        self.engine = LLMEngine(self.settings, registry)
        self.engine.prepare()

    def version_inputs(self) -> list[Any]:
        """What determines the answers besides the task: the model id and the prompts (few-shot
        examples go here too). A change gives a new model_version, so Label Studio predicts
        again; nothing else changes it."""
        s = self.settings
        return [s.model, s.llm_prompt or "", s.llm_system_prompt or DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPLATES,
                PROMPT_FORMAT]

    def model_version(self) -> str:
        """``<model id>-<8 hex digits of version_inputs()>``: stable across restarts and replicas."""
        blob = json.dumps(self.version_inputs(), sort_keys=True, ensure_ascii=False)
        return f"{self.settings.model}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

    def health(self) -> dict[str, Any]:
        """The model id, and how it is called: the response format in use (after any
        step-down), whether it thinks, parameter fixes learned from its 400s."""
        engine = getattr(self, "engine", None)
        return {"model": self.settings.model, **(engine.describe_health() if engine is not None else {})}

    def supported_controls(self, config: ParsedConfig) -> list[ControlInfo]:
        return [c for c in config.controls if can_fill(c)]

    # -- prompts ------------------------------------------------------------------------------
    def instruction(self, spec: TaskSpec, ctx: PredictContext) -> tuple[str | None, list[dict]]:
        """The task instruction and, for an interactive call, the prompt regions to echo back.

        An interactive prompt (text typed in a ``prompt`` TextArea) wins and becomes the
        project's prompt for later batch predictions; then the project's stored prompt; then
        LLM_PROMPT."""
        names = {c.name for c in spec.prompt_inputs}
        typed = [r for r in ctx.context_regions("textarea") if r.get("from_name") in names]
        text = "\n".join(t for r in typed for t in (r.get("value") or {}).get("text") or [] if str(t).strip())
        if text:
            if ctx.state.get(PROMPT_STATE_KEY) != text:
                ctx.state.set(PROMPT_STATE_KEY, text)
            return text, typed
        return ctx.state.get(PROMPT_STATE_KEY) or self.settings.llm_prompt, []

    # -- predict ------------------------------------------------------------------------------
    async def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError]:
        spec = task_spec(ctx.config, self.supported_controls(ctx.config))
        instruction, echo = self.instruction(spec, ctx)
        # return_exceptions: an unexpected error stays that task's error; the others are kept
        return list(await asyncio.gather(*(self.predict_task(t, spec, instruction, echo, ctx) for t in tasks),
                                         return_exceptions=True))

    async def predict_task(self, task: Task, spec: TaskSpec, instruction: str | None, echo: list[dict],
                           ctx: PredictContext) -> Prediction | TaskError:
        texts = {o.name: task.data.get(o.data_key or "") for o in spec.objects}
        empty = [o.data_key for o in spec.objects if texts[o.name] is None or not str(texts[o.name]).strip()]
        if empty:
            return TaskError(f"task {task.id}: no text to label: data field(s) {', '.join(map(repr, empty))} are "
                             f"empty (the label config reads {[o.value for o in spec.objects]}; the task has "
                             f"{sorted(task.data)})")
        texts = {k: str(v) for k, v in texts.items()}
        messages = build_messages(spec, task.data, instruction, self.settings.llm_system_prompt)
        try:
            outcome = await self.engine.ask(messages, spec.schema, extract_json)
        except errors.LLMError as exc:
            return exc
        result, problems = to_regions(spec, outcome.value, texts)
        for problem in problems:
            ctx.log.warning("task %s: dropped from the answer: %s", task.id, problem)
        u = outcome.usage
        ctx.log.info("task %s: %s, %d regions, tokens prompt=%d completion=%d (reasoning %d) total=%d%s", task.id,
                     self.settings.model, len(result), u.prompt_tokens, u.completion_tokens, u.reasoning_tokens,
                     u.total_tokens, " (cached)" if outcome.cached else "",
                     extra={"task_id": task.id, "prompt_tokens": u.prompt_tokens,
                            "completion_tokens": u.completion_tokens, "reasoning_tokens": u.reasoning_tokens,
                            "cached": outcome.cached})
        return Prediction(result=[*result, *[{k: v for k, v in r.items() if k != "id"} for r in echo]])

    # -- prelabel doctor ------------------------------------------------------------------------
    @classmethod
    def doctor(cls, settings: LLMSettings, core: CoreSettings) -> list[tuple[str, bool, str]]:  # noqa: ARG003
        """``prelabel doctor``: the model is offered (GET /models) and one real labeling call
        with the parameters the backend sends succeeds (see :mod:`prelabel.llm.doctor`)."""
        from prelabel.llm.doctor import run_checks

        return run_checks(settings)
