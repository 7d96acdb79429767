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


def test_make_clean_outputs_removes_every_ignored_output_and_keeps_the_committed_ones(tmp_path):
    """`make clean-outputs` removes every pipeline output that .gitignore lists (a leftover sweep or
    audit would look like a finished job to the next run) and keeps the committed small outputs."""
    import shutil
    import subprocess

    makefile = (REPO / "Makefile").read_text()
    removed = re.search(r"^clean-outputs:\n\trm -rf ((?:.*\\\n)*.*)$", makefile, flags=re.M).group(1).split()
    removed = [p for p in removed if p != "\\"]
    tracked = subprocess.run(["git", "ls-files", "--", *removed], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert removed and not tracked, f"make clean-outputs would delete committed files: {tracked}"
    text = (REPO / ".gitignore").read_text()
    block = text.split("# Pipeline outputs", 1)[1].split("\n#", 1)[0]
    ignored = [line.strip().lstrip("/").rstrip("/") for line in block.splitlines()[1:] if line.strip()]
    assert "data/runs" in ignored and "paper/audit.md" in ignored  # the block was found
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    committed = ["data/metrics/headline.json", "paper/verdicts.json", "paper/paper.md"]
    for path in ignored + [".snakemake/log/x.log"] + committed:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if "." in target.name:
            target.write_text("x")
        else:
            target.mkdir(exist_ok=True)
            (target / "f").write_text("x")
    subprocess.run(["make", "-s", "clean-outputs"], cwd=tmp_path, check=True, capture_output=True)
    left = [p for p in ignored + [".snakemake"] if (tmp_path / p).exists()]
    assert not left, f"make clean-outputs leaves {left}"
    assert all((tmp_path / p).is_file() for p in committed)
