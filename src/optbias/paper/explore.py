"""The explore notebook's library (workflow/notebooks/explore.py): every value the notebook shows.

The notebook only calls these functions on the pipeline's outputs, so what it computes is tested
here and is the same as what the summaries, the audit and the paper report. Each function reads a
finished run under ``root`` (the working directory of the pipeline) or takes what another one
returned; tables are ``pandas.DataFrame``s, figures ``matplotlib`` figures.

``execute`` runs the notebook itself (rule ``explore``, workflow/rules/paper.smk): jupytext reads
the paired ``.py`` source, the parameters go into a cell after the one tagged ``parameters`` (the
papermill convention), nbclient runs every cell in a fresh kernel, and nbconvert writes the HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..continual.summary import SCALARS
from ..fileio import atomic_write_bytes, load_json
from ..stats import t_interval
from .claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, format_stat, measured

if TYPE_CHECKING:  # pandas is imported where a table is made: common.smk reads HEADLINE_FIGURES at parse time
    import pandas as pd

# The pipeline's headline figures of each benchmark, as the notebook shows them (and rule explore reads them).
HEADLINE_FIGURES = {"class_incremental": ["figures/class_incremental_final_accuracy.png",
                                          "figures/accuracy_matrices_class_incremental.png"],
                    "permuted": ["figures/permuted_first_task_accuracy.png", "figures/accuracy_matrices_permuted.png"]}


class ExploreError(ValueError):
    """A name the outputs do not hold, or a notebook cell that failed; the message says which."""


def load(root: str | Path, output: str) -> Any:
    """The JSON output ``output`` (a path relative to ``root``, e.g. ``data/summary/permuted.json``).
    Raises ``ExploreError`` naming the file and the rule to run when it does not exist."""
    path = Path(root) / output
    if not path.is_file():
        raise ExploreError(f"{output} does not exist under {root}; run the pipeline first "
                           f"(snakemake --cores all {output})")
    return load_json(path)


def _entry(summary: Mapping, optimizer: str) -> Mapping:
    if optimizer not in summary["optimizers"]:
        raise ExploreError(f"no optimizer {optimizer!r} in this summary; it has {', '.join(summary['optimizers'])}")
    return summary["optimizers"][optimizer]


def summary_table(summary: Mapping, metrics: Sequence[str] = SCALARS) -> pd.DataFrame:
    """One row per optimizer (legend order), one column per metric: ``mean [low, high]`` over seeds
    (the summaries' Student-t 95% CI, or "(n = 1)" for one seed, written as the audit writes it:
    ``claims.format_stat``). ``summary``: ``data/summary/<benchmark>.json``."""
    import pandas as pd

    rows = {}
    for name in summary["order"]:
        entry = summary["optimizers"][name]
        rows[name] = {m: format_stat(entry[m]) for m in metrics if m in entry}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("optimizer")


def mean_accuracy_matrix(summary: Mapping, optimizer: str) -> pd.DataFrame:
    """R averaged over seeds, T x T: row i = after training task i, column j = evaluated on task j."""
    import pandas as pd

    matrices = _entry(summary, optimizer)["R_per_seed"]
    T = len(matrices[0])
    mean = [[sum(R[i][j] for R in matrices) / len(matrices) for j in range(T)] for i in range(T)]
    return pd.DataFrame(mean).rename_axis(index="after task", columns="task")


def paired(a_values: Sequence[float], a_seeds: Sequence[int], b_values: Sequence[float],
           b_seeds: Sequence[int]) -> tuple[list[int], list[float], list[float]]:
    """The seeds both have, in a's order (as the claims audit pairs them), with a's and b's values on
    them: the runs are paired by seed (same initialization, same batches). Raises ``ExploreError``
    when they share none."""
    b = dict(zip(b_seeds, b_values))
    seeds = [s for s in a_seeds if s in b]
    if not seeds:
        raise ExploreError(f"no seed in common (a: {list(a_seeds)}, b: {list(b_seeds)}): nothing to pair")
    a = dict(zip(a_seeds, a_values))
    return seeds, [a[s] for s in seeds], [b[s] for s in seeds]


def _difference_row(what: str, a: Mapping, a_seeds: Sequence[int], b: Mapping, b_seeds: Sequence[int]) -> dict:
    seeds, xa, xb = paired(a["per_seed"], a_seeds, b["per_seed"], b_seeds)
    diffs = [x - y for x, y in zip(xa, xb)]
    # One common seed: no interval (NaN bounds).
    mean, low, high = t_interval(diffs) if len(diffs) > 1 else (diffs[0], float("nan"), float("nan"))
    return {"metric": what, "a": sum(xa) / len(xa), "b": sum(xb) / len(xb), "a - b": mean, "ci95 low": low,
            "ci95 high": high, "seeds": len(seeds), "per-seed a - b": [round(d, 4) for d in diffs]}


def compare(summary: Mapping, a: str, b: str, metrics: Sequence[str] = SCALARS) -> pd.DataFrame:
    """Optimizer ``a`` against ``b`` on every summary metric, on the seeds both have: their means
    there and the mean of the per-seed differences a - b with its Student-t 95% CI
    (``optbias.stats.t_interval`` of the differences, as the claims audit computes a paired
    ``compare`` test; NaN bounds when only one seed is common)."""
    import pandas as pd

    ea, eb = _entry(summary, a), _entry(summary, b)
    rows = [_difference_row(m, ea[m], ea["seeds"], eb[m], eb["seeds"]) for m in metrics if m in ea and m in eb]
    return pd.DataFrame(rows).set_index("metric")


def compare_probes(probes: Mapping, a: str, b: str) -> pd.DataFrame:
    """``compare`` for the probe measures of the last hidden layer (effective rank, cosine overlap,
    dead units, ...), from ``data/summary/probes_<benchmark>.json``."""
    import pandas as pd

    ea, eb = _entry(probes, a), _entry(probes, b)
    shared = [m for m in ea["last_layer"] if m in eb["last_layer"] and "per_seed" in ea["last_layer"][m]]
    rows = [_difference_row(m, ea["last_layer"][m], ea["seeds"], eb["last_layer"][m], eb["seeds"]) for m in shared]
    return pd.DataFrame(rows).set_index("metric")


def loss_curves(root: str | Path, benchmark: str, optimizers: Sequence[str], seed: int):
    """The training loss of one seed's runs, one line per optimizer, task boundaries dotted.
    Reads ``data/runs/<benchmark>/<optimizer>/seed<seed>/metrics.json`` (its sampled ``loss_curve``)."""
    from ..plotting import palette, plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    colours = palette(list(optimizers))
    for name in optimizers:
        curve = load(root, f"data/runs/{benchmark}/{name}/seed{seed}/metrics.json")["loss_curve"]
        ax.plot(curve["step"], curve["loss"], label=name, color=colours[name], linewidth=1)
    boundaries = [s for s, t0, t1 in zip(curve["step"][1:], curve["task"], curve["task"][1:]) if t1 != t0]
    for step in boundaries:
        ax.axvline(step, color="grey", linestyle=":", linewidth=0.8)
    ax.set(yscale="log", xlabel="step", ylabel="training loss", title=f"{benchmark}, seed {seed}")
    ax.legend(frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def as_png(fig) -> bytes:
    """A figure as PNG bytes (150 dpi), closed afterwards: what the notebook displays. The library's
    figures draw on the Agg backend (``optbias.plotting``), which never shows a figure inline."""
    import io

    from ..plotting import plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def audit_table(audit: Mapping, verdict: str | None = None) -> pd.DataFrame:
    """The claims audit (``data/audit.json``) as a table, one row per claim, optionally only the
    claims with ``verdict`` (SUPPORTED, NOT SUPPORTED or INCONCLUSIVE)."""
    import pandas as pd

    verdicts = {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE}
    if verdict is not None and verdict not in verdicts:
        raise ExploreError(f"verdict must be one of {', '.join(sorted(verdicts))}, got {verdict!r}")
    rows = [{"claim": r["id"], "verdict": r["verdict"], "measured": measured(r), "rule": r["rule"],
             "statement": r["statement"]} for r in audit["claims"] if verdict is None or r["verdict"] == verdict]
    return pd.DataFrame(rows, columns=["claim", "verdict", "measured", "rule", "statement"]).set_index("claim")


def rerun_command(audit: Mapping, claim: str) -> str:
    """The command that recomputes one claim's evidence and its verdict: rerun its rule (and what
    depends on it) up to the audit page."""
    rows = {r["id"]: r for r in audit["claims"]}
    if claim not in rows:
        raise ExploreError(f"no claim {claim!r} in the audit; it has {', '.join(rows)}")
    return f"snakemake --cores all paper/audit.md --forcerun {rows[claim]['rule']}"  # --forcerun takes every word after it


# ---- running the notebook (rule explore) ---------------------------------------------------------


def parameters_cell_index(cells: Sequence[Mapping]) -> int:
    """The index of the one cell tagged ``parameters``; ``ExploreError`` if there is none or several."""
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ExploreError(f"the notebook needs exactly one cell tagged 'parameters', found {len(tagged)}")
    return tagged[0]


def execute(source: str | Path, output_ipynb: str | Path, output_html: str | Path, parameters: Mapping[str, Any],
            cwd: str | Path = ".", timeout: int = 600) -> None:
    """Run the notebook ``source`` (jupytext ``.py``) with ``parameters`` in a fresh kernel whose
    working directory is ``cwd``, then write the executed ``.ipynb`` and its HTML (atomically).

    The parameters become a cell tagged ``injected-parameters`` after the ``parameters`` cell. A
    failing cell raises ``ExploreError`` with its number (from 1, as Jupyter shows it), its first
    line and the error; nothing is written then.
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    nb = jupytext.read(source)
    at = parameters_cell_index(nb.cells)
    assignments = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    injected = nbformat.v4.new_code_cell(f"# Parameters (set by the pipeline)\n{assignments}",
                                         metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, injected)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as err:
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                raise ExploreError(f"{source}: cell {index + 1} ({first!r}) failed: "
                                   f"{getattr(err, 'ename', 'error')}: {getattr(err, 'evalue', err)}") from None
    atomic_write_bytes(output_ipynb, nbformat.writes(nb).encode())
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    atomic_write_bytes(output_html, html.encode())
