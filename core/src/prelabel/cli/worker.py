"""``prelabel worker``: run training and prediction jobs from the Redis queue (RQ)."""

from __future__ import annotations

import click


@click.command("worker")
@click.argument("backend")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty (for tests and batch runs).")
def worker_command(backend: str, burst: bool) -> None:
    """Run BACKEND's jobs from the Redis queue. Needs REDIS_URL; the model loads once."""
    from prelabel.cli.common import load_settings, resolve_backend
    from prelabel.jobs.rq import work
    from prelabel.logsetup import configure_logging
    from prelabel.runtime import Runtime

    backend_class = resolve_backend(backend)
    core, settings = load_settings(backend_class)
    if not core.redis_url:
        raise click.ClickException("prelabel worker needs REDIS_URL (jobs are taken from a Redis queue)")
    configure_logging(core.log_level, core.log_format)
    runtime = Runtime(backend_class, core, settings, runner="rq")
    runtime.start()
    try:
        work(runtime, burst=burst)
    finally:
        runtime.close()
