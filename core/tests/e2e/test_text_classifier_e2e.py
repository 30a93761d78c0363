"""text_classifier against a real Label Studio 1.23, as a user sees it.

One Label Studio for the session (conftest.py), one ``prelabel serve text_classifier``
process for this module (plus a second one with Basic auth). Everything is checked by reading
what Label Studio stored (``/api/predictions``, ``/api/ml/{id}``), not what its actions answer:
the retrieve action says "Retrieved N predictions" whatever happened.

Stages are module fixtures (connect -> retrieve untrained -> annotate + train -> retrieve
trained), so any single test can run alone and still builds the stages it needs.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

CONTROL = "sentiment"
LABEL_CONFIG = f"""
<View>
  <Text name="text" value="$text"/>
  <Choices name="{CONTROL}" toName="text" choice="single">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="neutral"/>
  </Choices>
</View>
"""
UNTRAINED = "text_classifier-untrained"
NO_RETRY = {"max_retries": 0}
RETRIEVE_ALL = {"all": True, "excluded": []}

# Classes told apart by their vocabulary (as plugins/text_classifier/tests/corpus.py, with three class words
# per text: offline, 30 seeds of this corpus all give 100% held-out accuracy, so the >= 0.8 bound has headroom).
VOCAB = {
    "positive": ["great", "wonderful", "love", "excellent", "happy", "delightful", "superb", "enjoyed"],
    "negative": ["awful", "terrible", "hate", "boring", "sad", "broken", "worst", "disappointing"],
    "neutral": ["average", "okay", "ordinary", "fine", "typical", "standard", "plain", "moderate"],
}
FILLER = ["the", "film", "service", "product", "was", "really", "quite", "today", "and", "it", "felt"]
N_TRAIN, N_HELDOUT = 24, 12
AUTH = ("mluser", "ml-pass-e2e")  # Basic auth of the second backend


def corpus(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    labels = list(VOCAB)
    out = []
    for i in range(n):
        label = labels[i % 3]
        words = rng.sample(FILLER, 4) + rng.sample(VOCAB[label], 3)
        rng.shuffle(words)
        out.append((" ".join(words), label))
    return out


def choice_result(label: str) -> list[dict]:
    return [{"from_name": CONTROL, "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def stored_predictions(sdk: Any, project_id: int) -> dict[int, list[Any]]:
    """Predictions Label Studio stored for the project, by task id."""
    by_task: dict[int, list[Any]] = defaultdict(list)
    for pred in sdk.predictions.list(project=project_id, request_options=NO_RETRY):
        by_task[pred.task].append(pred)
    return by_task


def retrieve(sdk: Any, project_id: int) -> None:
    """The Data Manager's "Retrieve predictions" on every task of the project."""
    sdk.actions.create(
        id="retrieve_tasks_predictions", project=project_id, selected_items=RETRIEVE_ALL, request_options=NO_RETRY
    )


def metric(backend: Any, name: str, **labels: str) -> float:
    """One sample of the backend's Prometheus /metrics (0 when absent)."""
    with backend.http() as http:
        text = http.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key.split("{")[0] != name:
            continue
        got = key.partition("{")[2].rstrip("}")
        if ",".join(sorted(got.split(","))) == want or (not labels and not got):
            return float(value)
    return 0.0


@dataclass
class Project:
    id: int
    tasks: dict[int, tuple[str, str]]  # task id -> (text, true label)
    train_ids: list[int] = field(default_factory=list)
    heldout_ids: list[int] = field(default_factory=list)


def create_project(sdk: Any, title: str, n_train: int, n_heldout: int, seed: int) -> Project:
    created = sdk.projects.create(title=title, label_config=LABEL_CONFIG, request_options=NO_RETRY)
    train, heldout = corpus(n_train, seed), corpus(n_heldout, seed + 1000)
    sdk.projects.import_tasks(
        id=created.id, request=[{"text": t} for t, _ in train + heldout], request_options=NO_RETRY
    )
    truth = dict(train + heldout)
    assert len(truth) == n_train + n_heldout, "corpus texts must be unique"
    project = Project(id=created.id, tasks={})
    train_texts = {t for t, _ in train}
    for task in sdk.tasks.list(project=created.id, page_size=1000):
        text = task.data["text"]
        project.tasks[task.id] = (text, truth[text])
        (project.train_ids if text in train_texts else project.heldout_ids).append(task.id)
    assert len(project.tasks) == n_train + n_heldout
    return project


# -- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ls(label_studio: Any) -> Any:
    return label_studio


@pytest.fixture(scope="module")
def sdk(ls: Any) -> Any:
    """A PAT-based label-studio-sdk client."""
    return ls.client("pat")


@pytest.fixture(scope="module")
def servers(ls: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both ``prelabel serve text_classifier`` processes of this module, launched side by side
    (each takes seconds to import scikit-learn):

    - ``plain``: LABEL_STUDIO_URL and a personal access token, as the README says;
    - ``auth``: Basic auth on, and no LABEL_STUDIO_* at all, so it trains with what /setup sent
      (hostname and the project creator's legacy token; the harness enables legacy tokens).
    """
    from prelabel.testing.harness.backendprocess import BackendProcess

    procs = {
        "plain": BackendProcess(
            "text_classifier",
            home=tmp_path_factory.mktemp("prelabel-home"),
            env={"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.personal_access_token()},
        ),
        "auth": BackendProcess(
            "text_classifier",
            home=tmp_path_factory.mktemp("prelabel-auth-home"),
            env={"BASIC_AUTH_USER": AUTH[0], "BASIC_AUTH_PASS": AUTH[1]},
        ),
    }
    try:
        for proc in procs.values():
            proc.launch()
        yield procs
    finally:
        codes = {name: proc.stop() for name, proc in procs.items()}
    assert set(codes.values()) <= {0, -15, None}, f"a backend did not stop cleanly: {codes}"


@pytest.fixture(scope="module")
def backend(servers: dict) -> Any:
    """``prelabel serve text_classifier`` as a real process, with the session LS's URL and PAT."""
    proc = servers["plain"].wait_ready(timeout=90)
    print(f"\ntext_classifier backend ready in {proc.startup_seconds:.1f} s on {proc.url}")
    return proc


@pytest.fixture(scope="module")
def project(sdk: Any) -> Any:
    created = create_project(sdk, "prelabel e2e: text_classifier", N_TRAIN, N_HELDOUT, seed=1)
    yield created
    sdk.projects.delete(id=created.id)


@pytest.fixture(scope="module")
def ml(sdk: Any, project: Project, backend: Any) -> Any:
    """The backend connected to the project (interactive pre-annotation on)."""
    return sdk.ml.create(
        project=project.id, url=backend.url, title="text_classifier e2e", is_interactive=True, request_options=NO_RETRY
    )


@pytest.fixture(scope="module")
def untrained_rounds(sdk: Any, project: Project, ml: Any) -> tuple[dict, dict]:
    """Predictions stored after one and after two "Retrieve predictions" before any training."""
    retrieve(sdk, project.id)
    first = stored_predictions(sdk, project.id)
    retrieve(sdk, project.id)
    return first, stored_predictions(sdk, project.id)


@dataclass
class Trained:
    job: dict
    version: str
    ml_after: Any
    first: dict
    second: dict
    train_seconds: float


@pytest.fixture(scope="module")
def trained(sdk: Any, project: Project, ml: Any, backend: Any, untrained_rounds: tuple) -> Trained:
    """Annotate the training tasks, press Train, wait for the job, retrieve predictions (twice)."""
    for tid in project.train_ids:
        sdk.annotations.create(id=tid, result=choice_result(project.tasks[tid][1]), request_options=NO_RETRY)
    pressed = time.time()
    sdk.ml.train(id=ml.id, request_options=NO_RETRY)  # LS sends START_TRAINING to /webhook
    job = backend.wait_new_job(project.id, "train", since=pressed - 1, timeout=120)
    train_seconds = time.time() - pressed
    assert job["status"] == "succeeded", job
    version = job["result"]["model_version"]
    ml_after = sdk.ml.get(id=ml.id, request_options=NO_RETRY)  # re-runs /setup
    retrieve(sdk, project.id)
    first = stored_predictions(sdk, project.id)
    retrieve(sdk, project.id)
    return Trained(job, version, ml_after, first, stored_predictions(sdk, project.id), train_seconds)


# -- 1. connection and retrieve --------------------------------------------------------------------------------------


def test_connect_is_healthy(sdk: Any, project: Project, ml: Any, backend: Any) -> None:
    assert ml.state == "CO", (ml.state, ml.error_message)
    fetched = sdk.ml.get(id=ml.id, request_options=NO_RETRY)
    assert fetched.state == "CO"
    assert fetched.model_version == UNTRAINED
    assert fetched.is_interactive is True
    listed = sdk.ml.list(project=project.id, request_options=NO_RETRY)
    assert [m.id for m in listed] == [ml.id]
    with backend.http() as http:
        assert http.get("/health").json()["status"] == "UP"
        setup = http.post("/setup", json={"project": str(project.id), "schema": LABEL_CONFIG}).json()
    assert setup["model_version"] == fetched.model_version
    # LS registered the project webhook (annotation events) on the backend
    hooks = sdk.webhooks.list(project=str(project.id), request_options=NO_RETRY)
    assert f"{backend.url}/webhook" in [h.url for h in hooks]


def test_an_untrained_model_leaves_no_empty_predictions(
    project: Project, backend: Any, untrained_rounds: tuple
) -> None:
    """Before training the classifier has nothing to say: Label Studio's calls reach it (twice
    per task, one Retrieve each) and it is given nothing to store, so no task gets an empty
    prediction tab and a later Retrieve predicts them again."""
    first, second = untrained_rounds
    assert not any(first.values()) and not any(second.values()), "an empty prediction was stored"
    assert metric(backend, "prelabel_tasks_total") >= 2 * len(project.tasks)


# -- 2. training ---------------------------------------------------------------------------------------------------


def test_train_creates_a_new_version(trained: Trained, backend: Any, project: Project) -> None:
    print(
        f"\ntraining job {trained.job['id']}: {trained.train_seconds:.1f} s from Train to done; "
        f"result {trained.job['result']}"
    )
    assert trained.version != UNTRAINED and trained.version.startswith("text_classifier-")
    assert trained.job["result"]["train_examples"] == N_TRAIN
    assert trained.ml_after.model_version == trained.version  # LS took the /setup version
    assert trained.ml_after.state == "CO"
    with backend.http() as http:
        assert str(project.id) in http.get("/health").json()["trained_projects"]


def test_label_studio_lists_the_model_versions(sdk: Any, ml: Any, trained: Trained) -> None:
    """``GET /api/ml/{id}/versions`` -> the backend's ``GET /versions`` (no project in the request)."""
    raw = sdk.ml.with_raw_response.list_model_versions(id=ml.id, request_options=NO_RETRY)
    versions = raw.response.json()["versions"]
    assert versions[0] == UNTRAINED and trained.version in versions, versions


def test_trained_predictions_are_stored_once_with_the_new_version(trained: Trained, project: Project) -> None:
    for tid in project.tasks:
        versions = Counter(p.model_version for p in trained.first[tid])
        assert versions == {trained.version: 1}, (tid, versions)  # and no empty one of the untrained model
        new = next(p for p in trained.first[tid] if p.model_version == trained.version)
        assert len(new.result) == 1 and new.result[0]["from_name"] == CONTROL
        assert 0 < new.score <= 1
    # a second retrieve with the same version adds nothing
    assert {t: [p.id for p in ps] for t, ps in trained.second.items()} == {
        t: [p.id for p in ps] for t, ps in trained.first.items()
    }


def test_predictions_readable_per_task(sdk: Any, project: Project, trained: Trained) -> None:
    """The same rows through ``GET /api/predictions?task=`` (what the brief's reader uses)."""
    tid = project.heldout_ids[0]
    preds = sdk.predictions.list(task=tid, request_options=NO_RETRY)
    assert [p.id for p in preds] == [p.id for p in trained.first[tid]]


def test_trained_predictions_are_right_on_held_out_texts(trained: Trained, project: Project) -> None:
    right = 0
    for tid in project.heldout_ids:
        pred = next(p for p in trained.first[tid] if p.model_version == trained.version)
        right += pred.result[0]["value"]["choices"] == [project.tasks[tid][1]]
    accuracy = right / len(project.heldout_ids)
    print(f"\nheld-out accuracy {accuracy:.2f} on {len(project.heldout_ids)} texts")
    assert accuracy >= 0.8


# -- 4. interactive pre-annotation ---------------------------------------------------------------------------------


def test_interactive_preannotation_returns_a_result(sdk: Any, ml: Any, project: Project, trained: Trained) -> None:
    tid = project.heldout_ids[1]
    before = len(sdk.predictions.list(task=tid, request_options=NO_RETRY))
    raw = sdk.ml.with_raw_response.predict_interactive(
        id=ml.id, task=tid, context={"result": choice_result("neutral")}, request_options=NO_RETRY
    )
    body = raw.response.json()
    assert "errors" not in body, body
    data = body["data"]
    assert data["model_version"] == trained.version
    assert len(data["result"]) == 1
    assert data["result"][0]["value"]["choices"] == [project.tasks[tid][1]]
    assert len(sdk.predictions.list(task=tid, request_options=NO_RETRY)) == before  # LS does not store it


# -- 3. media download from Label Studio ---------------------------------------------------------------------------


IMAGE_CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <Choices name="kind" toName="image"><Choice value="a"/><Choice value="b"/></Choices>
</View>
"""


@pytest.fixture(scope="module")
def uploaded_image(ls: Any, sdk: Any) -> Any:
    """(project id, task id, task data path, bytes) of a PNG uploaded through the import API."""
    from prelabel.testing.images import png_bytes

    png = png_bytes(32, 24, box=(4, 4, 20, 16), noise=8, seed=3)
    created = sdk.projects.create(title="prelabel e2e: upload", label_config=IMAGE_CONFIG, request_options=NO_RETRY)
    resp = httpx.post(
        f"{ls.url}/api/projects/{created.id}/import",
        files={"file": ("tiny.png", png, "image/png")},
        headers=ls.auth_headers("legacy"),
        trust_env=False,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    tasks = list(sdk.tasks.list(project=created.id))
    assert len(tasks) == 1
    yield created.id, tasks[0].id, tasks[0].data["image"], png
    sdk.projects.delete(id=created.id)


@pytest.fixture
def no_ls_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_uploaded_file_downloads_with_a_personal_access_token(
    ls: Any, uploaded_image: tuple, tmp_path: Path, no_ls_env: None
) -> None:
    from prelabel.media import MediaFetcher
    from prelabel.settings import CoreSettings

    pid, tid, path, png = uploaded_image
    assert path.startswith(f"/data/upload/{pid}/") and path.endswith("-tiny.png"), path
    core = CoreSettings(
        prelabel_home=tmp_path, label_studio_url=ls.url, label_studio_api_key=ls.personal_access_token()
    )
    fetcher = MediaFetcher(core)
    try:
        assert fetcher.fetch(path, tid) == png
        # /setup's hostname and legacy token lose to the configured PAT
        assert fetcher.bind("http://localhost:1", "wrong-token").token == ls.personal_access_token()
    finally:
        fetcher.close()


def test_uploaded_file_downloads_with_a_legacy_token(
    ls: Any, uploaded_image: tuple, tmp_path: Path, no_ls_env: None
) -> None:
    """What /setup sends (hostname + the creator's legacy token), with no LABEL_STUDIO_* env."""
    from prelabel.media import MediaFetcher
    from prelabel.settings import CoreSettings

    _, tid, path, png = uploaded_image
    base = MediaFetcher(CoreSettings(prelabel_home=tmp_path))  # own cache: nothing downloaded yet
    try:
        assert base.bind(ls.url, ls.legacy_token).fetch(path, tid) == png
    finally:
        base.close()


def test_uploaded_file_without_a_token_is_a_clear_error(
    ls: Any, uploaded_image: tuple, tmp_path: Path, no_ls_env: None
) -> None:
    from prelabel.media import MediaError, MediaFetcher
    from prelabel.settings import CoreSettings

    _, tid, path, _ = uploaded_image
    base = MediaFetcher(CoreSettings(prelabel_home=tmp_path))
    try:
        with pytest.raises(MediaError, match="needs a Label Studio token: set LABEL_STUDIO_API_KEY"):
            base.bind(ls.url, None).fetch(path, tid)
        with pytest.raises(MediaError, match=r"Label Studio refused .* \(401\)"):
            base.bind(ls.url, "not-a-valid-token").fetch(path, tid)
        assert list((tmp_path / "cache" / "media").iterdir()) == []  # nothing half-written was cached
    finally:
        base.close()


def test_unsupported_config_is_refused_with_the_reason_in_the_backend_log(
    sdk: Any, uploaded_image: tuple, backend: Any
) -> None:
    """Connecting text_classifier to an Image project: /setup says 400 with what the backend supports.
    LS drops error bodies ("400 Client Error: Bad Request for url: ...") and tells the person to
    check the ML backend's console log, so the reason must be there."""
    from label_studio_sdk.core.api_error import ApiError

    pid = uploaded_image[0]
    with pytest.raises(ApiError) as info:
        sdk.ml.create(project=pid, url=backend.url, title="wrong project", request_options=NO_RETRY)
    body = str(info.value.body)
    assert info.value.status_code == 400
    assert "doesn't look like a valid ML backend" in body and "400 Client Error" in body, body
    assert "supports Choices" not in body  # LS does not pass the backend's message on ...
    deadline = time.monotonic() + 10
    while "supports Choices on HyperText/Text; this label config has" not in backend.log_tail(400):
        assert time.monotonic() < deadline, backend.log_tail(20)  # ... so the backend's log must have it
        time.sleep(0.1)
    assert sdk.ml.list(project=pid, request_options=NO_RETRY) == []


# -- 5. Basic auth on the ML connection ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_backend(servers: dict) -> Any:
    """A second backend process with BASIC_AUTH_USER/BASIC_AUTH_PASS set."""
    return servers["auth"].wait_ready(timeout=90)


@pytest.fixture(scope="module")
def auth_project(sdk: Any) -> Any:
    created = create_project(sdk, "prelabel e2e: basic auth", 9, 3, seed=7)
    yield created
    sdk.projects.delete(id=created.id)


def test_backend_refuses_requests_without_basic_auth(auth_backend: Any) -> None:
    with httpx.Client(base_url=auth_backend.url, trust_env=False, timeout=10) as anon:
        for method, path in [
            ("GET", "/health"),
            ("POST", "/setup"),
            ("POST", "/predict"),
            ("POST", "/webhook"),
            ("GET", "/versions"),
            ("GET", "/jobs"),
        ]:
            resp = anon.request(method, path, json={})
            assert resp.status_code == 401, (path, resp.status_code)
            assert resp.headers["www-authenticate"].startswith("Basic")
            assert "BASIC_AUTH_USER" in resp.json()["error"]
        wrong = anon.get("/health", auth=(AUTH[0], "wrong"))
        assert wrong.status_code == 401
    with auth_backend.http() as http:
        assert http.get("/health").status_code == 200


def test_connecting_without_credentials_fails(sdk: Any, auth_project: Project, auth_backend: Any) -> None:
    from label_studio_sdk.core.api_error import ApiError

    with pytest.raises(ApiError) as info:
        sdk.ml.create(project=auth_project.id, url=auth_backend.url, title="no credentials", request_options=NO_RETRY)
    assert info.value.status_code == 400
    assert "authentication parameters were either not provided or are incorrect" in str(info.value.body), (
        info.value.body
    )
    assert sdk.ml.list(project=auth_project.id, request_options=NO_RETRY) == []


def test_basic_auth_connection_retrieves_and_trains(
    sdk: Any, ls: Any, auth_project: Project, auth_backend: Any
) -> None:
    ml = sdk.ml.create(
        project=auth_project.id,
        url=auth_backend.url,
        title="text_classifier basic auth",
        auth_method="BASIC_AUTH",
        basic_auth_user=AUTH[0],
        basic_auth_pass=AUTH[1],
        is_interactive=True,
        request_options=NO_RETRY,
    )
    assert ml.state == "CO", (ml.state, ml.error_message)
    assert ml.model_version == UNTRAINED

    answered = metric(auth_backend, "prelabel_requests_total", endpoint="/predict", method="POST", status="200")
    retrieve(sdk, auth_project.id)  # through Basic auth; untrained, so nothing is stored
    assert metric(auth_backend, "prelabel_requests_total", endpoint="/predict", method="POST", status="200") > answered
    assert not any(stored_predictions(sdk, auth_project.id).values())

    # Project webhooks are plain requests without the ML connection's auth: the backend refuses
    # them until the webhook is given the header (LS forwards webhook.headers verbatim).
    refused = metric(auth_backend, "prelabel_requests_total", endpoint="/webhook", method="POST", status="401")
    first, *rest = auth_project.train_ids
    sdk.annotations.create(id=first, result=choice_result(auth_project.tasks[first][1]), request_options=NO_RETRY)
    assert (
        metric(auth_backend, "prelabel_requests_total", endpoint="/webhook", method="POST", status="401") == refused + 1
    )
    hook = next(h for h in sdk.webhooks.list(project=str(auth_project.id)) if h.url == f"{auth_backend.url}/webhook")
    basic = "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()
    sdk.webhooks.update(id=hook.id, url=hook.url, headers={"Authorization": basic}, request_options=NO_RETRY)
    for tid in rest:
        sdk.annotations.create(id=tid, result=choice_result(auth_project.tasks[tid][1]), request_options=NO_RETRY)
    assert metric(auth_backend, "prelabel_webhooks_total", action="ANNOTATION_CREATED") == len(rest)

    # START_TRAINING goes through the ML connection, so it carries Basic auth; this backend has no
    # LABEL_STUDIO_* settings, so the job fetched the annotations with /setup's hostname and token
    pressed = time.time()
    sdk.ml.train(id=ml.id, request_options=NO_RETRY)
    job = auth_backend.wait_new_job(auth_project.id, "train", since=pressed - 1, timeout=120)
    assert job["status"] == "succeeded", job
    version = job["result"]["model_version"]
    assert sdk.ml.get(id=ml.id, request_options=NO_RETRY).model_version == version
    retrieve(sdk, auth_project.id)
    stored = stored_predictions(sdk, auth_project.id)
    for tid in auth_project.heldout_ids:
        assert Counter(p.model_version for p in stored[tid]) == {version: 1}
