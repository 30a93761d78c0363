"""Talking to Label Studio's API with label-studio-sdk (training data, bulk predictions)."""

from __future__ import annotations

import json
from typing import Any


class LabelStudioUnavailable(RuntimeError):
    """Label Studio's URL or token is unknown, so the API cannot be used."""


def connect(url: str | None, token: str | None, timeout: float = 60.0, max_bytes: int = 1024**3) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client; PATs are refreshed by the sdk itself.
    Responses are bounded after decoding (a compressed bomb from a host /setup named must not
    exhaust memory); httpx drops the Authorization header on a redirect to another host."""
    if not url:
        raise LabelStudioUnavailable("the Label Studio URL is unknown: set LABEL_STUDIO_URL")
    if not token:
        raise LabelStudioUnavailable("no Label Studio token: set LABEL_STUDIO_API_KEY (a personal access token)")
    from label_studio_sdk.client import LabelStudio

    from prelabel.boundedhttp import bounded_client

    client = bounded_client(
        max_bytes, timeout=timeout, follow_redirects=True, event_hooks={"response": [_refuse_redirect_off_host]}
    )
    return LabelStudio(base_url=url.rstrip("/"), api_key=token, timeout=timeout, httpx_client=client)


def _refuse_redirect_off_host(response: Any) -> None:
    """httpx drops the Authorization header on a redirect to another host, but a 307/308
    re-sends the body, and the token refresh carries the personal access token in its body:
    a redirect off the Label Studio host is refused before it is followed."""
    if not response.is_redirect:
        return
    from prelabel.lsauth import origin

    target = response.request.url.join(response.headers.get("location", ""))
    if origin(str(target)) != origin(str(response.request.url)):
        raise LabelStudioUnavailable(
            f"Label Studio at {response.request.url.host} redirected to another host ({target.host}); refused: "
            "set LABEL_STUDIO_URL to the address Label Studio answers on"
        )


def annotated_tasks(client: Any, project_id: int | str) -> list[dict]:
    """Every task of the project that has at least one annotation, in export (JSON) format."""
    chunks = client.projects.exports.download_sync(int(project_id), export_type="JSON", download_all_tasks=False)
    raw = b"".join(chunks)
    tasks = json.loads(raw or b"[]")
    return [t for t in tasks if t.get("annotations")]


def usable_annotations(task: dict) -> list[dict]:
    """The task's annotations that count for training: not cancelled, with a result.
    Ground-truth annotations come first."""
    anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result")]
    return sorted(anns, key=lambda a: not a.get("ground_truth", False))
