"""The explore notebook: its library (optbias.paper.explore) on cases with known answers, the
notebook source (paired by jupytext, no logic of its own), and its execution (parameters injected,
a failing cell named). The run on real outputs is in tests/test_paper_pipeline.py."""

from __future__ import annotations

import ast
import json

import jupytext
import nbformat
import pytest

from conftest import REPO
from optbias.paper import explore as E

NOTEBOOK = REPO / "workflow/notebooks/explore.py"


def stat(values):
    return {"mean": sum(values) / len(values), "ci95": [min(values), max(values)], "per_seed": list(values)}


SUMMARY = {"order": ["sgd", "shampoo"], "optimizers": {
    "sgd": {"seeds": [0, 1, 2], "average_forgetting": stat([0.5, 0.6, 0.7]),
            "R_per_seed": [[[1.0, 0.0], [0.2, 1.0]], [[0.8, 0.0], [0.4, 0.9]]]},
    "shampoo": {"seeds": [1, 2, 3], "average_forgetting": stat([0.1, 0.2, 0.9])}}}


def test_compare_pairs_by_seed_and_bootstraps_the_differences():
    # common seeds 1 and 2: sgd 0.6, 0.7; shampoo 0.1, 0.2 -> differences 0.5, 0.5
    table = E.compare(SUMMARY, "sgd", "shampoo")
    row = table.loc["average_forgetting"]
    assert row["seeds"] == 2 and row["per-seed a - b"] == [0.5, 0.5]
    assert row["a - b"] == pytest.approx(0.5) and row["ci95 low"] == pytest.approx(0.5) and row["ci95 high"] == pytest.approx(0.5)
    assert row["a"] == pytest.approx(0.65) and row["b"] == pytest.approx(0.15)  # both on the paired seeds
    assert list(table.index) == ["average_forgetting"]  # metrics missing from either side are left out


def test_paired_differences_need_a_common_seed_and_names_must_exist():
    assert E.paired([1.0, 2.0, 3.0], [2, 0, 1], [0.5, 0.4, 0.3], [1, 2, 3]) == ([2, 1], [1.0, 3.0], [0.4, 0.5])
    with pytest.raises(E.ExploreError, match="no seed in common"):
        E.paired([1.0], [0], [1.0], [1])
    with pytest.raises(E.ExploreError, match="no optimizer 'adamw' in this summary; it has sgd, shampoo"):
        E.compare(SUMMARY, "sgd", "adamw")


def test_mean_accuracy_matrix_and_summary_table_by_hand():
    R = E.mean_accuracy_matrix(SUMMARY, "sgd")
    assert R.values.ravel().tolist() == pytest.approx([0.9, 0.0, 0.3, 0.95]) and R.shape == (2, 2)
    table = E.summary_table(SUMMARY, metrics=["average_forgetting"])
    assert table.loc["sgd", "average_forgetting"] == "0.600 [0.500, 0.700]" and list(table.index) == ["sgd", "shampoo"]


def test_compare_probes_reads_the_last_layer_measures():
    probes = {"optimizers": {o: {"seeds": [0, 1], "last_layer": {"erank": stat([v, v + 2]), "note": "x"}}
                             for o, v in (("sgd", 10.0), ("shampoo", 4.0))}}
    row = E.compare_probes(probes, "shampoo", "sgd").loc["erank"]
    assert row["a - b"] == pytest.approx(-6.0) and row["seeds"] == 2


AUDIT = {"claims": [
    {"id": "C1", "verdict": "SUPPORTED", "rule": "summarize", "statement": "s1", "cases": [
        {"case": "sgd", "value": 0.01, "ci95": [0.0, 0.02]}]},
    {"id": "C2", "verdict": "NOT SUPPORTED", "rule": "probe", "statement": "s2", "cases": [
        {"case": "", "value": True, "ci95": None}]}]}


def test_audit_table_filters_by_verdict_and_names_the_rerun():
    assert list(E.audit_table(AUDIT).index) == ["C1", "C2"]
    table = E.audit_table(AUDIT, verdict="NOT SUPPORTED")
    assert list(table.index) == ["C2"] and table.loc["C2", "rule"] == "probe"
    assert E.audit_table(AUDIT).loc["C1", "measured"] == "sgd: 0.010 [0.000, 0.020]"
    with pytest.raises(E.ExploreError, match="verdict must be one of"):
        E.audit_table(AUDIT, verdict="supported")
    assert E.rerun_command(AUDIT, "C2") == "snakemake --cores all paper/audit.md --forcerun probe"
    with pytest.raises(E.ExploreError, match="no claim 'C9'"):
        E.rerun_command(AUDIT, "C9")


def test_loss_curves_draw_one_line_per_optimizer_and_mark_task_boundaries(tmp_path):
    for name in ("sgd", "shampoo"):
        run = tmp_path / f"data/runs/permuted/{name}/seed0"
        run.mkdir(parents=True)
        curve = {"step": [0, 10, 20, 30], "loss": [2.0, 1.0, 1.5, 0.5], "task": [0, 0, 1, 1]}
        (run / "metrics.json").write_text(json.dumps({"loss_curve": curve}))
    fig = E.loss_curves(tmp_path, "permuted", ["sgd", "shampoo"], 0)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in ("sgd", "shampoo")]
    assert len(lines) == 2 and list(lines[0].get_ydata()) == [2.0, 1.0, 1.5, 0.5]
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"] == [20]
    assert E.as_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(E.ExploreError, match="data/runs/permuted/adamw/seed0/metrics.json does not exist"):
        E.loss_curves(tmp_path, "permuted", ["adamw"], 0)


# ---- the notebook source


def test_the_ipynb_is_the_py_source_paired_by_jupytext():
    """workflow/notebooks/explore.ipynb holds the same cells as explore.py (jupytext --sync after editing)."""
    py, ipynb = jupytext.read(NOTEBOOK), nbformat.read(NOTEBOOK.with_suffix(".ipynb"), as_version=4)
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in ipynb.cells]
    assert all(not c.get("outputs") for c in ipynb.cells)  # the committed copy is not executed


ALLOWED_CALLS = {"display", "Markdown", "Image", "print", "join", "round"}  # showing a value, never computing one


def test_the_notebook_holds_no_logic_of_its_own():
    """Every value comes from a call into optbias.paper.explore: no functions, classes, lambdas or
    arithmetic in the notebook, and every other call only shows a value."""
    nb = jupytext.read(NOTEBOOK)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert E.parameters_cell_index(nb.cells) == 1 and len(code) >= 8
    for source in code:
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda, ast.BinOp, ast.AugAssign)), \
                f"logic in the notebook: {ast.unparse(node)}"
            if isinstance(node, ast.Call):
                func = node.func
                library = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "explore"
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert library or name in ALLOWED_CALLS, f"a call that is not the library's: {ast.unparse(node)}"


def test_parameters_cell_must_be_unique():
    cell = lambda tags: nbformat.v4.new_code_cell("x = 1", metadata={"tags": tags})  # noqa: E731
    assert E.parameters_cell_index([cell([]), cell(["parameters"])]) == 1
    for cells in ([cell([])], [cell(["parameters"]), cell(["parameters"])]):
        with pytest.raises(E.ExploreError, match="exactly one cell tagged 'parameters'"):
            E.parameters_cell_index(cells)


# ---- executing a notebook


def write_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]} if i == 0 else {})
                for i, src in enumerate(cells)]
    jupytext.write(nb, path, fmt="py:percent")


def test_execute_injects_the_parameters_and_writes_the_ipynb_and_html(tmp_path):
    src = tmp_path / "nb.py"
    write_notebook(src, ["word = 'default'", "from pathlib import Path\nprint(word, Path.cwd().name)"])
    (tmp_path / "here").mkdir()
    E.execute(src, tmp_path / "out.ipynb", tmp_path / "out.html", {"word": "injected"}, cwd=tmp_path / "here")
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert nb.cells[1].metadata["tags"] == ["injected-parameters"] and "word = 'injected'" in nb.cells[1].source
    assert nb.cells[2].outputs[0]["text"] == "injected here\n"
    assert "injected here" in (tmp_path / "out.html").read_text()


def test_a_failing_cell_stops_execution_naming_the_cell_and_writes_nothing(tmp_path):
    src = tmp_path / "nb.py"
    write_notebook(src, ["n = 1", "ok = n", "raise ValueError('bad value')", "never = 1"])
    with pytest.raises(E.ExploreError, match=r"cell 4 \(\"raise ValueError\('bad value'\)\"\) failed: ValueError: bad value"):
        E.execute(src, tmp_path / "out.ipynb", tmp_path / "out.html", {"n": 2}, cwd=tmp_path)
    assert not (tmp_path / "out.ipynb").exists() and not (tmp_path / "out.html").exists()


@pytest.mark.parametrize("explore, message", [
    ({"a": "lion"}, "paper.explore.a: 'lion' is not one of this config's optimizers (sgd, adamw,"),
    ({"benchmark": "split"}, "paper.explore.benchmark: 'split' is not one of this config's benchmarks"),
    ({"seed": 7}, "paper.explore.seed: 7 is not one of this config's seeds (0, 1, 2, 3, 4)"),
    ({"a": "sgd", "b": "sgd"}, "paper.explore: a and b are both 'sgd'; compare two different optimizers"),
])
def test_bad_notebook_parameters_stop_the_config_check(explore, message):
    import yaml

    from optbias import config as C

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["paper"]["explore"] = explore
    with pytest.raises(C.ConfigError) as err:
        C.validate(config, REPO / "workflow/schemas/config.schema.yaml")
    assert message in str(err.value)
