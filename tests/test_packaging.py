"""pyproject.toml declares the dependencies (as ranges); the conda files (environment.yml, the rules'
workflow/envs/optbias.yaml) install the exact versions of requirements.lock and the project, and
list no versions of their own. The lock against pyproject.toml: tests/test_lock.py."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.mark.parametrize("env_file", ["environment.yml", "workflow/envs/optbias.yaml"])
def test_conda_files_install_the_lock_and_the_project(env_file):
    """Python 3.11 (the lock's) and pip from conda; with pip, the lock then the project, paths taken
    from the env file's folder (conda and Snakemake run pip there)."""
    path = REPO / env_file
    env = yaml.safe_load(path.read_text())
    conda = [d for d in env["dependencies"] if not isinstance(d, dict)]
    assert conda == ["python=3.11", "pip"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert len(pip_section) == 2 and pip_section[0].startswith("-r ") and pip_section[1].startswith("-e ")
    lock, project = (Path(path.parent, entry[3:].strip()).resolve() for entry in pip_section)
    assert lock == (REPO / "requirements.lock").resolve()
    assert project == REPO.resolve()


def test_declared_dependencies_include_the_chosen_libraries():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {_name(r) for r in pyproject["project"]["dependencies"]}
    assert {"torch", "torchvision", "snakemake", "dvc", "seaborn", "jupyter", "pytorch-optimizer", "mlxtend"} <= names
