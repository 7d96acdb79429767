"""What each DVC stage reads: its rules' files, their scripts and the library modules those import.

A DVC stage (dvc.yaml) is out of date when one of its ``deps`` changes. Listing the whole of
``src/optbias`` and ``workflow/`` there made a docstring in a figure script invalidate the
training stage; so each stage lists only what the Snakemake rules whose outputs it owns read:

* the Snakefile, ``workflow/rules/common.smk`` (helpers every rule file uses) and the config schema
  (its defaults are part of every job's config);
* the rule files (``.smk``) that define those rules, and their scripts;
* the static import closure of those scripts and of the Snakefile and rule files (whose helpers build
  every job's spec: ``optbias.specs``) inside the ``optbias`` package (``import_closure``),
  which also follows the ``"optbias.module:Name"`` strings by which the optimizer registry names
  classes it imports only when building one; and the upstream stages' outputs.

``stage_deps`` computes the lists from the loaded workflow's rules; ``optbias dvc-deps`` prints them
and ``--check`` compares them with dvc.yaml (tests/test_dvc.py runs it). The import closure is
static: a module imported by a name computed at run time would be missed (the package has none;
the registry's names are literal strings).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..imports import import_closure

ALWAYS = ["Snakefile", "workflow/rules/common.smk", "workflow/schemas"]  # every rule reads these


def _owner(path: str, stage_outs: dict[str, list[str]]) -> str | None:
    for stage, outs in stage_outs.items():
        if any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs):
            return stage
    return None


def stage_deps(rules: Iterable[tuple[str, str, str | None, list[str]]], stage_outs: dict[str, list[str]],
               stage_order: list[str], root: Path, catch_all: str) -> dict[str, list[str]]:
    """Each stage's code deps, as paths relative to ``root`` (sorted; directories kept whole).

    ``rules``: (name, rule file, script, outputs) of every rule of the loaded workflow, paths relative
    to ``root``; ``stage_outs``: the DVC stages' output directories; ``stage_order``: the stages in
    dvc.yaml's order; ``catch_all``: the stage whose command runs every rule (its rules are those
    whose outputs no stage owns, such as figures and the paper). A rule belongs to the stage that owns
    its first output's directory (the part of the path before any wildcard). Raises ``ValueError`` for
    a rule whose outputs lie under two stages' outputs."""
    src = root / "src"
    by_stage: dict[str, set[str]] = {s: set(ALWAYS) for s in stage_order}
    scripts: dict[str, set[Path]] = {s: set() for s in stage_order}
    workflow_files: dict[str, set[Path]] = {s: {root / f for f in ALWAYS if (root / f).is_file()} for s in stage_order}
    for name, snakefile, script, outputs in rules:
        if not outputs:
            continue
        owners = {_owner(o.split("{")[0], stage_outs) or catch_all for o in outputs}
        if len(owners) > 1:
            raise ValueError(f"rule {name}: its outputs lie under the outputs of the DVC stages {sorted(owners)}; "
                             "give each rule's outputs to one stage")
        stage = owners.pop()
        by_stage[stage].add(snakefile)
        workflow_files[stage].add(root / snakefile)
        if script is not None:
            by_stage[stage].add(script)
            scripts[stage].add(root / script)
    for stage in stage_order:
        closure = import_closure(scripts[stage] | workflow_files[stage], src)  # the rule files import too
        by_stage[stage].update(p.relative_to(root).as_posix() for p in closure)
    return {s: sorted(by_stage[s]) for s in stage_order}


def workflow_rules(root: Path) -> list[tuple[str, str, str | None, list[str]]]:
    """(name, rule file, script, output patterns) of every rule of ``root``'s Snakefile on its default
    config, paths relative to ``root``, read by loading the workflow with Snakemake's API (no job runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, OutputSettings, ResourceSettings, StorageSettings)

    root = root.resolve()
    out = []
    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        workflow = api.workflow(snakefile=root / "Snakefile", resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(), storage_settings=StorageSettings(), workdir=root)
        for rule in workflow._workflow.rules:
            snakefile = Path(str(rule.snakefile)).resolve()
            script = None if rule.script is None else (snakefile.parent / rule.script).resolve()
            out.append((rule.name, snakefile.relative_to(root).as_posix(),
                        None if script is None else script.relative_to(root).as_posix(),
                        [str(o) for o in rule.output]))
    return out


def dvc_stages(root: Path) -> dict:
    """dvc.yaml's ``stages`` mapping."""
    import yaml

    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def stage_outputs(spec: dict) -> list[str]:
    """A dvc.yaml stage's outputs: its ``outs`` and its ``metrics`` files, as paths."""
    return [next(iter(o)) if isinstance(o, dict) else o for o in (*spec.get("outs", []), *spec.get("metrics", []))]


def expected(root: Path) -> dict[str, list[str]]:
    """Each DVC stage's code deps as ``stage_deps`` computes them for ``root``'s workflow and dvc.yaml."""
    stages = dvc_stages(root)
    outs = {s: stage_outputs(spec) for s, spec in stages.items()}
    catch_all = [s for s, spec in stages.items() if spec["cmd"].split()[-1].startswith("-")
                 or spec["cmd"].endswith("workflow/profiles/local")]
    if len(catch_all) != 1:
        raise ValueError(f"dvc.yaml: expected one stage whose command runs the whole workflow, found {catch_all}")
    return stage_deps(workflow_rules(root), outs, list(stages), root, catch_all[0])


def check(root: Path) -> list[str]:
    """Problems with dvc.yaml's code deps against ``expected`` (empty when they agree): per stage, the
    paths it lacks and those it lists that no rule of it reads (upstream stages' outputs aside)."""
    problems = []
    stages = dvc_stages(root)
    upstream = {o for spec in stages.values() for o in stage_outputs(spec)}
    for stage, want in expected(root).items():
        have = {d for d in stages[stage].get("deps", []) if d not in upstream}
        missing, extra = sorted(set(want) - have), sorted(have - set(want))
        if missing or extra:
            problems.append(f"dvc.yaml stage {stage}: " + "; ".join(
                part for part in (f"add to deps {missing}" if missing else "",
                                  f"remove from deps {extra}" if extra else "") if part))
    return problems
