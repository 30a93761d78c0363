"""The per-process wiring of one backend: settings, state, jobs, media, metrics, predictor.

The server, ``prelabel predict`` and ``prelabel worker`` each build one Runtime; the backend
instance and its weights live here for the life of the process.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prelabel import lsclient
from prelabel.artifacts import TRAINED_NS, ArtifactStore
from prelabel.backend import Backend, PredictContext, Project, RouteContext, Task
from prelabel.compat.hooks import JobKinds, ProjectVersions
from prelabel.jobs import ACTIVE, InProcessRunner, JobContext, JobRunner, JobStore, Reaper, release_lock
from prelabel.labelconfig import ParsedConfig, parse_label_config
from prelabel.lsauth import resolve_access
from prelabel.media import MediaFetcher
from prelabel.metrics import Metrics
from prelabel.paths import safe_id
from prelabel.redact import register_request_secret
from prelabel.settings import BackendSettings, CoreSettings
from prelabel.state import ProjectState, open_state
from prelabel.torchdevice import device_for

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "default"
MAX_CACHED_PROJECTS = 256  # per-project entries the /predict path keeps (ids come from requests)


def project_id_of(key: str | int | None) -> str:
    """Label Studio sends ``"<id>.<created timestamp>"`` to /setup and /predict, and the
    bare integer id in webhooks; state is keyed by the id alone so both agree."""
    if key is None or str(key).strip() == "":
        return DEFAULT_PROJECT
    return safe_id(str(key).split(".", 1)[0].strip())


class Runtime:
    def __init__(
        self,
        backend_class: type[Backend],
        core: CoreSettings | None = None,
        settings: BackendSettings | None = None,
        runner: str = "auto",
    ):
        self.core = core or CoreSettings()
        self.core.prelabel_home.mkdir(parents=True, exist_ok=True)
        self.backend = backend_class(settings, self.core)
        self.state = open_state(self.core)
        self.jobs = JobStore(self.state)
        self.media = MediaFetcher(self.core)
        self.artifacts = ArtifactStore(
            self.core.prelabel_home / "models" / backend_class.backend_id, backend_class.backend_id
        )
        self.metrics = Metrics(backend_class.backend_id)
        self.backend.metrics = self.metrics
        from prelabel.dryrun import run_predict_or_dry_run

        self.job_handlers: dict[str, Callable[[JobContext], dict]] = {"predict": run_predict_or_dry_run}
        if backend_class.trainable:
            from prelabel.jobs.train import run_training

            self.job_handlers["train"] = run_training
        if isinstance(self.backend, JobKinds):
            self.job_handlers.update(self.backend.job_handlers())
        self.versions_of = self.backend if isinstance(self.backend, ProjectVersions) else None
        self.runner: JobRunner = self._make_runner(runner)
        self.reaper: Reaper | None = None
        self.ready = threading.Event()
        self.setup_error: str | None = None
        self.setup_seconds: float | None = None
        self.device: str | None = None
        self.inflight = 0  # /predict requests being served; only touched on the event loop
        # What /predict reads per request, kept while the state store's generation() says
        # nothing changed (any process's write changes it, so no replica serves stale state):
        # project id -> (generation, its state values); bounded, ids come from requests.
        self._project_values: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._project_states: dict[str, ProjectState] = {}
        # the Project last built for a request's project key and label config, with the state
        # values it was built from: the next request with both the same gets the same object
        # while those values are (one generation check instead of id parsing, a config cache
        # lookup and a version lookup). Bounded like the others.
        self._projects: dict[Any, tuple[ProjectState, str | None, dict[str, Any], Project]] = {}
        self._fetchers: dict[tuple, MediaFetcher] = {}  # bound per credentials; immutable
        self._predict_log = logging.getLogger("prelabel.predict")
        from prelabel.predict import Predictor

        self.predictor = Predictor(self)

    def _make_runner(self, kind: str) -> JobRunner:
        kind = self.core.job_runner if kind == "auto" else kind
        if kind == "auto":
            kind = "rq" if self.core.redis_url else "inprocess"
        if kind == "rq":
            from prelabel.jobs.rq import RQRunner

            if not self.core.redis_url:
                raise ValueError("JOB_RUNNER=rq needs REDIS_URL")
            return RQRunner(self)
        if kind != "inprocess":
            raise ValueError(f"unknown job runner {kind!r} (auto, inprocess or rq)")
        return InProcessRunner(self)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Mark jobs orphaned by a dead process, then load the model (blocking)."""
        # queued jobs of an in-process runner die with their process; RQ keeps them in Redis
        include_queued = isinstance(self.runner, InProcessRunner)
        for job in self.jobs.mark_orphans_interrupted(include_queued=include_queued):
            log.warning("job %s (%s) was interrupted by a restart", job.id, job.kind)
            release_lock(self, job)
        active = {j.id for j in self.jobs.list() if j.status in ACTIVE}
        for path in self.artifacts.clean_workdirs(keep=active):
            log.warning("removed %s, left by a training job that did not finish", path)
        if self.reaper is None:
            self.reaper = Reaper(self, include_queued=False).start()
        self._index_trained_projects()
        started = time.perf_counter()
        try:
            self.device = device_for(self.backend.settings)
            self.backend.setup(self.device)
        except Exception as exc:
            self.setup_error = f"{type(exc).__name__}: {exc}"
            log.exception("setup of %s failed", self.backend.backend_id)
            raise
        self.setup_seconds = time.perf_counter() - started
        self.ready.set()
        log.info("%s ready in %.2fs", self.backend.backend_id, self.setup_seconds)

    def import_main_thread_modules(self) -> None:
        """Import the backend's ``main_thread_imports``; called in the main thread before
        ``start`` runs in a thread of its own."""
        for name in self.backend.main_thread_imports:
            importlib.import_module(name)

    def start_in_background(self) -> threading.Thread:
        """``start`` in a thread of its own, after ``import_main_thread_modules``."""
        self.import_main_thread_modules()

        def target() -> None:
            try:
                self.start()
            except Exception:
                pass  # recorded in setup_error; /health reports it

        thread = threading.Thread(target=target, name="prelabel-setup", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        if self.reaper is not None:
            self.reaper.stop()
        self.runner.shutdown(wait=False)
        self.media.close()
        self.state.close()

    # -- projects ---------------------------------------------------------------------------
    def project_state(self, project_id: str) -> ProjectState:
        found = self._project_states.get(project_id)
        if found is None or found.store is not self.state:
            found = self.state.project(project_id)  # checks the id (a regex): once per id
            if len(self._project_states) >= MAX_CACHED_PROJECTS:
                self._project_states.clear()
            self._project_states[project_id] = found
        return found

    def _values(self, st: ProjectState) -> dict[str, Any]:
        """The project's state values: one read, or none while the store is unchanged.
        Read-only to callers (it may be the same dict as the last request's)."""
        generation = self.state.generation()  # before the read: a write between makes it stale
        if generation is None:
            return st.items()
        hit = self._project_values.get(st.project_id)
        if hit is not None and hit[0] == generation:
            return hit[1]
        values = st.items()
        if len(self._project_values) >= MAX_CACHED_PROJECTS:
            self._project_values.clear()
        self._project_values[st.project_id] = (generation, values)
        return values

    def remember_project(
        self, key: str, xml: str, hostname: str | None = None, access_token: str | None = None
    ) -> Project:
        pid = project_id_of(key)
        config = parse_label_config(xml)
        st = self.project_state(pid)
        if st.get("label_config") != xml:
            st.set("label_config", xml)
        if hostname:
            # hostname and token are one pair: a token only ever goes to the host whose /setup
            # sent it, so a /setup naming another host without a token drops the old token
            if st.get("hostname") != hostname:
                st.set("hostname", hostname)
                if not access_token:
                    st.delete("access_token")
            if access_token and st.get("access_token") != access_token:
                st.set("access_token", access_token)
        values = st.items()
        return Project(
            id=pid,
            key=str(key),
            config=config,
            hostname=values.get("hostname"),
            access_token=values.get("access_token"),
        )

    def project(self, key: str | None, xml: str | None = None) -> Project:
        """The project for a request: its config from the request, else the one /setup stored,
        else the backend's ``default_label_config``. One state read per request, none while
        the state is unchanged."""
        if self.versions_of is not None or (key is not None and type(key) is not str):
            # a backend that picks each project's version itself (the compat adapter: an
            # upstream model may change it without a state write) is asked every time
            st = self.project_state(project_id_of(key))
            return self._build_project(st, key, xml, self._values(st))
        hit = self._projects.get(key)
        if hit is not None and hit[1] == xml and hit[0].store is self.state:
            st = hit[0]
            values = self._values(st)
            known = hit[3]
            if values is hit[2] and (known.trained_dir is None or known.trained_dir.is_dir()):
                return known
        else:
            st = self.project_state(project_id_of(key))
            values = self._values(st)
        project = self._build_project(st, key, xml, values)
        if len(self._projects) >= MAX_CACHED_PROJECTS:
            self._projects.clear()
        self._projects[key] = (st, xml, values, project)
        return project

    def _build_project(self, st: ProjectState, key: str | None, xml: str | None, values: dict[str, Any]) -> Project:
        pid = st.project_id
        xml = xml or values.get("label_config") or self.backend.default_label_config
        if not xml:
            raise LookupError(
                f"no label config for project {pid!r}: send label_config with the request, or connect the "
                "backend to the project in Label Studio first (that calls /setup)"
            )
        version, path = self.artifacts.current(values)
        config = parse_label_config(xml)
        version = version or self._project_version(st, xml)
        return Project(
            id=pid,
            key=str(key or pid),
            config=config,
            hostname=values.get("hostname"),
            access_token=values.get("access_token"),
            trained_version=version,
            trained_dir=path,
        )

    def fetch_config(self, project_id: str, client: Any = None) -> ParsedConfig:
        """The project's label config as Label Studio has it now (stored for later requests)."""
        client = client or self.label_studio(project_id)
        xml = client.projects.get(id=int(project_id)).label_config
        self.remember_project(project_id, xml)
        return parse_label_config(xml)

    def config_of(self, project_id: str) -> ParsedConfig | None:
        xml = self.project_state(project_id).get("label_config")
        return parse_label_config(xml) if xml else None

    def model_version(self, project_id: str) -> str:
        st = self.project_state(project_id)
        values = st.items()
        version, _ = self.artifacts.current(values)
        return version or self._project_version(st, values.get("label_config")) or self.backend.model_version()

    def _project_version(self, state: ProjectState, xml: str | None) -> str | None:
        return self.versions_of.project_version(state, xml) if self.versions_of is not None else None

    def model_dir(self, project_id: str) -> Path | None:
        return self.artifacts.current(self.project_state(project_id).items())[1]

    def versions(self) -> list[str]:
        # walks every project (the compat adapter keeps version lists of its own, outside the
        # trained index); Label Studio calls /versions only when a person opens the versions list
        found: list[tuple[float, str]] = []
        for ns in self.state.namespaces("project:"):
            for v in self.state.get(ns, "versions", []) or []:
                found.append((v.get("created_at", 0), v["version"]))
        return [self.backend.model_version()] + [v for _, v in sorted(found)]

    def version_records(self) -> list[dict[str, Any]]:
        """Per project with training history: the version it serves, each promoted version's
        metrics (and the evaluation's reason, where the backend gives one), and the versions
        evaluation refused, with why (``GET /versions`` shows them beside the list Label Studio reads)."""
        out = []
        for ns in self.state.namespaces("project:"):
            values = self.state.items(ns)
            trained, refused = values.get("versions") or [], values.get("refused_versions") or []
            if trained or refused:
                out.append(
                    {
                        "project": ns.split(":", 1)[1],
                        "serving": values.get("model_version"),
                        "trained": [{k: v for k, v in r.items() if k != "path"} for r in trained],
                        "refused": refused,
                    }
                )
        return out

    def trained_projects(self) -> list[str]:
        """Projects that have a trained version (for /health of trainable backends). One read
        of the index that promotion keeps, however many project ids have called /setup."""
        return sorted(self.state.items(TRAINED_NS))

    def _index_trained_projects(self) -> None:
        """Build the trained-projects index once for a state store written before it existed."""
        if self.state.get("meta", "trained_index"):
            return
        for ns in self.state.namespaces("project:"):
            version = self.state.get(ns, "model_version")
            if version:
                self.state.set(TRAINED_NS, ns.split(":", 1)[1], version)
        self.state.set("meta", "trained_index", True)

    def media_for(self, project: Project, params: dict[str, Any] | None = None) -> MediaFetcher:
        params = params or {}
        key = (project.hostname, project.access_token, params.get("login"), params.get("password"))
        found = self._fetchers.get(key)
        if found is None:
            found = self.media.bind(*key)
            if len(self._fetchers) >= MAX_CACHED_PROJECTS:
                self._fetchers.clear()
            self._fetchers[key] = found
        elif project.access_token:
            register_request_secret(project.access_token)  # still masked while it is in use
        return found

    def route_context(self) -> RouteContext:
        """What ``Backend.add_routes`` gets: project lookup, media for a project, settings."""
        return RouteContext(
            settings=self.backend.settings,
            core=self.core,
            project=self.project,
            media=lambda project: self.media_for(project) if project is not None else self.media,
        )

    def label_studio(self, project_id: str) -> Any:
        """An sdk client for the project's Label Studio (env settings first, then /setup's)."""
        values = self.project_state(project_id).items()
        access = resolve_access(self.core, values.get("hostname"), values.get("access_token"))
        if access.base_url and not access.token and access.withheld:
            raise lsclient.LabelStudioUnavailable(access.withheld)
        return lsclient.connect(access.base_url, access.token, max_bytes=self.core.ls_api_max_bytes)

    # -- prediction -------------------------------------------------------------------------
    def context(
        self,
        project: Project,
        params: dict[str, Any] | None = None,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> PredictContext:
        return PredictContext(
            project=project,
            model_version=project.trained_version or self.backend.model_version(),
            model_dir=project.trained_dir,
            media=self.media_for(project, params),
            state=self.project_state(project.id),
            params=params or {},
            log=logger or self._predict_log,
        )

    async def predict(
        self,
        tasks: list[Task],
        project: Project,
        params: dict[str, Any] | None = None,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> list[dict]:
        return await self.predictor.predict(tasks, self.context(project, params, logger))
