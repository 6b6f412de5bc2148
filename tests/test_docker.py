"""The deployment files: the compose file validates and the images build the way the README installs."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def test_compose_file_validates() -> None:
    cmd = _compose_cmd()
    if cmd is None:
        pytest.skip("!!! neither docker-compose nor the docker compose plugin is installed (make system-deps)")
    res = subprocess.run(cmd + ["-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr


def test_compose_runs_every_stage_with_two_scoring_replicas() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    commands = {name: s.get("command", [None])[0] for name, s in services.items()}
    assert commands["workers"] == "workers" and commands["map"] == "map" and commands["web"] == "web"
    assert sum(1 for c in commands.values() if c == "score") == 2
    assert "kafka-data" in spec["volumes"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_images_use_the_readme_setup(dockerfile: str) -> None:
    text = (ROOT / "docker" / dockerfile).read_text()
    readme = (ROOT / "README.md").read_text()
    assert "RUN make setup" in text
    assert "make setup" in readme
    for pkg in ("streamer", "detectors", "inference", "mapping", "imminence", "console", "configs"):
        assert f"COPY {pkg} ./{pkg}" in text
    assert ".pt" not in text and ".onnx" not in text  # weights are mounted, never baked in
