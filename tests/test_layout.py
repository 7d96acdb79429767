"""The layout: one rule file per stage, one library subpackage per rule file, scripts that only
wire a rule to its library call, and imports that only go down the layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import FIGURE_RULES, REPO

SRC = REPO / "src" / "optbias"
RULES = REPO / "workflow" / "rules"
SCRIPTS = REPO / "workflow" / "scripts"

# Lower layers never import higher ones. Within a layer, a module imports only its own subpackage.
LAYERS = {
    "fileio": 0, "stats": 0, "job": 0, "runlog": 0,
    "data": 1, "models": 1, "engine": 1, "plotting": 1,
    "optim": 2,
    "continual": 3,
    "probes": 4, "powerprop": 4,
    "paper": 5, "versioning": 5, "bench": 5,
    "config": 6, "cli": 6,
    "specs": 7,  # run specs: expands entries with config
    "__main__": 8,
}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


def _top(path: Path) -> str:
    """The first component under src/optbias: a subpackage or a module name."""
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute optbias module, imported names) of every import from optbias in ``path``."""
    package = ["optbias", *path.relative_to(SRC).parent.parts]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("optbias")):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.append((module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("optbias")]
    return out


def test_every_rule_file_maps_to_one_library_stage():
    stages = {p.stem for p in RULES.glob("*.smk")} - {"common"}
    assert stages == {"data", "continual", "probes", "powerprop", "paper", "versioning"}
    for stage in stages:
        assert (SRC / stage).is_dir() or (SRC / f"{stage}.py").is_file(), stage
    included = re.findall(r'include: "workflow/rules/(\w+)\.smk"', (REPO / "Snakefile").read_text())
    assert set(included) == stages | {"common"}


def test_every_rule_runs_a_script_of_its_stage_that_calls_its_own_stage():
    for smk in RULES.glob("*.smk"):
        for script in re.findall(r'script:\s*"\.\./scripts/([\w/]+\.py)"', smk.read_text()):
            path = SCRIPTS / script
            assert path.is_file(), (smk.name, script)
            assert path.parent.name == smk.stem, f"{smk.name} runs {script}: a script of another stage"
            stages = {m.split(".")[1] for m, _ in _imports_of_script(path)}
            assert stages <= {smk.stem, "job", "fileio"}, (script, stages)


def _imports_of_script(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    return [(n.module, [a.name for a in n.names]) for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("optbias")]


def test_figure_rules_scripts_and_functions_share_one_name():
    found = set()
    for smk in RULES.glob("*.smk"):
        text = smk.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.S | re.M):
            if '"figures/' not in body.split("output:", 1)[-1].split("params:", 1)[0]:
                continue
            assert f'"../scripts/{smk.stem}/{rule}.py"' in body, rule
            figures = SRC / smk.stem / "figures.py"
            functions = {n.name for n in ast.parse(figures.read_text()).body if isinstance(n, ast.FunctionDef)}
            assert rule in functions, f"rule {rule}: no function {rule} in {figures.relative_to(REPO)}"
            imported = {name for _, names in _imports_of_script(SCRIPTS / smk.stem / f"{rule}.py") for name in names}
            assert rule in imported, rule
            found.add(rule)
    assert found == FIGURE_RULES


def test_every_import_of_the_library_names_a_module_that_exists():
    """Lazy imports inside functions run only when called: check them all without running them."""
    for path in [*_modules(), *SCRIPTS.rglob("*.py")]:
        imports = _imports(path) if path.is_relative_to(SRC) else _imports_of_script(path)
        for module, _ in imports:
            rel = Path(*module.split(".")[1:])
            assert (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file(), \
                f"{path.relative_to(REPO)} imports {module}, which does not exist"


def test_no_module_imports_a_private_name_of_another():
    for path in _modules():
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{path.relative_to(REPO)} imports {private} from {module}"


def test_imports_only_go_down_the_layers():
    for path in _modules():
        importer = _top(path)
        for module, _ in _imports(path):
            parts = module.split(".")
            imported = parts[1] if len(parts) > 1 else None
            if imported is None or imported == importer:
                continue
            assert LAYERS[imported] < LAYERS[importer], \
                f"{path.relative_to(REPO)} ({importer}, layer {LAYERS[importer]}) imports {module} (layer {LAYERS[imported]})"


def test_every_module_is_in_a_layer():
    assert {_top(p) for p in _modules()} == set(LAYERS)
