"""deploy/k8s: every manifest validates against the Kubernetes API schema (strict), every
served plugin has replicas and probes on /health at its own port, trainable ones a worker."""

from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
PORTS = {
    "text-classifier": 9095,
    "kimi": 8751,
    "modelscope-qwen": 9090,
    "openai-compatible": 9096,
    "yolo": 9093,
    "sam2": 9091,
    "sam3": 9097,
    "grounding-sam": 9092,
    "uie-x": 9094,
}
TRAINABLE = {"text-classifier", "yolo", "uie-x"}


def documents():
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def test_every_manifest_is_valid_kubernetes():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    docs = list(documents())
    assert len(docs) >= 10
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_invalid_manifest_is_caught():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30.0", strict=True)


@pytest.mark.parametrize("plugin", sorted(PORTS))
def test_plugin_deployment_has_replicas_probes_and_port(plugin):
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    deployment = docs[("Deployment", f"prelabel-{plugin}")]
    assert deployment["spec"]["replicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["serve", plugin.replace("-", "_")]
    assert container["ports"][0]["containerPort"] == PORTS[plugin]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    service = docs[("Service", f"prelabel-{plugin}")]
    assert service["spec"]["ports"][0]["port"] == PORTS[plugin]
    env_from = [e.get("configMapRef", {}).get("name") for e in container["envFrom"]]
    assert "prelabel-common" in env_from
    worker = docs.get(("Deployment", f"prelabel-{plugin}-worker"))
    assert (worker is not None) == (plugin in TRAINABLE)
    if worker:
        assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker", plugin.replace("-", "_")]


def test_shared_redis_and_models_volume():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    config = docs[("ConfigMap", "prelabel-common")]["data"]
    assert config["REDIS_URL"].startswith("redis://prelabel-redis:6379")
    assert docs[("PersistentVolumeClaim", "prelabel-models")]["spec"]["accessModes"] == ["ReadWriteMany"]
