"""The deployment files, checked statically (no Docker engine or cluster runs here): hadolint on the
Dockerfile, the Compose specification's JSON schema on docker-compose.yml, kubernetes-validate on the
manifests, and the gateway's own settings loader on every config file they ship.

Each checker is also shown a broken file, so a checker that silently passes everything fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed; it comes with the dev extra (pip install -e '.[dev]')"
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    out = _run(_tool("hadolint"), str(ROOT / "Dockerfile"))
    assert out.returncode == 0, out.stdout + out.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    assert _run(_tool("hadolint"), str(bad)).returncode != 0


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "COPY --from=build" in text
    assert "\nUSER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert "GATEWAY_SERVER__WORKERS" in text
    # gateway/migrations links to ../migrations: the build context needs both.
    assert "COPY migrations ./migrations" in text and "COPY gateway ./gateway" in text


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    checker = _tool("check-jsonschema")
    compose = ROOT / "docker-compose.yml"
    out = _run(checker, "--builtin-schema", "vendor.compose-spec", str(compose))
    assert out.returncode == 0, out.stdout + out.stderr
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  gateway:\n    image: x\n    ports: 8080\n    restart: sometimes\n")
    assert _run(checker, "--builtin-schema", "vendor.compose-spec", str(bad)).returncode != 0


def test_compose_runs_the_whole_topology() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"gateway", "postgres", "redis", "minio", "minio-init", "migrate"} <= set(services)
    gateway = services["gateway"]
    assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert gateway["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert gateway["environment"]["GATEWAY_DATABASE__AUTO_MIGRATE"] == "false"
    assert "mc mb" in " ".join(services["minio-init"]["entrypoint"])


def test_kubernetes_manifests_validate(tmp_path: Path) -> None:
    validate = _tool("kubernetes-validate")
    manifests = sorted(KUBE.glob("*.yaml"))
    manifests = [m for m in manifests if m.name != "kustomization.yaml"]
    out = _run(validate, "--strict", *map(str, manifests))
    assert out.returncode == 0, out.stdout + out.stderr
    kinds = {yaml.safe_load(m.read_text())["kind"] for m in manifests}
    wanted = {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"}
    assert wanted | {"PodDisruptionBudget", "Job"} <= kinds
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: http}]}\n")
    assert _run(validate, "--strict", str(bad)).returncode != 0


def test_deployment_probes_and_secret_references() -> None:
    deployment = yaml.safe_load((KUBE / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"secretRef": {"name": "image-gateway"}} in container["envFrom"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_shipped_config_files_load(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if source == "compose":
        path = ROOT / "deploy" / "compose" / "config.yaml"
    else:
        path = tmp_path / "config.yaml"
        configmap = yaml.safe_load((KUBE / "configmap.yaml").read_text())
        path.write_text(configmap["data"]["config.yaml"])
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = load_settings(str(path))
    assert settings.channels
