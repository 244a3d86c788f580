"""environment.yml (conda) and pyproject.toml must declare the same runtime dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads(Path("pyproject.toml").read_text())
    runtime = pyproject["project"]["dependencies"]
    env = yaml.safe_load(Path("environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    assert sorted(pip_sections[0]) == sorted(runtime)
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_required_runtime_dependencies_are_declared():
    runtime = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in runtime}
    for needed in ("jupyterlab", "papermill", "kafka-python", "minio", "pandas", "matplotlib", "kubernetes"):
        assert needed in names
