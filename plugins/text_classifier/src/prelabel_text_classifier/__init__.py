"""text_classifier: TF-IDF + logistic regression for Choices on Text, trained from annotations.

The embedded default of prelabel: no weights, no key, no network. Until a project has been
trained it returns empty results (never random labels); each training run is a job that
fetches the project's annotations, evaluates on a held-out split, and promotes a new version.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from prelabel import Backend, BackendSettings, JobContext, Prediction, hookimpl
from prelabel.regions import choices


class Settings(BackendSettings):
    """Environment variables: TEXT_CLASSIFIER_HOLDOUT, TEXT_CLASSIFIER_MIN_EXAMPLES, ..."""

    model_config = SettingsConfigDict(env_prefix="TEXT_CLASSIFIER_", extra="forbid")

    holdout: float = Field(0.2, gt=0, lt=1, description="Share of annotated tasks held out for evaluation.")
    min_examples: int = Field(4, ge=2, description="Fewest annotated tasks worth training on.")
    c: float = Field(4.0, gt=0, description="Inverse regularization of the logistic regression.")
    max_features: int = Field(50_000, ge=100, description="TF-IDF vocabulary size.")
    cache_models: int = Field(8, ge=1, description="Trained models kept in memory (one per project).")


class TextClassifier(Backend):
    backend_id = "text_classifier"
    title = "Text classifier (scikit-learn)"
    description = "TF-IDF + logistic regression for Choices on Text; trains from the project's annotations."
    supports = {"Choices": frozenset({"Text", "HyperText"})}
    max_batch_size = 256
    trainable = True
    default_port = 9095
    version = "untrained"
    Settings = Settings

    def setup(self, device: str | None) -> None:
        import sklearn  # noqa: F401  (fail at start-up, not at the first request)

        self._models: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    # -- prediction -------------------------------------------------------------------------
    def _load(self, model_dir: Path) -> dict:
        import joblib

        key = str(model_dir)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        bundle = joblib.load(model_dir / "model.joblib")
        with self._lock:
            self._models[key] = bundle
            while len(self._models) > self.settings.cache_models:
                self._models.popitem(last=False)
        return bundle

    def predict(self, tasks, ctx):
        if ctx.model_dir is None:
            return [None] * len(tasks)  # untrained: no guesses
        control = self.supported_controls(ctx.config)[0]
        bundle = self._load(ctx.model_dir)
        key = control.object.data_key
        texts = [str(t.data.get(key, "")) for t in tasks]
        proba = bundle["pipeline"].predict_proba(texts)
        labels: list[str] = bundle["labels"]
        allowed = {label: control.map_label(label) for label in labels}
        out = []
        for row in proba:
            ranked = sorted(zip(labels, row, strict=True), key=lambda x: -x[1])
            if bundle["multiple"]:
                threshold = control.score_threshold if control.score_threshold is not None else 0.5
                picked = [(lab, p) for lab, p in ranked if p >= threshold and allowed[lab]]
            else:
                picked = [(lab, p) for lab, p in ranked[:1] if allowed[lab]]
            if not picked:
                out.append(None)
                continue
            score = float(min(p for _, p in picked))
            out.append(Prediction([choices(control, [allowed[lab] for lab, _ in picked], score=score)], score=score))
        return out

    # -- training ---------------------------------------------------------------------------
    def fit(self, job: JobContext) -> dict[str, Any]:
        import joblib

        config = job.config
        if config is None:
            raise ValueError("no label config is stored for this project: connect the backend in Label Studio first")
        control = next(iter(self.supported_controls(config)), None)
        if control is None:
            raise ValueError(f"the project's label config has no Choices on Text ({config.describe()})")
        job.progress(0.05, "fetching annotations")
        texts, targets = examples(job.annotations(), control.name, control.object.data_key)
        if len(texts) < self.settings.min_examples:
            raise ValueError(f"{len(texts)} annotated tasks; need at least {self.settings.min_examples} to train")
        counts = Counter(label for labels in targets for label in labels)
        if len(counts) < 2:
            raise ValueError(f"annotations use only {sorted(counts)}; need at least two different choices")
        job.progress(0.2, f"training on {len(texts)} tasks")
        metrics = self._evaluate(texts, targets, control.is_multiple)
        job.progress(0.7, "fitting the final model on all annotations")
        pipeline, labels = build_model(texts, targets, control.is_multiple, self.settings)
        joblib.dump(
            {"pipeline": pipeline, "labels": labels, "multiple": control.is_multiple, "control": control.name},
            job.workdir / "model.joblib",
        )
        (job.workdir / "train_data.json").write_text(
            json.dumps([{"text": t, "labels": y} for t, y in zip(texts, targets, strict=True)], ensure_ascii=False)
        )
        info = {"count": len(texts), "labels": dict(counts), "control": control.name}
        (job.workdir / "train_data_info.json").write_text(json.dumps(info, ensure_ascii=False))
        job.progress(0.95, "saved")
        return {"train_examples": len(texts), "labels": sorted(counts), **metrics}

    def _evaluate(self, texts: list[str], targets: list[list[str]], multiple: bool) -> dict[str, Any]:
        """Accuracy and macro-F1 on a held-out split (stratified when every class allows it)."""
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.model_selection import train_test_split

        first = [y[0] for y in targets]
        stratify = first if not multiple and min(Counter(first).values()) >= 2 else None
        n_test = max(1, round(len(texts) * self.settings.holdout))
        if stratify is not None:
            n_test = max(n_test, len(set(first)))
        if len(texts) - n_test < 2:
            return {"holdout_examples": 0, "accuracy": None, "macro_f1": None}
        x_tr, x_te, y_tr, y_te = train_test_split(texts, targets, test_size=n_test, random_state=0, stratify=stratify)
        if len({label for y in y_tr for label in y}) < 2:
            return {"holdout_examples": 0, "accuracy": None, "macro_f1": None}
        pipeline, labels = build_model(x_tr, y_tr, multiple, self.settings)
        proba = pipeline.predict_proba(x_te)
        if multiple:
            from sklearn.preprocessing import MultiLabelBinarizer

            mlb = MultiLabelBinarizer(classes=labels)
            truth, pred = mlb.fit_transform(y_te), (proba >= 0.5).astype(int)
        else:
            truth = [y[0] for y in y_te]
            pred = [labels[i] for i in proba.argmax(axis=1)]
        return {
            "holdout_examples": len(x_te),
            "accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        }


def examples(
    annotated: list[tuple[dict, list[dict]]], control_name: str, data_key: str
) -> tuple[list[str], list[list[str]]]:
    """(text, choices) pairs from ``job.annotations()``: one per task, ground truth first."""
    texts, targets = [], []
    for task, anns in annotated:
        text = (task.get("data") or {}).get(data_key)
        if not isinstance(text, str) or not text.strip():
            continue
        for ann in anns:
            labels = [
                c
                for r in ann["result"]
                if r.get("from_name") == control_name
                for c in (r.get("value") or {}).get("choices", [])
            ]
            if labels:
                texts.append(text)
                targets.append(labels)
                break
    return texts, targets


def build_model(texts: list[str], targets: list[list[str]], multiple: bool, settings: Settings):
    """A fitted pipeline (word + character n-gram TF-IDF, logistic regression) and its labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=settings.max_features),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=settings.max_features),
    )
    classifier = LogisticRegression(C=settings.c, max_iter=2000)
    if multiple:
        from sklearn.preprocessing import MultiLabelBinarizer

        mlb = MultiLabelBinarizer()
        y = mlb.fit_transform(targets)
        pipeline = make_pipeline(features, OneVsRestClassifier(classifier))
        pipeline.fit(texts, y)
        return pipeline, list(mlb.classes_)
    y = [t[0] for t in targets]
    smallest = min(Counter(y).values())
    if smallest >= 3:  # enough per class for cross-validated sigmoid calibration of the scores
        from sklearn.calibration import CalibratedClassifierCV

        classifier = CalibratedClassifierCV(classifier, method="sigmoid", cv=min(3, smallest))
    pipeline = make_pipeline(features, classifier)
    pipeline.fit(texts, y)
    return pipeline, [str(c) for c in pipeline.classes_]


@hookimpl
def register_backends(register):
    register(TextClassifier)
