"""``prelabel predict``: pre-annotate a whole project from the command line, with progress."""

from __future__ import annotations

import threading
import time

import click

from prelabel.jobs import CANCELLED, FAILED, JobConflict, execute


@click.command("predict")
@click.argument("backend")
@click.option("--project", "project_id", type=int, required=True, help="Label Studio project id.")
@click.option("--only-unlabeled", is_flag=True, help="Skip tasks that already have annotations.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Tasks per model call and upload.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Predict a sample only, store nothing, and estimate the calls and tokens of the whole project (LLM backends).",
)
@click.option("--sample", type=click.IntRange(1, 1000), default=20, show_default=True, help="Tasks a dry run predicts.")
def predict_command(
    backend: str, project_id: int, only_unlabeled: bool, batch_size: int | None, dry_run: bool, sample: int
) -> None:
    """Pre-annotate every task of a Label Studio project with BACKEND.

    Needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY. Resumable: tasks that already have a
    prediction of the current model version are skipped. Ctrl-C stops after the current batch.
    With --dry-run, only --sample tasks are predicted and nothing is stored.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from prelabel.cli.common import load_settings, resolve_backend
    from prelabel.logsetup import configure_logging
    from prelabel.runtime import Runtime

    backend_class = resolve_backend(backend)
    core, settings = load_settings(backend_class)
    configure_logging("WARNING" if core.log_level.upper() == "INFO" else core.log_level, "text")
    console = Console(stderr=True)
    if not core.label_studio_url or not core.label_studio_api_key:
        raise click.ClickException("set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (a personal access token)")
    runtime = Runtime(backend_class, core, settings)
    console.print(f"loading {backend_class.backend_id}...")
    runtime.start()
    params = {
        "only_unlabeled": only_unlabeled,
        "batch_size": batch_size,
        **({"dry_run": True, "sample": sample} if dry_run else {}),
    }
    try:
        job = runtime.runner.create("predict", str(project_id), params, exclusive=True)
    except JobConflict as exc:
        raise click.ClickException(str(exc)) from None
    worker = threading.Thread(target=execute, args=(job.id, runtime), name="prelabel-predict", daemon=True)
    worker.start()
    cancelled = False
    columns = (
        TextColumn("[bold]project {task.fields[project]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as bar:
        row = bar.add_task("starting", total=1.0, project=project_id)
        while worker.is_alive():
            try:
                worker.join(0.25)
            except KeyboardInterrupt:
                if cancelled:
                    raise
                cancelled = True
                runtime.runner.cancel(job.id)
                console.print("cancelling after the current batch (Ctrl-C again to abort now)...")
            current = runtime.jobs.get(job.id)
            bar.update(row, completed=current.progress, description=current.message)
    job = runtime.jobs.get(job.id)
    runtime.close()
    result = job.result or {}
    if job.status == FAILED:
        raise click.ClickException(f"prediction job failed: {job.error}")
    summary = ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int))
    console.print(
        f"{job.status}: {summary or job.message} (model version {result.get('model_version', '?')}, "
        f"{(job.finished_at or time.time()) - (job.started_at or job.created_at):.1f}s)"
    )
    for key, what in (("usage", "used"), ("estimate", f"estimate for {result.get('to_predict')} tasks")):
        if result.get(key):
            u = result[key]
            console.print(
                f"{what}: {u['calls']} calls, {u['prompt_tokens']} prompt + {u['completion_tokens']} completion tokens"
            )
    for failure in result.get("failures", [])[:20]:
        console.print(f"  task {failure['task']}: {failure['error']}")
    if job.status == CANCELLED:
        raise SystemExit(130)
