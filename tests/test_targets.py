"""Every output is a target: delete any one and `snakemake -n` schedules its producer and the jobs
downstream of it, nothing less (a deleted run under an existing summary was once never rebuilt) and
nothing more. Checked on the shared tiny run (conftest.full_run), one output of each rule (two of
`train`: a metrics.json and a checkpoints directory). The expected jobs come from Snakemake itself:
`snakemake -n --forcerun <file>` with the file in place lists its producer and everything
downstream (for a rule nothing depends on, that is the job and `all`).
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import copy_run, scheduled, snakemake

pytestmark = pytest.mark.slow


def outputs_by_kind(workdir: Path) -> dict[tuple[str, str], str]:
    """(rule, kind) -> one output file of `snakemake --summary`: the first of each rule, and for
    `train` one metrics.json and one checkpoints directory (the outputs a killed job loses)."""
    lines = snakemake(workdir, "--summary", check=True).stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("output_file\t")))
    kinds: dict[tuple[str, str], str] = {}
    for line in lines[header + 1:]:
        path, _, rule, *_ = line.split("\t")
        kinds.setdefault((rule, Path(path).name if rule == "train" else "any"), path)
    return kinds


def leaf_rules(workdir: Path) -> set[str]:
    """Rules nothing depends on but `all` (from `snakemake --rulegraph`): deleting one of their
    outputs must schedule that job and `all`, and Snakemake need not be asked what is downstream."""
    dot = snakemake(workdir, "--rulegraph", check=True).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)
    feeds = {names[a] for a, b in edges if names[b] != "all"}
    return set(names.values()) - feeds - {"all"}


def check_deletions(workdir: Path, kinds: list[tuple[tuple[str, str], str]], leaves: set[str], aside: Path) -> None:
    """Delete each output of ``kinds`` in ``workdir`` in turn: `snakemake -n` must schedule exactly
    its producer and what is downstream; the file is put back (time stamps kept) after each."""
    for (rule, kind), path in kinds:
        expected = ({rule: 1, "all": 1} if rule in leaves else
                    scheduled(snakemake(workdir, "-n", "--forcerun", path, check=True).stdout))
        moved = aside / path
        moved.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(workdir / path, moved)  # a move keeps the time stamps, so putting it back restores the run
        try:
            got = scheduled(snakemake(workdir, "-n", check=True).stdout)
        finally:
            shutil.move(moved, workdir / path)
        assert got.get(rule, 0) >= 1, f"deleting {path} does not rerun its rule {rule}: {got}"
        assert got == expected, f"deleting {path}: scheduled {got}, its producer and downstream are {expected}"


def test_deleting_any_output_schedules_exactly_its_producer_and_what_depends_on_it(full_run, tmp_path,
                                                                                   tmp_path_factory):
    # Two copies, each deleting half of the outputs, one Snakemake at a time per copy (two cores).
    # Next to the original: the code inputs are paths relative to the working directory, so a copy
    # at another depth would see a changed set of inputs everywhere.
    workdirs = [copy_run(full_run[0], tmp_path_factory.getbasetemp() / f"deletion_run{i}") for i in range(2)]
    assert "Nothing to be done" in snakemake(workdirs[0], "-n", check=True).stdout
    kinds, leaves = outputs_by_kind(workdirs[0]), leaf_rules(workdirs[0])
    rules = {rule for rule, _ in kinds}
    assert {"fetch", "train", "train_ablation", "train_control", "sweep_train", "budget_validation", "budget_train",
            "probe", "solution_distance", "powerprop_method", "track", "audit", "paper"} <= rules, sorted(rules)
    assert {("train", "metrics.json"), ("train", "checkpoints")} <= set(kinds) and {"paper"} <= leaves
    items = sorted(kinds.items())
    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(check_deletions, workdir, items[i::2], leaves, tmp_path / f"aside{i}")
                for i, workdir in enumerate(workdirs)]
        for future in done:
            future.result()  # re-raises the first failed assertion of that half
    for workdir in workdirs:
        assert "Nothing to be done" in snakemake(workdir, "-n", check=True).stdout
    print(f"{len(kinds)} outputs deleted one at a time, one per rule ({len(rules)} rules, {len(leaves)} of them leaves)")
