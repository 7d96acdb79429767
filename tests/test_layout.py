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
    "fileio": 0, "stats": 0, "job": 0, "imports": 0,  # imports: the code hash (no optbias import)
    "data": 1, "models": 1, "engine": 1, "plotting": 1,
    "optim": 2,
    "continual": 3,
    "probes": 4, "powerprop": 4,
    "paper": 5, "versioning": 5, "perf": 5,  # perf: step (optim), runlog, bench (continual)
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
    """Every figure rule is a figure_rule("<stage>", "<name>", ...) call of its stage's rule file; the
    template (common.smk) runs ../scripts/<stage>/<name>.py. No other rule writes a figure."""
    assert 'f"../scripts/{stage}/{name}.py"' in (RULES / "common.smk").read_text()
    found = set()
    for smk in RULES.glob("*.smk"):
        text = smk.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |^figure_rule\(|\Z)", text, flags=re.S | re.M):
            assert '"figures/' not in body.split("output:", 1)[-1].split("params:", 1)[0], \
                f"rule {rule} writes a figure: make it a figure_rule"
        for stage, rule in re.findall(r'^figure_rule\(\s*"(\w+)", "(\w+)",', text, flags=re.M):
            assert stage == smk.stem, f"figure rule {rule} of {smk.name} runs a script of stage {stage}"
            assert (SCRIPTS / stage / f"{rule}.py").is_file(), rule
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


def _module_graph() -> dict[str, set[str]]:
    """Every library module (dotted name; a package is its ``__init__``) -> the library modules it
    imports, lazy imports inside functions and ``TYPE_CHECKING`` imports included: ``from . import x``
    names module ``x`` when it is one, else its package."""
    names = {".".join(["optbias", *p.relative_to(SRC).with_suffix("").parts]).removesuffix(".__init__")
             for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        here = ".".join(["optbias", *path.relative_to(SRC).with_suffix("").parts]).removesuffix(".__init__")
        edges = set()
        for module, imported in _imports(path):
            subs = {f"{module}.{n}" for n in imported} & names
            edges |= subs or {module}
            if len(subs) < len(imported):  # names defined in the module itself
                edges.add(module)
        graph[here] = {e for e in edges if e in names and e != here}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_check_finds_a_known_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_anywhere_in_the_library():
    """Inside packages as well as between them (train <-> batched and benchmarks <-> tasks were)."""
    graph = _module_graph()
    assert "optbias.continual.batched" in graph["optbias.continual.train"]  # the graph sees real edges
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
