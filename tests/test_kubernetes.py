"""deploy/kubernetes/: valid against Kubernetes' own schemas, offline, and read back by the Ports analysis."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import httpx
import kubernetes_validate
import pytest
import yaml

from app import launch
from demos.model_slot import ModelSlot
from demos.ports.analyze import analyze

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml"))
KUBERNETES_VERSION = "1.33"  # what current managed clusters run; the schemas ship with kubernetes-validate


def resources(folder: str) -> dict[str, dict]:
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc
            for path in sorted((ROOT / "deploy" / "kubernetes" / folder).glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))}


def pod_spec(folder: str) -> dict:
    [deployment] = [doc for doc in resources(folder).values() if doc["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize("path", MANIFESTS, ids=[str(p.relative_to(ROOT)) for p in MANIFESTS])
def test_each_manifest_is_valid_kubernetes(path):
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("folder", ["app", "gpu"])
def test_the_app_runs_as_uid_1000_with_probes_and_a_cache_volume(folder):
    spec = pod_spec(folder)
    assert spec["securityContext"]["runAsUser"] == 1000 and spec["securityContext"]["runAsNonRoot"]
    [container] = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/home/app/.cache/deploy-playground" in mounts and "/home/app/.cache/huggingface/hub" in mounts
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def test_the_gpu_variant_asks_for_a_gpu_and_the_spark_image():
    [container] = pod_spec("gpu")["containers"]
    assert container["image"] == "deploy-playground:spark" and container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_sessions_stick_to_one_pod():
    found = resources("app")
    assert found["Service/deploy-playground"]["spec"]["sessionAffinity"] == "ClientIP"
    annotations = found["Ingress/deploy-playground"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # server-sent events stream through
    assert found["HorizontalPodAutoscaler/deploy-playground"]["spec"]["minReplicas"] >= 2
    assert found["PodDisruptionBudget/deploy-playground"]["spec"]["minAvailable"] >= 1


def test_the_vllm_service_is_what_the_app_is_told_to_use():
    found = resources("vllm")
    service = found["Service/vllm"]
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/v1"
    assert f"PLAYGROUND_BACKEND_URL={url}" in (ROOT / "deploy/kubernetes/vllm/deployment.yaml").read_text(encoding="utf-8")
    [container] = found["Deployment/vllm"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("nvcr.io/nvidia/vllm:") and "8000" in container["args"]


@pytest.mark.parametrize("folder, mappings", [
    ("app", {("deploy-playground", 80, 7860)}),
    ("vllm", {("vllm", 8000, 8000)}),
])
def test_the_ports_tab_reads_the_manifests_without_a_problem(folder, mappings):
    text = "\n---\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "deploy/kubernetes" / folder).glob("*.yaml")))
    analysis = analyze(text, "auto")
    assert analysis.kind == "kubernetes"
    assert {(m.source, m.host_port, m.container_port) for m in analysis.mappings} == mappings
    assert analysis.diagnostics == []


def test_the_probed_routes_answer_as_the_manifests_expect(tiny_engine):
    slot = ModelSlot()
    with gr.Blocks() as demo:
        gr.Markdown("probes")
    _, url, _ = launch(demo, slot, machines=False, mcp=False, server_name="127.0.0.1", quiet=True)
    try:
        assert httpx.get(f"{url}healthz", timeout=10).status_code == 200
        assert httpx.get(f"{url}readyz", timeout=10).status_code == 503  # loading: no traffic yet
        slot.engine = tiny_engine  # what the loader does once the model is ready
        ready = httpx.get(f"{url}readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["model"] == tiny_engine.info()["model"]
    finally:
        demo.close()
