"""Render paper/paper.md to one self-contained HTML page, every number filled from pipeline outputs.

Why: a number typed by hand drifts from the data; a placeholder cannot. The Markdown source holds

* ``{{ name }}`` placeholders, resolved at build time (like showyourwork's ``\\variable``) from
  - ``paper/variables.yaml``: ``name: {output: <file>, select: <path>, format: <fmt>}``,
  - the audit: ``{{ C2.value }}`` (measured, every case), ``{{ C2.verdict }}``, ``{{ audit.supported }}``,
    ``{{ audit.not_supported }}``, ``{{ audit.inconclusive }}``, ``{{ audit.total }}``,
  - the workflow config: ``{{ config.model.hidden }}``;
  - the dataset (``optbias.data.describe``): ``{{ dataset.name }}`` ("MNIST", "Fashion-MNIST"),
    ``{{ dataset.item }}`` ("digit", "class"), ``{{ dataset.description }}``;
  - other datasets' committed verdicts (``paper.datasets``): ``{{ datasets.verdicts }}``, a table of
    every claim's verdict here and on each of them (``verdicts_table``);
* ``[claim:ID]`` markers, rendered as a link to that claim's row of the audit table, with its verdict;
* ``![caption](figures/x.png)`` images, embedded as data URIs so that the page stands alone.

Any unresolved placeholder, unknown claim, claim the text never cites, or missing figure is an error:
the page is only written when every number in it comes from the pipeline.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..data import DataError, describe
from .claims import ClaimError, format_stat, measured, select

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
CLAIM = re.compile(r"\[claim:([A-Za-z][A-Za-z0-9_-]*)\]")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
CSS = """
body { font-family: Georgia, serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
img { max-width: 100%; display: block; margin: 1rem auto; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 1rem 0; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.4rem; vertical-align: top; }
code { font-size: 0.85em; }
a.claim { font-size: 0.75em; text-decoration: none; padding: 0 0.25em; border-radius: 0.25em; white-space: nowrap; }
a.claim.SUPPORTED { background: #d4f4d4; color: #145214; }
a.claim.NOT-SUPPORTED { background: #f8d0d0; color: #7a1010; }
a.claim.INCONCLUSIVE { background: #f6ecc0; color: #6a5200; }
"""


class PaperError(ValueError):
    """The paper cannot be built as written: the message names the placeholder, claim or file."""


def format_number(value: Any, fmt: str) -> str:
    """``mean_ci`` ({mean, ci95} or per-seed list -> "m [lo, hi]", the Student-t 95% interval of the
    mean over seeds; "m (n = 1)" for one seed), ``pct``, ``list``, or a format spec."""
    if fmt == "mean_ci":
        if isinstance(value, Mapping) and "mean" in value:
            return format_stat(value)
        if isinstance(value, list):
            from ..stats import seed_stat

            return format_stat(seed_stat(value))
        raise PaperError(f"format mean_ci needs {{mean, ci95}} or a per-seed list, got {value!r}")
    if fmt == "pct":
        return f"{100 * float(value):.1f}%"
    if fmt == "list":
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if fmt in ("", "str"):
        return str(value)
    return format(value, fmt)


def load_variables(path: str | Path) -> dict[str, dict]:
    """paper/variables.yaml: placeholder name -> {output, select, format}; ``PaperError`` on a malformed entry."""
    variables = yaml.safe_load(Path(path).read_text()) or {}
    for name, spec in variables.items():
        if not isinstance(spec, dict) or not {"output", "select"} <= set(spec):
            raise PaperError(f"{path}: variable {name!r} needs output and select (format is optional)")
    return variables


def variable_outputs(variables: Mapping[str, dict]) -> list[str]:
    """The pipeline outputs the variables read: the paper rule's inputs."""
    return sorted({spec["output"] for spec in variables.values()})


def inline_outputs(source: str) -> list[str]:
    """The outputs that inline placeholders ``{{ <output>:<selector>|<format> }}`` read."""
    return sorted({m.group(1).partition("|")[0].partition(":")[0].strip()
                   for m in PLACEHOLDER.finditer(source) if ":" in m.group(1).partition("|")[0]})


def figure_paths(source: str) -> list[str]:
    """The image paths the Markdown source embeds, sorted (inputs of the paper rule)."""
    return sorted({m.group(2) for m in IMAGE.finditer(source)})


class Resolver:
    """Resolve a placeholder name against the variables, the audit and the config."""

    def __init__(self, variables: Mapping[str, dict], audit: dict, config: Mapping, root: Path,
                 datasets: Mapping[str, str | Path] | None = None):
        self.variables, self.config, self.root = variables, config, root
        self.datasets = dict(datasets or {})
        self.rows = {row["id"]: row for row in audit["claims"]}
        counts = audit["counts"]
        self.audit_values = {"supported": counts["SUPPORTED"], "not_supported": counts["NOT SUPPORTED"],
                             "inconclusive": counts["INCONCLUSIVE"], "total": len(audit["claims"])}
        self._docs: dict[str, Any] = {}

    def _doc(self, output: str) -> Any:
        if output not in self._docs:
            path = self.root / output
            if not path.exists():
                raise PaperError(f"{output} does not exist; build it first: snakemake --cores all {output}")
            self._docs[output] = json.loads(path.read_text())
        return self._docs[output]

    def __call__(self, name: str) -> str:
        name, _, fmt = (part.strip() for part in name.partition("|"))
        head, _, rest = name.partition(".")
        try:
            if name in self.variables:
                spec = self.variables[name]
                return format_number(select(self._doc(spec["output"]), spec["select"]), fmt or spec.get("format", "str"))
            if ":" in name:
                output, _, selector = name.partition(":")
                return format_number(select(self._doc(output), selector), fmt or "str")
            if head == "config":
                return format_number(select(self.config, rest), fmt or "list")
            if name == "datasets.verdicts":
                return verdicts_table(self.rows, self.config.get("dataset", ""), self.datasets)
            if head == "dataset":
                return format_number(select(describe(self.config["dataset"], self.config.get("data")), rest),
                                     fmt or "str")
            if head == "audit" and rest in self.audit_values:
                return str(self.audit_values[rest])
            if head in self.rows and rest in ("value", "verdict"):
                row = self.rows[head]
                return measured(row) if rest == "value" else row["verdict"]
        except KeyError as err:
            raise PaperError(f"placeholder {{{{ {name} }}}}: {err.args[0]}") from None
        raise PaperError(f"placeholder {{{{ {name} }}}} is not a variable of paper/variables.yaml, "
                         "<output>:<selector>, a claim's .value/.verdict, audit.<count>, config.<key>, "
                         "dataset.<name|item|description> or datasets.verdicts; "
                         "define it in paper/variables.yaml")


def _embed(match: re.Match, root: Path) -> str:
    alt, path = match.group(1), match.group(2)
    file = root / path
    if not file.exists():
        raise PaperError(f"figure {path} does not exist; build it: snakemake --cores all {path}")
    mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    data = base64.b64encode(file.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}" data-source="{html.escape(path)}">'
            f"<figcaption>{html.escape(alt)} (<code>{html.escape(path)}</code>)</figcaption></figure>")


def verdicts_table(rows: Mapping[str, dict], dataset: str, others: Mapping[str, str | Path]) -> str:
    """A Markdown table: one row per claim of this run's audit (``rows``: id -> audit row), its
    verdict here (column: this run's ``dataset`` display name) and in each of ``others`` (display
    name -> a verdicts JSON, ``{claim id: verdict}``, as the audit writes ``paper/verdicts.json``).
    A claim the other run did not audit shows "not audited", and "agree" compares the runs that
    audited it ("n/a" when none of the others did: not a disagreement). A column named like this run's dataset
    is left out (a run does not table itself); with none left, one sentence says so. Raises
    ``PaperError`` on a missing or malformed file."""
    here = _describe_name(dataset)
    others = other_datasets(others, dataset)
    if not others:
        return ("*No other dataset's verdicts are named for this run (`paper.datasets`: display name -> "
                "that run's committed paper/verdicts.json).*")
    columns = {}
    for name, path in others.items():
        path = Path(path)
        if not path.is_file():
            raise PaperError(f"paper.datasets: {name}'s verdicts {path} do not exist; run that config and copy "
                             "its paper/verdicts.json there (docs/configs.md)")
        verdicts = json.loads(path.read_text())
        if not isinstance(verdicts, dict) or not all(isinstance(v, str) for v in verdicts.values()):
            raise PaperError(f"{path}: expected {{claim id: verdict}}, as the audit writes paper/verdicts.json")
        columns[name] = verdicts
    names = list(columns)
    lines = [f"| claim | {here} (this run) | " + " | ".join(names) + " | agree |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for claim_id, row in rows.items():
        theirs = [columns[n].get(claim_id, "not audited") for n in names]
        audited = [v for v in theirs if v != "not audited"]
        agree = "n/a" if not audited else "yes" if all(v == row["verdict"] for v in audited) else "no"
        lines.append(f"| [{claim_id}](#claim-{claim_id}) | {row['verdict']} | " + " | ".join(theirs) + f" | {agree} |")
    return "\n".join(lines)


def other_datasets(datasets: Mapping[str, str | Path], dataset: str) -> dict[str, str | Path]:
    """``paper.datasets`` (display name -> verdicts file) without the one named like this run's
    ``dataset`` (a config source such as "fashion-mnist"): a run is not tabled against itself."""
    return {name: path for name, path in datasets.items() if name != _describe_name(dataset)}


def _describe_name(dataset: str) -> str:
    try:
        return describe(dataset)["name"]
    except DataError:  # an unknown source (the config check names it): the table shows the key
        return dataset or "this run"


def render(source: str, variables: Mapping[str, dict], audit: dict, audit_md: str, config: Mapping,
           root: str | Path = ".", datasets: Mapping[str, str | Path] | None = None) -> str:
    """The HTML page: placeholders filled, claim markers linked, figures embedded, the audit appended.
    ``datasets``: display name -> another run's verdicts JSON, for ``{{ datasets.verdicts }}``."""
    import markdown

    root = Path(root)
    resolve = Resolver(variables, audit, config, root, datasets)
    text = PLACEHOLDER.sub(lambda m: resolve(m.group(1)), source)
    cited = set(CLAIM.findall(text))
    unknown = sorted(cited - set(resolve.rows))
    if unknown:
        raise PaperError(f"paper cites claim(s) {', '.join(unknown)} that no claims file (paper.claims) defines")
    unused = sorted(set(resolve.rows) - cited)
    if unused:
        raise PaperError(f"claim(s) {', '.join(unused)} of the claims files (paper.claims) are never cited in the paper; "
                         "cite each with [claim:ID] next to the sentence it supports")

    def marker(m: re.Match) -> str:
        row = resolve.rows[m.group(1)]
        cls = row["verdict"].replace(" ", "-")
        return (f'<a class="claim {cls}" href="#claim-{row["id"]}" title="{html.escape(row["statement"])} '
                f'(rule {row["rule"]})">{row["id"]}: {row["verdict"]}</a>')

    text = CLAIM.sub(marker, text)
    text = IMAGE.sub(lambda m: _embed(m, root), text)
    audit_body = re.sub(r"^# Claims audit", "## Appendix: claims audit", audit_md, count=1, flags=re.M)
    body = markdown.markdown(text + "\n\n" + audit_body, extensions=["tables", "fenced_code", "toc"])
    leftover = PLACEHOLDER.search(body)
    if leftover:
        raise PaperError(f"unresolved placeholder {leftover.group(0)} in the rendered page")
    title = re.search(r"^# (.+)$", source, flags=re.M)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title.group(1) if title else 'paper')}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def read_source(source_path: str | Path | Sequence[str | Path]) -> str:
    """The paper's Markdown: one file, or several joined in order by a blank line (the extended run
    appends ``paper/extended.md`` to ``paper/paper.md``)."""
    paths = [source_path] if isinstance(source_path, (str, Path)) else list(source_path)
    if not paths:
        raise PaperError("no paper source given; set paper.source to a Markdown file or a list of files")
    return "\n\n".join(Path(p).read_text().rstrip("\n") for p in paths) + "\n"


def build(source_path: str | Path | Sequence[str | Path], variables_path: str | Path, audit_json: str | Path, audit_md: str | Path,
          config: Mapping, root: str | Path = ".", datasets: Mapping[str, str | Path] | None = None) -> str:
    """The paper's HTML page: ``render`` of the Markdown source with the variables, the audit and the config
    (and ``datasets``, other runs' verdicts by display name, for ``{{ datasets.verdicts }}``).

    Raises ``PaperError`` (a ``ValueError``) naming the placeholder or claim that does not resolve.
    """
    audit = json.loads(Path(audit_json).read_text())
    try:
        return render(read_source(source_path), load_variables(variables_path), audit,
                      Path(audit_md).read_text(), config, root, datasets)
    except ClaimError as err:
        raise PaperError(str(err)) from None
