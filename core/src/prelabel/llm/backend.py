"""LLMBackend: the Backend every OpenAI-compatible plugin subclasses.

A plugin declares its id, port, title and a :class:`~prelabel.llm.settings.LLMSettings`
subclass; this class does the rest: supported controls, prompts, concurrent calls through
the engine, mapping answers to regions, and one actionable error per failed task.

It is trainable: a training job builds a few-shot version from the project's annotations
(:mod:`prelabel.llm.fit`), and a project that has one gets, per task, the most similar
annotated examples in its prompt (:mod:`prelabel.llm.fewshot`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from prelabel.backend import Backend, PredictContext, Prediction, Task, TaskError
from prelabel.labelconfig import ControlInfo, ParsedConfig
from prelabel.llm import errors
from prelabel.llm.answer import extract_json, to_regions
from prelabel.llm.engine import LLMEngine, require_openai
from prelabel.llm.prompt import DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPLATES, PROMPT_FORMAT, build_messages
from prelabel.llm.schema import CONTROL_TAGS, OBJECT_TAGS, TaskSpec, can_fill, task_spec
from prelabel.llm.settings import LLMSettings
from prelabel.settings import CoreSettings
from prelabel.usage import record_usage

if TYPE_CHECKING:
    from prelabel.jobs import JobContext
    from prelabel.llm.engine import Outcome
    from prelabel.llm.fewshot import Example, ExampleIndex
    from prelabel.state import ProjectState

PROMPT_STATE_KEY = "llm_prompt"
FEWSHOT_CACHE = 8  # few-shot versions kept loaded per process (one per project)


@dataclass
class Labeled:
    """One task's answer: regions, what was dropped from it, the call's outcome, its score."""

    result: list[dict]
    problems: list[str]
    outcome: Outcome
    score: float | None


class LLMBackend(Backend):
    """Choices, Labels (spans), TextArea, Rating, Number and Taxonomy on Text, by an LLM."""

    supports: ClassVar[dict[str, frozenset[str]]] = {tag: OBJECT_TAGS for tag in CONTROL_TAGS}
    # one batch per request: concurrency comes from the engine's semaphore (MAX_CONCURRENT)
    max_batch_size: ClassVar[int] = 10_000
    trainable: ClassVar[bool] = True
    Settings: ClassVar[type[LLMSettings]] = LLMSettings
    settings: LLMSettings

    @classmethod
    def preflight(cls, settings: LLMSettings, core: CoreSettings) -> None:
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def setup(self, device: str | None) -> None:
        require_openai()
        registry = self.metrics.registry if getattr(self, "metrics", None) is not None else None
        self.engine = LLMEngine(self.settings, registry)
        self.engine.prepare()
        self._fewshot: OrderedDict[str, ExampleIndex] = OrderedDict()
        self._fewshot_lock = threading.Lock()

    def version_inputs(self) -> list[Any]:
        """What determines the answers besides the task: the model id and the prompts (few-shot
        examples go here too). A change gives a new model_version, so Label Studio predicts
        again; nothing else changes it."""
        s = self.settings
        return [
            s.model,
            s.llm_prompt or "",
            s.llm_system_prompt or DEFAULT_SYSTEM_PROMPT,
            DEFAULT_TEMPLATES,
            PROMPT_FORMAT,
        ]

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
        return self.stored_prompt(ctx.state), []

    def stored_prompt(self, state: ProjectState) -> str | None:
        """The project's last interactive prompt, else LLM_PROMPT."""
        return state.get(PROMPT_STATE_KEY) or self.settings.llm_prompt

    # -- few-shot versions --------------------------------------------------------------------
    def fewshot_index(self, model_dir: Path | None) -> ExampleIndex | None:
        """The examples of a trained version (loaded once per process), None for zero-shot."""
        from prelabel.llm.fewshot import DIRNAME, ExampleIndex

        if model_dir is None or not (model_dir / DIRNAME).is_dir():
            return None
        key = str(model_dir)
        with self._fewshot_lock:
            if key in self._fewshot:
                self._fewshot.move_to_end(key)
                return self._fewshot[key]
        index = ExampleIndex.load(model_dir / DIRNAME)
        with self._fewshot_lock:
            self._fewshot[key] = index
            while len(self._fewshot) > FEWSHOT_CACHE:
                self._fewshot.popitem(last=False)
        return index

    async def label(
        self,
        spec: TaskSpec,
        data: dict[str, Any],
        instruction: str | None,
        neighbours: list[tuple[Example, float]] | None = None,
    ) -> Labeled:
        """Ask for one task's answer (with ``neighbours`` as few-shot examples) and map it to
        regions; raises LLMError. Used by predict and by the training job's evaluation."""
        from prelabel.llm.fewshot import render_examples
        from prelabel.llm.scores import prediction_score

        texts = {o.name: str(data.get(o.data_key or "")) for o in spec.objects}
        block = render_examples(spec, [e for e, _ in neighbours]) if neighbours else None
        messages = build_messages(spec, data, instruction, self.settings.llm_system_prompt, block)
        outcome = await self.engine.ask(messages, spec.schema, extract_json)
        u = outcome.usage
        record_usage(
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            reasoning_tokens=u.reasoning_tokens,
            calls=outcome.attempts,
            cached=outcome.cached,
        )
        result, problems = to_regions(spec, outcome.value, texts)
        return Labeled(result, problems, outcome, prediction_score(spec, result, outcome.logprobs, neighbours))

    # -- predict ------------------------------------------------------------------------------
    async def predict(self, tasks: list[Task], ctx: PredictContext) -> list[Prediction | TaskError]:
        spec = task_spec(ctx.config, self.supported_controls(ctx.config))
        instruction, echo = self.instruction(spec, ctx)
        index = await asyncio.to_thread(self.fewshot_index, ctx.model_dir) if ctx.model_dir is not None else None
        # return_exceptions: an unexpected error stays that task's error; the others are kept
        return list(
            await asyncio.gather(
                *(self.predict_task(t, spec, instruction, echo, ctx, index) for t in tasks), return_exceptions=True
            )
        )

    async def predict_task(
        self,
        task: Task,
        spec: TaskSpec,
        instruction: str | None,
        echo: list[dict],
        ctx: PredictContext,
        index: ExampleIndex | None = None,
    ) -> Prediction | TaskError:
        texts = {o.name: task.data.get(o.data_key or "") for o in spec.objects}
        empty = [o.data_key for o in spec.objects if texts[o.name] is None or not str(texts[o.name]).strip()]
        if empty:
            return TaskError(
                f"task {task.id}: no text to label: data field(s) {', '.join(map(repr, empty))} are "
                f"empty (the label config reads {[o.value for o in spec.objects]}; the task has "
                f"{sorted(task.data)})"
            )
        neighbours = None
        if index is not None:
            s = self.settings
            neighbours = index.select(
                spec,
                "\n".join(str(task.data.get(o.data_key or "")) for o in spec.objects),
                s.llm_fewshot_max_examples,
                s.llm_fewshot_token_budget,
            )
        try:
            labeled = await self.label(spec, task.data, instruction, neighbours)
        except errors.LLMError as exc:
            return exc
        result, problems, outcome = labeled.result, labeled.problems, labeled.outcome
        for problem in problems:
            ctx.log.warning("task %s: dropped from the answer: %s", task.id, problem)
        u = outcome.usage
        ctx.log.info(
            "task %s: %s, %d regions, %d examples, tokens prompt=%d completion=%d (reasoning %d) total=%d%s",
            task.id,
            self.settings.model,
            len(result),
            len(neighbours or []),
            u.prompt_tokens,
            u.completion_tokens,
            u.reasoning_tokens,
            u.total_tokens,
            " (cached)" if outcome.cached else "",
            extra={
                "task_id": task.id,
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "reasoning_tokens": u.reasoning_tokens,
                "cached": outcome.cached,
            },
        )
        return Prediction(
            result=[*result, *[{k: v for k, v in r.items() if k != "id"} for r in echo]], score=labeled.score
        )

    # -- training -------------------------------------------------------------------------------
    def fit(self, job: JobContext) -> dict[str, Any]:
        """A few-shot version from the project's annotations, promoted only when it labels
        held-out tasks at least as well as zero-shot (see :mod:`prelabel.llm.fit`)."""
        from prelabel.llm.fit import fit

        return fit(self, job)

    # -- prelabel doctor ------------------------------------------------------------------------
    @classmethod
    def doctor(cls, settings: LLMSettings, core: CoreSettings) -> list[tuple[str, bool, str]]:
        """``prelabel doctor``: the model is offered (GET /models) and one real labeling call
        with the parameters the backend sends succeeds (see :mod:`prelabel.llm.doctor`)."""
        from prelabel.llm.doctor import run_checks

        return run_checks(settings)
