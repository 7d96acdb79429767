"""pyproject.toml (pip) and environment.yml (conda) declare the same dependencies."""

import re
import tomllib

import yaml

from conftest import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pip_deps = {_name(r): r.replace(" ", "") for r in pyproject["project"]["dependencies"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_deps = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert conda_deps == pip_deps


def test_declared_dependencies_include_the_chosen_libraries():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {_name(r) for r in pyproject["project"]["dependencies"]}
    assert {"torch", "torchvision", "snakemake", "dvc", "seaborn", "jupyter", "pytorch-optimizer", "mlxtend"} <= names
