"""README.md: short, its measured facts generated (optbias.versioning.readme), every path and make
target it names real, its DAG sketch made of the workflow's rules; the docs pages it indexes exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from optbias import cli
from optbias.versioning import readme

README = REPO / "README.md"
MAX_LINES = 150
HAND_WRITTEN_DOCS = ["pipeline", "configs", "extending", "optimizers", "claims", "reproducibility", "dvc",
                     "cluster", "speed", "explore", "tests"]


def _text() -> str:
    return README.read_text()


# ---- the generated block


def test_the_readme_block_is_what_the_committed_files_give():
    """Run `optbias readme` after a new audit (paper/verdicts.json) or `make bench` (docs/performance.json)."""
    verdicts = json.loads((REPO / "paper/verdicts.json").read_text())
    performance = json.loads((REPO / "docs/performance.json").read_text())
    assert readme.current_block(_text()) == readme.results_block(verdicts, performance)


def test_the_block_on_known_inputs():
    verdicts = {"C1": "SUPPORTED", "C2": "NOT SUPPORTED", "C3": "SUPPORTED", "C4": "INCONCLUSIVE"}
    performance = {"machine": {"cpu_model": "Some CPU"},
                   "reproduce": {"cores": 4, "wall": {"wall_s": 1562.0, "jobs": 10}}}
    block = readme.results_block(verdicts, performance)
    lines = block.splitlines()
    assert lines[0] == readme.BEGIN and lines[-1] == readme.END and len(lines) == 4
    assert "2 supported, 1 not supported, 1 inconclusive of 4 claims (Claims audit: [docs/audit.md](docs/audit.md))" \
        in lines[1]
    assert "26.0 min for 10 jobs on Some CPU, 4 cores" in lines[2] and "figure 5" in lines[2]
    dated = readme.results_block(verdicts, {**performance, "reproduce": {"cores": 4, "wall": {
        "wall_s": 1562.0, "jobs": 10, "start": 1796101608.0}}})  # 2026-12-01T05:06:48Z
    assert "26.0 min for 10 jobs on Some CPU, 4 cores, the environment already installed (run of 2026-12-01)" \
        in dated.splitlines()[2]
    assert "compute bound" not in lines[2]  # no figure 7 in these inputs
    with_bound = readme.results_block(verdicts, {**performance, "bound": {"ratio": 3.125, "bound_wall_s": 300.0}})
    assert "26.0 min for 10 jobs on Some CPU, 4 cores, the environment already installed; 3.12x its compute bound of 5.0 min " \
        "(figure 7)" in with_bound.splitlines()[2]
    assert "not measured" in readme.results_block(verdicts, {"reproduce": {"wall": None}})
    assert "not measured" in readme.results_block(verdicts, {})
    with pytest.raises(readme.ReadmeError, match="unknown verdicts"):
        readme.verdict_counts({"C1": "MAYBE"})


def test_the_block_is_replaced_and_nothing_around_it(tmp_path):
    text = f"# Title\n\nbefore\n{readme.BEGIN}\nold numbers\n{readme.END}\nafter\n"
    new = readme.with_block(text, readme.results_block({"C1": "SUPPORTED"}, {}))
    assert new.startswith("# Title\n\nbefore\n" + readme.BEGIN) and new.endswith(readme.END + "\nafter\n")
    assert "old numbers" not in new and "1 supported, 0 not supported, 0 inconclusive of 1 claims" in new
    with pytest.raises(readme.ReadmeError, match="no results block"):
        readme.with_block("# no block\n", "x")
    with pytest.raises(readme.ReadmeError, match="two results blocks"):
        readme.current_block(text + text)


def test_optbias_readme_rewrites_a_stale_block_and_check_says_so(tmp_path, capsys):
    for path in ("README.md", "paper/verdicts.json", "docs/performance.json"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    assert cli.main(["readme", "--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "paper/verdicts.json").write_text(json.dumps({"C1": "SUPPORTED"}))
    assert cli.main(["readme", "--check", "--root", str(tmp_path)]) == 1
    assert "stale" in capsys.readouterr().err
    before = (tmp_path / "README.md").read_text()
    assert cli.main(["readme", "--root", str(tmp_path)]) == 0
    after = (tmp_path / "README.md").read_text()
    assert "1 supported, 0 not supported, 0 inconclusive of 1 claims" in after
    assert before.split(readme.BEGIN)[0] == after.split(readme.BEGIN)[0]
    assert before.split(readme.END)[1] == after.split(readme.END)[1]
    assert cli.main(["readme", "--check", "--root", str(tmp_path)]) == 0


def test_the_readme_module_imports_no_torch():
    code = "import sys, optbias.cli, optbias.versioning.readme; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# ---- the README itself


def test_the_readme_is_short():
    n = len(_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES}: move detail to a docs/ page"


def test_the_readme_sections_come_in_order():
    headings = [line[3:] for line in _text().splitlines() if line.startswith("## ")]
    assert headings == ["Results at a glance", "Quickstart", "What you get", "The pipeline", "Adding an optimizer",
                        "Other configs", "Auditing one claim", "Documentation", "Citing"]
    assert _text().index(readme.BEGIN) < _text().index("## Quickstart")


def _named_paths(text: str) -> set[str]:
    """Repository paths named in backticks or as link targets (not URLs, anchors stripped)."""
    tops = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} | {"figures", "logs", "benchmarks"}
    candidates = set(re.findall(r"`([^`\s]+)`", text)) | set(re.findall(r"\]\(([^)\s]+)\)", text))
    paths = set()
    for c in candidates:
        c = c.split("#")[0]  # a trailing / stays: .gitignore's directory patterns need it
        if not c or "://" in c:
            continue
        if c.split("/")[0] in tops and ("/" in c or "." in c or c in tops):  # a path, not a word
            paths.add(c)
    return paths


def _ignored(paths: list[str]) -> set[str]:
    """The paths .gitignore lists (pipeline outputs: they exist only after a run)."""
    proc = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], input="\n".join(paths), cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    return set(proc.stdout.split())


def _missing(paths: set[str]) -> list[str]:
    concrete = sorted(p for p in paths if not any(ch in p for ch in "{}<>*"))
    outputs = _ignored(concrete)
    return [p for p in concrete if p not in outputs and not (REPO / p).exists()]


def test_every_repository_path_the_readme_names_exists():
    paths = _named_paths(_text())
    assert {"config/fashion.yaml", "docs/audit.md", "docs/default/permuted_first_task_accuracy.png"} <= paths
    assert not _missing(paths), f"README.md names paths that do not exist: {_missing(paths)}"


def test_every_make_target_the_readme_names_is_in_the_makefile():
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", _text()))
    assert {"reproduce", "test"} <= named
    assert named <= targets, f"README.md names make targets the Makefile lacks: {sorted(named - targets)}"


def _rules() -> set[str]:
    text = "".join(p.read_text() for p in sorted((REPO / "workflow/rules").glob("*.smk")))
    text += (REPO / "Snakefile").read_text()
    # rules, derived rules, and the figure rules (figure_rule calls: common.smk)
    patterns = [r"^rule (\w+):", r"^use rule \w+ as (\w+)", r'^figure_rule\(\s*"\w+", "(\w+)",']
    return {name for pattern in patterns for name in re.findall(pattern, text, flags=re.M)}


def test_the_dag_sketch_is_made_of_the_workflow_rules():
    """Every rule but `all` and the DVC targets is in the sketch, and every name in it is a rule; the DVC
    targets are named next to it."""
    rules = _rules()
    sketch = _text().split("## The pipeline", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    words = set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b|\b[a-z]+\b", sketch))
    named_rules = {w for w in words if w in rules}
    assert rules - {"all"} - {r for r in rules if r.startswith("dvc_")} <= named_rules, \
        sorted(rules - named_rules - {"all"})
    unknown = {w for w in words if "_" in w} - rules
    assert not unknown, f"the DAG sketch names rules that do not exist: {sorted(unknown)}"
    section = _text().split("## The pipeline", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{r}`" in section for r in rules if r.startswith("dvc_"))


def test_the_readme_indexes_every_docs_page():
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")}
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)", _text()))
    assert pages <= linked, f"docs pages missing from the README's index: {sorted(pages - linked)}"


def _anchors(path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _broken_links(path) -> list[str]:
    """Relative links of a Markdown file whose file does not exist, or whose #anchor is no heading there."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
            broken.append(target)
    return sorted(broken)


def test_the_readme_links_resolve():
    assert not _broken_links(README), f"README.md has broken links: {_broken_links(README)}"


@pytest.mark.parametrize("page", HAND_WRITTEN_DOCS)
def test_the_links_of_each_docs_page_resolve(page):
    """Relative links between the docs pages, to the README and to repository files name files (and
    headings) that exist."""
    path = REPO / "docs" / f"{page}.md"
    assert not _broken_links(path), f"docs/{page}.md has broken links: {_broken_links(path)}"
